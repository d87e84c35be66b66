package dissect

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/packet"
)

// seedFiles are the captures the netns tests made (see helpers_test.go).
var seedFiles = []string{"testdata/http.pcap", "testdata/dns.pcap", "testdata/tls.pcap", "testdata/redis.pcap", "testdata/http2.pcap", "testdata/grpc.pcap", "testdata/postgres.pcap", "testdata/kafka.pcap", "testdata/amqp.pcap"}

// seedPayloads returns the TCP (client, server) byte streams and UDP
// payloads of the seed captures, for the dissector fuzzers.
func seedPayloads(f *testing.F) (tcp [][2][]byte, udp [][]byte) {
	streams := map[flowKey]*[2][]byte{}
	var order []flowKey
	dec := newDecoder()
	for _, name := range seedFiles {
		err := collector.ReadFile(context.Background(), name, func(p packet.Packet) error {
			var d decoded
			if dec.decode(p.LinkType, p.Data, p.Time, &d) != decodedOK || len(d.payload) == 0 {
				return nil
			}
			if d.proto == protoUDP {
				udp = append(udp, append([]byte(nil), d.payload...))
				return nil
			}
			k, lo := makeKey(&d)
			s := streams[k]
			if s == nil {
				s = new([2][]byte)
				streams[k] = s
				order = append(order, k)
			}
			// Direction 0 is the side with the higher port (the client).
			i := 0
			if lo == (k.lport < k.hport) {
				i = 1
			}
			s[i] = append(s[i], d.payload...)
			return nil
		}, nil)
		if err != nil {
			f.Fatal(err)
		}
	}
	for _, k := range order {
		tcp = append(tcp, *streams[k])
	}
	return tcp, udp
}

// feedConversation plays client and server bytes as a TCP connection (with
// handshake) in segments of seg bytes, alternating directions.
func feedConversation(d *Dissector, port uint16, client, server []byte, seg int) {
	feedTCP(d, port, client, server, nil, nil, seg)
}

// feedTCP is feedConversation, or with reqs/resps set, one exchange after
// the other.
func feedTCP(d *Dissector, port uint16, client, server []byte, reqs, resps []string, seg int) {
	exchanges := reqs != nil
	if seg <= 0 {
		seg = 1
	}
	sh := d.shards[0]
	ca, sa := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	ts := time.Unix(1_700_000_000, 0)
	cseq, sseq := uint32(1000), uint32(5000)
	send := func(fromClient bool, flags uint8, payload []byte) {
		dec := decoded{src: ca, dst: sa, sport: 40000, dport: port, proto: protoTCP, flags: flags, seq: cseq, ack: sseq, payload: payload}
		if !fromClient {
			dec = decoded{src: sa, dst: ca, sport: port, dport: 40000, proto: protoTCP, flags: flags, seq: sseq, ack: cseq, payload: payload}
		}
		ts = ts.Add(time.Millisecond)
		sh.handle(&packet.Packet{Time: ts, LinkType: layers.LinkTypeEthernet}, decodedOK, &dec)
		n := uint32(len(payload))
		if flags&(flagSYN|flagFIN) != 0 {
			n++
		}
		if fromClient {
			cseq += n
		} else {
			sseq += n
		}
	}
	send(true, flagSYN, nil)
	send(false, flagSYN|flagACK, nil)
	if exchanges {
		// Each request completely before its response, as servers do.
		for i := range reqs {
			for c := []byte(reqs[i]); len(c) > 0; c = c[min(seg, len(c)):] {
				send(true, flagACK, c[:min(seg, len(c))])
			}
			for r := []byte(resps[i]); len(r) > 0; r = r[min(seg, len(r)):] {
				send(false, flagACK, r[:min(seg, len(r))])
			}
		}
		client, server = nil, nil
	}
	for len(client) > 0 || len(server) > 0 {
		n := min(seg, len(client))
		if n > 0 {
			send(true, flagACK, client[:n])
			client = client[n:]
		}
		n = min(seg, len(server))
		if n > 0 {
			send(false, flagACK, server[:n])
			server = server[n:]
		}
	}
	send(true, flagFIN|flagACK, nil)
	send(false, flagFIN|flagACK, nil)
}

// FuzzTCPDissectors drives HTTP, TLS and DNS-over-TCP parsing (chosen by
// content and port) and TCP reassembly with arbitrary conversations.
func FuzzTCPDissectors(f *testing.F) {
	tcp, _ := seedPayloads(f)
	for _, s := range tcp {
		f.Add(uint16(8080), s[0], s[1], 1460)
		f.Add(uint16(53), s[0], s[1], 7)
	}
	f.Add(uint16(80), []byte("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"), 3)
	f.Fuzz(func(t *testing.T, port uint16, client, server []byte, seg int) {
		d := New(Config{StreamRetainBytes: 4096})
		feedConversation(d, port, client, server, seg%2000)
		d.Close()
	})
}

