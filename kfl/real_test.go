package kfl

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
)

// TestOnDissectedCapture runs queries on the entries the dissectors make
// from a real capture (dissect/testdata) and checks each against an oracle
// written directly in Go over the same entries.
func TestOnDissectedCapture(t *testing.T) {
	// Every capture the dissectors' tests keep, so that new protocols'
	// captures are picked up as they land.
	paths, _ := filepath.Glob("../dissect/testdata/*.pcap*")
	var entries []*dissect.Entry
	for _, path := range paths {
		d := dissect.New(dissect.Config{OnEntry: func(e *dissect.Entry, _ dissect.StreamRef) { entries = append(entries, e) }})
		if err := collector.ReadFile(context.Background(), path, d.Feed, nil); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		d.Close()
	}
	if len(entries) == 0 {
		t.Skip("no captures with entries")
	}
	// resp is the response of an HTTP/1.x, HTTP/2 or gRPC entry.
	resp := func(e *dissect.Entry) *dissect.HTTPResponse {
		if e.HTTP == nil || !e.HTTP.HasResponse {
			return nil
		}
		return &e.HTTP.Response
	}
	isHTTP := func(e *dissect.Entry) bool { return e.Protocol.Name == "http" }
	// status is response.status: gRPC's grpc-status, else the HTTP status.
	status := func(e *dissect.Entry) (int, bool) {
		if e.GRPC != nil {
			return e.GRPC.Status, e.GRPC.HasStatus
		}
		if r := resp(e); r != nil {
			return r.Status, true
		}
		return 0, false
	}
	for _, tc := range []struct {
		q      string
		oracle func(e *dissect.Entry) bool
	}{
		{"http", func(e *dissect.Entry) bool { return e.HTTP != nil && isHTTP(e) }},
		{"http2", func(e *dissect.Entry) bool { return e.HTTP != nil && e.Protocol.Version == "2.0" }},
		{"grpc", func(e *dissect.Entry) bool { return e.GRPC != nil }},
		{"grpc and response.status != 0", func(e *dissect.Entry) bool { return e.GRPC != nil && e.GRPC.HasStatus && e.GRPC.Status != 0 }},
		{`grpc and request.rpc == "Say"`, func(e *dissect.Entry) bool { return e.GRPC != nil && e.GRPC.Method == "Say" }},
		{"partial", func(e *dissect.Entry) bool { return e.HTTP != nil && e.HTTP.Partial }},
		{"redis", func(e *dissect.Entry) bool { return e.Redis != nil }},
		{"postgres", func(e *dissect.Entry) bool { return e.Postgres != nil }},
		{"kafka", func(e *dissect.Entry) bool { return e.Kafka != nil }},
		{"amqp", func(e *dissect.Entry) bool { return e.AMQP != nil }},
		{`amqp and request.method == "basic.deliver" and request.routingKey == "eu"`, func(e *dissect.Entry) bool {
			return e.AMQP != nil && e.AMQP.Method == "basic.deliver" && e.AMQP.RoutingKey == "eu"
		}},
		{`amqp and response.replyCode == 404`, func(e *dissect.Entry) bool { return e.AMQP != nil && e.AMQP.ReplyCode == 404 }},
		{`kafka and request.apiKeyName == "Produce"`, func(e *dissect.Entry) bool { return e.Kafka != nil && e.Kafka.APIKeyName == "Produce" }},
		{`request.topics[*] == "orders"`, func(e *dissect.Entry) bool { return e.Kafka != nil && slices.Contains(e.Kafka.Topics, "orders") }},
		{`postgres and response.sqlState == "42P01"`, func(e *dissect.Entry) bool {
			return e.Postgres != nil && e.Postgres.Response.Error && e.Postgres.Response.SQLState == "42P01"
		}},
		{`response.tags[*].startsWith("SELECT")`, func(e *dissect.Entry) bool {
			return e.Postgres != nil && slices.ContainsFunc(e.Postgres.Response.Tags, func(s string) bool { return strings.HasPrefix(s, "SELECT") })
		}},
		{`redis and request.command == "GET"`, func(e *dissect.Entry) bool { return e.Redis != nil && e.Redis.Request.Command == "GET" }},
		{`redis and response.error`, func(e *dissect.Entry) bool { return e.Redis != nil && e.Redis.HasResponse && e.Redis.Response.Error }},
		{`response.error`, func(e *dissect.Entry) bool {
			return e.Redis != nil && e.Redis.HasResponse && e.Redis.Response.Error || e.Postgres != nil && e.Postgres.HasResponse && e.Postgres.Response.Error
		}},
		{"tcp", func(e *dissect.Entry) bool { return e.Protocol.Layer4 == "tcp" }},
		{"http and response.status == 200", func(e *dissect.Entry) bool { r := resp(e); return isHTTP(e) && r != nil && r.Status == 200 }},
		{"http and response.status >= 400", func(e *dissect.Entry) bool { r := resp(e); return isHTTP(e) && r != nil && r.Status >= 400 }},
		{`response.status == r"^3"`, func(e *dissect.Entry) bool {
			st, ok := status(e)
			return ok && strings.HasPrefix(strconv.Itoa(st), "3")
		}},
		{`request.path.startsWith("/status/")`, func(e *dissect.Entry) bool {
			return e.HTTP != nil && strings.HasPrefix(e.HTTP.Request.Path, "/status/")
		}},
		{`request.method == "HEAD"`, func(e *dissect.Entry) bool { return e.HTTP != nil && e.HTTP.Request.Method == "HEAD" }},
		{`response.headers["content-length"] != nil`, func(e *dissect.Entry) bool {
			r := resp(e)
			if r == nil {
				return false
			}
			_, ok := r.Headers.Lookup("Content-Length")
			return ok
		}},
		{`response.headers["content-encoding"] == "gzip"`, func(e *dissect.Entry) bool {
			r := resp(e)
			return r != nil && r.Headers.Get("content-encoding") == "gzip"
		}},
		{`http and response.status == nil`, func(e *dissect.Entry) bool { return isHTTP(e) && !e.HTTP.HasResponse }},
		{`dst.port == 8080 or src.port == 8080`, func(e *dissect.Entry) bool { return e.Dst.Port == 8080 || e.Src.Port == 8080 }},
		{`cel: http && status_code == 200`, func(e *dissect.Entry) bool { r := resp(e); return isHTTP(e) && r != nil && r.Status == 200 }},
		{"dns", func(e *dissect.Entry) bool { return e.DNS != nil }},
		{`dns and response.code == "NoError"`, func(e *dissect.Entry) bool {
			return e.DNS != nil && e.DNS.HasResponse && e.DNS.Response.Code == "NoError"
		}},
		{`request.questions[*].type == "AAAA"`, func(e *dissect.Entry) bool {
			if e.DNS == nil {
				return false
			}
			for _, q := range e.DNS.Request.Questions {
				if q.Type == "AAAA" {
					return true
				}
			}
			return false
		}},
		{`response.answers[*].ip != nil`, func(e *dissect.Entry) bool {
			return e.DNS != nil && e.DNS.HasResponse && len(e.DNS.Response.Answers) > 0
		}},
		{"tls", func(e *dissect.Entry) bool { return e.TLS != nil }},
		{`tls and request.sni != nil`, func(e *dissect.Entry) bool { return e.TLS != nil && e.TLS.ServerName != "" }},
		{`request.alpn[*] == "h2"`, func(e *dissect.Entry) bool { return e.TLS != nil && slices.Contains(e.TLS.ALPN, "h2") }},
		{"udp", func(e *dissect.Entry) bool { return e.Protocol.Layer4 == "udp" }},
		{`l4.syn`, func(e *dissect.Entry) bool { return e.L4 != nil && e.L4.SYN }},
	} {
		q := MustCompile(tc.q)
		p := q.Prefilter()
		n := 0
		for _, e := range entries {
			got, want := q.Match(e), tc.oracle(e)
			if got != want {
				t.Errorf("%q on %s %s: got %v, want %v", tc.q, e.Stream, e.Protocol.Name, got, want)
			}
			if got {
				n++
				if !acceptsStream(p, e) {
					t.Errorf("%q: prefilter %v drops %s", tc.q, p, e.Stream)
				}
			}
		}
		t.Logf("%-50s %d of %d entries", tc.q, n, len(entries))
	}
}
