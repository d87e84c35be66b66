package dissect_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/packet"
)

// entryKey describes an entry independently of stream numbering.
func entryKey(e *dissect.Entry) string {
	s := fmt.Sprintf("%s %v:%d>%v:%d", e.Protocol.Name, e.Src.IP, e.Src.Port, e.Dst.IP, e.Dst.Port)
	switch {
	case e.HTTP != nil:
		s += " " + e.HTTP.Request.Method + " " + e.HTTP.Request.URL + " " + strconv.Itoa(e.HTTP.Response.Status)
	case e.DNS != nil:
		s += fmt.Sprintf(" %v %v", e.DNS.Request.Questions, e.DNS.Response.Answers)
	case e.TLS != nil:
		s += " " + e.TLS.ServerName
	default:
		// Redis, PostgreSQL, Kafka: the Kubeshark-shaped objects.
		s += fmt.Sprintf(" %v %v", e.Request(), e.Response())
	}
	return s
}

// TestWorkersSameEntries: sharding across workers changes only the order
// of entries between streams, never the entries.
func TestWorkersSameEntries(t *testing.T) {
	for _, f := range []string{"testdata/http.pcap", "testdata/dns.pcap", "testdata/tls.pcap", "testdata/redis.pcap",
		"testdata/http2.pcap", "testdata/grpc.pcap", "testdata/postgres.pcap", "testdata/kafka.pcap"} {
		one, _ := dissectFile(t, f, dissect.Config{Workers: 1})
		var many []*dissect.Entry
		ch := make(chan *dissect.Entry, 1024)
		d := dissect.New(dissect.Config{Workers: 3, OnEntry: func(e *dissect.Entry, _ dissect.StreamRef) { ch <- e }})
		done := make(chan struct{})
		go func() {
			for e := range ch {
				many = append(many, e)
			}
			close(done)
		}()
		if err := collector.ReadFile(context.Background(), f, d.Feed, nil); err != nil {
			t.Fatal(err)
		}
		d.Close()
		close(ch)
		<-done
		var a, b []string
		for _, e := range one {
			a = append(a, entryKey(e))
		}
		for _, e := range many {
			b = append(b, entryKey(e))
		}
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Errorf("%s: 1 worker and 3 workers differ:\n%q\n%q", f, a, b)
		}
	}
}

// collectSink records the packets it is given, per stream.
type collectSink struct {
	pkts  map[uint64]int
	ended map[uint64]bool
}

func (c *collectSink) StreamPacket(s dissect.StreamInfo, p packet.Packet) { c.pkts[s.ID]++ }
func (c *collectSink) StreamEnd(s dissect.StreamInfo)                     { c.ended[s.ID] = true }

// TestSelectReplaysWholeStream: selecting a stream on its 9th exchange
// delivers every packet of the stream (as tshark counts them), including
// those before the match and after it.
func TestSelectReplaysWholeStream(t *testing.T) {
	sink := &collectSink{pkts: map[uint64]int{}, ended: map[uint64]bool{}}
	var sel []uint64
	cfg := dissect.Config{StreamRetainBytes: 1 << 20}
	cfg.OnEntry = func(e *dissect.Entry, s dissect.StreamRef) {
		if e.HTTP != nil && e.HTTP.Response.Status == 500 && e.HTTP.Request.Path == "/status/500" && e.HTTP.Request.URL != "/status/500" {
			s.Select(sink)
			s.Select(sink) // twice: no effect
			sel = append(sel, s.ID())
		}
	}
	d := dissect.New(cfg)
	if err := collector.ReadFile(context.Background(), "testdata/http.pcap", d.Feed, nil); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if len(sel) != 1 {
		t.Fatalf("selected %v", sel)
	}
	// The keep-alive connection is tshark's stream 0.
	want := len(tshark(t, "testdata/http.pcap", "tcp.stream == 0", "frame.number"))
	if got := sink.pkts[sel[0]]; got != want || !sink.ended[sel[0]] {
		t.Errorf("sink got %d packets (ended %v), tshark counts %d in the stream", got, sink.ended[sel[0]], want)
	}
}

