package dissect

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// Redis (RESP2 and RESP3) parsing limits. Values are parsed as they stream
// by: a 512 MiB bulk string costs its preview, not its size.
const (
	maxRedisLine    = 64 << 10 // a type line (or inline command) longer than this is an error
	maxRedisDepth   = 32       // nested aggregates
	maxRedisArgs    = 16       // request arguments kept per command
	maxRedisPreview = 256      // bytes kept of one argument or reply value
	maxPendingRedis = 1024     // pipelined requests waiting for replies
)

// looksRedis reports whether b starts (or continues after a line end) with
// a RESP command: an array whose first element is a bulk string,
// "*<n>\r\n$<len>\r\n".
func looksRedis(b []byte) bool { return redisStart(b) >= 0 }

// redisStart returns the offset of the first command array in b that
// starts at 0 or after "\r\n", or -1.
func redisStart(b []byte) int {
	for off := 0; off < len(b); {
		if isRedisCommand(b[off:]) {
			return off
		}
		i := bytes.Index(b[off:], []byte("\r\n"))
		if i < 0 {
			return -1
		}
		off += i + 2
	}
	return -1
}

func isRedisCommand(b []byte) bool {
	if len(b) < 4 || b[0] != '*' {
		return false
	}
	i := 1
	for i < len(b) && i < 9 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 1 || len(b) < i+3 || b[i] != '\r' || b[i+1] != '\n' || b[i+2] != '$' {
		return false
	}
	return b[1] != '0'
}

// redisApp pairs the commands and replies of one connection in order: RESP
// has no ids, a server answers commands in the order it received them, and
// a client may pipeline many.
type redisApp struct {
	clientDir int // the direction of the first command
	half      [2]respHalf
	reqs      []*redisMsg
	// desync: a gap lost commands or replies, so order no longer pairs
	// them. It ends at a command sent when every reply so far had
	// arrived (its ack reaches the end of the server's data).
	desync bool
	resp3  bool // HELLO 3 switched the connection to RESP3
}

// respHalf parses one direction's RESP values incrementally.
type respHalf struct {
	sync     bool   // searching for a message start (client) or waiting to be resynchronised (server)
	line     []byte // partial type line
	bulkLeft int64  // bytes of the current bulk string still to come, CRLF included
	bulk     []byte // preview of the current bulk string
	bulkTyp  byte
	stack    []int // elements still expected by each open aggregate
	msg      *redisMsg
}

// redisMsg is a command or a reply being parsed or waiting for its pair.
type redisMsg struct {
	ts     time.Time
	ack    uint32 // the peer's sequence acknowledged when the message began
	typ    byte   // top-level RESP type byte
	req    *Redis // a command builds the entry's Redis value
	reply  RedisReply
	values int // depth-1 values joined into reply.Value
}

func newRedisApp(s *stream) *redisApp {
	a := &redisApp{clientDir: -1}
	// Captured from the start, both directions begin at a message
	// boundary; otherwise the client's side searches for a command and
	// the server's waits for a command that every reply has caught up to.
	if !s.syn || s.tries > 0 {
		a.half[0].sync, a.half[1].sync = true, true
		a.desync = true
	}
	return a
}

