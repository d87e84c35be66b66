package collector

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ring is a zero-copy consumer of a BPF ring buffer map: records are read
// in place from the kernel's mapping and the space is returned to the
// kernel only when the consumer position is advanced past them.
//
// Layout (kernel/bpf/ringbuf.c): the consumer position on a writable page,
// then, read-only, the producer position on its own page followed by the
// data area mapped twice in a row, so that a record that wraps around the
// end is still contiguous in memory. Each record starts with an 8-byte
// header: a 32-bit length with a BUSY bit (not yet committed) and a
// DISCARD bit, then 32 bits the kernel uses.
type ring struct {
	fd       int
	epfd     int
	ep       *os.File        // epfd in Go's poller: waiting parks a goroutine, not a thread
	epc      syscall.RawConn // ep's raw access
	consMem  []byte
	prodMem  []byte
	cons     *uint64
	prod     *uint64
	data     []byte
	mask     uint64
	pos      uint64 // next record to parse (≥ *cons)
	released uint64 // what the consumer position was last set to
}

const (
	ringBusy    = 1 << 31
	ringDiscard = 1 << 30
	ringHdrLen  = 8
)

func newRing(m *ebpf.Map) (*ring, error) {
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("map %s is not a ring buffer", m)
	}
	size := uint64(m.MaxEntries())
	page := os.Getpagesize()
	fd, err := unix.Dup(m.FD())
	if err != nil {
		return nil, fmt.Errorf("dup ring buffer fd: %w", err)
	}
	r := &ring{fd: fd, epfd: -1, mask: size - 1}
	r.consMem, err = unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("map ring buffer consumer page: %w", err)
	}
	r.prodMem, err = unix.Mmap(fd, int64(page), page+2*int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("map ring buffer data: %w", err)
	}
	r.cons = (*uint64)(unsafe.Pointer(&r.consMem[0]))
	r.prod = (*uint64)(unsafe.Pointer(&r.prodMem[0]))
	r.data = r.prodMem[page:]
	r.pos = atomic.LoadUint64(r.cons)
	r.released = r.pos
	r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	// Edge-triggered: level-triggered epoll reports the ring readable as
	// soon as one record (even one still being written) waits, which turns
	// the reader into a busy loop of tiny batches and defeats the
	// programs' batched wake-ups. With EPOLLET the reader sleeps until the
	// programs force a wake-up (the ring holds the threshold) or its
	// deadline passes.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.close()
		return nil, fmt.Errorf("watch ring buffer: %w", err)
	}
	// The epoll fd is itself pollable: handed to Go's poller, a wait parks
	// the reader's goroutine instead of holding a thread in a blocking
	// epoll_wait, whose every entry wakes the runtime's monitor thread
	// for a burst of polls (about half of an idle agent's wake-ups).
	if err := unix.SetNonblock(r.epfd, true); err != nil {
		r.close()
		return nil, fmt.Errorf("epoll non-blocking: %w", err)
	}
	r.ep = os.NewFile(uintptr(r.epfd), "kflcap-ringbuf-epoll")
	if r.epc, err = r.ep.SyscallConn(); err != nil {
		r.close()
		return nil, fmt.Errorf("epoll in the poller: %w", err)
	}
	return r, nil
}

// next returns the next committed record's sample (in place, read-only)
// and the position after it; ok is false when none is ready. Discarded
// records are skipped.
func (r *ring) next() (sample []byte, end uint64, ok bool) {
	prod := atomic.LoadUint64(r.prod)
	for r.pos < prod {
		off := r.pos & r.mask
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[off])))
		if hdr&ringBusy != 0 {
			return nil, 0, false // reserved, not committed yet
		}
		n := uint64(hdr &^ (ringBusy | ringDiscard))
		r.pos += (n + ringHdrLen + 7) &^ 7
		if hdr&ringDiscard != 0 {
			continue
		}
		return r.data[off+ringHdrLen : off+ringHdrLen+n : off+ringHdrLen+n], r.pos, true
	}
	return nil, 0, false
}

// release hands the space before pos back to the kernel.
func (r *ring) release(pos uint64) {
	if pos > r.released {
		r.released = pos
		atomic.StoreUint64(r.cons, pos)
	}
}

// pending reports whether committed or in-flight records wait.
func (r *ring) pending() bool { return r.pos < atomic.LoadUint64(r.prod) }

// wait blocks until the kernel signals new data or d passes.
func (r *ring) wait(d time.Duration) error {
	if err := r.ep.SetReadDeadline(time.Now().Add(d)); err != nil {
		return fmt.Errorf("wait for ring buffer: %w", err)
	}
	var evs [1]unix.EpollEvent
	var werr error
	err := r.epc.Read(func(fd uintptr) bool {
		n, err := unix.EpollWait(int(fd), evs[:], 0)
		switch {
		case errors.Is(err, unix.EINTR):
			return false
		case err != nil:
			werr = err
			return true
		}
		return n > 0 // none yet: park until the poller says epfd is readable
	})
	if err == nil {
		err = werr
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("wait for ring buffer: %w", err)
	}
	return nil
}

func (r *ring) close() {
	if r.ep != nil {
		r.ep.Close() // closes epfd
	} else if r.epfd >= 0 {
		unix.Close(r.epfd)
	}
	if r.prodMem != nil {
		unix.Munmap(r.prodMem)
	}
	if r.consMem != nil {
		unix.Munmap(r.consMem)
	}
	unix.Close(r.fd)
}
