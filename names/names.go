package names

import (
	"bufio"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one name resolution as name_resolution_history.json
// records it. Source is kept in memory only.
type Record struct {
	FullAddress string
	Namespace   string
	Source      Source `json:"-"`
}

// Source says where a name was learnt.
type Source uint8

const (
	SourceHosts      Source = iota + 1 // an /etc/hosts line
	SourceDNS                          // a DNS answer seen in traffic
	SourceKubernetes                   // a pod, service or endpointslice
)

// History keeps the history of name resolutions learnt on this node (from
// /etc/hosts, DNS answers seen in traffic and Kubernetes), each with the
// time it was learnt, so that a repository can carry the resolutions
// valid over its time span. It also names addresses for entries from
// what DNS and /etc/hosts taught it (Kubernetes names are answered by
// their own resolver, which knows when a pod is gone).
//
// The history is bounded per key: past the bound, the oldest superseded
// records go first, so that a long-lived name is not pushed out by a
// churning one; only when more keys than the bound are current do the
// oldest of them go, from the history and the names alike. Safe for
// concurrent use.
type History struct {
	mu      sync.RWMutex
	log     []nameEvent
	current map[string]Record
	learnt  map[netip.Addr]Record // DNS and /etc/hosts names of addresses
	max     int
}

type nameEvent struct {
	at  int64 // unix seconds
	key string
	rec Record
}

// New keeps at most max records (0: 100,000).
func New(max int) *History {
	if max <= 0 {
		max = 100_000
	}
	return &History{current: map[string]Record{}, learnt: map[netip.Addr]Record{}, max: max}
}

// Add records that key ("ip" or "ip:port") resolves to rec from time at on.
// A record equal to the current one is not repeated.
func (n *History) Add(at time.Time, key string, rec Record) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, ok := n.current[key]; ok && cur == rec {
		return
	}
	n.current[key] = rec
	if rec.Source != SourceKubernetes {
		if a, err := netip.ParseAddr(key); err == nil {
			n.learnt[a.Unmap()] = rec
		}
	}
	n.log = append(n.log, nameEvent{at.Unix(), key, rec})
	if len(n.log) > n.max+n.max/4 {
		n.trim()
	}
}

// trim brings the history down to max records: superseded records first,
// oldest first; then, if there are still too many, the oldest current
// ones, which are forgotten.
func (n *History) trim() {
	latest := make(map[string]int, len(n.current))
	for i, e := range n.log {
		latest[e.key] = i
	}
	excess := len(n.log) - n.max
	drop := make([]bool, len(n.log))
	for i, e := range n.log {
		if excess == 0 {
			break
		}
		if latest[e.key] != i {
			drop[i] = true
			excess--
		}
	}
	for i, e := range n.log {
		if excess == 0 {
			break
		}
		if !drop[i] {
			drop[i] = true
			excess--
			delete(n.current, e.key)
			if a, err := netip.ParseAddr(e.key); err == nil {
				delete(n.learnt, a.Unmap())
			}
		}
	}
	kept := n.log[:0]
	for i, e := range n.log {
		if !drop[i] {
			kept = append(kept, e)
		}
	}
	clear(n.log[len(kept):])
	n.log = kept
}

// Resolve implements dissect.Resolver with the names DNS answers and
// /etc/hosts gave addresses (no namespace, no labels).
func (n *History) Resolve(ip netip.Addr, _ uint16) (name, namespace string, labels map[string]string) {
	n.mu.RLock()
	r, ok := n.learnt[ip.Unmap()]
	n.mu.RUnlock()
	if !ok {
		return "", "", nil
	}
	return r.FullAddress, r.Namespace, nil
}

// Lookup returns the current name of key.
func (n *History) Lookup(key string) (Record, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	r, ok := n.current[key]
	return r, ok
}

// History returns, in name_resolution_history.json's shape, the
// resolutions valid at from (each under the time it was learnt) and every
// change up to to.
func (n *History) Between(from, to time.Time) map[string]map[string]Record {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := map[string]map[string]Record{}
	put := func(e nameEvent) {
		k := strconv.FormatInt(e.at, 10)
		if out[k] == nil {
			out[k] = map[string]Record{}
		}
		out[k][e.key] = e.rec
	}
	// The latest record of each key before from is the one valid then.
	before := map[string]int{}
	for i, e := range n.log {
		if e.at < from.Unix() {
			before[e.key] = i
		} else if e.at <= to.Unix() {
			put(e)
		}
	}
	for _, i := range before {
		put(n.log[i])
	}
	return out
}

// LoadHosts adds /etc/hosts-style entries (the first name of a line is its
// full address) as known at time at.
func (n *History) LoadHosts(path string, at time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		addr, err := netip.ParseAddr(fields[0])
		if err != nil || addr.IsLoopback() {
			continue
		}
		n.Add(at, addr.String(), Record{FullAddress: fields[1], Source: SourceHosts})
	}
	return sc.Err()
}
