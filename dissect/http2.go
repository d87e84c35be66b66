package dissect

import (
	"encoding/binary"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2/hpack"
)

// HTTP/2 parsing limits.
const (
	h2Preface       = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	maxH2Frame      = 1 << 20 // frames kept whole; larger ones are skipped (DATA counted)
	maxH2HeaderList = 256 << 10
	maxH2Streams    = 1024 // open streams per connection; beyond, the oldest is emitted
)

// HTTP/2 frame types (RFC 9113 §6).
const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2PushPromise  = 0x5
	h2GoAway       = 0x7
	h2Continuation = 0x9
)

const (
	h2FlagEndStream  = 0x1
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20
)

// looksH2 reports whether a client starts an HTTP/2 connection with the
// prior-knowledge preface.
func looksH2(b []byte) bool {
	n := min(len(b), len(h2Preface))
	return n >= 4 && string(b[:n]) == h2Preface[:n]
}

// looksH2Frames reports whether b starts with two plausible HTTP/2 frames
// (or one that fills b exactly): a capture that began mid-connection.
func looksH2Frames(b []byte) bool {
	frames := 0
	for len(b) >= 9 && frames < 2 {
		n := h2Len(b)
		typ, id := b[3], binary.BigEndian.Uint32(b[5:9])
		if typ > h2Continuation || id&(1<<31) != 0 || n > 1<<14 {
			return false
		}
		switch typ {
		case h2Data, h2Headers, h2RSTStream, h2Continuation, h2PushPromise:
			if id == 0 {
				return false
			}
		case h2Settings:
			if id != 0 || n%6 != 0 {
				return false
			}
		case h2GoAway:
			if id != 0 {
				return false
			}
		}
		if len(b) < 9+n {
			return frames > 0
		}
		b = b[9+n:]
		frames++
	}
	return frames == 2 || frames == 1 && len(b) == 0
}

// h2Len is the payload length in a frame header.
func h2Len(b []byte) int { return int(b[0])<<16 | int(b[1])<<8 | int(b[2]) }

// h2App pairs the streams of one HTTP/2 connection into entries, with one
// HPACK decoder per direction.
type h2App struct {
	clientDir int  // -1 until guessed
	dirKnown  bool // clientDir is known (preface, upgrade, or a request or response header block)
	half      [2]h2Half
	streams   map[uint32]*h2Stream
	order     []uint32 // stream ids in order of appearance, for close
}

// h2Half parses the frames of one direction.
type h2Half struct {
	preface bool   // the client preface is still expected
	buf     []byte // an incomplete frame
	skip    int    // bytes of an oversized frame still to skip
	skipID  uint32 // its stream, when it is DATA (counted as body)
	sync    bool   // frame boundaries lost (gap): wait for a plausible frame
	dec     *hpack.Decoder
	fields  []hpack.HeaderField
	// A header block continued in CONTINUATION frames.
	block      []byte
	blockID    uint32
	blockEnd   bool // END_STREAM was on the HEADERS frame
	blockPush  bool // the block belongs to a PUSH_PROMISE: decoded for HPACK state, then dropped
	blockStart time.Time
}

// h2Stream is one stream's request and response as they are seen.
type h2Stream struct {
	id         uint32
	ts, respTS time.Time
	req        HTTPRequest
	resp       HTTPResponse
	reqSeen    bool // request headers decoded
	respSeen   bool
	partial    bool // headers missed or not decodable
	reqEnd     bool
	respEnd    bool
	trailers   Headers
	grpc       [2]grpcFramer // request, response messages
	rst        bool
}

// grpcFramer counts gRPC length-prefixed messages in a DATA stream.
type grpcFramer struct {
	hdr    [5]byte
	have   int   // header bytes seen
	left   int64 // message bytes still to come
	msgs   int
	bytes  int64
	broken bool
}

