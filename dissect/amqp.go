package dissect

import (
	"encoding/binary"
	"strconv"
	"time"
)

// AMQP 0-9-1 parsing limits.
const (
	amqpHeader       = "AMQP\x00\x00\x09\x01"
	maxAMQPFrame     = 1 << 20 // frames parsed whole; larger (content bodies) are counted and skipped
	maxAMQPPending   = 256     // synchronous methods waiting for their -ok, per connection
	amqpFrameMethod  = 1
	amqpFrameHeader  = 2
	amqpFrameBody    = 3
	amqpFrameEnd     = 0xCE
	amqpClassBasic   = 60
	amqpMethodPublis = 40
	amqpMethodDelivr = 60
)

// amqpMethods names the methods of AMQP 0-9-1 (class, method) as the
// specification does.
var amqpMethods = map[[2]uint16]string{
	{10, 10}: "connection.start", {10, 11}: "connection.start-ok", {10, 20}: "connection.secure",
	{10, 21}: "connection.secure-ok", {10, 30}: "connection.tune", {10, 31}: "connection.tune-ok",
	{10, 40}: "connection.open", {10, 41}: "connection.open-ok", {10, 50}: "connection.close",
	{10, 51}: "connection.close-ok", {10, 60}: "connection.blocked", {10, 61}: "connection.unblocked",
	{20, 10}: "channel.open", {20, 11}: "channel.open-ok", {20, 20}: "channel.flow", {20, 21}: "channel.flow-ok",
	{20, 40}: "channel.close", {20, 41}: "channel.close-ok",
	{40, 10}: "exchange.declare", {40, 11}: "exchange.declare-ok", {40, 20}: "exchange.delete",
	{40, 21}: "exchange.delete-ok", {40, 30}: "exchange.bind", {40, 31}: "exchange.bind-ok",
	{40, 40}: "exchange.unbind", {40, 51}: "exchange.unbind-ok",
	{50, 10}: "queue.declare", {50, 11}: "queue.declare-ok", {50, 20}: "queue.bind", {50, 21}: "queue.bind-ok",
	{50, 30}: "queue.purge", {50, 31}: "queue.purge-ok", {50, 40}: "queue.delete", {50, 41}: "queue.delete-ok",
	{50, 50}: "queue.unbind", {50, 51}: "queue.unbind-ok",
	{60, 10}: "basic.qos", {60, 11}: "basic.qos-ok", {60, 20}: "basic.consume", {60, 21}: "basic.consume-ok",
	{60, 30}: "basic.cancel", {60, 31}: "basic.cancel-ok", {60, 40}: "basic.publish", {60, 50}: "basic.return",
	{60, 60}: "basic.deliver", {60, 70}: "basic.get", {60, 71}: "basic.get-ok", {60, 72}: "basic.get-empty",
	{60, 80}: "basic.ack", {60, 90}: "basic.reject", {60, 100}: "basic.recover-async",
	{60, 110}: "basic.recover", {60, 111}: "basic.recover-ok", {60, 120}: "basic.nack",
	{85, 10}: "confirm.select", {85, 11}: "confirm.select-ok",
	{90, 10}: "tx.select", {90, 11}: "tx.select-ok", {90, 20}: "tx.commit", {90, 21}: "tx.commit-ok",
	{90, 30}: "tx.rollback", {90, 31}: "tx.rollback-ok",
}

// looksAMQP reports whether a client opens an AMQP 0-9-1 connection.
func looksAMQP(b []byte) bool {
	n := min(len(b), len(amqpHeader))
	return n >= 5 && string(b[:n]) == amqpHeader[:n]
}

// amqpApp makes one entry per method frame (with its content header and
// body size for basic.publish, basic.deliver and basic.get-ok), pairing a
// synchronous method with its -ok on the same channel.
type amqpApp struct {
	clientDir int
	half      [2]amqpHalf
	pending   []*amqpMsg // synchronous client methods waiting for -ok
	stopped   bool
}

type amqpHalf struct {
	header  int // bytes of the protocol header still to skip (client)
	buf     []byte
	skip    int
	content *amqpMsg // a method waiting for its content header and body
}

type amqpMsg struct {
	ts      time.Time
	dir     int
	x       *AMQP
	bodyEnd int64 // body bytes still expected
}

func newAMQPApp(dir int, s *stream) *amqpApp {
	s.clientIsB = dir == 1
	a := &amqpApp{clientDir: dir}
	a.half[dir].header = len(amqpHeader)
	return a
}

