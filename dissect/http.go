package dissect

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HTTP/1.x parsing limits.
const (
	maxHeaderBytes   = 64 << 10 // a header block larger than this is an error
	maxSyncBytes     = 16 << 10 // bytes kept while searching for a message start
	maxPendingHTTP   = 256      // unpaired requests or responses per stream
	maxGzipPreviewIn = 64 << 10 // compressed bytes kept to decode a gzip preview
)

var httpMethods = [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

// looksHTTP reports whether b starts, or contains after a line end, an
// HTTP/1.x request or status line.
func looksHTTP(b []byte) bool {
	return httpStart(b, false) >= 0 || httpStart(b, true) >= 0
}

// httpStart returns the offset of the first request line (resp false) or
// status line (resp true) that starts at 0 or right after a '\n', or -1.
func httpStart(b []byte, resp bool) int {
	for off := 0; off < len(b); {
		if isStartLine(b[off:], resp) {
			return off
		}
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return -1
}

// isStartLine checks the beginning of a request or status line. It needs
// only the first few bytes, so a line split across segments is still found
// once the first ones are here.
func isStartLine(b []byte, resp bool) bool {
	if resp {
		return len(b) >= 9 && string(b[:7]) == "HTTP/1." && (b[7] == '0' || b[7] == '1') && b[8] == ' '
	}
	for _, m := range httpMethods {
		if len(b) > len(m) && string(b[:len(m)]) == m && b[len(m)] == ' ' {
			return true
		}
	}
	return false
}

// httpApp pairs the requests and responses of one connection.
type httpApp struct {
	clientDir int // -1 until known
	half      [2]httpHalf
	reqs      []*httpMsg
	resps     []*httpMsg
	// lostResps counts gaps that swallowed (at least) one response start:
	// the next response does not answer the oldest pending request.
	lostResps int
	// upgraded: a 101 Switching Protocols or a successful CONNECT ended
	// HTTP on this connection (WebSocket, tunnel); the rest is not parsed,
	// unless the upgrade was to HTTP/2 (h2c): next parses it then.
	upgraded bool
	next     app
}

func newHTTPApp() *httpApp {
	a := &httpApp{clientDir: -1}
	a.half[0].sync, a.half[1].sync = true, true
	return a
}

// httpMsg is a message being parsed or waiting for its pair.
type httpMsg struct {
	ts time.Time // first byte
	// A request builds the exchange's HTTP value itself, so that pairing
	// only copies the response into it.
	req      *HTTP
	resp     *HTTPResponse
	isResp   bool
	gzip     bool
	rawBody  []byte // body bytes kept for the preview (compressed if gzip)
	clen     int64  // Content-Length, -1 when absent
	complete bool
	// TCP positions (see stream.segSeq): where the message started, the
	// peer's sequence acknowledged then, and where it ended.
	seq, ack, end uint32
}

func newHTTPMsg(ts time.Time, resp bool, s *stream) *httpMsg {
	m := &httpMsg{ts: ts, isResp: resp, seq: s.segSeq, ack: s.segAck}
	if resp {
		m.resp = new(HTTPResponse)
	} else {
		m.req = new(HTTP)
	}
	return m
}

// httpHalf is the parser of one direction.
type httpHalf struct {
	sync   bool // searching for a message start (start of capture, after a gap or an error)
	buf    []byte
	state  int
	remain int64 // body bytes left (stBody), chunk bytes left (stChunk)
	line   []byte
	msg    *httpMsg
}

const (
	stHeaders = iota
	stBody
	stBodyToClose
	stChunkSize
	stChunkData
	stChunkDataCRLF
	stTrailers
)

func (a *httpApp) data(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	if a.upgraded {
		if a.next != nil {
			a.next.data(sh, s, dir, b, ts)
		}
		return
	}
	h := &a.half[dir]
	for len(b) > 0 && !a.upgraded {
		if h.sync || h.state == stHeaders && h.msg == nil {
			b = a.findStart(s, dir, b, ts)
			continue
		}
		switch h.state {
		case stHeaders:
			if len(h.buf) == 0 {
				// Fast path: the whole header block is in this segment.
				if end := headerEnd(b); end >= 0 {
					if !a.parseHeaders(sh, dir, b[:end]) {
						a.fail(sh, dir)
						b = b[end:]
						continue
					}
					b = b[end:]
					if h.state == stHeaders {
						a.done(sh, s, dir)
					}
					continue
				}
			}
			// Search only the new bytes (and 3 before them, for a blank
			// line split across segments): headers sent a byte per
			// segment must not cost quadratic time.
			from := max(0, len(h.buf)-3)
			h.buf = append(h.buf, b...)
			b = nil
			end := headerEnd(h.buf[from:])
			if end >= 0 {
				end += from
			}
			if end < 0 {
				if len(h.buf) > maxHeaderBytes {
					a.fail(sh, dir)
				}
				continue
			}
			rest := h.buf[end:]
			if !a.parseHeaders(sh, dir, h.buf[:end]) {
				a.fail(sh, dir)
				b = rest
				continue
			}
			b = rest
			h.buf = h.buf[:0]
			if h.state == stHeaders { // no body
				a.done(sh, s, dir)
			}
		case stBody:
			n := min(int64(len(b)), h.remain)
			h.msg.body(b[:n], sh.d.cfg.BodyPreviewBytes)
			b = b[n:]
			h.remain -= n
			if h.remain == 0 {
				a.done(sh, s, dir)
			}
		case stBodyToClose:
			h.msg.body(b, sh.d.cfg.BodyPreviewBytes)
			b = nil
		case stChunkSize, stTrailers:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				h.line = append(h.line, b...)
				b = nil
				if len(h.line) > 4096 {
					a.fail(sh, dir)
				}
				continue
			}
			line := append(h.line, b[:i]...)
			b = b[i+1:]
			h.line = line[:0]
			line = bytes.TrimRight(line, "\r")
			if h.state == stTrailers {
				if len(line) == 0 {
					a.done(sh, s, dir)
				}
				continue
			}
			if j := bytes.IndexByte(line, ';'); j >= 0 {
				line = line[:j]
			}
			n, err := strconv.ParseInt(strings.TrimSpace(string(line)), 16, 64)
			if err != nil || n < 0 {
				a.fail(sh, dir)
				continue
			}
			if n == 0 {
				h.state = stTrailers
			} else {
				h.state, h.remain = stChunkData, n
			}
		case stChunkData:
			n := min(int64(len(b)), h.remain)
			h.msg.body(b[:n], sh.d.cfg.BodyPreviewBytes)
			b = b[n:]
			h.remain -= n
			if h.remain == 0 {
				h.state, h.remain = stChunkDataCRLF, 2
			}
		case stChunkDataCRLF:
			// Tolerate a bare LF: skip up to two bytes of line end.
			for h.remain > 0 && len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
				last := b[0] == '\n'
				b = b[1:]
				h.remain--
				if last {
					h.remain = 0
				}
			}
			if h.remain > 0 && len(b) > 0 {
				a.fail(sh, dir)
				continue
			}
			if h.remain == 0 {
				h.state = stChunkSize
			}
		}
	}
	if a.upgraded && a.next != nil && len(b) > 0 {
		a.next.data(sh, s, dir, b, ts)
	}
}

