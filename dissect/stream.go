package dissect

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/kflcap/kflcap/packet"
)

// stream is one TCP connection or UDP flow. It is owned by its shard.
type stream struct {
	id   uint64
	name string
	key  flowKey
	// a sent the first packet seen; b is the other end. dir 0 is a → b.
	a, b       netip.AddrPort
	clientIsB  bool // the client (connection opener, request sender) is b
	pkts, byts [2]uint64
	first      time.Time
	last       time.Time
	syn        bool
	fin, rst   bool
	prev, next *stream // LRU list of the shard (most recent at the head)

	retained []packet.Packet
	retBytes int
	lost     uint64 // packets not retained
	unwanted bool   // nothing can select it (Config.Selectable): counted, not kept or dissected
	sinks    []StreamSink
	tcp      [2]tcpHalf
	// Sequence number of the first byte being delivered and the ack of the
	// segment that carried it: HTTP pairing uses them to tell which
	// requests a response can answer.
	segSeq, segAck uint32
	app            app
	appDone        bool // detection finished (app set, or no dissector fits)
	tries          int  // detection attempts so far
	l7Entries      int
	l4Emitted      bool
}

// finished reports whether a TCP connection was reset or closed both ways.
func (s *stream) finished() bool {
	return s.rst || s.tcp[0].finSeen && s.tcp[1].finSeen
}

func (s *stream) l4name() string {
	if s.key.proto == protoTCP {
		return "tcp"
	}
	return "udp"
}

func (s *stream) info() StreamInfo {
	return StreamInfo{ID: s.id, Name: s.name, L4: s.l4name(), Lost: s.lost, Start: s.first}
}

// clientDir is the direction (0: a → b, 1: b → a) in which the client sends.
func (s *stream) clientDir() int {
	if s.clientIsB {
		return 1
	}
	return 0
}

// StreamRef is the stream of an entry, valid only during Config.OnEntry.
type StreamRef struct {
	s  *stream
	sh *shard
}

// ID returns the stream id.
func (r StreamRef) ID() uint64 { return r.s.id }

// Info describes the stream.
func (r StreamRef) Info() StreamInfo { return r.s.info() }

// Select makes sink receive the stream's packets: the retained ones now,
// every later one as it arrives, and StreamEnd when the stream closes.
// Selecting the same sink twice has no effect.
func (r StreamRef) Select(sink StreamSink) {
	s := r.s
	if slices.Contains(s.sinks, sink) {
		return
	}
	s.sinks = append(s.sinks, sink)
	info := s.info()
	for _, p := range s.retained {
		sink.StreamPacket(info, p)
	}
	if !r.sh.d.cfg.RetainSelected {
		// Nobody else will ask for the past of this stream: free it.
		r.sh.retBytes -= int64(s.retBytes)
		s.retained, s.retBytes = nil, 0
	}
}

// counters of one shard, read concurrently by Stats.
type counters struct {
	packets, bytes, decoded, other, fragments, malformed, unknownLink                atomic.Uint64
	streams, active, expired, evicted, retainOverflow                                atomic.Uint64
	gaps, retrans, l7Errors, orphans                                                 atomic.Uint64
	entries, eHTTP, eDNS, eTLS, eL4, eRedis, eHTTP2, eGRPC, ePostgres, eKafka, eAMQP atomic.Uint64
}

func (c *counters) addTo(s *Stats) {
	s.Packets += c.packets.Load()
	s.Bytes += c.bytes.Load()
	s.Decoded += c.decoded.Load()
	s.Other += c.other.Load()
	s.Fragments += c.fragments.Load()
	s.Malformed += c.malformed.Load()
	s.UnknownLinkType += c.unknownLink.Load()
	s.Streams += c.streams.Load()
	s.ActiveStreams += c.active.Load()
	s.StreamsExpired += c.expired.Load()
	s.StreamsEvicted += c.evicted.Load()
	s.RetainOverflow += c.retainOverflow.Load()
	s.ReassemblyGaps += c.gaps.Load()
	s.Retransmissions += c.retrans.Load()
	s.L7Errors += c.l7Errors.Load()
	s.OrphanResponses += c.orphans.Load()
	s.Entries += c.entries.Load()
	s.EntriesHTTP += c.eHTTP.Load()
	s.EntriesDNS += c.eDNS.Load()
	s.EntriesTLS += c.eTLS.Load()
	s.EntriesL4 += c.eL4.Load()
	s.EntriesRedis += c.eRedis.Load()
	s.EntriesHTTP2 += c.eHTTP2.Load()
	s.EntriesGRPC += c.eGRPC.Load()
	s.EntriesPostgres += c.ePostgres.Load()
	s.EntriesKafka += c.eKafka.Load()
	s.EntriesAMQP += c.eAMQP.Load()
}

