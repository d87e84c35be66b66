package kfl

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzCompile: no input may panic or hang the lexer, parser, compiler,
// explain or pushdown; a query that compiles has a normalized form that
// compiles to itself with the same meaning, and its prefilter is sound on
// the fixtures.
func FuzzCompile(f *testing.F) {
	for _, tc := range queryTable {
		f.Add(tc.q)
	}
	for _, tc := range invalidTable {
		f.Add(tc.q)
	}
	for _, p := range celPairs {
		f.Add(p.cel)
	}
	entries := fixtureSlice()
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return
		}
		// Hangs show up as slow inputs: no query may take seconds.
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("%q took %v", src, d)
			}
		}()
		q, err := Compile(src, WithMacros(testMacros), WithClock(testClock))
		if err != nil {
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("%q: error %T %v is not *Error", src, err, err)
			}
			if e.Line < 1 || e.Col < 1 || e.Offset < 0 || e.Offset > len(src) {
				t.Fatalf("%q: bad position %d:%d (offset %d)", src, e.Line, e.Col, e.Offset)
			}
			_ = e.Detailed()
			return
		}
		_ = q.Explain()
		p := q.Prefilter()
		norm := q.String()
		q2, err := Compile(norm, WithMacros(testMacros), WithClock(testClock))
		if err != nil {
			t.Fatalf("%q: normalized %q does not compile: %v", src, norm, err)
		}
		if q2.String() != norm && utf8.ValidString(src) {
			t.Fatalf("%q: normalized form not stable: %q → %q", src, norm, q2.String())
		}
		for _, e := range entries {
			m := q.Match(e)
			if m != q2.Match(e) {
				t.Fatalf("%q and its normalized form %q differ", src, norm)
			}
			if m && !acceptsStream(p, e) {
				t.Fatalf("%q: prefilter %v drops a matching stream", src, p)
			}
		}
	})
}

// FuzzJSONWalk: the in-place JSON scanner never panics, and on valid JSON
// it finds exactly what encoding/json finds for a top-level key.
func FuzzJSONWalk(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":[1,2,"x"]},"d":"e\"f"}`), "a")
	f.Add([]byte(`[{"a":true},{"a":null}]`), "a")
	f.Add([]byte(`{"a":`), "a")
	f.Add([]byte(`{"a":"\u00e9"}`), "a")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		if len(data) > 1<<16 {
			return
		}
		var got []value
		jsonWalk(data, []jsonStep{{key: key}}, func(v value) bool { got = append(got, v); return false })
		jsonWalk(data, []jsonStep{{star: true}, {star: true}}, func(v value) bool { return false })
		jsonWalk(data, []jsonStep{{index: 0, isIndex: true}, {key: key}}, func(v value) bool { return false })
		var doc map[string]any
		if json.Unmarshal(data, &doc) != nil || !json.Valid(data) {
			return
		}
		want, ok := doc[key]
		if !ok {
			if len(got) != 0 {
				t.Fatalf("%s: key %q found by the scanner only", data, key)
			}
			return
		}
		if len(got) == 0 {
			// Duplicate keys: encoding/json keeps the last, the scanner
			// stops at the first match; both see the key.
			t.Fatalf("%s: key %q missed by the scanner", data, key)
		}
		last := got[len(got)-1]
		switch w := want.(type) {
		case string:
			if last.k != KindString || last.s != w {
				t.Fatalf("%s: %q: got %+v, want %q", data, key, last, w)
			}
		case float64:
			if last.k != KindFloat || last.f != w {
				t.Fatalf("%s: %q: got %+v, want %v", data, key, last, w)
			}
		case bool:
			if last.k != KindBool || last.t != w {
				t.Fatalf("%s: %q: got %+v, want %v", data, key, last, w)
			}
		case nil:
			if last.k != KindNil {
				t.Fatalf("%s: %q: got %+v, want null", data, key, last)
			}
		}
	})
}

// tokenVocabulary is what FuzzTokens builds queries from: random bytes are
// too unlikely to form valid field paths, so this target explores the
// compiler and evaluator of well-formed and nearly-well-formed queries.
var tokenVocabulary = []string{
	"http", "dns", "tls", "tcp", "udp", "icmp", "grpc", "https", "internal",
	"and", "or", "not", "!", "(", ")", "(", ")", "==", "!=", "<", "<=", ">", ">=", "+", "-",
	"true", "false", "nil", "0", "1", "53", "80", "500", "-1", "1.5", `"80"`, `"abc"`, `"10.0.0.5"`, `"fd00::1"`, `""`,
	`r"^/api"`, `r"4.*"`, `r"("`, `r"b"`,
	"src.ip", "dst.ip", "src.port", "dst.port", "src.name", "dst.namespace", "node.ip", "outgoing", "timestamp", "elapsedTime",
	"response.status", "request.path", "request.method", `request.headers["content-type"]`, "request.headers.*", "request.query.id",
	"response.answers[*].ip", "response.answers[0].ttl", "request.questions[*].name", "request.alpn[*]", "request.sni",
	"response.body", "request.body", ".json()", ".users", "[0]", "[*]", `["error"]`, ".count",
	`.startsWith("/")`, `.endsWith("m")`, `.contains("a")`, `.inCidr("10.0.0.0/8")`, ".startsWith(5)",
	"now()", `datetime("2026-11-23")`, "seconds(1)", "days(2)", "limit(5)", `redact("a.b")`, ",", ".", "[", "]",
}

func FuzzTokens(f *testing.F) {
	f.Add([]byte{0, 20, 68, 23, 35})
	f.Add([]byte{63, 21, 34, 10, 1})
	f.Add([]byte{70, 71, 73, 21, 38})
	entries := fixtureSlice()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64 {
			return
		}
		var b []byte
		for _, d := range data {
			tok := tokenVocabulary[int(d)%len(tokenVocabulary)]
			// Suffix tokens glue to the previous one; others are spaced.
			if len(b) > 0 && tok[0] != '.' && tok[0] != '[' {
				b = append(b, ' ')
			}
			b = append(b, tok...)
		}
		src := string(b)
		q, err := Compile(src, WithMacros(testMacros), WithClock(testClock))
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("%q: error %T is not *Error", src, err)
			}
			return
		}
		p := q.Prefilter()
		_ = q.Explain()
		q2, err := Compile(q.String(), WithMacros(testMacros), WithClock(testClock))
		if err != nil {
			t.Fatalf("%q: normalized %q does not compile: %v", src, q.String(), err)
		}
		for _, e := range entries {
			m := q.Match(e)
			if m != q2.Match(e) {
				t.Fatalf("%q and its normalized form %q differ", src, q.String())
			}
			if m && !acceptsStream(p, e) {
				t.Fatalf("%q: prefilter %v drops a matching stream", src, p)
			}
		}
	})
}