// findStart looks for the next message start in direction dir. Until the
// roles are known either kind of start line is accepted; the first one
// found fixes which side is the client.
func (a *httpApp) findStart(s *stream, dir int, b []byte, ts time.Time) []byte {
	h := &a.half[dir]
	// Fast path, the usual case on a keep-alive connection: the segment
	// starts with the next message. No copy.
	if len(h.buf) == 0 && a.clientDir >= 0 {
		resp := dir != a.clientDir
		if isStartLine(b, resp) {
			h.sync, h.state = false, stHeaders
			h.msg = newHTTPMsg(ts, resp, s)
			return b
		}
	}
	// Search over what was kept from earlier segments plus b, so that a
	// start line split across segments is found.
	h.buf = append(h.buf, b...)
	resp := a.clientDir >= 0 && dir != a.clientDir
	off := -1
	if a.clientDir >= 0 {
		off = httpStart(h.buf, resp)
		if off >= 0 && len(h.buf)-off < 9 && !isStartLine(h.buf[off:], resp) {
			off = -1
		}
	} else {
		offReq, offResp := httpStart(h.buf, false), httpStart(h.buf, true)
		switch {
		case offReq >= 0 && (offResp < 0 || offReq <= offResp):
			off, resp = offReq, false
		case offResp >= 0:
			off, resp = offResp, true
		}
		if off >= 0 {
			if resp {
				a.clientDir = 1 - dir
			} else {
				a.clientDir = dir
			}
			s.clientIsB = a.clientDir == 1
		}
	}
	if off < 0 {
		// Keep a short tail: a start line may begin in it.
		if len(h.buf) > 16 {
			k := len(h.buf) - 16
			if i := bytes.LastIndexByte(h.buf[:len(h.buf)], '\n'); i >= 0 && i+1 > k {
				k = i + 1
			}
			h.buf = append(h.buf[:0], h.buf[k:]...)
		}
		// Only a prefix of a start line may wait for more bytes.
		if len(h.buf) > 0 && !startPrefix(h.buf) {
			h.buf = h.buf[:0]
		}
		return nil
	}
	h.sync = false
	h.state = stHeaders
	h.msg = newHTTPMsg(ts, resp, s)
	rest := append([]byte(nil), h.buf[off:]...)
	h.buf = h.buf[:0]
	return rest
}

