package tests

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/kflcap/kflcap/internal/netnstest"
)

const udpBurst = 10000

// startServers starts, in namespace B, an HTTP server, TCP and UDP nc
// listeners and a UDP sink for the burst.
func startServers(t *testing.T, p *netnstest.Pair) {
	t.Helper()
	netnstest.RequireTool(t, "python3", "nc", "curl", "ping", "tshark", "tcpdump")
	www := t.TempDir()
	body := strings.Repeat("kflcap test body\n", 6000) // ~100 KB: several segments
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	netnstest.Start(t, p.B, "python3", "-m", "http.server", "8080", "--bind", p.IPB, "--directory", www)
	netnstest.Start(t, p.B, "nc", "-l", "-k", p.IPB, "7000")
	netnstest.Start(t, p.B, "nc", "-l", "-u", "-k", p.IPB, "7001")
	netnstest.Start(t, p.B, "python3", "-c", fmt.Sprintf(
		"import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('%s',9999))\nwhile True: s.recv(2048)", p.IPB))
	netnstest.WaitListening(t, p.B, "tcp", 8080)
	netnstest.WaitListening(t, p.B, "tcp", 7000)
	netnstest.WaitListening(t, p.B, "udp", 7001)
	netnstest.WaitListening(t, p.B, "udp", 9999)
}

// driveTraffic sends the test traffic from namespace A to B.
func driveTraffic(t *testing.T, p *netnstest.Pair) {
	t.Helper()
	netnstest.Exec(t, p.A, "ping", "-c", "5", "-i", "0.05", p.IPB)
	for range 3 {
		netnstest.Exec(t, p.A, "curl", "-sS", "-o", "/dev/null", "http://"+p.IPB+":8080/index.html")
	}
	netnstest.Exec(t, p.A, "sh", "-c", "printf 'hello over tcp\\n' | nc -N "+p.IPB+" 7000")
	netnstest.Exec(t, p.A, "sh", "-c", "printf 'hello over udp\\n' | nc -u -w1 -q0 "+p.IPB+" 7001")
	netnstest.Exec(t, p.A, "python3", "-c", fmt.Sprintf(
		"import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(%d): s.sendto(b'%%05d'%%i+b'x'*59,('%s',9999))", udpBurst, p.IPB))
}

// tuples counts IPv4 packets per 5-tuple (proto src:sport > dst:dport) as
// tshark reads them.
func tuples(t *testing.T, file string) map[string]int {
	t.Helper()
	out := tshark(t, "-r", file, "-Y", "ip", "-T", "fields", "-E", "separator=,",
		"-e", "ip.proto", "-e", "ip.src", "-e", "tcp.srcport", "-e", "udp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "udp.dstport")
	m := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		m[fmt.Sprintf("%s %s:%s%s > %s:%s%s", f[0], f[1], f[2], f[3], f[4], f[5], f[6])]++
	}
	return m
}

// packetBytes returns the multiset of IPv4 packets' bytes in a pcap or
// pcapng file, keyed by content.
func packetBytes(t *testing.T, file string) map[string]int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var next func() ([]byte, error)
	if r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions); err == nil {
		next = func() ([]byte, error) { d, _, err := r.ReadPacketData(); return d, err }
	} else {
		f.Seek(0, io.SeekStart)
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatalf("%s is neither pcapng nor pcap: %v", file, err)
		}
		next = func() ([]byte, error) { d, _, err := r.ReadPacketData(); return d, err }
	}
	m := map[string]int{}
	for {
		d, err := next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		if len(d) > 14 && d[12] == 0x08 && d[13] == 0x00 { // IPv4
			m[string(d)]++
		}
	}
}

