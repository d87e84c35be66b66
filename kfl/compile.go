package kfl

import (
	"bytes"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kflcap/kflcap/dissect"
)

// cond is a compiled condition. Evaluating one never allocates for the
// fields of the entry model; only helpers that must decode data (.json()
// with escaped strings, regexes on IP addresses) may.
type cond func(e *dissect.Entry) bool

// operand is a compiled non-condition expression: a constant, a field or a
// computed value. Single-valued operands set one; wildcards set each, which
// reports whether pred holds for any of the values (and is false when there
// are none: comparing a missing field is false).
type operand struct {
	kind   Kind
	konst  bool
	c      value          // the constant when konst
	re     *regexp.Regexp // KindRegex constants
	one    func(e *dissect.Entry) (value, bool)
	each   func(e *dissect.Entry, pred func(value) bool) bool
	field  string // display path when the operand is a field
	mapVal bool   // values of a map slot (headers, query): untyped text
	at     int

	// Typed views of one, when the field has them (see field.getStr).
	str func(e *dissect.Entry) (string, bool)
	num func(e *dissect.Entry) (int64, bool)
	ip  func(e *dissect.Entry) (netip.Addr, bool)
	cd  cond // when the operand is a condition (a helper's result): used as is
}

func (o *operand) any(pred func(value) bool) cond {
	if o.konst { // decided at compile time
		return constCond(pred(o.c))
	}
	if o.each != nil {
		each := o.each
		return func(e *dissect.Entry) bool { return each(e, pred) }
	}
	one := o.one
	return func(e *dissect.Entry) bool {
		v, ok := one(e)
		return ok && pred(v)
	}
}

func (o *operand) present() cond {
	if o.kind == KindJSON { // a JSON null is as absent as a missing key
		return o.any(func(v value) bool { return v.k != KindNil })
	}
	return o.any(func(value) bool { return true })
}

type compiler struct {
	src        string
	opts       *options
	macroStack []string
	uses       []FieldUse
	limit      int
	hasLimit   bool
	redact     []string
	// base is added to error offsets while compiling a macro's body, whose
	// errors are reported at the place the macro is used.
	inMacro string
	useAt   int
}

// FieldUse is one field a query reads, for explain.
type FieldUse struct {
	Path string
	Type string
}

// soft marks err as "not KFL" (see Error.notKFL).
func (c *compiler) soft(err *Error) *Error {
	err.notKFL = c.inMacro == ""
	return err
}

func (c *compiler) errAt(off int, format string, a ...any) *Error {
	if c.inMacro != "" {
		return errorAt(c.opts.origSrc, c.useAt, "in macro %q: %s", c.inMacro, errorAt(c.src, off, format, a...).Msg)
	}
	return errorAt(c.src, off, format, a...)
}

// top compiles the whole query: "limit(n)" and "redact(…)" are directives
// and may only be top-level "and" terms.
func (c *compiler) top(n node) (cond, *Error) {
	var terms []node
	var flatten func(n node)
	flatten = func(n node) {
		switch x := n.(type) {
		case *paren:
			flatten(x.x)
		case *binary:
			if x.word == "and" {
				flatten(x.l)
				flatten(x.r)
				return
			}
			terms = append(terms, n)
		default:
			terms = append(terms, n)
		}
	}
	flatten(n)
	var conds []cond
	for _, t := range terms {
		if cl, ok := t.(*call); ok {
			if id, ok := cl.fun.(*ident); ok && (id.name == "limit" || id.name == "redact") {
				if err := c.directive(id.name, cl); err != nil {
					return nil, err
				}
				continue
			}
		}
		cd, err := c.cond(t)
		if err != nil {
			return nil, err
		}
		conds = append(conds, cd)
	}
	return andAll(conds), nil
}

func andAll(conds []cond) cond {
	switch len(conds) {
	case 0:
		return func(*dissect.Entry) bool { return true }
	case 1:
		return conds[0]
	case 2:
		a, b := conds[0], conds[1]
		return func(e *dissect.Entry) bool { return a(e) && b(e) }
	}
	return func(e *dissect.Entry) bool {
		for _, c := range conds {
			if !c(e) {
				return false
			}
		}
		return true
	}
}

func orAll(conds []cond) cond {
	switch len(conds) {
	case 1:
		return conds[0]
	case 2:
		a, b := conds[0], conds[1]
		return func(e *dissect.Entry) bool { return a(e) || b(e) }
	}
	return func(e *dissect.Entry) bool {
		for _, c := range conds {
			if c(e) {
				return true
			}
		}
		return false
	}
}

