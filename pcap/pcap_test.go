package pcap_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
)

var (
	t0     = time.Unix(1_700_000_000, 123456789)
	macA   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	ip4A   = net.IP{10, 99, 0, 1}
	ip4B   = net.IP{10, 99, 0, 2}
	ip6A   = net.ParseIP("fd99::1")
	ip6B   = net.ParseIP("fd99::2")
	serOpt = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serOpt, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// udp4 is an IPv4 UDP datagram with payload bytes of payload.
func udp4(t testing.TB, payload int) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip4A, DstIP: ip4B}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, gopacket.Payload(bytes.Repeat([]byte{'x'}, payload)))
}

func udp6(t testing.TB) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: ip6A, DstIP: ip6B}
	udp := &layers.UDP{SrcPort: 40001, DstPort: 53}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, gopacket.Payload("v6"))
}

// ether wraps an IP packet in Ethernet from macA.
func ether(ipPacket []byte) []byte {
	typ := []byte{0x08, 0x00}
	if ipPacket[0]>>4 == 6 {
		typ = []byte{0x86, 0xdd}
	}
	return append(append(append(append([]byte(nil), macB...), macA...), typ...), ipPacket...)
}

// cooked wraps an IP packet in a LINUX_SLL (v1) header from macA.
func cooked(pktType uint16, ipPacket []byte) []byte {
	h := []byte{byte(pktType >> 8), byte(pktType), 0, 1, 0, 6}
	h = append(h, macA...)
	h = append(h, 0, 0, 0x08, 0x00)
	return append(h, ipPacket...)
}

func pkt(lt layers.LinkType, ifindex int, dir packet.Direction, i int, data []byte) packet.Packet {
	return packet.Packet{Time: t0.Add(time.Duration(i) * time.Millisecond), Ifindex: ifindex, Dir: dir, LinkType: lt, WireLen: len(data), Data: data}
}

// tshark runs tshark -r path -T fields -e fields… as an independent
// reader, one row per frame; it skips the test under -short or without
// tshark.
func tshark(t *testing.T, path string, fields ...string) [][]string {
	t.Helper()
	if testing.Short() {
		t.Skip("tshark check skipped with -short")
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	args := []string{"-n", "-r", path, "-T", "fields", "-E", "separator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rows = append(rows, strings.Split(l, "|"))
	}
	return rows
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type record struct {
	ci   gopacket.CaptureInfo
	data []byte
	opts pcapgo.NgPacketOptions
}

func readPcap(t *testing.T, b []byte) (*pcapgo.Reader, []record) {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	var recs []record
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return r, recs
		}
		if err != nil {
			t.Fatalf("pcapgo: record %d: %v", len(recs), err)
		}
		recs = append(recs, record{ci: ci, data: data})
	}
}

func readPcapng(t *testing.T, b []byte) (*pcapgo.NgReader, []record) {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatalf("pcapgo: %v", err)
	}
	var recs []record
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return r, recs
		}
		if err != nil {
			t.Fatalf("pcapgo: block %d: %v", len(recs), err)
		}
		recs = append(recs, record{ci: ci, data: data, opts: opts})
	}
}

// TestPcapRoundTrip: a classic pcap reads back with nanosecond timestamps,
// captured and wire lengths, and the bytes, including a packet large enough
// to bypass the writer's buffer.
func TestPcapRoundTrip(t *testing.T) {
	big := ether(udp4(t, 20000))
	in := []packet.Packet{
		pkt(layers.LinkTypeEthernet, 2, packet.Ingress, 0, ether(udp4(t, 10))),
		pkt(layers.LinkTypeEthernet, 2, packet.Egress, 1, big),
		pkt(layers.LinkTypeEthernet, 2, packet.Unknown, 2, ether(udp4(t, 3))),
	}
	in[2].WireLen = 1500 // truncated by the snaplen
	var buf bytes.Buffer
	w, err := pcap.NewPcapWriter(&buf, layers.LinkTypeEthernet, 65535)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if err := w.WritePacket(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(nil); err != nil {
		t.Fatal(err)
	}
	r, recs := readPcap(t, buf.Bytes())
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != 65535 || r.Resolution() != gopacket.TimestampResolutionNanosecond {
		t.Errorf("header: link %v snaplen %d resolution %v", r.LinkType(), r.Snaplen(), r.Resolution())
	}
	if len(recs) != len(in) {
		t.Fatalf("%d records, wrote %d", len(recs), len(in))
	}
	for i, rec := range recs {
		p := in[i]
		if !rec.ci.Timestamp.Equal(p.Time) || rec.ci.CaptureLength != len(p.Data) || rec.ci.Length != p.WireLen || !bytes.Equal(rec.data, p.Data) {
			t.Errorf("record %d: %v caplen %d len %d; wrote %v %d %d", i, rec.ci.Timestamp, rec.ci.CaptureLength, rec.ci.Length, p.Time, len(p.Data), p.WireLen)
		}
	}

	t.Run("tshark", func(t *testing.T) {
		rows := tshark(t, writeFile(t, "rt.pcap", buf.Bytes()), "frame.time_epoch", "frame.cap_len", "frame.len", "udp.length")
		want := [][]string{
			{"1700000000.123456789", "52", "52", "18"},
			{"1700000000.124456789", "20042", "20042", "20008"},
			{"1700000000.125456789", "45", "1500", "11"},
		}
		if !equalRows(rows, want) {
			t.Errorf("tshark reads\n%v\nwant\n%v", rows, want)
		}
	})
}

func equalRows(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "|") != strings.Join(b[i], "|") {
			return false
		}
	}
	return true
}

