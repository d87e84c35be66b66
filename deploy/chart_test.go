package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/internal/toolcache"
	"gopkg.in/yaml.v3"
)

// helm is built by scripts/helm.sh (Debian has no package), or named by
// $KFLCAP_HELM.
var helmTool = toolcache.Tool{Env: "KFLCAP_HELM", Script: "helm.sh", What: "helm"}

const chartDir = "chart/kflcap"

// regenerate is what to run when the manifests and the chart disagree.
const regenerate = "make manifests (helm template kflcap deploy/chart/kflcap --namespace kflcap --set namespace.create=true >deploy/manifests/kflcap.yaml)"

// helm runs the helm binary with its own empty configuration, cache and data
// directories: a local chart needs no repository, and the user's must not
// change the result.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("helm: built by scripts/helm.sh, not a short test")
	}
	bin := helmTool.Path(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// render is `helm template` of the chart as release name in namespace
// name (names stay name), with --set values.
func render(t *testing.T, name string, set ...string) (string, error) {
	t.Helper()
	args := []string{"template", name, chartDir, "--namespace", name}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return helm(t, args...)
}

func mustRender(t *testing.T, name string, set ...string) []map[string]any {
	t.Helper()
	out, err := render(t, name, set...)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, "helm template "+strings.Join(set, " "), []byte(out))
}

// The chart passes helm lint --strict (warnings fail too), with the
// defaults and with each switch turned.
func TestChartLint(t *testing.T) {
	for _, set := range [][]string{
		nil,
		{"securityContext.privileged=true"},
		{"serviceMonitor.enabled=true", "metrics.podAnnotations=false"},
		{"namespace.create=true", "priorityClassName=system-node-critical", "nodeSelector.kubernetes\\.io/os=linux"},
	} {
		name := strings.Join(set, ",")
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir}
			for _, s := range set {
				args = append(args, "--set", s)
			}
			if out, err := helm(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// deploy/manifests/kflcap.yaml is the chart rendered with its defaults and
// its Namespace, byte for byte: the plain manifests and the chart cannot
// drift apart. Without namespace.create there is no Namespace.
func TestChartRendersManifests(t *testing.T) {
	if docs := mustRender(t, "kflcap"); find(docs, "Namespace") != nil {
		t.Error("the default rendering has a Namespace: helm install --create-namespace would fail")
	}
	got, err := render(t, "kflcap", "namespace.create=true")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("manifests/kflcap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("manifests/kflcap.yaml is not the chart's rendering with default values.\n"+
			"Edit deploy/chart/kflcap, then regenerate it with: %s\n%s", regenerate, firstDiff(string(want), got))
	}
}

// firstDiff shows the first line where want and got differ, with context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "first difference at line %d (%d lines in the file, %d rendered):\n", i+1, len(w), len(g))
	for _, side := range []struct {
		name  string
		lines []string
	}{{"manifests/kflcap.yaml", w}, {"helm template", g}} {
		fmt.Fprintf(&b, "  %s:\n", side.name)
		for j := max(0, i-2); j < min(len(side.lines), i+3); j++ {
			mark := " "
			if j == i {
				mark = ">"
			}
			fmt.Fprintf(&b, "  %s%4d | %s\n", mark, j+1, side.lines[j])
		}
	}
	return b.String()
}

