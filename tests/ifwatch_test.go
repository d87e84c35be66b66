package tests

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/netnstest"
)

// With interfaces [any] the agent follows link events: a new veth is
// attached within a second and its traffic counted; a deleted one is
// released; hundreds of create/delete cycles leak no attachment, file
// descriptor or goroutine.
func TestAgentFollowsInterfaces(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "curl", "ping")
	dir := t.TempDir()
	cfg := writeAgentConfig(t, dir, "  maxDuration: 60s")
	agent := start(t, "ip", "netns", "exec", p.A, kflcapBin, "agent", "--config", cfg)
	agent.waitStderr(t, "msg=\"serving metrics\"", 20*time.Second)
	scrape := func() string {
		return netnstest.Exec(t, p.A, "curl", "-sS", "--fail", "http://127.0.0.1:9750/metrics")
	}

	// New interfaces with traffic.
	for i := range 5 {
		a, b := fmt.Sprintf("kfw%da", i), fmt.Sprintf("kfw%db", i)
		created := time.Now()
		netnstest.Exec(t, p.A, "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", p.B)
		netnstest.Exec(t, p.A, "ip", "addr", "add", fmt.Sprintf("10.97.%d.1/30", i), "dev", a)
		netnstest.Exec(t, p.B, "ip", "addr", "add", fmt.Sprintf("10.97.%d.2/30", i), "dev", b)
		netnstest.Exec(t, p.A, "ip", "link", "set", a, "up")
		netnstest.Exec(t, p.B, "ip", "link", "set", b, "up")
		agent.waitStderr(t, "interface="+a, 5*time.Second)
		if took := time.Since(created); took > time.Second {
			t.Errorf("%s attached %v after creation, want within 1 s", a, took)
		}
		netnstest.Exec(t, p.A, "ping", "-c", "3", "-i", "0.05", "-W", "2", fmt.Sprintf("10.97.%d.2", i))
		time.Sleep(100 * time.Millisecond)
		if v := metricValue(t, scrape(), "kflcap_packets_seen_total", `interface="`+a+`"`, `direction="egress"`); v < 3 {
			t.Errorf("%s: %v egress packets counted, want at least the 3 pings", a, v)
		}
		if n := strings.Count(agent.Stderr(), "msg=\"attached new interface\" interface="+a+" "); n != 1 {
			t.Errorf("%s: attached %d times, want once", a, n)
		}
		netnstest.Exec(t, p.A, "ip", "link", "del", a)
		agent.waitStderr(t, "msg=\"released removed interface\" interface="+a, 5*time.Second)
	}

	// A renamed link (CNIs rename veths) keeps its one attachment, and its
	// counters follow the new name.
	netnstest.Exec(t, p.A, "ip", "link", "add", "kfr0a", "type", "veth", "peer", "name", "kfr0b", "netns", p.B)
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfr0a", "up")
	agent.waitStderr(t, "interface=kfr0a", 5*time.Second)
	attached := metricValue(t, scrape(), "kflcap_attached_interfaces")
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfr0a", "down")
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfr0a", "name", "kfr1a")
	netnstest.Exec(t, p.A, "ip", "addr", "add", "10.97.99.1/30", "dev", "kfr1a")
	netnstest.Exec(t, p.B, "ip", "addr", "add", "10.97.99.2/30", "dev", "kfr0b")
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfr1a", "up")
	netnstest.Exec(t, p.B, "ip", "link", "set", "kfr0b", "up")
	netnstest.Exec(t, p.A, "ping", "-c", "3", "-i", "0.05", "-W", "2", "10.97.99.2")
	time.Sleep(100 * time.Millisecond)
	m := scrape()
	if v := metricValue(t, m, "kflcap_packets_seen_total", `interface="kfr1a"`, `direction="egress"`); v < 3 {
		t.Errorf("renamed link: %v egress packets counted under its new name, want at least the 3 pings", v)
	}
	if v := metricValue(t, m, "kflcap_attached_interfaces"); v != attached {
		t.Errorf("after the rename %v interfaces attached, %v before", v, attached)
	}
	if n := strings.Count(agent.Stderr(), "msg=\"attached new interface\""); n != 6 {
		t.Errorf("%d attachments logged, want 6 (5 veths and the renamed one once)", n)
	}
	netnstest.Exec(t, p.A, "ip", "link", "del", "kfr1a")

	// Churn without traffic: nothing may accumulate.
	base := scrape()
	attached0 := metricValue(t, base, "kflcap_attached_interfaces")
	fds0 := metricValue(t, base, "process_open_fds")
	gr0 := metricValue(t, base, "go_goroutines")
	const cycles = 1000
	var script strings.Builder
	for i := range cycles {
		fmt.Fprintf(&script, "link add kfc%d type veth peer name kfc%dp\nlink set kfc%d up\nlink del kfc%d\n", i, i, i, i)
	}
	cmd := exec.Command("ip", "-n", p.A, "-batch", "-")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	var after string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		after = scrape()
		if metricValue(t, after, "kflcap_attached_interfaces") == attached0 || time.Now().After(deadline) {
			break
		}
	}
	if v := metricValue(t, after, "kflcap_attached_interfaces"); v != attached0 {
		t.Errorf("after %d create/delete cycles %v interfaces attached, %v before", cycles, v, attached0)
	}
	if v := metricValue(t, after, "process_open_fds"); v > fds0+5 {
		t.Errorf("open fds %v after %d cycles, %v before", v, cycles, fds0)
	}
	if v := metricValue(t, after, "go_goroutines"); v > gr0+5 {
		t.Errorf("goroutines %v after %d cycles, %v before", v, cycles, gr0)
	}
	t.Logf("after %d cycles: attached %v (was %v), fds %v (was %v), goroutines %v (was %v)", cycles,
		metricValue(t, after, "kflcap_attached_interfaces"), attached0, metricValue(t, after, "process_open_fds"), fds0,
		metricValue(t, after, "go_goroutines"), gr0)
}
