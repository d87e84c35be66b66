package tests

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/netnstest"
)

// agentEnv is an agent running inside namespace A of a pair, with an HTTP
// status server and a DNS server (dnsmasq) in namespace B.
type agentEnv struct {
	p       *netnstest.Pair
	dir     string // spool and local dirs live here
	local   string
	agent   *proc
	tcpdump *netnstest.Tcpdump
	oracle  string // tcpdump's capture of the same interface
	cfgPath string
}

func startServersForAgent(t *testing.T, p *netnstest.Pair) {
	t.Helper()
	netnstest.RequireTool(t, "python3", "curl", "dig", "dnsmasq", "tshark", "tcpdump")
	netnstest.Start(t, p.B, "python3", "testdata/statusserver.py", p.IPB, "8080")
	netnstest.Start(t, p.B, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--listen-address="+p.IPB, "--bind-interfaces",
		"--address=/shop.example.test/10.99.7.7", "--address=/api.example.test/10.99.7.8", "--pid-file=")
	netnstest.WaitListening(t, p.B, "tcp", 8080)
	netnstest.WaitListening(t, p.B, "udp", 53)
}

func writeAgentConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`node: {name: test-node, ip: 10.99.0.1, cluster: e2e}
capture: {interfaces: [any]}
kflPcapS3:
  kflArr: ["http and response.status == 500", "dns"]
%s
spool: {dir: %s/spool}
local: {dir: %s/repos}
`, extra, dir, dir)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAgent runs the agent inside namespace A (ip netns exec), and
// tcpdump beside it as the oracle.
func startAgent(t *testing.T, p *netnstest.Pair, dir, cfgPath string) *agentEnv {
	t.Helper()
	env := &agentEnv{p: p, dir: dir, local: filepath.Join(dir, "repos"), cfgPath: cfgPath, oracle: filepath.Join(dir, "oracle.pcap")}
	env.tcpdump = netnstest.StartTcpdump(t, p.A, p.IfA, env.oracle, "-s", "65535", "-B", "16384")
	env.agent = start(t, "ip", "netns", "exec", p.A, kflcapBin, "agent", "--config", cfgPath)
	waitAgentUp(t, env.agent, p.A, metricsAddr)
	return env
}

// stop ends the agent with SIGTERM (it must exit 0 within the grace
// period), once the traffic's connections have finished closing (their
// last packets are then in the agent's ring), and then the oracle, once
// it has written all it saw.
func (env *agentEnv) stop(t *testing.T) {
	t.Helper()
	netnstest.WaitTCPSettled(t, env.p.A, env.p.B)
	env.agent.cmd.Process.Signal(syscall.SIGTERM)
	if code := env.agent.wait(t, 25*time.Second); code != 0 {
		t.Fatalf("agent exited %d:\n%s", code, env.agent.Stderr())
	}
	env.tcpdump.Stop(t)
}

// agentStatus is the part of the agent's /status the tests read.
type agentStatus struct {
	Interfaces []struct {
		Name    string `json:"name"`
		Backend string `json:"backend"`
	} `json:"interfaces"`
	Jobs []struct {
		Query string `json:"kfl_query"`
	} `json:"jobs"`
	Reloads struct {
		OK        uint64 `json:"ok"`
		Failed    uint64 `json:"failed"`
		LastError string `json:"last_error"`
	} `json:"reloads"`
}

// status reads the agent's /status from inside ns (addr: its
// metrics.listen).
func status(ns, addr string) (agentStatus, error) {
	var st agentStatus
	code, body, err := netnstest.HTTPGet(ns, "http://"+addr+"/status")
	if err != nil {
		return st, err
	}
	if code != 200 {
		return st, fmt.Errorf("/status: %d %s", code, body)
	}
	return st, json.Unmarshal([]byte(body), &st)
}

func (st agentStatus) attached(name string) bool {
	for _, ifc := range st.Interfaces {
		if ifc.Name == name {
			return true
		}
	}
	return false
}

