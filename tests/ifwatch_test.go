package tests

import (
	"errors"
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
	waitAgentUp(t, agent, p.A, metricsAddr)
	attached := func(name string, want bool) func(agentStatus) error {
		return func(st agentStatus) error {
			if st.attached(name) != want {
				return fmt.Errorf("%s attached: %v, want %v", name, !want, want)
			}
			return nil
		}
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
		waitStatus(t, agent, p.A, metricsAddr, 5*time.Second, attached(a, true))
		if took := time.Since(created); took > time.Second {
			t.Errorf("%s attached %v after creation, want within 1 s", a, took)
		}
		netnstest.Exec(t, p.A, "ping", "-c", "3", "-i", "0.05", "-W", "2", fmt.Sprintf("10.97.%d.2", i))
		if v := waitMetric(t, p.A, 3, "kflcap_packets_seen_total", `interface="`+a+`"`, `direction="egress"`); v < 3 {
			t.Errorf("%s: %v egress packets counted, want at least the 3 pings", a, v)
		}
		netnstest.Exec(t, p.A, "ip", "link", "del", a)
		waitStatus(t, agent, p.A, metricsAddr, 5*time.Second, attached(a, false))
	}

	// A renamed link (CNIs rename veths) keeps its one attachment, and its
	// counters follow the new name.
	netnstest.Exec(t, p.A, "ip", "link", "add", "kfr0a", "type", "veth", "peer", "name", "kfr0b", "netns", p.B)
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfr0a", "up")
	waitStatus(t, agent, p.A, metricsAddr, 5*time.Second, attached("kfr0a", true))
	before := metricValue(t, scrape(t, p.A, metricsAddr), "kflcap_attached_interfaces")
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfr0a", "down")
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfr0a", "name", "kfr1a")
	netnstest.Exec(t, p.A, "ip", "addr", "add", "10.97.99.1/30", "dev", "kfr1a")
	netnstest.Exec(t, p.B, "ip", "addr", "add", "10.97.99.2/30", "dev", "kfr0b")
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfr1a", "up")
	netnstest.Exec(t, p.B, "ip", "link", "set", "kfr0b", "up")
	netnstest.Exec(t, p.A, "ping", "-c", "3", "-i", "0.05", "-W", "2", "10.97.99.2")
	if v := waitMetric(t, p.A, 3, "kflcap_packets_seen_total", `interface="kfr1a"`, `direction="egress"`); v < 3 {
		t.Errorf("renamed link: %v egress packets counted under its new name, want at least the 3 pings", v)
	}
	if v := metricValue(t, scrape(t, p.A, metricsAddr), "kflcap_attached_interfaces"); v != before {
		t.Errorf("after the rename %v interfaces attached, %v before", v, before)
	}
	netnstest.Exec(t, p.A, "ip", "link", "del", "kfr1a")

	// Churn without traffic: nothing may accumulate.
	base := scrape(t, p.A, metricsAddr)
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
	netnstest.Poll(10*time.Second, func() error {
		if after = scrape(t, p.A, metricsAddr); metricValue(t, after, "kflcap_attached_interfaces") != attached0 {
			return errors.New("attachments not back to where they were")
		}
		return nil
	})
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

	// Each link was attached once, as its log (complete once the agent has
	// exited) says: the renamed one under its first name only.
	if code := agent.interrupt(t); code != 0 {
		t.Errorf("agent exited %d", code)
	}
	for _, name := range []string{"kfw0a", "kfw1a", "kfw2a", "kfw3a", "kfw4a", "kfr0a", "kfr1a"} {
		want := 1
		if name == "kfr1a" {
			want = 0
		}
		if n := strings.Count(agent.Stderr(), "msg=\"attached new interface\" interface="+name+" "); n != want {
			t.Errorf("%s: attached %d times, want %d", name, n, want)
		}
	}
	for i := range 5 {
		if a := fmt.Sprintf("kfw%da", i); !strings.Contains(agent.Stderr(), "msg=\"released removed interface\" interface="+a) {
			t.Errorf("%s: no release logged", a)
		}
	}
}