// FuzzUDPDissectors drives DNS over UDP: a query and a response datagram.
func FuzzUDPDissectors(f *testing.F) {
	_, udp := seedPayloads(f)
	for i := 0; i+1 < len(udp); i += 2 {
		f.Add(uint16(53), udp[i], udp[i+1])
	}
	f.Add(uint16(9999), udp[0], udp[1])
	f.Fuzz(func(t *testing.T, port uint16, q, r []byte) {
		d := New(Config{})
		sh := d.shards[0]
		ca, sa := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
		ts := time.Unix(1_700_000_000, 0)
		sh.handle(&packet.Packet{Time: ts}, decodedOK, &decoded{src: ca, dst: sa, sport: 40000, dport: port, proto: protoUDP, payload: q})
		sh.handle(&packet.Packet{Time: ts}, decodedOK, &decoded{src: sa, dst: ca, sport: port, dport: 40000, proto: protoUDP, payload: r})
		d.Close()
	})
}

// FuzzDecode feeds arbitrary frames of every supported link type.
func FuzzDecode(f *testing.F) {
	for _, name := range seedFiles {
		n := 0
		collector.ReadFile(context.Background(), name, func(p packet.Packet) error {
			if n++; n%5 == 0 {
				f.Add(uint16(p.LinkType), append([]byte(nil), p.Data...))
			}
			return nil
		}, nil)
	}
	f.Fuzz(func(t *testing.T, lt uint16, frame []byte) {
		types := []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, layers.LinkTypeIPv4, layers.LinkTypeIPv6}
		d := New(Config{StreamRetainBytes: 4096})
		ts := time.Unix(1_700_000_000, 0)
		d.Feed(packet.Packet{Time: ts, LinkType: types[int(lt)%len(types)], Data: frame, WireLen: len(frame)})
		// The same frame again as the other link types: headers shift.
		d.Feed(packet.Packet{Time: ts, LinkType: types[int(lt+1)%len(types)], Data: frame, WireLen: len(frame)})
		d.Close()
	})
}

// FuzzReadFile reads arbitrary files as pcap, pcapng, gzip or repository.
func FuzzReadFile(f *testing.F) {
	for _, name := range seedFiles {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 4096)])
	}
	f.Add(repositorySeed(f))
	f.Add([]byte("\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "in")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		d := New(Config{})
		collector.ReadFile(context.Background(), path, d.Feed, nil)
		d.Close()
	})
}

// repositorySeed is a small repository .tar.gz holding one stream pcap.
func repositorySeed(f *testing.F) []byte {
	b, err := os.ReadFile("testdata/dns.pcap")
	if err != nil {
		f.Fatal(err)
	}
	b = b[:min(len(b), 1024)]
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "000000000001_udp.pcap", Mode: 0o644, Size: int64(len(b))})
	tw.Write(b)
	tw.WriteHeader(&tar.Header{Name: "content.json", Mode: 0o644, Size: 2})
	tw.Write([]byte("{}"))
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

var _ = gopacket.NilDecodeFeedback

// FuzzTLSHello parses arbitrary ClientHello and ServerHello bodies.
func FuzzTLSHello(f *testing.F) {
	tcp, _ := seedPayloads(f)
	for _, s := range tcp {
		for _, b := range s {
			if looksTLS(b) && len(b) > 9 {
				f.Add(b[9:]) // after the record and handshake headers
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var info TLS
		parseClientHello(body, &info)
		parseServerHello(body, &info)
	})
}

// FuzzReadPackets reads arbitrary pcap and pcapng streams through a small
// buffer (records larger than it take the copying path), faster than
// FuzzReadFile, which also goes through files and gzip.
func FuzzReadPackets(f *testing.F) {
	for _, name := range seedFiles {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 8192)])
	}
	f.Add([]byte("\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := New(Config{MaxStreams: 64})
		collector.ReadPackets(context.Background(), bufio.NewReaderSize(bytes.NewReader(data), 4096), d.Feed)
		d.Close()
	})
}

// FuzzRedis drives the RESP parser and command/reply pairing: the client's
// bytes start with a command so that the stream is detected as Redis.
func FuzzRedis(f *testing.F) {
	tcp, _ := seedPayloads(f)
	for _, s := range tcp {
		// Small seeds: the fuzzer minimises interesting inputs, which takes
		// minutes for the 100 kB value of the capture.
		if looksRedis(s[0]) && len(s[0]) < 4096 && len(s[1]) < 4096 {
			f.Add(s[0], s[1], 1460)
			f.Add(s[0], s[1], 5)
		}
	}
	f.Add([]byte("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\nPING\r\n"), []byte("%1\r\n+a\r\n*-1\r\n|1\r\n+k\r\n:1\r\n>2\r\n$1\r\nx\r\n_\r\n+PONG\r\n"), 3)
	f.Fuzz(func(t *testing.T, client, server []byte, seg int) {
		d := New(Config{})
		feedConversation(d, 6379, append([]byte("*1\r\n$4\r\nPING\r\n"), client...), server, seg%2000)
		d.Close()
	})
}

