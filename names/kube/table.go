package kube

import (
	"net/netip"
	"sync"
	"time"

	"github.com/kflcap/kflcap/names"
)

// Kinds of identity.
const (
	KindPod     = "Pod"
	KindService = "Service"
)

// Identity is what an address resolves to. Values are shared and must not
// be modified (Labels included).
type Identity struct {
	Name      string
	Namespace string
	Kind      string            // KindPod or KindService
	Labels    map[string]string // the object's labels; nil when unknown (a remote pod known from an endpointslice)
	Local     bool              // a pod of this node (from the pods watch, which sees only this node's)
}

// record is the identity as name_resolution_history.json holds it: a pod by
// its name, a service by "svc.ns", as Kubeshark writes them.
func (id *Identity) record() names.Record {
	if id.Kind == KindService {
		return names.Record{FullAddress: id.Name + "." + id.Namespace, Namespace: id.Namespace, Source: names.SourceKubernetes}
	}
	return names.Record{FullAddress: id.Name, Namespace: id.Namespace, Source: names.SourceKubernetes}
}

// Claim priorities: when several objects claim one address, the highest
// wins, and among equals the latest.
const (
	prioEndpoint    = 1 // an endpointslice address without a pod (the service's name)
	prioService     = 2 // a service's cluster or external IP
	prioEndpointPod = 3 // an endpointslice address naming its pod (targetRef)
	prioPod         = 4 // the pod itself
)

// owner is the API object making claims.
type owner struct {
	kind      byte // 'p' pod, 's' service, 'e' endpointslice
	namespace string
	name      string
}

type claim struct {
	id   *Identity
	prio int
	seq  uint64
}

// claims are what one object says about addresses.
type claims struct {
	ips   map[netip.Addr]claim
	ports map[netip.AddrPort]claim
}

// table resolves addresses from the claims of API objects. Reads (the
// published maps) are lock-free; writes are serialised by mu.
type table struct {
	ips   sync.Map // netip.Addr → *Identity
	ports sync.Map // netip.AddrPort → *Identity

	names  *names.History // may be nil
	now    func() time.Time
	linger time.Duration

	mu       sync.RWMutex
	seq      uint64
	byOwner  map[owner]claims
	ipClaims map[netip.Addr]map[owner]claim
	ptClaims map[netip.AddrPort]map[owner]claim
	pods     map[string]map[netip.Addr]int // "ns/name" → address → claims naming the pod
	// lingering: published addresses nobody claims any more, kept until the
	// time given.
	lingerIP map[netip.Addr]time.Time
	lingerPt map[netip.AddrPort]time.Time
}

func newTable(names *names.History, linger time.Duration) *table {
	return &table{
		names:    names,
		now:      time.Now,
		linger:   linger,
		byOwner:  map[owner]claims{},
		ipClaims: map[netip.Addr]map[owner]claim{},
		ptClaims: map[netip.AddrPort]map[owner]claim{},
		pods:     map[string]map[netip.Addr]int{},
		lingerIP: map[netip.Addr]time.Time{},
		lingerPt: map[netip.AddrPort]time.Time{},
	}
}

// set replaces what o claims (nil or empty: o is gone; the claims' seq is
// assigned here) and publishes the addresses whose answer changed.
func (t *table) set(o owner, ips map[netip.Addr]claim, ports map[netip.AddrPort]claim) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at := t.now()
	old := t.byOwner[o]
	t.seq++
	next := claims{}
	for a, in := range ips {
		c, ok := old.ips[a]
		if !ok || c.prio != in.prio || !sameIdentity(c.id, in.id) {
			c = claim{id: in.id, prio: in.prio, seq: t.seq}
		}
		if next.ips == nil {
			next.ips = map[netip.Addr]claim{}
		}
		next.ips[a] = c
	}
	for a, in := range ports {
		c, ok := old.ports[a]
		if !ok || c.prio != in.prio || !sameIdentity(c.id, in.id) {
			c = claim{id: in.id, prio: in.prio, seq: t.seq}
		}
		if next.ports == nil {
			next.ports = map[netip.AddrPort]claim{}
		}
		next.ports[a] = c
	}
	if len(next.ips)+len(next.ports) == 0 {
		delete(t.byOwner, o)
	} else {
		t.byOwner[o] = next
	}

	// Withdraw the old claims, make the new ones, then republish every
	// address touched.
	for a, c := range old.ips {
		delete(t.ipClaims[a], o)
		if len(t.ipClaims[a]) == 0 {
			delete(t.ipClaims, a)
		}
		t.countPod(c.id, a, -1)
	}
	for a := range old.ports {
		delete(t.ptClaims[a], o)
		if len(t.ptClaims[a]) == 0 {
			delete(t.ptClaims, a)
		}
	}
	for a, c := range next.ips {
		m := t.ipClaims[a]
		if m == nil {
			m = map[owner]claim{}
			t.ipClaims[a] = m
		}
		m[o] = c
		t.countPod(c.id, a, +1)
	}
	for a, c := range next.ports {
		m := t.ptClaims[a]
		if m == nil {
			m = map[owner]claim{}
			t.ptClaims[a] = m
		}
		m[o] = c
	}
	for a := range old.ips {
		t.publishIP(a, at)
	}
	for a := range next.ips {
		if _, done := old.ips[a]; !done {
			t.publishIP(a, at)
		}
	}
	for a := range old.ports {
		t.publishPort(a, at)
	}
	for a := range next.ports {
		if _, done := old.ports[a]; !done {
			t.publishPort(a, at)
		}
	}
}

