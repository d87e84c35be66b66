package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/bpf"
)

// LiveOptions configure a live capture.
type LiveOptions struct {
	Ifaces []bpf.Interface
	// NetNS is the namespace when Ifaces is empty (interfaces come later).
	NetNS     string
	Backend   bpf.Backend
	Snaplen   uint32
	RingBytes uint32
	// PinDir: see bpf.Options. Pin directories of dead owners next to it
	// are removed first.
	PinDir    string
	Prefilter bpf.Prefilter
	Reader    ReaderOptions
	Logger    *slog.Logger
	// Inline: the caller consumes with Consume in its own goroutine
	// instead of ranging over Batches.
	Inline bool
}

// Live is a running capture: programs attached, a reader running.
//
// Use: consume Batches until it is closed; call Stop to end the capture
// (it detaches first, so the reader drains the ring and then closes
// Batches); call Close when done to read final counters and free the
// objects.
type Live struct {
	Stages   Stages
	objs     *bpf.Objects
	reader   *Reader
	backend  bpf.Backend
	mu       sync.RWMutex
	attached map[int]*bpf.Attachment // by ifindex
	ifaces   map[int]bpf.Interface
	// removed keeps a detached interface's description for a while: its
	// last packets are still in the ring, and the reader needs its link
	// type to decode them.
	removed map[int]removedIface
	// links is ifaces and removed's link types, copied on every change so
	// that the reader looks one up per packet without a lock.
	links atomic.Pointer[map[int]layers.LinkType]
	// final holds the kernel counters read just before Stop detached
	// everything (detaching forgets an interface's counters).
	final     map[bpf.IfKey]bpf.Counters
	cancel    context.CancelFunc
	ctx       context.Context
	done      chan struct{}
	err       error
	stopOnce  sync.Once
	closeOnce sync.Once
	log       *slog.Logger
}

// StartLive removes what crashed runs left behind, loads and attaches the
// programs to every interface and starts reading. On error nothing stays
// attached.
func StartLive(opts LiveOptions) (*Live, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	nsPath := opts.NetNS
	if len(opts.Ifaces) > 0 {
		nsPath = opts.Ifaces[0].NetNS
	}
	if n, err := bpf.CleanupFilters(nsPath); err != nil {
		opts.Logger.Warn("removing leftover tc filters", "err", err)
	} else if n > 0 {
		opts.Logger.Info("removed tc filters left by a previous run", "filters", n)
	}
	if opts.PinDir != "" {
		bpf.CleanupPins(parentDir(opts.PinDir), opts.Logger)
	}
	objs, err := bpf.Load(bpf.Options{Snaplen: opts.Snaplen, RingBytes: opts.RingBytes, PinDir: opts.PinDir, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	l := &Live{objs: objs, done: make(chan struct{}), log: opts.Logger, backend: opts.Backend,
		attached: map[int]*bpf.Attachment{}, ifaces: map[int]bpf.Interface{}, removed: map[int]removedIface{}}
	if !opts.Prefilter.Empty() {
		if err := objs.SetPrefilter(opts.Prefilter); err != nil {
			objs.Close()
			return nil, err
		}
	}
	for _, ifc := range opts.Ifaces {
		if _, err := l.Add(ifc); err != nil {
			objs.Close()
			return nil, err
		}
	}
	opts.Reader.LinkTypes = &l.links
	l.reader, err = NewReader(objs.Events(), NewClock(), &l.Stages, opts.Reader)
	if err != nil {
		objs.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.ctx = cancel, ctx
	if !opts.Inline {
		go func() {
			l.err = l.reader.Run(ctx)
			close(l.done)
		}()
	}
	return l, nil
}

// Consume runs the reader in the calling goroutine, calling fn for every
// batch, until Stop has been called and the ring is drained (LiveOptions
// Inline). The batch is released when fn returns.
func (l *Live) Consume(fn func(*Batch)) error {
	l.err = l.reader.RunInline(l.ctx, fn)
	close(l.done)
	return l.err
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return p
}

// Batches delivers captured packets; closed after Stop once drained.
func (l *Live) Batches() <-chan *Batch { return l.reader.Batches() }

// Attachments lists the interfaces and the backend used on each.
func (l *Live) Attachments() []*bpf.Attachment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*bpf.Attachment, 0, len(l.attached))
	for _, a := range l.attached {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Iface.Index < out[j].Iface.Index })
	return out
}

