package dissect

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func TestHeadersCaseInsensitive(t *testing.T) {
	h := Headers{{"Content-Type", "text/plain"}, {"set-cookie", "a=1"}, {"Set-Cookie", "b=2"}}
	if got := h.Get("content-type"); got != "text/plain" {
		t.Errorf("Get(content-type) = %q", got)
	}
	if _, ok := h.Lookup("X-Missing"); ok {
		t.Error("Lookup found a missing header")
	}
	if got := h.Values("SET-COOKIE"); len(got) != 2 || got[1] != "b=2" {
		t.Errorf("Values = %q", got)
	}
}

func TestEntryJSONShape(t *testing.T) {
	e := &Entry{
		Protocol: Protocol{Name: "http", Abbr: "HTTP", Version: "1.1", Layer4: "tcp"},
		Src:      Endpoint{IP: netip.MustParseAddr("10.99.0.1"), Port: 40000},
		Dst:      Endpoint{IP: netip.MustParseAddr("10.99.0.2"), Port: 80},
		Stream:   "000000000001_tcp.pcap",
		HTTP: &HTTP{
			Request:     HTTPRequest{Method: "GET", Path: "/x", URL: "/x?a=1", Version: "1.1", Headers: Headers{{"Host", "h"}}, QueryString: []KeyValue{{"a", "1"}}},
			Response:    HTTPResponse{Status: 500, StatusText: "Internal Server Error", Version: "1.1"},
			HasResponse: true,
		},
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	req := m["request"].(map[string]any)
	resp := m["response"].(map[string]any)
	if req["method"] != "GET" || req["path"] != "/x" || req["headers"].(map[string]any)["Host"] != "h" ||
		req["queryString"].(map[string]any)["a"] != "1" {
		t.Errorf("request = %v", req)
	}
	if resp["status"] != float64(500) || m["src"].(map[string]any)["ip"] != "10.99.0.1" || m["stream"] != "000000000001_tcp.pcap" {
		t.Errorf("json = %s", b)
	}
	if strings.Contains(string(b), `"HTTP"`) && !strings.Contains(string(b), `"abbr":"HTTP"`) {
		t.Errorf("internal pointers leaked into JSON: %s", b)
	}
}
