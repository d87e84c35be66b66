package kfl

import (
	"net/netip"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/kflcap/kflcap/dissect"
)

// base is the fixtures' clock: entries are made around it and now() is it.
var base = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func testClock() int64 { return base.Add(5 * time.Minute).UnixMilli() }

func TestMain(m *testing.M) {
	// datetime("1/2/2006, 3:04:05 PM") reads local time, as Kubeshark's UI
	// does; pin it so that expectations hold on every machine.
	time.Local = time.UTC
	os.Exit(m.Run())
}

func ep(ip string, port uint16, name, ns string) dissect.Endpoint {
	return dissect.Endpoint{IP: netip.MustParseAddr(ip), Port: port, Name: name, Namespace: ns}
}

func at(sec int) int64 { return base.Add(time.Duration(sec) * time.Second).UnixMilli() }

var node1 = dissect.Node{Name: "node-1", IP: "192.168.1.10"}

// fixtures are entries shaped as the dissectors make them (see dissect/http.go,
// dns.go, tls.go and stream.go): protocol names, layer 4, stream names,
// headers in wire order, DNS sections, TLS handshake facts.
func fixtures() map[string]*dissect.Entry {
	return map[string]*dissect.Entry{
		"get": {
			Protocol: dissect.Protocol{Name: "http", Abbr: "HTTP", Version: "1.1", Layer4: "tcp"},
			Src:      ep("10.0.0.5", 43512, "frontend.shop", "shop"),
			Dst:      ep("10.96.0.20", 80, "catalogue.shop", "shop"),
			Node:     node1, Timestamp: at(0), ElapsedTime: 12, Stream: "000000000001_tcp.pcap", StreamID: 1, Outgoing: true,
			HTTP: &dissect.HTTP{
				Request: dissect.HTTPRequest{Method: "GET", Path: "/api/v1/users", URL: "/api/v1/users?id=42&name=bob&a=43",
					Host: "catalogue.shop", Version: "1.1",
					Headers: dissect.Headers{{Name: "Host", Value: "catalogue.shop"}, {Name: "User-Agent", Value: "curl/8.5.0"},
						{Name: "Accept", Value: "*/*"}, {Name: "Content-Type", Value: "application/json"}, {Name: "Authorization", Value: "Bearer t0k3n"}},
					QueryString: []dissect.KeyValue{{Name: "id", Value: "42"}, {Name: "name", Value: "bob"}, {Name: "a", Value: "43"}},
					Cookies:     []dissect.KeyValue{{Name: "session", Value: "abc"}}},
				Response: dissect.HTTPResponse{Status: 200, StatusText: "OK", Version: "1.1",
					Headers:  dissect.Headers{{Name: "Content-Type", Value: "application/json"}, {Name: "Content-Length", Value: "71"}},
					BodySize: 71, Body: []byte(`{"users":[{"id":42,"name":"bob","admin":false,"tags":["a","b"]}],"count":1}`)},
				HasResponse: true},
		},
		"post": {
			Protocol: dissect.Protocol{Name: "http", Abbr: "HTTP", Version: "1.1", Layer4: "tcp"},
			Src:      ep("10.0.0.6", 51000, "checkout.shop", "shop"),
			Dst:      ep("10.0.1.7", 8080, "payments.payments", "payments"),
			Node:     node1, Timestamp: at(1), ElapsedTime: 1500, Stream: "000000000002_tcp.pcap", StreamID: 2, Outgoing: true,
			HTTP: &dissect.HTTP{
				Request: dissect.HTTPRequest{Method: "POST", Path: "/api/v2/orders", URL: "/api/v2/orders", Host: "payments", Version: "1.1",
					Headers:  dissect.Headers{{Name: "Host", Value: "payments"}, {Name: "content-type", Value: "application/json"}, {Name: "X-Request-Id", Value: "r-77"}},
					BodySize: 52, Body: []byte(`{"orderId":"A-1","items":[{"sku":"X1","qty":2}],"note":"say \"hi\""}`)},
				Response: dissect.HTTPResponse{Status: 500, StatusText: "Internal Server Error", Version: "1.1",
					Headers:  dissect.Headers{{Name: "Content-Type", Value: "application/json"}},
					BodySize: 31, Body: []byte(`{"error":"db down","code":5001}`)},
				HasResponse: true},
		},
		"noresp": {
			Protocol: dissect.Protocol{Name: "http", Abbr: "HTTP", Version: "1.1", Layer4: "tcp"},
			Src:      ep("192.168.1.20", 60000, "", ""),
			Dst:      ep("10.0.0.5", 8080, "frontend.shop", "shop"),
			Node:     node1, Timestamp: at(2), Stream: "000000000003_tcp.pcap", StreamID: 3,
			HTTP: &dissect.HTTP{Request: dissect.HTTPRequest{Method: "GET", Path: "/health", URL: "/health", Version: "1.1",
				Headers: dissect.Headers{{Name: "User-Agent", Value: "kube-probe/1.31"}}}},
		},
		"png": {
			Protocol: dissect.Protocol{Name: "http", Abbr: "HTTP", Version: "1.0", Layer4: "tcp"},
			Src:      ep("fd00::1", 40001, "", ""),
			Dst:      ep("fd00::2", 80, "static.web", "web"),
			Node:     node1, Timestamp: at(3), ElapsedTime: 3, Stream: "000000000004_tcp.pcap", StreamID: 4, Outgoing: true,
			HTTP: &dissect.HTTP{
				Request:     dissect.HTTPRequest{Method: "GET", Path: "/static/logo.png", URL: "/static/logo.png", Version: "1.0"},
				Response:    dissect.HTTPResponse{Status: 404, StatusText: "Not Found", Version: "1.0", Body: []byte("not found")},
				HasResponse: true},
		},
		"dnsa": {
			Protocol: dissect.Protocol{Name: "dns", Abbr: "DNS", Layer4: "udp"},
			Src:      ep("10.0.0.5", 53211, "frontend.shop", "shop"),
			Dst:      ep("10.96.0.10", 53, "kube-dns.kube-system", "kube-system"),
			Node:     node1, Timestamp: at(4), ElapsedTime: 1, Stream: "000000000005_udp.pcap", StreamID: 5, Outgoing: true,
			DNS: &dissect.DNS{ID: 4660, Opcode: "Query",
				Request: dissect.DNSMessage{Flags: dissect.DNSFlags{RD: true}, Questions: []dissect.DNSQuestion{{Name: "example.com", Type: "A", Class: "IN"}}},
				Response: dissect.DNSMessage{Flags: dissect.DNSFlags{QR: true, RD: true, RA: true}, Code: "NoError",
					Questions: []dissect.DNSQuestion{{Name: "example.com", Type: "A", Class: "IN"}},
					Answers:   []dissect.DNSRecord{{Name: "example.com", Type: "A", Class: "IN", TTL: 300, IP: "93.184.216.34"}}},
				HasResponse: true},
		},
		"nx": {
			Protocol: dissect.Protocol{Name: "dns", Abbr: "DNS", Layer4: "tcp"},
			Src:      ep("10.0.0.6", 41000, "checkout.shop", "shop"),
			Dst:      ep("10.96.0.10", 53, "kube-dns.kube-system", "kube-system"),
			Node:     node1, Timestamp: at(5), ElapsedTime: 2, Stream: "000000000006_tcp.pcap", StreamID: 6, Outgoing: true,
			DNS: &dissect.DNS{ID: 7, Opcode: "Query",
				Request: dissect.DNSMessage{Flags: dissect.DNSFlags{RD: true}, Questions: []dissect.DNSQuestion{{Name: "nosuch.shop.svc.cluster.local", Type: "AAAA", Class: "IN"}}},
				Response: dissect.DNSMessage{Flags: dissect.DNSFlags{QR: true, AA: true, RD: true, RA: true}, Code: "NXDomain",
					Questions:   []dissect.DNSQuestion{{Name: "nosuch.shop.svc.cluster.local", Type: "AAAA", Class: "IN"}},
					Authorities: []dissect.DNSRecord{{Name: "cluster.local", Type: "SOA", Class: "IN", TTL: 30, Data: "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30"}}},
				HasResponse: true},
		},
		"cname": {
			Protocol: dissect.Protocol{Name: "dns", Abbr: "DNS", Layer4: "udp"},
			Src:      ep("10.0.0.5", 53300, "frontend.shop", "shop"),
			Dst:      ep("8.8.8.8", 53, "", ""),
			Node:     node1, Timestamp: at(6), ElapsedTime: 20, Stream: "000000000007_udp.pcap", StreamID: 7, Outgoing: true,
			DNS: &dissect.DNS{ID: 9, Opcode: "Query",
				Request: dissect.DNSMessage{Flags: dissect.DNSFlags{RD: true}, Questions: []dissect.DNSQuestion{{Name: "www.example.org", Type: "A", Class: "IN"}}},
				Response: dissect.DNSMessage{Flags: dissect.DNSFlags{QR: true, RD: true, RA: true}, Code: "NoError",
					Questions: []dissect.DNSQuestion{{Name: "www.example.org", Type: "A", Class: "IN"}},
					Answers: []dissect.DNSRecord{{Name: "www.example.org", Type: "CNAME", Class: "IN", TTL: 60, CNAME: "example.org"},
						{Name: "example.org", Type: "A", Class: "IN", TTL: 60, IP: "1.2.3.4"}}},
				HasResponse: true},
		},
		"dnsnr": {
			Protocol: dissect.Protocol{Name: "dns", Abbr: "DNS", Layer4: "udp"},
			Src:      ep("10.0.0.7", 35000, "", "shop"),
			Dst:      ep("10.96.0.10", 53, "kube-dns.kube-system", "kube-system"),
			Node:     node1, Timestamp: at(-3600), Stream: "000000000008_udp.pcap", StreamID: 8,
			DNS: &dissect.DNS{ID: 11, Opcode: "Query",
				Request: dissect.DNSMessage{Questions: []dissect.DNSQuestion{{Name: "x.local", Type: "TXT", Class: "IN"}}}},
		},
		"tls": {
			Protocol: dissect.Protocol{Name: "tls", Abbr: "TLS", Version: "1.3", Layer4: "tcp"},
			Src:      ep("10.0.0.5", 50000, "frontend.shop", "shop"),
			Dst:      ep("151.101.1.1", 443, "", ""),
			Node:     node1, Timestamp: at(7), ElapsedTime: 30, Stream: "000000000009_tcp.pcap", StreamID: 9, Outgoing: true,
			TLS: &dissect.TLS{ServerName: "api.example.com", OfferedVersions: []string{"1.2", "1.3"}, NegotiatedVersion: "1.3",
				ALPN: []string{"h2", "http/1.1"}, NegotiatedALPN: "h2", CipherSuite: "TLS_AES_128_GCM_SHA256"},
		},
		"tls2": {
			Protocol: dissect.Protocol{Name: "tls", Abbr: "TLS", Layer4: "tcp"},
			Src:      ep("10.0.0.8", 50001, "", ""),
			Dst:      ep("10.0.0.9", 8443, "", ""),
			Node:     node1, Timestamp: at(8), Stream: "000000000010_tcp.pcap", StreamID: 10,
			TLS: &dissect.TLS{OfferedVersions: []string{"1.2"}},
		},
		"tcp": {
			Protocol: dissect.Protocol{Name: "tcp", Abbr: "TCP", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41000, "", ""),
			Dst:      ep("10.0.2.2", 5432, "postgres.db", "db"),
			Node:     node1, Timestamp: at(9), Stream: "000000000011_tcp.pcap", StreamID: 11, Outgoing: true,
			L4: &dissect.L4Stream{FirstSeen: at(9), LastSeen: at(70), PacketsUp: 10, PacketsDown: 8, BytesUp: 1200, BytesDown: 64000, SYN: true, RST: true},
		},
		"redis": {
			Protocol: dissect.Protocol{Name: "redis", Abbr: "REDIS", Version: "2", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41002, "", ""),
			Dst:      ep("10.0.3.3", 6379, "", ""),
			Node:     node1, Timestamp: at(11), ElapsedTime: 1, Stream: "000000000013_tcp.pcap", StreamID: 13,
			Redis: &dissect.Redis{Request: dissect.RedisRequest{Command: "GET", Key: "user:1", Args: []string{"user:1"}, ArgCount: 2},
				Response: dissect.RedisReply{Type: "bulk string", Value: "alice"}, HasResponse: true},
		},
		"redis2": {
			Protocol: dissect.Protocol{Name: "redis", Abbr: "REDIS", Version: "2", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41003, "", ""),
			Dst:      ep("10.0.3.3", 6379, "", ""),
			Node:     node1, Timestamp: at(12), Stream: "000000000014_tcp.pcap", StreamID: 14,
			Redis: &dissect.Redis{Request: dissect.RedisRequest{Command: "INCR", Key: "user:1", Args: []string{"user:1"}, ArgCount: 2},
				Response: dissect.RedisReply{Type: "error", Value: "ERR value is not an integer or out of range", Error: true}, HasResponse: true},
		},
		"h2": {
			Protocol: dissect.Protocol{Name: "http2", Abbr: "HTTP/2", Version: "2.0", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41004, "", ""),
			Dst:      ep("10.0.3.4", 8082, "", ""),
			Node:     node1, Timestamp: at(13), ElapsedTime: 2, Stream: "000000000015_tcp.pcap", StreamID: 15,
			HTTP: &dissect.HTTP{
				Request: dissect.HTTPRequest{Method: "GET", Path: "/status/404", URL: "/status/404?q=404", Host: "10.0.3.4:8082", Version: "2.0",
					Headers: dissect.Headers{{Name: "user-agent", Value: "curl/7.88.1"}}, QueryString: []dissect.KeyValue{{Name: "q", Value: "404"}}},
				Response:    dissect.HTTPResponse{Status: 404, Version: "2.0", Headers: dissect.Headers{{Name: "content-type", Value: "text/plain"}}, BodySize: 11},
				HasResponse: true},
		},
		"grpc": {
			Protocol: dissect.Protocol{Name: "grpc", Abbr: "gRPC", Version: "2.0", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41005, "", ""),
			Dst:      ep("10.0.3.5", 50051, "", ""),
			Node:     node1, Timestamp: at(14), ElapsedTime: 1, Stream: "000000000016_tcp.pcap", StreamID: 16,
			HTTP: &dissect.HTTP{
				Request: dissect.HTTPRequest{Method: "POST", Path: "/kflcap.test.Echo/Say", URL: "/kflcap.test.Echo/Say", Version: "2.0",
					Headers: dissect.Headers{{Name: "content-type", Value: "application/grpc"}}, BodySize: 10},
				Response:    dissect.HTTPResponse{Status: 200, Version: "2.0"},
				HasResponse: true},
			GRPC: &dissect.GRPC{Service: "kflcap.test.Echo", Method: "Say", Status: 5, HasStatus: true, Message: "no such thing",
				RequestMessages: 1, RequestMessageBytes: 5},
		},
		"grpcok": {
			Protocol: dissect.Protocol{Name: "grpc", Abbr: "gRPC", Version: "2.0", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41006, "", ""),
			Dst:      ep("10.0.3.5", 50051, "", ""),
			Node:     node1, Timestamp: at(15), Stream: "000000000017_tcp.pcap", StreamID: 17,
			HTTP: &dissect.HTTP{
				Request:     dissect.HTTPRequest{Method: "POST", Path: "/kflcap.test.Echo/Chat", URL: "/kflcap.test.Echo/Chat", Version: "2.0"},
				Response:    dissect.HTTPResponse{Status: 200, Version: "2.0"},
				HasResponse: true, Partial: true},
			GRPC: &dissect.GRPC{Service: "kflcap.test.Echo", Method: "Chat", HasStatus: true, RequestMessages: 3, ResponseMessages: 6},
		},
		"pg": {
			Protocol: dissect.Protocol{Name: "postgres", Abbr: "PGSQL", Version: "3.0", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41007, "", ""),
			Dst:      ep("10.0.2.2", 5432, "postgres.db", "db"),
			Node:     node1, Timestamp: at(16), ElapsedTime: 3, Stream: "000000000018_tcp.pcap", StreamID: 18,
			Postgres: &dissect.Postgres{Request: dissect.PostgresRequest{Type: "query", SQL: "SELECT * FROM nosuchtable"},
				Response: dissect.PostgresResponse{Error: true, SQLState: "42P01", Severity: "ERROR", Message: `relation "nosuchtable" does not exist`}, HasResponse: true},
		},
		"pgstart": {
			Protocol: dissect.Protocol{Name: "postgres", Abbr: "PGSQL", Version: "3.0", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41008, "", ""),
			Dst:      ep("10.0.2.2", 5432, "postgres.db", "db"),
			Node:     node1, Timestamp: at(17), Stream: "000000000019_tcp.pcap", StreamID: 19,
			Postgres: &dissect.Postgres{Request: dissect.PostgresRequest{Type: "startup", User: "app", Database: "shop"},
				Response: dissect.PostgresResponse{Tags: []string{"SELECT 3"}, Rows: 3}, HasResponse: true},
		},
		"kafka": {
			Protocol: dissect.Protocol{Name: "kafka", Abbr: "KAFKA", Version: "9", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41009, "", ""),
			Dst:      ep("10.0.4.4", 9092, "", ""),
			Node:     node1, Timestamp: at(18), ElapsedTime: 2, Stream: "000000000020_tcp.pcap", StreamID: 20,
			Kafka: &dissect.Kafka{APIKey: 0, APIKeyName: "Produce", APIVersion: 9, CorrelationID: 7, ClientID: "orders-svc",
				Topics: []string{"orders"}, Partitions: []int32{0}, RequestSize: 180, ResponseSize: 60, HasResponse: true},
		},
		"amqp": {
			Protocol: dissect.Protocol{Name: "amqp", Abbr: "AMQP", Version: "0-9-1", Layer4: "tcp"},
			Src:      ep("10.0.0.9", 41010, "", ""),
			Dst:      ep("10.0.5.5", 5672, "", ""),
			Node:     node1, Timestamp: at(19), Stream: "000000000021_tcp.pcap", StreamID: 21,
			AMQP: &dissect.AMQP{Method: "basic.publish", Channel: 1, Exchange: "orders", RoutingKey: "eu", BodySize: 230,
				ContentType: "application/json", DeliveryMode: 2, CorrelationID: "c1"},
		},
		"udp": {
			Protocol: dissect.Protocol{Name: "udp", Abbr: "UDP", Layer4: "udp"},
			Src:      ep("10.0.0.9", 5000, "", ""),
			Dst:      ep("239.1.1.1", 5000, "", ""),
			Node:     dissect.Node{Name: "node-2", IP: "192.168.1.11"}, Timestamp: at(10), Stream: "000000000012_udp.pcap", StreamID: 12,
		},
	}
}

func fixtureNames(m map[string]*dissect.Entry) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func fixtureSlice() []*dissect.Entry {
	m := fixtures()
	var out []*dissect.Entry
	for _, n := range fixtureNames(m) {
		out = append(out, m[n])
	}
	return out
}

// check that the fixtures compile against the current model.
func TestFixtures(t *testing.T) {
	if len(fixtures()) != 21 {
		t.Fatal("fixtures changed")
	}
}
