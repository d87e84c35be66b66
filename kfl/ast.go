package kfl

import (
	"strconv"
	"strings"
)

// node is one element of a parsed KFL query. The tree keeps source offsets so
// that type errors found after parsing still point at the right place.
type node interface {
	pos() int
}

type (
	// binary is "and", "or", a comparison, or + / -.
	binary struct {
		op   tokKind // tIdent for and/or (see logic), else the operator token
		word string  // "and" or "or" when op == tIdent
		l, r node
		at   int // offset of the operator
	}
	// unary is not/! or a numeric minus.
	unary struct {
		op string // "not" or "-"
		x  node
		at int
	}
	ident struct {
		name string
		at   int
	}
	literal struct {
		kind tokKind // tString, tRegex, tInt, tFloat, or tIdent for true/false/nil
		text string  // decoded value, or the source text for numbers and keywords
		at   int
	}
	// selector is x.name or x.* (star).
	selector struct {
		x    node
		name string
		star bool
		at   int // offset of the name (or the star)
	}
	// index is x[i], x["key"] or x[*] (star).
	index struct {
		x    node
		idx  node
		star bool
		at   int
	}
	// call is f(args) or x.f(args); fun is an ident or a selector.
	call struct {
		fun  node
		args []node
		at   int // offset of the function name
	}
	// paren records explicit grouping so that explain can show what the
	// user wrote; it does not change evaluation.
	paren struct {
		x  node
		at int
	}
)

func (n *binary) pos() int   { return n.at }
func (n *unary) pos() int    { return n.at }
func (n *ident) pos() int    { return n.at }
func (n *literal) pos() int  { return n.at }
func (n *selector) pos() int { return n.at }
func (n *index) pos() int    { return n.at }
func (n *call) pos() int     { return n.at }
func (n *paren) pos() int    { return n.at }

// startPos is the offset of the leftmost source character of n, where errors
// about a whole expression point.
func startPos(n node) int {
	switch n := n.(type) {
	case *binary:
		return startPos(n.l)
	case *selector:
		return startPos(n.x)
	case *index:
		return startPos(n.x)
	case *call:
		if s, ok := n.fun.(*selector); ok {
			return startPos(s.x)
		}
		return n.at
	case *paren:
		return n.at
	}
	return n.pos()
}

// binding strength for printing; higher binds tighter.
func prec(n node) int {
	switch n := n.(type) {
	case *binary:
		switch {
		case n.word == "or":
			return 1
		case n.word == "and":
			return 2
		case n.op == tPlus || n.op == tMinus:
			return 4
		default:
			return 3
		}
	case *unary:
		return 5
	}
	return 6
}

// format prints n. With explicit set, every binary sub-expression gets
// parentheses so that grouping is visible; otherwise only the parentheses
// that the precedence rules need are printed (the normalized form).
func format(n node, explicit bool) string {
	var b strings.Builder
	writeNode(&b, n, explicit, 0)
	return b.String()
}

func writeNode(b *strings.Builder, n node, explicit bool, outer int) {
	switch n := n.(type) {
	case *paren:
		writeNode(b, n.x, explicit, outer)
	case *binary:
		p := prec(n)
		wrap := p < outer || (explicit && outer > 0 && n.word != "")
		if wrap {
			b.WriteByte('(')
		}
		// Left operands of the same strength need no parentheses (left
		// associative); right ones do, except for and/or which associate.
		lp, rp := p, p+1
		if n.word != "" {
			rp = p
		}
		if p == 3 { // comparisons do not chain
			lp = p + 1
		}
		writeNode(b, n.l, explicit, lp)
		b.WriteByte(' ')
		if n.word != "" {
			b.WriteString(n.word)
		} else {
			b.WriteString(n.op.opText())
		}
		b.WriteByte(' ')
		writeNode(b, n.r, explicit, rp)
		if wrap {
			b.WriteByte(')')
		}
	case *unary:
		if n.op == "not" {
			b.WriteString("not ")
		} else {
			b.WriteString("-")
		}
		writeNode(b, n.x, explicit, 5)
	case *ident:
		b.WriteString(n.name)
	case *literal:
		switch n.kind {
		case tString:
			b.WriteString(strconv.Quote(n.text))
		case tRegex:
			b.WriteString(quoteRegex(n.text))
		default:
			b.WriteString(n.text)
		}
	case *selector:
		writeNode(b, n.x, explicit, 6)
		if n.star {
			b.WriteString(".*")
		} else {
			b.WriteString("." + n.name)
		}
	case *index:
		writeNode(b, n.x, explicit, 6)
		b.WriteByte('[')
		if n.star {
			b.WriteByte('*')
		} else {
			writeNode(b, n.idx, explicit, 0)
		}
		b.WriteByte(']')
	case *call:
		writeNode(b, n.fun, explicit, 6)
		b.WriteByte('(')
		for i, a := range n.args {
			if i > 0 {
				b.WriteString(", ")
			}
			writeNode(b, a, explicit, 0)
		}
		b.WriteByte(')')
	}
}

func (k tokKind) opText() string {
	switch k {
	case tEq:
		return "=="
	case tNe:
		return "!="
	case tLt:
		return "<"
	case tLe:
		return "<="
	case tGt:
		return ">"
	case tGe:
		return ">="
	case tPlus:
		return "+"
	case tMinus:
		return "-"
	}
	return "?"
}

// quoteRegex writes a regex body back as a literal the lexer reads to the
// same body: r"…" normally, r`…` when the body holds a quote (bodies are
// verbatim, so escaping would change them), and escaped quotes only when
// the body holds a backquote too.
func quoteRegex(body string) string {
	if !strings.Contains(body, `"`) {
		return `r"` + body + `"`
	}
	if !strings.Contains(body, "`") {
		return "r`" + body + "`"
	}
	var b strings.Builder
	b.WriteString(`r"`)
	escaped := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '"' && !escaped {
			b.WriteByte('\\')
		}
		escaped = c == '\\' && !escaped
		b.WriteByte(c)
	}
	b.WriteString(`"`)
	return b.String()
}