// FuzzHTTP2 drives HTTP/2 framing, HPACK and stream pairing: the client's
// bytes start with the preface, the fuzzer's frames follow. mid plays the
// conversation without the handshake, as a capture started mid-connection.
func FuzzHTTP2(f *testing.F) {
	tcp, _ := seedPayloads(f)
	for _, s := range tcp {
		if looksH2(s[0]) && len(s[0]) < 8192 && len(s[1]) < 8192 {
			f.Add(s[0][len(h2Preface):], s[1], 1460, false)
			f.Add(s[0][len(h2Preface):], s[1], 7, true)
		}
	}
	f.Fuzz(func(t *testing.T, client, server []byte, seg int, mid bool) {
		d := New(Config{})
		if mid {
			feedMid(d, 8082, client, server, seg%2000)
		} else {
			feedConversation(d, 8082, append([]byte(h2Preface), client...), server, seg%2000)
		}
		d.Close()
	})
}

// feedMid plays a conversation without SYNs, server bytes first.
func feedMid(d *Dissector, port uint16, client, server []byte, seg int) {
	if seg <= 0 {
		seg = 1
	}
	sh := d.shards[0]
	ca, sa := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	ts := time.Unix(1_700_000_000, 0)
	cseq, sseq := uint32(1000), uint32(5000)
	for len(client) > 0 || len(server) > 0 {
		ts = ts.Add(time.Millisecond)
		if n := min(seg, len(server)); n > 0 {
			sh.handle(&packet.Packet{Time: ts}, decodedOK, &decoded{src: sa, dst: ca, sport: port, dport: 40000, proto: protoTCP, flags: flagACK, seq: sseq, ack: cseq, payload: server[:n]})
			sseq += uint32(n)
			server = server[n:]
		}
		if n := min(seg, len(client)); n > 0 {
			sh.handle(&packet.Packet{Time: ts}, decodedOK, &decoded{src: ca, dst: sa, sport: 40000, dport: port, proto: protoTCP, flags: flagACK, seq: cseq, ack: sseq, payload: client[:n]})
			cseq += uint32(n)
			client = client[n:]
		}
	}
}

// FuzzPostgres drives the PostgreSQL message parser and cycle pairing: the
// client's bytes start with a startup message so that the stream is
// detected.
func FuzzPostgres(f *testing.F) {
	tcp, _ := seedPayloads(f)
	for _, s := range tcp {
		if looksPostgres(s[0]) && len(s[0]) < 8192 && len(s[1]) < 8192 {
			f.Add(s[0], s[1], 1460)
			f.Add(s[0], s[1], 3)
		}
	}
	startup := []byte("\x00\x00\x00\x17\x00\x03\x00\x00user\x00postgres\x00\x00")
	f.Fuzz(func(t *testing.T, client, server []byte, seg int) {
		d := New(Config{})
		feedConversation(d, 5432, append(startup[:len(startup):len(startup)], client...), server, seg%2000)
		d.Close()
	})
}

// FuzzKafka drives Kafka framing, request headers, the topic parsers of
// every version and correlation-id pairing: the client's bytes start with a
// request header so that the stream is detected.
func FuzzKafka(f *testing.F) {
	tcp, _ := seedPayloads(f)
	for _, s := range tcp {
		if looksKafka(s[0]) && len(s[0]) < 8192 && len(s[1]) < 8192 {
			f.Add(s[0], s[1], 1460)
			f.Add(s[0], s[1], 3)
		}
	}
	hello := []byte("\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x02ab")
	f.Fuzz(func(t *testing.T, client, server []byte, seg int) {
		d := New(Config{})
		feedConversation(d, 9092, append(hello[:len(hello):len(hello)], client...), server, seg%2000)
		d.Close()
	})
}

// FuzzAMQP drives AMQP 0-9-1 framing, method arguments, content headers
// and -ok pairing: the client's bytes start with the protocol header.
func FuzzAMQP(f *testing.F) {
	tcp, _ := seedPayloads(f)
	for _, s := range tcp {
		if looksAMQP(s[0]) && len(s[0]) < 8192 && len(s[1]) < 8192 {
			f.Add(s[0][len(amqpHeader):], s[1], 1460)
			f.Add(s[0][len(amqpHeader):], s[1], 3)
		}
	}
	f.Fuzz(func(t *testing.T, client, server []byte, seg int) {
		d := New(Config{})
		feedConversation(d, 5672, append([]byte(amqpHeader), client...), server, seg%2000)
		d.Close()
	})
}
