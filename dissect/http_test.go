package dissect_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// httpTraffic drives curl and nc against the test server in B: keep-alive,
// chunked, gzip, POST, HEAD, 2xx/3xx/4xx/5xx, close-delimited bodies,
// pipelining, IPv6.
func httpTraffic(t *testing.T, p *netnstest.Pair) {
	netnstest.RequireTool(t, "curl", "python3", "nc")
	netnstest.Start(t, p.B, "python3", "testdata/httpserver.py", "8080")
	netnstest.WaitListening(t, p.B, "tcp", 8080)
	base := "http://" + p.IPB + ":8080"
	var urls []string
	for _, c := range []int{200, 201, 204, 301, 302, 304, 400, 404, 500, 503} {
		urls = append(urls, fmt.Sprintf("%s/status/%d?q=%d&x=y", base, c, c))
	}
	// One curl: one keep-alive connection for all URLs.
	netnstest.Exec(t, p.A, "curl", append([]string{"-s", "-o", "/dev/null", "-b", "sid=abc; theme=dark"}, urls...)...)
	netnstest.Exec(t, p.A, "curl", "-s", "-o", "/dev/null", "--compressed", base+"/gzip", base+"/chunked", base+"/status/500")
	netnstest.Exec(t, p.A, "curl", "-s", "-o", "/dev/null", "-H", "Expect:", "-d", "name=kflcap&v="+strings.Repeat("x", 3000), base+"/echo")
	netnstest.Exec(t, p.A, "curl", "-s", "-o", "/dev/null", "-I", base+"/status/200")
	netnstest.Exec(t, p.A, "curl", "-s", "-o", "/dev/null", base+"/close")
	netnstest.Exec(t, p.A, "curl", "-s", "-o", "/dev/null", "http://["+p.IP6B+"]:8080/status/502")
	// Pipelining: three requests in one write.
	netnstest.Exec(t, p.A, "sh", "-c", `printf 'GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/500 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /status/404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | nc -q 3 `+p.IPB+` 8080 >/dev/null`)
}

func TestHTTPAgainstTshark(t *testing.T) {
	p := netnstest.NewPair(t)
	path := capture(t, p, "http", func() { httpTraffic(t, p) })
	entries, st := dissectFile(t, path, dissect.Config{})
	got, want := httpTuples(entries), tsharkHTTPTuples(t, path)
	if len(want) < 15 {
		t.Fatalf("tshark saw only %d HTTP exchanges; the traffic did not run: %q", len(want), want)
	}
	diffSets(t, "HTTP (stream, method, uri, status)", got, want)
	t.Logf("%d HTTP exchanges equal to tshark's; stats %+v", len(got), st)
	checkHTTPDetails(t, entries)
}

// checkHTTPDetails checks fields tshark's tuple does not cover.
func checkHTTPDetails(t *testing.T, entries []*dissect.Entry) {
	seen := map[string]bool{}
	for _, e := range entries {
		h := e.HTTP
		if h == nil {
			continue
		}
		switch h.Request.URL {
		case "/gzip":
			seen["gzip"] = true
			if !strings.HasPrefix(string(h.Response.Body), "compressed body") {
				t.Errorf("gzip body preview = %q", h.Response.Body)
			}
		case "/chunked":
			seen["chunked"] = true
			if h.Response.BodySize != int64(len("hello chunked ")+50*len("world\n")) {
				t.Errorf("chunked body size = %d", h.Response.BodySize)
			}
		case "/echo":
			seen["post"] = true
			if h.Request.Method != "POST" || h.Request.BodySize != 3014 || h.Response.Status != 201 || h.Response.BodySize != 3014 {
				t.Errorf("POST: %s size %d status %d resp size %d", h.Request.Method, h.Request.BodySize, h.Response.Status, h.Response.BodySize)
			}
		case "/status/404?q=404&x=y":
			seen["query"] = true
			if h.Request.Path != "/status/404" || len(h.Request.QueryString) != 2 || h.Request.QueryString[1].Value != "y" {
				t.Errorf("query: path %q qs %v", h.Request.Path, h.Request.QueryString)
			}
			if len(h.Request.Cookies) != 2 || h.Request.Cookies[1] != (dissect.KeyValue{Name: "theme", Value: "dark"}) {
				t.Errorf("cookies %v", h.Request.Cookies)
			}
			if h.Request.Headers.Get("user-agent") == "" || h.Response.Headers.Get("CONTENT-LENGTH") == "" {
				t.Errorf("headers not found case-insensitively: %v", h.Request.Headers)
			}
			if e.Src.Port == 8080 || e.Dst.Port != 8080 || e.Src.IP.String() != "10.99.0.1" {
				t.Errorf("src/dst: %v -> %v", e.Src, e.Dst)
			}
		case "/close":
			seen["close"] = true
			if h.Response.BodySize != 240 {
				t.Errorf("close-delimited body size = %d", h.Response.BodySize)
			}
		}
	}
	for _, k := range []string{"gzip", "chunked", "post", "query", "close"} {
		if !seen[k] {
			t.Errorf("no %s exchange", k)
		}
	}
}
