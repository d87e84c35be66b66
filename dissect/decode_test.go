package dissect

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
)

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// TestDecodeLinkTypes decodes the same TCP segment under every supported
// encapsulation and checks the 5-tuple and payload.
func TestDecodeLinkTypes(t *testing.T) {
	payload := gopacket.Payload("GET / HTTP/1.1\r\n\r\n")
	mac1, mac2 := []byte{2, 0, 0, 0, 0, 1}, []byte{2, 0, 0, 0, 0, 2}
	ip4 := func() *layers.IPv4 {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: []byte{10, 99, 0, 1}, DstIP: []byte{10, 99, 0, 2}}
	}
	ip6 := func(next layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next,
			SrcIP: netip.MustParseAddr("fd99::1").AsSlice(), DstIP: netip.MustParseAddr("fd99::2").AsSlice()}
	}
	tcp := func(nl gopacket.NetworkLayer) *layers.TCP {
		t := &layers.TCP{SrcPort: 40000, DstPort: 80, ACK: true, PSH: true, Seq: 7, Window: 512}
		t.SetNetworkLayerForChecksum(nl)
		return t
	}
	v4, v6 := ip4(), ip6(layers.IPProtocolTCP)
	hop := ip6(layers.IPProtocolIPv6HopByHop)
	hbh := &layers.IPv6HopByHop{}
	hbh.NextHeader = layers.IPProtocolTCP
	hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
	cases := []struct {
		name string
		lt   layers.LinkType
		data []byte
		v6   bool
	}{
		{"ethernet", layers.LinkTypeEthernet, serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: layers.EthernetTypeIPv4}, v4, tcp(v4), payload), false},
		{"802.1Q", layers.LinkTypeEthernet, serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}, v4, tcp(v4), payload), false},
		{"QinQ", layers.LinkTypeEthernet, serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: layers.EthernetTypeQinQ},
			&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q}, &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}, v4, tcp(v4), payload), false},
		{"raw v4", layers.LinkTypeRaw, serialize(t, v4, tcp(v4), payload), false},
		{"raw v6", layers.LinkTypeRaw, serialize(t, v6, tcp(v6), payload), true},
		{"v6 hop-by-hop", layers.LinkTypeIPv6, serialize(t, hop, hbh, tcp(hop), payload), true},
		{"SLL", layers.LinkTypeLinuxSLL, append([]byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 8, 0}, serialize(t, v4, tcp(v4), payload)...), false},
		{"SLL2", layers.LinkTypeLinuxSLL2, append([]byte{0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}, serialize(t, v6, tcp(v6), payload)...), true},
	}
	d := newDecoder()
	for _, c := range cases {
		var out decoded
		if r := d.decode(c.lt, c.data, time.Now(), &out); r != decodedOK {
			t.Errorf("%s: result %d", c.name, r)
			continue
		}
		src := "10.99.0.1"
		if c.v6 {
			src = "fd99::1"
		}
		if out.src.String() != src || out.sport != 40000 || out.dport != 80 || out.proto != protoTCP || string(out.payload) != string(payload) || out.seq != 7 {
			t.Errorf("%s: decoded %+v", c.name, out)
		}
	}
	// Truncated and garbage frames are malformed, not panics.
	for _, c := range cases {
		for n := 0; n < len(c.data); n += 7 {
			var out decoded
			d.decode(c.lt, c.data[:n], time.Now(), &out)
		}
	}
}

// TestDecodeIPv4Fragments reassembles a UDP datagram sent in three
// fragments, out of order.
func TestDecodeIPv4Fragments(t *testing.T) {
	body := make([]byte, 3000)
	for i := range body {
		body[i] = byte(i)
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: 77, SrcIP: []byte{10, 99, 0, 1}, DstIP: []byte{10, 99, 0, 2}}
	udp := &layers.UDP{SrcPort: 5000, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	whole := serialize(t, udp, gopacket.Payload(body)) // UDP header + payload
	var frags [][]byte
	for off := 0; off < len(whole); off += 1480 {
		end := min(off+1480, len(whole))
		h := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: 77, SrcIP: ip.SrcIP, DstIP: ip.DstIP, FragOffset: uint16(off / 8)}
		if end < len(whole) {
			h.Flags = layers.IPv4MoreFragments
		}
		frags = append(frags, serialize(t, h, gopacket.Payload(whole[off:end])))
	}
	d := newDecoder()
	var out decoded
	order := []int{2, 0, 1}
	for i, k := range order {
		r := d.decode(layers.LinkTypeRaw, frags[k], time.Now(), &out)
		if i < len(order)-1 && r != decodedFragment {
			t.Fatalf("fragment %d: result %d", k, r)
		}
		if i == len(order)-1 {
			if r != decodedOK || out.proto != protoUDP || out.dport != 53 || len(out.payload) != len(body) || out.payload[2999] != byte(2999%256) {
				t.Fatalf("reassembled: result %d %+v len %d", r, out.proto, len(out.payload))
			}
		}
	}
}

