package agent

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"
)

// Lookback keeps the most recent captured packets, up to a byte budget, in
// one preallocated ring of memory, so that a capture triggered at time T can
// include packets from before T. Adding a packet copies it into the ring
// and evicts the oldest packets to make room; nothing is allocated per
// packet. Safe for concurrent use.
type Lookback struct {
	mu  sync.Mutex
	buf []byte
	// Records are contiguous. Unwrapped (head > tail): they fill
	// [tail, head). Wrapped (head <= tail, n > 0): [tail, wrapEnd) then
	// [0, head); the bytes from wrapEnd to the end are unused.
	head, tail, wrapEnd int
	n                   int // records held
	// Evicted counts packets pushed out by newer ones.
	Evicted uint64
	// Dropped counts packets larger than the whole ring.
	Dropped uint64
}

// Record layout: unixNano u64, wireLen u32, capLen u32, ifindex u32,
// link u16, outgoing u8, pad u8, then capLen bytes, padded to 8.
const lbHdr = 24

// NewLookback makes a ring of maxBytes (0: no lookback).
func NewLookback(maxBytes int) *Lookback {
	return &Lookback{buf: make([]byte, maxBytes), wrapEnd: maxBytes}
}

// Cap is the ring's size in bytes.
func (l *Lookback) Cap() int { return len(l.buf) }

func recSize(capLen int) int { return (lbHdr + capLen + 7) &^ 7 }

// Add copies p into the ring, evicting the oldest packets to make room.
func (l *Lookback) Add(p *packet.Packet) {
	size := recSize(len(p.Data))
	l.mu.Lock()
	defer l.mu.Unlock()
	if size > len(l.buf) {
		l.Dropped++
		return
	}
	at := -1
	for at < 0 {
		if l.n == 0 {
			l.head, l.tail, l.wrapEnd = 0, 0, len(l.buf)
		}
		switch {
		case l.n == 0 || l.head > l.tail: // unwrapped
			if len(l.buf)-l.head >= size {
				at = l.head
			} else if l.tail >= size {
				// Not enough room before the end: the rest of the ring stays
				// unused and the record goes to the start.
				l.wrapEnd = l.head
				at = 0
			} else {
				l.evict()
			}
		default: // wrapped
			if l.tail-l.head >= size {
				at = l.head
			} else {
				l.evict()
			}
		}
	}
	b := l.buf[at : at+size]
	binary.LittleEndian.PutUint64(b[0:], uint64(p.Time.UnixNano()))
	binary.LittleEndian.PutUint32(b[8:], uint32(p.WireLen))
	binary.LittleEndian.PutUint32(b[12:], uint32(len(p.Data)))
	binary.LittleEndian.PutUint32(b[16:], uint32(p.Ifindex))
	binary.LittleEndian.PutUint16(b[20:], uint16(p.LinkType))
	b[22] = byte(p.Dir)
	copy(b[lbHdr:], p.Data)
	l.head = at + size
	l.n++
}

// evict drops the oldest record.
func (l *Lookback) evict() {
	l.tail += recSize(int(binary.LittleEndian.Uint32(l.buf[l.tail+12:])))
	l.n--
	l.Evicted++
	if l.tail >= l.wrapEnd && l.n > 0 {
		l.tail, l.wrapEnd = 0, len(l.buf)
	}
}

// Since calls fn, oldest first, for every packet captured at or after t.
// p.Data is valid only during the call. The ring is locked meanwhile.
func (l *Lookback) Since(t time.Time, fn func(p *packet.Packet)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := t.UnixNano()
	pos := l.tail
	var p packet.Packet
	for i := 0; i < l.n; i++ {
		if pos >= l.wrapEnd {
			pos = 0
		}
		b := l.buf[pos:]
		capLen := int(binary.LittleEndian.Uint32(b[12:]))
		if ts := int64(binary.LittleEndian.Uint64(b[0:])); ts >= from {
			p = packet.Packet{
				Time:     time.Unix(0, ts),
				WireLen:  int(binary.LittleEndian.Uint32(b[8:])),
				Ifindex:  int(binary.LittleEndian.Uint32(b[16:])),
				LinkType: layers.LinkType(binary.LittleEndian.Uint16(b[20:])),
				Dir:      packet.Direction(b[22]),
				Data:     b[lbHdr : lbHdr+capLen : lbHdr+capLen],
			}
			fn(&p)
		}
		pos += recSize(capLen)
	}
}

// Oldest is the capture time of the oldest packet held (zero when empty).
func (l *Lookback) Oldest() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(l.buf[l.tail:])))
}

// Len is the number of packets held.
func (l *Lookback) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