// shard owns a part of the stream table (by flow hash) and everything
// hanging off it: reassemblers, L7 parsers, retained packets. Only its own
// goroutine (or Feed, with one worker) touches it.
type shard struct {
	d          *Dissector
	in         chan *batch
	streams    map[flowKey]*stream
	lru        stream // sentinel of the LRU ring
	max        int
	free       []*stream
	now        time.Time
	lastExpire time.Time

	retBytes, maxRetBytes int64
	slab                  []byte

	dns    dnsDecoder
	c      counters
	nextID uint64
}

func newShard(d *Dissector, max int, maxRet int64) *shard {
	sh := &shard{d: d, streams: make(map[flowKey]*stream, min(max, 1024)), max: max, maxRetBytes: maxRet}
	sh.lru.next, sh.lru.prev = &sh.lru, &sh.lru
	return sh
}

func (sh *shard) lruRemove(s *stream) {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

func (sh *shard) lruPushFront(s *stream) {
	s.next, s.prev = sh.lru.next, &sh.lru
	sh.lru.next.prev = s
	sh.lru.next = s
}

// handle processes one decoded packet.
func (sh *shard) handle(p *packet.Packet, res decodeResult, dec *decoded) {
	sh.c.packets.Add(1)
	sh.c.bytes.Add(uint64(len(p.Data)))
	switch res {
	case decodedOther:
		sh.c.other.Add(1)
		return
	case decodedFragment:
		sh.c.fragments.Add(1)
		return
	case decodedMalformed:
		sh.c.malformed.Add(1)
		return
	case decodedLinkType:
		sh.c.unknownLink.Add(1)
		return
	}
	sh.c.decoded.Add(1)
	if dec.proto != protoTCP && dec.proto != protoUDP {
		return // ICMP: counted, not a stream
	}
	ts := p.Time
	if ts.After(sh.now) {
		sh.now = ts
	}
	if sh.now.Sub(sh.lastExpire) >= time.Second {
		sh.expire(sh.now)
	}
	k, _ := makeKey(dec)
	s := sh.streams[k]
	if s != nil && dec.proto == protoTCP && dec.flags&(flagSYN|flagACK) == flagSYN && s.finished() {
		// A new connection on the 5-tuple of a finished one (port reuse):
		// a new stream, as tshark numbers it.
		sh.closeStream(s)
		s = nil
	}
	if s == nil {
		s = sh.newStream(k, dec, ts)
	} else if s != sh.lru.next {
		sh.lruRemove(s)
		sh.lruPushFront(s)
	}
	dir := 0
	if dec.src != s.a.Addr() || dec.sport != s.a.Port() {
		dir = 1
	}
	s.pkts[dir]++
	s.byts[dir] += uint64(len(dec.payload))
	if ts.After(s.last) {
		s.last = ts
	}
	if len(s.sinks) == 0 || sh.d.cfg.RetainSelected {
		sh.retain(s, p)
	}
	if len(s.sinks) > 0 {
		info := s.info()
		for _, k := range s.sinks {
			k.StreamPacket(info, *p)
		}
	}
	switch {
	case s.unwanted:
		if dec.proto == protoTCP {
			sh.tcpFlags(s, dir, dec)
		}
	case dec.proto == protoTCP:
		sh.tcpSegment(s, dir, dec, ts)
	default:
		sh.udpDatagram(s, dir, dec, ts)
	}
}

// tcpFlags keeps, for a stream that is not dissected, the TCP state its
// expiry and port reuse depend on.
func (sh *shard) tcpFlags(s *stream, dir int, dec *decoded) {
	if dec.flags&flagSYN != 0 {
		s.syn = true
		s.clientIsB = (dir == 1) == (dec.flags&flagACK == 0)
	}
	if dec.flags&flagFIN != 0 {
		s.fin = true
		s.tcp[dir].finSeen = true
	}
	if dec.flags&flagRST != 0 {
		s.rst = true
	}
}

func (sh *shard) newStream(k flowKey, dec *decoded, ts time.Time) *stream {
	if len(sh.streams) >= sh.max {
		if victim := sh.lru.prev; victim != &sh.lru {
			if sh.c.evicted.Add(1) == 1 && !sh.d.warnedFull.Swap(true) {
				sh.d.cfg.Logger.Warn("stream table full: evicting the least recently active streams (counted in StreamsEvicted)",
					"max_streams", sh.d.cfg.MaxStreams)
			}
			sh.closeStream(victim)
		}
	}
	var s *stream
	if n := len(sh.free); n > 0 {
		s = sh.free[n-1]
		sh.free = sh.free[:n-1]
	} else {
		s = new(stream)
	}
	// Ids interleave across shards (shard i hands out i+1, i+1+n, …): unique,
	// and, since each shard sees its packets in file order, the same on every
	// run with the same number of workers.
	id := sh.nextID
	sh.nextID += uint64(len(sh.d.shards))
	*s = stream{id: id, key: k,
		a:     netip.AddrPortFrom(dec.src, dec.sport),
		b:     netip.AddrPortFrom(dec.dst, dec.dport),
		first: ts, last: ts}
	s.name = StreamName(id, s.l4name())
	if sel := sh.d.cfg.Selectable; sel != nil {
		s.unwanted = !sel(dec.proto, s.a, s.b)
	}
	if dec.proto == protoTCP && dec.flags&(flagSYN|flagACK) == flagSYN|flagACK {
		s.clientIsB = true // first packet is a SYN-ACK: the server sent it
	}
	sh.streams[k] = s
	sh.lruPushFront(s)
	sh.c.streams.Add(1)
	sh.c.active.Add(1)
	return s
}

// retain keeps a copy of the packet for a later Select, within the caps.
// packetHeaderBytes is what a retained packet costs beside its data: its
// Packet in the stream's slice.
const packetHeaderBytes = int(unsafe.Sizeof(packet.Packet{}))

func (sh *shard) retain(s *stream, p *packet.Packet) {
	per := sh.d.cfg.StreamRetainBytes
	if per <= 0 || s.unwanted {
		return
	}
	n := len(p.Data) + packetHeaderBytes
	if s.retBytes+n > per || sh.retBytes+int64(n) > sh.maxRetBytes {
		s.lost++
		sh.c.retainOverflow.Add(1)
		return
	}
	// Copies come from a shared slab so that retaining a packet is not an
	// allocation of its own; a slab is freed when no stream refers to it.
	var buf []byte
	if d := len(p.Data); d > 64<<10 {
		buf = make([]byte, d)
		copy(buf, p.Data)
	} else {
		if len(sh.slab)+d > cap(sh.slab) {
			sh.slab = make([]byte, 0, 1<<20)
		}
		start := len(sh.slab)
		sh.slab = append(sh.slab, p.Data...)
		buf = sh.slab[start : start+d : start+d]
	}
	q := *p
	q.Data = buf
	s.retained = append(s.retained, q)
	s.retBytes += n
	sh.retBytes += int64(n)
}

// expire closes streams idle for longer than their timeout.
func (sh *shard) expire(now time.Time) {
	sh.lastExpire = now
	tcpT, udpT := sh.d.cfg.TCPTimeout, sh.d.cfg.UDPTimeout
	shortest := min(tcpT, udpT, finishedTimeout)
	// The LRU ring is ordered by last activity; stop at the first stream
	// that cannot have expired under the shorter timeout.
	for s := sh.lru.prev; s != &sh.lru; {
		prev := s.prev
		idle := now.Sub(s.last)
		if idle < shortest {
			break
		}
		t := udpT
		if s.key.proto == protoTCP {
			t = tcpT
			if s.finished() {
				t = min(t, finishedTimeout)
			}
		}
		if idle >= t {
			sh.c.expired.Add(1)
			sh.closeStream(s)
		}
		s = prev
	}
}

// closeStream flushes a stream's parsers, emits what is pending, ends its
// sinks and recycles it.
func (sh *shard) closeStream(s *stream) {
	if s.key.proto == protoTCP {
		for dir := range 2 {
			sh.tcpFlush(s, dir)
		}
	}
	if s.app != nil {
		s.app.close(sh, s)
	}
	if s.l7Entries == 0 && !s.l4Emitted && !s.unwanted {
		sh.emitL4(s)
	}
	if len(s.sinks) > 0 {
		info := s.info()
		for _, k := range s.sinks {
			k.StreamEnd(info)
		}
	}
	sh.retBytes -= int64(s.retBytes)
	delete(sh.streams, s.key)
	sh.lruRemove(s)
	sh.c.active.Add(^uint64(0))
	*s = stream{}
	if len(sh.free) < 1024 {
		sh.free = append(sh.free, s)
	}
}

func (sh *shard) closeAll() {
	for sh.lru.prev != &sh.lru {
		sh.closeStream(sh.lru.prev)
	}
}

// newEntry fills the fields every entry has. dir is the direction in which
// the entry's client (request sender) talks.
func (sh *shard) newEntry(s *stream, clientDir int, ts time.Time) *Entry {
	src, dst := s.a, s.b
	if clientDir == 1 {
		src, dst = dst, src
	}
	e := &Entry{
		Src:       Endpoint{IP: src.Addr(), Port: src.Port()},
		Dst:       Endpoint{IP: dst.Addr(), Port: dst.Port()},
		Node:      sh.d.cfg.Node,
		Timestamp: ts.UnixMilli(),
		Stream:    s.name,
		StreamID:  s.id,
	}
	e.Protocol.Layer4 = s.l4name()
	if local := sh.d.cfg.Local; local != nil {
		e.Outgoing = local(e.Src.IP)
	}
	if r := sh.d.cfg.Resolver; r != nil {
		e.Src.Name, e.Src.Namespace, e.Src.Labels = r.Resolve(e.Src.IP, e.Src.Port)
		e.Dst.Name, e.Dst.Namespace, e.Dst.Labels = r.Resolve(e.Dst.IP, e.Dst.Port)
	}
	up, down := clientDir, 1-clientDir
	e.L4 = &L4Stream{
		FirstSeen: s.first.UnixMilli(), LastSeen: s.last.UnixMilli(),
		PacketsUp: s.pkts[up], PacketsDown: s.pkts[down],
		BytesUp: s.byts[up], BytesDown: s.byts[down],
		SYN: s.syn, FIN: s.fin, RST: s.rst,
	}
	return e
}

func (sh *shard) emit(s *stream, e *Entry) {
	sh.c.entries.Add(1)
	switch {
	case e.GRPC != nil:
		sh.c.eGRPC.Add(1)
	case e.HTTP != nil && e.Protocol.Name == "http2":
		sh.c.eHTTP2.Add(1)
	case e.HTTP != nil:
		sh.c.eHTTP.Add(1)
	case e.DNS != nil:
		sh.c.eDNS.Add(1)
	case e.TLS != nil:
		sh.c.eTLS.Add(1)
	case e.Redis != nil:
		sh.c.eRedis.Add(1)
	case e.Postgres != nil:
		sh.c.ePostgres.Add(1)
	case e.Kafka != nil:
		sh.c.eKafka.Add(1)
	case e.AMQP != nil:
		sh.c.eAMQP.Add(1)
	default:
		sh.c.eL4.Add(1)
	}
	if e.IsL7() {
		s.l7Entries++
	}
	if f := sh.d.cfg.OnEntry; f != nil {
		f(e, StreamRef{s: s, sh: sh})
	}
}

// emitL4 makes the one entry of a stream no dissector recognised.
func (sh *shard) emitL4(s *stream) {
	s.l4Emitted = true
	e := sh.newEntry(s, s.clientDir(), s.first)
	e.Protocol.Name = e.Protocol.Layer4
	e.Protocol.Abbr = "UDP"
	if e.Protocol.Layer4 == "tcp" {
		e.Protocol.Abbr = "TCP"
	}
	e.ElapsedTime = s.last.Sub(s.first).Milliseconds()
	sh.emit(s, e)
}