func (g *grpcFramer) feed(b []byte) {
	for len(b) > 0 && !g.broken {
		if g.left > 0 {
			n := min(int64(len(b)), g.left)
			g.left -= n
			b = b[n:]
			continue
		}
		n := copy(g.hdr[g.have:], b)
		g.have += n
		b = b[n:]
		if g.have < 5 {
			return
		}
		if g.hdr[0] > 1 {
			g.broken = true // not a gRPC message prefix
			return
		}
		g.have = 0
		g.left = int64(binary.BigEndian.Uint32(g.hdr[1:5]))
		g.msgs++
		g.bytes += g.left
	}
}

func newH2App(s *stream, clientDir int, preface bool) *h2App {
	a := &h2App{clientDir: clientDir, streams: map[uint32]*h2Stream{}}
	for i := range a.half {
		a.half[i].dec = hpack.NewDecoder(4096, nil)
	}
	if clientDir >= 0 {
		a.dirKnown = true
		a.half[clientDir].preface = preface
		s.clientIsB = clientDir == 1
	} else {
		// Mid-connection: each direction starts at a plausible frame.
		a.half[0].sync, a.half[1].sync = true, true
	}
	return a
}

// newH2Upgraded continues a connection that switched from HTTP/1.1 with
// "Upgrade: h2c": the upgrade request is stream 1, answered in HTTP/2.
func newH2Upgraded(s *stream, clientDir int, req *HTTPRequest, ts time.Time) *h2App {
	a := newH2App(s, clientDir, true)
	st := &h2Stream{id: 1, ts: ts, req: *req, reqSeen: true, reqEnd: true}
	a.streams[1] = st
	a.order = append(a.order, 1)
	return a
}

func (a *h2App) data(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	if a.clientDir < 0 {
		// Mid-connection start: a guess until a header block with
		// :method or :status tells (see headerBlock).
		a.clientDir = dir
		s.clientIsB = dir == 1
	}
	h := &a.half[dir]
	if h.preface {
		n := min(len(b), len(h2Preface)-len(h.buf))
		h.buf = append(h.buf, b[:n]...)
		b = b[n:]
		if len(h.buf) < len(h2Preface) {
			return
		}
		h.buf, h.preface = h.buf[:0], false
	}
	if h.skip > 0 {
		n := min(len(b), h.skip)
		if st := a.streams[h.skipID]; st != nil && h.skipID != 0 {
			a.body(st, dir, b[:n])
		}
		h.skip -= n
		b = b[n:]
	}
	if h.sync {
		if len(b) == 0 || !looksH2Frames(b) {
			return
		}
		h.sync = false
	}
	if len(h.buf) > 0 {
		// Complete the frame held from earlier segments.
		if len(h.buf) < 9 {
			n := min(len(b), 9-len(h.buf))
			h.buf = append(h.buf, b[:n]...)
			b = b[n:]
			if len(h.buf) < 9 {
				return
			}
			if h2Len(h.buf) > maxH2Frame {
				a.oversized(h, h.buf)
				h.buf = h.buf[:0]
				a.data(sh, s, dir, b, ts)
				return
			}
		}
		need := 9 + h2Len(h.buf)
		n := min(len(b), need-len(h.buf))
		h.buf = append(h.buf, b[:n]...)
		b = b[n:]
		if len(h.buf) < need {
			return
		}
		a.frame(sh, s, dir, h.buf, ts)
		h.buf = h.buf[:0]
	}
	for len(b) >= 9 {
		n := h2Len(b)
		if n > maxH2Frame {
			a.oversized(h, b[:9])
			b = b[9:]
			m := min(len(b), h.skip)
			if st := a.streams[h.skipID]; st != nil && h.skipID != 0 {
				a.body(st, dir, b[:m])
			}
			h.skip -= m
			b = b[m:]
			continue
		}
		if len(b) < 9+n {
			break
		}
		a.frame(sh, s, dir, b[:9+n], ts)
		b = b[9+n:]
	}
	h.buf = append(h.buf, b...)
}