func (c *compiler) directive(name string, cl *call) *Error {
	if name == "limit" {
		if c.hasLimit {
			return c.errAt(cl.at, "limit() is given twice")
		}
		if len(cl.args) != 1 {
			return c.errAt(cl.at, "limit(n) takes one argument, got %d", len(cl.args))
		}
		o, err := c.operand(cl.args[0])
		if err != nil {
			return err
		}
		if !o.konst || (o.kind != KindInt) || o.c.n < 1 || o.c.n > math.MaxInt32 {
			return c.errAt(startPos(cl.args[0]), "limit(n) needs a positive integer constant")
		}
		c.limit, c.hasLimit = int(o.c.n), true
		return nil
	}
	if len(cl.args) == 0 {
		return c.errAt(cl.at, `redact() needs at least one field path, e.g. redact("request.headers.Authorization")`)
	}
	for _, a := range cl.args {
		l, ok := unparen(a).(*literal)
		if !ok || l.kind != tString || strings.TrimSpace(l.text) == "" {
			return c.errAt(startPos(a), `redact() takes field paths as strings, e.g. "request.headers.Authorization"`)
		}
		c.redact = append(c.redact, l.text)
	}
	return nil
}

func unparen(n node) node {
	for {
		p, ok := n.(*paren)
		if !ok {
			return n
		}
		n = p.x
	}
}

var constTrue cond = func(*dissect.Entry) bool { return true }
var constFalse cond = func(*dissect.Entry) bool { return false }

func (c *compiler) cond(n node) (cond, *Error) {
	switch x := n.(type) {
	case *paren:
		return c.cond(x.x)
	case *binary:
		switch {
		case x.word != "":
			// A chain of one operator compiles to one loop, not to nested
			// closures as deep as the chain is long.
			var conds []cond
			for _, t := range chain(x, x.word) {
				cd, err := c.cond(t)
				if err != nil {
					return nil, err
				}
				conds = append(conds, cd)
			}
			if x.word == "and" {
				return andAll(conds), nil
			}
			return orAll(conds), nil
		case isCmp(x.op):
			return c.compare(x)
		}
	case *unary:
		if x.op == "not" {
			inner, err := c.cond(x.x)
			if err != nil {
				return nil, err
			}
			return func(e *dissect.Entry) bool { return !inner(e) }, nil
		}
	case *ident:
		if isProtocolWord(x.name) {
			c.use(x.name, "protocol")
			return protocolCond(x.name), nil
		}
		if m, ok := c.opts.macros[x.name]; ok {
			return c.macro(x, m)
		}
	case *literal:
		if x.kind == tIdent && x.text == "true" {
			return constTrue, nil
		}
		if x.kind == tIdent && x.text == "false" {
			return constFalse, nil
		}
	case *call:
		if id, ok := x.fun.(*ident); ok && (id.name == "limit" || id.name == "redact") {
			return nil, c.errAt(x.at, "%s() is a directive: use it only as a top-level \"and\" term (e.g. http and %s(…))", id.name, id.name)
		}
	}
	o, err := c.operand(n)
	if err != nil {
		return nil, err
	}
	if o.cd != nil {
		return o.cd, nil
	}
	if o.kind == KindBool {
		if o.konst {
			if o.c.t {
				return constTrue, nil
			}
			return constFalse, nil
		}
		return o.any(func(v value) bool { return v.t }), nil
	}
	what := format(n, false)
	if o.field != "" {
		return nil, c.errAt(startPos(n), "%s is %s, not a condition: compare it (%s == …) or test presence (%s != nil)", what, o.kind, what, what)
	}
	return nil, c.errAt(startPos(n), "%s is %s, not a condition", what, o.kind)
}

func protocolCond(w string) cond {
	switch w {
	case "tcp", "udp":
		return func(e *dissect.Entry) bool { return e.Protocol.Layer4 == w || e.Protocol.Name == w }
	case "icmp":
		return func(e *dissect.Entry) bool {
			return e.Protocol.Name == "icmp" || e.Protocol.Name == "icmpv6" || e.Protocol.Layer4 == "icmp"
		}
	}
	if w == "http2" { // gRPC runs over HTTP/2: its entries are http2 too
		return func(e *dissect.Entry) bool { return e.Protocol.Name == "http2" || e.Protocol.Name == "grpc" }
	}
	return func(e *dissect.Entry) bool { return e.Protocol.Name == w }
}

