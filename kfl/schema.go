package kfl

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/kflcap/kflcap/dissect"
)

// Kind is the static type of a field or expression.
type Kind uint8

const (
	KindInvalid Kind = iota
	KindBool
	KindInt    // integers: status codes, sizes, TTLs, milliseconds
	KindPort   // an integer that also accepts numeric strings ("80")
	KindTime   // Unix milliseconds; compares with datetime(), now() and integers
	KindFloat  // only from literals and JSON bodies
	KindString // text
	KindBytes  // a body preview; text helpers and .json() apply
	KindIP     // an IP address; compares with address strings, .inCidr()
	KindJSON   // a value inside a body decoded by .json(): typed at run time
	KindRegex  // r"…" literals
	KindNil    // the nil literal
)

var kindNames = [...]string{
	KindInvalid: "invalid", KindBool: "bool", KindInt: "int", KindPort: "port",
	KindTime: "time", KindFloat: "float", KindString: "string", KindBytes: "bytes",
	KindIP: "ip", KindJSON: "json", KindRegex: "regex", KindNil: "nil",
}

func (k Kind) String() string { return kindNames[k] }

// Format gives "an int", "a string": kinds read as nouns in messages.
func (k Kind) Format(f fmt.State, verb rune) {
	if verb == 's' && !f.Flag('+') {
		if k == KindInt || k == KindIP {
			fmt.Fprint(f, "an ")
		} else {
			fmt.Fprint(f, "a ")
		}
	}
	fmt.Fprint(f, kindNames[k])
}

func (k Kind) numeric() bool { return k == KindInt || k == KindPort || k == KindTime || k == KindFloat }
func (k Kind) textual() bool { return k == KindString || k == KindBytes }

// value is one field value on one entry. It is passed by value through the
// compiled closures so that evaluation never allocates; only the member
// matching the static kind is set (JSON values say which in k).
type value struct {
	s  string
	b  []byte
	n  int64
	f  float64
	ip netip.Addr
	t  bool
	k  Kind // the dynamic kind of KindJSON values
}

// field describes one selectable field of the entry model. Paths are
// written in canonical form: "[]" marks a list slot (x[0], x[*], x.*) and
// "{}" a map slot (x["key"], x.key, x[*]). A path has at most one slot.
type field struct {
	path   string
	kind   Kind
	protos string // protocols whose entries have it, for the reference; "" = every entry
	doc    string
	// Exactly one group is set, according to the slot in path.
	get  func(e *dissect.Entry) (value, bool)               // no slot
	n    func(e *dissect.Entry) int                         // list slot: length
	elem func(e *dissect.Entry, i int) value                // list slot: i < n(e)
	key  func(e *dissect.Entry, k string) (value, bool)     // map slot: lookup
	each func(e *dissect.Entry, pred func(value) bool) bool // map slot: any value

	// Typed accessors of scalar and map fields, beside get and key: the
	// compiler uses them for the frequent comparisons so that the hot path
	// moves a string or an int rather than a whole value.
	getStr func(e *dissect.Entry) (string, bool)
	getInt func(e *dissect.Entry) (int64, bool)
	getIP  func(e *dissect.Entry) (netip.Addr, bool)
	keyStr func(e *dissect.Entry, k string) (string, bool)
}

// fields is the schema; built once in init and read-only afterwards.
var (
	fields      = map[string]*field{}
	fieldOrder  []string
	fieldPrefix = map[string]bool{} // every proper prefix of a path, to tell "unknown" from "incomplete"
)

func addField(f *field) {
	if _, dup := fields[f.path]; dup {
		panic("kfl: duplicate field " + f.path)
	}
	fields[f.path] = f
	fieldOrder = append(fieldOrder, f.path)
	p := f.path
	for {
		i := strings.LastIndexAny(p, ".[{")
		if i <= 0 {
			break
		}
		p = p[:i]
		fieldPrefix[p] = true
	}
}

func str(s string) value { return value{s: s} }

// scalar getters

func strField(path, protos, doc string, get func(e *dissect.Entry) (string, bool)) {
	addField(&field{path: path, kind: KindString, protos: protos, doc: doc,
		get:    func(e *dissect.Entry) (value, bool) { s, ok := get(e); return value{s: s}, ok },
		getStr: get})
}