func diffCounts(a, b map[string]int) []string {
	var diffs []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		if a[k] != b[k] {
			diffs = append(diffs, fmt.Sprintf("%q: %d vs %d", truncate(k, 80), a[k], b[k]))
		}
	}
	sort.Strings(diffs)
	return diffs
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// assertNothingLeft checks that no tc filter, clsact qdisc or pin of ours
// remains.
func assertNothingLeft(t *testing.T, ns, ifname string) {
	t.Helper()
	for _, dir := range []string{"ingress", "egress"} {
		if out, _ := netnstest.Output(ns, "tc", "filter", "show", "dev", ifname, dir); strings.TrimSpace(out) != "" {
			t.Errorf("tc %s filters left on %s: %s", dir, ifname, out)
		}
	}
	if out, _ := netnstest.Output(ns, "tc", "qdisc", "show", "dev", ifname); strings.Contains(out, "clsact") {
		t.Errorf("clsact qdisc left on %s: %s", ifname, out)
	}
	if ents, _ := filepath.Glob("/sys/fs/bpf/kflcap/capture-*"); len(ents) > 0 {
		var live []string
		for _, e := range ents {
			pid, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(e), "capture-"))
			if syscallAlive(pid) {
				continue // another test's capture, still running
			}
			live = append(live, e)
		}
		if len(live) > 0 {
			t.Errorf("pins left behind: %v", live)
		}
	}
}