// oversized starts skipping a frame too large to keep. A header block that
// large cannot be decoded, so the direction's HPACK state is lost.
func (a *h2App) oversized(h *h2Half, hdr []byte) {
	h.skip, h.skipID = h2Len(hdr), 0
	id := binary.BigEndian.Uint32(hdr[5:9]) &^ (1 << 31)
	switch hdr[3] {
	case h2Data:
		h.skipID = id
	case h2Headers, h2Continuation, h2PushPromise:
		h.dec = hpack.NewDecoder(4096, nil)
		if st := a.streams[id]; st != nil {
			st.partial = true
		}
	}
}

// frame handles one complete frame (header included).
func (a *h2App) frame(sh *shard, s *stream, dir int, f []byte, ts time.Time) {
	h := &a.half[dir]
	typ, flags := f[3], f[4]
	id := binary.BigEndian.Uint32(f[5:9]) &^ (1 << 31)
	p := f[9:]
	if h.block != nil && typ != h2Continuation {
		// A header block must continue with CONTINUATION: framing is off.
		h.block = nil
		a.hpackLost(sh, dir)
	}
	switch typ {
	case h2Data:
		st := a.stream(sh, s, dir, id, ts, false)
		if st == nil {
			return
		}
		if flags&h2FlagPadded != 0 {
			if len(p) < 1 || int(p[0]) > len(p)-1 {
				sh.c.l7Errors.Add(1)
				return
			}
			p = p[1 : len(p)-int(p[0])]
		}
		a.body(st, dir, p)
		if flags&h2FlagEndStream != 0 {
			a.endStream(sh, s, st, dir)
		}
	case h2Headers, h2PushPromise:
		if id == 0 {
			sh.c.l7Errors.Add(1)
			return
		}
		if flags&h2FlagPadded != 0 {
			if len(p) < 1 || int(p[0]) > len(p)-1 {
				sh.c.l7Errors.Add(1)
				a.hpackLost(sh, dir)
				return
			}
			p = p[1 : len(p)-int(p[0])]
		}
		if typ == h2PushPromise {
			if len(p) < 4 {
				a.hpackLost(sh, dir)
				return
			}
			p = p[4:]
		} else if flags&h2FlagPriority != 0 {
			if len(p) < 5 {
				a.hpackLost(sh, dir)
				return
			}
			p = p[5:]
		}
		h.block = append(h.block[:0:0], p...)
		h.blockID, h.blockEnd, h.blockPush, h.blockStart = id, flags&h2FlagEndStream != 0, typ == h2PushPromise, ts
		if flags&h2FlagEndHeaders != 0 {
			a.headerBlock(sh, s, dir)
		}
	case h2Continuation:
		if h.block == nil || id != h.blockID {
			a.hpackLost(sh, dir)
			return
		}
		h.block = append(h.block, p...)
		if len(h.block) > maxH2HeaderList {
			h.block = nil
			a.hpackLost(sh, dir)
			if st := a.streams[id]; st != nil {
				st.partial = true
			}
			return
		}
		if flags&h2FlagEndHeaders != 0 {
			a.headerBlock(sh, s, dir)
		}
	case h2RSTStream:
		if st := a.streams[id]; st != nil {
			st.rst = true
			a.finish(sh, s, st)
		}
	case h2Settings:
		if flags&1 != 0 { // ACK
			return
		}
		for ; len(p) >= 6; p = p[6:] {
			if binary.BigEndian.Uint16(p) == 1 { // SETTINGS_HEADER_TABLE_SIZE
				// The peer's encoder may now use a table this large.
				a.half[1-dir].dec.SetAllowedMaxDynamicTableSize(binary.BigEndian.Uint32(p[2:]))
			}
		}
	}
}

// hpackLost resets direction dir's HPACK decoder: a header block was lost
// or could not be decoded, so the dynamic table may differ from the
// encoder's. A fresh table is sound: entries added from now on are the
// newest ones in the encoder's table too, and a reference to an older one
// fails instead of decoding to a wrong value.
func (a *h2App) hpackLost(sh *shard, dir int) {
	sh.c.l7Errors.Add(1)
	h := &a.half[dir]
	h.dec = hpack.NewDecoder(4096, nil)
}

