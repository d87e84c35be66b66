package kfl

import (
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	celparser "github.com/google/cel-go/parser"

	"github.com/kflcap/kflcap/dissect"
)

// celQuery is the compiled CEL (KFL2) form of a query.
type celQuery struct {
	expr string
	prg  cel.Program
	tree string // the checked expression as explain prints it
}

// celVar is one KFL2 variable: its CEL type, what it reads from an entry,
// and the KFL field it corresponds to (for the reference). Values for
// entries that lack the field are the type's zero value, as in Kubeshark,
// which is why KFL2 queries start with a protocol flag (http && …).
type celVar struct {
	name string
	typ  *cel.Type
	kfl  string
	get  func(e *dissect.Entry) any
}

var celVars []celVar
var celVarIndex = map[string]*celVar{}

func celHTTP(e *dissect.Entry) *dissect.HTTP { return e.HTTP }

func lowerHeaders(h dissect.Headers) map[string]string {
	m := make(map[string]string, len(h))
	for _, kv := range h {
		k := strings.ToLower(kv.Name)
		if old, ok := m[k]; ok {
			m[k] = old + ", " + kv.Value
			continue
		}
		m[k] = kv.Value
	}
	return m
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

func init() {
	S, I, B := cel.StringType, cel.IntType, cel.BoolType
	LS, MSS := cel.ListType(cel.StringType), cel.MapType(cel.StringType, cel.StringType)
	add := func(name string, typ *cel.Type, kfl string, get func(e *dissect.Entry) any) {
		celVars = append(celVars, celVar{name: name, typ: typ, kfl: kfl, get: get})
	}
	for _, w := range protocolWords {
		c := protocolCond(w)
		add(w, B, w, func(e *dissect.Entry) any { return c(e) })
	}
	add("protocol", S, "protocol.abbr", func(e *dissect.Entry) any {
		if e.Protocol.Abbr != "" {
			return e.Protocol.Abbr
		}
		return strings.ToUpper(e.Protocol.Name)
	})
	for _, side := range []string{"src", "dst"} {
		ep := func(e *dissect.Entry) *dissect.Endpoint { return &e.Src }
		if side == "dst" {
			ep = func(e *dissect.Entry) *dissect.Endpoint { return &e.Dst }
		}
		add(side+".ip", S, side+".ip", func(e *dissect.Entry) any { return ipString(ep(e).IP) })
		add(side+".port", I, side+".port", func(e *dissect.Entry) any { return int64(ep(e).Port) })
		for _, kind := range []string{"pod", "service"} {
			add(side+"."+kind+".name", S, side+".name", func(e *dissect.Entry) any { return ep(e).Name })
			add(side+"."+kind+".namespace", S, side+".namespace", func(e *dissect.Entry) any { return ep(e).Namespace })
		}
	}
	add("namespaces", LS, "src.namespace, dst.namespace", func(e *dissect.Entry) any {
		var ns []string
		for _, n := range []string{e.Src.Namespace, e.Dst.Namespace} {
			if n != "" {
				ns = append(ns, n)
			}
		}
		return ns
	})
	add("node.name", S, "node.name", func(e *dissect.Entry) any { return e.Node.Name })
	add("node.ip", S, "node.ip", func(e *dissect.Entry) any { return e.Node.IP })
	add("timestamp", cel.TimestampType, "timestamp", func(e *dissect.Entry) any { return time.UnixMilli(e.Timestamp).UTC() })
	add("elapsed_time", I, "elapsedTime", func(e *dissect.Entry) any { return e.ElapsedTime })
	add("stream", S, "stream", func(e *dissect.Entry) any { return e.Stream })
	add("outgoing", B, "outgoing", func(e *dissect.Entry) any { return e.Outgoing })

	reqS := func(name, kfl string, f func(r *dissect.HTTPRequest) string) {
		add(name, S, kfl, func(e *dissect.Entry) any {
			if h := celHTTP(e); h != nil {
				return f(&h.Request)
			}
			return ""
		})
	}
	reqS("method", "request.method", func(r *dissect.HTTPRequest) string { return r.Method })
	reqS("url", "request.url", func(r *dissect.HTTPRequest) string { return r.URL })
	reqS("path", "request.path", func(r *dissect.HTTPRequest) string { return r.Path })
	reqS("host", "request.host", func(r *dissect.HTTPRequest) string { return r.Host })
	reqS("request_body", "request.body", func(r *dissect.HTTPRequest) string { return string(r.Body) })
	add("status_code", I, "response.status", func(e *dissect.Entry) any {
		if h := celHTTP(e); h != nil && h.HasResponse {
			return int64(h.Response.Status)
		}
		return int64(0)
	})
	add("status_text", S, "response.statusText", func(e *dissect.Entry) any {
		if h := celHTTP(e); h != nil && h.HasResponse {
			return h.Response.StatusText
		}
		return ""
	})
	add("response_body", S, "response.body", func(e *dissect.Entry) any {
		if h := celHTTP(e); h != nil && h.HasResponse {
			return string(h.Response.Body)
		}
		return ""
	})
	add("request_body_size", I, "request.bodySize", func(e *dissect.Entry) any {
		if h := celHTTP(e); h != nil {
			return h.Request.BodySize
		}
		return int64(0)
	})
	add("response_body_size", I, "response.bodySize", func(e *dissect.Entry) any {
		if h := celHTTP(e); h != nil && h.HasResponse {
			return h.Response.BodySize
		}
		return int64(0)
	})
	add("request.headers", MSS, `request.headers["…"]`, func(e *dissect.Entry) any {
		if h := celHTTP(e); h != nil {
			return lowerHeaders(h.Request.Headers)
		}
		return map[string]string{}
	})
	add("response.headers", MSS, `response.headers["…"]`, func(e *dissect.Entry) any {
		if h := celHTTP(e); h != nil && h.HasResponse {
			return lowerHeaders(h.Response.Headers)
		}
		return map[string]string{}
	})
	add("query_params", MSS, `request.queryString["…"]`, func(e *dissect.Entry) any {
		if h := celHTTP(e); h != nil {
			return dissect.Headers(h.Request.QueryString).Map()
		}
		return map[string]string{}
	})

	add("dns_request", B, "dns", func(e *dissect.Entry) any { return e.DNS != nil })
	add("dns_response", B, "dns and response.code != nil", func(e *dissect.Entry) any { return e.DNS != nil && e.DNS.HasResponse })
	add("dns_questions", LS, "request.questions[*].name", func(e *dissect.Entry) any {
		if e.DNS == nil {
			return []string{}
		}
		out := make([]string, 0, len(e.DNS.Request.Questions))
		for _, q := range e.DNS.Request.Questions {
			out = append(out, q.Name)
		}
		return out
	})
	add("dns_question_types", LS, "request.questions[*].type", func(e *dissect.Entry) any {
		if e.DNS == nil {
			return []string{}
		}
		out := make([]string, 0, len(e.DNS.Request.Questions))
		for _, q := range e.DNS.Request.Questions {
			out = append(out, q.Type)
		}
		return out
	})
	add("dns_answers", LS, "response.answers[*].ip / .cname / .data", func(e *dissect.Entry) any {
		if e.DNS == nil || !e.DNS.HasResponse {
			return []string{}
		}
		out := make([]string, 0, len(e.DNS.Response.Answers))
		for _, a := range e.DNS.Response.Answers {
			switch {
			case a.IP != "":
				out = append(out, a.IP)
			case a.CNAME != "":
				out = append(out, a.CNAME)
			default:
				out = append(out, a.Data)
			}
		}
		return out
	})
	add("dns_rcode", S, "response.code", func(e *dissect.Entry) any {
		if e.DNS == nil || !e.DNS.HasResponse {
			return ""
		}
		return e.DNS.Response.Code
	})
	tlsS := func(name, kfl string, f func(t *dissect.TLS) string) {
		add(name, S, kfl, func(e *dissect.Entry) any {
			if e.TLS == nil {
				return ""
			}
			return f(e.TLS)
		})
	}
	tlsS("tls_sni", "request.serverName", func(t *dissect.TLS) string { return t.ServerName })
	tlsS("tls_version", "response.version", func(t *dissect.TLS) string { return t.NegotiatedVersion })
	tlsS("tls_alpn", "response.alpn", func(t *dissect.TLS) string { return t.NegotiatedALPN })
	tlsS("tls_cipher_suite", "response.cipherSuite", func(t *dissect.TLS) string { return t.CipherSuite })

	for i := range celVars {
		celVarIndex[celVars[i].name] = &celVars[i]
	}
}

// CELVariable is one variable of the CEL dialect, for the reference.
type CELVariable struct {
	Name, Type, KFL string
}

// CELVariables lists the CEL dialect's variables and their KFL equivalents.
func CELVariables() []CELVariable {
	out := make([]CELVariable, 0, len(celVars))
	for _, v := range celVars {
		out = append(out, CELVariable{Name: v.name, Type: v.typ.String(), KFL: v.kfl})
	}
	return out
}

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

// celClock is now() for CEL; swapped per program through the activation.
func celEnvironment() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		opts := []cel.EnvOption{}
		for _, v := range celVars {
			opts = append(opts, cel.Variable(v.name, v.typ))
		}
		// now() reads the evaluation's clock from the hidden variable
		// "__now", so that queries compiled with WithClock stay testable.
		opts = append(opts, cel.Variable("__now", cel.TimestampType))
		celEnv, celEnvErr = cel.NewEnv(opts...)
	})
	return celEnv, celEnvErr
}

