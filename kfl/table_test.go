package kfl

import (
	"sort"
	"strings"
	"testing"
)

var testMacros = map[string]string{
	"https":      "tls and (http or http2)",
	"secure":     "tls and response.version == \"1.3\"",
	"internal":   `src.ip.inCidr("10.0.0.0/8") and dst.ip.inCidr("10.0.0.0/8")`,
	"shop_api":   `internal and http and request.path.startsWith("/api")`,
	"dns_errors": `dns and response.code != "NoError"`,
}

// queryTable: query → the fixtures it matches. "ALL" is every fixture,
// "ALL -a -b" every fixture but a and b, "" none.
var queryTable = []struct{ q, want string }{
	// Protocol barewords.
	{`http`, "get post noresp png"},
	{`dns`, "dnsa nx cname dnsnr"},
	{`tls`, "tls tls2"},
	{`tcp`, "get post noresp png nx tls tls2 tcp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},
	{`udp`, "dnsa cname dnsnr udp"},
	{`icmp`, ""},
	{`http2`, "grpc grpcok h2"},
	{`grpc`, "grpc grpcok"},
	{`redis`, "redis redis2"},
	{`kafka`, "kafka"},
	{`amqp`, "amqp"},
	{`!http`, "ALL -get -post -noresp -png"},
	{`not dns`, "ALL -dnsa -nx -cname -dnsnr"},
	{`http or dns`, "get post noresp png dnsa nx cname dnsnr"},
	{`tls and http`, ""},
	{`tcp and not http and not tls`, "nx tcp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},
	{`icmp`, ""},

	// AMQP.
	{`amqp and request.method == "basic.publish" and request.exchange == "orders" and request.routingKey == "eu"`, "amqp"},
	{`amqp and request.properties.contentType == "application/json" and request.bodySize > 200`, "amqp"},
	{`request.properties.correlationId == "c1"`, "amqp"},
	{`amqp and request.queue != nil`, ""},
	{`amqp and response.replyCode == 404`, ""},

	// Kafka.
	{`kafka and request.apiKeyName == "Produce"`, "kafka"},
	{`kafka and request.apiKey == 0 and request.apiVersion >= 9`, "kafka"},
	{`request.topics[*] == "orders" and request.clientID == "orders-svc"`, "kafka"},
	{`kafka and request.correlationID == 7`, "kafka"},
	{`kafka and request.apiKeyName == "Fetch"`, ""},

	// PostgreSQL.
	{`postgres`, "pg pgstart"},
	{`postgres and response.sqlState == "42P01"`, "pg"},
	{`postgres and response.error`, "pg"},
	{`request.sql.startsWith("SELECT") and response.errorMessage.contains("nosuchtable")`, "pg"},
	{`request.type == "startup" and request.user == "app" and request.database == "shop"`, "pgstart"},
	{`response.tags[*] == "SELECT 3" and response.rows == 3`, "pgstart"},
	{`postgres and dst.name == "postgres.db"`, "pg pgstart"},

	// HTTP/2 and gRPC (gRPC entries are http2 too).
	{`http2 and not grpc`, "h2"},
	{`grpc and response.status != 0`, "grpc"},
	{`grpc and response.status == 0`, "grpcok"},
	{`http2 and response.status == 404`, "h2"},
	{`request.service == "kflcap.test.Echo" and request.rpc == "Say"`, "grpc"},
	{`response.grpcMessage.contains("such")`, "grpc"},
	{`request.messages >= 3 and response.messages == 6`, "grpcok"},
	{`partial`, "grpcok"},
	{`http2 and request.query.q == "404" and request.headers["User-Agent"].startsWith("curl")`, "h2"},

	// Redis.
	{`redis and request.command == "GET"`, "redis"},
	{`redis and request.key == "user:1"`, "redis redis2"},
	{`request.args[0] == "user:1"`, "redis redis2"},
	{`redis and response.error`, "redis2"},
	{`response.type == "bulk string" and response.value == "alice"`, "redis"},
	{`response.value.startsWith("ERR")`, "redis2"},
	{`redis and request.key == nil`, ""},

	// Kubeshark's KFL documentation examples (those our fields support).
	{`http and request.method == "GET" and request.path != "/example" and (request.query.a > 42 or request.headers["x"] == "y")`, "get"},
	{`http and response.status == r"4.*"`, "png"},
	{`response.status == 201`, ""},
	{`http and response.status == 500`, "post"},
	{`request.path == r"^/api/v[0-9]+"`, "get post"},
	{`timestamp >= datetime("10/19/2021, 6:29:02 PM")`, "ALL"},
	{`request.headers["User-Agent"] == "curl/8.5.0"`, "get"},
	{`request.path.startsWith("/api")`, "get post"},
	{`request.path.endsWith(".png")`, "png"},
	{`request.path.contains("orders")`, "post"},
	{`http and limit(100)`, "get post noresp png"},
	{`redact("request.headers.Authorization") and http`, "get post noresp png"},
	{`src.name == "frontend.shop"`, "get dnsa cname tls"},
	{`dst.namespace == "payments"`, "post"},
	{`src.namespace == "shop" and request.path.startsWith("/api")`, "get post"},
	{`udp and dst.port == 53`, "dnsa cname dnsnr"},
	{`dns and request.questions[0].name == "example.com"`, "dnsa"},
	{`response.body.json().error == "db down"`, "post"},
	{`elapsedTime >= 1000`, "post"},

	// Every comparison operator, per type.
	{`response.status == 200`, "get"},
	{`response.status != 200`, "post png grpc grpcok h2"},
	{`response.status < 300`, "get grpc grpcok"},
	{`response.status <= 404`, "get png grpc grpcok h2"},
	{`response.status > 404`, "post"},
	{`response.status >= 404`, "post png h2"},
	{`request.method == "POST"`, "post grpc grpcok"},
	{`request.method != "POST"`, "get noresp png h2 amqp"},
	{`request.method < "H"`, "get noresp png h2"},
	{`request.method >= "P"`, "post grpc grpcok amqp"},
	{`request.method > "GET"`, "post grpc grpcok amqp"},
	{`request.method <= "GET"`, "get noresp png h2"},
	{`elapsedTime > 12.5`, "post tls cname"},
	{`response.status == 500.0`, "post"},
	{`elapsedTime > -1`, "ALL"},
	{`elapsedTime == 0`, "noresp dnsnr tls2 tcp udp redis2 grpcok pgstart amqp"},
	{`src.ip == "10.0.0.5"`, "get dnsa cname tls"},
	{`src.ip != "10.0.0.5"`, "ALL -get -dnsa -cname -tls"},
	{`dst.ip > "10.96.0.10"`, "get png tls udp"}, // IPv6 sorts after IPv4,
	{`src.ip == "fd00::1"`, "png"},
	{`src.ip == dst.ip`, ""},
	{`outgoing == true`, "get post png dnsa nx cname tls tcp"},
	{`outgoing != true`, "noresp dnsnr tls2 udp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},

	// Ports: numbers, numeric strings, ranges, field to field.
	{`dst.port == 80`, "get png"},
	{`dst.port == "80"`, "get png"},
	{`src.port == "5000"`, "udp"},
	{`dst.port < 1024`, "get png dnsa nx cname dnsnr tls"},
	{`src.port > 50000`, "post noresp cname dnsa tls2"},
	{`dst.port >= 8080 and dst.port <= 8443`, "post noresp tls2 h2"},
	{`src.port == dst.port`, "udp"},
	{`dst.port == 443 or dst.port == 8443`, "tls tls2"},

	// IP helpers and CIDRs.
	{`src.ip.inCidr("10.0.0.0/8")`, "ALL -noresp -png"},
	{`dst.ip.inCidr("10.96.0.0/12")`, "get dnsa nx dnsnr"},
	{`src.ip.inCidr("fd00::/8")`, "png"},
	{`dst.ip.inCidr("8.8.8.8")`, "cname"},
	{`src.ip.inCidr("192.168.0.0/16") or dst.ip.inCidr("239.0.0.0/8")`, "noresp udp"},
	{`node.ip.inCidr("192.168.1.0/24")`, "ALL"},
	{`node.ip == "192.168.1.11"`, "udp"},
	{`src.ip == r"^10\.0\.0\.[56]$"`, "get post dnsa nx cname tls"},
	{`src.ip.startsWith("fd00:")`, "png"},

	// Booleans.
	{`outgoing`, "get post png dnsa nx cname tls tcp"},
	{`not outgoing`, "noresp dnsnr tls2 udp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},
	{`response.flags.aa`, "nx"},
	{`request.flags.rd == true`, "dnsa nx cname"},
	{`request.flags.rd == false`, "dnsnr"},
	{`true`, "ALL"},
	{`false`, ""},
	{`true and http`, "get post noresp png"},
	{`false or tls`, "tls tls2"},
	{`"a" == "a"`, "ALL"},
	{`1 == 2`, ""},
	{`nil == nil`, "ALL"},
	{`"abc" == r"b"`, "ALL"},
	{`"abc" != r"b"`, ""},
	{`5 == r"^5$"`, "ALL"},
	{`"x" < "y" and now() > 0`, "ALL"},
	{`-elapsedTime < 0`, "get post png dnsa nx cname tls redis grpc h2 pg kafka"},
	{`(response.status == 200) == true`, "get"},
	{`request.path.startsWith("/api") == false`, "ALL -get -post"}, // a helper on a missing field is false,

	// Missing fields: a comparison with a field the entry lacks is false, locally.
	{`response.status != 404`, "get post grpc grpcok"},
	{`not (response.status == 200)`, "ALL -get"},
	{`response.status == 200 or dns`, "get dnsa nx cname dnsnr"},
	{`not (response.status == 200) and http`, "post noresp png"},
	{`request.headers["X-Missing"] == nil`, "ALL"},
	{`request.headers["Authorization"] != nil`, "get"},
	{`src.name == nil`, "noresp png dnsnr tls2 tcp udp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},
	{`src.name != nil and dst.name == nil`, "cname tls"},
	{`response.answers[0].ip == "93.184.216.34"`, "dnsa"},
	{`response.answers[5].ip == nil`, "ALL"},
	{`response.answers[-1].ip == "1.2.3.4"`, "cname"},
	{`response.code == nil`, "ALL -dnsa -nx -cname"},
	{`response.status == nil and http`, "noresp"},
	{`request.serverName == nil`, "ALL -tls"},
	{`response.body.json().missing == nil`, "ALL"},
	{`response.body.json().count != nil`, "get"},
	{`request.questions[1].name == "x"`, ""},

	// Wildcards.
	{`response.answers[*].ip == "1.2.3.4"`, "cname"},
	{`response.answers.*.type == "CNAME"`, "cname"},
	{`response.answers[*].type == "A"`, "dnsa cname"},
	{`response.answers[*].ttl < 100`, "cname"},
	{`response.answers[*].ttl >= 300`, "dnsa"},
	{`response.answers[*].cname.endsWith("example.org")`, "cname"},
	{`request.questions[*].name.endsWith(".local")`, "nx dnsnr"},
	{`request.questions.*.type == "TXT"`, "dnsnr"},
	{`response.questions[*].name == "example.com"`, "dnsa"},
	{`response.authorities[*].type == "SOA"`, "nx"},
	{`response.authorities[0].data.contains("hostmaster")`, "nx"},
	{`response.additionals[*].type == "OPT"`, ""},
	{`request.headers[*] == "application/json"`, "get post"},
	{`request.headers.* == "curl/8.5.0"`, "get"},
	{`response.headers[*].contains("json")`, "get post"},
	{`request.alpn[*] == "h2"`, "tls"},
	{`request.versions[*] == "1.2"`, "tls tls2"},
	{`request.versions[0] == "1.2" and request.versions[1] == "1.3"`, "tls"},
	{`request.queryString[*] == "bob"`, "get"},
	{`response.answers[*].ip != "1.2.3.4"`, "dnsa cname"},
	{`response.answers[*].ip == r"^93\."`, "dnsa"},

	// Regexes (RE2, unanchored; != negates).
	{`request.path == r"\.png$"`, "png"},
	{`request.path != r"^/api"`, "noresp png grpc grpcok h2"},
	{`request.path == r"users"`, "get"},
	{`response.status == r"^5"`, "post grpc"},
	{`response.status != r"^2"`, "post png grpc grpcok h2"},
	{`request.body == r"orderId"`, "post"},
	{`response.body == r"\"error\""`, "post"},
	{`request.questions[*].name == r"example\.(com|org)$"`, "dnsa cname"},
	{`request.headers["user-agent"] == r'(?i)CURL'`, "get h2"},
	{"request.path == r`^/static/.*\\.png$`", "png"},
	{`src.port == r"^5"`, "post cname dnsa tls tls2 udp"},
	{`request.serverName == r"example\.com$"`, "tls"},

	// String helpers on every text-like type.
	{`request.headers["user-agent"].startsWith("curl")`, "get h2"},
	{`request.headers["User-Agent"].startsWith("kube-probe")`, "noresp"},
	{`response.body.contains("db down")`, "post"},
	{`response.body.startsWith("not")`, "png"},
	{`request.body.endsWith("}")`, "post"},
	{`response.statusText.contains("Server")`, "post"},
	{`request.url.contains("name=bob")`, "get"},
	{`request.sni.endsWith(".example.com")`, "tls"},
	{`stream.endsWith("_udp.pcap")`, "dnsa cname dnsnr udp"},
	{`src.name.contains(".")`, "get post dnsa nx cname tls"},
	{`dst.name.startsWith("kube-dns")`, "dnsa nx dnsnr"},

	// Headers, query string and cookies.
	{`request.headers["content-type"] == "application/json"`, "get post"},
	{`request.headers["CONTENT-TYPE"] == "application/json"`, "get post"},
	{`request.headers.authorization == "Bearer t0k3n"`, "get"},
	{`request.headers.Host == "payments"`, "post"},
	{`response.headers["content-length"] == "71"`, "get"},
	{`response.headers["content-length"] > 70`, "get"},
	{`request.queryString["id"] == "42"`, "get"},
	{`request.query.id == "42"`, "get"},
	{`request.query["name"] == "bob"`, "get"},
	{`request.query.id > 40 and request.query.id < 43.5`, "get"},
	{`request.query["ID"] == "42"`, ""},
	{`request.cookies["session"] == "abc"`, "get"},
	{`request.headers["x-request-id"] == "r-77"`, "post"},

	// .json() paths into bodies.
	{`response.body.json().users[0].name == "bob"`, "get"},
	{`response.body.json().users[*].id == 42`, "get"},
	{`response.body.json().users[0].admin == false`, "get"},
	{`response.body.json().users[*].tags[*] == "b"`, "get"},
	{`response.body.json().count >= 1`, "get"},
	{`response.body.json().code == 5001`, "post"},
	{`response.body.json().code == "5001"`, ""},
	{`response.body.json().error.startsWith("db")`, "post"},
	{`response.body.json()["error"] == r"^db"`, "post"},
	{`request.body.json().orderId == "A-1"`, "post"},
	{`request.body.json().items[*].qty > 1`, "post"},
	{`request.body.json().note == "say \"hi\""`, "post"},
	{`request.body.json().*[*].sku == "X1"`, "post"},
	{`response.body.json().users == nil`, "ALL -get"},

	// Time: now(), datetime(), durations, arithmetic.
	{`timestamp >= now() - minutes(10)`, "ALL -dnsnr"},
	{`timestamp < now() - hours(0.5)`, "dnsnr"},
	{`timestamp > now()`, ""},
	{`timestamp >= datetime("11/23/2026, 10:00:05 AM")`, "nx cname tls tls2 tcp udp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},
	{`timestamp < datetime("2026-11-23T10:00:00Z")`, "dnsnr"},
	{`timestamp >= datetime("2026-11-23") and timestamp < datetime("2026-11-23") + days(1)`, "ALL"},
	{`elapsedTime > seconds(1)`, "post"},
	{`elapsedTime + 500 > 1000`, "post"},
	{`elapsedTime - 10 == 2`, "get"},
	{`elapsedTime > -seconds(1) + 1020`, "post tls"},

	// Precedence: not > comparison > and > or; Kubeshark would nest to the right.
	{`http and response.status == 500 or dns`, "post dnsa nx cname dnsnr"},
	{`dns or http and response.status == 500`, "post dnsa nx cname dnsnr"},
	{`http and (response.status == 500 or dns)`, "post"},
	{`(http and response.status == 500) or dns`, "post dnsa nx cname dnsnr"},
	{`not http and not dns`, "tls tls2 tcp udp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},
	{`not (http or dns)`, "tls tls2 tcp udp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},
	{`!dns and udp`, "udp"},
	{`not not http`, "get post noresp png"},
	{`!!tls`, "tls tls2"},
	{`http and not (response.status == 500)`, "get noresp png"},
	{`tls or http and request.method == "POST"`, "tls tls2 post"},
	{`tls or http and request.method == "POST" or udp and src.port == 5000`, "tls tls2 post udp"},
	{`(((http)))`, "get post noresp png"},
	{`http and dns or tls and tcp or udp and outgoing`, "tls tls2 dnsa cname"},

	// Protocol fields, node, stream.
	{`protocol.name == "dns"`, "dnsa nx cname dnsnr"},
	{`protocol.abbr == "HTTP"`, "get post noresp png"},
	{`protocol.version == "1.0"`, "png"},
	{`protocol.layer4 == "udp"`, "dnsa cname dnsnr udp"},
	{`node.name == "node-1"`, "ALL -udp"},
	{`streamId == 7`, "cname"},
	{`stream == "000000000011_tcp.pcap"`, "tcp"},

	// The stream's L4 summary.
	{`l4.rst`, "tcp"},
	{`l4.syn and not l4.fin`, "tcp"},
	{`l4.bytesDown > 10000`, "tcp"},
	{`l4.packetsUp + l4.packetsDown >= 18`, "tcp"},
	{`l4.lastSeen - l4.firstSeen > seconds(60)`, "tcp"},
	{`l4.packetsUp == nil`, "ALL -tcp"},

	// DNS and TLS fields.
	{`response.code == "NXDomain"`, "nx"},
	{`dns and response.code != "NoError"`, "nx"},
	{`request.questions[0].type == "AAAA"`, "nx"},
	{`request.id == 4660`, "dnsa"},
	{`request.opcode == "Query"`, "dnsa nx cname dnsnr"},
	{`request.questions[0].class == "IN" and dst.port == 53`, "dnsa nx cname dnsnr"},
	{`request.serverName == "api.example.com"`, "tls"},
	{`response.version == "1.3"`, "tls"},
	{`response.version == "1.1"`, "get post"},
	{`response.cipherSuite.contains("AES")`, "tls"},
	{`response.alpn == "h2"`, "tls"},
	{`tls and request.serverName == nil`, "tls2"},
	{`request.version == "1.0"`, "png"},
	{`request.bodySize > 0`, "post grpc amqp"},
	{`response.bodySize == 71`, "get"},

	// Macros.
	{`https`, ""},
	{`secure`, "tls"},
	{`internal`, "get post dnsa nx dnsnr tls2 tcp redis redis2 grpc grpcok h2 pg pgstart kafka amqp"},
	{`shop_api`, "get post"},
	{`shop_api and response.status >= 500`, "post"},
	{`not internal and outgoing`, "png cname tls"},
	{`dns_errors or secure`, "nx tls"},
}

func expand(want string, all []string) []string {
	fs := strings.Fields(want)
	if len(fs) > 0 && fs[0] == "ALL" {
		drop := map[string]bool{}
		for _, f := range fs[1:] {
			drop[strings.TrimPrefix(f, "-")] = true
		}
		var out []string
		for _, n := range all {
			if !drop[n] {
				out = append(out, n)
			}
		}
		return out
	}
	sort.Strings(fs)
	return fs
}

func TestQueryTable(t *testing.T) {
	if len(queryTable) < 150 {
		t.Fatalf("the table has %d queries; the issue asks for at least 150", len(queryTable))
	}
	fx := fixtures()
	names := fixtureNames(fx)
	for _, tc := range queryTable {
		q, err := Compile(tc.q, WithMacros(testMacros), WithClock(testClock))
		if err != nil {
			t.Errorf("%s: %v", tc.q, err)
			continue
		}
		if q.Dialect() != DialectKFL {
			t.Errorf("%s: dialect %s", tc.q, q.Dialect())
		}
		var got []string
		for _, n := range names {
			if q.Match(fx[n]) {
				got = append(got, n)
			}
		}
		want := expand(tc.want, names)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s\n  got  %v\n  want %v", tc.q, got, want)
		}
		// The normalized form is a fixed point and means the same.
		q2, err := Compile(q.String(), WithMacros(testMacros), WithClock(testClock))
		if err != nil {
			t.Errorf("%s: normalized %q does not compile: %v", tc.q, q.String(), err)
			continue
		}
		if q2.String() != q.String() {
			t.Errorf("%s: normalized form is not stable: %q → %q", tc.q, q.String(), q2.String())
		}
		for _, n := range names {
			if q.Match(fx[n]) != q2.Match(fx[n]) {
				t.Errorf("%s: normalized %q differs on %s", tc.q, q.String(), n)
			}
		}
	}
}