func (c *compiler) macro(id *ident, m *macroDef) (cond, *Error) {
	for _, s := range c.macroStack {
		if s == id.name {
			return nil, c.errAt(id.at, "macro %q refers to itself (%s)", id.name, strings.Join(append(c.macroStack, id.name), " → "))
		}
	}
	if len(c.macroStack) >= 16 {
		return nil, c.errAt(id.at, "macros nest deeper than 16 levels")
	}
	saved := *c
	if c.inMacro == "" {
		c.useAt = id.at
	}
	c.inMacro, c.src = id.name, m.src
	c.macroStack = append(c.macroStack, id.name)
	cd, err := c.cond(m.root)
	uses := c.uses
	*c = saved
	c.uses = uses
	return cd, err
}

func (c *compiler) use(path, typ string) {
	for _, u := range c.uses {
		if u.Path == path {
			return
		}
	}
	c.uses = append(c.uses, FieldUse{Path: path, Type: typ})
}

// --- operands ---

func (c *compiler) operand(n node) (*operand, *Error) {
	switch x := n.(type) {
	case *paren:
		return c.operand(x.x)
	case *literal:
		return c.literal(x)
	case *unary:
		if x.op == "not" {
			inner, err := c.operand(x.x)
			if err != nil {
				return nil, err
			}
			if inner.kind != KindBool {
				return nil, c.errAt(x.at, "\"not\" applies to conditions, and %s is %s (\"not\" binds tighter than comparisons: write not (… == …))", format(x.x, false), inner.kind)
			}
			cd, err := c.cond(n)
			if err != nil {
				return nil, err
			}
			return condOperand(cd, x.at), nil
		}
		inner, err := c.operand(x.x)
		if err != nil {
			return nil, err
		}
		if !inner.kind.numeric() {
			return nil, c.errAt(x.at, "unary \"-\" needs a number, and %s is %s", format(x.x, false), inner.kind)
		}
		if inner.konst {
			v := inner.c
			v.n, v.f = -v.n, -v.f
			return &operand{kind: inner.kind, konst: true, c: v, at: x.at}, nil
		}
		if inner.each != nil {
			return nil, c.errAt(x.at, "unary \"-\" cannot apply to a wildcard")
		}
		one := inner.one
		return &operand{kind: inner.kind, at: x.at, one: func(e *dissect.Entry) (value, bool) {
			v, ok := one(e)
			v.n, v.f = -v.n, -v.f
			return v, ok
		}}, nil
	case *binary:
		if x.op == tPlus || x.op == tMinus {
			return c.arith(x)
		}
		cd, err := c.cond(n)
		if err != nil {
			return nil, err
		}
		return condOperand(cd, startPos(n)), nil
	case *ident:
		if isProtocolWord(x.name) || c.opts.macros[x.name] != nil {
			cd, err := c.cond(n)
			if err != nil {
				return nil, err
			}
			return condOperand(cd, x.at), nil
		}
		return c.path(n)
	case *selector, *index:
		return c.path(n)
	case *call:
		return c.call(x)
	}
	return nil, c.errAt(n.pos(), "unexpected expression")
}

func condOperand(cd cond, at int) *operand {
	return &operand{kind: KindBool, at: at, cd: cd, one: func(e *dissect.Entry) (value, bool) { return value{t: cd(e)}, true }}
}

func (c *compiler) literal(x *literal) (*operand, *Error) {
	o := &operand{konst: true, at: x.at}
	switch x.kind {
	case tString:
		o.kind, o.c = KindString, value{s: x.text}
	case tRegex:
		re, err := regexp.Compile(x.text)
		if err != nil {
			msg := err.Error()
			msg = strings.TrimPrefix(msg, "error parsing regexp: ")
			return nil, c.errAt(x.at, "bad regex: %s", msg)
		}
		o.kind, o.re, o.c = KindRegex, re, value{s: x.text}
	case tInt:
		n, err := strconv.ParseInt(x.text, 10, 64)
		if err != nil {
			return nil, c.errAt(x.at, "integer %s is out of range", x.text)
		}
		o.kind, o.c = KindInt, value{n: n, f: float64(n)}
	case tFloat:
		f, err := strconv.ParseFloat(x.text, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, c.errAt(x.at, "number %s is out of range", x.text)
		}
		o.kind, o.c = KindFloat, value{f: f}
	default:
		switch x.text {
		case "true", "false":
			o.kind, o.c = KindBool, value{t: x.text == "true"}
		default:
			o.kind = KindNil
		}
	}
	return o, nil
}