func intField(path string, kind Kind, protos, doc string, get func(e *dissect.Entry) (int64, bool)) {
	addField(&field{path: path, kind: kind, protos: protos, doc: doc,
		get:    func(e *dissect.Entry) (value, bool) { n, ok := get(e); return value{n: n}, ok },
		getInt: get})
}

func boolField(path, protos, doc string, get func(e *dissect.Entry) (bool, bool)) {
	addField(&field{path: path, kind: KindBool, protos: protos, doc: doc,
		get: func(e *dissect.Entry) (value, bool) { t, ok := get(e); return value{t: t}, ok }})
}

func always(s string) (string, bool) { return s, true }

func endpointFields(side string, ep func(e *dissect.Entry) *dissect.Endpoint) {
	addField(&field{path: side + ".ip", kind: KindIP, doc: "IP address of the " + side + " side",
		get: func(e *dissect.Entry) (value, bool) {
			a := ep(e).IP
			return value{ip: a}, a.IsValid()
		},
		getIP: func(e *dissect.Entry) (netip.Addr, bool) {
			a := ep(e).IP
			return a, a.IsValid()
		}})
	intField(side+".port", KindPort, "", "L4 port of the "+side+" side (0 for ICMP)",
		func(e *dissect.Entry) (int64, bool) { return int64(ep(e).Port), true })
	strField(side+".name", "", "resolved name: pod or service name, or a name from DNS answers or /etc/hosts; missing when unknown",
		func(e *dissect.Entry) (string, bool) { s := ep(e).Name; return s, s != "" })
	strField(side+".namespace", "", "Kubernetes namespace; missing when unknown",
		func(e *dissect.Entry) (string, bool) { s := ep(e).Namespace; return s, s != "" })
	labels := func(e *dissect.Entry, k string) (string, bool) { v, ok := ep(e).Labels[k]; return v, ok }
	addField(&field{path: side + ".labels{}", kind: KindString,
		doc: "Kubernetes label of the " + side + " pod or service by key; missing when unknown",
		key: func(e *dissect.Entry, k string) (value, bool) {
			s, ok := labels(e, k)
			return value{s: s}, ok
		},
		keyStr: labels,
		each: func(e *dissect.Entry, pred func(value) bool) bool {
			for _, v := range ep(e).Labels {
				if pred(value{s: v}) {
					return true
				}
			}
			return false
		}})
}

// headers look up case-insensitively, as HTTP field names compare.
func headerMap(path, protos, doc string, h func(e *dissect.Entry) (dissect.Headers, bool), fold bool) {
	lookup := func(e *dissect.Entry, k string) (string, bool) {
		hs, ok := h(e)
		if !ok {
			return "", false
		}
		for i := range hs {
			if hs[i].Name == k || (fold && strings.EqualFold(hs[i].Name, k)) {
				return hs[i].Value, true
			}
		}
		return "", false
	}
	addField(&field{path: path, kind: KindString, protos: protos, doc: doc,
		key: func(e *dissect.Entry, k string) (value, bool) {
			s, ok := lookup(e, k)
			return value{s: s}, ok
		},
		keyStr: lookup,
		each: func(e *dissect.Entry, pred func(value) bool) bool {
			hs, ok := h(e)
			if !ok {
				return false
			}
			for i := range hs {
				if pred(value{s: hs[i].Value}) {
					return true
				}
			}
			return false
		}})
}

func stringList(path, protos, doc string, l func(e *dissect.Entry) []string) {
	addField(&field{path: path, kind: KindString, protos: protos, doc: doc,
		n:    func(e *dissect.Entry) int { return len(l(e)) },
		elem: func(e *dissect.Entry, i int) value { return value{s: l(e)[i]} }})
}

func httpReq(e *dissect.Entry) (*dissect.HTTPRequest, bool) {
	if e.HTTP == nil {
		return nil, false
	}
	return &e.HTTP.Request, true
}

func httpResp(e *dissect.Entry) (*dissect.HTTPResponse, bool) {
	if e.HTTP == nil || !e.HTTP.HasResponse {
		return nil, false
	}
	return &e.HTTP.Response, true
}