func compileCEL(orig, body string, o *options) (*Query, error) {
	env, err := celEnvironment()
	if err != nil {
		return nil, errorAt(orig, 0, "cel environment: %v", err)
	}
	// now() is sugar for the hidden clock variable.
	expr := rewriteNow(body)
	if strings.TrimSpace(expr) == "" {
		return nil, errorAt(orig, 0, "empty query")
	}
	checked, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		e := iss.Errors()[0]
		off := offsetOf(body, e.Location.Line(), e.Location.Column())
		msg := e.Message
		return nil, errorAt(orig, off, "cel: %s", msg)
	}
	if !checked.OutputType().IsExactType(cel.BoolType) {
		return nil, errorAt(orig, 0, "cel: the query is a %s, not a condition", checked.OutputType())
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, errorAt(orig, 0, "cel: %v", err)
	}
	cq := &celQuery{expr: strings.TrimSpace(body), prg: prg}
	var tb strings.Builder
	celTree(&tb, checked.NativeRep().Expr(), checked.NativeRep().SourceInfo(), "  ", "  ")
	cq.tree = strings.ReplaceAll(tb.String(), "__now", "now()")
	clock := o.clock
	q := &Query{src: orig, dialect: DialectCEL, cel: cq}
	q.match = func(e *dissect.Entry) bool {
		out, _, err := prg.Eval(&celActivation{e: e, clock: clock})
		if err != nil {
			return false // a runtime error (e.g. a missing map key) matches nothing
		}
		b, ok := out.(types.Bool)
		return ok && bool(b)
	}
	refs := checked.NativeRep().ReferenceMap()
	q.push = celPush(checked.NativeRep().Expr(), refs)
	seen := map[string]bool{}
	for _, r := range refs {
		if v := celVarIndex[r.Name]; v != nil && !seen[r.Name] {
			seen[r.Name] = true
			q.uses = append(q.uses, FieldUse{Path: r.Name, Type: v.typ.String()})
		}
	}
	sort.Slice(q.uses, func(i, j int) bool { return q.uses[i].Path < q.uses[j].Path })
	return q, nil
}