// stream returns the stream id, creating it when allowed.
func (a *h2App) stream(sh *shard, s *stream, dir int, id uint32, ts time.Time, headers bool) *h2Stream {
	if id == 0 {
		return nil
	}
	st := a.streams[id]
	if st != nil {
		return st
	}
	if len(a.streams) >= maxH2Streams {
		for len(a.order) > 0 {
			old := a.streams[a.order[0]]
			a.order = a.order[1:]
			if old != nil {
				a.finish(sh, s, old)
				break
			}
		}
	}
	st = &h2Stream{id: id, ts: ts}
	if !headers || dir != a.clientDir {
		st.partial = true // the request headers were not seen
	}
	a.streams[id] = st
	a.order = append(a.order, id)
	return st
}

// headerBlock decodes a complete header block.
func (a *h2App) headerBlock(sh *shard, s *stream, dir int) {
	h := &a.half[dir]
	block, id, end, push, ts := h.block, h.blockID, h.blockEnd, h.blockPush, h.blockStart
	h.block = nil
	h.fields = h.fields[:0]
	h.dec.SetEmitFunc(func(f hpack.HeaderField) { h.fields = append(h.fields, f) })
	_, err := h.dec.Write(block)
	if err == nil {
		err = h.dec.Close()
	}
	ok := err == nil
	if !ok {
		a.hpackLost(sh, dir)
	}
	if push {
		return
	}
	if !a.dirKnown {
		if req, resp := a.pseudo(h.fields); req || resp {
			a.dirKnown = true
			if a.clientDir = dir; resp {
				a.clientDir = 1 - dir
			}
			s.clientIsB = a.clientDir == 1
		}
	}
	st := a.stream(sh, s, dir, id, ts, true)
	if st == nil {
		return
	}
	if !ok {
		st.partial = true
	}
	client := dir == a.clientDir
	switch {
	case client && !st.reqSeen:
		st.reqSeen = true
		a.request(st, h.fields)
	case !client && !st.respSeen:
		st.respSeen, st.respTS = true, ts
		a.response(st, h.fields)
		if end {
			st.trailers = st.resp.Headers // trailers-only response (gRPC errors)
		}
	case !client:
		st.trailers = fieldHeaders(h.fields)
	}
	if end {
		a.endStream(sh, s, st, dir)
	}
}

// pseudo reports whether a header block is a request's or a response's.
func (a *h2App) pseudo(fs []hpack.HeaderField) (req, resp bool) {
	for _, f := range fs {
		switch f.Name {
		case ":method":
			req = true
		case ":status":
			resp = true
		}
	}
	return req, resp
}

func fieldHeaders(fs []hpack.HeaderField) Headers {
	var h Headers
	for _, f := range fs {
		if !strings.HasPrefix(f.Name, ":") {
			h = append(h, KeyValue{f.Name, f.Value})
		}
	}
	return h
}

func (a *h2App) request(st *h2Stream, fs []hpack.HeaderField) {
	r := &st.req
	r.Version = "2.0"
	r.Headers = fieldHeaders(fs)
	for _, f := range fs {
		switch f.Name {
		case ":method":
			r.Method = f.Value
		case ":path":
			r.URL = f.Value
		case ":authority":
			r.Host = f.Value
		case "cookie":
			for _, part := range strings.Split(f.Value, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
					r.Cookies = append(r.Cookies, KeyValue{k, v})
				}
			}
		}
	}
	if r.Host == "" {
		r.Host = r.Headers.Get("host")
	}
	path, q, _ := strings.Cut(r.URL, "?")
	r.Path = path
	if strings.IndexByte(path, '%') >= 0 {
		if p, err := url.PathUnescape(path); err == nil {
			r.Path = p
		}
	}
	r.QueryString = parseQuery(q)
}

