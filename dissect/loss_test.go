package dissect_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kflcap/kflcap/dissect"
)

type rawPacket struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func loadPcap(t testing.TB, path string) ([]rawPacket, layers.LinkType) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []rawPacket
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, rawPacket{ci, data})
	}
	return out, r.LinkType()
}

func writePcap(t testing.TB, pkts []rawPacket, lt layers.LinkType) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriterNanos(f)
	w.WriteFileHeader(262144, lt)
	for _, p := range pkts {
		if err := w.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// exchanges are (method uri status) triples, without the stream, as a
// multiset in a sorted slice.
func exchanges(entries []*dissect.Entry) []string {
	var out []string
	for _, e := range entries {
		if e.HTTP != nil && e.HTTP.HasResponse {
			out = append(out, strings.Join([]string{e.Stream, e.HTTP.Request.Method, e.HTTP.Request.URL, itoa(e.HTTP.Response.Status)}, " "))
		}
	}
	slices.Sort(out)
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// isSubset reports whether every element of sub is in set (multisets).
func isSubset(sub, set []string) bool {
	left := slices.Clone(set)
	for _, s := range sub {
		i := slices.Index(left, s)
		if i < 0 {
			return false
		}
		left = slices.Delete(left, i, i+1)
	}
	return true
}

func tcpPayloadLen(p rawPacket) int {
	pk := gopacket.NewPacket(p.data, layers.LayerTypeEthernet, gopacket.Default)
	if tcp, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		return len(tcp.Payload)
	}
	return 0
}

// TestHTTPDuplicatesAndDisorder: duplicated and locally reordered packets
// yield exactly the exchanges of the clean capture.
func TestHTTPDuplicatesAndDisorder(t *testing.T) {
	pkts, lt := loadPcap(t, "testdata/http.pcap")
	clean, _ := dissectFile(t, "testdata/http.pcap", dissect.Config{})
	want := exchanges(clean)
	if len(want) < 15 {
		t.Fatalf("clean capture has %d exchanges", len(want))
	}
	var dup []rawPacket
	for _, p := range pkts {
		dup = append(dup, p, p)
	}
	got, st := dissectFile(t, writePcap(t, dup, lt), dissect.Config{})
	if g := exchanges(got); !slices.Equal(g, want) {
		t.Errorf("duplicated: got %q\nwant %q", g, want)
	}
	if st.Retransmissions == 0 {
		t.Error("duplicates were not counted as retransmissions")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		re := slices.Clone(pkts)
		// Swap random neighbours (and sometimes move a packet 3 ahead):
		// disorder as a multi-queue NIC or a merged capture makes it.
		for i := 0; i+1 < len(re); i++ {
			if rng.IntN(3) == 0 {
				j := min(i+1+rng.IntN(3), len(re)-1)
				re[i], re[j] = re[j], re[i]
			}
		}
		got, _ := dissectFile(t, writePcap(t, re, lt), dissect.Config{})
		if g := exchanges(got); !slices.Equal(g, want) {
			t.Errorf("reordered (round %d): got %d exchanges, want %d\nmissing: %q", round, len(g), len(want), missingOf(g, want))
		}
	}
}

func missingOf(got, want []string) []string {
	var m []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			m = append(m, w)
		}
	}
	return m
}

// TestHTTPLoss drops each data-carrying packet in turn: the exchanges kflcap
// still reports must all be real (no shifted pairs), and at most the one
// exchange that lost a packet may be missing.
func TestHTTPLoss(t *testing.T) {
	pkts, lt := loadPcap(t, "testdata/http.pcap")
	clean, _ := dissectFile(t, "testdata/http.pcap", dissect.Config{})
	want := exchanges(clean)
	dropped := 0
	for i, p := range pkts {
		if tcpPayloadLen(p) == 0 {
			continue
		}
		dropped++
		lossy := slices.Delete(slices.Clone(pkts), i, i+1)
		got, _ := dissectFile(t, writePcap(t, lossy, lt), dissect.Config{})
		g := exchanges(got)
		if !isSubset(g, want) {
			t.Errorf("packet %d dropped: wrong exchanges %q", i+1, missingOf(want, g))
			t.Logf("got %q", g)
		}
		// Pipelined requests share one segment: losing it loses all three.
		if len(want)-len(g) > 3 {
			t.Errorf("packet %d dropped: %d exchanges lost: %q", i+1, len(want)-len(g), missingOf(g, want))
		}
	}
	if dropped < 20 {
		t.Fatalf("only %d data packets", dropped)
	}
}

// TestHTTPMidStreamStart starts the capture at every packet of the
// keep-alive connection: the exchanges that begin after the cut are found.
func TestHTTPMidStreamStart(t *testing.T) {
	pkts, lt := loadPcap(t, "testdata/http.pcap")
	clean, _ := dissectFile(t, "testdata/http.pcap", dissect.Config{})
	for cut := 1; cut < 40; cut++ {
		got, _ := dissectFile(t, writePcap(t, pkts[cut:], lt), dissect.Config{})
		start := pkts[cut].ci.Timestamp.UnixMilli()
		var want, have []string
		for _, e := range clean {
			if e.HTTP != nil && e.HTTP.HasResponse && e.Timestamp > start {
				want = append(want, e.HTTP.Request.URL+" "+itoa(e.HTTP.Response.Status))
			}
		}
		var all []string
		for _, e := range clean {
			if e.HTTP != nil && e.HTTP.HasResponse {
				all = append(all, e.HTTP.Request.URL+" "+itoa(e.HTTP.Response.Status))
			}
		}
		for _, e := range got {
			if e.HTTP != nil && e.HTTP.HasResponse {
				have = append(have, e.HTTP.Request.URL+" "+itoa(e.HTTP.Response.Status))
			}
		}
		if !isSubset(want, have) {
			t.Errorf("cut at %d: missing %q", cut, missingOf(have, want))
		}
		if !isSubset(have, all) {
			t.Errorf("cut at %d: wrong exchanges %q", cut, missingOf(all, have))
		}
	}
}

// dnsAnswers are kflcap's answered DNS exchanges without the stream.
func dnsAnswers(entries []*dissect.Entry) []string {
	var out []string
	for _, s := range dnsTuples(entries) {
		f := strings.SplitN(s, " ", 3) // l4, stream, rest
		out = append(out, f[0]+" "+f[2])
	}
	slices.Sort(out)
	return out
}

// TestDNSLossAndDuplicates drops each packet of the DNS capture in turn
// (a lost query still leaves its answer, a lost answer an unanswered query)
// and duplicates all of them.
func TestDNSLossAndDuplicates(t *testing.T) {
	pkts, lt := loadPcap(t, "testdata/dns.pcap")
	clean, _ := dissectFile(t, "testdata/dns.pcap", dissect.Config{})
	want := dnsAnswers(clean)
	for i := range pkts {
		got, _ := dissectFile(t, writePcap(t, slices.Delete(slices.Clone(pkts), i, i+1), lt), dissect.Config{})
		g := dnsAnswers(got)
		if !isSubset(g, want) || len(want)-len(g) > 1 {
			t.Errorf("packet %d dropped: got %d answers of %d; wrong or extra: %q", i+1, len(g), len(want), missingOf(want, g))
		}
	}
	var dup []rawPacket
	for _, p := range pkts {
		dup = append(dup, p, p)
	}
	got, _ := dissectFile(t, writePcap(t, dup, lt), dissect.Config{})
	if g := slices.Compact(dnsAnswers(got)); !slices.Equal(g, slices.Compact(slices.Clone(want))) {
		t.Errorf("duplicated: %q\nwant %q", g, want)
	}
}
