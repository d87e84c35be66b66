package pcap

import (
	"encoding/binary"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"
)

// AppendSLL2 appends p rewritten as a LINUX_SLL2 frame
// (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html) to dst: the
// link type a pcap file needs when it mixes packets of several link types,
// as tcpdump -i any writes, with p's interface index and direction. It
// reports false for link types it cannot convert (or truncated frames).
func AppendSLL2(dst []byte, p *packet.Packet) ([]byte, bool) {
	var proto uint16
	var hatype uint16 = 1 // ARPHRD_ETHER
	var addr, payload []byte
	var pktType byte
	d := p.Data
	switch p.LinkType {
	case layers.LinkTypeEthernet:
		if len(d) < 14 {
			return dst, false
		}
		proto, addr, payload = binary.BigEndian.Uint16(d[12:14]), d[6:12], d[14:]
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		if len(d) < 1 {
			return dst, false
		}
		hatype = 0xfffe // ARPHRD_NONE
		proto = 0x0800
		if d[0]>>4 == 6 {
			proto = 0x86dd
		}
		payload = d
	case layers.LinkTypeLinuxSLL:
		if len(d) < 16 {
			return dst, false
		}
		pktType = byte(binary.BigEndian.Uint16(d[0:2]))
		hatype = binary.BigEndian.Uint16(d[2:4])
		n := min(int(binary.BigEndian.Uint16(d[4:6])), 8)
		addr, proto, payload = d[6:6+n], binary.BigEndian.Uint16(d[14:16]), d[16:]
	case layers.LinkTypeLinuxSLL2:
		return append(dst, d...), true
	default:
		return dst, false
	}
	if p.Dir == packet.Egress {
		pktType = 4 // PACKET_OUTGOING
	}
	var h [20]byte
	binary.BigEndian.PutUint16(h[0:2], proto)
	binary.BigEndian.PutUint32(h[4:8], uint32(p.Ifindex))
	binary.BigEndian.PutUint16(h[8:10], hatype)
	h[10] = pktType
	h[11] = byte(len(addr))
	copy(h[12:20], addr)
	dst = append(dst, h[:]...)
	return append(dst, payload...), true
}

// RecordLen is how many bytes PcapWriter writes for a packet of link type
// lt with capLen captured bytes into a file of link type file, and false
// when it skips the packet. A repository sizes its tar members with it
// before writing them.
func RecordLen(file, lt layers.LinkType, capLen int) (int, bool) {
	if lt == file {
		return capLen, true
	}
	if file != layers.LinkTypeLinuxSLL2 {
		return 0, false
	}
	switch lt {
	case layers.LinkTypeEthernet:
		return capLen - 14 + 20, capLen >= 14
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		return capLen + 20, capLen >= 1
	case layers.LinkTypeLinuxSLL:
		return capLen - 16 + 20, capLen >= 16
	}
	return 0, false
}
