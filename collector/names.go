package collector

import (
	"bufio"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NameRecord is one name resolution as name_resolution_history.json
// records it.
type NameRecord struct {
	FullAddress string
	Namespace   string
}

// Names keeps the history of name resolutions learnt on this node (from
// /etc/hosts, DNS answers seen in traffic and, later, Kubernetes), each with
// the time it was learnt, so that a repository can carry the resolutions
// valid over its time span. The history is bounded: the oldest
// superseded records go first. Safe for concurrent use.
type Names struct {
	mu      sync.Mutex
	log     []nameEvent
	current map[string]NameRecord
	max     int
}

type nameEvent struct {
	at  int64 // unix seconds
	key string
	rec NameRecord
}

// NewNames keeps at most max records (0: 100,000).
func NewNames(max int) *Names {
	if max <= 0 {
		max = 100_000
	}
	return &Names{current: map[string]NameRecord{}, max: max}
}

// Add records that key ("ip" or "ip:port") resolves to rec from time at on.
// A record equal to the current one is not repeated.
func (n *Names) Add(at time.Time, key string, rec NameRecord) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, ok := n.current[key]; ok && cur == rec {
		return
	}
	n.current[key] = rec
	n.log = append(n.log, nameEvent{at.Unix(), key, rec})
	if len(n.log) > n.max {
		n.log = append(n.log[:0], n.log[len(n.log)-n.max:]...)
	}
}

// Lookup returns the current name of key.
func (n *Names) Lookup(key string) (NameRecord, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.current[key]
	return r, ok
}

// History returns, in name_resolution_history.json's shape, the
// resolutions valid at from (each under the time it was learnt) and every
// change up to to.
func (n *Names) History(from, to time.Time) map[string]map[string]NameRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]map[string]NameRecord{}
	put := func(e nameEvent) {
		k := strconv.FormatInt(e.at, 10)
		if out[k] == nil {
			out[k] = map[string]NameRecord{}
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
func (n *Names) LoadHosts(path string, at time.Time) error {
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
		n.Add(at, addr.String(), NameRecord{FullAddress: fields[1]})
	}
	return sc.Err()
}