func container(t *testing.T, docs []map[string]any) map[string]any {
	t.Helper()
	ds := find(docs, "DaemonSet")
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	return get(ds, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
}

func portNamed(c map[string]any, name string) any {
	for _, p := range get(c, "ports").([]any) {
		if get(p, "name") == name {
			return get(p, "containerPort")
		}
	}
	return nil
}

// securityContext.privileged=true is the fallback: a privileged container
// and no capability list (privileged has them all).
func TestChartPrivileged(t *testing.T) {
	docs := mustRender(t, "kflcap", "securityContext.privileged=true")
	sc := get(container(t, docs), "securityContext")
	if want := map[string]any{"privileged": true}; fmt.Sprint(sc) != fmt.Sprint(want) {
		t.Errorf("securityContext %v, want %v", sc, want)
	}
}

// serviceMonitor.enabled=true adds a headless Service over the DaemonSet's
// pods and a ServiceMonitor that scrapes its metrics port.
func TestChartServiceMonitor(t *testing.T) {
	docs := mustRender(t, "kflcap", "serviceMonitor.enabled=true",
		"serviceMonitor.labels.release=prom", "serviceMonitor.interval=15s")
	sm, svc := find(docs, "ServiceMonitor"), find(docs, "Service")
	if sm == nil || svc == nil {
		t.Fatalf("ServiceMonitor %v, Service %v", sm != nil, svc != nil)
	}
	if get(sm, "apiVersion") != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %v", get(sm, "apiVersion"))
	}
	if get(sm, "metadata", "labels", "release") != "prom" {
		t.Errorf("ServiceMonitor labels %v: serviceMonitor.labels missing", get(sm, "metadata", "labels"))
	}
	if ns := get(sm, "spec", "namespaceSelector", "matchNames"); fmt.Sprint(ns) != "[kflcap]" {
		t.Errorf("namespaceSelector %v", ns)
	}
	// The ServiceMonitor selects the Service ...
	for k, v := range get(sm, "spec", "selector", "matchLabels").(map[string]any) {
		if get(svc, "metadata", "labels", k) != v {
			t.Errorf("ServiceMonitor selects %s=%v; the Service's labels are %v", k, v, get(svc, "metadata", "labels"))
		}
	}
	// ... whose selector matches the DaemonSet's pods ...
	pod := get(find(docs, "DaemonSet"), "spec", "template", "metadata", "labels")
	for k, v := range get(svc, "spec", "selector").(map[string]any) {
		if get(pod, k) != v {
			t.Errorf("Service selects %s=%v; the pods' labels are %v", k, v, pod)
		}
	}
	if get(svc, "spec", "clusterIP") != "None" {
		t.Errorf("Service clusterIP %v, want None (headless)", get(svc, "spec", "clusterIP"))
	}
	// ... on the metrics port, by name.
	ep := get(sm, "spec", "endpoints").([]any)
	if len(ep) != 1 || get(ep[0], "port") != "metrics" || get(ep[0], "path") != "/metrics" || get(ep[0], "interval") != "15s" {
		t.Errorf("ServiceMonitor endpoints %v", ep)
	}
	sp := get(svc, "spec", "ports").([]any)
	if len(sp) != 1 || get(sp[0], "name") != "metrics" || get(sp[0], "targetPort") != "metrics" ||
		get(sp[0], "port") != portNamed(container(t, docs), "metrics") {
		t.Errorf("Service ports %v", sp)
	}
}

// Other values reach the places that depend on them: ports (probes,
// annotations, config), the agent's grace period, names, scheduling.
func TestChartValues(t *testing.T) {
	docs := mustRender(t, "capture",
		"metrics.port=9850", "api.port=9851", "terminationGracePeriodSeconds=60",
		"image.repository=registry.example/kflcap", "image.tag=v1.2.3", "image.pullPolicy=Always",
		"secret.name=kflcap-creds", "spool.hostPath=/data/kflcap",
		"priorityClassName=system-node-critical", "nodeSelector.kubernetes\\.io/os=linux",
		"metrics.podAnnotations=false",
	)
	if find(docs, "Namespace") != nil {
		t.Error("the default namespace.create=false renders a Namespace")
	}
	ds := find(docs, "DaemonSet")
	if get(ds, "metadata", "name") != "capture-kflcap" || get(ds, "metadata", "namespace") != "capture" {
		t.Errorf("DaemonSet %v", get(ds, "metadata"))
	}
	spec := get(ds, "spec", "template", "spec")
	c := container(t, docs)
	for _, v := range []struct {
		what      string
		got, want any
	}{
		{"metrics port", portNamed(c, "metrics"), 9850},
		{"api port", portNamed(c, "api"), 9851},
		{"liveness port", get(c, "livenessProbe", "httpGet", "port"), 9850},
		{"readiness port", get(c, "readinessProbe", "httpGet", "port"), 9850},
		{"grace period", get(spec, "terminationGracePeriodSeconds"), 60},
		{"agent --grace", get(c, "args").([]any)[4], "55s"},
		{"image", get(c, "image"), "registry.example/kflcap:v1.2.3"},
		{"pull policy", get(c, "imagePullPolicy"), "Always"},
		{"secret", get(get(c, "envFrom").([]any)[0], "secretRef", "name"), "kflcap-creds"},
		{"spool", get(get(spec, "volumes").([]any)[2], "hostPath", "path"), "/data/kflcap"},
		{"priority class", get(spec, "priorityClassName"), "system-node-critical"},
		{"node selector", get(spec, "nodeSelector", "kubernetes.io/os"), "linux"},
		{"pod annotations", get(ds, "spec", "template", "metadata", "annotations"), nil},
	} {
		if v.got != v.want {
			t.Errorf("%s: %v, want %v", v.what, v.got, v.want)
		}
	}

	// The configuration follows the ports (it goes through tpl) and loads.
	text, _ := get(find(docs, "ConfigMap"), "data", "config.yaml").(string)
	t.Setenv("NODE_IP", "10.0.0.7")
	cfg, err := config.Parse([]byte(text), "ConfigMap capture-kflcap")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.Listen != "10.0.0.7:9851" || cfg.Metrics.Listen != "0.0.0.0:9850" {
		t.Errorf("config api %+v metrics %+v", cfg.API, cfg.Metrics)
	}
}