func (c *compiler) arith(x *binary) (*operand, *Error) {
	l, err := c.operand(x.l)
	if err != nil {
		return nil, err
	}
	r, err := c.operand(x.r)
	if err != nil {
		return nil, err
	}
	for _, o := range []*operand{l, r} {
		if !o.kind.numeric() {
			return nil, c.errAt(o.at, "%q needs numbers, and this is %s", x.op.opText(), o.kind)
		}
		if o.each != nil {
			return nil, c.errAt(o.at, "arithmetic cannot apply to a wildcard")
		}
	}
	kind := KindInt
	switch {
	case l.kind == KindFloat || r.kind == KindFloat:
		kind = KindFloat
	case l.kind == KindTime || r.kind == KindTime:
		kind = KindTime
	}
	sign := int64(1)
	if x.op == tMinus {
		sign = -1
	}
	combine := func(a, b value) value {
		if kind == KindFloat {
			af, bf := a.f, b.f
			if l.kind != KindFloat {
				af = float64(a.n)
			}
			if r.kind != KindFloat {
				bf = float64(b.n)
			}
			return value{f: af + float64(sign)*bf}
		}
		n := a.n + sign*b.n
		return value{n: n, f: float64(n)}
	}
	if l.konst && r.konst {
		return &operand{kind: kind, konst: true, c: combine(l.c, r.c), at: startPos(x)}, nil
	}
	lf, rf := l.getter(), r.getter()
	return &operand{kind: kind, at: startPos(x), one: func(e *dissect.Entry) (value, bool) {
		a, ok := lf(e)
		if !ok {
			return value{}, false
		}
		b, ok := rf(e)
		if !ok {
			return value{}, false
		}
		return combine(a, b), true
	}}, nil
}

// getter returns a single-value accessor for a non-wildcard operand.
func (o *operand) getter() func(e *dissect.Entry) (value, bool) {
	if o.konst {
		v := o.c
		return func(*dissect.Entry) (value, bool) { return v, true }
	}
	return o.one
}

// --- calls ---

var methodNames = []string{"startsWith", "endsWith", "contains", "json", "inCidr"}
var funcNames = []string{"now", "datetime", "seconds", "minutes", "hours", "days", "limit", "redact"}

func (c *compiler) call(x *call) (*operand, *Error) {
	switch f := x.fun.(type) {
	case *ident:
		return c.function(f.name, x)
	case *selector:
		switch f.name {
		case "startsWith", "endsWith", "contains", "inCidr":
			return c.textMethod(f, x)
		case "json":
			return c.path(x)
		}
		if s := suggest(f.name, methodNames); s != "" {
			return nil, c.soft(c.errAt(f.at, "unknown helper .%s() (did you mean .%s()?)", f.name, s))
		}
		return nil, c.soft(c.errAt(f.at, "unknown helper .%s(); helpers are .%s()", f.name, strings.Join(methodNames, "(), .")))
	}
	return nil, c.errAt(x.at, "only helpers can be called")
}