// startPrefix reports whether b could be the beginning of a start line or
// ends with a line end after which one may come.
func startPrefix(b []byte) bool {
	if b[len(b)-1] == '\n' {
		return true
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	for _, m := range append(httpMethods[:], "HTTP/1.") {
		n := min(len(b), len(m))
		if string(b[:n]) == m[:n] {
			return true
		}
	}
	return false
}

// headerEnd returns the offset just past the blank line ending the header
// block, or -1.
func headerEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		if j := bytes.Index(b, []byte("\n\n")); j >= 0 && j < i {
			return j + 2
		}
		return i + 4
	}
	if j := bytes.Index(b, []byte("\n\n")); j >= 0 {
		return j + 2
	}
	return -1
}

// fail abandons the message being parsed and resynchronises.
func (a *httpApp) fail(sh *shard, dir int) {
	sh.c.l7Errors.Add(1)
	h := &a.half[dir]
	h.sync, h.msg, h.state = true, nil, stHeaders
	h.buf, h.line = h.buf[:0], h.line[:0]
}

func (a *httpApp) gap(sh *shard, s *stream, dir int, n int) {
	if a.next != nil {
		a.next.gap(sh, s, dir, n)
		return
	}
	h := &a.half[dir]
	if !h.sync && h.msg != nil {
		switch h.state {
		case stBody:
			// Lost body bytes: the message is still complete.
			if int64(n) < h.remain {
				h.remain -= int64(n)
				h.msg.rawBody = nil
				return
			}
			if int64(n) == h.remain {
				h.remain = 0
				a.done(sh, s, dir)
				h.sync = true
				return
			}
		case stBodyToClose:
			h.msg.rawBody = nil
			return
		}
	}
	if a.clientDir >= 0 && dir != a.clientDir {
		a.lostResps++
	}
	h.sync, h.msg, h.state = true, nil, stHeaders
	h.buf, h.line = h.buf[:0], h.line[:0]
}

func (a *httpApp) end(sh *shard, s *stream, dir int, ts time.Time) {
	h := &a.half[dir]
	if h.sync || h.msg == nil {
		return
	}
	switch {
	case h.state == stBodyToClose:
		a.done(sh, s, dir)
	case h.msg.isResp && h.state != stHeaders && len(a.reqs) > 0 && a.reqs[0].req.Request.Method == "HEAD":
		// The response was parsed before its HEAD request (disorder) and
		// waited for a body that never comes.
		h.msg.resp.BodySize, h.msg.rawBody = 0, nil
		a.done(sh, s, dir)
	}
}

func (a *httpApp) close(sh *shard, s *stream) {
	for dir := range 2 {
		a.end(sh, s, dir, s.last)
	}
	for _, r := range a.reqs {
		a.emit(sh, s, r, nil)
	}
	sh.c.orphans.Add(uint64(len(a.resps)))
	a.reqs, a.resps = nil, nil
	if a.next != nil {
		a.next.close(sh, s)
	}
}

