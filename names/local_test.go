package names

import (
	"net/netip"
	"testing"
)

func TestLocalAddrs(t *testing.T) {
	var l LocalAddrs
	if l.Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Error("an empty set contains 127.0.0.1")
	}
	if err := l.Refresh(); err != nil {
		t.Fatal(err)
	}
	if !l.Contains(netip.MustParseAddr("127.0.0.1")) || !l.Contains(netip.MustParseAddr("::ffff:127.0.0.1")) {
		t.Error("loopback is not local")
	}
	if l.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a documentation address is local")
	}
}