// values.schema.json turns a wrong type or a misspelt key into an error
// instead of a rendering that ignores it.
func TestChartRejectsBadValues(t *testing.T) {
	for _, set := range []string{
		"tolerations=everything",
		"securityContext.privileged=yes",
		"securityContex.privileged=true",
		"terminationGracePeriodSeconds=5",
		"metrics.port=0",
		"image.pullPolicy=Sometimes",
		"spool.hostPath=relative/dir",
	} {
		t.Run(set, func(t *testing.T) {
			out, err := render(t, "kflcap", set)
			if err == nil {
				t.Fatalf("helm template accepted %s:\n%s", set, out)
			}
			if !strings.Contains(err.Error(), "schema") {
				t.Errorf("not a schema error: %v", err)
			}
		})
	}
}

// Falco's http_output posts to the agent on its own node: the address the
// ConfigMap's api.listen names, which the DaemonSet's api port exposes on
// the host network.
func TestFalcoHTTPOutput(t *testing.T) {
	b, err := os.ReadFile("manifests/falco-http-output.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var falco map[string]any
	if err := yaml.Unmarshal(b, &falco); err != nil {
		t.Fatalf("falco-http-output.yaml: %v", err)
	}
	if get(falco, "json_output") != true || get(falco, "http_output", "enabled") != true {
		t.Errorf("json_output %v, http_output.enabled %v", get(falco, "json_output"), get(falco, "http_output", "enabled"))
	}
	url, _ := get(falco, "http_output", "url").(string)
	hostPort, path, ok := strings.Cut(strings.TrimPrefix(url, "http://"), "/")
	if !ok || !strings.HasPrefix(path, "api/v1/alerts/falco?") {
		t.Fatalf("http_output.url %q is not http://<node>:<port>/api/v1/alerts/falco?...", url)
	}
	if hostPort != "${NODE_IP}:9751" {
		t.Errorf("http_output.url %q does not post to ${NODE_IP}:9751", url)
	}

	docs := documents(t, "manifests/kflcap.yaml")
	var cfg map[string]any
	text, _ := get(find(docs, "ConfigMap"), "data", "config.yaml").(string)
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	if listen := get(cfg, "api", "listen"); listen != hostPort {
		t.Errorf("the agent's api.listen is %v, Falco posts to %s", listen, hostPort)
	}
	if p := portNamed(container(t, docs), "api"); p != 9751 {
		t.Errorf("the DaemonSet's api port is %v, Falco posts to 9751", p)
	}
	if !slices.Contains(strings.Split(path[strings.Index(path, "?")+1:], "&"), "access_token=${KFLCAP_API_TOKEN}") {
		t.Errorf("http_output.url %q carries no access_token: the agent requires a token off loopback", url)
	}
}
