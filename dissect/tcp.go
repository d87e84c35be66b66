package dissect

import (
	"time"
)

// tcpHalf reassembles one direction of a TCP connection. It delivers bytes
// in sequence order to the stream's L7 parser and skips holes it will not
// see filled: when the peer acknowledges data beyond the hole (the data was
// sent, the capture lost it) or when the out-of-order buffer is full.
type tcpHalf struct {
	known   bool   // next is valid (SYN seen or first data)
	next    uint32 // next expected sequence number
	acked   uint32 // highest ack from the peer beyond next (valid when ackSet)
	ackSet  bool
	finSeen bool
	finSeq  uint32
	ended   bool // end delivered to the parser
	holeAge int  // packets of the stream seen while ooo waits for a hole to fill
	ooo     []oooSeg
	oooLen  int
}

type oooSeg struct {
	seq, ack uint32
	data     []byte
}

// Out-of-order buffering bounds per direction: beyond them the hole is
// declared lost.
const (
	maxOOOSegs  = 64
	maxOOOBytes = 512 << 10
	// A hole the peer has acknowledged past is declared lost only after
	// this many more packets of the stream: a capture merged from several
	// queues or interfaces may show the ACK before the data it acknowledges.
	holePatience = 8
)

// seqLess reports a < b in 32-bit sequence space (RFC 1982 arithmetic).
func seqLess(a, b uint32) bool { return int32(a-b) < 0 }

// finishedTimeout is how long a stream that saw FIN in both directions or
// RST stays in the table for its last ACKs before it is closed.
const finishedTimeout = 10 * time.Second

func (sh *shard) tcpSegment(s *stream, dir int, dec *decoded, ts time.Time) {
	f := dec.flags
	if f&flagSYN != 0 {
		s.syn = true
		// The SYN without ACK comes from the client; the SYN-ACK from the server.
		s.clientIsB = (dir == 1) == (f&flagACK == 0)
		h := &s.tcp[dir]
		if !h.known || seqLess(h.next, dec.seq+1) {
			h.known, h.next = true, dec.seq+1
		}
	}
	if f&flagACK != 0 {
		sh.tcpAcked(s, 1-dir, dec.ack, ts)
	}
	for d := range 2 {
		if h := &s.tcp[d]; len(h.ooo) > 0 {
			h.holeAge++
			if h.holeAge > holePatience && h.ackSet && !seqLess(h.acked, h.ooo[0].seq) {
				sh.tcpSkip(s, d, h.ooo[0].seq, ts)
			}
		}
	}
	if len(dec.payload) > 0 {
		sh.tcpData(s, dir, dec.seq, dec.ack, dec.payload, ts)
	}
	if f&flagFIN != 0 {
		s.fin = true
		h := &s.tcp[dir]
		h.finSeen = true
		h.finSeq = dec.seq + uint32(len(dec.payload))
		if h.known && h.next == h.finSeq {
			sh.tcpEnd(s, dir, ts)
		}
	}
	if f&flagRST != 0 {
		s.rst = true
		for d := range 2 {
			sh.tcpFlush(s, d)
			sh.tcpEnd(s, d, ts)
		}
	}
}

// tcpAcked handles the peer's acknowledgment of direction dir.
func (sh *shard) tcpAcked(s *stream, dir int, ack uint32, ts time.Time) {
	h := &s.tcp[dir]
	if !h.known {
		// Remember where the peer expects this direction to continue: the
		// first data segment seen may be out of order.
		h.acked, h.ackSet = ack, true
		return
	}
	if !seqLess(h.next, ack) {
		return
	}
	if h.finSeen && h.next == h.finSeq && ack == h.next+1 {
		return // the FIN's own sequence number
	}
	if !h.ackSet || seqLess(h.acked, ack) {
		h.acked, h.ackSet = ack, true
	}
}

func (sh *shard) tcpData(s *stream, dir int, seq, ack uint32, p []byte, ts time.Time) {
	h := &s.tcp[dir]
	if !h.known {
		h.known, h.next = true, seq // mid-stream start
		if h.ackSet && seqLess(h.acked, seq) && seq-h.acked < maxOOOBytes {
			h.next = h.acked // the peer expects earlier data: wait for it
		}
	}
	rel := int32(seq - h.next)
	if rel < 0 {
		if int(-rel) >= len(p) {
			sh.c.retrans.Add(1)
			return
		}
		p = p[-rel:]
		seq = h.next
		rel = 0
	}
	if rel > 0 {
		sh.tcpHold(s, dir, seq, ack, p, ts)
		return
	}
	s.segSeq, s.segAck = h.next, ack
	h.next += uint32(len(p))
	sh.deliver(s, dir, p, ts)
	sh.tcpDrain(s, dir, ts)
	if h.finSeen && h.next == h.finSeq {
		sh.tcpEnd(s, dir, ts)
	}
}