func (st agentStatus) queries() []string {
	var q []string
	for _, j := range st.Jobs {
		q = append(q, j.Query)
	}
	return q
}

// waitAgentUp waits until the agent a, started in ns, captures: its
// /status lists an attached interface. (Its /readyz says more, that every
// sink takes archives, which some tests keep false on purpose.) It fails at
// once when the agent exits.
func waitAgentUp(t *testing.T, a *proc, ns, addr string) {
	t.Helper()
	waitStatus(t, a, ns, addr, 30*time.Second, func(st agentStatus) error {
		if len(st.Interfaces) == 0 {
			return errors.New("no interface attached yet")
		}
		return nil
	})
}

// waitStatus waits until the agent's /status satisfies cond; it fails at
// once when the agent exits.
func waitStatus(t *testing.T, a *proc, ns, addr string, timeout time.Duration, cond func(agentStatus) error) {
	t.Helper()
	netnstest.WaitFor(t, timeout, func() error {
		if a.exited() {
			t.Fatalf("the agent exited (%v):\n%s", a.err, a.Stderr())
		}
		st, err := status(ns, addr)
		if err != nil {
			return fmt.Errorf("agent in %s: %v", ns, err)
		}
		return cond(st)
	})
}

// waitFiles waits until the glob pattern matches at least n files and
// returns them.
func waitFiles(t *testing.T, timeout time.Duration, pattern string, n int) []string {
	t.Helper()
	var m []string
	netnstest.WaitFor(t, timeout, func() error {
		if m, _ = filepath.Glob(pattern); len(m) < n {
			return fmt.Errorf("%d files match %s, want %d", len(m), pattern, n)
		}
		return nil
	})
	return m
}

// repo is one extracted repository.
type repo struct {
	name    string
	files   map[string]string // member name → extracted path
	content map[string]any
	history map[string]map[string]map[string]string
}

func readRepos(t *testing.T, dir string) []repo {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz"))
	sort.Strings(names)
	var out []repo
	for _, n := range names {
		r := repo{name: filepath.Base(n), files: map[string]string{}}
		xdir := t.TempDir()
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(xdir, h.Name)
			os.WriteFile(p, b, 0o644)
			r.files[h.Name] = p
			switch h.Name {
			case "content.json":
				if err := json.Unmarshal(b, &r.content); err != nil {
					t.Fatalf("%s content.json: %v", n, err)
				}
			case "name_resolution_history.json":
				if err := json.Unmarshal(b, &r.history); err != nil {
					t.Fatalf("%s name_resolution_history.json: %v", n, err)
				}
			}
		}
		f.Close()
		out = append(out, r)
	}
	return out
}

func (r repo) streams() []string {
	var s []string
	for _, v := range r.content["l4_streams"].([]any) {
		s = append(s, v.(string))
	}
	return s
}

// checkShape checks content.json's wrapper fields and that the members are
// exactly the streams, the merged pcap and the two JSON files.
func checkShape(t *testing.T, r repo, wantIndex int, wantQuery string) {
	t.Helper()
	if got := r.content["kfl_index"]; got != float64(wantIndex) {
		t.Errorf("%s: kfl_index %v, want %d", r.name, got, wantIndex)
	}
	if got := r.content["kfl_query"]; got != wantQuery {
		t.Errorf("%s: kfl_query %v", r.name, got)
	}
	ts, err := time.Parse("Mon, 02 Jan 2006 15:04:05 GMT", fmt.Sprint(r.content["time"]))
	if err != nil {
		t.Errorf("%s: time %q is not RFC 1123 GMT: %v", r.name, r.content["time"], err)
	}
	merged := fmt.Sprint(r.content["pcap_file_name"])
	if merged != fmt.Sprintf("%d.pcap", ts.Unix()) {
		t.Errorf("%s: pcap_file_name %s does not match time %v", r.name, merged, ts)
	}
	wantName := fmt.Sprintf("kfl_%d_kflcap_%d.tar.gz", wantIndex, ts.Unix())
	if r.name != wantName {
		t.Errorf("archive name %s, want %s", r.name, wantName)
	}
	want := map[string]bool{"content.json": true, "name_resolution_history.json": true, merged: true}
	for _, s := range r.streams() {
		want[s] = true
		if len(s) != len("000000000001_tcp.pcap") || !(strings.HasSuffix(s, "_tcp.pcap") || strings.HasSuffix(s, "_udp.pcap")) {
			t.Errorf("%s: stream name %q", r.name, s)
		}
	}
	for m := range r.files {
		if !want[m] {
			t.Errorf("%s: unexpected member %s", r.name, m)
		}
		delete(want, m)
	}
	for m := range want {
		t.Errorf("%s: missing member %s", r.name, m)
	}
}

