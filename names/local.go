package names

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// LocalAddrs is the set of this node's addresses, on every interface of
// the agent's network namespace, as of the last Refresh. Contains is
// lock-free and safe for concurrent use.
type LocalAddrs struct {
	set atomic.Pointer[map[netip.Addr]struct{}]
}

// Refresh reads the addresses again.
func (l *LocalAddrs) Refresh() error {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return err
	}
	m := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			m[p.Addr().Unmap()] = struct{}{}
		}
	}
	l.set.Store(&m)
	return nil
}

// Contains reports whether ip is one of the addresses.
func (l *LocalAddrs) Contains(ip netip.Addr) bool {
	m := l.set.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[ip.Unmap()]
	return ok
}