// parseHeaders parses a start line and header block into the half's
// message and chooses how the body is framed.
func (a *httpApp) parseHeaders(sh *shard, dir int, block []byte) bool {
	h := &a.half[dir]
	m := h.msg
	// One string for the block: every name and value below is a substring
	// of it, so a message costs one copy however many headers it has.
	text := strings.TrimRight(string(block), "\r\n")
	start, rest, _ := strings.Cut(text, "\n")
	start = strings.TrimRight(start, "\r")
	hdr := make(Headers, 0, strings.Count(rest, "\n")+1)
	for rest != "" {
		var l string
		l, rest, _ = strings.Cut(rest, "\n")
		l = strings.TrimRight(l, "\r")
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(hdr) > 0 { // obsolete line folding
			hdr[len(hdr)-1].Value += " " + strings.TrimSpace(l)
			continue
		}
		i := strings.IndexByte(l, ':')
		if i <= 0 {
			return false
		}
		hdr = append(hdr, KeyValue{Name: strings.TrimSpace(l[:i]), Value: strings.TrimSpace(l[i+1:])})
	}
	te := strings.TrimSpace(hdr.Get("Transfer-Encoding"))
	chunked := len(te) >= 7 && strings.EqualFold(te[len(te)-7:], "chunked")
	clen := int64(-1)
	if v, ok := hdr.Lookup("Content-Length"); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return false
		}
		clen = n
	}
	m.gzip = strings.EqualFold(strings.TrimSpace(hdr.Get("Content-Encoding")), "gzip")
	m.clen = clen
	if !m.isResp {
		f := strings.Fields(start)
		if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
			return false
		}
		r := &m.req.Request
		r.Method, r.URL, r.Version, r.Headers = f[0], f[1], strings.TrimPrefix(f[2], "HTTP/"), hdr
		r.Host = hdr.Get("Host")
		r.Path = r.URL
		if r.URL[0] == '/' && strings.IndexByte(r.URL, '%') < 0 && strings.IndexByte(r.URL, '#') < 0 {
			// Origin form without escapes, the common case: no URL parser.
			var q string
			r.Path, q, _ = strings.Cut(r.URL, "?")
			r.QueryString = parseQuery(q)
		} else if u, err := url.ParseRequestURI(r.URL); err == nil {
			r.Path = u.Path
			if u.Host != "" && r.Host == "" {
				r.Host = u.Host
			}
			r.QueryString = parseQuery(u.RawQuery)
		} else if i := strings.IndexByte(r.URL, '?'); i >= 0 {
			r.Path = r.URL[:i]
		}
		for _, c := range hdr.Values("Cookie") {
			for _, part := range strings.Split(c, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
				if ok {
					r.Cookies = append(r.Cookies, KeyValue{k, v})
				}
			}
		}
		switch {
		case chunked:
			h.state = stChunkSize
		case clen > 0:
			h.state, h.remain = stBody, clen
		default:
			h.state = stHeaders
		}
		return true
	}
	// Status line: "HTTP/1.1 200 OK" (the reason phrase may be empty).
	ver, rest, ok := strings.Cut(start, " ")
	if !ok || !strings.HasPrefix(ver, "HTTP/1.") {
		return false
	}
	code, text2, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
	st, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || st < 100 {
		return false
	}
	r := m.resp
	r.Version, r.Status, r.StatusText, r.Headers = strings.TrimPrefix(ver, "HTTP/"), st, text2, hdr
	head := false
	if len(a.reqs) > 0 && a.reqs[0].req.Request.Method == "HEAD" {
		head = true
	}
	switch {
	case head || st < 200 || st == 204 || st == 304:
		h.state = stHeaders
	case chunked:
		h.state = stChunkSize
	case clen >= 0:
		if clen == 0 {
			h.state = stHeaders
		} else {
			h.state, h.remain = stBody, clen
		}
	default:
		h.state = stBodyToClose
	}
	return true
}

// parseQuery decodes a query string into pairs, in order.
func parseQuery(q string) []KeyValue {
	if q == "" {
		return nil
	}
	out := make([]KeyValue, 0, strings.Count(q, "&")+1)
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(kv, "%+") {
			k, _ = url.QueryUnescape(k)
			v, _ = url.QueryUnescape(v)
		}
		out = append(out, KeyValue{k, v})
	}
	return out
}

// body accounts body bytes and keeps a bounded preview.
func (m *httpMsg) body(b []byte, preview int) {
	if m.isResp {
		m.resp.BodySize += int64(len(b))
	} else {
		m.req.Request.BodySize += int64(len(b))
	}
	limit := preview
	if m.gzip {
		limit = maxGzipPreviewIn
	}
	if preview > 0 && len(m.rawBody) < limit {
		if m.rawBody == nil && m.clen > 0 {
			// One allocation of the right size instead of append's doublings.
			m.rawBody = make([]byte, 0, min(int64(limit), m.clen))
		}
		m.rawBody = append(m.rawBody, b[:min(len(b), limit-len(m.rawBody))]...)
	}
}

