package dissect

import (
	"bytes"
	"encoding/binary"
	"time"
)

// PostgreSQL (frontend/backend protocol 3.0) parsing limits.
const (
	maxPGMessage  = 1 << 20 // messages kept whole (queries, errors); larger ones are skipped
	maxPGSQL      = 4096    // bytes of SQL kept in an entry
	maxPGTags     = 16      // CommandComplete tags kept per entry
	maxPGPending  = 256     // query cycles waiting for ReadyForQuery
	maxPGPrepared = 256     // named prepared statements remembered per connection
	pgProtocol3   = 196608
	pgSSLRequest  = 80877103
	pgGSSRequest  = 80877104
	pgCancel      = 80877102
)

// looksPostgres reports whether a client opens a PostgreSQL connection: a
// StartupMessage for protocol 3.0, or an SSL/GSS encryption request.
func looksPostgres(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	n, code := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	switch code {
	case pgSSLRequest, pgGSSRequest:
		return n == 8
	case pgCancel:
		return n == 16
	case pgProtocol3:
		return n >= 9 && n <= 10000 && (len(b) < int(n) || b[n-1] == 0)
	}
	return false
}

// pgApp pairs a PostgreSQL connection's query cycles (a simple Query, or
// extended-protocol messages up to Sync) with the server's messages up to
// ReadyForQuery.
type pgApp struct {
	clientDir int
	half      [2]pgHalf
	startup   bool // the client's next message is untyped (startup, SSL request)
	sslAnswer bool // the server's next byte answers an SSL/GSS request
	encrypted bool // TLS or GSS encryption accepted: nothing more to parse
	pending   []*pgCycle
	cur       *pgCycle // extended-protocol cycle being built (until Sync)
	prepared  map[string]string
}

type pgHalf struct{ tail }

// pgCycle is one request and what the server answered to it.
type pgCycle struct {
	ts time.Time
	x  *Postgres
}

func newPGApp(dir int, s *stream) *pgApp {
	s.clientIsB = dir == 1
	return &pgApp{clientDir: dir, startup: true, prepared: map[string]string{}}
}

func (a *pgApp) data(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	if a.encrypted {
		return
	}
	h := &a.half[dir]
	client := dir == a.clientDir
	if !client && a.sslAnswer && len(h.buf) == 0 && h.skip == 0 && len(b) > 0 {
		a.sslAnswer = false
		if b[0] == 'S' || b[0] == 'G' {
			a.encrypted = true
			a.emitStartup(sh, s, ts, "ssl")
			return
		}
		b = b[1:] // 'N': the client goes on in plain text
		a.startup = true
	}
	if h.skip > 0 {
		n := min(len(b), h.skip)
		h.skip -= n
		b = b[n:]
	}
	buffered := len(h.buf) > 0
	if buffered {
		h.buf = append(h.buf, b...)
		b = h.buf
	}
	for {
		typed := !(client && a.startup)
		hdr := 5
		if !typed {
			hdr = 4
		}
		if len(b) < hdr {
			break
		}
		n := int(binary.BigEndian.Uint32(b[hdr-4:]))
		if n < 4 {
			a.fail(sh, s, dir)
			return
		}
		total := hdr - 4 + n
		if total > maxPGMessage {
			if typed {
				a.message(sh, s, dir, b[0], nil, ts) // counted, not parsed
			}
			h.skip = total - len(b)
			b = b[min(len(b), total):]
			if h.skip < 0 {
				h.skip = 0
			}
			continue
		}
		if len(b) < total {
			break
		}
		if typed {
			a.message(sh, s, dir, b[0], b[5:total], ts)
		} else {
			a.startupMessage(sh, s, b[4:total], ts)
		}
		b = b[total:]
		if a.encrypted {
			return
		}
	}
	h.keep(b, buffered)
}

// startupMessage handles the client's untyped first message(s).
func (a *pgApp) startupMessage(sh *shard, s *stream, p []byte, ts time.Time) {
	if len(p) < 4 {
		return
	}
	switch binary.BigEndian.Uint32(p) {
	case pgSSLRequest, pgGSSRequest:
		a.sslAnswer = true
		a.startup = false
		return
	case pgCancel:
		a.startup = false
		c := &pgCycle{ts: ts, x: &Postgres{Request: PostgresRequest{Type: "cancel"}}}
		a.emit(sh, s, c)
		return
	case pgProtocol3:
	default:
		a.startup = false
		return
	}
	a.startup = false
	r := PostgresRequest{Type: "startup"}
	for kv := p[4:]; len(kv) > 0; {
		k, rest, ok := bytes.Cut(kv, []byte{0})
		if !ok || len(k) == 0 {
			break
		}
		v, rest2, _ := bytes.Cut(rest, []byte{0})
		switch string(k) {
		case "user":
			r.User = string(v)
		case "database":
			r.Database = string(v)
		case "application_name":
			r.Application = string(v)
		}
		kv = rest2
	}
	if r.Database == "" {
		r.Database = r.User // the server's default
	}
	a.push(sh, s, &pgCycle{ts: ts, x: &Postgres{Request: r}})
}

