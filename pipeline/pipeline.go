// Package pipeline is the one wiring from packets to selected streams that
// `kflcap capture --kfl`, `kflcap read`, the agent's jobs and its triggered
// captures share: packets go into a dissector; each entry it makes is
// matched against every selection's KFL query; a match selects the entry's
// stream into that selection's sink (a pcap writer, a job's repositories).
//
// Lifetime: New starts the dissector; Feed, Tick and Close are called from
// one goroutine (the feed loop), as for dissect.Dissector. SetSelections
// may be called from any goroutine: the dissector's workers see either the
// old selections or the new ones, never a mix. Close flushes open streams,
// whose pending entries may still select them.
package pipeline

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
)

// Selection is one query and where the streams it selects go.
type Selection struct {
	// Query selects entries; nil selects every entry.
	Query *kfl.Query
	// Sink receives the selected streams' packets: those retained before
	// the match, then every later one. Nil selects no packets (read
	// without -w only prints entries).
	Sink dissect.StreamSink
	// OnMatch, if set, is called with every matching entry. With several
	// dissector workers it is called concurrently.
	OnMatch func(e *dissect.Entry)
}

// Config configures a Pipeline.
type Config struct {
	// Dissect configures the dissector; its OnEntry is the pipeline's.
	Dissect dissect.Config
	// Selections are matched against every entry, in order.
	Selections []Selection
	// OnEntry, if set, sees every entry before it is matched (the agent
	// learns names from DNS answers there). Called from the workers.
	OnEntry func(e *dissect.Entry)
}

// Pipeline dissects packets and selects streams.
type Pipeline struct {
	dis     *dissect.Dissector
	sel     atomic.Pointer[[]Selection]
	onEntry func(e *dissect.Entry)
}

// New starts a pipeline.
func New(cfg Config) *Pipeline {
	p := &Pipeline{onEntry: cfg.OnEntry}
	p.SetSelections(cfg.Selections)
	dc := cfg.Dissect
	dc.OnEntry = p.entry
	p.dis = dissect.New(dc)
	return p
}

func (p *Pipeline) entry(e *dissect.Entry, s dissect.StreamRef) {
	if p.onEntry != nil {
		p.onEntry(e)
	}
	for _, sel := range *p.sel.Load() {
		if sel.Query != nil && !sel.Query.Match(e) {
			continue
		}
		if sel.OnMatch != nil {
			sel.OnMatch(e)
		}
		if sel.Sink != nil {
			s.Select(sel.Sink)
		}
	}
}

// SetSelections replaces the selections (an agent reload). Streams
// already selected keep their sinks.
func (p *Pipeline) SetSelections(sel []Selection) {
	sel = append([]Selection(nil), sel...)
	p.sel.Store(&sel)
}

// Feed dissects one packet; see dissect.Dissector.Feed.
func (p *Pipeline) Feed(pkt *packet.Packet) error { return p.dis.Feed(*pkt) }

// Tick expires idle streams and hands buffered packets to the workers;
// see dissect.Dissector.Tick.
func (p *Pipeline) Tick(now time.Time) { p.dis.Tick(now) }

// Close flushes every open stream and stops the dissector.
func (p *Pipeline) Close() { p.dis.Close() }

// Stats returns the dissector's counters; safe to call concurrently.
func (p *Pipeline) Stats() dissect.Stats { return p.dis.Stats() }

// PacketSink returns a Sink that hands every packet of the streams it
// is selected for to fn, and ignores stream ends: capture writes them
// straight to its file. With several dissector workers fn is called
// concurrently. (A pointer, not a func type: the dissector compares sinks
// to select a stream only once, and funcs are not comparable.)
func PacketSink(fn func(p *packet.Packet)) dissect.StreamSink { return &packetSink{fn} }

type packetSink struct{ fn func(p *packet.Packet) }

func (s *packetSink) StreamPacket(_ dissect.StreamInfo, p packet.Packet) { s.fn(&p) }
func (s *packetSink) StreamEnd(dissect.StreamInfo)                       {}

// WriterSink is a Sink that writes the selected streams' packets to a
// capture file (read -w). It is safe for several dissector workers; after
// a write error it writes nothing more.
type WriterSink struct {
	mu  sync.Mutex
	w   pcap.PacketWriter
	err error
}

// NewWriterSink returns a sink writing to w.
func NewWriterSink(w pcap.PacketWriter) *WriterSink { return &WriterSink{w: w} }

// StreamPacket writes p unless an earlier write failed.
func (s *WriterSink) StreamPacket(_ dissect.StreamInfo, p packet.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = s.w.WritePacket(&p)
	}
}

// StreamEnd does nothing: a capture file has no stream boundaries.
func (s *WriterSink) StreamEnd(dissect.StreamInfo) {}

// Close closes the writer (no statistics trailer) once the pipeline is
// closed, and returns the first error.
func (s *WriterSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err // the writer keeps it too: do not report it twice
	}
	return s.w.Close(nil)
}
