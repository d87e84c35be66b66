package dissect

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// dnsDecoder is a shard's reusable DNS layer.
type dnsDecoder struct{ l layers.DNS }

const (
	maxPendingDNS = 256
	maxDNSTCPMsg  = 65535 + 2
)

// looksDNS reports whether a UDP payload is a DNS message. On the DNS ports
// a header is enough; elsewhere the message must parse.
func looksDNS(b []byte, port53 bool) bool {
	if len(b) < 12 {
		return false
	}
	if port53 {
		return true
	}
	qd := binary.BigEndian.Uint16(b[4:6])
	op := (b[2] >> 3) & 0xf
	if qd != 1 || op > 5 || b[3]&0x40 != 0 { // one question, known opcode, Z bit clear
		return false
	}
	var l layers.DNS
	return l.DecodeFromBytes(b, gopacket.NilDecodeFeedback) == nil
}

// looksDNSTCP reports whether a TCP stream starts with a length-prefixed
// DNS message.
func looksDNSTCP(b []byte, port53 bool) bool {
	if len(b) < 2+12 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b))
	if n < 12 {
		return false
	}
	if port53 {
		return true
	}
	return n == len(b)-2 && looksDNS(b[2:], false)
}

// dnsApp pairs queries and responses by id within a stream (which is the
// 5-tuple), over UDP datagrams or TCP length-prefixed messages.
type dnsApp struct {
	tcp     bool
	buf     [2][]byte // TCP: bytes of an incomplete message
	skip    [2]bool   // TCP: framing lost after a gap
	pending []dnsPending
}

type dnsPending struct {
	ts  time.Time
	dir int
	id  uint16
	op  string
	msg DNSMessage
}

func newDNSApp(tcp bool) *dnsApp { return &dnsApp{tcp: tcp} }

func (a *dnsApp) data(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	if !a.tcp {
		a.message(sh, s, dir, b, ts)
		return
	}
	if a.skip[dir] {
		return
	}
	buf := append(a.buf[dir], b...)
	all := len(buf)
	for len(buf) >= 2 {
		n := int(binary.BigEndian.Uint16(buf))
		if len(buf) < 2+n {
			break
		}
		a.message(sh, s, dir, buf[2:2+n], ts)
		buf = buf[2+n:]
	}
	if len(buf) == all {
		a.buf[dir] = buf // nothing consumed: keep appending
	} else {
		a.buf[dir] = append(a.buf[dir][:0], buf...)
	}
}

func (a *dnsApp) gap(sh *shard, s *stream, dir int, n int) {
	if a.tcp {
		// Without the length prefix the next message cannot be found.
		a.skip[dir] = true
		a.buf[dir] = nil
	}
}

func (a *dnsApp) end(sh *shard, s *stream, dir int, ts time.Time) {}

func (a *dnsApp) close(sh *shard, s *stream) {
	for _, q := range a.pending {
		a.emit(sh, s, &q, nil, time.Time{})
	}
	a.pending = nil
}

func (a *dnsApp) message(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	l := &sh.dns.l
	if err := l.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		sh.c.l7Errors.Add(1)
		return
	}
	msg := dnsMessage(l)
	if !l.QR {
		if len(a.pending) >= maxPendingDNS {
			a.emit(sh, s, &a.pending[0], nil, time.Time{})
			a.pending = a.pending[1:]
		}
		a.pending = append(a.pending, dnsPending{ts: ts, dir: dir, id: l.ID, op: l.OpCode.String(), msg: msg})
		return
	}
	for i := range a.pending {
		q := &a.pending[i]
		if q.id == l.ID && q.dir != dir {
			a.emit(sh, s, q, &msg, ts)
			a.pending = append(a.pending[:i], a.pending[i+1:]...)
			return
		}
	}
	// A response whose query was not captured still says what was asked.
	sh.c.orphans.Add(1)
	q := dnsPending{ts: ts, dir: 1 - dir, id: l.ID, op: l.OpCode.String()}
	q.msg.Questions = msg.Questions
	a.emit(sh, s, &q, &msg, ts)
}

