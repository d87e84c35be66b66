package kfl

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Prefilter is what the kernel may drop before user space sees a packet. A
// packet passes iff
//
//	(Protocols is empty or its IP protocol is listed) and
//	(Prefixes is empty or its source or destination is inside one) and
//	(Ports is empty or its source or destination port is listed, or it is
//	 a non-first IP fragment, which carries no ports).
//
// Packets of protocols without ports (ICMP) fail a port constraint, as in
// the kernel (bpf/capture.c); their entries have port 0, so pushdown never
// constrains ports to a set that holds 0. All is true when nothing is
// pushable: capture everything. The filter is sound: every packet of every stream that one of
// the queries could select passes.
type Prefilter struct {
	All       bool
	Protocols []uint8        // IP protocol numbers: 6 tcp, 17 udp, 1 icmp, 58 icmpv6
	Prefixes  []netip.Prefix // masked
	Ports     []uint16
}

// IP protocol numbers.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// maxPortRange is the widest port range (e.g. dst.port >= 8000 and
// dst.port < 9000) that is pushed as a list; wider ones leave ports
// unconstrained.
const maxPortRange = 1024

// Pushdown derives the prefilter for a set of queries (every job and
// trigger): per dimension the union of what each query needs, and
// unconstrained as soon as one query leaves the dimension unconstrained.
func Pushdown(qs ...*Query) Prefilter {
	acc := constraint{empty: true}
	for _, q := range qs {
		if q == nil {
			continue
		}
		acc = acc.or(q.push)
	}
	if acc.empty {
		// No query can match anything (or there are none): capturing all is
		// the sound answer and keeps "no jobs" from looking like a filter.
		return Prefilter{All: true}
	}
	return acc.prefilter()
}

// Protocols with ports, as the kernel's port check knows them.
const (
	protoSCTP    uint8 = 132
	protoUDPLite uint8 = 136
)