func dnsResp(e *dissect.Entry) (*dissect.DNSMessage, bool) {
	if e.DNS == nil || !e.DNS.HasResponse {
		return nil, false
	}
	return &e.DNS.Response, true
}

func init() {
	// Every entry.
	strField("protocol.name", "", `protocol name: "http", "dns", "tls", "tcp", "udp", …`,
		func(e *dissect.Entry) (string, bool) { return always(e.Protocol.Name) })
	strField("protocol.abbr", "", `protocol abbreviation: "HTTP", "DNS", …`,
		func(e *dissect.Entry) (string, bool) { return always(e.Protocol.Abbr) })
	strField("protocol.version", "", `protocol version, e.g. "1.1"`,
		func(e *dissect.Entry) (string, bool) { return always(e.Protocol.Version) })
	strField("protocol.layer4", "", `"tcp" or "udp"`,
		func(e *dissect.Entry) (string, bool) { return always(e.Protocol.Layer4) })
	endpointFields("src", func(e *dissect.Entry) *dissect.Endpoint { return &e.Src })
	endpointFields("dst", func(e *dissect.Entry) *dissect.Endpoint { return &e.Dst })
	strField("node.name", "", "name of the capturing node",
		func(e *dissect.Entry) (string, bool) { return e.Node.Name, e.Node.Name != "" })
	strField("node.ip", "", "IP address of the capturing node (a string; .inCidr() applies)",
		func(e *dissect.Entry) (string, bool) { return e.Node.IP, e.Node.IP != "" })
	intField("timestamp", KindTime, "", "Unix milliseconds of the request's first packet",
		func(e *dissect.Entry) (int64, bool) { return e.Timestamp, true })
	intField("elapsedTime", KindInt, "", "request-to-response latency in milliseconds",
		func(e *dissect.Entry) (int64, bool) { return e.ElapsedTime, true })
	strField("stream", "", `the stream's pcap name, e.g. "000000007221_tcp.pcap"`,
		func(e *dissect.Entry) (string, bool) { return always(e.Stream) })
	intField("streamId", KindInt, "", "numeric stream id",
		func(e *dissect.Entry) (int64, bool) { return int64(e.StreamID), true })
	boolField("outgoing", "", "true when the request came from this node: the client is one of its addresses or pods (false offline)",
		func(e *dissect.Entry) (bool, bool) { return e.Outgoing, true })

	// The stream's L3/L4 summary, on every entry that carries one.
	l4Int := func(name string, kind Kind, doc string, f func(l *dissect.L4Stream) int64) {
		intField("l4."+name, kind, "", doc, func(e *dissect.Entry) (int64, bool) {
			if e.L4 == nil {
				return 0, false
			}
			return f(e.L4), true
		})
	}
	l4Int("firstSeen", KindTime, "Unix milliseconds of the stream's first packet", func(l *dissect.L4Stream) int64 { return l.FirstSeen })
	l4Int("lastSeen", KindTime, "Unix milliseconds of the stream's latest packet", func(l *dissect.L4Stream) int64 { return l.LastSeen })
	l4Int("packetsUp", KindInt, "packets from src to dst", func(l *dissect.L4Stream) int64 { return int64(l.PacketsUp) })
	l4Int("packetsDown", KindInt, "packets from dst to src", func(l *dissect.L4Stream) int64 { return int64(l.PacketsDown) })
	l4Int("bytesUp", KindInt, "bytes from src to dst", func(l *dissect.L4Stream) int64 { return int64(l.BytesUp) })
	l4Int("bytesDown", KindInt, "bytes from dst to src", func(l *dissect.L4Stream) int64 { return int64(l.BytesDown) })
	for _, fl := range []struct {
		name string
		get  func(l *dissect.L4Stream) bool
	}{
		{"syn", func(l *dissect.L4Stream) bool { return l.SYN }},
		{"fin", func(l *dissect.L4Stream) bool { return l.FIN }},
		{"rst", func(l *dissect.L4Stream) bool { return l.RST }},
	} {
		boolField("l4."+fl.name, "", "TCP "+strings.ToUpper(fl.name)+" seen on the stream", func(e *dissect.Entry) (bool, bool) {
			if e.L4 == nil {
				return false, false
			}
			return fl.get(e.L4), true
		})
	}

	// HTTP.
	const h = "http, http2, grpc"
	rq := func(f func(r *dissect.HTTPRequest) string) func(e *dissect.Entry) (string, bool) {
		return func(e *dissect.Entry) (string, bool) {
			if r, ok := httpReq(e); ok {
				return f(r), true
			}
			return "", false
		}
	}
	rs := func(f func(r *dissect.HTTPResponse) string) func(e *dissect.Entry) (string, bool) {
		return func(e *dissect.Entry) (string, bool) {
			if r, ok := httpResp(e); ok {
				return f(r), true
			}
			return "", false
		}
	}
	strField("request.method", "http, http2, grpc, amqp", `"GET", "POST", …; for AMQP the method: "basic.publish", "queue.declare", …`,
		func(e *dissect.Entry) (string, bool) {
			if e.AMQP != nil {
				return e.AMQP.Method, true
			}
			if r, ok := httpReq(e); ok {
				return r.Method, true
			}
			return "", false
		})
	strField("request.path", h, "path without the query string", rq(func(r *dissect.HTTPRequest) string { return r.Path }))
	strField("request.url", h, "request target as sent, with the query string", rq(func(r *dissect.HTTPRequest) string { return r.URL }))
	strField("request.host", h, "Host header", rq(func(r *dissect.HTTPRequest) string { return r.Host }))
	strField("request.version", h, `HTTP version, "1.1"`, rq(func(r *dissect.HTTPRequest) string { return r.Version }))
	headerMap("request.headers{}", h, "request header by name (case-insensitive)",
		func(e *dissect.Entry) (dissect.Headers, bool) {
			r, ok := httpReq(e)
			if !ok {
				return nil, false
			}
			return r.Headers, true
		}, true)
	for _, p := range []string{"request.queryString{}", "request.query{}"} {
		headerMap(p, h, "decoded query parameter by name; request.query is an alias",
			func(e *dissect.Entry) (dissect.Headers, bool) {
				r, ok := httpReq(e)
				if !ok {
					return nil, false
				}
				return dissect.Headers(r.QueryString), true
			}, false)
	}
	headerMap("request.cookies{}", h, "request cookie by name",
		func(e *dissect.Entry) (dissect.Headers, bool) {
			r, ok := httpReq(e)
			if !ok {
				return nil, false
			}
			return dissect.Headers(r.Cookies), true
		}, false)
	intField("request.bodySize", KindInt, "http, http2, grpc, amqp", "request body size in bytes (AMQP: the message body)", func(e *dissect.Entry) (int64, bool) {
		if e.AMQP != nil {
			return e.AMQP.BodySize, true
		}
		if r, ok := httpReq(e); ok {
			return r.BodySize, true
		}
		return 0, false
	})
	addField(&field{path: "request.body", kind: KindBytes, protos: h, doc: "request body preview (text helpers, regex, .json())",
		get: func(e *dissect.Entry) (value, bool) {
			if r, ok := httpReq(e); ok {
				return value{b: r.Body}, true
			}
			return value{}, false
		}})
	intField("response.status", KindInt, "http, http2, grpc", "status code; for gRPC the grpc-status from the trailers (0 OK), missing when they were not seen", func(e *dissect.Entry) (int64, bool) {
		if g := e.GRPC; g != nil {
			return int64(g.Status), g.HasStatus
		}
		if r, ok := httpResp(e); ok {
			return int64(r.Status), true
		}
		return 0, false
	})
	strField("response.statusText", h, `"OK", "Not Found", …`, rs(func(r *dissect.HTTPResponse) string { return r.StatusText }))
	strField("response.version", "http, tls", `HTTP response version; for TLS the negotiated version ("1.3")`,
		func(e *dissect.Entry) (string, bool) {
			if r, ok := httpResp(e); ok {
				return r.Version, true
			}
			if e.TLS != nil && e.TLS.NegotiatedVersion != "" {
				return e.TLS.NegotiatedVersion, true
			}
			return "", false
		})
	headerMap("response.headers{}", h, "response header by name (case-insensitive)",
		func(e *dissect.Entry) (dissect.Headers, bool) {
			r, ok := httpResp(e)
			if !ok {
				return nil, false
			}
			return r.Headers, true
		}, true)
	intField("response.bodySize", KindInt, h, "response body size in bytes", func(e *dissect.Entry) (int64, bool) {
		if r, ok := httpResp(e); ok {
			return r.BodySize, true
		}
		return 0, false
	})
	addField(&field{path: "response.body", kind: KindBytes, protos: h, doc: "response body preview (text helpers, regex, .json())",
		get: func(e *dissect.Entry) (value, bool) {
			if r, ok := httpResp(e); ok {
				return value{b: r.Body}, true
			}
			return value{}, false
		}})

	// DNS.
	const d = "dns"
	intField("request.id", KindInt, d, "DNS transaction id", func(e *dissect.Entry) (int64, bool) {
		if e.DNS == nil {
			return 0, false
		}
		return int64(e.DNS.ID), true
	})
	strField("request.opcode", d, `"Query", …`, func(e *dissect.Entry) (string, bool) {
		if e.DNS == nil {
			return "", false
		}
		return e.DNS.Opcode, true
	})
	strField("response.code", d, `rcode name: "NoError", "NXDomain", …`, func(e *dissect.Entry) (string, bool) {
		if r, ok := dnsResp(e); ok {
			return r.Code, true
		}
		return "", false
	})
	for _, side := range []string{"request", "response"} {
		msg := func(e *dissect.Entry) (*dissect.DNSMessage, bool) {
			if e.DNS == nil {
				return nil, false
			}
			return &e.DNS.Request, true
		}
		if side == "response" {
			msg = dnsResp
		}
		flags := []struct {
			name string
			get  func(f *dissect.DNSFlags) bool
		}{
			{"qr", func(f *dissect.DNSFlags) bool { return f.QR }},
			{"aa", func(f *dissect.DNSFlags) bool { return f.AA }},
			{"tc", func(f *dissect.DNSFlags) bool { return f.TC }},
			{"rd", func(f *dissect.DNSFlags) bool { return f.RD }},
			{"ra", func(f *dissect.DNSFlags) bool { return f.RA }},
		}
		for _, fl := range flags {
			boolField(side+".flags."+fl.name, d, "header flag "+strings.ToUpper(fl.name), func(e *dissect.Entry) (bool, bool) {
				if m, ok := msg(e); ok {
					return fl.get(&m.Flags), true
				}
				return false, false
			})
		}
		questions := func(e *dissect.Entry) []dissect.DNSQuestion {
			if m, ok := msg(e); ok {
				return m.Questions
			}
			return nil
		}
		qattrs := []struct {
			name string
			get  func(q *dissect.DNSQuestion) string
		}{
			{"name", func(q *dissect.DNSQuestion) string { return q.Name }},
			{"type", func(q *dissect.DNSQuestion) string { return q.Type }},
			{"class", func(q *dissect.DNSQuestion) string { return q.Class }},
		}
		for _, a := range qattrs {
			addField(&field{path: side + ".questions[]." + a.name, kind: KindString, protos: d, doc: "question " + a.name,
				n:    func(e *dissect.Entry) int { return len(questions(e)) },
				elem: func(e *dissect.Entry, i int) value { return value{s: a.get(&questions(e)[i])} }})
		}
		if side == "request" {
			continue // answers live in the response
		}
		sections := []struct {
			name string
			get  func(m *dissect.DNSMessage) []dissect.DNSRecord
		}{
			{"answers", func(m *dissect.DNSMessage) []dissect.DNSRecord { return m.Answers }},
			{"authorities", func(m *dissect.DNSMessage) []dissect.DNSRecord { return m.Authorities }},
			{"additionals", func(m *dissect.DNSMessage) []dissect.DNSRecord { return m.Additionals }},
		}
		for _, sec := range sections {
			recs := func(e *dissect.Entry) []dissect.DNSRecord {
				if m, ok := msg(e); ok {
					return sec.get(m)
				}
				return nil
			}
			n := func(e *dissect.Entry) int { return len(recs(e)) }
			rattrs := []struct {
				name string
				get  func(r *dissect.DNSRecord) string
			}{
				{"name", func(r *dissect.DNSRecord) string { return r.Name }},
				{"type", func(r *dissect.DNSRecord) string { return r.Type }},
				{"class", func(r *dissect.DNSRecord) string { return r.Class }},
				{"ip", func(r *dissect.DNSRecord) string { return r.IP }},
				{"cname", func(r *dissect.DNSRecord) string { return r.CNAME }},
				{"data", func(r *dissect.DNSRecord) string { return r.Data }},
			}
			for _, a := range rattrs {
				addField(&field{path: side + "." + sec.name + "[]." + a.name, kind: KindString, protos: d,
					doc: "record " + a.name, n: n,
					elem: func(e *dissect.Entry, i int) value { return value{s: a.get(&recs(e)[i])} }})
			}
			addField(&field{path: side + "." + sec.name + "[].ttl", kind: KindInt, protos: d, doc: "record TTL in seconds", n: n,
				elem: func(e *dissect.Entry, i int) value { return value{n: int64(recs(e)[i].TTL)} }})
		}
	}

	// TLS.
	const t = "tls"
	tlsStr := func(f func(t *dissect.TLS) string) func(e *dissect.Entry) (string, bool) {
		return func(e *dissect.Entry) (string, bool) {
			if e.TLS == nil {
				return "", false
			}
			s := f(e.TLS)
			return s, s != ""
		}
	}
	sni := tlsStr(func(t *dissect.TLS) string { return t.ServerName })
	strField("request.serverName", t, "ClientHello SNI; missing when not sent", sni)
	strField("request.sni", t, "alias of request.serverName", sni)
	stringList("request.versions[]", t, `versions offered by the client: "1.2", "1.3"`, func(e *dissect.Entry) []string {
		if e.TLS == nil {
			return nil
		}
		return e.TLS.OfferedVersions
	})
	stringList("request.alpn[]", t, `ALPN protocols offered: "h2", "http/1.1"`, func(e *dissect.Entry) []string {
		if e.TLS == nil {
			return nil
		}
		return e.TLS.ALPN
	})
	strField("response.alpn", t, "ALPN protocol the server chose", tlsStr(func(t *dissect.TLS) string { return t.NegotiatedALPN }))
	strField("response.cipherSuite", t, "cipher suite the server chose", tlsStr(func(t *dissect.TLS) string { return t.CipherSuite }))

	redisFields()
	grpcFields()
	postgresFields()
	kafkaFields()
	amqpFields()
}

