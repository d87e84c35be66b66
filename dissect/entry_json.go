package dissect

import (
	"encoding/json"
	"strings"
)

// Get returns the value of the first header named name, compared
// case-insensitively as HTTP requires, and "" when there is none.
func (h Headers) Get(name string) string {
	v, _ := h.Lookup(name)
	return v
}

// Lookup is Get that also reports whether the header is present.
func (h Headers) Lookup(name string) (string, bool) {
	for _, kv := range h {
		if strings.EqualFold(kv.Name, name) {
			return kv.Value, true
		}
	}
	return "", false
}

// Values returns every value of the headers named name, in wire order.
func (h Headers) Values(name string) []string {
	var vs []string
	for _, kv := range h {
		if strings.EqualFold(kv.Name, name) {
			vs = append(vs, kv.Value)
		}
	}
	return vs
}

// Map renders the headers as Kubeshark does: one key per header name as
// sent, repeated headers joined with ", " (RFC 9110 §5.3).
func (h Headers) Map() map[string]string {
	m := make(map[string]string, len(h))
	for _, kv := range h {
		if old, ok := m[kv.Name]; ok {
			m[kv.Name] = old + ", " + kv.Value
			continue
		}
		m[kv.Name] = kv.Value
	}
	return m
}

// kvMap renders query parameters or cookies the same way as Headers.Map.
func kvMap(kvs []KeyValue) map[string]string { return Headers(kvs).Map() }

// IsL7 reports whether a dissector recognised the entry's protocol.
func (e *Entry) IsL7() bool {
	return e.HTTP != nil || e.DNS != nil || e.TLS != nil || e.Redis != nil || e.Postgres != nil || e.Kafka != nil || e.AMQP != nil
}

// Request returns the Kubeshark-shaped "request" object of the entry (nil for
// L4 entries). It is what `read --json` prints under "request".
func (e *Entry) Request() map[string]any {
	switch {
	case e.HTTP != nil:
		r := &e.HTTP.Request
		m := map[string]any{
			"method":      r.Method,
			"path":        r.Path,
			"url":         r.URL,
			"host":        r.Host,
			"httpVersion": "HTTP/" + r.Version,
			"headers":     r.Headers.Map(),
			"queryString": kvMap(r.QueryString),
			"cookies":     kvMap(r.Cookies),
			"bodySize":    r.BodySize,
		}
		if len(r.Body) > 0 {
			m["body"] = string(r.Body)
		}
		if e.HTTP.Partial {
			m["partial"] = true
		}
		if g := e.GRPC; g != nil {
			m["grpc"] = map[string]any{
				"service": g.Service, "method": g.Method,
				"messages": g.RequestMessages, "messageBytes": g.RequestMessageBytes,
			}
		}
		return m
	case e.DNS != nil:
		return map[string]any{
			"id":        e.DNS.ID,
			"opcode":    e.DNS.Opcode,
			"flags":     e.DNS.Request.Flags,
			"questions": nonNilQ(e.DNS.Request.Questions),
		}
	case e.TLS != nil:
		return map[string]any{
			"serverName": e.TLS.ServerName,
			"versions":   nonNilS(e.TLS.OfferedVersions),
			"alpn":       nonNilS(e.TLS.ALPN),
		}
	case e.Redis != nil:
		r := &e.Redis.Request
		return map[string]any{
			"command":  r.Command,
			"key":      r.Key,
			"args":     nonNilS(r.Args),
			"argCount": r.ArgCount,
		}
	case e.AMQP != nil:
		x := e.AMQP
		m := map[string]any{"method": x.Method, "channel": x.Channel, "fromServer": x.FromServer}
		for k, v := range map[string]string{"exchange": x.Exchange, "routingKey": x.RoutingKey, "queue": x.Queue,
			"consumerTag": x.ConsumerTag, "replyText": x.ReplyText} {
			if v != "" {
				m[k] = v
			}
		}
		if x.ReplyCode != 0 {
			m["replyCode"] = x.ReplyCode
		}
		if x.BodySize > 0 || x.ContentType != "" {
			m["bodySize"] = x.BodySize
			m["properties"] = map[string]any{"contentType": x.ContentType, "contentEncoding": x.ContentEncoding,
				"deliveryMode": x.DeliveryMode, "correlationId": x.CorrelationID, "replyTo": x.ReplyTo,
				"expiration": x.Expiration, "messageId": x.MessageID}
		}
		return m
	case e.Kafka != nil:
		k := e.Kafka
		parts := k.Partitions
		if parts == nil {
			parts = []int32{}
		}
		return map[string]any{
			"apiKey": k.APIKey, "apiKeyName": k.APIKeyName, "apiVersion": k.APIVersion,
			"correlationID": k.CorrelationID, "clientID": k.ClientID, "size": k.RequestSize,
			"topics": nonNilS(k.Topics), "partitions": parts,
		}
	case e.Postgres != nil:
		r := &e.Postgres.Request
		m := map[string]any{"type": r.Type}
		for k, v := range map[string]string{"user": r.User, "database": r.Database, "application": r.Application, "sql": r.SQL, "statement": r.Statement} {
			if v != "" {
				m[k] = v
			}
		}
		return m
	}
	return nil
}