func sameIdentity(a, b *Identity) bool {
	if a.Name != b.Name || a.Namespace != b.Namespace || a.Kind != b.Kind || a.Local != b.Local || len(a.Labels) != len(b.Labels) {
		return false
	}
	for k, v := range a.Labels {
		if w, ok := b.Labels[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (t *table) countPod(id *Identity, a netip.Addr, d int) {
	if id.Kind != KindPod {
		return
	}
	k := id.Namespace + "/" + id.Name
	m := t.pods[k]
	if m == nil {
		m = map[netip.Addr]int{}
		t.pods[k] = m
	}
	m[a] += d
	if m[a] <= 0 {
		delete(m, a)
	}
	if len(m) == 0 {
		delete(t.pods, k)
	}
}

func best(m map[owner]claim) *Identity {
	var b claim
	for _, c := range m {
		if b.id == nil || c.prio > b.prio || c.prio == b.prio && c.seq > b.seq {
			b = c
		}
	}
	return b.id
}

// publishIP makes the best claim on a the published answer, recording a
// change in the history; an address nobody claims lingers.
func (t *table) publishIP(a netip.Addr, at time.Time) {
	id := best(t.ipClaims[a])
	if id == nil {
		if t.linger <= 0 {
			t.ips.Delete(a)
			return
		}
		if _, ok := t.ips.Load(a); ok {
			if _, already := t.lingerIP[a]; !already {
				t.lingerIP[a] = at.Add(t.linger)
			}
		}
		return
	}
	delete(t.lingerIP, a)
	if cur, ok := t.ips.Load(a); ok && cur.(*Identity) == id {
		return
	}
	t.ips.Store(a, id)
	if t.names != nil {
		t.names.Add(at, a.String(), id.record())
	}
}

func (t *table) publishPort(a netip.AddrPort, at time.Time) {
	id := best(t.ptClaims[a])
	if id == nil {
		if t.linger <= 0 {
			t.ports.Delete(a)
			return
		}
		if _, ok := t.ports.Load(a); ok {
			if _, already := t.lingerPt[a]; !already {
				t.lingerPt[a] = at.Add(t.linger)
			}
		}
		return
	}
	delete(t.lingerPt, a)
	if cur, ok := t.ports.Load(a); ok && cur.(*Identity) == id {
		return
	}
	t.ports.Store(a, id)
	if t.names != nil {
		t.names.Add(at, a.String(), id.record())
	}
}

// sweep forgets the lingering addresses whose time is up.
func (t *table) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for a, until := range t.lingerIP {
		if !now.Before(until) {
			delete(t.lingerIP, a)
			t.ips.Delete(a)
		}
	}
	for a, until := range t.lingerPt {
		if !now.Before(until) {
			delete(t.lingerPt, a)
			t.ports.Delete(a)
		}
	}
}

// resolve: a pod's own address names the pod whatever the port; else a
// service's address and port; else whatever the address alone names.
func (t *table) resolve(ip netip.Addr, port uint16) *Identity {
	ip = ip.Unmap()
	var byIP *Identity
	if v, ok := t.ips.Load(ip); ok {
		byIP = v.(*Identity)
		if byIP.Kind == KindPod {
			return byIP
		}
	}
	if v, ok := t.ports.Load(netip.AddrPortFrom(ip, port)); ok {
		return v.(*Identity)
	}
	return byIP
}

func (t *table) lookup(ip netip.Addr) (*Identity, bool) {
	v, ok := t.ips.Load(ip.Unmap())
	if !ok {
		return nil, false
	}
	return v.(*Identity), true
}

// podIP is the pod's address (IPv4 first) among the claims live now.
func (t *table) podIP(namespace, name string) (netip.Addr, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out netip.Addr
	for a := range t.pods[namespace+"/"+name] {
		if !out.IsValid() || a.Is4() && !out.Is4() || a.Is4() == out.Is4() && a.Less(out) {
			out = a
		}
	}
	return out, out.IsValid()
}

// size is the number of addresses and address:ports published.
func (t *table) size() (ips, ports int) {
	t.ips.Range(func(any, any) bool { ips++; return true })
	t.ports.Range(func(any, any) bool { ports++; return true })
	return ips, ports
}