// TestDecodeNoAllocs: decoding a TCP/IPv4/Ethernet frame does not allocate.
func TestDecodeNoAllocs(t *testing.T) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: []byte{10, 99, 0, 1}, DstIP: []byte{10, 99, 0, 2}}
	tcp := &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}
	tcp.SetNetworkLayerForChecksum(ip)
	frame := serialize(t, &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4},
		ip, tcp, gopacket.Payload("x"))
	d := newDecoder()
	ts := time.Now()
	var out decoded
	if n := testing.AllocsPerRun(1000, func() { d.decode(layers.LinkTypeEthernet, frame, ts, &out) }); n != 0 {
		t.Errorf("decode allocates %.1f times per packet", n)
	}
}

// TestDecodeIPv6Fragments reassembles a TCP segment sent in three IPv6
// fragments, out of order, and keeps a lone fragment pending.
func TestDecodeIPv6Fragments(t *testing.T) {
	src, dst := netip.MustParseAddr("fd99::1").AsSlice(), netip.MustParseAddr("fd99::2").AsSlice()
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, ACK: true, Seq: 9, Window: 512}
	tcp.SetNetworkLayerForChecksum(ip)
	body := make([]byte, 2500)
	for i := range body {
		body[i] = byte(i * 7)
	}
	whole := serialize(t, tcp, gopacket.Payload(body))
	var frags [][]byte
	for off := 0; off < len(whole); off += 1232 {
		end := min(off+1232, len(whole))
		h := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6Fragment, SrcIP: src, DstIP: dst}
		fr := &layers.IPv6Fragment{NextHeader: layers.IPProtocolTCP, FragmentOffset: uint16(off / 8), MoreFragments: end < len(whole), Identification: 4242}
		frags = append(frags, serialize(t, h, fr, gopacket.Payload(whole[off:end])))
	}
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	d := newDecoder()
	var out decoded
	for i, k := range []int{1, 2, 0} {
		r := d.decode(layers.LinkTypeRaw, frags[k], time.Now(), &out)
		if i < 2 && r != decodedFragment {
			t.Fatalf("fragment %d: result %d", k, r)
		}
		if i == 2 && (r != decodedOK || out.proto != protoTCP || out.dport != 80 || out.seq != 9 || string(out.payload) != string(body)) {
			t.Fatalf("reassembled: result %d proto %d len %d", r, out.proto, len(out.payload))
		}
	}
	if len(d.frags6) != 0 {
		t.Errorf("%d datagrams left pending", len(d.frags6))
	}
	d.decode(layers.LinkTypeRaw, frags[0], time.Now(), &out)
	if len(d.frags6) != 1 {
		t.Errorf("a lone first fragment is not pending")
	}
}

// TestAppendSLL2 converts every encapsulation of TestDecodeLinkTypes that
// AppendSLL2 handles and decodes the result to the same flow.
func TestAppendSLL2(t *testing.T) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 99, 0, 1}, DstIP: []byte{10, 99, 0, 2}}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	raw := serialize(t, ip, udp, gopacket.Payload("q"))
	eth := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0}, raw...)
	sll := append([]byte{0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 8, 0}, raw...)
	d := newDecoder()
	for _, p := range []packet.Packet{{LinkType: layers.LinkTypeEthernet, Data: eth, Ifindex: 3}, {LinkType: layers.LinkTypeRaw, Data: raw}, {LinkType: layers.LinkTypeLinuxSLL, Data: sll}} {
		b, ok := pcap.AppendSLL2(nil, &p)
		if !ok {
			t.Fatalf("%v: not converted", p.LinkType)
		}
		var out decoded
		if r := d.decode(layers.LinkTypeLinuxSLL2, b, time.Now(), &out); r != decodedOK || out.sport != 5353 || string(out.payload) != "q" {
			t.Errorf("%v: decoded %d %+v", p.LinkType, r, out)
		}
		if p.Ifindex == 3 && b[7] != 3 {
			t.Errorf("interface index not kept: % x", b[:8])
		}
	}
}