// Response returns the Kubeshark-shaped "response" object, or nil when there
// is no response (unanswered query, request without response, L4 entry).
func (e *Entry) Response() map[string]any {
	switch {
	case e.HTTP != nil && e.HTTP.HasResponse:
		r := &e.HTTP.Response
		m := map[string]any{
			"status":      r.Status,
			"statusText":  r.StatusText,
			"httpVersion": "HTTP/" + r.Version,
			"headers":     r.Headers.Map(),
			"bodySize":    r.BodySize,
		}
		if len(r.Body) > 0 {
			m["body"] = string(r.Body)
		}
		if g := e.GRPC; g != nil {
			gm := map[string]any{"messages": g.ResponseMessages, "messageBytes": g.ResponseMessageBytes}
			if g.HasStatus {
				gm["status"], gm["message"] = g.Status, g.Message
			}
			m["grpc"] = gm
		}
		return m
	case e.DNS != nil && e.DNS.HasResponse:
		r := &e.DNS.Response
		return map[string]any{
			"code":        r.Code,
			"flags":       r.Flags,
			"questions":   nonNilQ(r.Questions),
			"answers":     nonNilR(r.Answers),
			"authorities": nonNilR(r.Authorities),
			"additionals": nonNilR(r.Additionals),
		}
	case e.TLS != nil && e.TLS.NegotiatedVersion != "":
		return map[string]any{
			"version":     e.TLS.NegotiatedVersion,
			"alpn":        e.TLS.NegotiatedALPN,
			"cipherSuite": e.TLS.CipherSuite,
		}
	case e.Redis != nil && e.Redis.HasResponse:
		r := &e.Redis.Response
		return map[string]any{
			"type":  r.Type,
			"value": r.Value,
			"count": r.Count,
			"error": r.Error,
		}
	case e.AMQP != nil && e.AMQP.HasResponse:
		return map[string]any{"method": e.AMQP.Response}
	case e.Kafka != nil && e.Kafka.HasResponse:
		return map[string]any{"correlationID": e.Kafka.CorrelationID, "size": e.Kafka.ResponseSize}
	case e.Postgres != nil && e.Postgres.HasResponse:
		r := &e.Postgres.Response
		m := map[string]any{"tags": nonNilS(r.Tags), "rows": r.Rows, "error": r.Error}
		if r.Error {
			m["sqlState"], m["severity"], m["message"] = r.SQLState, r.Severity, r.Message
		}
		return m
	}
	return nil
}

func nonNilS(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilQ(s []DNSQuestion) []DNSQuestion {
	if s == nil {
		return []DNSQuestion{}
	}
	return s
}

func nonNilR(s []DNSRecord) []DNSRecord {
	if s == nil {
		return []DNSRecord{}
	}
	return s
}

// entryJSON is Entry without its MarshalJSON method, so that the plain
// fields keep their tags.
type entryJSON Entry

// EntryJSON is the JSON form of an entry: the common fields plus
// "request" and "response" objects shaped per protocol (as Kubeshark does)
// and "l4" counters. Encoding it directly, rather than through
// Entry.MarshalJSON, spares encoding/json re-scanning the marshaller's output.
type EntryJSON struct {
	*entryJSON
	Request  map[string]any `json:"request"`
	Response map[string]any `json:"response"`
	L4       *L4Stream      `json:"l4,omitempty"`
}

// JSON returns the entry's JSON form.
func (e *Entry) JSON() EntryJSON {
	return EntryJSON{(*entryJSON)(e), e.Request(), e.Response(), e.L4}
}

// MarshalJSON writes the entry's JSON form (see JSON).
func (e *Entry) MarshalJSON() ([]byte, error) { return json.Marshal(e.JSON()) }