var dateLayouts = []string{"1/2/2006, 3:04:05 PM", "1/2/2006, 15:04:05", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

func (c *compiler) function(name string, x *call) (*operand, *Error) {
	switch name {
	case "now":
		if len(x.args) != 0 {
			return nil, c.errAt(x.at, "now() takes no arguments")
		}
		clock := c.opts.clock
		return &operand{kind: KindTime, at: x.at, one: func(*dissect.Entry) (value, bool) {
			n := clock()
			return value{n: n, f: float64(n)}, true
		}}, nil
	case "datetime":
		if len(x.args) != 1 {
			return nil, c.errAt(x.at, `datetime() takes one string, e.g. datetime("1/2/2006, 3:04:05 PM")`)
		}
		a, err := c.operand(x.args[0])
		if err != nil {
			return nil, err
		}
		if !a.konst || a.kind != KindString {
			return nil, c.errAt(a.at, `datetime() takes a string constant, e.g. datetime("1/2/2006, 3:04:05 PM")`)
		}
		for _, layout := range dateLayouts {
			if t, err := time.ParseInLocation(layout, a.c.s, time.Local); err == nil {
				n := t.UnixMilli()
				return &operand{kind: KindTime, konst: true, c: value{n: n, f: float64(n)}, at: x.at}, nil
			}
		}
		return nil, c.errAt(a.at, `datetime(%q): not a date; use "1/2/2006, 3:04:05 PM" or RFC 3339`, a.c.s)
	case "seconds", "minutes", "hours", "days":
		unit := map[string]float64{"seconds": 1e3, "minutes": 60e3, "hours": 3600e3, "days": 86400e3}[name]
		if len(x.args) != 1 {
			return nil, c.errAt(x.at, "%s(n) takes one number", name)
		}
		a, err := c.operand(x.args[0])
		if err != nil {
			return nil, err
		}
		if !a.konst || (a.kind != KindInt && a.kind != KindFloat) {
			return nil, c.errAt(a.at, "%s(n) takes a number constant", name)
		}
		f := a.c.f * unit
		if math.Abs(f) > 1<<62 {
			return nil, c.errAt(a.at, "%s(n): duration out of range", name)
		}
		n := int64(math.Round(f))
		return &operand{kind: KindInt, konst: true, c: value{n: n, f: float64(n)}, at: x.at}, nil
	case "limit", "redact":
		return nil, c.errAt(x.at, "%s() is a directive: use it only as a top-level \"and\" term (e.g. http and %s(…))", name, name)
	}
	if s := suggest(name, funcNames); s != "" {
		return nil, c.soft(c.errAt(x.at, "unknown helper %s() (did you mean %s()?)", name, s))
	}
	return nil, c.soft(c.errAt(x.at, "unknown helper %s(); helpers are %s()", name, strings.Join(funcNames, "(), ")))
}

func (c *compiler) textMethod(f *selector, x *call) (*operand, *Error) {
	recv, err := c.operand(f.x)
	if err != nil {
		return nil, err
	}
	if len(x.args) != 1 {
		return nil, c.errAt(f.at, ".%s() takes one argument, got %d", f.name, len(x.args))
	}
	arg, err := c.operand(x.args[0])
	if err != nil {
		return nil, err
	}
	if !arg.konst || arg.kind != KindString {
		return nil, c.errAt(arg.at, ".%s() takes a string constant, got %s", f.name, arg.kind)
	}
	s := arg.c.s
	if f.name == "inCidr" {
		// The same normalisation as pushdown (IPv4-mapped prefixes become
		// IPv4 ones), so that matching and the prefilter agree.
		pfx, ok := parsePrefix(s)
		if !ok {
			return nil, c.errAt(arg.at, ".inCidr(%q): not a CIDR prefix like \"10.0.0.0/8\"", s)
		}
		if recv.ip != nil && !recv.konst {
			get := recv.ip
			return condOperand(func(e *dissect.Entry) bool {
				a, ok := get(e)
				return ok && (pfx.Contains(a.Unmap()) || pfx.Contains(a))
			}, f.at), nil
		}
		var pred func(value) bool
		switch recv.kind {
		case KindIP:
			pred = func(v value) bool { return pfx.Contains(v.ip.Unmap()) || pfx.Contains(v.ip) }
		case KindString, KindJSON:
			pred = func(v value) bool {
				if recv.kind == KindJSON && v.k != KindString {
					return false
				}
				a, err := netip.ParseAddr(v.s)
				return err == nil && (pfx.Contains(a.Unmap()) || pfx.Contains(a))
			}
		default:
			return nil, c.errAt(f.at, ".inCidr() applies to IP addresses, and %s is %s", format(f.x, false), recv.kind)
		}
		return c.boolFrom(recv, pred, f.at)
	}
	var ts func(a, b string) bool
	switch f.name {
	case "startsWith":
		ts = strings.HasPrefix
	case "endsWith":
		ts = strings.HasSuffix
	default:
		ts = strings.Contains
	}
	var tb func(a, b []byte) bool
	switch f.name {
	case "startsWith":
		tb = bytes.HasPrefix
	case "endsWith":
		tb = bytes.HasSuffix
	default:
		tb = bytes.Contains
	}
	if recv.kind == KindString && recv.str != nil && !recv.konst {
		get := recv.str
		return condOperand(func(e *dissect.Entry) bool { v, ok := get(e); return ok && ts(v, s) }, f.at), nil
	}
	sb := []byte(s)
	var pred func(value) bool
	switch recv.kind {
	case KindString:
		pred = func(v value) bool { return ts(v.s, s) }
	case KindBytes:
		pred = func(v value) bool { return tb(v.b, sb) }
	case KindJSON:
		pred = func(v value) bool { return v.k == KindString && ts(v.s, s) }
	case KindIP:
		pred = func(v value) bool { return ts(v.ip.String(), s) }
	default:
		return nil, c.errAt(f.at, ".%s() applies to text, and %s is %s", f.name, format(f.x, false), recv.kind)
	}
	return c.boolFrom(recv, pred, f.at)
}

func (c *compiler) boolFrom(recv *operand, pred func(value) bool, at int) (*operand, *Error) {
	if recv.konst {
		return &operand{kind: KindBool, konst: true, c: value{t: pred(recv.c)}, at: at}, nil
	}
	cd := recv.any(pred)
	return condOperand(cd, at), nil
}

// --- comparisons ---

// domain is what a comparison compares once both sides' kinds are known.
type domain uint8

const (
	dInt    domain = iota + 1 // int64
	dFloat                    // float64
	dString                   // string
	dBytes                    // []byte against a string
	dNumStr                   // untyped text (map values) against a number
	dIP                       // netip.Addr
	dBool                     // bool
	dJSON                     // JSON value against a constant of the kind in c.k
)

func flip(op tokKind) tokKind {
	switch op {
	case tLt:
		return tGt
	case tLe:
		return tGe
	case tGt:
		return tLt
	case tGe:
		return tLe
	}
	return op
}

func (c *compiler) compare(x *binary) (cond, *Error) {
	if u, ok := x.l.(*unary); ok && u.op == "not" {
		inner, err := c.operand(u.x)
		if err == nil && inner.kind != KindBool {
			return nil, c.errAt(u.at, "\"not\" binds tighter than %q: write not (%s %s %s)", x.op.opText(), format(u.x, false), x.op.opText(), format(x.r, false))
		}
	}
	l, err := c.operand(x.l)
	if err != nil {
		return nil, err
	}
	r, err := c.operand(x.r)
	if err != nil {
		return nil, err
	}
	op := x.op
	if l.konst && !r.konst || l.kind == KindRegex || l.kind == KindNil {
		l, r, op = r, l, flip(op)
	}
	ordered := op != tEq && op != tNe

	switch r.kind {
	case KindRegex:
		if ordered {
			return nil, c.errAt(x.at, "a regex can only be compared with == or !=")
		}
		if l.kind == KindString && l.str != nil && !l.konst {
			get, re, want := l.str, r.re, op == tEq
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && re.MatchString(v) == want }, nil
		}
		m, err := c.regexMatcher(l, r.re, x)
		if err != nil {
			return nil, err
		}
		if op == tNe {
			return l.any(func(v value) bool { return !m(v) }), nil
		}
		return l.any(m), nil
	case KindNil:
		if ordered {
			return nil, c.errAt(x.at, "nil can only be compared with == or !=")
		}
		if l.konst {
			res := l.kind == KindNil
			if op == tNe {
				res = !res
			}
			return constCond(res), nil
		}
		p := l.present()
		if op == tEq {
			return func(e *dissect.Entry) bool { return !p(e) }, nil
		}
		return p, nil
	}

	dom, rc, err := c.unify(l, r, x)
	if err != nil {
		return nil, err
	}
	if ordered && dom == dBool {
		return nil, c.errAt(x.at, "%q does not apply to bools", op.opText())
	}
	if r.konst {
		if l.konst {
			return constCond(cmpValues(dom, op, l.c, rc)), nil
		}
		if fast := typedCompare(l, dom, op, rc); fast != nil {
			return fast, nil
		}
		return l.any(constPred(dom, op, rc)), nil
	}
	if l.each != nil || r.each != nil {
		return nil, c.errAt(x.at, "a wildcard can only be compared with a constant")
	}
	lf, rf := l.getter(), r.getter()
	lk, rk := l.kind, r.kind
	return func(e *dissect.Entry) bool {
		a, ok := lf(e)
		if !ok {
			return false
		}
		b, ok := rf(e)
		if !ok {
			return false
		}
		if dom == dFloat { // mixed int/float: bring ints over
			if lk != KindFloat {
				a.f = float64(a.n)
			}
			if rk != KindFloat {
				b.f = float64(b.n)
			}
		}
		return cmpValues(dom, op, a, b)
	}, nil
}