func (a *dnsApp) emit(sh *shard, s *stream, q *dnsPending, resp *DNSMessage, rts time.Time) {
	e := sh.newEntry(s, q.dir, q.ts)
	e.Protocol = Protocol{Name: "dns", Abbr: "DNS", Layer4: s.l4name()}
	x := &DNS{ID: q.id, Opcode: q.op, Request: q.msg}
	if resp != nil {
		x.Response, x.HasResponse = *resp, true
		e.ElapsedTime = rts.Sub(q.ts).Milliseconds()
	}
	e.DNS = x
	sh.emit(s, e)
}

func dnsMessage(l *layers.DNS) DNSMessage {
	m := DNSMessage{
		Flags: DNSFlags{QR: l.QR, AA: l.AA, TC: l.TC, RD: l.RD, RA: l.RA},
		Code:  rcodeName(l.ResponseCode),
	}
	for _, q := range l.Questions {
		m.Questions = append(m.Questions, DNSQuestion{Name: string(q.Name), Type: dnsTypeName(q.Type), Class: q.Class.String()})
	}
	m.Answers = dnsRecords(l.Answers)
	m.Authorities = dnsRecords(l.Authorities)
	m.Additionals = dnsRecords(l.Additionals)
	return m
}

func dnsRecords(rrs []layers.DNSResourceRecord) []DNSRecord {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]DNSRecord, 0, len(rrs))
	for i := range rrs {
		rr := &rrs[i]
		r := DNSRecord{Name: string(rr.Name), Type: dnsTypeName(rr.Type), Class: rr.Class.String(), TTL: rr.TTL}
		switch rr.Type {
		case layers.DNSTypeA, layers.DNSTypeAAAA:
			if ip, ok := netip.AddrFromSlice(rr.IP); ok {
				r.IP = ip.Unmap().String()
				if rr.Type == layers.DNSTypeAAAA {
					r.IP = ip.String()
				}
			}
		case layers.DNSTypeCNAME:
			r.CNAME = string(rr.CNAME)
		case layers.DNSTypeNS:
			r.Data = string(rr.NS)
		case layers.DNSTypePTR:
			r.Data = string(rr.PTR)
		case layers.DNSTypeMX:
			r.Data = fmt.Sprintf("%d %s", rr.MX.Preference, rr.MX.Name)
		case layers.DNSTypeSRV:
			r.Data = fmt.Sprintf("%d %d %d %s", rr.SRV.Priority, rr.SRV.Weight, rr.SRV.Port, rr.SRV.Name)
		case layers.DNSTypeTXT:
			parts := make([]string, len(rr.TXTs))
			for j, t := range rr.TXTs {
				parts[j] = string(t)
			}
			r.Data = strings.Join(parts, "")
		case layers.DNSTypeSOA:
			r.Data = fmt.Sprintf("%s %s %d %d %d %d %d", rr.SOA.MName, rr.SOA.RName, rr.SOA.Serial,
				rr.SOA.Refresh, rr.SOA.Retry, rr.SOA.Expire, rr.SOA.Minimum)
		}
		out = append(out, r)
	}
	return out
}

// dnsTypeName is the RFC mnemonic ("A", "AAAA", "TXT"), or "TYPEn".
func dnsTypeName(t layers.DNSType) string {
	switch t {
	case layers.DNSTypeA:
		return "A"
	case layers.DNSTypeNS:
		return "NS"
	case layers.DNSTypeCNAME:
		return "CNAME"
	case layers.DNSTypeSOA:
		return "SOA"
	case layers.DNSTypePTR:
		return "PTR"
	case layers.DNSTypeMX:
		return "MX"
	case layers.DNSTypeTXT:
		return "TXT"
	case layers.DNSTypeAAAA:
		return "AAAA"
	case layers.DNSTypeSRV:
		return "SRV"
	case layers.DNSTypeOPT:
		return "OPT"
	case 64:
		return "SVCB"
	case 65:
		return "HTTPS"
	case 255:
		return "ANY"
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// rcodeName is the RFC 6895 mnemonic of a response code.
func rcodeName(c layers.DNSResponseCode) string {
	names := [...]string{"NoError", "FormErr", "ServFail", "NXDomain", "NotImp", "Refused", "YXDomain", "YXRRSet", "NXRRSet", "NotAuth", "NotZone"}
	if int(c) < len(names) {
		return names[c]
	}
	return "RCODE" + strconv.Itoa(int(c))
}
