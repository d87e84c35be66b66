package kfl

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/dissect"
)

// celPairs: a KFL query and the KFL2/CEL query a Kubeshark user writes for
// the same thing.
var celPairs = []struct{ kfl, cel string }{
	{`http and response.status == 500`, `http && status_code == 500`},
	{`http and request.method == "GET" and response.status >= 400`, `http && method == "GET" && status_code >= 400`},
	{`http and response.status >= 400 and response.status < 500`, `http && status_code >= 400 && status_code < 500`},
	{`dns and request.questions[*].name == "example.com"`, `dns && "example.com" in dns_questions`},
	{`dns and request.questions[*].type == "AAAA"`, `dns && "AAAA" in dns_question_types`},
	{`dns and response.answers[*].ip == "1.2.3.4"`, `dns && "1.2.3.4" in dns_answers`},
	{`dns and response.code == "NXDomain"`, `dns && dns_rcode == "NXDomain"`},
	{`dst.namespace == "payments"`, `dst.pod.namespace == "payments"`},
	{`src.namespace == "shop" or dst.namespace == "shop"`, `"shop" in namespaces`},
	{`src.name == "frontend.shop"`, `src.service.name == "frontend.shop"`},
	{`src.ip == "10.0.0.5"`, `cel: src.ip == "10.0.0.5"`},
	{`src.ip == "fd00::1" or dst.ip == "8.8.8.8"`, `src.ip == "fd00::1" || dst.ip == "8.8.8.8"`},
	{`http and request.path.startsWith("/api")`, `http && path.startsWith("/api")`},
	{`http and request.url.contains("name=bob")`, `http && url.contains("name=bob")`},
	{`http and request.path == r"^/api/v[0-9]+"`, `http && path.matches("^/api/v[0-9]+")`},
	{`http and request.headers["content-type"] == "application/json"`, `http && request.headers["content-type"] == "application/json"`},
	{`http and request.headers["Authorization"] != nil`, `http && "authorization" in request.headers`},
	{`http and response.headers["content-length"] == "71"`, `http && response.headers["content-length"] == "71"`},
	{`http and request.query["id"] == "42"`, `http && query_params["id"] == "42"`},
	{`http and response.bodySize > 50`, `http && response_body_size > 50`},
	{`http and request.bodySize > 0`, `http && request_body_size > 0`},
	{`http and response.body.contains("db down")`, `http && response_body.contains("db down")`},
	{`tls and request.sni.endsWith(".example.com")`, `tls && tls_sni.endsWith(".example.com")`},
	{`tls and response.version == "1.3"`, `tls && tls_version == "1.3"`},
	{`tls and response.alpn == "h2"`, `tls && tls_alpn == "h2"`},
	{`udp and dst.port == 53`, `udp && dst.port == 53`},
	{`tcp and src.port > 50000`, `tcp && src.port > 50000`},
	{`elapsedTime > 100`, `elapsed_time > 100`},
	{`timestamp >= now() - minutes(10)`, `timestamp >= now() - duration("10m")`},
	{`timestamp < datetime("2026-11-23T10:00:00Z")`, `timestamp < timestamp("2026-11-23T10:00:00Z")`},
	{`not http and tcp`, `!http && tcp`},
	{`http and response.status == 500 or dns`, `http && status_code == 500 || dns`},
	{`outgoing and tls`, `outgoing && tls`},
	{`node.name == "node-1"`, `cel: node.name == "node-1"`},
	{`protocol.abbr == "DNS"`, `protocol == "DNS"`},
	{`stream.endsWith("_udp.pcap")`, `cel: stream.endsWith("_udp.pcap")`},
	{`http and (response.status == 500 or request.method == "POST")`, `http && (status_code == 500 || method == "POST")`},
}

func TestCELMatchesKFL(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	entries := fixtureSlice()
	for i := 0; i < 500; i++ {
		entries = append(entries, randEntry(r))
	}
	for _, p := range celPairs {
		k, err := Compile(p.kfl, WithClock(testClock))
		if err != nil {
			t.Errorf("kfl %q: %v", p.kfl, err)
			continue
		}
		c, err := Compile(p.cel, WithClock(testClock))
		if err != nil {
			t.Errorf("cel %q: %v", p.cel, err)
			continue
		}
		if k.Dialect() != DialectKFL || c.Dialect() != DialectCEL {
			t.Errorf("%q / %q: dialects %s / %s", p.kfl, p.cel, k.Dialect(), c.Dialect())
		}
		n := 0
		for _, e := range entries {
			km, cm := k.Match(e), c.Match(e)
			if km != cm {
				t.Errorf("%q = %v but %q = %v on %+v", p.kfl, km, p.cel, cm, e)
				break
			}
			if km {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%q matches no entry: the comparison proves nothing", p.kfl)
		}
	}
}

func TestCELDetection(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want Dialect
	}{
		{`http`, DialectKFL},
		{`http && status_code == 500`, DialectCEL},
		{`cel: http`, DialectCEL},
		{`  cel:dns`, DialectCEL},
		{`src.ip == "10.0.0.1"`, DialectKFL},
		{`"google.com" in dns_questions`, DialectCEL},
		{`size(dns_answers) > 0`, DialectCEL},
	} {
		q, err := Compile(tc.q)
		if err != nil {
			t.Errorf("%q: %v", tc.q, err)
			continue
		}
		if q.Dialect() != tc.want {
			t.Errorf("%q: dialect %s, want %s", tc.q, q.Dialect(), tc.want)
		}
	}
	// A KFL type error stays a KFL error even where CEL would accept the text.
	if _, err := Compile(`src.ip == "not-an-ip"`); err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("got %v", err)
	}
	// Forced CEL reports CEL's error at the right place.
	_, err := Compile(`cel: http && status_code == "x"`)
	if e, ok := err.(*Error); !ok || e.Col < 6 || !strings.HasPrefix(e.Msg, "cel: ") {
		t.Errorf("got %v", err)
	}
	if _, err := Compile(`cel: status_code`); err == nil || !strings.Contains(err.Error(), "not a condition") {
		t.Errorf("non-bool CEL accepted: %v", err)
	}
}

func TestCELString(t *testing.T) {
	q := MustCompile("http && status_code == 500")
	if q.String() != "cel: http && status_code == 500" {
		t.Fatalf("%q", q.String())
	}
	if MustCompile(q.String()).String() != q.String() {
		t.Fatal("CEL normalized form is not stable")
	}
	var e dissect.Entry
	if q.Match(&e) {
		t.Fatal("empty entry matched")
	}
	if len(CELVariables()) < 30 {
		t.Fatal("CEL variables missing")
	}
}

func TestCELNow(t *testing.T) {
	for in, want := range map[string]string{
		`timestamp > now() - duration("1m")`:     `timestamp > __now - duration("1m")`,
		`path == "now()" && now ( ) > timestamp`: `path == "now()" && __now   > timestamp`,
		`x.now()`:                                `x.now()`,
		`'''now()''' == r'now()'`:                `'''now()''' == r'now()'`,
		`"a\"now()" == path`:                     `"a\"now()" == path`,
	} {
		if got := rewriteNow(in); got != want || len(got) != len(in) {
			t.Errorf("rewriteNow(%q) = %q, want %q", in, got, want)
		}
	}
	q := MustCompile(`cel: http && path != "now()" && timestamp <= now()`, WithClock(testClock))
	if !q.Match(fixtures()["get"]) {
		t.Fatal("now() in CEL")
	}
}
