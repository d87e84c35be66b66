package collector

import (
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"
)

func udpFrame(t *testing.T, ttl uint8, srcMAC byte, payload string) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 1, 0, 1}, DstIP: net.IP{10, 2, 0, 1}}
	udp := &layers.UDP{SrcPort: 4000, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, srcMAC}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, EthernetType: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload(payload))
	return buf.Bytes()
}

func TestDedup(t *testing.T) {
	d := NewDedup(50e6, 12)
	eth := layers.LinkTypeEthernet
	a := udpFrame(t, 64, 1, "query")
	routed := udpFrame(t, 63, 7, "query") // next hop: new MAC, TTL-1, new IP checksum
	other := udpFrame(t, 64, 1, "other")
	if d.Seen(&packet.Packet{LinkType: eth, Data: a, Ifindex: 5, Time: time.Unix(0, 1_000_000_000)}) {
		t.Fatal("first sighting reported as duplicate")
	}
	if !d.Seen(&packet.Packet{LinkType: eth, Data: routed, Ifindex: 9, Time: time.Unix(0, 1_000_100_000)}) {
		t.Fatal("the routed copy on another interface was not recognised")
	}
	if d.Seen(&packet.Packet{LinkType: eth, Data: other, Ifindex: 9, Time: time.Unix(0, 1_000_200_000)}) {
		t.Fatal("a different packet was taken for a duplicate")
	}
	if d.Seen(&packet.Packet{LinkType: eth, Data: a, Ifindex: 5, Time: time.Unix(0, 1_000_300_000)}) {
		t.Fatal("a resend on the same interface is not a duplicate (retransmission)")
	}
	if d.Seen(&packet.Packet{LinkType: eth, Data: routed, Ifindex: 9, Time: time.Unix(0, 1_200_000_000)}) {
		t.Fatal("a sighting after the window is not a duplicate")
	}
	raw := routed[14:]
	d.Seen(&packet.Packet{LinkType: eth, Data: a, Ifindex: 5, Time: time.Unix(0, 2_000_000_000)})
	if !d.Seen(&packet.Packet{LinkType: layers.LinkTypeRaw, Data: raw, Ifindex: 11, Time: time.Unix(0, 2_000_000_100)}) {
		t.Fatal("the same packet on a raw-IP interface was not recognised")
	}
	if d.Duplicates.Load() != 2 {
		t.Fatalf("counted %d duplicates, want 2", d.Duplicates.Load())
	}
}

func BenchmarkDedup(b *testing.B) {
	d := NewDedup(50e6, 16)
	frame := make([]byte, 64)
	frame[12], frame[13], frame[14] = 0x08, 0x00, 0x45
	b.ReportAllocs()
	p := packet.Packet{LinkType: layers.LinkTypeEthernet, Data: frame, Ifindex: 2}
	i := int64(0)
	for b.Loop() {
		i++
		frame[40] = byte(i)
		frame[41] = byte(i >> 8)
		p.Time = time.Unix(0, i)
		d.Seen(&p)
	}
}