// offsetOf converts CEL's 1-based line and 0-based rune column to a byte offset.
func offsetOf(src string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(src[off:], '\n')
		if i < 0 {
			return len(src)
		}
		off += i + 1
	}
	for c := 0; c < col && off < len(src); c++ {
		_, size := utf8DecodeRune(src[off:])
		off += size
	}
	return off
}

// celActivation resolves variables lazily: only those the query names are
// computed for an entry.
type celActivation struct {
	e     *dissect.Entry
	clock func() int64
}

func (a *celActivation) ResolveName(name string) (any, bool) {
	if name == "__now" {
		return time.UnixMilli(a.clock()).UTC(), true
	}
	v := celVarIndex[name]
	if v == nil {
		return nil, false
	}
	return v.get(a.e), true
}

func (a *celActivation) Parent() interpreter.Activation { return nil }

// celPush derives the prefilter from a checked CEL expression, with the same
// rules as for KFL: &&, ||, protocol flags, src/dst ip and port equality.
func celPush(e ast.Expr, refs map[int64]*ast.ReferenceInfo) constraint {
	name := func(x ast.Expr) string {
		if r, ok := refs[x.ID()]; ok && r.Name != "" {
			return r.Name
		}
		if x.Kind() == ast.IdentKind {
			return x.AsIdent()
		}
		return ""
	}
	switch e.Kind() {
	case ast.IdentKind, ast.SelectKind:
		if n := name(e); isProtocolWord(n) {
			return protocolConstraint(n)
		}
	case ast.LiteralKind:
		if b, ok := e.AsLiteral().(types.Bool); ok && !bool(b) {
			return constraint{empty: true}
		}
	case ast.CallKind:
		c := e.AsCall()
		args := c.Args()
		switch c.FunctionName() {
		case "_&&_":
			if len(args) == 2 {
				return celPush(args[0], refs).and(celPush(args[1], refs))
			}
		case "_||_":
			if len(args) == 2 {
				return celPush(args[0], refs).or(celPush(args[1], refs))
			}
		case "@in":
			// dst.port in [53, 5353] and src.ip in ["10.0.0.1", …]: the union.
			if len(args) != 2 || args[1].Kind() != ast.ListKind {
				break
			}
			f := name(args[0])
			out := constraint{empty: true}
			for _, el := range args[1].AsList().Elements() {
				if el.Kind() != ast.LiteralKind {
					return anything
				}
				out = out.or(celPushEq(f, el.AsLiteral()))
			}
			return out
		case "_==_":
			if len(args) != 2 {
				break
			}
			f, lit := name(args[0]), args[1]
			if lit.Kind() != ast.LiteralKind {
				f, lit = name(args[1]), args[0]
			}
			if lit.Kind() != ast.LiteralKind {
				break
			}
			return celPushEq(f, lit.AsLiteral())
		}
	}
	return anything
}

