package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/netnstest"
)

// metricValue reads one sample from an exposition.
func metricValue(t *testing.T, exposition, name string, labels ...string) float64 {
	t.Helper()
	v, ok := sampleValue(exposition, name, labels...)
	if !ok {
		t.Fatalf("no sample %s%v in:\n%s", name, labels, exposition)
	}
	return v
}

// sampleValue is the value of the first sample of name with all the labels.
func sampleValue(exposition, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if ok {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return v, true
		}
	}
	return 0, false
}

// waitMetric scrapes the agent in namespace ns (127.0.0.1:9750) until the
// sample reaches at least want, for up to 5 s, and returns its last value.
// Entries follow the traffic by up to the ring reader's deadline (200 ms
// on a quiet link) plus dissection.
func waitMetric(t *testing.T, ns string, want float64, name string, labels ...string) float64 {
	t.Helper()
	var v float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := netnstest.Output(ns, "curl", "-sS", "--fail", "http://127.0.0.1:9750/metrics")
		v, _ = sampleValue(out, name, labels...)
		if v >= want || time.Now().After(deadline) {
			return v
		}
	}
}

// The agent's /metrics counts exactly the packets sent, passes promtool,
// and a real Prometheus server scrapes it; /healthz and /readyz answer.
func TestAgentMetrics(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "promtool", "prometheus", "curl", "ping")
	// No IPv6 neighbour discovery or MLD: only the test's packets cross.
	for _, ns := range []string{p.A, p.B} {
		netnstest.Exec(t, ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	dir := t.TempDir()
	cfg := writeAgentConfig(t, dir, "  maxDuration: 60s")
	agent := start(t, "ip", "netns", "exec", p.A, kflcapBin, "agent", "--config", cfg)
	agent.waitStderr(t, "msg=\"serving metrics\"", 20*time.Second)
	scrape := func() string {
		return netnstest.Exec(t, p.A, "curl", "-sS", "--fail", "http://127.0.0.1:9750/metrics")
	}
	netnstest.Exec(t, p.A, "ping", "-c", "1", "-W", "2", p.IPB) // ARP resolved before counting
	time.Sleep(200 * time.Millisecond)
	before := scrape()
	netnstest.Exec(t, p.A, "ping", "-c", "20", "-i", "0.02", p.IPB)
	time.Sleep(200 * time.Millisecond)
	after := scrape()
	ifl := `interface="` + p.IfA + `"`
	for _, dir := range []string{"egress", "ingress"} {
		d := metricValue(t, after, "kflcap_packets_seen_total", ifl, `direction="`+dir+`"`) -
			metricValue(t, before, "kflcap_packets_seen_total", ifl, `direction="`+dir+`"`)
		if d != 20 {
			t.Errorf("%s packets seen grew by %v, want the 20 echo %s", dir, d, map[string]string{"egress": "requests", "ingress": "replies"}[dir])
		}
	}
	if v := metricValue(t, after, "kflcap_ringbuf_drops_total", ifl, `direction="ingress"`); v != 0 {
		t.Errorf("ring drops %v", v)
	}
	exp := filepath.Join(dir, "metrics.txt")
	os.WriteFile(exp, []byte(after), 0o644)
	if out, err := netnstest.Output(p.A, "sh", "-c", "promtool check metrics < "+exp); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	// kflcap status shows the same picture.
	status := netnstest.Exec(t, p.A, kflcapBin, "status")
	for _, want := range []string{p.IfA, "tcx", "http and response.status == 500", "dns", "outbox: 0 waiting"} {
		if !strings.Contains(status, want) {
			t.Errorf("kflcap status lacks %q:\n%s", want, status)
		}
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		if out := netnstest.Exec(t, p.A, "curl", "-sS", "--fail", "http://127.0.0.1:9750"+path); strings.TrimSpace(out) != want {
			t.Errorf("%s answered %q", path, out)
		}
	}

	// A real Prometheus scrapes the agent.
	promCfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(promCfg, []byte("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: kflcap\n    static_configs: [{targets: ['127.0.0.1:9750']}]\n"), 0o644)
	netnstest.Start(t, p.A, "prometheus", "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address=127.0.0.1:9090")
	want := metricValue(t, after, "kflcap_packets_seen_total", ifl, `direction="egress"`)
	query := fmt.Sprintf(`kflcap_packets_seen_total{interface="%s",direction="egress"}`, p.IfA)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := netnstest.Output(p.A, "curl", "-sS", "-G", "http://127.0.0.1:9090/api/v1/query", "--data-urlencode", "query="+query)
		var r struct {
			Data struct {
				Result []struct {
					Value []any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(out), &r) == nil && len(r.Data.Result) == 1 {
			// Later packets (ARP re-validation) may have been counted since
			// the first scrape: the value lies between the two scrapes.
			v, _ := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
			now := metricValue(t, scrape(), "kflcap_packets_seen_total", ifl, `direction="egress"`)
			if v < want || v > now {
				t.Errorf("Prometheus has %s = %v, the agent exposed %v then %v", query, v, want, now)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape the agent: %s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !regexp.MustCompile(`kflcap_spool_limit_bytes \d`).MatchString(after) {
		t.Errorf("spool gauge missing")
	}
}
