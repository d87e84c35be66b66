package kfl

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// invalidTable: query, line, column, and the message the error must hold.
var invalidTable = []struct {
	q         string
	line, col int
	msg       string
}{
	{"http and response.stauts == 500", 1, 10, "unknown field \"response.stauts\" (did you mean \"response.status\"?)"},
	{" ", 1, 2, "empty query"},
	{"(http", 1, 1, "unbalanced \"(\": missing \")\""},
	{"http)", 1, 5, "unbalanced \")\""},
	{"http and", 1, 9, "unexpected end of query: an operand is missing"},
	{"and http", 1, 1, "expected an operand before \"and\""},
	{"http dns", 1, 6, "unexpected identifier dns after a complete expression (missing \"and\" or \"or\"?)"},
	{"response.status == \"abc\"", 1, 20, "type mismatch: response.status is a number (int), and \"abc\" is not a number"},
	{"request.path.startsWith(5)", 1, 25, ".startsWith() takes a string constant, got an int"},
	{"request.path == r\"(\"", 1, 17, "bad regex: missing closing ): `(`"},
	{"foo()", 1, 1, "unknown helper foo(); helpers are now(), datetime(), seconds(), minutes(), hours(), days(), limit(), redact()"},
	{"request.path.startWith(\"/\")", 1, 14, "unknown helper .startWith() (did you mean .startsWith()?)"},
	{"response.status = 500", 1, 17, "\"=\" is not an operator: use \"==\" to compare"},
	{"http && request.path == \"/\"", 1, 6, "\"&&\" is not KFL: write \"and\" (or prefix the query with \"cel:\" for the CEL dialect)"},
	{"\"abc", 1, 1, "unterminated string"},
	{"r\"abc", 1, 1, "unterminated regex"},
	{"request.headers", 1, 1, "request.headers is not a complete field: use one of request.headers[\"…\"]"},
	{"response.answers.ip == \"x\"", 1, 18, "response.answers is a list: write response.answers[0].ip or response.answers[*].ip"},
	{"request", 1, 1, "request is not a complete field: use one of request.method, request.path, request.url, request.host, request.version, request.headers[\"…\"], …"},
	{"src.ip == \"not-an-ip\"", 1, 11, "\"not-an-ip\" is not an IP address (use .inCidr(\"10.0.0.0/8\") for networks)"},
	{"src.ip.inCidr(\"10.0.0.0/33\")", 1, 15, ".inCidr(\"10.0.0.0/33\"): not a CIDR prefix like \"10.0.0.0/8\""},
	{"request.path", 1, 1, "request.path is a string, not a condition: compare it (request.path == …) or test presence (request.path != nil)"},
	{"response.status", 1, 1, "response.status is an int, not a condition: compare it (response.status == …) or test presence (response.status != nil)"},
	{"not request.path == \"/x\"", 1, 1, "\"not\" binds tighter than \"==\": write not (request.path == \"/x\")"},
	{"limit(0)", 1, 7, "limit(n) needs a positive integer constant"},
	{"http or limit(5)", 1, 9, "limit() is a directive: use it only as a top-level \"and\" term (e.g. http and limit(…))"},
	{"limit(5) and limit(6)", 1, 14, "limit() is given twice"},
	{"redact(5)", 1, 8, "redact() takes field paths as strings, e.g. \"request.headers.Authorization\""},
	{"redact()", 1, 1, "redact() needs at least one field path, e.g. redact(\"request.headers.Authorization\")"},
	{"timestamp > datetime(\"yesterday\")", 1, 22, "datetime(\"yesterday\"): not a date; use \"1/2/2006, 3:04:05 PM\" or RFC 3339"},
	{"elapsedTime > seconds(\"x\")", 1, 23, "seconds(n) takes a number constant"},
	{"timestamp > now(1)", 1, 13, "now() takes no arguments"},
	{"response.status < r\"5\"", 1, 17, "a regex can only be compared with == or !="},
	{"outgoing > true", 1, 10, "\">\" does not apply to bools"},
	{"request.method == 5", 1, 19, "type mismatch: request.method is a string, compared with an int"},
	{"response.status == 1 == 2", 1, 22, "comparisons do not chain: use \"and\" between them"},
	{"request.questions[*] == \"x\"", 1, 1, "request.questions[*] is not a complete field: use one of request.questions[i].name, request.questions[i].type, request.questions[i].class"},
	{"request.questions[\"a\"].name == \"x\"", 1, 19, "request.questions is a list: index it with an integer constant or [*]"},
	{"request.headers[1] == \"x\"", 1, 17, "request.headers is a map: index it with a string constant or [*]"},
	{"src.port.foo == 1", 1, 1, "unknown field \"src.port.foo\" (did you mean \"src.port\"?)"},
	{"response.body.json(1).a == 1", 1, 15, ".json() takes no arguments"},
	{"request.path.json().a == 1", 1, 14, ".json() applies to bodies (request.body, response.body), and request.path is a string"},
	{"99999999999999999999 == response.status", 1, 1, "integer 99999999999999999999 is out of range"},
	{"elapsedTime > 1.5.3", 1, 19, "expected a field name after \".\", found integer 3"},
	{"response.status == -\"a\"", 1, 20, "unary \"-\" needs a number, and \"a\" is a string"},
	{"request.path + 1 == 2", 1, 1, "\"+\" needs numbers, and this is a string"},
	{"src.ip == dst.port", 1, 11, "type mismatch: src.ip is an ip, compared with a port"},
	{"#", 1, 1, "unexpected character '#'"},
	{"http and (dns or )", 1, 18, "unbalanced \")\""},
	{"request.path.startsWith(\"a\", \"b\")", 1, 14, ".startsWith() takes one argument, got 2"},
	{"request.path.contains(request.method)", 1, 23, ".contains() takes a string constant, got a string"},
	{"response.answers[*].ip == request.path", 1, 24, "a wildcard can only be compared with a constant"},
	{"tcp.port == 80", 1, 1, "unknown field \"tcp.port\""},
	{"htp", 1, 1, "unknown field or protocol \"htp\" (did you mean \"http\"?)"},
	{"response.body.json().a.json() == 1", 1, 24, ".json() applies once, to a body"},
	{"request.path == 'abc\\q'", 1, 21, "unknown escape \\q in string"},
	{"not", 1, 4, "unexpected end of query: an operand is missing"},
	{"request.headers[\"a\"][\"b\"] == \"x\"", 1, 21, "request.headers[\"a\"] is not a list or a map"},
	{"src.ip.startsWith(1)", 1, 19, ".startsWith() takes a string constant, got an int"},
	{"cel: http && nosuch == 1", 1, 14, "cel: undeclared reference to 'nosuch' (in container '')"},
	{"timestamp > datetime(1)", 1, 22, "datetime() takes a string constant, e.g. datetime(\"1/2/2006, 3:04:05 PM\")"},
	{"http and\n  response.stauts == 500", 2, 3, "unknown field \"response.stauts\" (did you mean \"response.status\"?)"},
	{"request.path == nil == true", 1, 21, "comparisons do not chain: use \"and\" between them"},
	{"dst.port == 1e400", 1, 13, "number 1e400 is out of range"},
	{"response.status == r\"[z-a]\"", 1, 20, "bad regex: invalid character class range: `z-a`"},
	{"src.ip == r\"x\" and src.ip < r\"y\"", 1, 27, "a regex can only be compared with == or !="},
	{"1 + \"a\" == 2", 1, 5, "\"+\" needs numbers, and this is a string"},
	{"response.body == 5", 1, 18, "type mismatch: response.body is a bytes, compared with an int"},
	{"request.headers[\"a\"].json().x == 1", 1, 22, ".json() applies to bodies (request.body, response.body), and request.headers[\"a\"] is a string"},
	{"now() == \"x\"", 1, 10, "type mismatch: now() is a number (time), and \"x\" is not a number"},
	{"days(1, 2) > elapsedTime", 1, 1, "days(n) takes one number"},
	{"http and request.method == \"GET\" or", 1, 36, "unexpected end of query: an operand is missing"},
	{"response.answers[*].ttl.startsWith(\"3\")", 1, 25, ".startsWith() applies to text, and response.answers[*].ttl is an int"},
	{"redact(\"a\") or http", 1, 1, "redact() is a directive: use it only as a top-level \"and\" term (e.g. http and redact(…))"},
	{"http and response.status == 500 and limit(-3)", 1, 43, "limit(n) needs a positive integer constant"},
}

