package dissect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// EntryPrinter prints entries one per line, as Summary or as JSON (the
// entry model, as `kflcap read --json` prints it). Print is safe for
// concurrent use (entries come from several workers); output is buffered
// until Flush.
type EntryPrinter struct {
	mu   sync.Mutex
	bw   *bufio.Writer
	enc  *json.Encoder
	json bool
	err  error
}

// NewEntryPrinter returns a printer to w, of JSON objects if asJSON.
func NewEntryPrinter(w io.Writer, asJSON bool) *EntryPrinter {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &EntryPrinter{bw: bw, enc: json.NewEncoder(bw), json: asJSON}
}

// Print prints e.
func (p *EntryPrinter) Print(e *Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.json {
		p.bw.WriteString(e.Summary())
		p.bw.WriteByte('\n')
	} else if err := p.enc.Encode(e.JSON()); err != nil && p.err == nil {
		p.err = err
	}
}

// Flush writes what is buffered and returns the first error.
func (p *EntryPrinter) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.bw.Flush(); err != nil && p.err == nil {
		p.err = err
	}
	return p.err
}

// Summary is the one-line text form of an entry, as `kflcap read` prints
// it: time, stream, protocol, client -> server, then what the protocol
// says about the exchange (method and status, question and answers, …).
func (e *Entry) Summary() string {
	var b strings.Builder
	ts := time.UnixMilli(e.Timestamp).UTC().Format("2006-01-02T15:04:05.000Z")
	fmt.Fprintf(&b, "%s %s %-4s %s -> %s", ts, e.Stream, strings.ToUpper(e.Protocol.Name),
		e.Src.hostPort(), e.Dst.hostPort())
	switch {
	case e.HTTP != nil:
		e.summarizeHTTP(&b)
	case e.DNS != nil:
		e.summarizeDNS(&b)
	case e.TLS != nil:
		fmt.Fprintf(&b, " sni=%s alpn=%s version=%s", e.TLS.ServerName, strings.Join(e.TLS.ALPN, ","), e.Protocol.Version)
	case e.AMQP != nil:
		e.summarizeAMQP(&b)
	case e.Kafka != nil:
		e.summarizeKafka(&b)
	case e.Postgres != nil:
		e.summarizePostgres(&b)
	case e.Redis != nil:
		e.summarizeRedis(&b)
	default:
		if l := e.L4; l != nil {
			fmt.Fprintf(&b, " packets=%d/%d bytes=%d/%d", l.PacketsUp, l.PacketsDown, l.BytesUp, l.BytesDown)
		}
	}
	return b.String()
}

// hostPort is ip:port, [ip]:port for IPv6.
func (ep Endpoint) hostPort() string {
	if ep.IP.Is6() && !ep.IP.Is4In6() {
		return fmt.Sprintf("[%s]:%d", ep.IP, ep.Port)
	}
	return fmt.Sprintf("%s:%d", ep.IP.Unmap(), ep.Port)
}

func (e *Entry) summarizeHTTP(b *strings.Builder) {
	r := e.HTTP
	fmt.Fprintf(b, " %s %s", r.Request.Method, r.Request.URL)
	if r.HasResponse {
		fmt.Fprintf(b, " %d %s %dms", r.Response.Status, r.Response.StatusText, e.ElapsedTime)
	} else {
		b.WriteString(" (no response)")
	}
	if g := e.GRPC; g != nil && g.HasStatus {
		fmt.Fprintf(b, " grpc-status=%d", g.Status)
		if g.Message != "" {
			fmt.Fprintf(b, " %q", g.Message)
		}
	}
	if r.Partial {
		b.WriteString(" (partial)")
	}
}

func (e *Entry) summarizeDNS(b *strings.Builder) {
	for _, q := range e.DNS.Request.Questions {
		fmt.Fprintf(b, " %s %s", q.Type, q.Name)
	}
	if !e.DNS.HasResponse {
		b.WriteString(" (no response)")
		return
	}
	fmt.Fprintf(b, " %s", e.DNS.Response.Code)
	for _, a := range e.DNS.Response.Answers {
		fmt.Fprintf(b, " %s=%s", a.Type, a.IP+a.CNAME+a.Data)
	}
	fmt.Fprintf(b, " %dms", e.ElapsedTime)
}

func (e *Entry) summarizeAMQP(b *strings.Builder) {
	x := e.AMQP
	fmt.Fprintf(b, " %s ch=%d", x.Method, x.Channel)
	for _, kv := range [][2]string{{"exchange", x.Exchange}, {"key", x.RoutingKey}, {"queue", x.Queue}} {
		if kv[1] != "" {
			fmt.Fprintf(b, " %s=%s", kv[0], kv[1])
		}
	}
	if x.BodySize > 0 {
		fmt.Fprintf(b, " body=%d", x.BodySize)
	}
	if x.ReplyCode != 0 {
		fmt.Fprintf(b, " %d %q", x.ReplyCode, x.ReplyText)
	}
	if x.HasResponse {
		fmt.Fprintf(b, " -> %s %dms", x.Response, e.ElapsedTime)
	}
}

func (e *Entry) summarizeKafka(b *strings.Builder) {
	k := e.Kafka
	fmt.Fprintf(b, " %s v%d id=%d client=%s", k.APIKeyName, k.APIVersion, k.CorrelationID, k.ClientID)
	if len(k.Topics) > 0 {
		fmt.Fprintf(b, " topics=%s", strings.Join(k.Topics, ","))
	}
	if k.HasResponse {
		fmt.Fprintf(b, " -> %d bytes %dms", k.ResponseSize, e.ElapsedTime)
	} else {
		b.WriteString(" (no response)")
	}
}

func (e *Entry) summarizePostgres(b *strings.Builder) {
	x := e.Postgres
	b.WriteString(" " + x.Request.Type)
	switch {
	case x.Request.SQL != "":
		fmt.Fprintf(b, " %q", x.Request.SQL)
	case x.Request.Type == "startup":
		fmt.Fprintf(b, " user=%s database=%s", x.Request.User, x.Request.Database)
	}
	switch {
	case !x.HasResponse:
		b.WriteString(" (no response)")
	case x.Response.Error:
		fmt.Fprintf(b, " -> %s %s %q %dms", x.Response.Severity, x.Response.SQLState, x.Response.Message, e.ElapsedTime)
	case len(x.Response.Tags) == 0:
		fmt.Fprintf(b, " -> ok %dms", e.ElapsedTime)
	default:
		fmt.Fprintf(b, " -> %s rows=%d %dms", strings.Join(x.Response.Tags, ","), x.Response.Rows, e.ElapsedTime)
	}
}

func (e *Entry) summarizeRedis(b *strings.Builder) {
	r := e.Redis
	b.WriteString(" " + r.Request.Command)
	if r.Request.Key != "" {
		fmt.Fprintf(b, " %q", r.Request.Key)
	}
	if r.HasResponse {
		fmt.Fprintf(b, " -> %s %q %dms", r.Response.Type, r.Response.Value, e.ElapsedTime)
	} else {
		b.WriteString(" (no reply)")
	}
}
