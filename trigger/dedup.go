package trigger

import (
	"crypto/sha256"
	"sync"
	"time"
)

// dedup remembers the captures started in the last window, keyed by what
// they capture (the rule and the rendered query), so that the same alert
// repeated — Falco fires "Redirect STDOUT/STDIN" once per dup'ed fd, and
// again for every retry of a reverse shell — starts one capture.
//
// Memory is bounded: at most max entries of fixed size (the key is a
// SHA-256). Entries expire in insertion order (the window is constant), so
// a FIFO finds them without scanning; when the table is full of live
// entries, the oldest is evicted early and counted.
type dedup struct {
	mu      sync.Mutex
	window  time.Duration
	max     int
	entries map[[32]byte]*dedupEntry
	fifo    []fifoItem // insertion order; head is fifo[head]
	head    int
	evicted uint64
	now     func() time.Time
}

type dedupEntry struct {
	expires time.Time
	id      string // capture id once started; "" while starting
	err     error  // why the start failed
	done    chan struct{}
}

type fifoItem struct {
	key     [32]byte
	expires time.Time
}

func newDedup(window time.Duration, max int, now func() time.Time) *dedup {
	return &dedup{window: window, max: max, entries: make(map[[32]byte]*dedupEntry), now: now}
}

func dedupKey(rule, query string) [32]byte {
	h := sha256.New()
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write([]byte(query))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// claim returns (e, true) when the caller must start the capture and then
// call settle(key, e, …); otherwise (e, false) with the entry of the
// capture already started or starting, whose outcome (id, err) is readable
// once e.done is closed.
func (d *dedup) claim(key [32]byte) (*dedupEntry, bool) {
	e := &dedupEntry{done: make(chan struct{})}
	if d.window <= 0 {
		return e, true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expire(now)
	if prev, ok := d.entries[key]; ok && now.Before(prev.expires) {
		return prev, false
	}
	// Every entry has a FIFO item, so bounding the FIFO bounds both.
	for len(d.fifo)-d.head >= d.max {
		d.drop(d.fifo[d.head].key, d.fifo[d.head].expires)
		d.head++
		d.evicted++
	}
	e.expires = now.Add(d.window)
	d.entries[key] = e
	d.fifo = append(d.fifo, fifoItem{key: key, expires: e.expires})
	return e, true
}

// settle records the outcome of a claimed start. A failed start forgets
// the key so that the next alert may try again.
func (d *dedup) settle(key [32]byte, e *dedupEntry, id string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e.id, e.err = id, err
	if err != nil && d.entries[key] == e {
		delete(d.entries, key)
	}
	select {
	case <-e.done:
	default:
		close(e.done)
	}
}

func (d *dedup) expire(now time.Time) {
	for d.head < len(d.fifo) && !now.Before(d.fifo[d.head].expires) {
		d.drop(d.fifo[d.head].key, d.fifo[d.head].expires)
		d.head++
	}
	// Compact the FIFO once its consumed head dominates it.
	if d.head > 1024 && d.head*2 > len(d.fifo) {
		d.fifo = append(d.fifo[:0:0], d.fifo[d.head:]...)
		d.head = 0
	}
}

// drop removes key if the map still holds the entry that FIFO item
// stands for (a key re-added later has a later expiry).
func (d *dedup) drop(key [32]byte, expires time.Time) {
	if e, ok := d.entries[key]; ok && e.expires.Equal(expires) {
		delete(d.entries, key) // a start still running settles its own entry
	}
}

// size returns the live entries and the FIFO's length, for tests.
func (d *dedup) size() (int, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries), len(d.fifo) - d.head
}
