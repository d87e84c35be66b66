package dissect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kflcap/kflcap/packet"
)

// Resolver names endpoints (Kubernetes pod or service, its namespace and
// labels; or a name learnt from DNS or /etc/hosts). An empty name means
// unknown. It is called from the dissector's workers and must be safe for
// concurrent use; the labels returned are shared and never modified.
type Resolver interface {
	Resolve(ip netip.Addr, port uint16) (name, namespace string, labels map[string]string)
}

// Resolvers asks each resolver in turn; the first that knows a name answers.
type Resolvers []Resolver

// Resolve implements Resolver.
func (rs Resolvers) Resolve(ip netip.Addr, port uint16) (name, namespace string, labels map[string]string) {
	for _, r := range rs {
		if name, namespace, labels = r.Resolve(ip, port); name != "" {
			return
		}
	}
	return "", "", nil
}

// StreamSink receives the packets of the streams it was selected for with
// StreamRef.Select: first the packets retained so far, then every later
// packet, in arrival order, then StreamEnd once. Calls for one stream come
// from one worker goroutine; with Workers > 1 calls for different streams
// come concurrently. Packet data is valid only during the call.
type StreamSink interface {
	StreamPacket(s StreamInfo, p packet.Packet)
	StreamEnd(s StreamInfo)
}

// StreamInfo identifies a stream to sinks.
type StreamInfo struct {
	ID    uint64
	Name  string // "000000007221_tcp.pcap"
	L4    string // "tcp" or "udp"
	Lost  uint64 // packets of the stream that were not retained (caps) before selection
	Start time.Time
}

// Config configures a Dissector. The zero value is usable: every limit has a
// default.
type Config struct {
	// Workers is the number of shards, each a goroutine with its own stream
	// table and reassemblers. 0 or 1 dissects synchronously inside Feed,
	// which keeps the order of entries deterministic.
	Workers int
	// MaxStreams caps the stream table (all shards together); the least
	// recently seen stream is evicted (and counted) to make room.
	MaxStreams int
	// StreamRetainBytes is how much of a stream's packets is kept so that a
	// later Select can replay them; 0 keeps none. TotalRetainBytes caps all
	// streams together. Packets over either cap are counted, not kept. A
	// retained packet costs its bytes and its Packet header.
	StreamRetainBytes int
	TotalRetainBytes  int64
	// Selectable, if set, is asked once per new stream (IP protocol and
	// the two ends) whether anything could ever Select it, or wants its
	// entries. A stream it rejects is counted (packets, bytes, TCP flags)
	// but retains nothing, is not reassembled or dissected, and makes no
	// entries; its packets are not counted as lost. It is called from the
	// workers and must be safe for concurrent use.
	Selectable func(proto uint8, a, b netip.AddrPort) bool
	// RetainSelected keeps retaining (and replaying to later Selects) the
	// packets of streams that already have a sink. Set it when several
	// independent sinks (one per KFL job) may select the same stream at
	// different times; otherwise a stream's retained packets are freed at
	// its first Select.
	RetainSelected bool
	// TCPTimeout and UDPTimeout expire idle streams (packet time).
	TCPTimeout, UDPTimeout time.Duration
	// BodyPreviewBytes bounds the HTTP body kept in entries (after gzip
	// decoding). Negative keeps no body.
	BodyPreviewBytes int
	// OnEntry is called for every entry. s is valid only during the call;
	// use s.Select to receive the stream's packets. With Workers > 1 it is
	// called concurrently from the workers. Entries are not modified after
	// the call and may be kept.
	OnEntry func(e *Entry, s StreamRef)
	// Resolver, if set, fills Src/Dst Name, Namespace and Labels.
	Resolver Resolver
	// Local, if set, reports whether an address is this node's (its own or
	// one of its pods'): an entry whose client is local is Outgoing. It is
	// called from the workers and must be safe for concurrent use.
	Local func(netip.Addr) bool
	// Node is copied into every entry.
	Node Node
	// Logger receives rare operational events (the stream table filling
	// up, a summary at Close); per-packet problems are only counted.
	Logger *slog.Logger
}

// Defaults for Config's zero values.
const (
	DefaultMaxStreams        = 100_000
	DefaultStreamRetainBytes = 0
	DefaultTotalRetainBytes  = 256 << 20
	DefaultTCPTimeout        = 5 * time.Minute
	DefaultUDPTimeout        = 30 * time.Second
	DefaultBodyPreviewBytes  = 1024
)

