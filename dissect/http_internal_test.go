package dissect

import "testing"

func conversationEntries(t *testing.T, port uint16, client, server string, seg int) []*Entry {
	t.Helper()
	var es []*Entry
	d := New(Config{OnEntry: func(e *Entry, _ StreamRef) { es = append(es, e) }})
	feedConversation(d, port, []byte(client), []byte(server), seg)
	d.Close()
	return es
}

func exchangeEntries(t *testing.T, port uint16, reqs, resps []string, seg int) []*Entry {
	t.Helper()
	var es []*Entry
	d := New(Config{OnEntry: func(e *Entry, _ StreamRef) { es = append(es, e) }})
	feedTCP(d, port, nil, nil, reqs, resps, seg)
	d.Close()
	return es
}

// TestHTTPUpgradeStopsParsing: after 101 Switching Protocols the bytes are
// WebSocket frames, even when they happen to look like HTTP.
func TestHTTPUpgradeStopsParsing(t *testing.T) {
	es := conversationEntries(t, 80,
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05GET / HTTP/1.1\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1460)
	if len(es) != 1 || es[0].HTTP == nil || es[0].HTTP.Response.Status != 101 || es[0].HTTP.Request.Path != "/ws" {
		t.Fatalf("entries: %d %+v", len(es), es)
	}
}

// TestHTTPFraming: chunked with extensions and trailers, 100 Continue,
// HEAD, 304 and a close-delimited body, split into 5-byte segments.
func TestHTTPFraming(t *testing.T) {
	reqs := []string{"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
		"GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /n HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\n\r\n",
		"GET /end HTTP/1.0\r\n\r\n"}
	resps := []string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil the end"}
	for _, seg := range []int{5, 1460} {
		es := exchangeEntries(t, 8080, reqs, resps, seg)
		want := []struct {
			path   string
			status int
			size   int64
		}{{"/up", 201, 2}, {"/c", 200, 7}, {"/h", 200, 0}, {"/n", 304, 0}, {"/end", 200, 13}}
		if len(es) != len(want) {
			t.Fatalf("seg %d: %d entries", seg, len(es))
		}
		for i, w := range want {
			h := es[i].HTTP
			if h.Request.Path != w.path || h.Response.Status != w.status || h.Response.BodySize != w.size {
				t.Errorf("seg %d entry %d: %s %d size %d, want %+v", seg, i, h.Request.Path, h.Response.Status, h.Response.BodySize, w)
			}
		}
		if es[0].HTTP.Request.BodySize != 5 || string(es[0].HTTP.Request.Body) != "hello" || string(es[1].HTTP.Response.Body) != "abcdefg" {
			t.Errorf("seg %d: bodies %q %q", seg, es[0].HTTP.Request.Body, es[1].HTTP.Response.Body)
		}
	}
}