// Add attaches the programs to ifc, unless it is attached already (then
// it only takes the new description: a renamed link keeps its programs,
// and attaching twice would deliver its packets twice). It reports
// whether it attached.
func (l *Live) Add(ifc bpf.Interface) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.attached[ifc.Index]; ok {
		l.ifaces[ifc.Index] = ifc
		l.publishLinks()
		return false, nil
	}
	// Known before attaching: its first packets may arrive at once.
	l.ifaces[ifc.Index] = ifc
	l.publishLinks()
	a, err := l.objs.Attach(ifc, l.backend)
	if err != nil {
		delete(l.ifaces, ifc.Index)
		l.publishLinks()
		return false, err
	}
	l.attached[ifc.Index] = a
	return true, nil
}

// removedIface is an interface detached at a time.
type removedIface struct {
	bpf.Interface
	at time.Time
}

// removedKeep is how long a detached interface is still described: far
// longer than the reader takes to drain what the ring holds of it.
const removedKeep = 30 * time.Second

// Remove detaches from the interface with that index (gone, usually),
// and reports whether it was attached. Its packets already in the ring
// are still delivered, described by Iface.
func (l *Live) Remove(index int) (bool, error) {
	now := time.Now()
	l.mu.Lock()
	a, ok := l.attached[index]
	delete(l.attached, index)
	if ifc, known := l.ifaces[index]; known {
		l.removed[index] = removedIface{ifc, now}
	}
	delete(l.ifaces, index)
	for i, r := range l.removed {
		if now.Sub(r.at) > removedKeep {
			delete(l.removed, i)
		}
	}
	l.publishLinks()
	l.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, l.objs.Detach(a)
}

// Iface returns what is known of an attached interface, or of one
// detached less than half a minute ago.
func (l *Live) Iface(index int) (bpf.Interface, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if ifc, ok := l.ifaces[index]; ok {
		return ifc, true
	}
	r, ok := l.removed[index]
	return r.Interface, ok
}

// publishLinks copies the link types of ifaces and removed for the
// reader. l.mu is held.
func (l *Live) publishLinks() {
	m := make(map[int]layers.LinkType, len(l.ifaces)+len(l.removed))
	for i, r := range l.removed {
		m[i] = r.LinkType()
	}
	for i, ifc := range l.ifaces {
		m[i] = ifc.LinkType()
	}
	l.links.Store(&m)
}

// Objects gives access to the loaded programs (prefilter updates, counters).
func (l *Live) Objects() *bpf.Objects { return l.objs }

// Stop detaches the programs and lets the reader drain the ring and close
// Batches. It does not wait; Wait does.
func (l *Live) Stop() error {
	var err error
	l.stopOnce.Do(func() {
		var errs []error
		if c, err := l.objs.Counters(); err == nil {
			l.mu.Lock()
			l.final = c
			l.mu.Unlock()
		}
		for _, a := range l.Attachments() {
			if _, e := l.Remove(a.Iface.Index); e != nil {
				errs = append(errs, e)
			}
		}
		l.cancel()
		err = errors.Join(errs...)
	})
	return err
}

// Wait waits for the reader to finish (after Stop) and returns its error.
func (l *Live) Wait() error {
	<-l.done
	return l.err
}

// Counters reads the kernel counters; after Stop, those read as it
// began (before detaching forgot them).
func (l *Live) Counters() (map[bpf.IfKey]bpf.Counters, error) {
	l.mu.RLock()
	final := l.final
	l.mu.RUnlock()
	if final != nil {
		return final, nil
	}
	return l.objs.Counters()
}

// Close stops (if needed), waits, and frees the programs and maps.
func (l *Live) Close() error {
	stopErr := l.Stop()
	// Drain anything the consumer left so the reader can finish.
	drained := make(chan struct{})
	go func() {
		for b := range l.reader.Batches() {
			b.Release()
		}
		close(drained)
	}()
	waitErr := l.Wait()
	<-drained
	var closeErr error
	l.closeOnce.Do(func() {
		closeErr = errors.Join(l.reader.Close(), l.objs.Close())
	})
	if err := errors.Join(stopErr, waitErr, closeErr); err != nil {
		return fmt.Errorf("close capture: %w", err)
	}
	return nil
}