func (a *pgApp) emitStartup(sh *shard, s *stream, ts time.Time, typ string) {
	a.emit(sh, s, &pgCycle{ts: ts, x: &Postgres{Request: PostgresRequest{Type: typ}}})
}

func (a *pgApp) push(sh *shard, s *stream, c *pgCycle) {
	if len(a.pending) >= maxPGPending {
		a.emit(sh, s, a.pending[0])
		a.pending = a.pending[1:]
	}
	a.pending = append(a.pending, c)
}

// message handles one typed message (p nil when it was too large to keep).
func (a *pgApp) message(sh *shard, s *stream, dir int, t byte, p []byte, ts time.Time) {
	if dir == a.clientDir {
		a.clientMessage(sh, s, t, p, ts)
		return
	}
	if t == 'Z' { // ReadyForQuery: the oldest cycle is complete
		if len(a.pending) > 0 {
			c := a.pending[0]
			a.pending = a.pending[1:]
			c.x.HasResponse = true
			a.emitAfter(sh, s, c, ts.Sub(c.ts).Milliseconds())
		}
		return
	}
	if len(a.pending) == 0 {
		return
	}
	r := &a.pending[0].x.Response
	switch t {
	case 'C':
		if tag, _, _ := bytes.Cut(p, []byte{0}); len(r.Tags) < maxPGTags {
			r.Tags = append(r.Tags, string(tag))
		}
	case 'D':
		r.Rows++
	case 'E':
		r.Error = true
		a.pending[0].x.HasResponse = true
		for f := p; len(f) > 1; {
			code := f[0]
			v, rest, _ := bytes.Cut(f[1:], []byte{0})
			switch code {
			case 'C':
				r.SQLState = string(v)
			case 'M':
				r.Message = string(v[:min(len(v), maxPGSQL)])
			case 'V':
				r.Severity = string(v)
			case 'S':
				if r.Severity == "" {
					r.Severity = string(v)
				}
			}
			f = rest
		}
	}
}

func (a *pgApp) clientMessage(sh *shard, s *stream, t byte, p []byte, ts time.Time) {
	switch t {
	case 'Q':
		q, _, _ := bytes.Cut(p, []byte{0})
		a.push(sh, s, &pgCycle{ts: ts, x: &Postgres{Request: PostgresRequest{Type: "query", SQL: boundSQL(q)}}})
	case 'P', 'B', 'E', 'D', 'C', 'H':
		if a.cur == nil {
			a.cur = &pgCycle{ts: ts, x: &Postgres{Request: PostgresRequest{Type: "extended"}}}
		}
		r := &a.cur.x.Request
		switch t {
		case 'P': // Parse: statement name, query
			name, rest, _ := bytes.Cut(p, []byte{0})
			q, _, _ := bytes.Cut(rest, []byte{0})
			if r.SQL == "" {
				r.SQL, r.Statement = boundSQL(q), string(name)
			}
			if len(name) > 0 && len(a.prepared) < maxPGPrepared {
				a.prepared[string(name)] = boundSQL(q)
			}
		case 'B': // Bind: portal, statement
			_, rest, _ := bytes.Cut(p, []byte{0})
			name, _, _ := bytes.Cut(rest, []byte{0})
			if r.SQL == "" && len(name) > 0 {
				r.Statement = string(name)
				r.SQL = a.prepared[string(name)]
			}
		}
	case 'S': // Sync ends the cycle
		c := a.cur
		a.cur = nil
		if c == nil {
			c = &pgCycle{ts: ts, x: &Postgres{Request: PostgresRequest{Type: "sync"}}}
		}
		a.push(sh, s, c)
	case 'X':
		// Terminate.
	}
}

func boundSQL(q []byte) string { return string(q[:min(len(q), maxPGSQL)]) }

func (a *pgApp) fail(sh *shard, s *stream, dir int) {
	sh.c.l7Errors.Add(1)
	a.gap(sh, s, dir, 0)
}

// gap: message boundaries in direction dir are lost. There is no way to
// find the next message start in a byte stream of length-prefixed
// messages, so parsing of the connection stops; pending requests are
// emitted without responses.
func (a *pgApp) gap(sh *shard, s *stream, dir int, n int) {
	a.flush(sh, s)
	a.encrypted = true
}

func (a *pgApp) flush(sh *shard, s *stream) {
	for _, c := range a.pending {
		a.emit(sh, s, c)
	}
	a.pending = nil
	if a.cur != nil {
		a.emit(sh, s, a.cur)
		a.cur = nil
	}
}

func (a *pgApp) end(sh *shard, s *stream, dir int, ts time.Time) {}

func (a *pgApp) close(sh *shard, s *stream) { a.flush(sh, s) }

func (a *pgApp) emit(sh *shard, s *stream, c *pgCycle) { a.emitAfter(sh, s, c, 0) }

func (a *pgApp) emitAfter(sh *shard, s *stream, c *pgCycle, elapsed int64) {
	e := sh.newEntry(s, a.clientDir, c.ts)
	e.Protocol = Protocol{Name: "postgres", Abbr: "PGSQL", Version: "3.0", Layer4: "tcp"}
	e.Postgres = c.x
	e.ElapsedTime = elapsed
	sh.emit(s, e)
}