func celPushEq(f string, v ref.Val) constraint {
	switch f {
	case "src.ip", "dst.ip":
		if s, ok := v.(types.String); ok {
			if p, ok := parsePrefix(string(s)); ok && p.IsSingleIP() {
				return constraint{pfx: []netip.Prefix{p}}
			}
		}
	case "src.port", "dst.port":
		if n, ok := v.(types.Int); ok && n > 0 && n <= 65535 { // 0: see portConstraint
			return constraint{ports: map[uint16]bool{uint16(n): true}}
		}
		if n, ok := v.(types.Int); ok && (n < 0 || n > 65535) {
			return constraint{empty: true}
		}
	}
	return anything
}

// rewriteNow replaces calls now() by the hidden clock variable, outside
// string literals, keeping every other character in place so that CEL's
// error positions still point into the user's text.
func rewriteNow(src string) string {
	b := []byte(src)
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"' || c == '\'':
			q := c
			triple := i+2 < len(b) && b[i+1] == q && b[i+2] == q
			raw := i > 0 && (b[i-1] == 'r' || b[i-1] == 'R')
			if triple {
				end := strings.Index(string(b[i+3:]), string([]byte{q, q, q}))
				if end < 0 {
					return string(b)
				}
				i += 3 + end + 3
				continue
			}
			i++
			for i < len(b) && b[i] != q {
				if b[i] == '\\' && !raw {
					i++
				}
				i++
			}
			i++
		case isIdentStart(c):
			start := i
			for i < len(b) && isIdentPart(b[i]) {
				i++
			}
			if string(b[start:i]) != "now" || (start > 0 && b[start-1] == '.') {
				continue
			}
			j := i
			for j < len(b) && b[j] == ' ' {
				j++
			}
			if j < len(b) && b[j] == '(' {
				k := j + 1
				for k < len(b) && b[k] == ' ' {
					k++
				}
				if k < len(b) && b[k] == ')' {
					copy(b[start:], "__now")
					for p := start + 5; p <= k; p++ {
						b[p] = ' '
					}
					i = k + 1
				}
			}
		default:
			i++
		}
	}
	return string(b)
}

// celTree prints &&, || and ! as branches and unparses everything else, so
// that CEL queries get the same explain view as KFL ones.
func celTree(b *strings.Builder, e ast.Expr, info *ast.SourceInfo, first, rest string) {
	if e.Kind() == ast.CallKind {
		c := e.AsCall()
		word := map[string]string{"_&&_": "&&", "_||_": "||", "!_": "!"}[c.FunctionName()]
		if word != "" {
			var args []ast.Expr
			var flat func(x ast.Expr)
			flat = func(x ast.Expr) { // && and || chains read as one group
				if x.Kind() == ast.CallKind && x.AsCall().FunctionName() == c.FunctionName() && word != "!" {
					for _, a := range x.AsCall().Args() {
						flat(a)
					}
					return
				}
				args = append(args, x)
			}
			if word == "!" {
				args = c.Args()
			} else {
				flat(e)
			}
			b.WriteString(first + word + "\n")
			for i, a := range args {
				if i == len(args)-1 {
					celTree(b, a, info, rest+"└─ ", rest+"   ")
				} else {
					celTree(b, a, info, rest+"├─ ", rest+"│  ")
				}
			}
			return
		}
	}
	s, err := celparser.Unparse(e, info)
	if err != nil {
		s = "?"
	}
	b.WriteString(first + s + "\n")
}
