package collector

import (
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"
)

// Dedup recognises a packet seen again on another captured interface: both
// ends of a veth pair, or a pod's veth and the node's uplink (routed, so
// with another MAC header and a decremented TTL). A packet's identity is
// its IP packet with the TTL (hop limit) and the IPv4 header checksum left
// out, hashed with its length; a second sighting on a different interface
// within the window is a duplicate. The first capture point is kept: for a
// pod's outgoing traffic that is the pod's veth, the one closest to the
// pod.
//
// The table is a fixed array indexed by the hash, so memory is constant and
// nothing is allocated per packet; a collision between live packets only
// costs a missed duplicate. Not safe for concurrent use: the agent's feed
// loop owns it.
type Dedup struct {
	window int64 // ns
	slots  []dedupSlot
	mask   uint64
	// Duplicates counts the packets recognised and dropped.
	Duplicates atomic.Uint64
}

type dedupSlot struct {
	hash    uint64
	at      int64
	ifindex int32
}

// NewDedup keeps 2^bits recent packets for windowNs nanoseconds.
func NewDedup(windowNs int64, bits uint) *Dedup {
	n := 1 << bits
	return &Dedup{window: windowNs, slots: make([]dedupSlot, n), mask: uint64(n - 1)}
}

// Seen reports whether p is a duplicate of a packet captured on another
// interface within the window (and counts it); otherwise it records p.
func (d *Dedup) Seen(p *packet.Packet) bool {
	h, ok := ipIdentity(p.LinkType, p.Data)
	if !ok {
		return false
	}
	ifindex, unixNano := p.Ifindex, p.Time.UnixNano()
	s := &d.slots[h&d.mask]
	if s.hash == h && s.ifindex != int32(ifindex) && unixNano-s.at <= d.window && unixNano >= s.at {
		d.Duplicates.Add(1)
		return true
	}
	*s = dedupSlot{hash: h, at: unixNano, ifindex: int32(ifindex)}
	return false
}

// identityBytes is how much of the IP packet identifies it: headers and
// the start of the payload, enough to tell packets apart, bounded so that
// large packets cost no more than small ones.
const identityBytes = 128

var dedupSeed = maphash.MakeSeed()

// ipIdentity hashes the start of the IP packet in data, with its TTL (hop
// limit) and IPv4 header checksum zeroed, and its length.
func ipIdentity(link layers.LinkType, data []byte) (uint64, bool) {
	off := 0
	if link == layers.LinkTypeEthernet {
		if len(data) < 14 {
			return 0, false
		}
		off = 14
		et := binary.BigEndian.Uint16(data[12:])
		for (et == 0x8100 || et == 0x88a8) && len(data) >= off+4 {
			et = binary.BigEndian.Uint16(data[off+2:])
			off += 4
		}
		if et != 0x0800 && et != 0x86dd {
			return 0, false
		}
	} else if link != layers.LinkTypeRaw {
		return 0, false
	}
	ip := data[off:]
	var buf [identityBytes + 8]byte
	n := copy(buf[:identityBytes], ip)
	switch {
	case n >= 20 && ip[0]>>4 == 4:
		buf[8], buf[10], buf[11] = 0, 0, 0
	case n >= 40 && ip[0]>>4 == 6:
		buf[7] = 0
	default:
		return 0, false
	}
	binary.LittleEndian.PutUint64(buf[n:], uint64(len(ip)))
	return maphash.Bytes(dedupSeed, buf[:n+8]), true
}