func (c *Config) setDefaults() {
	if c.Workers < 1 {
		c.Workers = 1
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.TotalRetainBytes <= 0 {
		c.TotalRetainBytes = DefaultTotalRetainBytes
	}
	if c.TCPTimeout <= 0 {
		c.TCPTimeout = DefaultTCPTimeout
	}
	if c.UDPTimeout <= 0 {
		c.UDPTimeout = DefaultUDPTimeout
	}
	if c.BodyPreviewBytes == 0 {
		c.BodyPreviewBytes = DefaultBodyPreviewBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats are the dissector's counters. Every packet lands in exactly one of
// Decoded, Other, Fragments, Malformed and UnknownLinkType.
type Stats struct {
	Packets         uint64 // fed
	Bytes           uint64
	Decoded         uint64 // TCP, UDP or ICMP
	Other           uint64 // well-formed but not TCP/UDP/ICMP over IP (ARP, …)
	Fragments       uint64 // IP fragments waiting for reassembly or not reassembled (IPv6)
	Malformed       uint64
	UnknownLinkType uint64
	Streams         uint64 // created
	ActiveStreams   uint64
	StreamsExpired  uint64
	StreamsEvicted  uint64 // evicted by the MaxStreams cap (LRU)
	RetainOverflow  uint64 // packets not retained because a cap was reached
	ReassemblyGaps  uint64 // holes skipped in TCP streams (loss)
	Retransmissions uint64 // TCP segments already seen, dropped
	L7Errors        uint64 // messages that could not be parsed; the parser resynchronised
	OrphanResponses uint64 // responses whose request was not captured
	Entries         uint64
	EntriesHTTP     uint64 // HTTP/1.x
	EntriesDNS      uint64
	EntriesTLS      uint64
	EntriesL4       uint64
	EntriesRedis    uint64
	EntriesHTTP2    uint64 // HTTP/2 streams that are not gRPC
	EntriesGRPC     uint64
	EntriesPostgres uint64
	EntriesKafka    uint64
	EntriesAMQP     uint64
}

// Dissector turns packets into streams and entries. Create it with New, feed
// it from one goroutine, and Close it to flush the streams still open.
type Dissector struct {
	cfg    Config
	dec    *decoder
	shards []*shard
	// warnedFull: the first eviction is logged, later ones only counted.
	warnedFull atomic.Bool

	// Multi-worker mode only.
	batches []*batch // the batch being filled, per shard
	free    chan *batch
	wg      sync.WaitGroup
	closed  bool
}

// New returns a dissector. With cfg.Workers > 1 it starts the workers.
func New(cfg Config) *Dissector {
	cfg.setDefaults()
	d := &Dissector{cfg: cfg, dec: newDecoder()}
	perShard := cfg.MaxStreams / cfg.Workers
	if perShard < 1 {
		perShard = 1
	}
	for i := 0; i < cfg.Workers; i++ {
		sh := newShard(d, perShard, cfg.TotalRetainBytes/int64(cfg.Workers))
		sh.nextID = uint64(i) + 1
		d.shards = append(d.shards, sh)
	}
	if cfg.Workers > 1 {
		d.free = make(chan *batch, cfg.Workers*4)
		for i := 0; i < cfg.Workers*4; i++ {
			d.free <- newBatch()
		}
		d.batches = make([]*batch, cfg.Workers)
		for _, sh := range d.shards {
			sh.in = make(chan *batch, 2)
			d.wg.Add(1)
			go func() { defer d.wg.Done(); sh.run() }()
		}
	}
	return d
}

// ErrClosed is returned by Feed after Close.
var ErrClosed = errors.New("dissector closed")

// Feed dissects one packet. It must not be called concurrently. p.Data is
// not retained after Feed returns: the dissector copies what it keeps.
// With Workers > 1 Feed blocks when the workers fall behind (backpressure,
// not loss); a live source that cannot block should count its own drops.
func (d *Dissector) Feed(p packet.Packet) error {
	if d.closed {
		return ErrClosed
	}
	var dec decoded
	res := d.dec.decode(p.LinkType, p.Data, p.Time, &dec)
	if len(d.shards) == 1 {
		d.shards[0].handle(&p, res, &dec)
		return nil
	}
	i := 0
	if res == decodedOK {
		k, _ := makeKey(&dec)
		i = int(d.hash(&k) % uint64(len(d.shards)))
	}
	b := d.batches[i]
	if b == nil {
		b = <-d.free
		d.batches[i] = b
	}
	if !b.add(&p, res, &dec) {
		d.shards[i].in <- b
		b = <-d.free
		d.batches[i] = b
		b.add(&p, res, &dec)
	}
	return nil
}

// Tick lets the dissector expire idle streams when no packets arrive; now is
// in packet time. Call it from the feeding goroutine (live capture: once a
// second).
func (d *Dissector) Tick(now time.Time) {
	if d.closed {
		return
	}
	if len(d.shards) == 1 {
		d.shards[0].expire(now)
		return
	}
	for i, sh := range d.shards {
		b := d.batches[i]
		if b == nil {
			b = <-d.free
		}
		d.batches[i] = nil
		b.tick = now
		sh.in <- b
	}
}

// Close flushes every open stream (emitting their pending entries and
// ending their sinks) and stops the workers. The dissector cannot be used
// afterwards.
func (d *Dissector) Close() {
	if d.closed {
		return
	}
	d.closed = true
	if len(d.shards) == 1 {
		d.shards[0].closeAll()
	} else {
		for i, sh := range d.shards {
			if b := d.batches[i]; b != nil {
				sh.in <- b
			}
			close(sh.in)
		}
		d.wg.Wait()
	}
	st := d.Stats()
	d.cfg.Logger.Debug("dissector closed", "packets", st.Packets, "malformed", st.Malformed,
		"streams", st.Streams, "evicted", st.StreamsEvicted, "entries", st.Entries,
		"gaps", st.ReassemblyGaps, "retain_overflow", st.RetainOverflow)
}

// Stats returns the counters. It is safe to call concurrently with Feed.
func (d *Dissector) Stats() Stats {
	var s Stats
	for _, sh := range d.shards {
		sh.c.addTo(&s)
	}
	return s
}

// hash spreads flows over shards. It is fixed (not seeded per process) so
// that a file gets the same shards, hence the same stream ids, on every run;
// the key is canonical, so both directions hash alike.
func (d *Dissector) hash(k *flowKey) uint64 {
	a, b := k.lo.As16(), k.hi.As16()
	h := binary.LittleEndian.Uint64(a[:8]) ^ mix(binary.LittleEndian.Uint64(a[8:]))
	h = mix(h ^ binary.LittleEndian.Uint64(b[:8]))
	h = mix(h ^ binary.LittleEndian.Uint64(b[8:]))
	return mix(h ^ uint64(k.lport)<<24 ^ uint64(k.hport)<<8 ^ uint64(k.proto))
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// flowKey identifies a stream independently of direction: lo/lport is the
// smaller endpoint.
type flowKey struct {
	lo, hi       netip.Addr
	lport, hport uint16
	proto        uint8
}

// makeKey returns the canonical key and whether the packet goes lo → hi.
func makeKey(d *decoded) (flowKey, bool) {
	c := d.src.Compare(d.dst)
	if c < 0 || c == 0 && d.sport <= d.dport {
		return flowKey{d.src, d.dst, d.sport, d.dport, d.proto}, true
	}
	return flowKey{d.dst, d.src, d.dport, d.sport, d.proto}, false
}

// StreamName is the pcap file name of a stream in a repository.
func StreamName(id uint64, l4 string) string { return fmt.Sprintf("%012d_%s.pcap", id, l4) }

// batch carries decoded packets from Feed to a worker without allocating
// per packet: frames are copied into one arena.
type batch struct {
	arena []byte
	items []batchItem
	tick  time.Time // non-zero: expire streams at this time after the items
}

type batchItem struct {
	p          packet.Packet
	res        decodeResult
	dec        decoded
	off, n     int // frame in arena
	poff, plen int // L4 payload in arena
}

const batchArena = 1 << 20

func newBatch() *batch {
	return &batch{arena: make([]byte, 0, batchArena), items: make([]batchItem, 0, 1024)}
}

// add copies the packet into the batch; false when it is full.
func (b *batch) add(p *packet.Packet, res decodeResult, dec *decoded) bool {
	need := len(p.Data) + len(dec.payload)
	if len(b.items) == cap(b.items) || len(b.arena)+need > cap(b.arena) && len(b.items) > 0 {
		return false
	}
	it := batchItem{p: *p, res: res, dec: *dec}
	it.p.Data = nil
	it.dec.payload = nil
	it.off = len(b.arena)
	b.arena = append(b.arena, p.Data...)
	it.n = len(p.Data)
	// The payload usually aliases the frame (the offset is the difference
	// of capacities); a reassembled IPv4 datagram does not and is copied.
	if len(dec.payload) > 0 {
		if off := cap(p.Data) - cap(dec.payload); off >= 0 && off+len(dec.payload) <= len(p.Data) && aliases(p.Data, dec.payload, off) {
			it.poff, it.plen = it.off+off, len(dec.payload)
		} else {
			it.poff = len(b.arena)
			b.arena = append(b.arena, dec.payload...)
			it.plen = len(dec.payload)
		}
	}
	b.items = append(b.items, it)
	return true
}

// aliases reports whether sub is data[off:off+len(sub)] in memory.
func aliases(data, sub []byte, off int) bool {
	return len(sub) > 0 && off < len(data) && &data[off] == &sub[0]
}

func (sh *shard) run() {
	runtime.LockOSThread() // keeps a busy shard on its own core
	for b := range sh.in {
		for i := range b.items {
			it := &b.items[i]
			it.p.Data = b.arena[it.off : it.off+it.n : it.off+it.n]
			it.dec.payload = b.arena[it.poff : it.poff+it.plen : it.poff+it.plen]
			sh.handle(&it.p, it.res, &it.dec)
		}
		if !b.tick.IsZero() {
			sh.expire(b.tick)
		}
		b.items = b.items[:0]
		b.arena = b.arena[:0]
		b.tick = time.Time{}
		sh.d.free <- b
	}
	sh.closeAll()
}