func amqpFields() {
	const q = "amqp"
	as := func(f func(x *dissect.AMQP) string) func(e *dissect.Entry) (string, bool) {
		return func(e *dissect.Entry) (string, bool) {
			if e.AMQP == nil {
				return "", false
			}
			s := f(e.AMQP)
			return s, s != ""
		}
	}
	strField("request.exchange", q, "exchange of basic.publish/deliver/return/get-ok, exchange.declare/delete, queue.bind/unbind; missing when empty (the default exchange)",
		as(func(x *dissect.AMQP) string { return x.Exchange }))
	strField("request.routingKey", q, "routing key of basic.publish/deliver/return/get-ok and queue.bind/unbind", as(func(x *dissect.AMQP) string { return x.RoutingKey }))
	strField("request.queue", q, "queue of queue.* methods, basic.consume and basic.get (a server-named queue from queue.declare-ok)", as(func(x *dissect.AMQP) string { return x.Queue }))
	strField("request.properties.contentType", q, "content-type property of a message", as(func(x *dissect.AMQP) string { return x.ContentType }))
	strField("request.properties.correlationId", q, "correlation-id property of a message", as(func(x *dissect.AMQP) string { return x.CorrelationID }))
	intField("response.replyCode", KindInt, q, "reply code of a connection.close or channel.close (404, 406, …)", func(e *dissect.Entry) (int64, bool) {
		if e.AMQP == nil || e.AMQP.ReplyCode == 0 {
			return 0, false
		}
		return int64(e.AMQP.ReplyCode), true
	})
}

