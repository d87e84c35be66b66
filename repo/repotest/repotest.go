// Package repotest builds repository archives for tests: realistic ones
// (TCP and UDP streams of real Ethernet/IPv4 packets, a merged pcap,
// content.json and name_resolution_history.json as the agent writes them)
// and hostile ones (any tar header, any bytes).
package repotest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/kflcap/kflcap/repo"
)

// Packet is one captured Ethernet frame.
type Packet struct {
	Time time.Time
	Data []byte
}

// Stream is one L4 stream's pcap.
type Stream struct {
	Name    string // 000000000001_tcp.pcap
	Packets []Packet
}

// Member is one raw archive entry: any header, any body. Header.Size is
// set from Body when it is zero and Typeflag is regular.
type Member struct {
	Header tar.Header
	Body   []byte
}

// File is a regular member.
func File(name string, body []byte) Member {
	return Member{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(1700000000, 0)}, Body: body}
}

// Repo is a repository before it is written; tests change it to make it
// inconsistent.
type Repo struct {
	Streams    []Stream
	MergedName string
	Merged     []Packet       // nil: the streams' packets in time order
	Content    map[string]any // content.json, a map so that tests can break it
	Names      map[string]any // name_resolution_history.json
}

// Start is when the generated traffic begins: 2023-11-14 22:13:20 UTC.
var Start = time.Unix(1700000000, 0).UTC()

