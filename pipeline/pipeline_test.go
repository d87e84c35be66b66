package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
	"github.com/kflcap/kflcap/pipeline"
)

const (
	httpPcap = "../dissect/testdata/http.pcap"
	dnsPcap  = "../dissect/testdata/dns.pcap"
)

// retain keeps streams' packets until a match selects them, as read -w
// and capture --kfl do: without it a sink gets only the packets after the
// match.
var retain = dissect.Config{StreamRetainBytes: 1 << 20}

// streamSink counts the packets it gets per stream and the streams ended.
type streamSink struct {
	mu      sync.Mutex
	packets map[string]int
	ended   map[string]bool
}

func newStreamSink() *streamSink {
	return &streamSink{packets: map[string]int{}, ended: map[string]bool{}}
}

func (s *streamSink) StreamPacket(st dissect.StreamInfo, _ packet.Packet) {
	s.mu.Lock()
	s.packets[st.Name]++
	s.mu.Unlock()
}

func (s *streamSink) StreamEnd(st dissect.StreamInfo) {
	s.mu.Lock()
	s.ended[st.Name] = true
	s.mu.Unlock()
}

func (s *streamSink) total() int {
	n := 0
	for _, c := range s.packets {
		n += c
	}
	return n
}

// entries collects the entries an OnMatch or OnEntry sees.
type entries struct {
	mu   sync.Mutex
	list []*dissect.Entry
}

func (c *entries) add(e *dissect.Entry) {
	c.mu.Lock()
	c.list = append(c.list, e)
	c.mu.Unlock()
}

func (c *entries) streams() map[string]bool {
	m := map[string]bool{}
	for _, e := range c.list {
		m[e.Stream] = true
	}
	return m
}

func compile(t *testing.T, src string) *kfl.Query {
	t.Helper()
	q, err := kfl.Compile(src)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return q
}

// feed reads path into p and closes it.
func feed(t *testing.T, p *pipeline.Pipeline, path string) {
	t.Helper()
	err := collector.ReadFile(context.Background(), path, func(pkt packet.Packet) error { return p.Feed(&pkt) }, nil)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	p.Close()
}

// l4Packets counts the TCP and UDP packets of a pcap with gopacket alone:
// an oracle for what selecting every stream writes.
func l4Packets(t *testing.T, path string) int {
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
	n := 0
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return n
		}
		pkt := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		if pkt.Layer(layers.LayerTypeTCP) != nil || pkt.Layer(layers.LayerTypeUDP) != nil {
			n++
		}
	}
}

// reference selects every stream of path and returns the packets per stream.
func reference(t *testing.T, path string) map[string]int {
	t.Helper()
	sink := newStreamSink()
	feed(t, pipeline.New(pipeline.Config{Dissect: retain, Selections: []pipeline.Selection{{Sink: sink}}}), path)
	return sink.packets
}

// TestNilQuerySelectsEverything: without a query every entry matches and
// every stream, whole, reaches the sink.
func TestNilQuerySelectsEverything(t *testing.T) {
	for _, path := range []string{httpPcap, dnsPcap} {
		sink := newStreamSink()
		var matched, seen entries
		p := pipeline.New(pipeline.Config{
			Dissect:    retain,
			Selections: []pipeline.Selection{{Sink: sink, OnMatch: matched.add}},
			OnEntry:    seen.add,
		})
		feed(t, p, path)
		if want := l4Packets(t, path); sink.total() != want || want == 0 {
			t.Errorf("%s: sink got %d packets, the file has %d TCP/UDP packets", path, sink.total(), want)
		}
		if len(matched.list) == 0 || len(matched.list) != len(seen.list) {
			t.Errorf("%s: %d entries matched, %d seen: a nil query matches all", path, len(matched.list), len(seen.list))
		}
		if st := p.Stats(); st.Entries != uint64(len(seen.list)) {
			t.Errorf("%s: Stats().Entries = %d, OnEntry saw %d", path, st.Entries, len(seen.list))
		}
		if !maps.Equal(sink.ended, matched.streams()) {
			t.Errorf("%s: streams ended %v, want the selected ones %v", path, sink.ended, matched.streams())
		}
	}
}