// tcpHold keeps an out-of-order segment (a copy: packet data is transient).
func (sh *shard) tcpHold(s *stream, dir int, seq, ack uint32, p []byte, ts time.Time) {
	h := &s.tcp[dir]
	i := len(h.ooo)
	for i > 0 && seqLess(seq, h.ooo[i-1].seq) {
		i--
	}
	if i > 0 && h.ooo[i-1].seq == seq && len(h.ooo[i-1].data) >= len(p) {
		sh.c.retrans.Add(1)
		return
	}
	h.ooo = append(h.ooo, oooSeg{})
	copy(h.ooo[i+1:], h.ooo[i:])
	h.ooo[i] = oooSeg{seq: seq, ack: ack, data: append([]byte(nil), p...)}
	h.oooLen += len(p)
	if len(h.ooo) > maxOOOSegs || h.oooLen > maxOOOBytes {
		sh.tcpSkip(s, dir, h.ooo[0].seq, ts)
	}
}

// tcpSkip declares the bytes before seq lost, tells the parser, and delivers
// what was held.
func (sh *shard) tcpSkip(s *stream, dir int, seq uint32, ts time.Time) {
	h := &s.tcp[dir]
	if !seqLess(h.next, seq) {
		return
	}
	n := int(seq - h.next)
	h.next = seq
	sh.c.gaps.Add(1)
	if s.app != nil {
		s.app.gap(sh, s, dir, n)
	}
	sh.tcpDrain(s, dir, ts)
	if h.finSeen && h.next == h.finSeq {
		sh.tcpEnd(s, dir, ts)
	}
}

// tcpDrain delivers held segments that have become in order.
func (sh *shard) tcpDrain(s *stream, dir int, ts time.Time) {
	h := &s.tcp[dir]
	for len(h.ooo) > 0 {
		o := h.ooo[0]
		rel := int32(o.seq - h.next)
		if rel > 0 {
			return
		}
		h.ooo = h.ooo[1:]
		h.oooLen -= len(o.data)
		h.holeAge = 0
		if int(-rel) >= len(o.data) {
			continue
		}
		p := o.data[-rel:]
		s.segSeq, s.segAck = h.next, o.ack
		h.next += uint32(len(p))
		sh.deliver(s, dir, p, ts)
	}
	h.ooo = nil
}

// tcpFlush delivers whatever is still held, skipping holes: the stream is
// closing and nothing more will arrive.
func (sh *shard) tcpFlush(s *stream, dir int) {
	h := &s.tcp[dir]
	for len(h.ooo) > 0 {
		sh.tcpSkip(s, dir, h.ooo[0].seq, s.last)
	}
}

func (sh *shard) tcpEnd(s *stream, dir int, ts time.Time) {
	h := &s.tcp[dir]
	if h.ended {
		return
	}
	h.ended = true
	if s.app != nil {
		s.app.end(sh, s, dir, ts)
	}
}

// app is an L7 parser attached to a stream.
type app interface {
	// data delivers in-order bytes of direction dir (0: a → b); for UDP one
	// datagram.
	data(sh *shard, s *stream, dir int, b []byte, ts time.Time)
	// gap says n bytes of direction dir were lost.
	gap(sh *shard, s *stream, dir int, n int)
	// end says direction dir has ended (FIN or RST).
	end(sh *shard, s *stream, dir int, ts time.Time)
	// close flushes pending state into entries; the stream is going away.
	close(sh *shard, s *stream)
}

// maxDetectTries is how many payload chunks a stream gets to look like a
// known protocol; a capture starting mid-stream may need a few.
const maxDetectTries = 8

// deliver hands in-order payload to the stream's parser, choosing the
// parser first by content.
func (sh *shard) deliver(s *stream, dir int, b []byte, ts time.Time) {
	if !s.appDone {
		sh.detect(s, dir, b)
		if !s.appDone {
			return
		}
	}
	if s.app != nil {
		s.app.data(sh, s, dir, b, ts)
	}
}

func (sh *shard) detect(s *stream, dir int, b []byte) {
	isTCP := s.key.proto == protoTCP
	port53 := s.a.Port() == 53 || s.b.Port() == 53 || s.a.Port() == 5353 || s.b.Port() == 5353
	switch {
	case isTCP && looksTLS(b):
		s.app = newTLSApp()
	case isTCP && looksHTTP(b):
		s.app = newHTTPApp()
	case isTCP && looksH2(b):
		s.app = newH2App(s, dir, true)
	case isTCP && looksAMQP(b):
		s.app = newAMQPApp(dir, s)
	case isTCP && looksRedis(b):
		s.app = newRedisApp(s)
	case isTCP && looksPostgres(b):
		s.app = newPGApp(dir, s)
	case isTCP && looksDNSTCP(b, port53):
		s.app = newDNSApp(true)
	case isTCP && looksKafka(b):
		s.app = newKafkaApp(dir, s)
	case !isTCP && looksDNS(b, port53):
		s.app = newDNSApp(false)
	case isTCP && !s.syn && looksH2Frames(b):
		// Mid-connection HTTP/2: only without the handshake, where the
		// preface cannot have been missed.
		s.app = newH2App(s, -1, false)
	default:
		s.tries++
		if !isTCP || s.tries >= maxDetectTries {
			s.appDone = true
			sh.emitL4(s)
		}
		return
	}
	s.appDone = true
}

func (sh *shard) udpDatagram(s *stream, dir int, dec *decoded, ts time.Time) {
	if len(dec.payload) == 0 {
		return
	}
	sh.deliver(s, dir, dec.payload, ts)
}
