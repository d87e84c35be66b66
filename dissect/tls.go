package dissect

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"time"
)

// maxTLSHandshake bounds the handshake bytes kept per direction while
// waiting for a complete ClientHello or ServerHello.
const maxTLSHandshake = 64 << 10

// looksTLS reports whether b starts a TLS handshake record (SSL 3.0 to TLS 1.3).
func looksTLS(b []byte) bool {
	return len(b) >= 6 && b[0] == 22 && b[1] == 3 && b[2] <= 4 && (b[5] == 1 || b[5] == 2)
}

// tlsApp extracts the ClientHello and ServerHello of a connection and makes
// one entry. The rest of the connection is encrypted and ignored.
type tlsApp struct {
	rec     [2][]byte // record bytes not yet parsed
	hs      [2][]byte // handshake bytes of the hello being reassembled
	done    [2]bool
	info    TLS
	hello   bool      // ClientHello parsed
	ts      time.Time // ClientHello
	tsSrv   time.Time // ServerHello
	client  int
	emitted bool
}

func newTLSApp() *tlsApp { return &tlsApp{client: -1} }

func (a *tlsApp) data(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	if a.done[dir] || a.emitted {
		return
	}
	a.rec[dir] = append(a.rec[dir], b...)
	r := a.rec[dir]
	for len(r) >= 5 {
		n := int(binary.BigEndian.Uint16(r[3:5]))
		if len(r) < 5+n {
			break
		}
		if r[0] != 22 { // not a handshake record: the hello cannot follow
			a.stop(sh, s, dir, true)
			return
		}
		a.hs[dir] = append(a.hs[dir], r[5:5+n]...)
		r = r[5+n:]
		if a.handshake(sh, s, dir, ts) {
			return
		}
	}
	if len(r) != len(a.rec[dir]) {
		a.rec[dir] = append(a.rec[dir][:0], r...)
	}
	if len(a.rec[dir])+len(a.hs[dir]) > maxTLSHandshake {
		a.stop(sh, s, dir, true)
	}
}

