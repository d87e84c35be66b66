package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/internal/netnstest"
)

// bpftool explains a running agent as docs/debugging.md says: its
// programs by name, the attachments on
// the interface (tc backend: named filters), and its maps pinned under
// /sys/fs/bpf/kflcap/, whose counters follow the traffic. After the
// agent exits none of its programs is loaded and its filters are gone.
func TestBpftoolSeesAgent(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "bpftool", "nsenter", "ping")
	dir := t.TempDir()
	cfg := writeAgentConfig(t, dir, "")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "capture: {interfaces: [any]}", "capture: {interfaces: [any], backend: tc}", 1)), 0o644)
	agent := start(t, "ip", "netns", "exec", p.A, kflcapBin, "agent", "--config", cfg)
	waitAgentUp(t, agent, p.A, metricsAddr)
	pid := agent.cmd.Process.Pid
	// The agent mounted its bpffs in the mount namespace `ip netns exec`
	// gave it (a DaemonSet mounts the host's): look from inside.
	inAgent := func(args ...string) (string, error) {
		out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(pid), "-m", "-n", "bpftool"}, args...)...).CombinedOutput()
		return string(out), err
	}

	progs := []string{"kflcap_tc_in", "kflcap_tc_eg"}
	ids := pinnedProgIDs(t, inAgent, "/sys/fs/bpf/kflcap", progs...)
	for i, prog := range progs {
		// From the host too, by name (Debian's bpftool does not print
		// owner pids).
		if out, err := bpftool("prog", "show", "name", prog); err != nil || !strings.Contains(out, ids[i]+": sched_cls  name "+prog) {
			t.Errorf("bpftool prog show name %s does not list program %s: %v\n%s", prog, ids[i], err, out)
		}
	}
	out, err := inAgent("net", "show", "dev", p.IfA)
	for _, want := range []string{fmt.Sprintf("kflcap:%d:in id %s", pid, ids[0]), fmt.Sprintf("kflcap:%d:eg id %s", pid, ids[1])} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("bpftool net show dev %s: no %q: %v\n%s", p.IfA, want, err, out)
		}
	}
	for _, m := range []string{"kflcap_events", "kflcap_ifstats", "kflcap_pf_cfg", "kflcap_pf_proto", "kflcap_pf_port", "kflcap_pf_ip4", "kflcap_pf_ip6", "kflcap_ifcfg", "kflcap_owner"} {
		if out, err := inAgent("map", "show", "pinned", "/sys/fs/bpf/kflcap/"+m); err != nil || !strings.Contains(out, "name "+m) {
			t.Errorf("bpftool map show pinned %s: %v\n%s", m, err, out)
		}
	}
	netnstest.Exec(t, p.A, "ping", "-c", "5", "-i", "0.05", "-W", "2", p.IPB)
	dump, err := inAgent("map", "dump", "pinned", "/sys/fs/bpf/kflcap/kflcap_ifstats")
	if err != nil || !strings.Contains(dump, `"delivered"`) {
		t.Errorf("bpftool map dump kflcap_ifstats: %v\n%s", err, dump)
	}
	if n := sumField(dump, `"seen"`); n < 10 {
		t.Errorf("kflcap_ifstats counts %d packets seen, want at least the 5 pings and 5 replies:\n%s", n, dump)
	}

	if code := agent.interrupt(t); code != 0 {
		t.Fatalf("agent exit %d:\n%s", code, agent.Stderr())
	}
	checkUnloaded(t, ids)
	if out := netnstest.Exec(t, p.A, "tc", "filter", "show", "dev", p.IfA, "ingress"); strings.Contains(out, "kflcap") {
		t.Errorf("filter left after exit:\n%s", out)
	}
}

// sumField adds the numbers following key in bpftool's JSON-ish dump.
func sumField(dump, key string) int {
	total := 0
	for _, l := range strings.Split(dump, "\n") {
		if i := strings.Index(l, key+": "); i >= 0 {
			var n int
			fmt.Sscan(strings.TrimRight(l[i+len(key)+2:], ","), &n)
			total += n
		}
	}
	return total
}

// bpftool runs the host's bpftool.
func bpftool(args ...string) (string, error) {
	out, err := exec.Command("bpftool", args...).CombinedOutput()
	return string(out), err
}

// pinnedProgIDs returns the ids of the programs pinned in dir, as bpftool
// run through run shows them by name; it fails the test when one is not.
func pinnedProgIDs(t *testing.T, run func(args ...string) (string, error), dir string, progs ...string) []string {
	t.Helper()
	var ids []string
	for _, prog := range progs {
		out, err := run("prog", "show", "pinned", dir+"/"+prog)
		if err != nil || !strings.Contains(out, "name "+prog) {
			t.Fatalf("bpftool prog show pinned %s: %v\n%s", prog, err, out)
		}
		ids = append(ids, strings.TrimSuffix(strings.Fields(out)[0], ":"))
	}
	return ids
}

// checkUnloaded fails the test for every program id still loaded.
func checkUnloaded(t *testing.T, ids []string) {
	t.Helper()
	for _, id := range ids {
		if out, err := bpftool("prog", "show", "id", id); err == nil {
			t.Errorf("program %s still loaded after exit:\n%s", id, out)
		}
	}
}
