package kube

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kflcap/kflcap/names"
)

// fakeClock is a settable clock for the table.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestTable(linger time.Duration) (*table, *names.History, *fakeClock) {
	nm := names.New(0)
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	tb := newTable(nm, linger)
	tb.now = clk.now
	return tb, nm, clk
}

var (
	podIP  = netip.MustParseAddr("10.244.1.10")
	svcIP  = netip.MustParseAddr("10.96.0.20")
	webPod = &Identity{Name: "web-1", Namespace: "shop", Kind: KindPod, Labels: map[string]string{"app": "web"}}
	webSvc = &Identity{Name: "web", Namespace: "shop", Kind: KindService}
)

func ipc(a netip.Addr, id *Identity, prio int) map[netip.Addr]claim {
	return map[netip.Addr]claim{a: {id: id, prio: prio}}
}

func resolveName(tb *table, a netip.Addr, port uint16) string {
	if id := tb.resolve(a, port); id != nil {
		return id.Name + "/" + id.Namespace
	}
	return ""
}

// TestTablePriorities: the pod itself outranks its endpointslice entry,
// which outranks a pod-less endpoint; a service's cluster IP:port names the
// service, and a pod's address names the pod whatever the port.
func TestTablePriorities(t *testing.T) {
	tb, _, _ := newTestTable(time.Minute)
	svcOnly := &Identity{Name: "web", Namespace: "shop", Kind: KindService}
	slicePod := &Identity{Name: "web-1", Namespace: "shop", Kind: KindPod}
	tb.set(owner{'e', "shop", "web-abc"}, ipc(podIP, svcOnly, prioEndpoint),
		map[netip.AddrPort]claim{netip.AddrPortFrom(podIP, 8080): {id: svcOnly, prio: prioEndpoint}})
	if got := resolveName(tb, podIP, 1234); got != "web/shop" {
		t.Fatalf("pod-less endpoint: %q", got)
	}
	tb.set(owner{'e', "shop", "web-abc"}, ipc(podIP, slicePod, prioEndpointPod),
		map[netip.AddrPort]claim{netip.AddrPortFrom(podIP, 8080): {id: svcOnly, prio: prioEndpoint}})
	if got := resolveName(tb, podIP, 8080); got != "web-1/shop" {
		t.Fatalf("endpoint naming its pod: %q", got)
	}
	tb.set(owner{'p', "shop", "web-1"}, ipc(podIP, webPod, prioPod), nil)
	if id, _ := tb.lookup(podIP); id != webPod {
		t.Fatalf("pod informer's identity (with labels) should win: %+v", id)
	}
	tb.set(owner{'s', "shop", "web"}, ipc(svcIP, webSvc, prioService),
		map[netip.AddrPort]claim{netip.AddrPortFrom(svcIP, 80): {id: webSvc, prio: prioService}})
	if got := resolveName(tb, svcIP, 80); got != "web/shop" {
		t.Fatalf("cluster IP:port: %q", got)
	}
	if got := resolveName(tb, svcIP, 9); got != "web/shop" {
		t.Fatalf("cluster IP, other port: %q", got)
	}
	if got := resolveName(tb, netip.MustParseAddr("::ffff:10.96.0.20"), 80); got != "web/shop" {
		t.Fatalf("v4-mapped address: %q", got)
	}
	if got := resolveName(tb, netip.MustParseAddr("10.1.2.3"), 80); got != "" {
		t.Fatalf("unknown address: %q", got)
	}
	if a, ok := tb.podIP("shop", "web-1"); !ok || a != podIP {
		t.Fatalf("podIP: %v %v", a, ok)
	}
	// The pod goes; its endpointslice entry still names it.
	tb.set(owner{'p', "shop", "web-1"}, nil, nil)
	if got := resolveName(tb, podIP, 1); got != "web-1/shop" {
		t.Fatalf("after pod delete, slice entry: %q", got)
	}
	tb.set(owner{'e', "shop", "web-abc"}, nil, nil)
	if _, ok := tb.podIP("shop", "web-1"); ok {
		t.Fatal("podIP of a pod nobody claims any more")
	}
}