// done completes the half's current message and pairs it.
func (a *httpApp) done(sh *shard, s *stream, dir int) {
	h := &a.half[dir]
	m := h.msg
	h.msg, h.state, h.remain = nil, stHeaders, 0
	if m == nil {
		return
	}
	m.complete = true
	m.end = s.tcp[dir].next
	preview := decodePreview(m.rawBody, m.gzip, sh.d.cfg.BodyPreviewBytes)
	m.rawBody = nil
	if m.isResp {
		m.resp.Body = preview
		if m.resp.Status < 200 && m.resp.Status != 101 {
			return // interim response (100 Continue): the final one follows
		}
		a.pairResponse(sh, s, m)
		return
	}
	m.req.Request.Body = preview
	// A waiting response that cannot answer this request answered one the
	// capture lost.
	for len(a.resps) > 0 && !answers(a.resps[0], m) {
		a.resps = a.resps[1:]
		sh.c.orphans.Add(1)
	}
	if len(a.resps) > 0 {
		resp := a.resps[0]
		a.resps = a.resps[1:]
		a.emit(sh, s, m, resp)
		return
	}
	if len(a.reqs) >= maxPendingHTTP {
		a.emit(sh, s, a.reqs[0], nil)
		a.reqs = a.reqs[1:]
	}
	a.reqs = append(a.reqs, m)
}

// answers reports whether resp can answer req: the server had received the
// whole request when it started the response.
func answers(resp, req *httpMsg) bool { return !seqLess(resp.ack, req.end) }

// pairResponse matches a response with the oldest request it can answer.
// Loss would otherwise shift every later pair by one:
//   - a response that answers no pending request answers a request the
//     capture lost, and is dropped (counted as an orphan);
//   - a pending request followed by one sent after the client had received
//     more of the server's data (its ack moved) was answered by a response
//     the capture lost, and is emitted without a response.
func (a *httpApp) pairResponse(sh *shard, s *stream, m *httpMsg) {
	if len(a.reqs) == 0 {
		// The request may still be in the reassembler (disorder).
		if len(a.resps) < maxPendingHTTP {
			a.resps = append(a.resps, m)
		} else {
			sh.c.orphans.Add(1)
		}
		return
	}
	if !answers(m, a.reqs[0]) {
		sh.c.orphans.Add(1)
		return
	}
	for len(a.reqs) >= 2 && answers(m, a.reqs[1]) &&
		(a.lostResps > 0 || seqLess(a.reqs[0].ack, a.reqs[1].ack) && !seqLess(m.seq, a.reqs[1].ack)) {
		a.emit(sh, s, a.reqs[0], nil)
		a.reqs = a.reqs[1:]
		a.lostResps = max(a.lostResps-1, 0)
	}
	a.lostResps = 0
	req := a.reqs[0]
	a.reqs = a.reqs[1:]
	if m.resp.Status == 101 || req.req.Request.Method == "CONNECT" && m.resp.Status/100 == 2 {
		a.upgraded = true
		if m.resp.Status == 101 && strings.EqualFold(strings.TrimSpace(m.resp.Headers.Get("Upgrade")), "h2c") {
			a.next = newH2Upgraded(s, a.clientDir, &req.req.Request, req.ts)
		}
	}
	a.emit(sh, s, req, m)
}

func decodePreview(raw []byte, gz bool, limit int) []byte {
	if len(raw) == 0 || limit <= 0 {
		return nil
	}
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil
		}
		out, _ := io.ReadAll(io.LimitReader(zr, int64(limit)))
		return out
	}
	return raw[:min(len(raw), limit)]
}

func (a *httpApp) emit(sh *shard, s *stream, req, resp *httpMsg) {
	cd := a.clientDir
	if cd < 0 {
		cd = s.clientDir()
	}
	e := sh.newEntry(s, cd, req.ts)
	e.Protocol = Protocol{Name: "http", Abbr: "HTTP", Version: req.req.Request.Version, Layer4: "tcp"}
	x := req.req
	if resp != nil {
		x.Response, x.HasResponse = *resp.resp, true
		e.ElapsedTime = resp.ts.Sub(req.ts).Milliseconds()
	}
	e.HTTP = x
	sh.emit(s, e)
}