func TestInvalidQueries(t *testing.T) {
	if len(invalidTable) < 50 {
		t.Fatalf("%d invalid queries; the issue asks for at least 50", len(invalidTable))
	}
	for _, tc := range invalidTable {
		_, err := Compile(tc.q, WithMacros(testMacros))
		var ke *Error
		if !errors.As(err, &ke) {
			t.Errorf("%q: want an *Error, got %v", tc.q, err)
			continue
		}
		if ke.Line != tc.line || ke.Col != tc.col || !strings.Contains(ke.Msg, tc.msg) {
			t.Errorf("%q:\n  got  %d:%d: %s\n  want %d:%d: %s", tc.q, ke.Line, ke.Col, ke.Msg, tc.line, tc.col, tc.msg)
		}
		if !strings.HasPrefix(ke.Error(), fmt.Sprintf("%d:%d: ", tc.line, tc.col)) {
			t.Errorf("%q: Error() = %q", tc.q, ke.Error())
		}
		// The caret sits under the reported column of the reported line.
		lines := strings.Split(ke.Caret(), "\n")
		if len(lines) != 2 || strings.Index(lines[1], "^") != tc.col+1 {
			t.Errorf("%q: caret form\n%s", tc.q, ke.Caret())
		}
	}
}

func TestErrorCaretExample(t *testing.T) {
	_, err := Compile("http and response.stauts == 500")
	want := "1:10: unknown field \"response.stauts\" (did you mean \"response.status\"?)\n" +
		"  http and response.stauts == 500\n" +
		"           ^"
	if got := err.(*Error).Detailed(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMacroErrors(t *testing.T) {
	for _, tc := range []struct {
		macros map[string]string
		q, msg string
	}{
		{map[string]string{"a": "b", "b": "a"}, "a", `macro "a" refers to itself`},
		{map[string]string{"loop": "http and loop"}, "loop", "refers to itself"},
		{map[string]string{"bad": "response.stauts == 1"}, "http and bad", `1:10: in macro "bad": unknown field`},
		{map[string]string{"http": "tcp"}, "http", "already a keyword, protocol or field"},
		{map[string]string{"x y": "tcp"}, "tcp", "must be an identifier"},
		{map[string]string{"broken": "(tcp"}, "tcp", `macro "broken": 1:1: unbalanced`},
	} {
		_, err := Compile(tc.q, WithMacros(tc.macros))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v %q: got %v, want %q", tc.macros, tc.q, err, tc.msg)
		}
	}
	if err := ValidateMacros(map[string]string{"a": "b", "b": "a"}); err == nil {
		t.Error("ValidateMacros accepted a cycle")
	}
	if err := ValidateMacros(testMacros); err != nil {
		t.Errorf("ValidateMacros(testMacros): %v", err)
	}
}

func TestDeepNesting(t *testing.T) {
	q := strings.Repeat("(", 500) + "http" + strings.Repeat(")", 500)
	_, err := Compile(q)
	if err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Fatalf("got %v", err)
	}
	q = strings.Repeat("not ", 500) + "http"
	if _, err := Compile(q); err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Fatalf("got %v", err)
	}
	// Long flat chains are fine: they do not nest.
	q = "http" + strings.Repeat(" or http", 2000)
	if _, err := Compile(q); err != nil {
		t.Fatalf("long chain: %v", err)
	}
	if _, err := Compile(strings.Repeat(" ", maxQueryLen+1)); err == nil {
		t.Fatal("overlong query accepted")
	}
}

func TestCELNamesInKFL(t *testing.T) {
	_, err := Compile(`http and status_code == 500`)
	if err == nil || !strings.Contains(err.Error(), "in KFL write response.status") {
		t.Fatalf("got %v", err)
	}
}
