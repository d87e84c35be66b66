// Package netnstest builds throw-away network namespaces joined by veth pairs
// for tests that send real traffic. Everything a test creates is removed in
// t.Cleanup, also when the test fails. Traffic stays inside the namespaces:
// addresses are 10.99.0.0/24 and fd99::/64, which exist nowhere else.
package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequireRoot skips the test when the process cannot create namespaces or
// load BPF programs. On CI (CI=true) it fails instead: there the tests must run.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CAP_NET_ADMIN, CAP_BPF) and CI runs as root")
	}
	t.Skip("needs root: run the tests as root (make test does)")
}

// RequireTool skips (fails on CI) when a command-line tool is missing.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed; make test installs it", n)
			}
			t.Skipf("%s is not installed (make deps installs it)", n)
		}
	}
}

// Pair is two namespaces, A and B, joined by one veth pair.
// A's end is IfA with IPA (and IP6A); B's end is IfB with IPB (and IP6B).
type Pair struct {
	A, B       string // namespace names
	IfA, IfB   string // veth ends
	IPA, IPB   string // IPv4 addresses, /24
	IP6A, IP6B string // IPv6 addresses, /64
}

// NewPair creates a namespace pair. Both namespaces have lo up.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	RequireRoot(t)
	RequireTool(t, "ip")
	id := randomID()
	p := &Pair{
		A: "kflt-" + id + "-a", B: "kflt-" + id + "-b",
		IfA: "kfa" + id, IfB: "kfb" + id,
		IPA: "10.99.0.1", IPB: "10.99.0.2",
		IP6A: "fd99::1", IP6B: "fd99::2",
	}
	t.Cleanup(func() {
		// Deleting a namespace deletes the veth ends inside it.
		run(t, "ip", "netns", "del", p.A)
		run(t, "ip", "netns", "del", p.B)
	})
	mustRun(t, "ip", "netns", "add", p.A)
	mustRun(t, "ip", "netns", "add", p.B)
	mustRun(t, "ip", "link", "add", p.IfA, "netns", p.A, "type", "veth", "peer", "name", p.IfB, "netns", p.B)
	for _, side := range []struct{ ns, ifc, ip4, ip6 string }{{p.A, p.IfA, p.IPA, p.IP6A}, {p.B, p.IfB, p.IPB, p.IP6B}} {
		mustRun(t, "ip", "-n", side.ns, "link", "set", "lo", "up")
		mustRun(t, "ip", "-n", side.ns, "addr", "add", side.ip4+"/24", "dev", side.ifc)
		mustRun(t, "ip", "-n", side.ns, "addr", "add", side.ip6+"/64", "dev", side.ifc, "nodad")
		mustRun(t, "ip", "-n", side.ns, "link", "set", side.ifc, "up")
	}
	return p
}

// Exec runs a command inside namespace ns and returns its combined output.
// It fails the test when the command fails.
func Exec(t testing.TB, ns string, name string, args ...string) string {
	t.Helper()
	out, err := Output(ns, name, args...)
	if err != nil {
		t.Fatalf("ip netns exec %s %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Output runs a command inside namespace ns (with a 2-minute limit) and
// returns its combined output and error.
func Output(ns string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// Start starts a long-running command inside namespace ns. It is killed in
// t.Cleanup. Its output goes to the returned buffer's file (see Proc.Output).
func Start(t testing.TB, ns string, name string, args ...string) *Proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "proc-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	p := &Proc{Cmd: cmd, log: f.Name(), done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Stop(); f.Close() })
	return p
}

// Proc is a process started by Start.
type Proc struct {
	Cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Stop kills the process (if still running) and waits for it.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Kill()
	<-p.done
}

// Output returns what the process has written so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// WaitListening polls until something listens on the TCP or UDP port inside ns.
func WaitListening(t testing.TB, ns, proto string, port int) {
	t.Helper()
	flag := "-ltn"
	if proto == "udp" {
		flag = "-lun"
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := Output(ns, "ss", flag)
		if strings.Contains(out, fmt.Sprintf(":%d ", port)) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s port %d in %s", proto, port, ns)
}

func randomID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func run(t testing.TB, name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Logf("cleanup: %s %s: %v %s", name, strings.Join(args, " "), err, out)
	}
}