func (a *amqpApp) data(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	if a.stopped {
		return
	}
	h := &a.half[dir]
	if h.header > 0 {
		n := min(len(b), h.header)
		h.header -= n
		b = b[n:]
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
	for len(b) >= 7 {
		typ, ch := b[0], binary.BigEndian.Uint16(b[1:])
		size := int(binary.BigEndian.Uint32(b[3:]))
		if size > maxAMQPFrame {
			if typ == amqpFrameBody {
				a.body(sh, s, dir, int64(size))
			}
			h.skip = 8 + size - len(b)
			b = b[min(len(b), 8+size):]
			if h.skip < 0 {
				h.skip = 0
			}
			continue
		}
		if len(b) < 8+size {
			break
		}
		if b[7+size] != amqpFrameEnd {
			sh.c.l7Errors.Add(1)
			a.stop(sh, s)
			return
		}
		a.frame(sh, s, dir, typ, ch, b[7:7+size], ts)
		b = b[8+size:]
	}
	if !buffered {
		h.buf = append(h.buf[:0], b...)
	} else if len(b) < len(h.buf) {
		h.buf = h.buf[:copy(h.buf, b)]
	}
}

func (a *amqpApp) frame(sh *shard, s *stream, dir int, typ byte, ch uint16, p []byte, ts time.Time) {
	h := &a.half[dir]
	switch typ {
	case amqpFrameMethod:
		if len(p) < 4 {
			sh.c.l7Errors.Add(1)
			return
		}
		if h.content != nil { // the previous method's content never came
			a.done(sh, s, h.content, nil)
			h.content = nil
		}
		class, method := binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
		name := amqpMethods[[2]uint16{class, method}]
		if name == "" {
			name = strconv.Itoa(int(class)) + "." + strconv.Itoa(int(method))
		}
		x := &AMQP{Method: name, Channel: ch}
		amqpArgs(x, class, method, p[4:])
		m := &amqpMsg{ts: ts, dir: dir, x: x}
		switch {
		case class == amqpClassBasic && (method == amqpMethodPublis || method == amqpMethodDelivr || method == 71 || method == 50):
			h.content = m // publish, deliver, get-ok, return carry content
		case len(name) > 3 && name[len(name)-3:] == "-ok" && dir != a.clientDir:
			a.answer(sh, s, m)
		case amqpSynchronous(class, method) && dir == a.clientDir:
			if len(a.pending) >= maxAMQPPending {
				a.done(sh, s, a.pending[0], nil)
				a.pending = a.pending[1:]
			}
			a.pending = append(a.pending, m)
		default:
			a.done(sh, s, m, nil)
		}
	case amqpFrameHeader:
		m := h.content
		if m == nil || len(p) < 14 {
			return
		}
		m.x.BodySize = int64(binary.BigEndian.Uint64(p[4:]))
		amqpProperties(m.x, p[12:])
		m.bodyEnd = m.x.BodySize
		if m.bodyEnd == 0 {
			a.done(sh, s, m, nil)
			h.content = nil
		}
	case amqpFrameBody:
		a.body(sh, s, dir, int64(len(p)))
	}
}

// body counts content body bytes of direction dir's pending message.
func (a *amqpApp) body(sh *shard, s *stream, dir int, n int64) {
	h := &a.half[dir]
	m := h.content
	if m == nil {
		return
	}
	m.bodyEnd -= n
	if m.bodyEnd <= 0 {
		a.done(sh, s, m, nil)
		h.content = nil
	}
}

// answer pairs a server -ok with the oldest pending method of its channel.
func (a *amqpApp) answer(sh *shard, s *stream, m *amqpMsg) {
	for i, p := range a.pending {
		if p.x.Channel == m.x.Channel {
			a.pending = append(a.pending[:i], a.pending[i+1:]...)
			a.done(sh, s, p, m)
			return
		}
	}
	a.done(sh, s, m, nil) // e.g. connection.start's reply direction
}

// amqpSynchronous reports whether a client method expects an -ok.
func amqpSynchronous(class, method uint16) bool {
	if class == amqpClassBasic {
		return method == 10 || method == 20 || method == 30 || method == 110
	}
	return class >= 10 && class <= 90 && method%10 == 0 && class != 10
}

// amqpArgs reads the arguments that entries show.
func amqpArgs(x *AMQP, class, method uint16, p []byte) {
	r := &amqpReader{b: p}
	switch uint32(class)<<16 | uint32(method) {
	case 60<<16 | 40: // basic.publish: reserved, exchange, routing-key, bits
		r.skip(2)
		x.Exchange, x.RoutingKey = r.short(), r.short()
	case 60<<16 | 60: // basic.deliver: consumer-tag, delivery-tag, redelivered, exchange, routing-key
		x.ConsumerTag = r.short()
		r.skip(8 + 1)
		x.Exchange, x.RoutingKey = r.short(), r.short()
	case 60<<16 | 50: // basic.return: reply-code, reply-text, exchange, routing-key
		r.skip(2)
		r.short()
		x.Exchange, x.RoutingKey = r.short(), r.short()
	case 60<<16 | 71: // basic.get-ok: delivery-tag, redelivered, exchange, routing-key
		r.skip(8 + 1)
		x.Exchange, x.RoutingKey = r.short(), r.short()
	case 60<<16 | 20: // basic.consume: reserved, queue, consumer-tag
		r.skip(2)
		x.Queue, x.ConsumerTag = r.short(), r.short()
	case 60<<16 | 70, 50<<16 | 10, 50<<16 | 30, 50<<16 | 40: // basic.get, queue.declare/purge/delete: reserved, queue
		r.skip(2)
		x.Queue = r.short()
	case 50<<16 | 11: // queue.declare-ok: queue
		x.Queue = r.short()
	case 50<<16 | 20, 50<<16 | 50: // queue.bind/unbind: reserved, queue, exchange, routing-key
		r.skip(2)
		x.Queue, x.Exchange, x.RoutingKey = r.short(), r.short(), r.short()
	case 40<<16 | 10, 40<<16 | 20: // exchange.declare/delete: reserved, exchange
		r.skip(2)
		x.Exchange = r.short()
	case 10<<16 | 50, 20<<16 | 40: // connection.close, channel.close: reply-code, reply-text
		if len(r.b) >= 2 {
			x.ReplyCode = int(binary.BigEndian.Uint16(r.b))
		}
		r.skip(2)
		x.ReplyText = r.short()
	}
}

// amqpProperties reads the content header's property list (content-type,
// delivery-mode, correlation-id, message-id, …) as far as entries show it.
func amqpProperties(x *AMQP, p []byte) {
	if len(p) < 2 {
		return
	}
	flags := binary.BigEndian.Uint16(p)
	r := &amqpReader{b: p[2:]}
	for bit := 15; bit >= 2 && !r.bad; bit-- {
		if flags&(1<<bit) == 0 {
			continue
		}
		switch bit {
		case 15:
			x.ContentType = r.short()
		case 14:
			x.ContentEncoding = r.short()
		case 13: // headers table
			n := r.long()
			r.skip(n)
		case 12:
			if len(r.b) >= 1 {
				x.DeliveryMode = int(r.b[0])
			}
			r.skip(1)
		case 11:
			r.skip(1) // priority
		case 10:
			x.CorrelationID = r.short()
		case 9:
			x.ReplyTo = r.short()
		case 8:
			x.Expiration = r.short()
		case 7:
			x.MessageID = r.short()
		case 6:
			r.skip(8) // timestamp
		case 5, 4, 3, 2: // type, user-id, app-id, reserved cluster-id
			r.short()
		}
	}
}

type amqpReader struct {
	b   []byte
	bad bool
}

func (r *amqpReader) skip(n int) {
	if n < 0 || len(r.b) < n {
		r.bad, r.b = true, nil
		return
	}
	r.b = r.b[n:]
}

func (r *amqpReader) short() string {
	if len(r.b) < 1 || len(r.b) < 1+int(r.b[0]) {
		r.bad, r.b = true, nil
		return ""
	}
	n := int(r.b[0])
	s := string(r.b[1 : 1+n])
	r.b = r.b[1+n:]
	return s
}

func (r *amqpReader) long() int {
	if len(r.b) < 4 {
		r.bad, r.b = true, nil
		return 0
	}
	n := int(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return n
}

func (a *amqpApp) stop(sh *shard, s *stream) {
	a.stopped = true
	a.flush(sh, s)
}

// gap: frames cannot be found again in a byte stream, so parsing of the
// connection stops.
func (a *amqpApp) gap(sh *shard, s *stream, dir int, n int) {
	if h := &a.half[dir]; h.skip > n {
		h.skip -= n
		return
	}
	a.stop(sh, s)
}

func (a *amqpApp) flush(sh *shard, s *stream) {
	for _, m := range a.pending {
		a.done(sh, s, m, nil)
	}
	a.pending = nil
	for d := range a.half {
		if m := a.half[d].content; m != nil {
			a.done(sh, s, m, nil)
			a.half[d].content = nil
		}
	}
}

func (a *amqpApp) end(sh *shard, s *stream, dir int, ts time.Time) {}

func (a *amqpApp) close(sh *shard, s *stream) { a.flush(sh, s) }

// done emits a method (and the -ok that answered it, if any). Methods the
// server sends (basic.deliver, connection.start, …) are entries of their
// own, with src and dst still client and server.
func (a *amqpApp) done(sh *shard, s *stream, m, ok *amqpMsg) {
	e := sh.newEntry(s, a.clientDir, m.ts)
	e.Protocol = Protocol{Name: "amqp", Abbr: "AMQP", Version: "0-9-1", Layer4: "tcp"}
	x := m.x
	x.FromServer = m.dir != a.clientDir
	if ok != nil {
		x.Response, x.HasResponse = ok.x.Method, true
		if x.Queue == "" {
			x.Queue = ok.x.Queue // queue.declare with a server-named queue
		}
		e.ElapsedTime = ok.ts.Sub(m.ts).Milliseconds()
	}
	e.AMQP = x
	sh.emit(s, e)
}
