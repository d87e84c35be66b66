package collector

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// linkLog records what WatchLinks reports.
type linkLog struct {
	mu    sync.Mutex
	added map[string]int // name → index
	gone  map[int]bool
	errs  []error
}

func (l *linkLog) has(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.added[name]
	return ok
}

// WatchLinks reports links that existed before it subscribed, follows new
// ones, and, when a consumer too slow for a burst makes netlink drop
// events (the subscription fails), subscribes again and catches up: the
// links that went meanwhile are reported gone, and later links are seen.
func TestWatchLinksResync(t *testing.T) {
	p := netnstest.NewPair(t)
	nsPath := "/var/run/netns/" + p.A
	netnstest.Exec(t, p.A, "ip", "link", "add", "pre0", "type", "veth", "peer", "name", "pre0p")
	sel, err := NewSelector([]string{"any"})
	if err != nil {
		t.Fatal(err)
	}
	log := &linkLog{added: map[string]int{}, gone: map[int]bool{}}
	gate := make(chan struct{})
	var gateOnce sync.Once
	blocked := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = WatchLinks(ctx, nsPath, sel,
		func(ifc bpf.Interface) {
			if strings.HasPrefix(ifc.Name, "burst") {
				gateOnce.Do(func() { close(blocked) })
				<-gate // a slow consumer: netlink's socket buffer fills
			}
			log.mu.Lock()
			log.added[ifc.Name] = ifc.Index
			delete(log.gone, ifc.Index)
			log.mu.Unlock()
		},
		func(index int) {
			log.mu.Lock()
			log.gone[index] = true
			log.mu.Unlock()
		},
		func(err error) {
			log.mu.Lock()
			log.errs = append(log.errs, err)
			log.mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	netnstest.WaitUntil(t, 10*time.Second, "the link made before the watch", func() bool { return log.has("pre0") })

	// A burst while the consumer is stuck.
	var script strings.Builder
	for i := range 500 {
		fmt.Fprintf(&script, "link add burst%d type veth peer name burst%dp\nlink del burst%d\n", i, i, i)
	}
	script.WriteString("link add keep0 type veth peer name keep0p\n")
	netnstest.Exec(t, p.A, "ip", "link", "add", "gone0", "type", "veth", "peer", "name", "gone0p")
	netnstest.WaitUntil(t, 10*time.Second, "gone0", func() bool { return log.has("gone0") })
	cmd := exec.Command("ip", "-n", p.A, "-batch", "-")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	netnstest.Exec(t, p.A, "ip", "link", "del", "gone0")
	<-blocked
	close(gate)

	netnstest.WaitUntil(t, 10*time.Second, "keep0 after the burst", func() bool { return log.has("keep0") })
	log.mu.Lock()
	goneIdx := log.added["gone0"]
	log.mu.Unlock()
	netnstest.WaitUntil(t, 10*time.Second, "gone0 reported gone", func() bool { log.mu.Lock(); defer log.mu.Unlock(); return log.gone[goneIdx] })
	log.mu.Lock()
	errs := append([]error(nil), log.errs...)
	log.mu.Unlock()
	t.Logf("errors reported: %v", errs)
	if len(errs) == 0 {
		t.Fatal("the burst did not overflow netlink: the resubscription was not exercised")
	}
	// Later links are still followed.
	netnstest.Exec(t, p.A, "ip", "link", "add", "late0", "type", "veth", "peer", "name", "late0p")
	netnstest.WaitUntil(t, 10*time.Second, "a link after the burst", func() bool { return log.has("late0") })

	// No error is reported once the watch is cancelled. Nothing is to
	// happen, so there is no condition to wait for: the test gives a
	// wrongly still-running watch 100 ms to show itself, after the cancel
	// and after a new link.
	cancel()
	time.Sleep(100 * time.Millisecond)
	log.mu.Lock()
	n := len(log.errs)
	log.mu.Unlock()
	netnstest.Exec(t, p.A, "ip", "link", "add", "after0", "type", "veth", "peer", "name", "after0p")
	time.Sleep(100 * time.Millisecond)
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.errs) != n || log.added["after0"] != 0 {
		t.Errorf("after cancel: %d more errors, after0 reported %v", len(log.errs)-n, log.added["after0"] != 0)
	}
}
