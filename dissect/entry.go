package dissect

import "net/netip"

// Entry is one L7 message exchange (an HTTP request/response pair, a DNS
// query/answer, a TLS handshake) or, for streams no dissector recognises, one
// L4 summary of a stream. It is what `kflcap read --json` prints and what KFL
// queries evaluate. Field names follow Kubeshark's entry model.
//
// Entries are produced by the dissectors and are read-only afterwards: KFL
// evaluates them concurrently without locking.
type Entry struct {
	Protocol    Protocol `json:"protocol"`
	Src         Endpoint `json:"src"`
	Dst         Endpoint `json:"dst"`
	Node        Node     `json:"node"`
	Timestamp   int64    `json:"timestamp"`   // Unix milliseconds of the first packet of the request
	ElapsedTime int64    `json:"elapsedTime"` // request-to-response latency in milliseconds
	Stream      string   `json:"stream"`      // the stream's pcap name, e.g. "000000007221_tcp.pcap"
	StreamID    uint64   `json:"streamId"`
	Outgoing    bool     `json:"outgoing"` // the client (Src) is on this node: one of its addresses or pods (Config.Local)

	// Exactly one of these is set for an L7 entry (HTTP also for HTTP/2,
	// with GRPC beside it for gRPC); none for an L4 entry.
	HTTP *HTTP `json:"-"`
	DNS  *DNS  `json:"-"`
	TLS  *TLS  `json:"-"`
	// Redis is a command and its reply.
	Redis *Redis `json:"-"`
	// GRPC is set, beside HTTP, on gRPC calls.
	GRPC *GRPC `json:"-"`
	// Postgres is a PostgreSQL request and its response.
	Postgres *Postgres `json:"-"`
	// Kafka is a Kafka request and its response.
	Kafka *Kafka `json:"-"`
	// AMQP is an AMQP 0-9-1 method.
	AMQP *AMQP `json:"-"`

	// L4 is the stream's L3/L4 summary at the time the entry was made. It is
	// set on every entry (L7 ones too) so that queries can use counters and
	// TCP state without looking the stream up.
	L4 *L4Stream `json:"-"`
}

// L4Stream summarises a stream's transport-level state.
type L4Stream struct {
	FirstSeen   int64  `json:"firstSeen"` // Unix milliseconds
	LastSeen    int64  `json:"lastSeen"`
	PacketsUp   uint64 `json:"packetsUp"` // client (src) to server (dst)
	PacketsDown uint64 `json:"packetsDown"`
	BytesUp     uint64 `json:"bytesUp"`
	BytesDown   uint64 `json:"bytesDown"`
	SYN         bool   `json:"syn"` // a SYN was seen (the start of the connection was captured)
	FIN         bool   `json:"fin"`
	RST         bool   `json:"rst"`
}

// Protocol identifies the entry's protocol as Kubeshark does.
type Protocol struct {
	Name    string `json:"name"`    // "http", "dns", "tls", "tcp", "udp", "icmp"
	Abbr    string `json:"abbr"`    // "HTTP", "DNS", …
	Version string `json:"version"` // "1.1", …
	Layer4  string `json:"layer4"`  // "tcp" or "udp"
}

// Endpoint is one side of an entry. Name, Namespace and Labels come from
// name resolution and are empty when unknown. Labels are shared with the
// resolver and must not be modified.
type Endpoint struct {
	IP        netip.Addr        `json:"ip"`
	Port      uint16            `json:"port"`
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Node is the capturing node.
type Node struct {
	Name string `json:"name"`
	IP   string `json:"ip"`
}