func kafkaFields() {
	const k = "kafka"
	ki := func(f func(x *dissect.Kafka) int64) func(e *dissect.Entry) (int64, bool) {
		return func(e *dissect.Entry) (int64, bool) {
			if e.Kafka == nil {
				return 0, false
			}
			return f(e.Kafka), true
		}
	}
	intField("request.apiKey", KindInt, k, "API key: 0 Produce, 1 Fetch, 3 Metadata, …", ki(func(x *dissect.Kafka) int64 { return int64(x.APIKey) }))
	strField("request.apiKeyName", k, `API name: "Produce", "Fetch", "Metadata", "ApiVersions", …`, func(e *dissect.Entry) (string, bool) {
		if e.Kafka == nil {
			return "", false
		}
		return e.Kafka.APIKeyName, true
	})
	intField("request.apiVersion", KindInt, k, "API version of the request", ki(func(x *dissect.Kafka) int64 { return int64(x.APIVersion) }))
	intField("request.correlationID", KindInt, k, "correlation id (pairs the response)", ki(func(x *dissect.Kafka) int64 { return int64(x.CorrelationID) }))
	strField("request.clientID", k, "client id; missing when null", func(e *dissect.Entry) (string, bool) {
		if e.Kafka == nil {
			return "", false
		}
		return e.Kafka.ClientID, e.Kafka.ClientID != ""
	})
	stringList("request.topics[]", k, "topics of Produce, Fetch and Metadata requests (at most 32; none where a version names topics by id)",
		func(e *dissect.Entry) []string {
			if e.Kafka == nil {
				return nil
			}
			return e.Kafka.Topics
		})
}