func (a *redisApp) data(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	if a.clientDir < 0 {
		a.clientDir = dir // detection saw a command in this direction
		s.clientIsB = dir == 1
	}
	h := &a.half[dir]
	client := dir == a.clientDir
	for len(b) > 0 {
		if h.sync {
			if !client {
				return // resynchronised by a command (see startMsg)
			}
			i := redisStart(b)
			if i < 0 {
				// A command may start after a line end split from it: keep
				// searching in later segments (the tail is at most 1 byte).
				return
			}
			h.sync = false
			b = b[i:]
		}
		if h.bulkLeft > 0 {
			n := int(min(int64(len(b)), h.bulkLeft))
			if keep := int(min(h.bulkLeft-2, int64(n))); keep > 0 && len(h.bulk) < maxRedisPreview {
				h.bulk = append(h.bulk, b[:min(keep, maxRedisPreview-len(h.bulk))]...)
			}
			h.bulkLeft -= int64(n)
			b = b[n:]
			if h.bulkLeft == 0 {
				a.value(sh, s, dir, h.bulkTyp, h.bulk)
				h.bulk = h.bulk[:0]
			}
			continue
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			h.line = append(h.line, b...)
			if len(h.line) > maxRedisLine {
				a.fail(sh, s, dir)
			}
			return
		}
		line := b[:i]
		if len(h.line) > 0 {
			h.line = append(h.line, line...)
			line = h.line
		}
		b = b[i+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if h.msg == nil {
			a.startMsg(s, dir, ts)
		}
		a.typeLine(sh, s, dir, line)
		h.line = h.line[:0]
	}
}

// startMsg begins a message in direction dir.
func (a *redisApp) startMsg(s *stream, dir int, ts time.Time) {
	h := &a.half[dir]
	ack := s.segAck
	h.msg = &redisMsg{ts: ts, ack: ack}
	if dir != a.clientDir {
		return
	}
	h.msg.req = new(Redis)
	if !a.desync {
		return
	}
	// Every reply to earlier commands has been received by the client
	// when its ack reaches where the server's data ends and the server's
	// parser is between messages: replies pair in order again.
	srv := &a.half[1-dir]
	if len(a.reqs) == 0 && srv.msg == nil && srv.bulkLeft == 0 && (!s.tcp[1-dir].known || s.tcp[1-dir].next == ack) {
		a.desync = false
		srv.sync = false
		srv.line, srv.stack = srv.line[:0], srv.stack[:0]
	}
}

// typeLine handles one RESP line: a scalar, an aggregate header, a bulk
// string header, or an inline command.
func (a *redisApp) typeLine(sh *shard, s *stream, dir int, line []byte) {
	h := &a.half[dir]
	if len(line) == 0 {
		if len(h.stack) == 0 && dir == a.clientDir {
			h.msg = nil // inline protocol allows empty lines
			return
		}
		a.fail(sh, s, dir)
		return
	}
	t := line[0]
	switch t {
	case '*', '%', '~', '>', '|':
		n, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil || n > 1<<24 || len(h.stack) >= maxRedisDepth {
			a.fail(sh, s, dir)
			return
		}
		if len(h.stack) == 0 {
			h.msg.typ = t
			h.msg.reply.Count = int(max(n, -1))
		}
		if t == '%' || t == '|' {
			n *= 2
		}
		if n <= 0 { // empty or null aggregate: a value by itself
			if n < 0 && len(h.stack) == 0 {
				h.msg.typ = '_'
			}
			a.elemDone(sh, s, dir)
			return
		}
		h.stack = append(h.stack, int(n))
	case '$', '!', '=':
		n, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil || n > 512<<20 {
			a.fail(sh, s, dir)
			return
		}
		if n < 0 {
			a.value(sh, s, dir, '_', nil)
			return
		}
		h.bulkTyp, h.bulkLeft, h.bulk = t, n+2, h.bulk[:0]
	case '+', '-', ':', '_', '#', ',', '(':
		a.value(sh, s, dir, t, line[1:])
	default:
		if len(h.stack) > 0 || dir != a.clientDir {
			a.fail(sh, s, dir)
			return
		}
		// Inline command ("PING\r\n"), as telnet and redis-cli --pipe send.
		h.msg.typ = '*'
		for _, f := range strings.Fields(string(line)) {
			a.arg(h.msg.req, f)
		}
		a.elemDone(sh, s, dir)
	}
}

// value handles a complete scalar (bulk strings included).
func (a *redisApp) value(sh *shard, s *stream, dir int, t byte, v []byte) {
	h := &a.half[dir]
	m := h.msg
	switch depth := len(h.stack); {
	case depth == 0:
		m.typ = t
		m.reply.Value = string(v[:min(len(v), maxRedisPreview)])
	case depth == 1 && m.req != nil:
		a.arg(m.req, string(v))
	case depth == 1 && m.typ != '|':
		if m.values < maxRedisArgs && len(m.reply.Value) < maxRedisPreview {
			if m.values > 0 {
				m.reply.Value += " "
			}
			m.reply.Value += string(v[:min(len(v), maxRedisPreview-len(m.reply.Value))])
		}
		m.values++
	}
	a.elemDone(sh, s, dir)
}

// arg adds one command word: the command, the key, then bounded arguments.
func (a *redisApp) arg(r *Redis, v string) {
	q := &r.Request
	q.ArgCount++
	switch {
	case q.ArgCount == 1:
		q.Command = strings.ToUpper(v)
		return
	case q.ArgCount == 2 && redisHasKey(q.Command):
		q.Key = v[:min(len(v), maxRedisPreview)]
	}
	if len(q.Args) >= maxRedisArgs {
		return
	}
	if redisSecret(q.Command, len(q.Args)) {
		v = "<redacted>"
	}
	q.Args = append(q.Args, v[:min(len(v), maxRedisPreview)])
}

// redisKeyless are commands whose first argument is not a key.
var redisKeyless = map[string]bool{
	"AUTH": true, "HELLO": true, "PING": true, "ECHO": true, "SELECT": true, "CONFIG": true,
	"CLIENT": true, "COMMAND": true, "INFO": true, "MULTI": true, "EXEC": true, "DISCARD": true,
	"QUIT": true, "RESET": true, "SCAN": true, "KEYS": true, "DBSIZE": true, "FLUSHDB": true,
	"FLUSHALL": true, "SUBSCRIBE": true, "PSUBSCRIBE": true, "UNSUBSCRIBE": true,
	"PUNSUBSCRIBE": true, "PUBLISH": true, "SCRIPT": true, "EVAL": true, "EVALSHA": true,
	"FUNCTION": true, "FCALL": true, "SLOWLOG": true, "MEMORY": true, "CLUSTER": true,
	"ACL": true, "TIME": true, "SAVE": true, "BGSAVE": true, "LASTSAVE": true, "MONITOR": true,
	"WAIT": true, "SHUTDOWN": true, "DEBUG": true, "LATENCY": true, "OBJECT": true,
	"READONLY": true, "READWRITE": true, "SWAPDB": true, "ROLE": true, "REPLICAOF": true,
}

func redisHasKey(cmd string) bool { return !redisKeyless[cmd] }

// redisSecret reports whether argument i (after the command) of cmd is a
// password: entries must not carry credentials.
func redisSecret(cmd string, i int) bool {
	switch cmd {
	case "AUTH":
		return true // AUTH password, AUTH user password
	case "HELLO":
		return i >= 3 // HELLO 3 AUTH user password
	}
	return false
}

// elemDone counts a complete value against the open aggregates and, when
// it completes the top-level one, the message.
func (a *redisApp) elemDone(sh *shard, s *stream, dir int) {
	h := &a.half[dir]
	for len(h.stack) > 0 {
		h.stack[len(h.stack)-1]--
		if h.stack[len(h.stack)-1] > 0 {
			return
		}
		h.stack = h.stack[:len(h.stack)-1]
	}
	m := h.msg
	h.msg = nil
	if m == nil {
		return
	}
	if m.req != nil {
		a.command(sh, s, m)
		return
	}
	a.reply(sh, s, m)
}

func (a *redisApp) command(sh *shard, s *stream, m *redisMsg) {
	q := &m.req.Request
	if q.Command == "" {
		return // an empty array
	}
	if q.Command == "HELLO" && len(q.Args) > 0 {
		a.resp3 = q.Args[0] == "3"
	}
	if a.desync {
		a.emit(sh, s, m, nil)
		return
	}
	if len(a.reqs) >= maxPendingRedis {
		a.emit(sh, s, a.reqs[0], nil)
		a.reqs = a.reqs[1:]
	}
	a.reqs = append(a.reqs, m)
}

func (a *redisApp) reply(sh *shard, s *stream, m *redisMsg) {
	if m.typ == '>' || m.typ == '|' {
		return // RESP3 push (pub/sub) or an attribute: not an answer
	}
	if a.desync || len(a.reqs) == 0 {
		sh.c.orphans.Add(1) // pub/sub messages in RESP2 land here too
		return
	}
	req := a.reqs[0]
	a.reqs = a.reqs[1:]
	m.reply.Type = redisTypeName(m.typ)
	if m.typ == '-' || m.typ == '!' {
		m.reply.Error = true
	}
	a.emit(sh, s, req, m)
}

func redisTypeName(t byte) string {
	switch t {
	case '+':
		return "simple string"
	case '-':
		return "error"
	case ':':
		return "integer"
	case '$':
		return "bulk string"
	case '*':
		return "array"
	case '_':
		return "null"
	case '%':
		return "map"
	case '~':
		return "set"
	case '#':
		return "boolean"
	case ',':
		return "double"
	case '(':
		return "big number"
	case '!':
		return "bulk error"
	case '=':
		return "verbatim string"
	}
	return "unknown"
}

// fail abandons the message being parsed in direction dir: framing is lost.
func (a *redisApp) fail(sh *shard, s *stream, dir int) {
	sh.c.l7Errors.Add(1)
	a.lost(sh, s, dir)
}

func (a *redisApp) gap(sh *shard, s *stream, dir int, n int) {
	h := &a.half[dir]
	if h.bulkLeft > int64(n)+2 {
		// Lost bytes inside a bulk string: the framing survives.
		h.bulkLeft -= int64(n)
		return
	}
	a.lost(sh, s, dir)
}

// lost resets direction dir after lost or unparseable bytes; pending
// commands are emitted without replies since order no longer pairs them.
func (a *redisApp) lost(sh *shard, s *stream, dir int) {
	h := &a.half[dir]
	h.sync, h.msg, h.bulkLeft = true, nil, 0
	h.line, h.stack, h.bulk = h.line[:0], h.stack[:0], h.bulk[:0]
	a.desync = true
	a.flush(sh, s)
}

func (a *redisApp) flush(sh *shard, s *stream) {
	for _, r := range a.reqs {
		a.emit(sh, s, r, nil)
	}
	a.reqs = nil
}

func (a *redisApp) end(sh *shard, s *stream, dir int, ts time.Time) {}

func (a *redisApp) close(sh *shard, s *stream) { a.flush(sh, s) }

func (a *redisApp) emit(sh *shard, s *stream, req, resp *redisMsg) {
	e := sh.newEntry(s, a.clientDir, req.ts)
	e.Protocol = Protocol{Name: "redis", Abbr: "REDIS", Version: "2", Layer4: "tcp"}
	if a.resp3 {
		e.Protocol.Version = "3"
	}
	x := req.req
	if resp != nil {
		x.Response, x.HasResponse = resp.reply, true
		e.ElapsedTime = resp.ts.Sub(req.ts).Milliseconds()
	}
	e.Redis = x
	sh.emit(s, e)
}
