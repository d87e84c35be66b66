package dissect_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/packet"
)

// frame builds an Ethernet/IPv4 TCP or UDP packet.
// flags holds TCP flag letters: "S", "SA", "A", "FA".
func frame(t *testing.T, udp bool, src, dst string, sport, dport uint16, flags string, seq uint32, payload string) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice()}
	var l4 gopacket.SerializableLayer
	if udp {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: strings.Contains(flags, "S"), FIN: strings.Contains(flags, "F"), ACK: strings.Contains(flags, "A"), Seq: seq, Window: 512}
		tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4},
		ip, l4, gopacket.Payload(payload))
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

type nameResolver map[string]string

func (r nameResolver) Resolve(ip netip.Addr, port uint16) (string, string, map[string]string) {
	return r[ip.String()], "ns-" + r[ip.String()], map[string]string{"app": r[ip.String()]}
}

// TestL4EntryExpiryResolver: a TCP stream no dissector knows gets one L4
// entry with its counters and state; idle streams expire on Tick; the
// resolver and node fill the endpoints.
func TestL4EntryExpiryResolver(t *testing.T) {
	var entries []*dissect.Entry
	d := dissect.New(dissect.Config{
		TCPTimeout: time.Minute, UDPTimeout: 10 * time.Second,
		Resolver: nameResolver{"10.99.0.1": "client", "10.99.0.2": "server"},
		Local:    func(ip netip.Addr) bool { return ip == netip.MustParseAddr("10.99.0.1") },
		Node:     dissect.Node{Name: "node-1", IP: "10.99.0.254"},
		OnEntry:  func(e *dissect.Entry, _ dissect.StreamRef) { entries = append(entries, e) },
	})
	ts := time.Unix(1_700_000_000, 0)
	feed := func(b []byte) {
		ts = ts.Add(time.Millisecond)
		d.Feed(packet.Packet{Time: ts, LinkType: layers.LinkTypeEthernet, Data: b, WireLen: len(b)})
	}
	// A server-first binary protocol on an unusual port.
	feed(frame(t, false, "10.99.0.1", "10.99.0.2", 40000, 2222, "S", 100, ""))
	feed(frame(t, false, "10.99.0.2", "10.99.0.1", 2222, 40000, "SA", 500, ""))
	for i := range 10 {
		feed(frame(t, false, "10.99.0.2", "10.99.0.1", 2222, 40000, "A", uint32(501+i*4), "\x00\x01\x02\x03"))
	}
	// DNS on a non-DNS port, recognised by content.
	q := "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x04test\x00\x00\x01\x00\x01"
	feed(frame(t, true, "10.99.0.1", "10.99.0.2", 40001, 5300, "", 0, q))
	if len(entries) != 1 || entries[0].Protocol.Name != "tcp" {
		t.Fatalf("after 10 unknown segments: %d entries", len(entries))
	}
	e := entries[0]
	if e.Src.Port != 40000 || e.Dst.Port != 2222 || e.L4.PacketsUp != 1 || e.L4.PacketsDown != 9 || !e.L4.SYN ||
		e.Src.Name != "client" || e.Dst.Namespace != "ns-server" || e.Dst.Labels["app"] != "server" || !e.Outgoing || e.Node.Name != "node-1" || e.Stream != "000000000001_tcp.pcap" {
		t.Errorf("L4 entry: %+v %+v", e, *e.L4)
	}
	// The unanswered DNS query is emitted when its stream expires (UDP, 10 s).
	d.Tick(ts.Add(11 * time.Second))
	if len(entries) != 2 || entries[1].DNS == nil || entries[1].DNS.HasResponse || entries[1].DNS.Request.Questions[0].Name != "x.test" {
		t.Fatalf("after the UDP timeout: %d entries", len(entries))
	}
	st := d.Stats()
	if st.StreamsExpired != 1 || st.ActiveStreams != 1 {
		t.Errorf("expired %d active %d, want 1 and 1", st.StreamsExpired, st.ActiveStreams)
	}
	d.Tick(ts.Add(2 * time.Minute))
	if st := d.Stats(); st.StreamsExpired != 2 || st.ActiveStreams != 0 || st.EntriesL4 != 1 {
		t.Errorf("after the TCP timeout: %+v", st)
	}
	d.Close()
}
