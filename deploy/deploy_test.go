package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/internal/config"
	"gopkg.in/yaml.v3"
)

func documents(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, path, b)
}

// parse decodes a YAML stream (a file, or what helm rendered), failing the
// test on a syntax error or a duplicate key.
func parse(t *testing.T, name string, b []byte) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		docs = append(docs, d)
	}
}

func find(docs []map[string]any, kind string) map[string]any {
	for _, d := range docs {
		if d["kind"] == kind {
			return d
		}
	}
	return nil
}

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

// The ConfigMap's config.yaml is a valid agent configuration, with the
// downward-API variables the DaemonSet provides.
func TestManifestConfigLoads(t *testing.T) {
	docs := documents(t, "manifests/kflcap.yaml")
	cm := find(docs, "ConfigMap")
	text, _ := get(cm, "data", "config.yaml").(string)
	if text == "" {
		t.Fatal("no config.yaml in the ConfigMap")
	}
	t.Setenv("NODE_NAME", "node-1")
	t.Setenv("NODE_IP", "10.0.0.7")
	t.Setenv("KFLCAP_API_TOKEN", "t0ken")
	cfg, err := config.Parse([]byte(text), "ConfigMap kflcap")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != "node-1" || cfg.API.Listen != "10.0.0.7:9751" || cfg.Metrics.Listen != "0.0.0.0:9750" {
		t.Errorf("node %+v api %+v metrics %+v", cfg.Node, cfg.API, cfg.Metrics)
	}
	if cfg.Spool.Dir != "/var/lib/kflcap" {
		t.Errorf("spool dir %s is not the hostPath mount", cfg.Spool.Dir)
	}
}

// The DaemonSet runs on every node with the host's network, the minimal
// capabilities, bpffs and spool mounts, probes on the metrics port, and a
// grace period longer than the agent's own.
func TestDaemonSet(t *testing.T) {
	docs := documents(t, "manifests/kflcap.yaml")
	ds := find(docs, "DaemonSet")
	spec := get(ds, "spec", "template", "spec")
	if get(spec, "hostNetwork") != true {
		t.Error("hostNetwork must be true")
	}
	c := get(spec, "containers").([]any)[0]
	caps := get(c, "securityContext", "capabilities", "add").([]any)
	var got []string
	for _, x := range caps {
		got = append(got, x.(string))
	}
	slices.Sort(got)
	if strings.Join(got, ",") != "BPF,NET_ADMIN,PERFMON,SYS_RESOURCE" {
		t.Errorf("capabilities %v", got)
	}
	mounts := map[string]bool{}
	for _, m := range get(c, "volumeMounts").([]any) {
		mounts[get(m, "mountPath").(string)] = true
	}
	for _, p := range []string{"/sys/fs/bpf", "/var/lib/kflcap", "/etc/kflcap"} {
		if !mounts[p] {
			t.Errorf("no mount at %s", p)
		}
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if get(c, probe, "httpGet", "port") != 9750 {
			t.Errorf("%s not on the metrics port", probe)
		}
	}
	if get(spec, "terminationGracePeriodSeconds").(int) <= 25 {
		t.Error("the pod's grace period must exceed the agent's --grace 25s")
	}
	tol := get(spec, "tolerations").([]any)
	if get(tol[0], "operator") != "Exists" {
		t.Error("the DaemonSet must tolerate every taint")
	}
	rules := get(find(docs, "ClusterRole"), "rules").([]any)
	for _, r := range rules {
		for _, v := range get(r, "verbs").([]any) {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("RBAC grants %v: read-only is enough", v)
			}
		}
	}
}

// The Grafana dashboard is valid JSON and every kflcap metric it queries
// is one the agent exposes (docs/metrics.md lists them).
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`kflcap_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !strings.Contains(string(doc), "`"+base+"`") {
					t.Errorf("panel %q queries %s, which docs/metrics.md does not list", p.Title, m)
				}
			}
		}
	}
	if len(dash.Panels) < 10 {
		t.Errorf("only %d panels", len(dash.Panels))
	}
}