// tcpdumpStat reads "N packets WHAT" from tcpdump's summary (-1 if absent).
func tcpdumpStat(stderr, what string) int {
	for _, line := range strings.Split(stderr, "\n") {
		if n, rest, ok := strings.Cut(strings.TrimSpace(line), " packets "); ok && rest == what {
			v, err := strconv.Atoi(n)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func syscallAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

func TestCaptureBackends(t *testing.T) {
	netnstest.RequirePrivileged(t) // here, so the test is reported skipped, not passed with every backend skipped
	for _, backend := range []string{"tcx", "tc", "socket"} {
		t.Run(backend, func(t *testing.T) { testCaptureBackend(t, backend) })
	}
}

func testCaptureBackend(t *testing.T, backend string) {
	p := netnstest.NewPair(t)
	startServers(t, p)
	dir := t.TempDir()
	ours := filepath.Join(dir, "kflcap.pcapng")
	theirs := filepath.Join(dir, "tcpdump.pcap")

	cap := start(t, kflcapBin, "capture", "--netns", p.A, "-i", p.IfA, "--backend", backend, "-w", ours)
	cap.waitCapturing(t, ours)
	if !strings.Contains(cap.Stderr(), p.IfA+"/"+backend) {
		t.Fatalf("capture did not report backend %s: %s", backend, cap.Stderr())
	}
	td := netnstest.StartTcpdump(t, p.A, p.IfA, theirs, "-s", "65535", "-B", "65536")

	began := time.Now()
	driveTraffic(t, p)
	ended := time.Now()
	// The connections' last packets (FIN, ACK) follow the clients' exit.
	netnstest.WaitTCPSettled(t, p.A, p.B)

	if code := cap.interrupt(t); code != 0 {
		t.Fatalf("kflcap capture exited %d:\n%s", code, cap.Stderr())
	}
	td.Stop(t)
	t.Logf("kflcap: %s", strings.TrimSpace(cap.Stderr()))
	t.Logf("tcpdump: %s", strings.TrimSpace(td.Output()))
	// When tcpdump itself lost packets (dropped, or received but not
	// written when interrupted), it is only a lower bound.
	tcpdumpLost := tcpdumpStat(td.Output(), "captured") != tcpdumpStat(td.Output(), "received by filter") ||
		tcpdumpStat(td.Output(), "dropped by kernel") != 0
	if !strings.Contains(cap.Stderr(), "0 packets dropped by kernel") || !strings.Contains(cap.Stderr(), "0 packets dropped in user space") {
		t.Errorf("drops reported:\n%s", cap.Stderr())
	}

	// tshark opens both without complaint and sees the same packets per
	// 5-tuple.
	our, their := tuples(t, ours), tuples(t, theirs)
	if tcpdumpLost {
		t.Logf("tcpdump dropped packets; checking that kflcap has at least what tcpdump has")
		for k, n := range their {
			if our[k] < n {
				t.Errorf("%s: kflcap has %d packets, tcpdump %d", k, our[k], n)
			}
		}
	} else if d := diffCounts(our, their); len(d) > 0 {
		t.Errorf("per-5-tuple packet counts differ (kflcap vs tcpdump):\n%s", strings.Join(d, "\n"))
	}
	burst := fmt.Sprintf("17 %s: > %s:9999", p.IPA, p.IPB)
	var burstCount int
	for k, n := range our {
		if strings.HasPrefix(k, "17 "+p.IPA+":") && strings.HasSuffix(k, " > "+p.IPB+":9999") {
			burstCount += n
		}
	}
	if burstCount != udpBurst {
		t.Errorf("UDP burst (%s): kflcap has %d packets, want %d", burst, burstCount, udpBurst)
	}
	icmp := 0
	for k, n := range our {
		if strings.HasPrefix(k, "1 ") {
			icmp += n
		}
	}
	if icmp != 10 {
		t.Errorf("ICMP: %d packets, want 5 requests + 5 replies", icmp)
	}
	// Byte for byte the same packets.
	ourBytes, theirBytes := packetBytes(t, ours), packetBytes(t, theirs)
	if tcpdumpLost {
		for k, n := range theirBytes {
			if ourBytes[k] < n {
				t.Errorf("a packet tcpdump has is missing from kflcap's file: %q", truncate(k, 80))
				break
			}
		}
	} else if d := diffCounts(ourBytes, theirBytes); len(d) > 0 {
		t.Errorf("%d packet contents differ between kflcap and tcpdump, e.g. %s", len(d), d[0])
	}

	// Timestamps near the wall clock, directions right.
	out := tshark(t, "-r", ours, "-Y", "icmp", "-T", "fields", "-E", "separator=,",
		"-e", "frame.time_epoch", "-e", "icmp.type", "-e", "frame.packet_flags_direction", "-e", "frame.interface_name")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, line := range lines {
		f := strings.Split(line, ",")
		sec, _ := strconv.ParseFloat(f[0], 64)
		ts := time.Unix(0, int64(sec*1e9))
		if ts.Before(began.Add(-time.Second)) || ts.After(ended.Add(time.Second)) {
			t.Errorf("packet time %v outside the traffic window [%v, %v] ± 1s", ts, began, ended)
		}
		wantDir := map[string]string{"8": "2", "0": "1"}[f[1]] // request out, reply in
		if dir, _ := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32); fmt.Sprint(dir) != wantDir {
			t.Errorf("ICMP type %s: direction flags %s, want %s (1 inbound, 2 outbound)", f[1], f[2], wantDir)
		}
		if f[3] != p.IfA {
			t.Errorf("interface name %q, want %q", f[3], p.IfA)
		}
	}
	assertNothingLeft(t, p.A, p.IfA)
}

func TestCaptureCrashLeftoversRemoved(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "tc")
	dir := t.TempDir()
	for _, backend := range []string{"tc", "tcx"} {
		t.Run(backend, func(t *testing.T) {
			firstOut := filepath.Join(dir, backend+"1.pcapng")
			first := start(t, kflcapBin, "capture", "--netns", p.A, "-i", p.IfA, "--backend", backend, "-w", firstOut)
			first.waitCapturing(t, firstOut)
			pinDir := fmt.Sprintf("/sys/fs/bpf/kflcap/capture-%d", first.cmd.Process.Pid)
			first.cmd.Process.Kill() // kill -9
			first.wait(t, 10*time.Second)
			if _, err := os.Stat(pinDir); err != nil {
				t.Fatalf("expected the killed run's pins in %s: %v", pinDir, err)
			}
			if backend == "tc" {
				out, _ := netnstest.Output(p.A, "tc", "filter", "show", "dev", p.IfA, "ingress")
				if !strings.Contains(out, fmt.Sprintf("kflcap:%d:in", first.cmd.Process.Pid)) {
					t.Fatalf("expected the killed run's filter to be left, got: %s", out)
				}
			}
			_, stderr, code := runKflcap(t, "capture", "--netns", p.A, "-i", p.IfA, "--backend", backend, "--duration", "500ms", "-w", filepath.Join(dir, backend+"2.pcapng"))
			if code != 0 {
				t.Fatalf("second run exited %d: %s", code, stderr)
			}
			if backend == "tc" && !strings.Contains(stderr, "removed tc filters left by a previous run") {
				t.Errorf("second run did not report removing leftovers: %s", stderr)
			}
			if !strings.Contains(stderr, "removed pins left by a previous run") {
				t.Errorf("second run did not report removing leftover pins: %s", stderr)
			}
			if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
				t.Errorf("killed run's pins still in %s", pinDir)
			}
			assertNothingLeft(t, p.A, p.IfA)
		})
	}
}

