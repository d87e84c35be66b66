package collector

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/packet"
)

// Batch is a run of packets read together, in ring order.
type Batch struct {
	Packets []packet.Packet
	end     uint64 // ring position after the batch's last record
	done    bool
	r       *Reader
}

// Release hands the batch's ring space back to the kernel. Its packets
// must not be used after. Batches may be released in any order; the space
// returns in ring order.
func (b *Batch) Release() { b.r.release(b) }

const batchPackets = 1024

// Stages counts what user space received and lost, by stage. Every loss is
// counted where it happens, so that kernel drops + stage drops account for
// every packet seen and not written.
type Stages struct {
	Read      atomic.Uint64 // records read from the ring buffer
	Malformed atomic.Uint64 // records too short for their header or length
}

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// Deadline bounds how long a packet can wait in the ring: with batched
	// wake-ups the programs do not wake the reader for every record.
	// Default 50ms.
	Deadline time.Duration
	// QueueLen is how many batches may be handed out and not yet released.
	// When that many are out, the reader waits and the ring buffer absorbs
	// the traffic (its overflow is counted in the kernel). Default 64.
	QueueLen int
	// LinkTypes maps interface indexes to link types, replaced whole when
	// interfaces come and go; nil, or an index it lacks: Ethernet.
	LinkTypes *atomic.Pointer[map[int]layers.LinkType]
}

// Reader reads records from the capture ring buffer into batches, without
// copying packet bytes.
type Reader struct {
	ring  *ring
	clock *Clock
	out   chan *Batch
	opts  ReaderOptions
	stats *Stages

	mu          sync.Mutex
	outstanding []*Batch // handed out, in ring order
	pool        []*Batch
	freed       chan struct{}
}

// NewReader opens a reader on the events ring buffer map.
func NewReader(events *ebpf.Map, clock *Clock, stats *Stages, opts ReaderOptions) (*Reader, error) {
	if opts.Deadline <= 0 {
		opts.Deadline = 50 * time.Millisecond
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 64
	}
	rg, err := newRing(events)
	if err != nil {
		return nil, err
	}
	return &Reader{ring: rg, clock: clock, out: make(chan *Batch, opts.QueueLen), opts: opts, stats: stats,
		freed: make(chan struct{}, 1)}, nil
}

// Batches is the output: closed when Run returns.
func (r *Reader) Batches() <-chan *Batch { return r.out }

// Run reads until ctx ends, then drains what the ring still holds and
// returns. Detach the programs before ending ctx so that the drain ends.
// The ring stays mapped until every batch handed out is released.
func (r *Reader) Run(ctx context.Context) error {
	defer close(r.out)
	return r.run(ctx, r.hand)
}

// RunInline reads like Run but calls fn with each batch in the calling
// goroutine and releases the batch when fn returns: no hand-off, for a
// consumer that keeps up (capture -w). Batches is not used.
func (r *Reader) RunInline(ctx context.Context, fn func(*Batch)) error {
	defer close(r.out)
	return r.run(ctx, func(b *Batch) {
		r.mu.Lock()
		r.outstanding = append(r.outstanding, b)
		r.mu.Unlock()
		fn(b)
		b.Release()
	})
}

func (r *Reader) run(ctx context.Context, emit func(*Batch)) error {
	lastRefresh := time.Now()
	for {
		stopping := ctx.Err() != nil
		b := r.getBatch()
		lt := linkCache{src: r.opts.LinkTypes, ifindex: -1}
		n := 0
		for len(b.Packets) < batchPackets {
			sample, end, ok := r.ring.next()
			if !ok {
				break
			}
			b.end = end
			r.add(b, sample, &lt)
			n++
		}
		r.stats.Read.Add(uint64(n))
		if b.end != 0 {
			emit(b)
			continue
		}
		r.putBatch(b)
		if stopping && !r.ring.pending() {
			return nil
		}
		if err := r.ring.wait(r.opts.Deadline); err != nil {
			return err
		}
		if time.Since(lastRefresh) > 10*time.Second {
			r.clock.Refresh()
			lastRefresh = time.Now()
		}
	}
}

// linkCache looks link types up for one batch, remembering the last
// interface (a batch's records mostly come from one) and the table it
// loaded; an index the table lacks loads it again (an interface attached
// while the batch was read).
type linkCache struct {
	src     *atomic.Pointer[map[int]layers.LinkType]
	m       *map[int]layers.LinkType
	ifindex int
	lt      layers.LinkType
}

func (c *linkCache) get(ifindex int) layers.LinkType {
	if ifindex == c.ifindex {
		return c.lt
	}
	c.ifindex, c.lt = ifindex, layers.LinkTypeEthernet
	if c.src == nil {
		return c.lt
	}
	for reloaded := c.m == nil; ; reloaded = true {
		if reloaded {
			c.m = c.src.Load()
		}
		if c.m != nil {
			if lt, ok := (*c.m)[ifindex]; ok {
				c.lt = lt
				return lt
			}
		}
		if reloaded {
			return c.lt
		}
	}
}

// add appends one record to b, decoding it in place in the batch.
func (r *Reader) add(b *Batch, raw []byte, links *linkCache) {
	n := len(b.Packets)
	b.Packets = append(b.Packets, packet.Packet{})
	p := &b.Packets[n]
	bootNs, ok := bpf.DecodeRecord(raw, p)
	if !ok {
		b.Packets = b.Packets[:n]
		r.stats.Malformed.Add(1)
		return
	}
	p.Time = r.clock.Time(bootNs)
	p.LinkType = links.get(p.Ifindex)
}

// hand records b as outstanding and sends it on, waiting while QueueLen
// batches are out.
func (r *Reader) hand(b *Batch) {
	for {
		r.mu.Lock()
		if len(r.outstanding) < r.opts.QueueLen {
			r.outstanding = append(r.outstanding, b)
			r.mu.Unlock()
			break
		}
		r.mu.Unlock()
		<-r.freed
	}
	r.out <- b
}

func (r *Reader) release(b *Batch) {
	r.mu.Lock()
	b.done = true
	n := 0
	for n < len(r.outstanding) && r.outstanding[n].done {
		n++
	}
	if n > 0 {
		r.ring.release(r.outstanding[n-1].end)
		for _, d := range r.outstanding[:n] {
			d.Packets, d.done, d.end = d.Packets[:0], false, 0
			r.pool = append(r.pool, d)
		}
		r.outstanding = append(r.outstanding[:0], r.outstanding[n:]...)
	}
	r.mu.Unlock()
	select {
	case r.freed <- struct{}{}:
	default:
	}
}

func (r *Reader) getBatch() *Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.pool); n > 0 {
		b := r.pool[n-1]
		r.pool = r.pool[:n-1]
		return b
	}
	return &Batch{Packets: make([]packet.Packet, 0, batchPackets), r: r}
}

func (r *Reader) putBatch(b *Batch) {
	r.mu.Lock()
	r.pool = append(r.pool, b)
	r.mu.Unlock()
}

// Close unmaps the ring. Call it after Run returned and every batch was
// released.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.outstanding) > 0 {
		return fmt.Errorf("close reader: %d batches not released", len(r.outstanding))
	}
	r.ring.close()
	return nil
}