func (a *h2App) response(st *h2Stream, fs []hpack.HeaderField) {
	r := &st.resp
	r.Version = "2.0"
	r.Headers = fieldHeaders(fs)
	for _, f := range fs {
		if f.Name == ":status" {
			r.Status, _ = strconv.Atoi(f.Value)
		}
	}
	if r.Status >= 100 && r.Status < 200 {
		// An interim response (100 Continue): the final one follows.
		st.respSeen = false
	}
}

func (a *h2App) body(st *h2Stream, dir int, p []byte) {
	if dir == a.clientDir {
		st.req.BodySize += int64(len(p))
		st.grpc[0].feed(p)
	} else {
		st.resp.BodySize += int64(len(p))
		st.grpc[1].feed(p)
	}
}

func (a *h2App) endStream(sh *shard, s *stream, st *h2Stream, dir int) {
	if dir == a.clientDir {
		st.reqEnd = true
	} else {
		st.respEnd = true
	}
	if st.respEnd && (st.reqEnd || st.partial) {
		a.finish(sh, s, st)
	}
}

// finish emits a stream's entry and forgets it.
func (a *h2App) finish(sh *shard, s *stream, st *h2Stream) {
	if a.streams[st.id] != st {
		return
	}
	delete(a.streams, st.id)
	if len(a.streams) == 0 {
		a.order = a.order[:0]
	}
	e := sh.newEntry(s, a.clientDir, st.ts)
	x := &HTTP{Request: st.req, Response: st.resp, HasResponse: st.respSeen, Partial: st.partial || !st.reqSeen}
	x.Request.Version, x.Response.Version = "2.0", "2.0"
	e.HTTP = x
	if st.respSeen {
		e.ElapsedTime = st.respTS.Sub(st.ts).Milliseconds()
	}
	e.Protocol = Protocol{Name: "http2", Abbr: "HTTP/2", Version: "2.0", Layer4: "tcp"}
	if g := grpcOf(st); g != nil {
		e.GRPC = g
		e.Protocol.Name, e.Protocol.Abbr = "grpc", "gRPC"
	}
	sh.emit(s, e)
}

// grpcOf returns the gRPC view of a stream, or nil when it is not gRPC.
func grpcOf(st *h2Stream) *GRPC {
	ct := st.req.Headers.Get("content-type")
	if ct == "" {
		ct = st.resp.Headers.Get("content-type")
	}
	if !strings.HasPrefix(ct, "application/grpc") {
		return nil
	}
	g := &GRPC{
		RequestMessages: st.grpc[0].msgs, RequestMessageBytes: st.grpc[0].bytes,
		ResponseMessages: st.grpc[1].msgs, ResponseMessageBytes: st.grpc[1].bytes,
	}
	if p := strings.TrimPrefix(st.req.Path, "/"); p != st.req.Path {
		g.Service, g.Method, _ = strings.Cut(p, "/")
	}
	if v, ok := st.trailers.Lookup("grpc-status"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			g.Status, g.HasStatus = n, true
		}
	}
	if m := st.trailers.Get("grpc-message"); m != "" {
		if u, err := url.PathUnescape(m); err == nil {
			m = u
		}
		g.Message = m
	}
	return g
}

func (a *h2App) gap(sh *shard, s *stream, dir int, n int) {
	h := &a.half[dir]
	if h.skip > n {
		h.skip -= n // inside an oversized frame: boundaries survive
		return
	}
	h.buf, h.skip, h.block, h.preface = h.buf[:0], 0, nil, false
	h.sync = true
	a.hpackLost(sh, dir)
	// Streams in flight lost frames of this direction.
	for _, st := range a.streams {
		st.partial = true
	}
}

func (a *h2App) end(sh *shard, s *stream, dir int, ts time.Time) {}

func (a *h2App) close(sh *shard, s *stream) {
	for _, id := range a.order {
		if st := a.streams[id]; st != nil {
			a.finish(sh, s, st)
		}
	}
	a.order = nil
}
