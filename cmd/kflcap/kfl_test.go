package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestKFLCheck(t *testing.T) {
	code, out, errs := runCmd("kfl", "check", "http   and response.status==500")
	if code != 0 || out != "http and response.status == 500\n" || errs != "" {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestKFLCheckError(t *testing.T) {
	code, out, errs := runCmd("kfl", "check", "http and response.stauts == 500")
	want := "kflcap: kfl: 1:10: unknown field \"response.stauts\" (did you mean \"response.status\"?)\n" +
		"  http and response.stauts == 500\n" +
		"           ^\n"
	if code != 2 || out != "" || errs != want {
		t.Fatalf("code %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out, errs, want)
	}
}

func TestKFLErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"kfl", "check", `response.status == "abc"`},
		{"kfl", "check", "(http"},
		{"kfl", "check", `request.path == r"("`},
		{"kfl", "explain", "foo()"},
		{"kfl", "check"},
		{"kfl", "frob", "http"},
		{"kfl", "check", "--macro", "bad", "http"},
	} {
		if code, _, errs := runCmd(args...); code != 2 || !strings.HasPrefix(errs, "kflcap: kfl: ") {
			t.Errorf("%q: code %d, stderr %q", args, code, errs)
		}
	}
}

func TestKFLExplain(t *testing.T) {
	code, out, errs := runCmd("kfl", "explain", "http and response.status == 500 or udp and dst.port == 53")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errs)
	}
	for _, want := range []string{
		"dialect:    kfl",
		"grouping:   (http and response.status == 500) or (udp and dst.port == 53)",
		"Kubeshark nests and/or to the right",
		"http and (response.status == 500 or (udp and dst.port == 53))",
		"response.status  int",
		"dst.port         port",
		"pushdown:   protocol in {tcp, udp}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
}

func TestKFLExplainMacroAndCEL(t *testing.T) {
	code, out, errs := runCmd("kfl", "explain", "--macro", "https=tls and (http or http2)", "https and dst.port == 443")
	if code != 0 || !strings.Contains(out, "src or dst port in {443}") || !strings.Contains(out, "protocol in {tcp}") {
		t.Fatalf("code %d, out:\n%s\nerr: %s", code, out, errs)
	}
	code, out, errs = runCmd("kfl", "explain", "cel: http && status_code >= 500")
	if code != 0 || !strings.Contains(out, "dialect:    cel") {
		t.Fatalf("code %d, out:\n%s\nerr: %s", code, out, errs)
	}
}

func TestKFLHelp(t *testing.T) {
	code, out, _ := runCmd("kfl", "--help")
	if code != 0 || !strings.Contains(out, "kflcap kfl check") {
		t.Fatalf("code %d, out %q", code, out)
	}
}