func postgresFields() {
	const pg = "postgres"
	req := func(f func(r *dissect.PostgresRequest) string) func(e *dissect.Entry) (string, bool) {
		return func(e *dissect.Entry) (string, bool) {
			if e.Postgres == nil {
				return "", false
			}
			s := f(&e.Postgres.Request)
			return s, s != ""
		}
	}
	strField("request.type", pg, `"startup", "query" (simple), "extended" (Parse/Bind/Execute … Sync), "ssl", "cancel"`,
		req(func(r *dissect.PostgresRequest) string { return r.Type }))
	strField("request.user", pg, "user of the startup message", req(func(r *dissect.PostgresRequest) string { return r.User }))
	strField("request.database", pg, "database of the startup message (the user's name when not sent)", req(func(r *dissect.PostgresRequest) string { return r.Database }))
	strField("request.sql", pg, "SQL text of a simple query, or of the extended query's Parse (at most 4 KiB)", req(func(r *dissect.PostgresRequest) string { return r.SQL }))
	stringList("response.tags[]", pg, `CommandComplete tags: "SELECT 3", "INSERT 0 1", …`, func(e *dissect.Entry) []string {
		if e.Postgres == nil {
			return nil
		}
		return e.Postgres.Response.Tags
	})
	intField("response.rows", KindInt, pg, "data rows the server sent", func(e *dissect.Entry) (int64, bool) {
		if e.Postgres == nil || !e.Postgres.HasResponse {
			return 0, false
		}
		return e.Postgres.Response.Rows, true
	})
	strField("response.sqlState", pg, `SQLSTATE of an ErrorResponse: "42P01", …; missing without an error`, func(e *dissect.Entry) (string, bool) {
		if e.Postgres == nil || !e.Postgres.Response.Error {
			return "", false
		}
		return e.Postgres.Response.SQLState, true
	})
	strField("response.errorMessage", pg, "message of an ErrorResponse; missing without an error", func(e *dissect.Entry) (string, bool) {
		if e.Postgres == nil || !e.Postgres.Response.Error {
			return "", false
		}
		return e.Postgres.Response.Message, true
	})
}