// New returns a consistent repository of KFL job index: two HTTP
// connections (handshake, request, response, teardown) and one DNS
// exchange, interleaved in time.
func New(index int, query string) *Repo {
	r := &Repo{
		Streams: []Stream{
			TCPStream(1, "10.1.0.5:40000", "10.96.0.20:80", Start, "GET /status/500 HTTP/1.1\r\nHost: shop\r\n\r\n", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
			TCPStream(2, "10.1.0.6:40002", "10.96.0.20:80", Start.Add(3*time.Millisecond), "GET /cart HTTP/1.1\r\nHost: shop\r\n\r\n", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno"),
			UDPStream(3, "10.1.0.5:53001", "10.96.0.10:53", Start.Add(time.Millisecond), 2),
		},
		MergedName: fmt.Sprintf("%d.pcap", Start.Unix()+5),
		Names: map[string]any{
			fmt.Sprint(Start.Unix()): map[string]any{
				"10.96.0.20":    map[string]string{"FullAddress": "shop.default", "Namespace": "default"},
				"10.96.0.20:80": map[string]string{"FullAddress": "shop.default", "Namespace": "default"},
				"10.96.0.10":    map[string]string{"FullAddress": "kube-dns.kube-system", "Namespace": "kube-system"},
			},
		},
	}
	var names []string
	packets := 0
	for _, s := range r.Streams {
		names = append(names, s.Name)
		packets += len(s.Packets)
	}
	r.Content = ContentMap(repo.Content{
		KFLIndex:     index,
		KFLQuery:     query,
		L4Streams:    names,
		PcapFileName: r.MergedName,
		Time:         Start.Add(5 * time.Second).Format(repo.TimeFormat),
		Node:         &repo.Node{Name: "node-1", IP: "192.168.49.2", Cluster: "my-cluster"},
		// The agent's counters over the repository's lifetime.
		Capture: map[string]uint64{
			"packets_seen":              uint64(packets * 10),
			"packets_captured":          uint64(packets * 10),
			"packets_dropped_kernel":    0,
			"packets_dropped_userspace": 0,
		},
		KflcapVersion: "v0.5.0-test",
		SealReason:    "maxDuration",
	})
	return r
}

// ContentMap is c as the generic JSON map that Repo.Content holds, with
// numbers as json.Number so that they print as they were.
func ContentMap(c repo.Content) map[string]any {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a Content always encodes
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	return m
}

// Members renders the repository: stream pcaps, the merged pcap,
// content.json and name_resolution_history.json.
func (r *Repo) Members(t testing.TB) []Member {
	t.Helper()
	var ms []Member
	var all []Packet
	for _, s := range r.Streams {
		ms = append(ms, File(s.Name, Pcap(t, s.Packets)))
		all = append(all, s.Packets...)
	}
	merged := r.Merged
	if merged == nil {
		merged = all
		slices.SortStableFunc(merged, func(a, b Packet) int { return a.Time.Compare(b.Time) })
	}
	ms = append(ms, File(r.MergedName, Pcap(t, merged)))
	ms = append(ms, File("content.json", mustJSON(t, r.Content)))
	ms = append(ms, File("name_resolution_history.json", mustJSON(t, r.Names)))
	return ms
}

// Write writes the repository to path as .tar.gz.
func (r *Repo) Write(t testing.TB, path string) {
	t.Helper()
	WriteArchive(t, path, r.Members(t))
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Archive returns members as tar.gz bytes. Headers are written as given,
// so they may be hostile; Size defaults to len(Body) for regular files.
func Archive(t testing.TB, members []Member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		h := m.Header
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(m.Body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if len(m.Body) > 0 {
			if _, err := tw.Write(m.Body); err != nil {
				t.Fatalf("tar body %q: %v", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// WriteArchive writes members as a tar.gz file at path.
func WriteArchive(t testing.TB, path string, members []Member) {
	t.Helper()
	if err := os.WriteFile(path, Archive(t, members), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Gzip compresses b, for archives built by hand.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Pcap returns a classic Ethernet pcap of packets.
func Pcap(t testing.TB, packets []Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, p := range packets {
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: len(p.Data)}
		if err := w.WritePacket(ci, p.Data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TCPStream is a whole HTTP/1.1 connection from client to server:
// handshake, request, response, FIN teardown; 9 packets 100µs apart.
func TCPStream(id int, client, server string, start time.Time, req, resp string) Stream {
	c, s := endpoint(client), endpoint(server)
	seqC, seqS := uint32(1000), uint32(5000)
	type seg struct {
		fromClient         bool
		syn, ack, psh, fin bool
		payload            string
	}
	segs := []seg{
		{fromClient: true, syn: true},
		{fromClient: false, syn: true, ack: true},
		{fromClient: true, ack: true},
		{fromClient: true, ack: true, psh: true, payload: req},
		{fromClient: false, ack: true, psh: true, payload: resp},
		{fromClient: true, ack: true},
		{fromClient: true, ack: true, fin: true},
		{fromClient: false, ack: true, fin: true},
		{fromClient: true, ack: true},
	}
	var pkts []Packet
	for i, sg := range segs {
		src, dst := c, s
		seq, ack := seqC, seqS
		if !sg.fromClient {
			src, dst, seq, ack = s, c, seqS, seqC
		}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(src.port), DstPort: layers.TCPPort(dst.port), Seq: seq, SYN: sg.syn, ACK: sg.ack, PSH: sg.psh, FIN: sg.fin, Window: 64240}
		if sg.ack {
			tcp.Ack = ack
		}
		pkts = append(pkts, Packet{Time: start.Add(time.Duration(i) * 100 * time.Microsecond), Data: frame(src, dst, tcp, []byte(sg.payload))})
		adv := uint32(len(sg.payload))
		if sg.syn || sg.fin {
			adv++
		}
		if sg.fromClient {
			seqC += adv
		} else {
			seqS += adv
		}
	}
	return Stream{Name: fmt.Sprintf("%012d_tcp.pcap", id), Packets: pkts}
}

// UDPStream is n DNS queries for shop.default.svc.cluster.local and their
// A answers, 1ms apart.
func UDPStream(id int, client, server string, start time.Time, n int) Stream {
	c, s := endpoint(client), endpoint(server)
	var pkts []Packet
	for i := 0; i < n; i++ {
		q := &layers.DNS{ID: uint16(0x1000 + i), RD: true, Questions: []layers.DNSQuestion{{Name: []byte("shop.default.svc.cluster.local"), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
		a := *q
		a.QR, a.RA = true, true
		a.Answers = []layers.DNSResourceRecord{{Name: q.Questions[0].Name, Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 30, IP: net.IPv4(10, 96, 0, 20)}}
		at := start.Add(time.Duration(i) * time.Millisecond)
		pkts = append(pkts,
			Packet{Time: at, Data: frame(c, s, &layers.UDP{SrcPort: layers.UDPPort(c.port), DstPort: layers.UDPPort(s.port)}, nil, q)},
			Packet{Time: at.Add(300 * time.Microsecond), Data: frame(s, c, &layers.UDP{SrcPort: layers.UDPPort(s.port), DstPort: layers.UDPPort(c.port)}, nil, &a)})
	}
	return Stream{Name: fmt.Sprintf("%012d_udp.pcap", id), Packets: pkts}
}

type ep struct {
	ip   net.IP
	port int
	mac  net.HardwareAddr
}

func endpoint(s string) ep {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		panic(err)
	}
	var p int
	fmt.Sscan(port, &p)
	ip := net.ParseIP(host).To4()
	return ep{ip: ip, port: p, mac: net.HardwareAddr{0x02, 0x42, ip[0], ip[1], ip[2], ip[3]}}
}

// frame serializes Ethernet/IPv4/l4[/payload or app layer] with checksums.
func frame(src, dst ep, l4 gopacket.SerializableLayer, payload []byte, app ...gopacket.SerializableLayer) []byte {
	eth := &layers.Ethernet{SrcMAC: src.mac, DstMAC: dst.mac, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.ip, DstIP: dst.ip, Flags: layers.IPv4DontFragment}
	switch l := l4.(type) {
	case *layers.TCP:
		ip.Protocol = layers.IPProtocolTCP
		l.SetNetworkLayerForChecksum(ip)
	case *layers.UDP:
		ip.Protocol = layers.IPProtocolUDP
		l.SetNetworkLayerForChecksum(ip)
	}
	ls := []gopacket.SerializableLayer{eth, ip, l4}
	ls = append(ls, app...)
	if len(payload) > 0 {
		ls = append(ls, gopacket.Payload(payload))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return slices.Clone(buf.Bytes())
}