// Accepts reports whether the kernel must pass a packet: the reference
// semantics of the prefilter, for tests of the BPF side. nonFirstFragment
// is a non-first IP fragment, which carries no ports.
func (p Prefilter) Accepts(proto uint8, src, dst netip.Addr, sport, dport uint16, nonFirstFragment bool) bool {
	if p.All {
		return true
	}
	if len(p.Protocols) > 0 && !slices.Contains(p.Protocols, proto) {
		return false
	}
	if len(p.Prefixes) > 0 {
		src, dst = src.Unmap(), dst.Unmap()
		in := false
		for _, pf := range p.Prefixes {
			if pf.Contains(src) || pf.Contains(dst) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if len(p.Ports) > 0 && !nonFirstFragment {
		switch proto {
		case ProtoTCP, ProtoUDP, protoSCTP, protoUDPLite:
		default:
			return false
		}
		if !slices.Contains(p.Ports, sport) && !slices.Contains(p.Ports, dport) {
			return false
		}
	}
	return true
}

// Prefilter returns the pushdown of this query alone.
func (q *Query) Prefilter() Prefilter { return Pushdown(q) }

// constraint over-approximates the entries a (sub)query matches as a
// product of three independent sets. A nil set means "any".
type constraint struct {
	empty  bool // matches nothing
	protos map[uint8]bool
	pfx    []netip.Prefix // "src or dst inside one"
	ports  map[uint16]bool
}

var anything = constraint{}

func (c constraint) prefilter() Prefilter {
	p := Prefilter{}
	for k := range c.protos {
		p.Protocols = append(p.Protocols, k)
	}
	slices.Sort(p.Protocols)
	p.Prefixes = append(p.Prefixes, c.pfx...)
	slices.SortFunc(p.Prefixes, func(a, b netip.Prefix) int {
		if d := a.Addr().Compare(b.Addr()); d != 0 {
			return d
		}
		return a.Bits() - b.Bits()
	})
	p.Prefixes = slices.Compact(p.Prefixes)
	for k := range c.ports {
		p.Ports = append(p.Ports, k)
	}
	slices.Sort(p.Ports)
	p.All = c.protos == nil && c.pfx == nil && c.ports == nil
	return p
}

// and: a conjunction is at least as narrow as either side. Protocols are a
// single value per entry, so the sets intersect; addresses and ports are
// "src or dst", so intersecting would be unsound (src.ip == A and dst.ip ==
// B) and one side is kept instead, the narrower.
func (a constraint) and(b constraint) constraint {
	if a.empty || b.empty {
		return constraint{empty: true}
	}
	out := constraint{}
	switch {
	case a.protos == nil:
		out.protos = b.protos
	case b.protos == nil:
		out.protos = a.protos
	default:
		out.protos = map[uint8]bool{}
		for k := range a.protos {
			if b.protos[k] {
				out.protos[k] = true
			}
		}
		if len(out.protos) == 0 {
			return constraint{empty: true}
		}
	}
	out.pfx = a.pfx
	if a.pfx == nil || (b.pfx != nil && narrowerPfx(b.pfx, a.pfx)) {
		out.pfx = b.pfx
	}
	out.ports = a.ports
	if a.ports == nil || (b.ports != nil && len(b.ports) < len(a.ports)) {
		out.ports = b.ports
	}
	return out
}

func narrowerPfx(a, b []netip.Prefix) bool {
	size := func(ps []netip.Prefix) float64 {
		s := 0.0
		for _, p := range ps {
			s += float64(uint64(1) << min(63, p.Addr().BitLen()-p.Bits()))
		}
		return s
	}
	return size(a) < size(b)
}

// or: a disjunction needs the union in every dimension.
func (a constraint) or(b constraint) constraint {
	if a.empty {
		return b
	}
	if b.empty {
		return a
	}
	out := constraint{}
	if a.protos != nil && b.protos != nil {
		out.protos = map[uint8]bool{}
		for k := range a.protos {
			out.protos[k] = true
		}
		for k := range b.protos {
			out.protos[k] = true
		}
	}
	if a.pfx != nil && b.pfx != nil {
		out.pfx = append(append([]netip.Prefix{}, a.pfx...), b.pfx...)
	}
	if a.ports != nil && b.ports != nil {
		out.ports = map[uint16]bool{}
		for k := range a.ports {
			out.ports[k] = true
		}
		for k := range b.ports {
			out.ports[k] = true
		}
	}
	return out
}

func protoSet(ps ...uint8) constraint {
	m := map[uint8]bool{}
	for _, p := range ps {
		m[p] = true
	}
	return constraint{protos: m}
}

// protocolConstraint is what an entry's protocol name says about its IP
// protocol. DNS runs over UDP and TCP; every other L7 protocol kflcap
// dissects runs over TCP. Names the dissectors do not know say nothing.
func protocolConstraint(name string) constraint {
	switch name {
	case "tcp", "http", "http2", "grpc", "tls", "redis", "kafka", "amqp", "postgres":
		return protoSet(ProtoTCP)
	case "udp":
		return protoSet(ProtoUDP)
	case "dns":
		return protoSet(ProtoTCP, ProtoUDP)
	case "icmp":
		return protoSet(ProtoICMP, ProtoICMPv6)
	}
	return anything
}

// pushQuery walks a KFL tree. Only what is certainly implied is kept:
// protocol barewords, protocol.layer4/name equality, src/dst ip equality and
// .inCidr(), src/dst port equality and narrow ranges. "not" and everything
// else give "any", which is always sound.
func pushQuery(n node, macros map[string]*macroDef) constraint {
	return pushNode(n, macros, 0)
}

func pushNode(n node, macros map[string]*macroDef, depth int) constraint {
	if depth > 32 { // macro chains are checked for cycles at compile time
		return anything
	}
	switch x := n.(type) {
	case *paren:
		return pushNode(x.x, macros, depth)
	case *binary:
		switch x.word {
		case "and":
			return pushAnd(x, macros, depth)
		case "or":
			return pushNode(x.l, macros, depth).or(pushNode(x.r, macros, depth))
		}
		if x.op == tEq || isCmp(x.op) {
			return pushCompare(x)
		}
	case *ident:
		if isProtocolWord(x.name) {
			return protocolConstraint(x.name)
		}
		if m, ok := macros[x.name]; ok {
			return pushNode(m.root, macros, depth+1)
		}
	case *literal:
		if x.kind == tIdent && x.text == "false" {
			return constraint{empty: true}
		}
	case *call:
		if s, ok := x.fun.(*selector); ok && s.name == "inCidr" && len(x.args) == 1 {
			if f := fieldName(s.x); f == "src.ip" || f == "dst.ip" {
				if l, ok := unparen(x.args[0]).(*literal); ok && l.kind == tString {
					if p, ok := parsePrefix(l.text); ok {
						return constraint{pfx: []netip.Prefix{p}}
					}
				}
			}
		}
	}
	return anything
}

func parsePrefix(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p, true
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// fieldName returns the dotted name of a plain selector ("src.ip"), or "".
func fieldName(n node) string {
	switch x := unparen(n).(type) {
	case *ident:
		return x.name
	case *selector:
		if x.star {
			return ""
		}
		if b := fieldName(x.x); b != "" {
			return b + "." + x.name
		}
	}
	return ""
}

func pushCompare(x *binary) constraint {
	op := x.op
	f, lit := fieldName(x.l), unparen(x.r)
	if f == "" {
		f, lit, op = fieldName(x.r), unparen(x.l), flip(op)
	}
	l, ok := lit.(*literal)
	if !ok {
		if u, ok := lit.(*unary); ok && u.op == "-" {
			return anything // negative ports select nothing but stay simple
		}
		return anything
	}
	switch f {
	case "src.ip", "dst.ip":
		if op == tEq && l.kind == tString {
			if p, ok := parsePrefix(l.text); ok && p.IsSingleIP() {
				return constraint{pfx: []netip.Prefix{p}}
			}
		}
	case "src.port", "dst.port":
		if _, lo, hi, ok := portRange(x); ok {
			return portConstraint(lo, hi)
		}
	case "protocol.layer4", "protocol.name":
		if op == tEq && l.kind == tString {
			c := protocolConstraint(l.text)
			if f == "protocol.layer4" && l.text != "tcp" && l.text != "udp" {
				return anything
			}
			return c
		}
	}
	return anything
}

// String renders the prefilter as explain shows it.
func (p Prefilter) String() string {
	if p.All {
		return "capture everything (nothing pushable)"
	}
	var parts []string
	if len(p.Protocols) > 0 {
		var s []string
		for _, pr := range p.Protocols {
			s = append(s, protoName(pr))
		}
		parts = append(parts, "protocol in {"+strings.Join(s, ", ")+"}")
	}
	if len(p.Prefixes) > 0 {
		var s []string
		for _, pr := range p.Prefixes {
			s = append(s, pr.String())
		}
		parts = append(parts, "src or dst in {"+strings.Join(s, ", ")+"}")
	}
	if len(p.Ports) > 0 {
		parts = append(parts, "src or dst port in {"+portList(p.Ports)+"}")
	}
	return strings.Join(parts, " and ")
}

func protoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}

// portList prints ports with runs collapsed: "53, 80, 8000-8010".
func portList(ps []uint16) string {
	var b strings.Builder
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if j > i+1 {
			fmt.Fprintf(&b, "%d-%d", ps[i], ps[j])
		} else {
			fmt.Fprintf(&b, "%d", ps[i])
			if j == i+1 {
				fmt.Fprintf(&b, ", %d", ps[j])
			}
		}
		i = j + 1
	}
	return b.String()
}

// pushAnd handles a chain of "and": port comparisons on the same field
// intersect into one range (dst.port >= 8000 and dst.port < 8010), which is
// sound because they constrain the same value; everything else combines
// with constraint.and.
func pushAnd(x *binary, macros map[string]*macroDef, depth int) constraint {
	var terms []node
	var flat func(n node)
	flat = func(n node) {
		n = unparen(n)
		if b, ok := n.(*binary); ok && b.word == "and" {
			flat(b.l)
			flat(b.r)
			return
		}
		terms = append(terms, n)
	}
	flat(x)
	ranges := map[string][2]int64{}
	out := anything
	for _, t := range terms {
		if f, lo, hi, ok := portRange(t); ok {
			r, seen := ranges[f]
			if !seen {
				r = [2]int64{0, 65535}
			}
			ranges[f] = [2]int64{max(r[0], lo), min(r[1], hi)}
			continue
		}
		out = out.and(pushNode(t, macros, depth))
	}
	for _, r := range ranges {
		out = out.and(portConstraint(r[0], r[1]))
	}
	return out
}

// portRange recognises src.port/dst.port compared with an integer constant.
func portRange(n node) (field string, lo, hi int64, ok bool) {
	x, isBin := n.(*binary)
	if !isBin || !isCmp(x.op) || x.op == tNe {
		return "", 0, 0, false
	}
	op := x.op
	f, lit := fieldName(x.l), unparen(x.r)
	if f == "" {
		f, lit, op = fieldName(x.r), unparen(x.l), flip(op)
	}
	l, isLit := lit.(*literal)
	if (f != "src.port" && f != "dst.port") || !isLit || (l.kind != tInt && l.kind != tString) {
		return "", 0, 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(l.text), 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	lo, hi = 0, 65535
	switch op {
	case tEq:
		lo, hi = v, v
	case tLt:
		hi = v - 1
	case tLe:
		hi = v
	case tGt:
		lo = v + 1
	case tGe:
		lo = v
	}
	return f, lo, hi, true
}

func portConstraint(lo, hi int64) constraint {
	lo, hi = max(lo, 0), min(hi, 65535)
	if lo > hi {
		return constraint{empty: true}
	}
	// Port 0 is what entries of portless protocols (ICMP) have, and the
	// kernel drops portless packets under a port constraint: a range that
	// holds 0 cannot be pushed soundly.
	if hi-lo+1 > maxPortRange || lo == 0 {
		return anything
	}
	m := map[uint16]bool{}
	for p := lo; p <= hi; p++ {
		m[uint16(p)] = true
	}
	return constraint{ports: m}
}
