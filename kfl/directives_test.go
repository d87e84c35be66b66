package kfl

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLimitAndRedact(t *testing.T) {
	q := MustCompile(`http and limit(100) and redact("request.headers.Authorization", "response.body.json().users.*.name")`)
	if n, ok := q.Limit(); !ok || n != 100 {
		t.Fatalf("Limit() = %d, %v", n, ok)
	}
	if _, ok := MustCompile("http").Limit(); ok {
		t.Fatal("a query without limit() has a limit")
	}
	if got := q.RedactPaths(); strings.Join(got, ",") != "request.headers.Authorization,response.body.json().users.*.name" {
		t.Fatalf("RedactPaths() = %q", got)
	}
	if q.String() != `http and limit(100) and redact("request.headers.Authorization", "response.body.json().users.*.name")` {
		t.Fatalf("String() = %q", q.String())
	}
	e := fixtures()["get"]
	if !q.Match(e) {
		t.Fatal("directives changed matching")
	}
	// The entry's JSON form, as read --json prints it.
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	out, err := q.RedactJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "t0k3n") || strings.Contains(s, `\"bob\"`) || !strings.Contains(s, Redacted) {
		t.Fatalf("not redacted: %s", s)
	}
	if !strings.Contains(s, "curl/8.5.0") || !strings.Contains(s, `\"id\":42`) {
		t.Fatalf("redacted too much: %s", s)
	}
	// A query without redact() leaves the bytes alone.
	same, _ := MustCompile("http").RedactJSON(raw)
	if string(same) != string(raw) {
		t.Fatal("RedactJSON changed an entry without redact()")
	}
	m := map[string]any{"response": map[string]any{"answers": []any{map[string]any{"ip": "1.2.3.4"}, map[string]any{"ip": "5.6.7.8"}}}}
	if !MustCompile(`dns and redact("response.answers.ip")`).Redact(m) {
		t.Fatal("nothing redacted in a list")
	}
	b, _ := json.Marshal(m)
	if strings.Contains(string(b), "1.2.3.4") || strings.Contains(string(b), "5.6.7.8") {
		t.Fatalf("list not redacted: %s", b)
	}
}

func TestExplain(t *testing.T) {
	q := MustCompile(`http and response.status == 500 or not dns and src.ip.inCidr("10.0.0.0/8")`)
	out := q.Explain()
	for _, want := range []string{
		"dialect:    kfl",
		"grouping:   (http and response.status == 500) or (not dns and src.ip.inCidr(\"10.0.0.0/8\"))",
		"├─ and",
		"│  └─ response.status == 500",
		"│  └─ dns",
		"Kubeshark nests and/or to the right",
		"response.status  int",
		"src.ip           ip",
		"pushdown:   capture everything",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	// No note when both readings agree.
	for _, q := range []string{"http and (dns or tls)", "http and dns and tls", "http or dns or tls", "a or b and c"} {
		cq, err := Compile(q, WithMacros(map[string]string{"a": "http", "b": "dns", "c": "tls"}))
		if err != nil {
			t.Fatal(err)
		}
		if out := cq.Explain(); strings.Contains(out, "Kubeshark") {
			t.Errorf("spurious precedence note:\n%s", out)
		}
	}
	if out := MustCompile("http and tls or dns").Explain(); !strings.Contains(out, "grouping:   (http and tls) or dns") {
		t.Errorf("grouping:\n%s", out)
	}
	out = MustCompile(`udp and dst.port == 53 and limit(3) and redact("request.questions")`).Explain()
	for _, want := range []string{"limit:      3", "redact:     request.questions", "pushdown:   protocol in {udp} and src or dst port in {53}"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}

func TestFieldsReference(t *testing.T) {
	fs := Fields()
	seen := map[string]bool{}
	for _, f := range fs {
		seen[f.Path] = true
		if f.Type == "" || f.Doc == "" {
			t.Errorf("%s: no type or doc", f.Path)
		}
	}
	for _, p := range []string{"response.status", `request.headers["…"]`, "response.answers[i].ip", "src.ip", "l4.bytesUp", "request.serverName"} {
		if !seen[p] {
			t.Errorf("Fields() lacks %s", p)
		}
	}
}

func TestExplainCEL(t *testing.T) {
	out := MustCompile(`http && status_code >= 500 || !dns && timestamp > now()`).Explain()
	for _, want := range []string{"dialect:    cel", "  ||\n  ├─ &&\n  │  ├─ http\n  │  └─ status_code >= 500\n  └─ &&\n     ├─ !\n     │  └─ dns\n     └─ timestamp > now()", "status_code  int"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}