// TestTableLingerAndHistory: a deleted pod resolves for the linger time
// and for good in the history; a new owner of the address replaces it,
// and the history holds both at their times.
func TestTableLingerAndHistory(t *testing.T) {
	tb, nm, clk := newTestTable(time.Minute)
	t0 := clk.t
	tb.set(owner{'p', "shop", "web-1"}, ipc(podIP, webPod, prioPod), nil)
	// An update that changes nothing records nothing.
	clk.t = t0.Add(5 * time.Second)
	same := *webPod
	tb.set(owner{'p', "shop", "web-1"}, ipc(podIP, &same, prioPod), nil)

	clk.t = t0.Add(10 * time.Second)
	tb.set(owner{'p', "shop", "web-1"}, nil, nil) // deleted
	tb.sweep()
	if got := resolveName(tb, podIP, 80); got != "web-1/shop" {
		t.Fatalf("lingering: %q", got)
	}
	clk.t = t0.Add(71 * time.Second)
	tb.sweep()
	if got := resolveName(tb, podIP, 80); got != "" {
		t.Fatalf("after linger: %q", got)
	}

	clk.t = t0.Add(100 * time.Second)
	web3 := &Identity{Name: "web-3", Namespace: "shop", Kind: KindPod}
	tb.set(owner{'p', "shop", "web-3"}, ipc(podIP, web3, prioPod), nil)

	h := nm.Between(t0, t0.Add(200*time.Second))
	want := map[string]map[string]names.Record{
		"1800000000": {"10.244.1.10": {FullAddress: "web-1", Namespace: "shop", Source: names.SourceKubernetes}},
		"1800000100": {"10.244.1.10": {FullAddress: "web-3", Namespace: "shop", Source: names.SourceKubernetes}},
	}
	if !equalHistory(h, want) {
		t.Fatalf("history:\n got %v\nwant %v", h, want)
	}
	// A span between the delete and the reuse still names web-1.
	h = nm.Between(t0.Add(50*time.Second), t0.Add(60*time.Second))
	if r := h["1800000000"]["10.244.1.10"]; r.FullAddress != "web-1" {
		t.Fatalf("span after the delete: %v", h)
	}

	// Services are recorded as svc.ns, with and without port.
	tb.set(owner{'s', "shop", "web"}, ipc(svcIP, webSvc, prioService),
		map[netip.AddrPort]claim{netip.AddrPortFrom(svcIP, 80): {id: webSvc, prio: prioService}})
	h = nm.Between(t0.Add(100*time.Second), t0.Add(100*time.Second))
	for _, k := range []string{"10.96.0.20", "10.96.0.20:80"} {
		if r := h["1800000100"][k]; r != (names.Record{FullAddress: "web.shop", Namespace: "shop", Source: names.SourceKubernetes}) {
			t.Fatalf("%s: %+v", k, r)
		}
	}
}

// TestTableNoLinger: a negative Linger (0 in the table) forgets at once.
func TestTableNoLinger(t *testing.T) {
	tb, _, _ := newTestTable(0)
	tb.set(owner{'p', "shop", "web-1"}, ipc(podIP, webPod, prioPod), nil)
	tb.set(owner{'p', "shop", "web-1"}, nil, nil)
	if got := resolveName(tb, podIP, 80); got != "" {
		t.Fatalf("got %q", got)
	}
}

func equalHistory(a, b map[string]map[string]names.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for k, m := range a {
		n, ok := b[k]
		if !ok || len(m) != len(n) {
			return false
		}
		for kk, v := range m {
			if n[kk] != v {
				return false
			}
		}
	}
	return true
}

// BenchmarkResolve: the per-entry cost, from many goroutines.
func BenchmarkResolve(b *testing.B) {
	tb, _, _ := newTestTable(time.Minute)
	for i := range 5000 {
		a := netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)})
		tb.set(owner{'p', "ns", a.String()}, ipc(a, &Identity{Name: a.String(), Namespace: "ns", Kind: KindPod}, prioPod), nil)
	}
	r := &Resolver{t: tb}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			a := netip.AddrFrom4([4]byte{10, 244, byte(i >> 8 & 0x1f), byte(i)})
			r.Resolve(a, 80)
			i++
		}
	})
}
