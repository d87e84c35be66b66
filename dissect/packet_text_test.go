package dissect_test

import (
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/packet"
)

func TestPacketSummary(t *testing.T) {
	serialize := func(ls ...gopacket.SerializableLayer) []byte {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true}
	tcp.SetNetworkLayerForChecksum(ip)
	icmpIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{10, 0, 0, 2}, DstIP: net.IP{10, 0, 0, 1}}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0)}
	arpEth := &layers.Ethernet{SrcMAC: eth.SrcMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: eth.SrcMAC, SourceProtAddress: []byte{10, 0, 0, 1},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}}

	ts := time.Date(2024, 1, 2, 3, 4, 5, 678901000, time.Local)
	tests := []struct {
		p    packet.Packet
		want string
	}{
		{packet.Packet{Dir: packet.Ingress, LinkType: layers.LinkTypeEthernet, WireLen: 1500, Data: serialize(eth, ip, tcp)},
			"03:04:05.678901 eth0 In  IPv4 10.0.0.1.40000 > 10.0.0.2.80: TCP, length 1500"},
		{packet.Packet{Dir: packet.Egress, LinkType: layers.LinkTypeRaw, WireLen: 28, Data: serialize(icmpIP, icmp)},
			"03:04:05.678901 eth0 Out IPv4 10.0.0.2 > 10.0.0.1: EchoReply, length 28"},
		{packet.Packet{Dir: packet.Egress, LinkType: layers.LinkTypeEthernet, WireLen: 42, Data: serialize(arpEth, arp)},
			"03:04:05.678901 eth0 Out ARP, length 42"},
		{packet.Packet{LinkType: layers.LinkTypeEthernet, WireLen: 3, Data: []byte{1, 2, 3}},
			"03:04:05.678901 eth0 In  DecodeFailure, length 3"},
	}
	for _, tc := range tests {
		tc.p.Time = ts
		if got := dissect.PacketSummary(&tc.p, "eth0"); got != tc.want {
			t.Errorf("PacketSummary = %q, want %q", got, tc.want)
		}
	}
}
