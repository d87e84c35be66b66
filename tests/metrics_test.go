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

// sampleSum is the sum of the samples of name that have all the labels
// (0 when there is none): failures of every reason, for instance.
func sampleSum(exposition, name string, labels ...string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := sampleValue(line, name, labels...); ok {
			sum += v
		}
	}
	return sum
}

// metricsAddr is where writeAgentConfig's agents serve /metrics, /readyz
// and /status (the default metrics.listen), on their namespace's loopback.
const metricsAddr = "127.0.0.1:9750"

// scrape returns the agent's /metrics exposition, from inside ns.
func scrape(t *testing.T, ns, addr string) string {
	t.Helper()
	code, body, err := netnstest.HTTPGet(ns, "http://"+addr+"/metrics")
	if err != nil || code != 200 {
		t.Fatalf("scrape %s in %s: %d %v\n%s", addr, ns, code, err, body)
	}
	return body
}

// waitMetric scrapes the agent in namespace ns (on metricsAddr) until the
// samples of name with the labels add up to at least want, for up to 10 s,
// and returns their last sum (which the caller checks). Entries follow the
// traffic by up to the ring reader's deadline (200 ms on a quiet link)
// plus dissection.
func waitMetric(t *testing.T, ns string, want float64, name string, labels ...string) float64 {
	t.Helper()
	return pollMetric(10*time.Second, ns, metricsAddr, want, name, labels...)
}

// needMetric waits like waitMetric, for up to timeout, for an agent serving
// on addr, and fails the test when the value does not come.
func needMetric(t *testing.T, timeout time.Duration, ns, addr string, want float64, name string, labels ...string) float64 {
	t.Helper()
	v := pollMetric(timeout, ns, addr, want, name, labels...)
	if v < want {
		t.Fatalf("%s%v is %v after %v, want at least %v", name, labels, v, timeout, want)
	}
	return v
}

func pollMetric(timeout time.Duration, ns, addr string, want float64, name string, labels ...string) float64 {
	var v float64
	netnstest.Poll(timeout, func() error {
		_, out, err := netnstest.HTTPGet(ns, "http://"+addr+"/metrics")
		if err != nil {
			return err
		}
		if v = sampleSum(out, name, labels...); v < want {
			return fmt.Errorf("%s%v is %v", name, labels, v)
		}
		return nil
	})
	return v
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
	waitAgentUp(t, agent, p.A, metricsAddr)
	netnstest.Exec(t, p.A, "ping", "-c", "1", "-W", "2", p.IPB) // ARP resolved before counting
	// The kernel counts a packet as it crosses the hook: by the time ping
	// has its reply, request and reply are counted.
	before := scrape(t, p.A, metricsAddr)
	netnstest.Exec(t, p.A, "ping", "-c", "20", "-i", "0.02", p.IPB)
	ifl := `interface="` + p.IfA + `"`
	var after string
	grew := func(dir string) float64 {
		return metricValue(t, after, "kflcap_packets_seen_total", ifl, `direction="`+dir+`"`) -
			metricValue(t, before, "kflcap_packets_seen_total", ifl, `direction="`+dir+`"`)
	}
	netnstest.Poll(5*time.Second, func() error {
		if after = scrape(t, p.A, metricsAddr); grew("egress") < 20 || grew("ingress") < 20 {
			return fmt.Errorf("packets seen grew by %v egress, %v ingress", grew("egress"), grew("ingress"))
		}
		return nil
	})
	for _, dir := range []string{"egress", "ingress"} {
		if d := grew(dir); d != 20 {
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
	var v float64
	netnstest.WaitFor(t, 30*time.Second, func() error {
		out, _ := netnstest.Output(p.A, "curl", "-sS", "-G", "http://127.0.0.1:9090/api/v1/query", "--data-urlencode", "query="+query)
		var r struct {
			Data struct {
				Result []struct {
					Value []any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(out), &r) != nil || len(r.Data.Result) != 1 {
			return fmt.Errorf("Prometheus did not scrape the agent: %s", out)
		}
		v, _ = strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
		return nil
	})
	// Later packets (ARP re-validation) may have been counted since the
	// first scrape: the value lies between the two scrapes.
	if now := metricValue(t, scrape(t, p.A, metricsAddr), "kflcap_packets_seen_total", ifl, `direction="egress"`); v < want || v > now {
		t.Errorf("Prometheus has %s = %v, the agent exposed %v then %v", query, v, want, now)
	}
	if !regexp.MustCompile(`kflcap_spool_limit_bytes \d`).MatchString(after) {
		t.Errorf("spool gauge missing")
	}
}