// TestPcapngRoundTrip: interface blocks with name, link type, description
// and snaplen; every packet on its interface with its direction flag;
// statistics at the end for the interfaces that have them.
func TestPcapngRoundTrip(t *testing.T) {
	ifaces := []pcap.Interface{
		{Index: 2, Name: "eth0", LinkType: layers.LinkTypeEthernet},
		{Index: 7, Name: "tun0", LinkType: layers.LinkTypeRaw, Description: "netns blue"},
	}
	in := []packet.Packet{
		pkt(layers.LinkTypeEthernet, 2, packet.Ingress, 0, ether(udp4(t, 10))),
		pkt(layers.LinkTypeRaw, 7, packet.Egress, 1, udp4(t, 1)),
		pkt(layers.LinkTypeEthernet, 2, packet.Egress, 2, ether(udp4(t, 17001))), // large, length not a multiple of 4
		pkt(layers.LinkTypeRaw, 7, packet.Unknown, 3, udp6(t)),
		pkt(layers.LinkTypeEthernet, 2, packet.Ingress, 4, ether(udp4(t, 2))),
	}
	wantIface := []int{0, 1, 0, 1, 0}
	wantDir := []pcapgo.NgEpbFlag{pcapgo.NgEpbFlagDirectionInbound, pcapgo.NgEpbFlagDirectionOutbound, pcapgo.NgEpbFlagDirectionOutbound, pcapgo.NgEpbFlagDirectionUnknown, pcapgo.NgEpbFlagDirectionInbound}
	var buf bytes.Buffer
	w, err := pcap.NewPcapngWriter(&buf, ifaces, 262144, "kflcap test")
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if err := w.WritePacket(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	start, end := t0, t0.Add(time.Second)
	err = w.Close([]pcap.IfaceStats{
		{Ifindex: 2, Received: 10, KernelDrop: 1, Start: start, End: end},
		{Ifindex: 7, Received: 5, Start: start, End: end},
		{Ifindex: 99, Received: 1}, // no such interface in the file: left out
	})
	if err != nil {
		t.Fatal(err)
	}

	r, recs := readPcapng(t, buf.Bytes())
	if r.NInterfaces() != 2 {
		t.Fatalf("%d interfaces, want 2", r.NInterfaces())
	}
	for i, want := range ifaces {
		got, _ := r.Interface(i)
		if got.Name != want.Name || got.LinkType != want.LinkType || got.Description != want.Description || got.SnapLength != 262144 {
			t.Errorf("interface %d: %+v, want %+v", i, got, want)
		}
	}
	if si := r.SectionInfo(); si.Application != "kflcap test" {
		t.Errorf("shb_userappl %q", si.Application)
	}
	if len(recs) != len(in) {
		t.Fatalf("%d packets, wrote %d", len(recs), len(in))
	}
	for i, rec := range recs {
		p := in[i]
		if rec.ci.InterfaceIndex != wantIface[i] || rec.ci.AncillaryData[0] != p.LinkType || !rec.ci.Timestamp.Equal(p.Time) ||
			rec.ci.Length != p.WireLen || !bytes.Equal(rec.data, p.Data) {
			t.Errorf("packet %d: interface %d, %v, %v, len %d; wrote %+v", i, rec.ci.InterfaceIndex, rec.ci.AncillaryData, rec.ci.Timestamp, rec.ci.Length, p)
		}
		if rec.opts.Flags == nil || rec.opts.Flags.Direction != wantDir[i] {
			t.Errorf("packet %d: flags %+v, want direction %v", i, rec.opts.Flags, wantDir[i])
		}
	}
	for i, want := range [][2]uint64{{10, 1}, {5, 0}} {
		got, _ := r.Interface(i)
		if st := got.Statistics; st.PacketsReceived != want[0] || st.PacketsDropped != want[1] || !st.StartTime.Equal(start) || !st.EndTime.Equal(end) {
			t.Errorf("interface %d statistics %+v, want received %d dropped %d", i, st, want[0], want[1])
		}
	}

	t.Run("tshark", func(t *testing.T) {
		rows := tshark(t, writeFile(t, "rt.pcapng", buf.Bytes()), "frame.interface_name", "frame.packet_flags_direction", "frame.cap_len", "udp.srcport")
		want := [][]string{
			{"eth0", "0x00000001", "52", "40000"}, // inbound
			{"tun0", "0x00000002", "29", "40000"}, // outbound
			{"eth0", "0x00000002", "17043", "40000"},
			{"tun0", "0x00000000", "50", "40001"}, // unknown
			{"eth0", "0x00000001", "44", "40000"},
		}
		if !equalRows(rows, want) {
			t.Errorf("tshark reads\n%v\nwant\n%v", rows, want)
		}
	})
}

// TestPcapngInterfacesMidFile: a packet of an interface the header did not
// list (a file's packets, a new link type on a known interface) gets an
// interface block before it, once; known ones reuse theirs.
func TestPcapngInterfacesMidFile(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcap.NewPcapngWriter(&buf, []pcap.Interface{{Index: 2, Name: "eth0", LinkType: layers.LinkTypeEthernet}}, 65535, "")
	if err != nil {
		t.Fatal(err)
	}
	in := []packet.Packet{
		pkt(layers.LinkTypeEthernet, 2, packet.Ingress, 0, ether(udp4(t, 1))),
		pkt(layers.LinkTypeRaw, 9, packet.Ingress, 1, udp4(t, 2)),             // unknown ifindex
		pkt(layers.LinkTypeRaw, 9, packet.Egress, 2, udp4(t, 3)),              // same again: no new block
		pkt(layers.LinkTypeRaw, 2, packet.Ingress, 3, udp4(t, 4)),             // known ifindex, other link type
		pkt(layers.LinkTypeEthernet, 0, packet.Unknown, 4, ether(udp4(t, 5))), // from a file: ifindex 0
		pkt(layers.LinkTypeEthernet, 2, packet.Egress, 5, ether(udp4(t, 6))),
		pkt(layers.LinkTypeRaw, 9, packet.Ingress, 6, udp4(t, 7)),
	}
	for i := range in {
		if err := w.WritePacket(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Statistics go to an interface's first block.
	if err := w.Close([]pcap.IfaceStats{{Ifindex: 2, Received: 3}, {Ifindex: 9, Received: 4}}); err != nil {
		t.Fatal(err)
	}
	r, recs := readPcapng(t, buf.Bytes())
	wantIfaces := []struct {
		name string
		lt   layers.LinkType
	}{{"eth0", layers.LinkTypeEthernet}, {"if9", layers.LinkTypeRaw}, {"if2", layers.LinkTypeRaw}, {"unknown", layers.LinkTypeEthernet}}
	if r.NInterfaces() != len(wantIfaces) {
		t.Fatalf("%d interfaces, want %d", r.NInterfaces(), len(wantIfaces))
	}
	for i, want := range wantIfaces {
		got, _ := r.Interface(i)
		if got.Name != want.name || got.LinkType != want.lt {
			t.Errorf("interface %d: %s %v, want %s %v", i, got.Name, got.LinkType, want.name, want.lt)
		}
	}
	wantIDs := []int{0, 1, 1, 2, 3, 0, 1}
	for i, rec := range recs {
		if rec.ci.InterfaceIndex != wantIDs[i] || !bytes.Equal(rec.data, in[i].Data) {
			t.Errorf("packet %d on interface %d, want %d", i, rec.ci.InterfaceIndex, wantIDs[i])
		}
	}
	for i, want := range []uint64{3, 4, 0, 0} { // 0: no statistics block
		if got, _ := r.Interface(i); got.Statistics.PacketsReceived != want {
			t.Errorf("interface %d: received %d, want %d", i, got.Statistics.PacketsReceived, want)
		}
	}

	t.Run("tshark", func(t *testing.T) {
		rows := tshark(t, writeFile(t, "mid.pcapng", buf.Bytes()), "frame.interface_name", "ip.len")
		var names []string
		for _, r := range rows {
			names = append(names, r[0])
		}
		if got := strings.Join(names, " "); got != "eth0 if9 if9 if2 unknown eth0 if9" {
			t.Errorf("tshark sees interfaces %s", got)
		}
	})
}

// TestPcapSLL2MixedLinkTypes: a classic pcap of interfaces with different
// link types is LINUX_SLL2, each packet with its interface index,
// direction and original link-layer header type, the network layer
// unchanged; what cannot be converted is counted in Skipped.
func TestPcapSLL2MixedLinkTypes(t *testing.T) {
	ifaces := []pcap.Interface{{Index: 2, Name: "eth0", LinkType: layers.LinkTypeEthernet}, {Index: 7, Name: "tun0", LinkType: layers.LinkTypeRaw}}
	var buf bytes.Buffer
	pw, err := pcap.NewWriter(&buf, pcap.FormatPcap, ifaces, 65535, "")
	if err != nil {
		t.Fatal(err)
	}
	if lt := pw.(*pcap.PcapWriter).LinkType(); lt != layers.LinkTypeLinuxSLL2 {
		t.Fatalf("link type %v, want LINUX_SLL2", lt)
	}
	v4, v6 := udp4(t, 8), udp6(t)
	sll2 := append([]byte{0x08, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6}, append(append([]byte(nil), macA...), 0, 0)...)
	sll2 = append(sll2, v4...)
	in := []packet.Packet{
		pkt(layers.LinkTypeEthernet, 2, packet.Ingress, 0, ether(v4)),
		pkt(layers.LinkTypeRaw, 7, packet.Egress, 1, v4),
		pkt(layers.LinkTypeEthernet, 2, packet.Egress, 2, ether(v6)),
		pkt(layers.LinkTypeRaw, 7, packet.Ingress, 3, v6),
		pkt(layers.LinkTypeEthernet, 2, packet.Ingress, 4, ether(v4)[:10]),                // too short for Ethernet: skipped
		pkt(layers.LinkTypeLinuxSLL, 4, packet.Ingress, 5, cooked(1, v4)),                 // broadcast, kept
		pkt(layers.LinkTypeLinuxSLL2, 3, packet.Ingress, 6, sll2),                         // already SLL2: as it is
		pkt(layers.LinkTypeNull, 5, packet.Ingress, 7, append([]byte{2, 0, 0, 0}, v4...)), // not convertible: skipped
		pkt(layers.LinkTypeIPv6, 7, packet.Egress, 8, v6),
	}
	written := 0
	for i := range in {
		if err := pw.WritePacket(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(nil); err != nil {
		t.Fatal(err)
	}
	if s := pw.(*pcap.PcapWriter).Skipped; s != 2 {
		t.Errorf("Skipped = %d, want 2", s)
	}
	type want struct {
		ifindex uint32
		pktType layers.LinuxSLL2PacketType
		hatype  layers.ARPHardwareType
		proto   layers.EthernetType
		addr    net.HardwareAddr
		payload []byte
		wire    int
	}
	none := layers.ARPHardwareType(0xfffe)
	wants := []want{
		{2, 0, layers.ARPHardwareTypeEthernet, layers.EthernetTypeIPv4, macA, v4, len(v4) + 20},
		{7, 4, none, layers.EthernetTypeIPv4, nil, v4, len(v4) + 20},
		{2, 4, layers.ARPHardwareTypeEthernet, layers.EthernetTypeIPv6, macA, v6, len(v6) + 20},
		{7, 0, none, layers.EthernetTypeIPv6, nil, v6, len(v6) + 20},
		{4, 1, layers.ARPHardwareTypeEthernet, layers.EthernetTypeIPv4, macA, v4, len(v4) + 20},
		{3, 0, layers.ARPHardwareTypeEthernet, layers.EthernetTypeIPv4, macA, v4, len(v4) + 20},
		{7, 4, none, layers.EthernetTypeIPv6, nil, v6, len(v6) + 20},
	}
	r, recs := readPcap(t, buf.Bytes())
	if r.LinkType() != layers.LinkTypeLinuxSLL2 || len(recs) != len(wants) {
		t.Fatalf("link type %v, %d records; want LINUX_SLL2, %d", r.LinkType(), len(recs), len(wants))
	}
	for i, rec := range recs {
		w := wants[i]
		var sll layers.LinuxSLL2
		if err := sll.DecodeFromBytes(rec.data, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		addr := sll.Addr[:sll.AddrLength]
		if sll.InterfaceIndex != w.ifindex || sll.PacketType != w.pktType || sll.ARPHardwareType != w.hatype ||
			sll.ProtocolType != w.proto || !bytes.Equal(addr, w.addr) || !bytes.Equal(sll.Payload, w.payload) || rec.ci.Length != w.wire {
			t.Errorf("record %d: %+v addr %v wire %d\nwant %+v", i, sll, net.HardwareAddr(addr), rec.ci.Length, w)
		}
		written++
	}

	t.Run("tshark", func(t *testing.T) {
		rows := tshark(t, writeFile(t, "sll2.pcap", buf.Bytes()), "sll.ifindex", "sll.pkttype", "sll.hatype", "ip.src", "ipv6.src")
		wantRows := [][]string{
			{"2", "0", "1", "10.99.0.1", ""},
			{"7", "4", "65534", "10.99.0.1", ""},
			{"2", "4", "1", "", "fd99::1"},
			{"7", "0", "65534", "", "fd99::1"},
			{"4", "1", "1", "10.99.0.1", ""},
			{"3", "0", "1", "10.99.0.1", ""},
			{"7", "4", "65534", "", "fd99::1"},
		}
		if !equalRows(rows, wantRows) {
			t.Errorf("tshark reads\n%v\nwant\n%v", rows, wantRows)
		}
	})
}

// linkTypes are the packet link types the RecordLen checks cover: every
// one AppendSLL2 converts, SLL2 itself, and some it does not.
var linkTypes = []layers.LinkType{
	layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6,
	layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, layers.LinkTypeNull, layers.LinkTypeIEEE802_11,
}

// TestRecordLenMatchesPcapWriter: for every file and packet link type and
// captured lengths around each header size, RecordLen says exactly how many
// bytes PcapWriter writes after the record header, and whether it skips
// the packet (which it then counts).
func TestRecordLenMatchesPcapWriter(t *testing.T) {
	capLens := []int{0, 1, 2, 13, 14, 15, 16, 17, 19, 20, 21, 64, 1500, 16<<10 - 1, 16 << 10, 70000}
	for _, file := range []layers.LinkType{layers.LinkTypeLinuxSLL2, layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeLinuxSLL} {
		for _, lt := range linkTypes {
			for _, n := range capLens {
				checkRecordLen(t, file, lt, n)
			}
		}
	}
}

func checkRecordLen(t *testing.T, file, lt layers.LinkType, capLen int) {
	t.Helper()
	data := bytes.Repeat([]byte{0x45}, capLen)
	if capLen > 0 && capLen%2 == 0 {
		data[0] = 0x60 // IPv6 for the raw types
	}
	p := pkt(lt, 3, packet.Egress, 0, data)
	p.WireLen = capLen + 100
	var buf bytes.Buffer
	w, err := pcap.NewPcapWriter(&buf, file, 262144)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(&p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(nil); err != nil {
		t.Fatal(err)
	}
	wrote := buf.Len() - 24
	n, ok := pcap.RecordLen(file, lt, capLen)
	switch {
	case !ok && (wrote != 0 || w.Skipped != 1):
		t.Errorf("file %v, packet %v, %d bytes: RecordLen skips it, the writer wrote %d bytes (Skipped %d)", file, lt, capLen, wrote, w.Skipped)
	case ok && (wrote != 16+n || w.Skipped != 0):
		t.Errorf("file %v, packet %v, %d bytes: RecordLen %d, the writer wrote 16+%d (Skipped %d)", file, lt, capLen, n, wrote-16, w.Skipped)
	case ok:
		_, recs := readPcap(t, buf.Bytes())
		if len(recs) != 1 || recs[0].ci.CaptureLength != n || recs[0].ci.Length != p.WireLen+n-capLen {
			t.Errorf("file %v, packet %v, %d bytes: record %+v, want caplen %d", file, lt, capLen, recs, n)
		}
	}
}

// TestSkippedCounts: Skipped counts every packet a file cannot carry, and
// only those; the others are all written.
func TestSkippedCounts(t *testing.T) {
	var buf bytes.Buffer
	w, _ := pcap.NewPcapWriter(&buf, layers.LinkTypeEthernet, 65535)
	in := []packet.Packet{
		pkt(layers.LinkTypeEthernet, 1, packet.Ingress, 0, ether(udp4(t, 1))),
		pkt(layers.LinkTypeRaw, 2, packet.Ingress, 1, udp4(t, 1)),
		pkt(layers.LinkTypeEthernet, 1, packet.Ingress, 2, ether(udp4(t, 2))),
		pkt(layers.LinkTypeLinuxSLL2, 1, packet.Ingress, 3, make([]byte, 40)),
		pkt(layers.LinkTypeRaw, 2, packet.Ingress, 4, udp4(t, 3)),
	}
	for i := range in {
		if err := w.WritePacket(&in[i]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close(nil)
	if _, recs := readPcap(t, buf.Bytes()); w.Skipped != 3 || len(recs) != 2 {
		t.Errorf("Skipped %d, %d written; want 3 and 2", w.Skipped, len(recs))
	}
}

// TestLinkTypeOf: the interfaces' link type when they agree, else SLL2.
func TestLinkTypeOf(t *testing.T) {
	eth, raw := pcap.Interface{LinkType: layers.LinkTypeEthernet}, pcap.Interface{LinkType: layers.LinkTypeRaw}
	for _, tc := range []struct {
		ifaces []pcap.Interface
		want   layers.LinkType
	}{
		{nil, layers.LinkTypeLinuxSLL2},
		{[]pcap.Interface{raw}, layers.LinkTypeRaw},
		{[]pcap.Interface{eth, eth}, layers.LinkTypeEthernet},
		{[]pcap.Interface{eth, raw, eth}, layers.LinkTypeLinuxSLL2},
	} {
		if got := pcap.LinkTypeOf(tc.ifaces); got != tc.want {
			t.Errorf("LinkTypeOf(%v) = %v, want %v", tc.ifaces, got, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	var f pcap.Format
	if err := f.UnmarshalText([]byte("pcap")); err != nil || f != pcap.FormatPcap {
		t.Errorf("pcap: %v %v", f, err)
	}
	if err := f.UnmarshalText([]byte("erf")); err == nil || !strings.Contains(err.Error(), `unknown format "erf"`) {
		t.Errorf("erf: %v", err)
	}
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.FormatPcapng, nil, 65535, "")
	if _, ok := w.(*pcap.PcapngWriter); !ok || err != nil {
		t.Errorf("NewWriter(pcapng) = %T, %v", w, err)
	}
}

// TestWriteErrorSticks: after a failed write (here of a packet too large
// for the buffer, which goes straight through) every later call reports
// the error, and nothing more is written.
func TestWriteErrorSticks(t *testing.T) {
	big := pkt(layers.LinkTypeEthernet, 2, packet.Ingress, 0, ether(udp4(t, 20000)))
	for _, format := range []pcap.Format{pcap.FormatPcap, pcap.FormatPcapng} {
		fw := &failingWriter{okBytes: 1 << 10}
		w, err := pcap.NewWriter(fw, format, []pcap.Interface{{Index: 2, Name: "eth0", LinkType: layers.LinkTypeEthernet}}, 65535, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(&big); !errors.Is(err, errFull) {
			t.Errorf("%s: WritePacket = %v, want the write error", format, err)
		}
		n := fw.calls
		if err := w.WritePacket(&big); !errors.Is(err, errFull) || fw.calls != n {
			t.Errorf("%s: after an error WritePacket = %v and wrote again", format, err)
		}
		if err := w.Flush(); !errors.Is(err, errFull) {
			t.Errorf("%s: Flush = %v", format, err)
		}
		if err := w.Close(nil); !errors.Is(err, errFull) {
			t.Errorf("%s: Close = %v", format, err)
		}
	}
}

var errFull = errors.New("device full")

// failingWriter accepts okBytes, then fails.
type failingWriter struct {
	okBytes, calls int
}

func (f *failingWriter) Write(b []byte) (int, error) {
	f.calls++
	if len(b) > f.okBytes {
		n := f.okBytes
		f.okBytes = 0
		return n, errFull
	}
	f.okBytes -= len(b)
	return len(b), nil
}