// flows returns, per client port, the number of packets of the TCP or UDP
// conversations with server port svc in a pcap, as tshark sees them.
func flows(t *testing.T, file, proto string, svc int) map[string]int {
	t.Helper()
	out := tshark(t, "-r", file, "-Y", fmt.Sprintf("%s.port == %d", proto, svc), "-T", "fields", "-e", proto+".srcport", "-e", proto+".dstport")
	m := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "\t")
		client := f[0]
		if f[0] == fmt.Sprint(svc) {
			client = f[1]
		}
		m[client]++
	}
	return m
}

func TestAgentJobs(t *testing.T) {
	p := netnstest.NewPair(t)
	startServersForAgent(t, p)
	dir := t.TempDir()
	cfg := writeAgentConfig(t, dir, "  maxDuration: 3s\n  verbose: true")
	env := startAgent(t, p, dir, cfg)

	url := "http://" + p.IPB + ":8080"
	// Distinct connections: one 500, one 200. Shared keep-alive
	// connections: 200 then 500 (selected whole), 200 and 404 (not).
	curl := func(paths ...string) {
		args := []string{"-sS", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null"}
		for _, p := range paths {
			args = append(args, url+p)
		}
		netnstest.Exec(t, p.A, "curl", args...)
	}
	curl("/status/500")
	curl("/status/200")
	curl("/status/200", "/status/500", "/status/200")
	curl("/status/200", "/status/404")
	for _, name := range []string{"shop.example.test", "api.example.test", "nothing.example.test"} {
		netnstest.Exec(t, p.A, "dig", "+tries=1", "+time=2", "@"+p.IPB, name)
	}
	netnstest.Exec(t, p.A, "dig", "+tcp", "+tries=1", "+time=2", "@"+p.IPB, "shop.example.test")

	// The repositories seal on time (3 s) while the agent runs.
	waitFiles(t, 15*time.Second, filepath.Join(env.local, "*.tar.gz"), 2)
	env.stop(t)
	repos := readRepos(t, env.local)

	// The oracle: tcpdump's packets per connection.
	httpOracle := flows(t, env.oracle, "tcp", 8080)
	dnsUDP := flows(t, env.oracle, "udp", 53)
	dnsTCP := flows(t, env.oracle, "tcp", 53)
	// Which connections carried a 500, per tshark.
	with500 := map[string]bool{}
	out := tshark(t, "-r", env.oracle, "-Y", "http.response.code == 500", "-T", "fields", "-e", "tcp.dstport")
	for _, port := range strings.Fields(out) {
		with500[port] = true
	}
	if len(with500) != 2 || len(httpOracle) != 4 {
		t.Fatalf("oracle: %d connections, %d with a 500; want 4 and 2", len(httpOracle), len(with500))
	}

	gotHTTP := map[string]int{}
	gotDNSUDP, gotDNSTCP := map[string]int{}, map[string]int{}
	for _, r := range repos {
		idx := int(r.content["kfl_index"].(float64))
		checkShape(t, r, idx, []string{"http and response.status == 500", "dns"}[idx])
		sum := 0
		for _, s := range r.streams() {
			f := r.files[s]
			if idx == 0 {
				for port, n := range flows(t, f, "tcp", 8080) {
					gotHTTP[port] += n
				}
				first := tshark(t, "-r", f, "-c", "1", "-T", "fields", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack")
				if strings.TrimSpace(first) != "1\t0" {
					t.Errorf("%s %s does not start with the SYN: %q", r.name, s, first)
				}
			} else {
				for port, n := range flows(t, f, "udp", 53) {
					gotDNSUDP[port] += n
				}
				for port, n := range flows(t, f, "tcp", 53) {
					gotDNSTCP[port] += n
				}
			}
			sum += strings.Count(tshark(t, "-r", f, "-T", "fields", "-e", "frame.number"), "\n")
		}
		// The merged pcap is the union, in time order.
		merged := r.files[fmt.Sprint(r.content["pcap_file_name"])]
		times := strings.Fields(tshark(t, "-r", merged, "-T", "fields", "-e", "frame.time_epoch"))
		if len(times) != sum {
			t.Errorf("%s: merged pcap has %d packets, streams %d", r.name, len(times), sum)
		}
		if !sort.SliceIsSorted(times, func(i, j int) bool { return times[i] < times[j] }) {
			t.Errorf("%s: merged pcap not in time order", r.name)
		}
	}
	for port, n := range httpOracle {
		want := 0
		if with500[port] {
			want = n
		}
		if gotHTTP[port] != want {
			t.Errorf("HTTP connection from port %s: %d packets in job 0's repositories, want %d (500: %v)", port, gotHTTP[port], want, with500[port])
		}
	}
	if fmt.Sprint(gotDNSUDP) != fmt.Sprint(dnsUDP) || fmt.Sprint(gotDNSTCP) != fmt.Sprint(dnsTCP) {
		t.Errorf("DNS flows in job 1's repositories: udp %v tcp %v; tcpdump saw udp %v tcp %v", gotDNSUDP, gotDNSTCP, dnsUDP, dnsTCP)
	}
	if len(dnsUDP) != 3 || len(dnsTCP) != 1 {
		t.Errorf("oracle DNS flows: udp %v tcp %v, want 3 and 1", dnsUDP, dnsTCP)
	}

	// Names learnt from DNS answers are in the history.
	found := false
	for _, r := range repos {
		for _, m := range r.history {
			if m["10.99.7.7"]["FullAddress"] == "shop.example.test" {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no repository's name_resolution_history.json maps 10.99.7.7 to shop.example.test")
	}

	// The progress log lists every archive once.
	var log []map[string]any
	b, err := os.ReadFile(filepath.Join(env.local, "progress_log.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &log); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range log {
		seen[fmt.Sprint(e["file"])]++
		if !strings.HasPrefix(fmt.Sprint(e["s3_url"]), "file:///") {
			t.Errorf("progress entry url %v", e["s3_url"])
		}
	}
	for _, r := range repos {
		if seen[r.name] != 1 {
			t.Errorf("%s appears %d times in the progress log", r.name, seen[r.name])
		}
	}
	if len(log) != len(repos) {
		t.Errorf("progress log has %d entries for %d archives", len(log), len(repos))
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "spool", "*.partial")); len(ents) > 0 {
		t.Errorf("partial repositories left: %v", ents)
	}
}

// maxL4Streams: 3 seals a repository when a fourth stream comes: seven DNS
// flows make repositories of 3, 3 and 1 streams.
func TestAgentMaxL4Streams(t *testing.T) {
	p := netnstest.NewPair(t)
	startServersForAgent(t, p)
	dir := t.TempDir()
	cfg := writeAgentConfig(t, dir, "  maxL4Streams: 3\n  maxMinutes: 60\n  verbose: true")
	env := startAgent(t, p, dir, cfg)
	for i := range 7 {
		netnstest.Exec(t, p.A, "dig", "+tries=1", "+time=2", "@"+p.IPB, fmt.Sprintf("q%d.shop.example.test", i))
		// One selection at a time, in order.
		needMetric(t, 10*time.Second, p.A, metricsAddr, float64(i+1), "kflcap_kfl_matches_total", `job="1"`)
	}
	env.stop(t)
	var sizes []int
	total := 0
	for _, r := range readRepos(t, env.local) {
		checkShape(t, r, 1, "dns")
		sizes = append(sizes, len(r.streams()))
		total += len(r.streams())
	}
	if fmt.Sprint(sizes) != "[3 3 1]" {
		t.Errorf("repository stream counts %v, want [3 3 1]", sizes)
	}
	if total != 7 {
		t.Errorf("%d streams in all, want 7", total)
	}
}

// Bad configuration: exit 2, a message naming the key (and for a query, the
// position), nothing attached.
func TestAgentBadConfig(t *testing.T) {
	p := netnstest.NewPair(t)
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	os.MkdirAll(ro, 0o500)
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "kflPcapS3: {kflArr: [dns], maxMinuts: 3}\n", "kflPcapS3.maxMinuts (line 1): unknown key maxMinuts"},
		{"invalid query", "kflPcapS3:\n  kflArr: [dns, \"http and response.stauts == 500\"]\n", "kflPcapS3.kflArr[1]: kfl: 1:10: unknown field \"response.stauts\""},
		{"negative maxMinutes", "kflPcapS3: {kflArr: [dns], maxMinutes: -5}\n", "kflPcapS3.maxMinutes: -5"},
		{"unwritable spool", fmt.Sprintf("kflPcapS3: {kflArr: [dns]}\nspool: {dir: %s/file/spool}\n", dir), "spool.dir"},
		{"unknown interface", "kflPcapS3: {kflArr: [dns]}\ncapture: {interfaces: [nosuch0]}\n", `capture.interfaces: unknown interface "nosuch0"`},
		{"wrong type", "kflPcapS3: {kflArr: [dns], maxL4Streams: many}\n", "kflPcapS3.maxL4Streams (line 1)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "c.yaml")
			os.WriteFile(path, []byte(tc.yaml+fmt.Sprintf("local: {dir: %s/repos}\n", dir)), 0o644)
			if !strings.Contains(tc.yaml, "spool:") {
				os.WriteFile(path, []byte(tc.yaml+fmt.Sprintf("local: {dir: %s/repos}\nspool: {dir: %s/spool}\n", dir, dir)), 0o644)
			}
			out, err := netnstest.Output(p.A, kflcapBin, "agent", "--config", path)
			code := -1
			if ee, ok := err.(interface{ ExitCode() int }); ok {
				code = ee.ExitCode()
			} else if err == nil {
				code = 0
			}
			if code != 2 {
				t.Errorf("exit %d, want 2:\n%s", code, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("message does not name the problem %q:\n%s", tc.want, out)
			}
			if strings.Contains(tc.name, "query") && !strings.Contains(out, "         ^") {
				t.Errorf("no caret under the error position:\n%s", out)
			}
			assertNothingLeft(t, p.A, p.IfA)
		})
	}
}

// kill -9 in the middle of heavy traffic and frequent seals, then restart:
// every archive sealed before the crash is delivered exactly once, every
// delivered archive is readable, and no partial file survives.
func TestAgentCrashRecovery(t *testing.T) {
	p := netnstest.NewPair(t)
	startServersForAgent(t, p)
	dir := t.TempDir()
	cfg := writeAgentConfig(t, dir, "  maxDuration: 700ms")
	os.MkdirAll(filepath.Join(dir, "repos"), 0o755)
	outbox := filepath.Join(dir, "spool", "outbox")

	first := start(t, "ip", "netns", "exec", p.A, kflcapBin, "agent", "--config", cfg)
	waitAgentUp(t, first, p.A, metricsAddr)
	// The local sink fails while the first agent runs (a file stands where
	// its directory should be), so sealed archives pile up in the outbox.
	local := filepath.Join(dir, "repos")
	if err := os.Rename(local, local+".away"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(local, nil, 0o644)
	load := netnstest.Start(t, p.A, "python3", "testdata/dnsload.py", p.IPB, "8")
	// Kill once archives wait in the outbox, in the middle of the load and
	// of further seals (or after 6 s, whatever waits then).
	netnstest.Poll(6*time.Second, func() error {
		if ready, _ := filepath.Glob(filepath.Join(outbox, "*.tar.gz")); len(ready) < 2 {
			return errors.New("fewer than 2 archives in the outbox")
		}
		return nil
	})
	first.cmd.Process.Kill()
	first.wait(t, 10*time.Second)
	// What was sealed but not yet delivered at the crash.
	pending, _ := filepath.Glob(filepath.Join(outbox, "*.tar.gz"))
	load.Stop()
	if len(pending) == 0 {
		t.Fatalf("no archive waited in the outbox at the crash; first run:\n%s", first.Stderr())
	}
	t.Logf("at the crash: %d archives waiting in the outbox", len(pending))
	os.Remove(local)
	os.Rename(local+".away", local)

	second := start(t, "ip", "netns", "exec", p.A, kflcapBin, "agent", "--config", cfg)
	waitAgentUp(t, second, p.A, metricsAddr)
	// The restarted agent delivers what waited.
	netnstest.WaitFor(t, 30*time.Second, func() error {
		for _, pth := range pending {
			if _, err := os.Stat(filepath.Join(local, filepath.Base(pth))); err != nil {
				return fmt.Errorf("%s not delivered after the restart", filepath.Base(pth))
			}
		}
		return nil
	})
	second.cmd.Process.Signal(syscall.SIGTERM)
	if code := second.wait(t, 25*time.Second); code != 0 {
		t.Fatalf("restarted agent exited %d:\n%s", code, second.Stderr())
	}

	repos := readRepos(t, local) // fails the test on any unreadable archive
	if len(repos) == 0 {
		t.Fatal("no repositories delivered")
	}
	have := map[string]bool{}
	for _, r := range repos {
		have[r.name] = true
		checkShape(t, r, int(r.content["kfl_index"].(float64)), []string{"http and response.status == 500", "dns"}[int(r.content["kfl_index"].(float64))])
	}
	for _, pth := range pending {
		if !have[filepath.Base(pth)] {
			t.Errorf("%s was sealed before the crash but not delivered after the restart", filepath.Base(pth))
		}
	}
	var log []map[string]any
	b, _ := os.ReadFile(filepath.Join(local, "progress_log.json"))
	if err := json.Unmarshal(b, &log); err != nil {
		t.Fatalf("progress log: %v", err)
	}
	count := map[string]int{}
	for _, e := range log {
		count[fmt.Sprint(e["file"])]++
	}
	for name := range have {
		if count[name] != 1 {
			t.Errorf("%s logged %d times", name, count[name])
		}
	}
	if len(log) != len(repos) {
		t.Errorf("%d progress entries for %d archives", len(log), len(repos))
	}
	for _, pattern := range []string{"spool/*.partial", "spool/outbox/*", "repos/*.tmp", "repos/*.partial"} {
		if left, _ := filepath.Glob(filepath.Join(dir, pattern)); len(left) > 0 {
			t.Errorf("left behind after recovery (%s): %v", pattern, left)
		}
	}
}

// A full spool stops new selections, counted, instead of filling the disk;
// nothing already captured is lost.
func TestAgentSpoolFull(t *testing.T) {
	p := netnstest.NewPair(t)
	startServersForAgent(t, p)
	dir := t.TempDir()
	cfg := writeAgentConfig(t, dir, "  maxMinutes: 60")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "spool: {dir: ", "spool: {maxBytes: 600, dir: ", 1)), 0o644)
	env := startAgent(t, p, dir, cfg)
	for i := range 6 {
		netnstest.Exec(t, p.A, "dig", "+tries=1", "+time=2", "@"+p.IPB, fmt.Sprintf("s%d.shop.example.test", i))
		// One flow at a time: its entry (and the spool's verdict) before
		// the next.
		needMetric(t, 10*time.Second, p.A, metricsAddr, float64(i+1), "kflcap_entries_total", `protocol="dns"`)
	}
	metrics := scrape(t, p.A, metricsAddr)
	refused := metricValue(t, metrics, "kflcap_userspace_drops_total", `stage="spool_full"`)
	kept := metricValue(t, metrics, "kflcap_kfl_matches_total", `job="1"`)
	env.stop(t)
	if refused == 0 || kept == 0 || refused+kept != 6 {
		t.Fatalf("6 DNS flows: %v kept, %v refused for a full spool; want some of each, 6 in all", kept, refused)
	}
	if !strings.Contains(env.agent.Stderr(), "spool full: stream not kept") {
		t.Errorf("no log line for the refused streams")
	}
	streams := 0
	for _, r := range readRepos(t, env.local) {
		streams += len(r.streams())
	}
	if float64(streams) != kept {
		t.Errorf("repositories hold %d streams, %v were kept", streams, kept)
	}
}

