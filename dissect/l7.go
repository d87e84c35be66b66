package dissect

// HTTP is an HTTP/1.x request and its response. Response fields are zero
// when the response was not seen (HasResponse false).
//
// HTTP/2 streams (entries of protocol "http2" and "grpc") use the same
// shape with Version "2.0": pseudo-headers become Method, URL/Path, Host and
// Status, the other fields are Headers.
type HTTP struct {
	Request     HTTPRequest
	Response    HTTPResponse
	HasResponse bool
	// Partial: HTTP/2 only, the stream's headers were not seen (the capture
	// started mid-connection or lost them) or could not be decoded; the
	// fields present are right, the others are empty.
	Partial bool
}

// HTTPRequest is the request half of an HTTP exchange.
type HTTPRequest struct {
	Method      string
	Path        string // path without the query string
	URL         string // request target as sent, with the query string
	Host        string
	Version     string     // "1.0", "1.1"
	Headers     Headers    // lookups are case-insensitive
	QueryString []KeyValue // decoded query parameters, in order
	Cookies     []KeyValue // request cookies, in order
	BodySize    int64
	Body        []byte // bounded preview, gzip decoded
}

// HTTPResponse is the response half of an HTTP exchange.
type HTTPResponse struct {
	Status     int
	StatusText string
	Version    string
	Headers    Headers
	BodySize   int64
	Body       []byte // bounded preview, gzip decoded
}

// KeyValue is one name/value pair, kept in wire order.
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Headers is a list of header fields in wire order.
type Headers []KeyValue

// DNS is a DNS query and its response (HasResponse false when unanswered).
type DNS struct {
	ID          uint16
	Opcode      string // "Query", …
	Request     DNSMessage
	Response    DNSMessage
	HasResponse bool
}

// DNSMessage is one DNS message's sections.
type DNSMessage struct {
	Flags       DNSFlags
	Code        string // rcode name: "NoError", "NXDomain", …
	Questions   []DNSQuestion
	Answers     []DNSRecord
	Authorities []DNSRecord
	Additionals []DNSRecord
}

// DNSFlags are the header flag bits.
type DNSFlags struct {
	QR bool `json:"qr"`
	AA bool `json:"aa"`
	TC bool `json:"tc"`
	RD bool `json:"rd"`
	RA bool `json:"ra"`
}

// DNSQuestion is one question.
type DNSQuestion struct {
	Name  string `json:"name"`
	Type  string `json:"type"` // "A", "AAAA", …
	Class string `json:"class"`
}

// DNSRecord is one resource record; Data fields are set per type.
type DNSRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Class string `json:"class"`
	TTL   uint32 `json:"ttl"`
	IP    string `json:"ip,omitempty"`    // A, AAAA
	CNAME string `json:"cname,omitempty"` // CNAME
	Data  string `json:"data,omitempty"`  // NS, PTR, MX, SRV, TXT, SOA rendered as text
}

// TLS is what is visible of a TLS handshake.
type TLS struct {
	ServerName        string   // ClientHello SNI
	OfferedVersions   []string // "1.2", "1.3"
	NegotiatedVersion string   // from ServerHello, "" when not seen
	ALPN              []string // offered protocols
	NegotiatedALPN    string
	CipherSuite       string
}

// Redis is a Redis command and its reply (HasResponse false when the reply
// was not seen).
type Redis struct {
	Request     RedisRequest
	Response    RedisReply
	HasResponse bool
}

// RedisRequest is one command.
type RedisRequest struct {
	Command  string   // upper-cased first word: "GET", "SET", …
	Key      string   // first argument of commands that take a key; "" otherwise
	Args     []string // arguments after the command (key included), bounded in number and length; passwords redacted
	ArgCount int      // words in the command, the command included
}

// RedisReply is the reply to a command.
type RedisReply struct {
	Type  string // "simple string", "error", "integer", "bulk string", "array", "null", "map", …
	Value string // scalar value, or the first elements of an aggregate joined by " "; bounded
	Count int    // elements of an aggregate (-1 for a null array)
	Error bool   // an error or bulk error reply
}

// Postgres is one PostgreSQL request (startup, simple query, or extended
// query up to Sync) and the server's messages up to ReadyForQuery.
type Postgres struct {
	Request     PostgresRequest
	Response    PostgresResponse
	HasResponse bool
}

// PostgresRequest is what the client sent.
type PostgresRequest struct {
	Type        string // "startup", "query" (simple), "extended" (Parse/Bind/Execute … Sync), "ssl", "cancel"
	User        string // startup
	Database    string // startup (defaults to the user, as the server does)
	Application string // startup application_name
	SQL         string // query text, at most 4 KiB; for a Bind of a named statement, its Parse's text when seen
	Statement   string // prepared statement name, "" for the unnamed one
}

// PostgresResponse is what the server answered.
type PostgresResponse struct {
	Tags     []string // CommandComplete tags: "SELECT 3", "INSERT 0 1", …
	Rows     int64    // DataRow messages
	Error    bool
	SQLState string // ErrorResponse code: "42P01", …
	Severity string // "ERROR", "FATAL", …
	Message  string
}

// Kafka is one Kafka request and, when seen, the response with its
// correlation id.
type Kafka struct {
	APIKey        int16
	APIKeyName    string // "Produce", "Fetch", "Metadata", …
	APIVersion    int16
	CorrelationID int32
	ClientID      string
	// Topics and partitions of Produce, Fetch and Metadata requests (at most
	// 32 and 64); versions that name topics by id only give partitions.
	Topics       []string
	Partitions   []int32
	RequestSize  int32 // bytes after the size field
	ResponseSize int32
	HasResponse  bool
}

// AMQP is one AMQP 0-9-1 method: a client's method with the -ok that
// answered it, or a method alone (basic.publish with its content, a
// server's basic.deliver, …).
type AMQP struct {
	Method      string // "basic.publish", "queue.declare", …
	Channel     uint16
	FromServer  bool   // the server sent the method (basic.deliver, connection.start, …)
	Response    string // the answering method ("queue.declare-ok"), when seen
	HasResponse bool
	Exchange    string
	RoutingKey  string
	Queue       string
	ConsumerTag string
	ReplyCode   int // connection.close, channel.close
	ReplyText   string
	// Content (basic.publish, basic.deliver, basic.get-ok, basic.return).
	BodySize        int64
	ContentType     string
	ContentEncoding string
	DeliveryMode    int
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
}

// GRPC is what gRPC adds to an HTTP/2 stream (Entry.HTTP holds the rest).
type GRPC struct {
	Service   string // "helloworld.Greeter", from the path "/helloworld.Greeter/SayHello"
	Method    string // "SayHello"
	Status    int    // grpc-status from the trailers (0 OK)
	HasStatus bool   // false when the trailers were not seen
	Message   string // grpc-message, percent-decoded
	// Length-prefixed messages in each direction and their total size
	// (before decompression).
	RequestMessages      int
	RequestMessageBytes  int64
	ResponseMessages     int
	ResponseMessageBytes int64
}