func TestCaptureBadInput(t *testing.T) {
	p := netnstest.NewPair(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown interface", []string{"-i", "nosuchif0"}, `unknown interface "nosuchif0"`},
		{"snaplen 0", []string{"-i", p.IfA, "-s", "0"}, "snaplen 0 out of range"},
		{"snaplen too big", []string{"-i", p.IfA, "-s", "300000"}, "snaplen 300000 out of range"},
		{"unwritable output", []string{"-i", p.IfA, "-w", "/nonexistent/dir/out.pcapng"}, "/nonexistent/dir/out.pcapng"},
		{"unsupported backend", []string{"-i", p.IfA, "--backend", "xdp"}, `unknown backend "xdp"`},
		{"bad format", []string{"-i", p.IfA, "--format", "erf"}, `unknown format "erf"`},
		{"unknown netns", []string{"--netns", "kflt-no-such-ns"}, "kflt-no-such-ns"},
		{"stray argument", []string{"-i", p.IfA, "port", "80"}, `unexpected argument "port"`},
		{"bad port", []string{"-i", p.IfA, "--port", "http"}, `"http" is not a port number`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"capture", "--netns", p.A, "--duration", "1s"}, tc.args...)
			_, stderr, code := runKflcap(t, args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not name the problem (%q)", stderr, tc.want)
			}
			assertNothingLeft(t, p.A, p.IfA)
		})
	}
}

func TestCaptureCountAndPcapFormat(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "ping", "tshark")
	out := filepath.Join(t.TempDir(), "c.pcap")
	cap := start(t, kflcapBin, "capture", "--netns", p.A, "-i", p.IfA, "-c", "4", "--format", "pcap", "--proto", "icmp", "-w", out)
	cap.waitCapturing(t, out)
	go exec.Command("ip", "netns", "exec", p.A, "ping", "-c", "10", "-i", "0.05", p.IPB).Run()
	if code := cap.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, cap.Stderr())
	}
	if !strings.Contains(cap.Stderr(), "4 packets captured") {
		t.Errorf("summary: %s", cap.Stderr())
	}
	if n := strings.Count(tshark(t, "-r", out, "-T", "fields", "-e", "icmp.type"), "\n"); n != 4 {
		t.Errorf("%s holds %d packets, want 4", out, n)
	}
	if enc := tshark(t, "-r", out, "-T", "fields", "-e", "frame.encap_type", "-c", "1"); strings.TrimSpace(enc) != "1" {
		t.Errorf("pcap link type %q, want Ethernet (1)", enc)
	}
}

// -w - streams pcapng to stdout (for `kflcap capture -w - | wireshark -k -i -`):
// the summary stays on stderr and the stream is a valid file.
func TestCaptureToStdout(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "ping", "tshark")
	cap := start(t, kflcapBin, "capture", "--netns", p.A, "-i", p.IfA, "-c", "6", "--proto", "icmp", "-w", "-")
	cap.waitCapturing(t, "-")
	go exec.Command("ip", "netns", "exec", p.A, "ping", "-c", "5", "-i", "0.05", p.IPB).Run()
	if code := cap.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, cap.Stderr())
	}
	out := filepath.Join(t.TempDir(), "stdout.pcapng")
	if err := os.WriteFile(out, []byte(cap.Stdout()), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(tshark(t, "-r", out, "-T", "fields", "-e", "icmp.type"), "\n"); n != 6 {
		t.Errorf("stdout stream holds %d packets, want 6", n)
	}
	if !strings.Contains(cap.Stderr(), "6 packets captured") {
		t.Errorf("summary not on stderr: %s", cap.Stderr())
	}
}