func grpcFields() {
	const g = "grpc"
	gs := func(f func(x *dissect.GRPC) string) func(e *dissect.Entry) (string, bool) {
		return func(e *dissect.Entry) (string, bool) {
			if e.GRPC == nil {
				return "", false
			}
			return f(e.GRPC), true
		}
	}
	strField("request.service", g, `gRPC service from the path: "helloworld.Greeter"`, gs(func(x *dissect.GRPC) string { return x.Service }))
	strField("request.rpc", g, `gRPC method from the path: "SayHello"`, gs(func(x *dissect.GRPC) string { return x.Method }))
	strField("response.grpcMessage", g, "grpc-message from the trailers (percent-decoded); missing when the trailers were not seen",
		func(e *dissect.Entry) (string, bool) {
			if e.GRPC == nil || !e.GRPC.HasStatus {
				return "", false
			}
			return e.GRPC.Message, true
		})
	gi := func(f func(x *dissect.GRPC) int64) func(e *dissect.Entry) (int64, bool) {
		return func(e *dissect.Entry) (int64, bool) {
			if e.GRPC == nil {
				return 0, false
			}
			return f(e.GRPC), true
		}
	}
	intField("request.messages", KindInt, g, "gRPC messages the client sent", gi(func(x *dissect.GRPC) int64 { return int64(x.RequestMessages) }))
	intField("response.messages", KindInt, g, "gRPC messages the server sent", gi(func(x *dissect.GRPC) int64 { return int64(x.ResponseMessages) }))
	boolField("partial", "http2, grpc", "the stream's headers were missed (capture started mid-connection, loss) or not decodable; the fields present are right",
		func(e *dissect.Entry) (bool, bool) {
			if e.HTTP == nil {
				return false, false
			}
			return e.HTTP.Partial, true
		})
}