func constCond(b bool) cond {
	if b {
		return constTrue
	}
	return constFalse
}

// unify type-checks l op r and returns the comparison domain and the right
// side's constant converted to it.
func (c *compiler) unify(l, r *operand, x *binary) (domain, value, *Error) {
	rc := r.c
	lk, rk := l.kind, r.kind
	mismatch := func() (domain, value, *Error) {
		what := format(x.l, false)
		if l.field == "" {
			what = format(x.r, false)
			lk, rk = rk, lk
		}
		hint := ""
		if lk.numeric() && rk == KindString {
			hint = " (not a number)"
		}
		return 0, value{}, c.errAt(r.at, "type mismatch: %s is %s, compared with %s%s", what, lk, rk, hint)
	}
	switch {
	case lk == KindJSON:
		if !r.konst {
			return 0, value{}, c.errAt(r.at, "values from .json() can only be compared with constants")
		}
		switch rk {
		case KindString:
			rc.k = KindString
		case KindInt, KindFloat:
			rc.k = KindFloat
			if rk == KindInt {
				rc.f = float64(rc.n)
			}
		case KindBool:
			rc.k = KindBool
		default:
			return mismatch()
		}
		return dJSON, rc, nil
	case lk.numeric() && rk.numeric():
		if lk == KindFloat || rk == KindFloat {
			if r.konst && rk != KindFloat {
				rc.f = float64(rc.n)
			}
			return dFloat, rc, nil
		}
		return dInt, rc, nil
	case lk.numeric() && rk == KindString && r.konst:
		// Ports (and other numbers) accept numeric strings: src.port == "80".
		s := strings.TrimSpace(rc.s)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return dInt, value{n: n, f: float64(n)}, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			if lk == KindFloat {
				return dFloat, value{f: f}, nil
			}
			return dFloat, value{f: f}, nil
		}
		return 0, value{}, c.errAt(r.at, "type mismatch: %s is a number (%+s), and %q is not a number", format(x.l, false), lk, rc.s)
	case lk == KindString && l.mapVal && rk.numeric() && r.konst:
		// Header and query values are untyped text: request.query.a > 42.
		if rk != KindFloat {
			rc.f = float64(rc.n)
		}
		return dNumStr, rc, nil
	case lk == KindString && rk == KindString:
		return dString, rc, nil
	case lk == KindBytes && rk == KindString:
		if !r.konst {
			return 0, value{}, c.errAt(r.at, "bodies can only be compared with constants")
		}
		rc.b = []byte(rc.s)
		return dBytes, rc, nil
	case lk == KindIP && (rk == KindIP || rk == KindString):
		if rk == KindString {
			if !r.konst {
				return 0, value{}, c.errAt(r.at, "IP addresses compare with IP fields or address constants")
			}
			a, err := netip.ParseAddr(strings.TrimSpace(rc.s))
			if err != nil {
				return 0, value{}, c.errAt(r.at, "%q is not an IP address (use .inCidr(\"10.0.0.0/8\") for networks)", rc.s)
			}
			rc.ip = a.Unmap()
		}
		return dIP, rc, nil
	case lk == KindBool && rk == KindBool:
		return dBool, rc, nil
	}
	return mismatch()
}

