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
// SHA-256). A failed start leaves no entry. When the table is full, expired
// entries are swept; if it is still full of live ones, the entry closest to
// expiry is evicted early and counted. Both scans are O(max) and happen
// only on a full table.
type dedup struct {
	mu      sync.Mutex
	window  time.Duration
	max     int
	entries map[[32]byte]*dedupEntry
	evicted uint64
	now     func() time.Time
}

type dedupEntry struct {
	expires time.Time
	id      string // capture id once started; "" while starting
	err     error  // why the start failed
	done    chan struct{}
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
	if prev, ok := d.entries[key]; ok {
		if now.Before(prev.expires) {
			return prev, false
		}
		delete(d.entries, key)
	}
	if len(d.entries) >= d.max {
		d.sweep(now)
	}
	e.expires = now.Add(d.window)
	d.entries[key] = e
	return e, true
}

// sweep drops expired entries, then, if the table is still full, the one
// closest to expiry.
func (d *dedup) sweep(now time.Time) {
	var oldest [32]byte
	var oldestAt time.Time
	for k, e := range d.entries {
		if !now.Before(e.expires) {
			delete(d.entries, k)
			continue
		}
		if oldestAt.IsZero() || e.expires.Before(oldestAt) {
			oldest, oldestAt = k, e.expires
		}
	}
	if len(d.entries) >= d.max && !oldestAt.IsZero() {
		delete(d.entries, oldest) // a start still running settles its own entry
		d.evicted++
	}
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

// size returns the number of entries, for tests.
func (d *dedup) size() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}