// handshake parses a complete hello in hs[dir]; true when this direction is done.
func (a *tlsApp) handshake(sh *shard, s *stream, dir int, ts time.Time) bool {
	h := a.hs[dir]
	if len(h) < 4 {
		return false
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if len(h) < 4+n {
		return false
	}
	body := h[4 : 4+n]
	var ok bool
	switch h[0] {
	case 1:
		ok = parseClientHello(body, &a.info)
		if ok {
			a.hello, a.ts, a.client = true, ts, dir
			s.clientIsB = dir == 1
		}
	case 2:
		ok = parseServerHello(body, &a.info)
		a.tsSrv = ts
		if ok && a.client < 0 {
			a.client, a.ts = 1-dir, ts
			s.clientIsB = a.client == 1
		}
	}
	if !ok {
		sh.c.l7Errors.Add(1)
	}
	a.stop(sh, s, dir, false)
	return true
}

// stop ends parsing of one direction and emits the entry once the hellos
// that can be seen have been.
func (a *tlsApp) stop(sh *shard, s *stream, dir int, failed bool) {
	a.done[dir] = true
	a.rec[dir], a.hs[dir] = nil, nil
	if a.done[0] && a.done[1] || a.info.NegotiatedVersion != "" {
		a.emit(sh, s)
	}
}

func (a *tlsApp) gap(sh *shard, s *stream, dir int, n int) {
	if !a.done[dir] {
		a.stop(sh, s, dir, true)
	}
}

func (a *tlsApp) end(sh *shard, s *stream, dir int, ts time.Time) {}

func (a *tlsApp) close(sh *shard, s *stream) { a.emit(sh, s) }

func (a *tlsApp) emit(sh *shard, s *stream) {
	if a.emitted || !a.hello && a.info.NegotiatedVersion == "" {
		return
	}
	a.emitted = true
	cd := a.client
	if cd < 0 {
		cd = s.clientDir()
	}
	ts := a.ts
	if ts.IsZero() {
		ts = s.first
	}
	e := sh.newEntry(s, cd, ts)
	v := a.info.NegotiatedVersion
	if v == "" && len(a.info.OfferedVersions) > 0 {
		v = a.info.OfferedVersions[0]
	}
	e.Protocol = Protocol{Name: "tls", Abbr: "TLS", Version: v, Layer4: "tcp"}
	if a.hello && !a.tsSrv.IsZero() {
		e.ElapsedTime = a.tsSrv.Sub(a.ts).Milliseconds() // handshake round trip
	}
	info := a.info
	e.TLS = &info
	sh.emit(s, e)
}

// tlsVersionName names a protocol version; GREASE and unknown values get hex.
func tlsVersionName(v uint16) string {
	switch v {
	case 0x0300:
		return "SSL 3.0"
	case 0x0301:
		return "1.0"
	case 0x0302:
		return "1.1"
	case 0x0303:
		return "1.2"
	case 0x0304:
		return "1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// reader is a bounds-checked cursor over a handshake message.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) u8() int {
	if len(r.b) < 1 {
		r.ok = false
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return int(v)
}

func (r *reader) u16() int {
	if len(r.b) < 2 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return int(v)
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.ok = false
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func parseClientHello(body []byte, info *TLS) bool {
	r := &reader{b: body, ok: true}
	legacy := uint16(r.u16())
	r.bytes(32)
	r.bytes(r.u8())  // session id
	r.bytes(r.u16()) // cipher suites
	r.bytes(r.u8())  // compression methods
	if !r.ok {
		return false
	}
	var versions []string
	if len(r.b) >= 2 {
		ext := &reader{b: r.bytes(r.u16()), ok: true}
		for len(ext.b) >= 4 && ext.ok {
			typ := ext.u16()
			data := &reader{b: ext.bytes(ext.u16()), ok: true}
			switch typ {
			case 0: // server_name
				list := &reader{b: data.bytes(data.u16()), ok: true}
				for len(list.b) >= 3 && list.ok {
					kind := list.u8()
					name := list.bytes(list.u16())
					if kind == 0 && list.ok && info.ServerName == "" {
						info.ServerName = string(name)
					}
				}
			case 16: // application_layer_protocol_negotiation
				list := &reader{b: data.bytes(data.u16()), ok: true}
				for len(list.b) >= 1 && list.ok {
					p := list.bytes(list.u8())
					if list.ok {
						info.ALPN = append(info.ALPN, string(p))
					}
				}
			case 43: // supported_versions
				list := &reader{b: data.bytes(data.u8()), ok: true}
				for len(list.b) >= 2 {
					v := uint16(list.u16())
					if !isGREASE(v) {
						versions = append(versions, tlsVersionName(v))
					}
				}
			}
		}
		if !ext.ok {
			return false
		}
	}
	if len(versions) == 0 {
		versions = []string{tlsVersionName(legacy)}
	}
	info.OfferedVersions = versions
	return true
}

func parseServerHello(body []byte, info *TLS) bool {
	r := &reader{b: body, ok: true}
	legacy := uint16(r.u16())
	r.bytes(32)
	r.bytes(r.u8())
	suite := uint16(r.u16())
	r.u8()
	if !r.ok {
		return false
	}
	version := legacy
	if len(r.b) >= 2 {
		ext := &reader{b: r.bytes(r.u16()), ok: true}
		for len(ext.b) >= 4 && ext.ok {
			typ := ext.u16()
			data := &reader{b: ext.bytes(ext.u16()), ok: true}
			switch typ {
			case 16:
				list := &reader{b: data.bytes(data.u16()), ok: true}
				if p := list.bytes(list.u8()); list.ok {
					info.NegotiatedALPN = string(p)
				}
			case 43:
				if v := data.u16(); data.ok {
					version = uint16(v)
				}
			}
		}
		if !ext.ok {
			return false
		}
	}
	info.NegotiatedVersion = tlsVersionName(version)
	info.CipherSuite = tls.CipherSuiteName(suite)
	return true
}
