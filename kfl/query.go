package kfl

import (
	"fmt"
	"strings"
	"time"

	"github.com/kflcap/kflcap/dissect"
)

// Dialect says which language a query is written in.
type Dialect string

const (
	DialectKFL Dialect = "kfl" // Kubeshark's original filter language (the default)
	DialectCEL Dialect = "cel" // KFL2: CEL with Kubeshark's variable names
)

// Query is a compiled query. It is immutable and safe for concurrent use:
// Match may be called from any number of goroutines at once.
type Query struct {
	src      string
	dialect  Dialect
	root     node // KFL parse tree; nil for CEL
	match    cond
	limit    int
	hasLimit bool
	redact   []string
	uses     []FieldUse
	cel      *celQuery
	push     constraint
	macros   map[string]*macroDef
}

// Option configures Compile.
type Option func(*options)

type options struct {
	macros  map[string]*macroDef
	rawMac  map[string]string
	clock   func() int64
	dialect Dialect // "" = detect
	origSrc string
}

type macroDef struct {
	src  string
	root node
}

// WithMacros makes the named queries usable as barewords, as the config key
// kfl.macros does: {"https": "tls and (http or http2)"}. Macros may use
// other macros; cycles are compile errors.
func WithMacros(m map[string]string) Option {
	return func(o *options) {
		for k, v := range m {
			o.rawMac[k] = v
		}
	}
}

// WithClock replaces the clock behind now() (Unix milliseconds); for tests.
func WithClock(now func() int64) Option { return func(o *options) { o.clock = now } }

// WithDialect forces a dialect instead of detecting it.
func WithDialect(d Dialect) Option { return func(o *options) { o.dialect = d } }

// celPrefix forces the CEL dialect: "cel: status_code == 500".
const celPrefix = "cel:"

// Compile parses, type-checks and compiles src. The dialect is detected: a
// query is KFL if it compiles as KFL; otherwise, if it compiles as CEL with
// Kubeshark's KFL2 variables, it is CEL; otherwise the KFL error is
// returned. A "cel:" prefix forces CEL. Errors are *Error.
func Compile(src string, opts ...Option) (*Query, error) {
	o := &options{rawMac: map[string]string{}, clock: func() int64 { return time.Now().UnixMilli() }}
	for _, f := range opts {
		f(o)
	}
	if err := o.parseMacros(); err != nil {
		return nil, err
	}
	o.origSrc = src
	trimmed := strings.TrimSpace(src)
	if strings.HasPrefix(trimmed, celPrefix) || o.dialect == DialectCEL {
		body := src
		if i := strings.Index(src, celPrefix); i >= 0 && strings.HasPrefix(trimmed, celPrefix) {
			body = strings.Repeat(" ", i+len(celPrefix)) + src[i+len(celPrefix):]
		}
		q, err := compileCEL(src, body, o)
		if err != nil {
			return nil, err
		}
		return q, nil
	}
	q, kerr := compileKFL(src, o)
	if kerr == nil {
		return q, nil
	}
	if ke, ok := kerr.(*Error); ok && ke.notKFL && o.dialect == "" {
		if q, err := compileCEL(src, src, o); err == nil {
			return q, nil
		}
	}
	return nil, kerr
}

// MustCompile is Compile that panics on error; for tests and constants.
func MustCompile(src string, opts ...Option) *Query {
	q, err := Compile(src, opts...)
	if err != nil {
		panic(fmt.Sprintf("kfl: %q: %v", src, err))
	}
	return q
}

var reservedWords = map[string]bool{"and": true, "or": true, "not": true, "true": true, "false": true, "nil": true}

func (o *options) parseMacros() error {
	o.macros = map[string]*macroDef{}
	for name, body := range o.rawMac {
		ok := name != ""
		for i := 0; i < len(name); i++ {
			if !(isIdentStart(name[i]) || (i > 0 && isIdentPart(name[i]))) {
				ok = false
			}
		}
		if !ok {
			return fmt.Errorf("macro %q: a macro name must be an identifier", name)
		}
		if reservedWords[name] || isProtocolWord(name) || fields[name] != nil || fieldPrefix[name] {
			return fmt.Errorf("macro %q: the name is already a keyword, protocol or field", name)
		}
		root, err := parse(body)
		if err != nil {
			return fmt.Errorf("macro %q: %w", name, err)
		}
		o.macros[name] = &macroDef{src: body, root: root}
	}
	return nil
}

// ValidateMacros checks kfl.macros from the configuration: names, syntax,
// fields and cycles. The error names the macro.
func ValidateMacros(m map[string]string) error {
	for name := range m {
		if _, err := Compile(name, WithMacros(m), WithDialect(DialectKFL)); err != nil {
			return fmt.Errorf("macro %q: %w", name, err)
		}
	}
	return nil
}

func compileKFL(src string, o *options) (*Query, error) {
	root, perr := parse(src)
	if perr != nil {
		return nil, perr
	}
	c := &compiler{src: src, opts: o}
	m, cerr := c.top(root)
	if cerr != nil {
		return nil, cerr
	}
	q := &Query{src: src, dialect: DialectKFL, root: root, match: m, limit: c.limit, hasLimit: c.hasLimit,
		redact: c.redact, uses: c.uses, macros: o.macros}
	q.push = pushQuery(root, o.macros)
	return q, nil
}

// Match reports whether the entry satisfies the query. It does no parsing
// and no reflection, and does not allocate for KFL queries.
func (q *Query) Match(e *dissect.Entry) bool { return q.match(e) }

// String returns the normalized query: KFL with canonical spacing, quoting
// and only the parentheses that precedence needs; CEL as "cel:" and the
// expression.
func (q *Query) String() string {
	if q.dialect == DialectCEL {
		return celPrefix + " " + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(q.src), celPrefix))
	}
	return format(q.root, false)
}

// Source returns the query as given to Compile.
func (q *Query) Source() string { return q.src }

// Dialect returns the query's dialect.
func (q *Query) Dialect() Dialect { return q.dialect }

// Limit returns n from a top-level limit(n): at most n matching entries per
// repository. ok is false when the query has no limit.
func (q *Query) Limit() (n int, ok bool) { return q.limit, q.hasLimit }

// RedactPaths returns the paths of a top-level redact(…), as written.
func (q *Query) RedactPaths() []string { return append([]string(nil), q.redact...) }

// Fields returns the fields the query reads, with their types.
func (q *Query) Fields() []FieldUse { return append([]FieldUse(nil), q.uses...) }
