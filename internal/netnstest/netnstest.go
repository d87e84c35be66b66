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
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequirePrivileged marks a privileged test: one that needs root (network
// namespaces, CAP_NET_ADMIN, CAP_BPF). Under go test -short, which runs unit
// tests only, it skips. Otherwise it skips when the process lacks those
// privileges, except on CI (CI=true), where it fails instead: there the
// tests run as root and must not skip silently.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	SkipShort(t, "privileged (root, BPF, network namespaces)")
	missing := missingCaps()
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("needs root (%s): run the tests as root (make test does)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI runs them as root")
	}
	t.Skip(msg)
}

// SkipShort skips a test that is not a unit test under go test -short:
// what says which tier it belongs to (privileged, real server, oracle).
// Without -short such tests run; make test and CI run them.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s test: skipped under -short (unit tests only; make test runs it)", what)
	}
}

// missingCaps names the capabilities a privileged test needs that the
// process does not have in its effective set.
func missingCaps() []string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return []string{"cannot read /proc/self/status"}
	}
	var eff uint64
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			eff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	need := []struct {
		bit  uint
		name string
	}{{12, "CAP_NET_ADMIN"}, {21, "CAP_SYS_ADMIN"}, {39, "CAP_BPF"}}
	// Kernels before 5.8 have no CAP_BPF: CAP_SYS_ADMIN covers BPF there.
	last := uint(40)
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			last = uint(n)
		}
	}
	var missing []string
	for _, c := range need {
		if c.bit <= last && eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	return missing
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

// NewPair creates a namespace pair. Both namespaces have lo up. It is
// privileged (RequirePrivileged): under -short the test skips here.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	RequirePrivileged(t)
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

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitExit waits up to timeout for the process to end by itself and
// reports whether it did.
func (p *Proc) WaitExit(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Output returns what the process has written so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// WaitListening waits until something listens on the TCP or UDP port
// inside ns, for up to 15 s.
func WaitListening(t testing.TB, ns, proto string, port int) {
	t.Helper()
	WaitListeningFor(t, 15*time.Second, ns, proto, port)
}

// WaitListeningFor is WaitListening for a server slower to start.
func WaitListeningFor(t testing.TB, timeout time.Duration, ns, proto string, port int) {
	t.Helper()
	flag := "-ltn"
	if proto == "udp" {
		flag = "-lun"
	}
	WaitFor(t, timeout, func() error {
		if out, _ := Output(ns, "ss", flag); !strings.Contains(out, fmt.Sprintf(":%d ", port)) {
			return fmt.Errorf("nothing listens on %s port %d in %s", proto, port, ns)
		}
		return nil
	})
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