func cmpOrder(op tokKind, c int) bool {
	switch op {
	case tEq:
		return c == 0
	case tNe:
		return c != 0
	case tLt:
		return c < 0
	case tLe:
		return c <= 0
	case tGt:
		return c > 0
	case tGe:
		return c >= 0
	}
	return false
}

// cmpOrdered applies a comparison operator to two numbers.
func cmpOrdered[T int64 | float64](op tokKind, a, b T) bool {
	switch op {
	case tEq:
		return a == b
	case tNe:
		return a != b
	case tLt:
		return a < b
	case tLe:
		return a <= b
	case tGt:
		return a > b
	case tGe:
		return a >= b
	}
	return false
}

func cmpValues(dom domain, op tokKind, a, b value) bool {
	switch dom {
	case dInt:
		return cmpOrdered(op, a.n, b.n)
	case dFloat:
		return cmpOrdered(op, a.f, b.f)
	case dString:
		return cmpOrder(op, strings.Compare(a.s, b.s))
	case dBytes:
		return cmpOrder(op, bytes.Compare(a.b, b.b))
	case dNumStr:
		f, err := strconv.ParseFloat(strings.TrimSpace(a.s), 64)
		return err == nil && cmpOrdered(op, f, b.f)
	case dIP:
		return cmpOrder(op, a.ip.Unmap().Compare(b.ip.Unmap()))
	case dBool:
		return cmpOrder(op, boolInt(a.t)-boolInt(b.t))
	case dJSON:
		if a.k != b.k {
			return op == tNe
		}
		switch b.k {
		case KindString:
			return cmpOrder(op, strings.Compare(a.s, b.s))
		case KindFloat:
			return cmpOrdered(op, a.f, b.f)
		case KindBool:
			if op != tEq && op != tNe {
				return false
			}
			return (a.t == b.t) == (op == tEq)
		}
	}
	return false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// constPred specialises the frequent comparisons with a constant so that the
// hot path is a single closure call and a machine compare.
func constPred(dom domain, op tokKind, c value) func(value) bool {
	switch dom {
	case dInt:
		n := c.n
		switch op {
		case tEq:
			return func(v value) bool { return v.n == n }
		case tNe:
			return func(v value) bool { return v.n != n }
		case tLt:
			return func(v value) bool { return v.n < n }
		case tLe:
			return func(v value) bool { return v.n <= n }
		case tGt:
			return func(v value) bool { return v.n > n }
		case tGe:
			return func(v value) bool { return v.n >= n }
		}
	case dString:
		s := c.s
		switch op {
		case tEq:
			return func(v value) bool { return v.s == s }
		case tNe:
			return func(v value) bool { return v.s != s }
		}
	case dFloat:
		// Fields are ints unless they come from JSON; the constant is float.
		return func(v value) bool { return cmpOrdered(op, float64(v.n), c.f) }
	}
	return func(v value) bool { return cmpValues(dom, op, v, c) }
}

// regexMatcher returns an unanchored RE2 match on the operand's text form.
func (c *compiler) regexMatcher(l *operand, re *regexp.Regexp, x *binary) (func(value) bool, *Error) {
	switch l.kind {
	case KindString:
		return func(v value) bool { return re.MatchString(v.s) }, nil
	case KindBytes:
		return func(v value) bool { return re.Match(v.b) }, nil
	case KindInt, KindPort, KindTime:
		// Numbers match on their decimal form (response.status == r"4.*"); the
		// answers for small numbers are precomputed so matching never formats.
		// The table is built on first use so that compiling stays cheap.
		var once sync.Once
		var table *[numTableSize / 64]uint64
		return func(v value) bool {
			if v.n >= 0 && v.n < numTableSize {
				once.Do(func() { table = numberTable(re) })
				return table[v.n/64]&(1<<(v.n%64)) != 0
			}
			return re.MatchString(strconv.FormatInt(v.n, 10))
		}, nil
	case KindIP:
		return func(v value) bool { return re.MatchString(v.ip.String()) }, nil
	case KindJSON:
		return func(v value) bool {
			switch v.k {
			case KindString:
				return re.MatchString(v.s)
			case KindFloat:
				return re.MatchString(strconv.FormatFloat(v.f, 'f', -1, 64))
			case KindBool:
				return re.MatchString(strconv.FormatBool(v.t))
			}
			return false
		}, nil
	}
	return nil, c.errAt(x.at, "a regex matches text, and %s is %s", format(x.l, false), l.kind)
}

// numTableSize covers ports and status codes: numbers below it are matched
// against a regex through a precomputed bitmap.
const numTableSize = 1 << 16

var (
	numTablesMu sync.Mutex
	numTables   = map[string]*[numTableSize / 64]uint64{}
)

// numberTable returns which numbers below numTableSize re matches. Tables
// are shared between queries with the same regex (a reloaded job set keeps
// them); the cache is bounded so that hostile inputs cannot grow it.
func numberTable(re *regexp.Regexp) *[numTableSize / 64]uint64 {
	numTablesMu.Lock()
	t := numTables[re.String()]
	numTablesMu.Unlock()
	if t != nil {
		return t
	}
	t = new([numTableSize / 64]uint64)
	var buf []byte
	for i := 0; i < numTableSize; i++ {
		buf = strconv.AppendInt(buf[:0], int64(i), 10)
		if re.Match(buf) {
			t[i/64] |= 1 << (i % 64)
		}
	}
	numTablesMu.Lock()
	if len(numTables) >= 256 {
		clear(numTables)
	}
	numTables[re.String()] = t
	numTablesMu.Unlock()
	return t
}

// typedCompare compiles the frequent comparisons of a field with a
// constant through the field's typed accessor: one closure that reads a
// string or an int and compares it. nil when there is no fast path.
func typedCompare(l *operand, dom domain, op tokKind, c value) cond {
	switch {
	case dom == dString && l.str != nil:
		get, s := l.str, c.s
		switch op {
		case tEq:
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && v == s }
		case tNe:
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && v != s }
		}
		return func(e *dissect.Entry) bool { v, ok := get(e); return ok && cmpOrder(op, strings.Compare(v, s)) }
	case dom == dInt && l.num != nil:
		get, n := l.num, c.n
		switch op {
		case tEq:
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && v == n }
		case tNe:
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && v != n }
		case tLt:
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && v < n }
		case tLe:
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && v <= n }
		case tGt:
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && v > n }
		case tGe:
			return func(e *dissect.Entry) bool { v, ok := get(e); return ok && v >= n }
		}
	case dom == dIP && l.ip != nil && (op == tEq || op == tNe):
		get, a := l.ip, c.ip
		eq := op == tEq
		return func(e *dissect.Entry) bool { v, ok := get(e); return ok && (v.Unmap() == a) == eq }
	}
	return nil
}
