package dissect

import (
	"net/netip"
	"slices"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
)

// IP protocol numbers the stream table knows.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// TCP flag bits as they appear in byte 13 of the TCP header.
const (
	flagFIN = 1 << 0
	flagSYN = 1 << 1
	flagRST = 1 << 2
	flagACK = 1 << 4
)

// decoded is the L3/L4 view of one packet. It holds no pointers into the
// layer structs so that it can be copied into a shard's batch.
type decoded struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
	flags        uint8 // TCP flags
	seq, ack     uint32
	payload      []byte // L4 payload; aliases the packet or a reassembled IPv4 datagram
}

// decoder turns raw frames into decoded. It is owned by one goroutine: the
// layers are preallocated and reused, so decoding a packet does not allocate
// (IPv4 fragments, which are copied for reassembly, aside).
type decoder struct {
	eth    layers.Ethernet
	dot1q  layers.Dot1Q
	sll    layers.LinuxSLL
	sll2   layers.LinuxSLL2
	ip4    layers.IPv4
	ip6    layers.IPv6
	ip6ext ip6ExtSkipper
	ip6frg layers.IPv6Fragment
	tcp    layers.TCP
	udp    layers.UDP
	icmp4  layers.ICMPv4
	icmp6  layers.ICMPv6
	pl     gopacket.Payload

	// One parser per first layer: DecodingLayerParser fixes its first layer
	// at construction, and captures mix link types packet by packet.
	byFirst map[gopacket.LayerType]*gopacket.DecodingLayerParser
	types   []gopacket.LayerType
	defrag  *ip4defrag.IPv4Defragmenter
	lastGC  time.Time
	frags6  map[frag6Key]*frag6
	lastGC6 time.Time
}

// ip6ExtSkipper skips hop-by-hop, routing and destination options headers.
// Fragment headers are left to layers.IPv6Fragment, which stops at
// non-first fragments instead of misreading them as TCP or UDP.
type ip6ExtSkipper struct{ layers.IPv6ExtensionSkipper }

var ip6SkipClass = gopacket.NewLayerClass([]gopacket.LayerType{
	layers.LayerTypeIPv6HopByHop, layers.LayerTypeIPv6Routing, layers.LayerTypeIPv6Destination,
})

func (s *ip6ExtSkipper) CanDecode() gopacket.LayerClass { return ip6SkipClass }

func newDecoder() *decoder {
	d := &decoder{
		byFirst: make(map[gopacket.LayerType]*gopacket.DecodingLayerParser),
		types:   make([]gopacket.LayerType, 0, 16),
		defrag:  ip4defrag.NewIPv4Defragmenter(),
		frags6:  make(map[frag6Key]*frag6),
	}
	for _, first := range []gopacket.LayerType{
		layers.LayerTypeEthernet, layers.LayerTypeLinuxSLL, layers.LayerTypeLinuxSLL2,
		layers.LayerTypeIPv4, layers.LayerTypeIPv6,
	} {
		p := gopacket.NewDecodingLayerParser(first,
			&d.eth, &d.dot1q, &d.sll, &d.sll2, &d.ip4, &d.ip6, &d.ip6ext, &d.ip6frg,
			&d.tcp, &d.udp, &d.icmp4, &d.icmp6, &d.pl)
		// Unknown ethertypes and IP protocols end decoding quietly; the
		// caller sees no transport layer and counts the packet as other.
		p.IgnoreUnsupported = true
		d.byFirst[first] = p
	}
	return d
}

// decodeResult says what became of a packet.
type decodeResult int

const (
	decodedOK        decodeResult = iota // d is a TCP, UDP or ICMP packet
	decodedOther                         // well-formed, but not IP/TCP/UDP/ICMP (ARP, LLDP, …)
	decodedFragment                      // an IPv4 fragment held for reassembly, or an IPv6 fragment
	decodedMalformed                     // truncated or inconsistent
	decodedLinkType                      // link type we cannot decode
)

