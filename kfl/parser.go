package kfl

import "fmt"

// maxDepth bounds nesting so that hostile queries cannot exhaust the stack.
const maxDepth = 100

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
	// kubeshark parses and/or as Kubeshark does: equal strength, nested to
	// the right ("a and b or c" is "a and (b or c)"). Used by explain only.
	kubeshark bool
}

func parse(src string) (node, *Error) {
	return parseMode(src, false)
}

func parseMode(src string, kubeshark bool) (node, *Error) {
	n, err := parseTree(src, kubeshark)
	if err != nil {
		err.notKFL = true
	}
	return n, err
}

func parseTree(src string, kubeshark bool) (node, *Error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks, kubeshark: kubeshark}
	if p.peek().kind == tEOF {
		return nil, p.errAt(p.peek().pos, "empty query")
	}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, p.errAt(t.pos, `unbalanced ")"`)
		}
		return nil, p.errAt(t.pos, "unexpected %s after a complete expression (missing \"and\" or \"or\"?)", describe(t))
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) errAt(off int, format string, a ...any) *Error {
	return errorAt(p.src, off, format, a...)
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tIdent, tInt, tFloat, tString, tRegex:
		return fmt.Sprintf("%s %s", t.kind, t.text)
	}
	return t.kind.String()
}

func isWord(t token, w string) bool { return t.kind == tIdent && t.text == w }

func (p *parser) enter() *Error {
	p.depth++
	if p.depth > maxDepth {
		return p.errAt(p.peek().pos, "query nests deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *parser) expr() (node, *Error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if p.kubeshark {
		return p.rightNested()
	}
	return p.or()
}

func (p *parser) rightNested() (node, *Error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); isWord(t, "and") || isWord(t, "or") {
		p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		r, err := p.rightNested()
		p.depth--
		if err != nil {
			return nil, err
		}
		return &binary{op: tIdent, word: t.text, l: l, r: r, at: t.pos}, nil
	}
	return l, nil
}

func (p *parser) or() (node, *Error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for isWord(p.peek(), "or") {
		t := p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &binary{op: tIdent, word: "or", l: l, r: r, at: t.pos}
	}
	return l, nil
}

func (p *parser) and() (node, *Error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for isWord(p.peek(), "and") {
		t := p.next()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &binary{op: tIdent, word: "and", l: l, r: r, at: t.pos}
	}
	return l, nil
}

// not binds tighter than comparison (as ! does in Go, C and CEL); "not" is
// a condition operator, so "not x == y" is a type error the compiler
// explains, and "not (x == y)" is what the user means.
func (p *parser) not() (node, *Error) {
	return p.comparison()
}

func isCmp(k tokKind) bool { return k >= tEq && k <= tGe }

func (p *parser) comparison() (node, *Error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); isCmp(t.kind) {
		p.next()
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		if t2 := p.peek(); isCmp(t2.kind) {
			return nil, p.errAt(t2.pos, "comparisons do not chain: use \"and\" between them")
		}
		return &binary{op: t.kind, l: l, r: r, at: t.pos}, nil
	}
	return l, nil
}

func (p *parser) additive() (node, *Error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tPlus || t.kind == tMinus; t = p.peek() {
		p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &binary{op: t.kind, l: l, r: r, at: t.pos}
	}
	return l, nil
}

func (p *parser) unary() (node, *Error) {
	t := p.peek()
	if isWord(t, "not") || t.kind == tBang || t.kind == tMinus {
		p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		x, err := p.unary()
		p.depth--
		if err != nil {
			return nil, err
		}
		op := "not"
		if t.kind == tMinus {
			op = "-"
		}
		return &unary{op: op, x: x, at: t.pos}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (node, *Error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch t.kind {
		case tDot:
			p.next()
			n := p.next()
			switch {
			case n.kind == tStar:
				x = &selector{x: x, star: true, at: n.pos}
			case n.kind == tIdent:
				x = &selector{x: x, name: n.text, at: n.pos}
			default:
				return nil, p.errAt(n.pos, "expected a field name after \".\", found %s", describe(n))
			}
		case tLBrack:
			p.next()
			if p.peek().kind == tStar {
				s := p.next()
				if c := p.next(); c.kind != tRBrack {
					return nil, p.errAt(c.pos, `expected "]" after "[*", found %s`, describe(c))
				}
				x = &index{x: x, star: true, at: s.pos}
				continue
			}
			if err := p.enter(); err != nil {
				return nil, err
			}
			idx, err := p.expr()
			p.depth--
			if err != nil {
				return nil, err
			}
			if c := p.next(); c.kind != tRBrack {
				return nil, p.errAt(c.pos, `expected "]", found %s`, describe(c))
			}
			x = &index{x: x, idx: idx, at: t.pos}
		case tLParen:
			var at int
			switch f := x.(type) {
			case *ident:
				at = f.at
			case *selector:
				if f.star {
					return nil, p.errAt(t.pos, `"*" cannot be called`)
				}
				at = f.at
			default:
				return nil, p.errAt(t.pos, "only helpers can be called")
			}
			p.next()
			var args []node
			if p.peek().kind != tRParen {
				for {
					if err := p.enter(); err != nil {
						return nil, err
					}
					a, err := p.expr()
					p.depth--
					if err != nil {
						return nil, err
					}
					args = append(args, a)
					if p.peek().kind != tComma {
						break
					}
					p.next()
				}
			}
			if c := p.next(); c.kind != tRParen {
				if c.kind == tEOF {
					return nil, p.errAt(t.pos, `unbalanced "(": missing ")"`)
				}
				return nil, p.errAt(c.pos, `expected "," or ")" in arguments, found %s`, describe(c))
			}
			x = &call{fun: x, args: args, at: at}
		default:
			return x, nil
		}
	}
}

func (p *parser) primary() (node, *Error) {
	t := p.next()
	switch t.kind {
	case tIdent:
		switch t.text {
		case "true", "false", "nil":
			return &literal{kind: tIdent, text: t.text, at: t.pos}, nil
		case "and", "or":
			return nil, p.errAt(t.pos, "expected an operand before %q", t.text)
		}
		return &ident{name: t.text, at: t.pos}, nil
	case tString, tRegex:
		return &literal{kind: t.kind, text: t.val, at: t.pos}, nil
	case tInt, tFloat:
		return &literal{kind: t.kind, text: t.text, at: t.pos}, nil
	case tLParen:
		if err := p.enter(); err != nil {
			return nil, err
		}
		x, err := p.expr()
		p.depth--
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			if c.kind == tEOF {
				return nil, p.errAt(t.pos, `unbalanced "(": missing ")"`)
			}
			return nil, p.errAt(c.pos, `expected ")", found %s`, describe(c))
		}
		return &paren{x: x, at: t.pos}, nil
	case tRParen:
		return nil, p.errAt(t.pos, `unbalanced ")"`)
	case tEOF:
		return nil, p.errAt(t.pos, "unexpected end of query: an operand is missing")
	}
	return nil, p.errAt(t.pos, "unexpected %s", describe(t))
}