// capture --kfl writes whole selected streams: every TCP connection that
// carried a 404, from its SYN, and nothing else.
func TestCaptureKFLSelectsStreams(t *testing.T) {
	p := netnstest.NewPair(t)
	startServers(t, p)
	out := filepath.Join(t.TempDir(), "sel.pcapng")
	cap := start(t, kflcapBin, "capture", "--netns", p.A, "-i", p.IfA, "--kfl", "http and response.status == 404", "-w", out)
	cap.waitCapturing(t, out)
	for _, path := range []string{"index.html", "missing-1", "index.html", "missing-2", "index.html"} {
		netnstest.Output(p.A, "curl", "-sS", "-o", "/dev/null", "http://"+p.IPB+":8080/"+path)
	}
	netnstest.Exec(t, p.A, "ping", "-c", "2", "-i", "0.05", p.IPB)
	// The connections' last packets follow curl's exit; what is in the
	// ring when the capture stops is still written.
	netnstest.WaitTCPSettled(t, p.A, p.B)
	if code := cap.interrupt(t); code != 0 {
		t.Fatalf("exit %d: %s", code, cap.Stderr())
	}
	streams := tshark(t, "-r", out, "-T", "fields", "-E", "separator=,", "-e", "tcp.stream", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack", "-e", "http.response.code", "-e", "http.request.uri")
	first := map[string]string{}
	codes := map[string][]string{}
	var uris []string
	for _, l := range strings.Split(strings.TrimSpace(streams), "\n") {
		f := strings.Split(l, ",")
		if f[0] == "" {
			t.Errorf("a non-TCP packet was written: %s", l)
			continue
		}
		if _, ok := first[f[0]]; !ok {
			first[f[0]] = f[1] + f[2]
		}
		if f[3] != "" {
			codes[f[0]] = append(codes[f[0]], f[3])
		}
		if f[4] != "" {
			uris = append(uris, f[4])
		}
	}
	if len(first) != 2 {
		t.Fatalf("%d TCP streams written, want the 2 that carried 404s:\n%s", len(first), streams)
	}
	for s, flags := range first {
		if flags != "10" {
			t.Errorf("stream %s starts with syn,ack=%s, want the SYN (1,0)", s, flags)
		}
		if len(codes[s]) != 1 || codes[s][0] != "404" {
			t.Errorf("stream %s carried responses %v, want one 404", s, codes[s])
		}
	}
	sort.Strings(uris)
	if strings.Join(uris, " ") != "/missing-1 /missing-2" {
		t.Errorf("requests written: %v", uris)
	}
}

// bpftool sees the running capture's programs and maps by name, pinned
// under /sys/fs/bpf/kflcap/capture-PID/, and nothing of them after exit.
func TestBpftoolSeesCapture(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "bpftool")
	out := filepath.Join(t.TempDir(), "bpftool.pcapng")
	cap := start(t, kflcapBin, "capture", "--netns", p.A, "-i", p.IfA, "-w", out)
	cap.waitCapturing(t, out)
	dir := fmt.Sprintf("/sys/fs/bpf/kflcap/capture-%d", cap.cmd.Process.Pid)
	ids := pinnedProgIDs(t, bpftool, dir, "kflcap_tc_in", "kflcap_tc_eg", "kflcap_sock")
	for _, m := range []string{"kflcap_events", "kflcap_ifstats", "kflcap_pf_cfg", "kflcap_pf_port", "kflcap_pf_ip4", "kflcap_owner"} {
		out, err := bpftool("map", "show", "pinned", filepath.Join(dir, m))
		if err != nil || !strings.Contains(out, "name "+m) {
			t.Errorf("bpftool map show pinned %s: %v\n%s", m, err, out)
		}
	}
	if out, err := bpftool("map", "dump", "pinned", filepath.Join(dir, "kflcap_ifstats")); err != nil || !strings.Contains(out, `"delivered"`) {
		t.Errorf("bpftool map dump of the counters: %v\n%s", err, out)
	}
	if code := cap.interrupt(t); code != 0 {
		t.Fatalf("exit %d: %s", code, cap.Stderr())
	}
	checkUnloaded(t, ids)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after exit", dir)
	}
}