// TestQuerySelects: only the streams of matching entries reach the sink,
// each with all its packets (those before the match too), and OnMatch sees
// exactly the matching entries.
func TestQuerySelects(t *testing.T) {
	tests := []struct {
		path, query string
		entries     int
	}{
		{httpPcap, "http and response.status == 500", 3},
		{httpPcap, `http and request.path == "/status/404"`, 2},
		{httpPcap, "dns", 0},
		{dnsPcap, "dns", 19},
		{dnsPcap, `dns and request.questions[0].name == "a.test" and request.questions[0].type == "A"`, 2},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			ref := reference(t, tc.path)
			sink := newStreamSink()
			var matched, seen entries
			q := compile(t, tc.query)
			p := pipeline.New(pipeline.Config{
				Dissect:    retain,
				Selections: []pipeline.Selection{{Query: q, Sink: sink, OnMatch: matched.add}},
				OnEntry:    seen.add,
			})
			feed(t, p, tc.path)
			if len(matched.list) != tc.entries {
				t.Fatalf("%d entries matched, want %d", len(matched.list), tc.entries)
			}
			want := map[string]int{}
			for _, e := range matched.list {
				if !q.Match(e) {
					t.Errorf("OnMatch got an entry the query does not match: %s", e.Summary())
				}
				want[e.Stream] = ref[e.Stream]
			}
			if !maps.Equal(sink.packets, want) {
				t.Errorf("sink got %v, want the matching streams whole: %v", sink.packets, want)
			}
			for _, e := range seen.list {
				if q.Match(e) != slices.Contains(matched.list, e) {
					t.Errorf("entry %s: OnEntry saw it, OnMatch disagrees with the query", e.Summary())
				}
			}
		})
	}
}

// TestSelectionsIndependent: each selection has its own query, sink and
// OnMatch; a nil Sink selects nothing but OnMatch still runs.
func TestSelectionsIndependent(t *testing.T) {
	ref := reference(t, httpPcap)
	all, errs := newStreamSink(), newStreamSink()
	var printed, errEntries entries
	p := pipeline.New(pipeline.Config{Dissect: retain, Selections: []pipeline.Selection{
		{Sink: all},
		{Query: compile(t, "http and response.status == 500"), Sink: errs, OnMatch: errEntries.add},
		{Query: compile(t, "http"), OnMatch: printed.add},
	}})
	feed(t, p, httpPcap)
	if !maps.Equal(all.packets, ref) {
		t.Errorf("the nil-query selection got %v, want %v", all.packets, ref)
	}
	if len(errEntries.list) != 3 || len(errs.packets) != 3 {
		t.Errorf("5xx selection: %d entries, %d streams; want 3 and 3", len(errEntries.list), len(errs.packets))
	}
	if len(printed.list) != 20 {
		t.Errorf("OnMatch without a sink saw %d entries, want 20", len(printed.list))
	}
}