// decode parses one frame of the given link type into out.
func (d *decoder) decode(lt layers.LinkType, data []byte, ts time.Time, out *decoded) decodeResult {
	var first gopacket.LayerType
	switch lt {
	case layers.LinkTypeEthernet:
		first = layers.LayerTypeEthernet
	case layers.LinkTypeLinuxSLL:
		first = layers.LayerTypeLinuxSLL
	case layers.LinkTypeLinuxSLL2:
		first = layers.LayerTypeLinuxSLL2
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, 12: // 12: DLT_RAW on OpenBSD-style headers
		if len(data) == 0 {
			return decodedMalformed
		}
		switch data[0] >> 4 {
		case 4:
			first = layers.LayerTypeIPv4
		case 6:
			first = layers.LayerTypeIPv6
		default:
			return decodedMalformed
		}
	default:
		return decodedLinkType
	}
	p := d.byFirst[first]
	if err := p.DecodeLayers(data, &d.types); err != nil {
		return decodedMalformed
	}
	var haveIP4, haveIP6, frag6 bool
	for _, t := range d.types {
		switch t {
		case layers.LayerTypeIPv4:
			haveIP4 = true
		case layers.LayerTypeIPv6:
			haveIP6 = true
		case layers.LayerTypeIPv6Fragment:
			frag6 = d.ip6frg.FragmentOffset != 0 || d.ip6frg.MoreFragments
		case layers.LayerTypeTCP:
			return d.fillTCP(out)
		case layers.LayerTypeUDP:
			return d.fillUDP(out)
		case layers.LayerTypeICMPv4:
			out.proto = protoICMP
			out.payload = d.icmp4.Payload
			return decodedOK
		case layers.LayerTypeICMPv6:
			out.proto = protoICMPv6
			out.payload = d.icmp6.Payload
			return decodedOK
		}
	}
	switch {
	case frag6:
		return d.reassemble6(ts, out)
	case haveIP4 && (d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0):
		return d.reassemble(ts, out)
	case haveIP4:
		if d.ip4.Protocol == layers.IPProtocolTCP || d.ip4.Protocol == layers.IPProtocolUDP {
			return decodedMalformed // the transport header did not decode
		}
	case haveIP6:
		if d.ip6.NextHeader == layers.IPProtocolTCP || d.ip6.NextHeader == layers.IPProtocolUDP {
			return decodedMalformed
		}
	}
	return decodedOther
}

// lastIP returns the innermost IP layer's addresses (for IP-in-IP the
// inner one, which decodes last).
func (d *decoder) lastIP(out *decoded) bool {
	for i := len(d.types) - 1; i >= 0; i-- {
		switch d.types[i] {
		case layers.LayerTypeIPv4:
			s, ok1 := netip.AddrFromSlice(d.ip4.SrcIP)
			t, ok2 := netip.AddrFromSlice(d.ip4.DstIP)
			out.src, out.dst = s, t
			return ok1 && ok2
		case layers.LayerTypeIPv6:
			s, ok1 := netip.AddrFromSlice(d.ip6.SrcIP)
			t, ok2 := netip.AddrFromSlice(d.ip6.DstIP)
			out.src, out.dst = s, t
			return ok1 && ok2
		}
	}
	return false
}

func containsType(ts []gopacket.LayerType, t gopacket.LayerType) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func (d *decoder) fillTCP(out *decoded) decodeResult {
	if !d.lastIP(out) {
		return decodedMalformed
	}
	return d.fillTCPAfter(out)
}

func (d *decoder) fillUDP(out *decoded) decodeResult {
	if !d.lastIP(out) {
		return decodedMalformed
	}
	out.proto = protoUDP
	out.sport, out.dport = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
	out.flags, out.seq, out.ack = 0, 0, 0
	out.payload = d.udp.Payload
	return decodedOK
}

// reassemble feeds an IPv4 fragment to the defragmenter and, when the
// datagram is complete, decodes its transport header.
func (d *decoder) reassemble(ts time.Time, out *decoded) decodeResult {
	// The defragmenter keeps the layers it is given, and ours are reused
	// for the next packet: hand it a copy.
	cp := d.ip4
	cp.Contents = append([]byte(nil), d.ip4.Contents...)
	cp.Payload = append([]byte(nil), d.ip4.Payload...)
	cp.SrcIP = append([]byte(nil), d.ip4.SrcIP...)
	cp.DstIP = append([]byte(nil), d.ip4.DstIP...)
	cp.Options = nil
	whole, err := d.defrag.DefragIPv4WithTimestamp(&cp, ts)
	if ts.Sub(d.lastGC) > 30*time.Second {
		d.defrag.DiscardOlderThan(ts.Add(-30 * time.Second))
		d.lastGC = ts
	}
	if err != nil {
		return decodedMalformed
	}
	if whole == nil {
		return decodedFragment
	}
	s, ok1 := netip.AddrFromSlice(whole.SrcIP)
	t, ok2 := netip.AddrFromSlice(whole.DstIP)
	if !ok1 || !ok2 {
		return decodedMalformed
	}
	out.src, out.dst = s, t
	switch whole.Protocol {
	case layers.IPProtocolTCP:
		if err := d.tcp.DecodeFromBytes(whole.Payload, gopacket.NilDecodeFeedback); err != nil {
			return decodedMalformed
		}
		return d.fillTCPAfter(out)
	case layers.IPProtocolUDP:
		if err := d.udp.DecodeFromBytes(whole.Payload, gopacket.NilDecodeFeedback); err != nil {
			return decodedMalformed
		}
		out.proto = protoUDP
		out.sport, out.dport = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
		out.flags, out.seq, out.ack = 0, 0, 0
		out.payload = d.udp.Payload
		return decodedOK
	case layers.IPProtocolICMPv4:
		out.proto = protoICMP
		out.payload = whole.Payload
		return decodedOK
	}
	return decodedOther
}