func redisFields() {
	const r = "redis"
	req := func(f func(q *dissect.RedisRequest) string, present bool) func(e *dissect.Entry) (string, bool) {
		return func(e *dissect.Entry) (string, bool) {
			if e.Redis == nil {
				return "", false
			}
			v := f(&e.Redis.Request)
			return v, present || v != ""
		}
	}
	rep := func(f func(a *dissect.RedisReply) string) func(e *dissect.Entry) (string, bool) {
		return func(e *dissect.Entry) (string, bool) {
			if e.Redis == nil || !e.Redis.HasResponse {
				return "", false
			}
			return f(&e.Redis.Response), true
		}
	}
	strField("request.command", r, `command, upper-cased: "GET", "SET", "HGETALL", …`,
		req(func(q *dissect.RedisRequest) string { return q.Command }, true))
	strField("request.key", r, "the command's key; missing for commands without one (PING, AUTH, …)",
		req(func(q *dissect.RedisRequest) string { return q.Key }, false))
	stringList("request.args[]", r, "arguments after the command, key included (at most 16, each at most 256 bytes; passwords redacted)",
		func(e *dissect.Entry) []string {
			if e.Redis == nil {
				return nil
			}
			return e.Redis.Request.Args
		})
	strField("response.type", r, `reply type: "simple string", "error", "integer", "bulk string", "array", "null", "map", …`,
		rep(func(a *dissect.RedisReply) string { return a.Type }))
	strField("response.value", r, "scalar reply, or an aggregate's first elements joined by spaces (at most 256 bytes)",
		rep(func(a *dissect.RedisReply) string { return a.Value }))
	boolField("response.error", "redis, postgres", "the reply is an error (Redis), the server sent an ErrorResponse (PostgreSQL)", func(e *dissect.Entry) (bool, bool) {
		if e.Postgres != nil && e.Postgres.HasResponse {
			return e.Postgres.Response.Error, true
		}
		if e.Redis == nil || !e.Redis.HasResponse {
			return false, false
		}
		return e.Redis.Response.Error, true
	})
}

// protocolWords are the barewords that test an entry's protocol.
var protocolWords = []string{"http", "http2", "grpc", "dns", "tls", "redis", "kafka", "amqp", "postgres", "tcp", "udp", "icmp"}

func isProtocolWord(s string) bool {
	for _, w := range protocolWords {
		if w == s {
			return true
		}
	}
	return false
}

// Field is one field of the schema as the reference and explain show it.
type Field struct {
	Path      string // e.g. `request.headers["…"]`, `response.answers[*].ip`
	Type      string
	Protocols string // "" for every entry
	Doc       string
}

// Fields lists the schema in a stable order, for documentation and tools.
func Fields() []Field {
	out := make([]Field, 0, len(fieldOrder))
	for _, p := range fieldOrder {
		f := fields[p]
		out = append(out, Field{Path: displayPath(p), Type: f.kind.String(), Protocols: f.protos, Doc: f.doc})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Protocols < out[j].Protocols })
	return out
}

// displayPath renders a canonical path for people: "request.headers{}" →
// `request.headers["…"]`, "response.answers[].ip" → "response.answers[i].ip".
func displayPath(p string) string {
	p = strings.ReplaceAll(p, "{}", `["…"]`)
	return strings.ReplaceAll(p, "[]", "[i]")
}