// SIGHUP swaps the jobs without reattaching: a query that selected nothing
// is replaced by "dns", the kernel prefilter follows (with the API off the
// jobs' pushdown is the prefilter: port 9999 first, so DNS is not even
// copied), and the next DNS flows land in the new job's repository.
func TestAgentReload(t *testing.T) {
	p := netnstest.NewPair(t)
	startServersForAgent(t, p)
	dir := t.TempDir()
	write := func(query string) string {
		cfg := writeAgentConfig(t, dir, "  maxMinutes: 60")
		b, _ := os.ReadFile(cfg)
		text := strings.Replace(string(b), `kflArr: ["http and response.status == 500", "dns"]`, fmt.Sprintf("kflArr: [%q]", query), 1)
		text += "api: {listen: \"\"}\n"
		os.WriteFile(cfg, []byte(text), 0o644)
		return cfg
	}
	cfg := write("udp and dst.port == 9999")
	env := startAgent(t, p, dir, cfg)
	dig := func(name string) { netnstest.Exec(t, p.A, "dig", "+tries=1", "+time=2", "@"+p.IPB, name) }
	jobs := func(want ...string) func(agentStatus) error {
		return func(st agentStatus) error {
			if got := st.queries(); !slices.Equal(got, want) {
				return fmt.Errorf("jobs %q, want %q", got, want)
			}
			return nil
		}
	}

	dig("before.shop.example.test")
	m := scrape(t, p.A, metricsAddr)
	if v := metricValue(t, m, "kflcap_packets_prefiltered_total", `interface="`+p.IfA+`"`, `direction="egress"`); v < 1 {
		t.Errorf("the DNS query was not prefiltered out in the kernel (%v)", v)
	}

	write("dns")
	env.agent.cmd.Process.Signal(syscall.SIGHUP)
	waitStatus(t, env.agent, p.A, metricsAddr, 10*time.Second, jobs("dns"))
	for i := range 3 {
		dig(fmt.Sprintf("after%d.shop.example.test", i))
	}
	if v := waitMetric(t, p.A, 3, "kflcap_kfl_matches_total", `job="0"`, `query="dns"`); v != 3 {
		t.Errorf("the reloaded job selected %v streams, want the 3 DNS flows after the reload", v)
	}

	// An edited file is picked up without a signal (a ConfigMap update
	// swaps the mounted file, as here: a new file renamed over it). The
	// unchanged job keeps its open repository.
	b, _ := os.ReadFile(cfg)
	next := strings.Replace(string(b), `kflArr: ["dns"]`, `kflArr: ["dns", "udp and dst.port == 9999"]`, 1)
	os.WriteFile(cfg+".new", []byte(next), 0o644)
	os.Rename(cfg+".new", cfg)
	waitStatus(t, env.agent, p.A, metricsAddr, 10*time.Second, jobs("dns", "udp and dst.port == 9999"))
	env.stop(t)
	// The log, complete now that the agent has exited, tells how.
	log := env.agent.Stderr()
	if !strings.Contains(log, "msg=\"configuration file changed: reloading\"") || !strings.Contains(log, "msg=reloaded jobs=2 kept=1") {
		t.Errorf("the file reload did not add the job and keep the first:\n%s", log)
	}
	if before, _, _ := strings.Cut(log, "msg=reloaded"); strings.Count(log, "tcx") != strings.Count(before, "tcx") {
		t.Errorf("the reload reattached:\n%s", log)
	}
	repos := readRepos(t, env.local)
	if len(repos) != 1 || repos[0].content["kfl_query"] != "dns" || len(repos[0].streams()) != 3 {
		t.Fatalf("want one repository of job 0 (dns) with the 3 flows after the reload, got %d", len(repos))
	}
}