func (d *decoder) fillTCPAfter(out *decoded) decodeResult {
	t := &d.tcp
	out.proto = protoTCP
	out.sport, out.dport = uint16(t.SrcPort), uint16(t.DstPort)
	out.seq, out.ack = t.Seq, t.Ack
	var f uint8
	if t.FIN {
		f |= flagFIN
	}
	if t.SYN {
		f |= flagSYN
	}
	if t.RST {
		f |= flagRST
	}
	if t.ACK {
		f |= flagACK
	}
	out.flags = f
	out.payload = t.Payload
	return decodedOK
}

// IPv6 fragment reassembly (RFC 8200 §4.5). gopacket has none, so this is a
// small one: datagrams are keyed by addresses and identification, bounded
// in number, size and age, and overlapping fragments are taken as sent.
type frag6Key struct {
	src, dst netip.Addr
	id       uint32
}

type frag6 struct {
	first time.Time
	next  layers.IPProtocol // from the fragment at offset 0
	have0 bool
	total int // datagram length, -1 until the last fragment is seen
	parts []frag6Part
	size  int
}

type frag6Part struct {
	off  int
	data []byte
}

const (
	maxFrags6      = 1024             // datagrams being reassembled
	maxFrag6Size   = 65535            // reassembled payload limit
	frag6Timeout   = 60 * time.Second // RFC 8200's reassembly timeout
	maxFrag6Pieces = 64
)

func (d *decoder) reassemble6(ts time.Time, out *decoded) decodeResult {
	src, ok1 := netip.AddrFromSlice(d.ip6.SrcIP)
	dst, ok2 := netip.AddrFromSlice(d.ip6.DstIP)
	if !ok1 || !ok2 {
		return decodedMalformed
	}
	if ts.Sub(d.lastGC6) > time.Second {
		d.lastGC6 = ts
		for k, f := range d.frags6 {
			if ts.Sub(f.first) > frag6Timeout {
				delete(d.frags6, k)
			}
		}
	}
	fh := &d.ip6frg
	off := int(fh.FragmentOffset) * 8
	data := fh.Payload
	if off+len(data) > maxFrag6Size || fh.MoreFragments && len(data)%8 != 0 {
		return decodedMalformed
	}
	k := frag6Key{src, dst, fh.Identification}
	f := d.frags6[k]
	if f == nil {
		if len(d.frags6) >= maxFrags6 {
			return decodedFragment // counted, not kept: the table is full
		}
		f = &frag6{first: ts, total: -1}
		d.frags6[k] = f
	}
	if len(f.parts) >= maxFrag6Pieces {
		delete(d.frags6, k)
		return decodedMalformed
	}
	f.parts = append(f.parts, frag6Part{off, append([]byte(nil), data...)})
	if off == 0 {
		f.next, f.have0 = fh.NextHeader, true
	}
	if !fh.MoreFragments {
		f.total = off + len(data)
	}
	if f.total < 0 || !f.have0 {
		return decodedFragment
	}
	// Complete when the parts cover [0, total).
	slices.SortFunc(f.parts, func(a, b frag6Part) int { return a.off - b.off })
	covered := 0
	for _, p := range f.parts {
		if p.off > covered {
			return decodedFragment
		}
		covered = max(covered, p.off+len(p.data))
	}
	if covered < f.total {
		return decodedFragment
	}
	buf := make([]byte, f.total)
	for _, p := range f.parts {
		copy(buf[p.off:], p.data)
	}
	delete(d.frags6, k)
	out.src, out.dst = src, dst
	switch f.next {
	case layers.IPProtocolTCP:
		if err := d.tcp.DecodeFromBytes(buf, gopacket.NilDecodeFeedback); err != nil {
			return decodedMalformed
		}
		return d.fillTCPAfter(out)
	case layers.IPProtocolUDP:
		if err := d.udp.DecodeFromBytes(buf, gopacket.NilDecodeFeedback); err != nil {
			return decodedMalformed
		}
		out.proto = protoUDP
		out.sport, out.dport = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
		out.flags, out.seq, out.ack = 0, 0, 0
		out.payload = d.udp.Payload
		return decodedOK
	case layers.IPProtocolICMPv6:
		out.proto = protoICMPv6
		out.payload = buf
		return decodedOK
	}
	return decodedOther
}