// synFrame returns an Ethernet/IPv4/TCP SYN template and the offsets of
// the source address and port, which the flood rewrites.
func synFrame(t testing.TB) []byte {
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: []byte{10, 99, 0, 1}, DstIP: []byte{10, 99, 0, 2}}
	tcp := &layers.TCP{SrcPort: 1, DstPort: 80, SYN: true, Seq: 1, Window: 1024}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSYNFloodBounded feeds a synthetic 1M-flow SYN flood (as a pcap
// stream) with a 20,000-stream cap: the table never exceeds the cap, every
// flow is still one stream with one L4 entry, and the heap stays small.
func TestSYNFloodBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("1M packets")
	}
	const flows, capStreams = 1_000_000, 20_000
	tmpl := synFrame(t)
	pr, pw := io.Pipe()
	go func() {
		w := pcapgo.NewWriter(pw)
		w.WriteFileHeader(65535, layers.LinkTypeEthernet)
		frame := slices.Clone(tmpl)
		ts := time.Unix(1_700_000_000, 0)
		for i := range flows {
			// Source 10.100.x.y, port 1024+: a new flow per packet.
			binary.BigEndian.PutUint16(frame[14+12+2:], uint16(i>>16))
			frame[14+12] = 10
			frame[14+12+1] = 100
			binary.BigEndian.PutUint16(frame[34:], uint16(1024+i&0xffff))
			ts = ts.Add(time.Microsecond)
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame)}, frame); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	var entries, maxActive uint64
	cfg := dissect.Config{MaxStreams: capStreams, StreamRetainBytes: 4096, TotalRetainBytes: 8 << 20}
	cfg.OnEntry = func(e *dissect.Entry, _ dissect.StreamRef) { entries++ }
	d := dissect.New(cfg)
	n := 0
	var peakHeap uint64
	err := collector.ReadPackets(context.Background(), pr, func(p packet.Packet) error {
		d.Feed(p)
		n++
		if n%100_000 == 0 {
			st := d.Stats()
			maxActive = max(maxActive, st.ActiveStreams)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st := d.Stats()
	d.Close()
	if maxActive > capStreams || st.ActiveStreams > capStreams {
		t.Errorf("active streams reached %d, cap %d", max(maxActive, st.ActiveStreams), capStreams)
	}
	if st.Streams != flows || st.StreamsEvicted != flows-capStreams {
		t.Errorf("streams %d evicted %d, want %d and %d", st.Streams, st.StreamsEvicted, flows, flows-capStreams)
	}
	if entries != flows {
		t.Errorf("%d L4 entries, want one per flow (%d)", entries, flows)
	}
	if peakHeap > 256<<20 {
		t.Errorf("heap in use reached %d MiB", peakHeap>>20)
	}
	t.Logf("1M-flow SYN flood: max active %d (cap %d), evicted %d, peak heap %d MiB", maxActive, capStreams, st.StreamsEvicted, peakHeap>>20)
}

// loadPackets reads captures into memory for the benchmarks.
func loadPackets(b *testing.B, files ...string) []packet.Packet {
	var out []packet.Packet
	for _, f := range files {
		err := collector.ReadFile(context.Background(), f, func(p packet.Packet) error {
			p.Data = slices.Clone(p.Data)
			out = append(out, p)
			return nil
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkDissect measures the whole path (decode, streams, reassembly,
// HTTP/DNS/TLS) on the test captures, replayed with advancing time.
func BenchmarkDissect(b *testing.B) {
	pkts := loadPackets(b, "testdata/http.pcap", "testdata/dns.pcap", "testdata/tls.pcap")
	benchFeed(b, pkts, dissect.Config{})
}

// BenchmarkDissectL4 is the L2–L4 and stream-table path alone: a bulk TCP
// transfer of full-size segments with no L7 payload recognised.
func BenchmarkDissectL4(b *testing.B) {
	frame := synFrame(b)
	frame[14+20+13] = 0x10 // ACK
	var pkts []packet.Packet
	ts := time.Unix(1_700_000_000, 0)
	for i := range 1000 {
		f := slices.Clone(frame)
		binary.BigEndian.PutUint32(f[14+20+4:], uint32(1+i*1460))
		binary.BigEndian.PutUint16(f[34:], uint16(1024+i%16)) // 16 connections
		pkts = append(pkts, packet.Packet{Time: ts.Add(time.Duration(i) * time.Microsecond), LinkType: layers.LinkTypeEthernet, Data: f, WireLen: len(f)})
	}
	benchFeed(b, pkts, dissect.Config{})
}

func benchFeed(b *testing.B, pkts []packet.Packet, cfg dissect.Config) {
	d := dissect.New(cfg)
	span := pkts[len(pkts)-1].Time.Sub(pkts[0].Time) + time.Second
	b.ReportAllocs()
	b.ResetTimer()
	var shift time.Duration
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		if i%len(pkts) == 0 && i > 0 {
			shift += span
		}
		p.Time = p.Time.Add(shift)
		d.Feed(p)
	}
	b.StopTimer()
	d.Close()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}