// A routed packet crosses two captured interfaces of the agent's
// namespace; it enters its stream once, and the second sighting is counted.
func TestAgentDuplicatesAcrossInterfaces(t *testing.T) {
	p := netnstest.NewPair(t)
	startServersForAgent(t, p)
	// Namespace C reaches B through A, which routes: every DNS packet
	// crosses A's interface to C and A's interface to B.
	c := p.A[:len(p.A)-2] + "-c"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", c).Run() })
	for _, args := range [][]string{
		{"netns", "add", c},
		{"link", "add", "kfr" + c[5:11], "netns", p.A, "type", "veth", "peer", "name", "kfc", "netns", c},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	rIf := "kfr" + c[5:11]
	netnstest.Exec(t, p.A, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	netnstest.Exec(t, p.A, "ip", "addr", "add", "10.98.0.1/30", "dev", rIf)
	netnstest.Exec(t, p.A, "ip", "link", "set", rIf, "up")
	netnstest.Exec(t, c, "ip", "addr", "add", "10.98.0.2/30", "dev", "kfc")
	netnstest.Exec(t, c, "ip", "link", "set", "kfc", "up")
	netnstest.Exec(t, c, "ip", "link", "set", "lo", "up")
	netnstest.Exec(t, c, "ip", "route", "add", "default", "via", "10.98.0.1")
	netnstest.Exec(t, p.B, "ip", "route", "add", "10.98.0.0/30", "via", p.IPA)

	dir := t.TempDir()
	cfg := writeAgentConfig(t, dir, "  maxMinutes: 60")
	env := startAgent(t, p, dir, cfg)
	for i := range 3 {
		netnstest.Exec(t, c, "dig", "+tries=1", "+time=2", "@"+p.IPB, fmt.Sprintf("r%d.shop.example.test", i))
	}
	dups := waitMetric(t, p.A, 6, "kflcap_duplicate_packets_total")
	env.stop(t)
	if dups != 6 {
		t.Errorf("%v duplicates counted, want 6 (3 queries and 3 answers, each seen on both interfaces)", dups)
	}
	total := 0
	for _, r := range readRepos(t, env.local) {
		for _, s := range r.streams() {
			n := strings.Count(tshark(t, "-r", r.files[s], "-T", "fields", "-e", "frame.number"), "\n")
			if n != 2 {
				t.Errorf("%s %s holds %d packets, want the query and its answer once each", r.name, s, n)
			}
			total++
		}
	}
	if total != 3 {
		t.Errorf("%d DNS streams kept, want 3", total)
	}
}