// TestSetSelections swaps the selections halfway through a file: streams
// selected before keep their sink (and get the rest of their packets
// there), streams first matched after go to the new sink.
func TestSetSelections(t *testing.T) {
	ref := reference(t, httpPcap)
	var pkts []packet.Packet
	err := collector.ReadFile(context.Background(), httpPcap, func(p packet.Packet) error {
		p.Data = slices.Clone(p.Data)
		pkts = append(pkts, p)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, after := newStreamSink(), newStreamSink()
	p := pipeline.New(pipeline.Config{Dissect: retain, Selections: []pipeline.Selection{{Query: compile(t, "http"), Sink: before}}})
	half := len(pkts) / 2
	for i := range pkts[:half] {
		p.Feed(&pkts[i])
	}
	selectedBefore := maps.Clone(before.packets)
	p.SetSelections([]pipeline.Selection{{Query: compile(t, "http"), Sink: after}})
	for i := range pkts[half:] {
		p.Feed(&pkts[half+i])
	}
	p.Close()

	if len(selectedBefore) == 0 || len(after.packets) == 0 {
		t.Fatalf("the split selects %d streams before and %d after: pick another split", len(selectedBefore), len(after.packets))
	}
	for name := range selectedBefore {
		if before.packets[name] != ref[name] {
			t.Errorf("%s selected before the swap: old sink got %d of its %d packets", name, before.packets[name], ref[name])
		}
	}
	if len(before.packets) != len(selectedBefore) {
		t.Errorf("the old sink got new streams after the swap: %v", before.packets)
	}
	newOnly := 0
	for name, n := range after.packets {
		if _, ok := selectedBefore[name]; ok {
			continue
		}
		newOnly++
		if n != ref[name] {
			t.Errorf("%s first selected after the swap: new sink got %d of its %d packets", name, n, ref[name])
		}
	}
	if newOnly == 0 {
		t.Errorf("no stream was first selected after the swap")
	}
}

// TestSetSelectionsConcurrent swaps selections from another goroutine
// while several workers match (run with -race).
func TestSetSelectionsConcurrent(t *testing.T) {
	sinks := []*streamSink{newStreamSink(), newStreamSink()}
	p := pipeline.New(pipeline.Config{
		Dissect:    dissect.Config{Workers: 3, StreamRetainBytes: 1 << 20},
		Selections: []pipeline.Selection{{Sink: sinks[0]}},
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			p.SetSelections([]pipeline.Selection{{Sink: sinks[i%2]}})
		}
	}()
	feed(t, p, httpPcap)
	<-done
	got := map[string]bool{}
	for _, s := range sinks {
		for name := range s.packets {
			got[name] = true
		}
	}
	if len(got) == 0 {
		t.Error("no stream selected")
	}
}

// TestPacketSink: a PacketSink gets every packet of its streams, and a
// stream with several entries selects it once.
func TestPacketSink(t *testing.T) {
	var mu sync.Mutex
	n := 0
	sink := pipeline.PacketSink(func(*packet.Packet) { mu.Lock(); n++; mu.Unlock() })
	feed(t, pipeline.New(pipeline.Config{Dissect: retain, Selections: []pipeline.Selection{{Sink: sink}}}), httpPcap)
	if want := l4Packets(t, httpPcap); n != want {
		t.Errorf("PacketSink got %d packets, want %d", n, want)
	}
}

// TestWriterSink: several workers write the selected streams into one
// pcap that gopacket reads back whole; a write error is reported once.
func TestWriterSink(t *testing.T) {
	var buf bytes.Buffer
	pw, err := pcap.NewPcapWriter(&buf, layers.LinkTypeEthernet, 65535)
	if err != nil {
		t.Fatal(err)
	}
	sink := pipeline.NewWriterSink(pw)
	feed(t, pipeline.New(pipeline.Config{
		Dissect:    dissect.Config{Workers: 3, StreamRetainBytes: 1 << 20},
		Selections: []pipeline.Selection{{Sink: sink}},
	}), httpPcap)
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; ; n++ {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
	}
	if want := l4Packets(t, httpPcap); n != want {
		t.Errorf("the pcap holds %d packets, want %d", n, want)
	}

	fw, _ := pcap.NewPcapWriter(failingWriter{}, layers.LinkTypeEthernet, 65535)
	sink = pipeline.NewWriterSink(fw)
	feed(t, pipeline.New(pipeline.Config{Dissect: retain, Selections: []pipeline.Selection{{Sink: sink}}}), httpPcap)
	if err := sink.Close(); !errors.Is(err, errNoSpace) || strings.Count(err.Error(), "no space") != 1 {
		t.Errorf("Close after a failed write: %v", err)
	}
}

var errNoSpace = errors.New("no space left")

// failingWriter fails every write; the pcap writer buffers, so the error
// shows at the latest when Close flushes.
type failingWriter struct{}

func (failingWriter) Write(b []byte) (int, error) { return 0, errNoSpace }
