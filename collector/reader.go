package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/kflcap/kflcap/bpf"
)

// Packet is one captured packet.
type Packet struct {
	UnixNano int64 // wall-clock capture time
	WireLen  int   // length on the wire; len(Data) is the captured length
	Ifindex  int
	Dir      bpf.Direction
	Data     []byte // valid until the batch holding it is released
}

// Batch is a run of packets read together. Their Data point into one arena.
type Batch struct {
	Packets []Packet
	arena   []byte
	pool    *sync.Pool
}

// Release gives the batch back for reuse. Its packets must not be used after.
func (b *Batch) Release() {
	if b.pool == nil {
		return
	}
	b.Packets = b.Packets[:0]
	b.arena = b.arena[:0]
	b.pool.Put(b)
}

const (
	batchPackets = 512
	batchBytes   = 2 << 20
)

// Stages counts what each user-space stage received and lost. Every loss is
// counted where it happens, so that kernel drops + stage drops account for
// every packet seen and not written.
type Stages struct {
	Read       atomic.Uint64 // records read from the ring buffer
	Malformed  atomic.Uint64 // records too short to hold their header
	QueueDrops atomic.Uint64 // packets lost because the hand-off queue was full
}

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// Deadline bounds how long a packet can wait in the ring: with batched
	// wake-ups the programs do not wake the reader for every record.
	// Default 50ms.
	Deadline time.Duration
	// QueueLen is the number of batches the hand-off queue holds. Default 64.
	QueueLen int
}

// Reader reads records from the capture ring buffer into batches.
type Reader struct {
	rd    *ringbuf.Reader
	clock *Clock
	out   chan *Batch
	pool  sync.Pool
	opts  ReaderOptions
	stats *Stages
}

// NewReader opens a reader on the events ring buffer map.
func NewReader(events *ebpf.Map, clock *Clock, stats *Stages, opts ReaderOptions) (*Reader, error) {
	if opts.Deadline <= 0 {
		opts.Deadline = 50 * time.Millisecond
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 64
	}
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	r := &Reader{rd: rd, clock: clock, out: make(chan *Batch, opts.QueueLen), opts: opts, stats: stats}
	r.pool.New = func() any {
		return &Batch{Packets: make([]Packet, 0, batchPackets), arena: make([]byte, 0, batchBytes), pool: &r.pool}
	}
	return r, nil
}

// Batches is the output: closed when Run returns.
func (r *Reader) Batches() <-chan *Batch { return r.out }

// Run reads until ctx ends, then drains what the ring still holds and
// returns. Detach the programs before ending ctx so that the drain ends.
func (r *Reader) Run(ctx context.Context) error {
	defer close(r.out)
	defer r.rd.Close()
	var rec ringbuf.Record
	b := r.pool.Get().(*Batch)
	lastRefresh := time.Now()
	stopping := false
	for {
		if !stopping && ctx.Err() != nil {
			stopping = true
		}
		r.rd.SetDeadline(time.Now().Add(r.opts.Deadline))
		err := r.rd.ReadInto(&rec)
		switch {
		case err == nil:
			r.add(b, rec.RawSample)
			if len(b.Packets) == cap(b.Packets) || len(b.arena)+bpf.MaxSnaplen > cap(b.arena) {
				r.send(b)
				b = r.pool.Get().(*Batch)
			}
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The ring is empty for now.
			if len(b.Packets) > 0 {
				r.send(b)
				b = r.pool.Get().(*Batch)
			}
			if stopping {
				return nil
			}
			if time.Since(lastRefresh) > 10*time.Second {
				r.clock.Refresh()
				lastRefresh = time.Now()
			}
		case errors.Is(err, ringbuf.ErrClosed):
			r.send(b)
			return nil
		default:
			r.send(b)
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// add appends one record to b.
func (r *Reader) add(b *Batch, raw []byte) {
	r.stats.Read.Add(1)
	if len(raw) < bpf.RecordHeaderLen {
		r.stats.Malformed.Add(1)
		return
	}
	capLen := int(binary.NativeEndian.Uint32(raw[12:]))
	if capLen > len(raw)-bpf.RecordHeaderLen {
		r.stats.Malformed.Add(1)
		return
	}
	start := len(b.arena)
	b.arena = append(b.arena, raw[bpf.RecordHeaderLen:bpf.RecordHeaderLen+capLen]...)
	b.Packets = append(b.Packets, Packet{
		UnixNano: r.clock.UnixNano(binary.NativeEndian.Uint64(raw[0:])),
		WireLen:  int(binary.NativeEndian.Uint32(raw[8:])),
		Ifindex:  int(binary.NativeEndian.Uint32(raw[16:])),
		Dir:      bpf.Direction(raw[20]),
		Data:     b.arena[start : start+capLen : start+capLen],
	})
}

// send hands b on, or counts its packets as lost when the queue is full.
func (r *Reader) send(b *Batch) {
	if len(b.Packets) == 0 {
		b.Release()
		return
	}
	select {
	case r.out <- b:
	default:
		r.stats.QueueDrops.Add(uint64(len(b.Packets)))
		b.Release()
	}
}
