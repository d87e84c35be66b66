package trigger

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestDedupWindow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	d := newDedup(5*time.Second, 100, clk.now)
	k := dedupKey("r", "dst.ip == \"1.2.3.4\"")
	e, mine := d.claim(k)
	if !mine {
		t.Fatal("first claim is not the caller's")
	}
	d.settle(k, e, "c1", nil)
	clk.add(4 * time.Second)
	if prev, mine := d.claim(k); mine || prev.id != "c1" {
		t.Fatalf("within the window: mine=%v id=%q", mine, prev.id)
	}
	if _, mine := d.claim(dedupKey("r2", "dst.ip == \"1.2.3.4\"")); !mine {
		t.Error("another rule's capture is a duplicate")
	}
	clk.add(1 * time.Second)
	if _, mine := d.claim(k); !mine {
		t.Error("after the window the key is still taken")
	}
}

func TestDedupFailedStartForgets(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	d := newDedup(5*time.Second, 100, clk.now)
	k := dedupKey("r", "q")
	e, _ := d.claim(k)
	// A waiter sees the failure.
	prev, mine := d.claim(k)
	if mine {
		t.Fatal("second claim while starting is the caller's")
	}
	d.settle(k, e, "", ErrTooMany)
	<-prev.done
	if !errors.Is(prev.err, ErrTooMany) {
		t.Errorf("waiter sees %v", prev.err)
	}
	if _, mine := d.claim(k); !mine {
		t.Error("a failed start still blocks the key")
	}
}

func TestDedupBounded(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	d := newDedup(5*time.Second, 64, clk.now)
	for i := 0; i < 10_000; i++ {
		k := dedupKey("r", string(rune(i)))
		e, mine := d.claim(k)
		if !mine {
			t.Fatalf("key %d taken", i)
		}
		d.settle(k, e, "id", nil)
		if i%2 == 0 {
			clk.add(time.Millisecond)
		}
	}
	if n := d.size(); n > 64 {
		t.Errorf("table holds %d entries, cap 64", n)
	}
	if d.evicted == 0 {
		t.Error("no eviction counted")
	}
	// Expired entries are swept before anything live is evicted.
	clk.add(6 * time.Second)
	ev := d.evicted
	for i := 0; i < 64; i++ {
		d.claim(dedupKey("x", string(rune(i))))
	}
	if d.size() != 64 || d.evicted != ev {
		t.Errorf("%d entries, %d evictions after expiry", d.size(), d.evicted-ev)
	}
	// Failed starts take no room.
	for i := 0; i < 1000; i++ {
		k := dedupKey("f", string(rune(i)))
		e, _ := d.claim(k)
		d.settle(k, e, "", ErrTooMany)
	}
	if d.size() > 64 {
		t.Errorf("%d entries after failed starts", d.size())
	}
	for i := 0; i < 1000; i++ {
		if _, ok := d.entries[dedupKey("f", string(rune(i)))]; ok {
			t.Fatal("a failed start left its entry")
		}
	}
}
