// Package benchkit holds what the benchmark programs under bench/ share: a
// namespace pair joined by a veth (created and removed by the program),
// process CPU and memory readings from /proc, parsing of tcpdump's and
// kflcap's summaries, and small helpers. Benchmarks run as root and send
// traffic only inside the namespaces they create (10.99.0.0/24).
package benchkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pair is two namespaces A and B joined by a veth pair.
type Pair struct {
	A, B     string // namespace names
	IfA, IfB string
	IPA, IPB string
}

// NewPair names a pair; Setup creates it.
func NewPair(prefix string) *Pair {
	return &Pair{A: prefix + "-a", B: prefix + "-b", IfA: prefix[:min(len(prefix), 12)] + "0", IfB: prefix[:min(len(prefix), 12)] + "1",
		IPA: "10.99.0.1", IPB: "10.99.0.2"}
}

// Setup removes any leftover of the pair, then creates it.
func (p *Pair) Setup() {
	p.Cleanup()
	Sh("ip", "netns", "add", p.A)
	Sh("ip", "netns", "add", p.B)
	Sh("ip", "link", "add", p.IfA, "netns", p.A, "type", "veth", "peer", "name", p.IfB, "netns", p.B)
	Sh("ip", "-n", p.A, "addr", "add", p.IPA+"/24", "dev", p.IfA)
	Sh("ip", "-n", p.B, "addr", "add", p.IPB+"/24", "dev", p.IfB)
	for _, x := range [][2]string{{p.A, p.IfA}, {p.B, p.IfB}} {
		Sh("ip", "-n", x[0], "link", "set", "lo", "up")
		Sh("ip", "-n", x[0], "link", "set", x[1], "up")
	}
	cleanups = append(cleanups, p.Cleanup)
}

// Cleanup deletes the namespaces (and with them the veth).
func (p *Pair) Cleanup() {
	exec.Command("ip", "netns", "del", p.A).Run()
	exec.Command("ip", "netns", "del", p.B).Run()
}

// MAC is the address of B's end, for trafgen's Ethernet header.
func (p *Pair) MAC() string {
	out, err := exec.Command("ip", "-n", p.B, "-o", "link", "show", p.IfB).Output()
	if err != nil {
		Die("read %s's address: %v", p.IfB, err)
	}
	f := strings.Fields(string(out))
	for i, x := range f {
		if x == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	Die("no MAC address for %s", p.IfB)
	return ""
}

var cleanups []func()

// Die runs the registered cleanups and exits (log.Fatal would skip them).
func Die(format string, a ...any) {
	for _, c := range cleanups {
		c()
	}
	log.Fatalf(format, a...)
}

// Sh runs a command and dies when it fails.
func Sh(name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		Die("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// CPUSeconds is the CPU time a process's threads have run so far, from
// /proc/PID/task/*/schedstat (nanoseconds; the tick-sampled utime/stime of
// /proc/PID/stat are too coarse for a process that uses a few ms a second),
// falling back to /proc/PID/stat.
func CPUSeconds(pid int) float64 {
	ns, _ := schedstat(pid)
	if ns > 0 {
		return ns / 1e9
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// Timeslices counts how often a process's threads have been scheduled in
// (the third field of /proc/PID/task/*/schedstat): its wake-ups, when it
// is idle.
func Timeslices(pid int) float64 {
	_, n := schedstat(pid)
	return n
}

// schedstat sums a process's threads' run time (ns) and timeslices.
func schedstat(pid int) (ns, slices float64) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) == 3 {
			v, _ := strconv.ParseFloat(f[0], 64)
			n, _ := strconv.ParseFloat(f[2], 64)
			ns, slices = ns+v, slices+n
		}
	}
	return ns, slices
}

// RxPackets is the packets B's end of the pair has received.
func (p *Pair) RxPackets() int64 {
	out, err := exec.Command("ip", "-n", p.B, "-s", "-j", "link", "show", p.IfB).Output()
	if err != nil {
		Die("%v", err)
	}
	var links []struct {
		Stats64 struct {
			Rx struct {
				Packets int64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) == 0 {
		Die("ip -s link: %v", err)
	}
	return links[0].Stats64.Rx.Packets
}

// PeakRSS is a process's peak resident set (VmHWM) in bytes; CurrentRSS
// its resident set now (VmRSS).
func PeakRSS(pid int) int64    { return procStatus(pid, "VmHWM:") }
func CurrentRSS(pid int) int64 { return procStatus(pid, "VmRSS:") }

func procStatus(pid int, key string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	return 0
}

// StatLine reads "N WHAT…" from a tcpdump or `kflcap capture` summary.
func StatLine(s, what string) int64 {
	for _, line := range strings.Split(s, "\n") {
		if n, rest, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.HasPrefix(rest, what) {
			v, _ := strconv.ParseInt(n, 10, 64)
			return v
		}
	}
	return 0
}

// KV reads the last key=N from slog text output.
func KV(s, key string) int64 {
	i := strings.LastIndex(s, " "+key+"=")
	if i < 0 {
		return 0
	}
	v := s[i+len(key)+2:]
	if j := strings.IndexAny(v, " \n"); j >= 0 {
		v = v[:j]
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// FileSize is a file's size, 0 when missing.
func FileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Kernel is the running kernel's release.
func Kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// NumCPU counts the processors in /proc/cpuinfo.
func NumCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// SyncBuf is a bytes.Buffer safe for a process's output and a reader.
type SyncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *SyncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// WaitFor polls cond for up to 30 s, then dies.
func WaitFor(what string, cond func() bool) {
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			Die("timed out waiting for %s", what)
		}
	}
}

// WaitTCP waits until addr accepts connections from inside namespace ns.
func WaitTCP(ns, addr string) {
	WaitFor(addr, func() bool {
		return exec.Command("ip", "netns", "exec", ns, "bash", "-c", "exec 3<>/dev/tcp/"+strings.Replace(addr, ":", "/", 1)).Run() == nil
	})
}
