package dissect_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// capture runs traffic while tcpdump records B's end of the pair and
// returns the pcap. With KFLCAP_UPDATE_TESTDATA=1 the capture is also saved
// as testdata/<name>.pcap, the seed of the offline tests and fuzzers.
func capture(t *testing.T, p *netnstest.Pair, name string, traffic func()) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".pcap")
	// -B: on a veth, with offloads on, libpcap sizes ring slots for the
	// whole snapshot (256 KiB), so its default 2 MiB buffer holds few
	// packets, and a burst while tcpdump waits for a CPU (go test runs
	// packages in parallel) loses some: tcpdump stopped during 50 pings
	// dropped 70 of their 100 packets, and none with 64 MiB.
	td := netnstest.StartTcpdump(t, p.B, p.IfB, out, "-B", "65536", "-s", "0")
	traffic()
	// The connections' last packets follow the clients' exit; then
	// tcpdump has them all once it has caught up.
	netnstest.WaitTCPSettled(t, p.A, p.B)
	td.Stop(t)
	if os.Getenv("KFLCAP_UPDATE_TESTDATA") == "1" {
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", name+".pcap"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// dissectFile returns the entries of a capture, dissected synchronously.
func dissectFile(t testing.TB, path string, cfg dissect.Config) ([]*dissect.Entry, dissect.Stats) {
	t.Helper()
	var entries []*dissect.Entry
	cfg.OnEntry = func(e *dissect.Entry, _ dissect.StreamRef) { entries = append(entries, e) }
	d := dissect.New(cfg)
	if err := collector.ReadFile(context.Background(), path, d.Feed, nil); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	d.Close()
	return entries, d.Stats()
}

// tshark returns the rows of `tshark -r path -Y filter -T fields -e ...`,
// fields separated by '|' and multiple values within a field by ','.
func tshark(t testing.TB, path, filter string, fields ...string) [][]string {
	t.Helper()
	return tsharkAgg(t, path, filter, ",", fields...)
}

// tsharkAgg is tshark with another separator of multiple values, for
// values that may hold commas.
func tsharkAgg(t testing.TB, path, filter, agg string, fields ...string) [][]string {
	t.Helper()
	netnstest.SkipShort(t, "tshark oracle")
	netnstest.RequireTool(t, "tshark")
	args := []string{"-n", "-r", path, "-Y", filter, "-T", "fields", "-E", "separator=|", "-E", "aggregator=" + agg, "-E", "occurrence=a",
		// Decode HTTP on the test ports, as kflcap does by content.
		"-d", "tcp.port==8080,http", "-d", "tcp.port==8443,tls", "-d", "udp.port==5353,dns"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			rows = append(rows, strings.Split(l, "|"))
		}
	}
	return rows
}

// streamRanks maps kflcap stream ids to tshark's stream indexes: both number
// streams in order of first appearance, tshark per transport protocol.
func streamRanks(entries []*dissect.Entry) map[uint64]int {
	byL4 := map[string][]uint64{}
	for _, e := range entries {
		if !slices.Contains(byL4[e.Protocol.Layer4], e.StreamID) {
			byL4[e.Protocol.Layer4] = append(byL4[e.Protocol.Layer4], e.StreamID)
		}
	}
	ranks := map[uint64]int{}
	for _, ids := range byL4 {
		slices.Sort(ids)
		for i, id := range ids {
			ranks[id] = i
		}
	}
	return ranks
}

// diffSets reports the difference of two string sets.
func diffSets(t testing.TB, what string, got, want []string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return
	}
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	t.Errorf("%s: kflcap and tshark differ (%d vs %d)\nmissing in kflcap: %q\nonly in kflcap: %q", what, len(got), len(want), missing, extra)
}

// httpTuples are kflcap's (stream, method, uri, status) for complete exchanges.
func httpTuples(entries []*dissect.Entry) []string {
	ranks := streamRanks(entries)
	var out []string
	for _, e := range entries {
		if e.HTTP == nil || !e.HTTP.HasResponse {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s %s %d", ranks[e.StreamID], e.HTTP.Request.Method, e.HTTP.Request.URL, e.HTTP.Response.Status))
	}
	return out
}

// tsharkHTTPTuples pairs tshark's requests and final (non-interim)
// responses per stream in order, as HTTP/1.x does. (tshark's own
// http.request_in leaves pipelined responses unpaired.)
func tsharkHTTPTuples(t testing.TB, path string) []string {
	reqs := map[string][]string{}
	for _, r := range tshark(t, path, "http.request", "tcp.stream", "http.request.method", "http.request.uri") {
		// Pipelined requests in one frame come as comma-joined lists.
		ms, us := strings.Split(r[1], ","), strings.Split(r[2], ",")
		for i := range ms {
			reqs[r[0]] = append(reqs[r[0]], r[0]+" "+ms[i]+" "+us[min(i, len(us)-1)])
		}
	}
	var out []string
	for _, r := range tshark(t, path, "http.response", "tcp.stream", "http.response.code") {
		for _, code := range strings.Split(r[1], ",") {
			if code < "200" && len(code) == 3 {
				continue
			}
			if len(reqs[r[0]]) == 0 {
				continue
			}
			out = append(out, reqs[r[0]][0]+" "+code)
			reqs[r[0]] = reqs[r[0]][1:]
		}
	}
	return out
}

// captureClean is capture on a fresh namespace pair, repeated (up to 3
// times) while the capture itself lost packets: tcpdump on a loaded machine
// sometimes misses one, and a differential test is about dissection, not
// about the capture. Loss has tests of its own (loss_test.go, the cut
// captures).
func captureClean(t *testing.T, name string, traffic func(p *netnstest.Pair)) (string, []*dissect.Entry, dissect.Stats) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p := netnstest.NewPair(t)
		path := capture(t, p, name, func() { traffic(p) })
		entries, st := dissectFile(t, path, dissect.Config{})
		if st.ReassemblyGaps == 0 || attempt == 3 {
			return path, entries, st
		}
		t.Logf("attempt %d: the capture lost packets (%d gaps); again", attempt, st.ReassemblyGaps)
	}
}
