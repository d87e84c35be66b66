package kfl

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tString
	tRegex
	tInt
	tFloat
	tLParen
	tRParen
	tLBrack
	tRBrack
	tDot
	tComma
	tStar
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
	tBang
	tPlus
	tMinus
)

var tokNames = [...]string{
	tEOF: "end of query", tIdent: "identifier", tString: "string", tRegex: "regex",
	tInt: "integer", tFloat: "number", tLParen: `"("`, tRParen: `")"`, tLBrack: `"["`,
	tRBrack: `"]"`, tDot: `"."`, tComma: `","`, tStar: `"*"`, tEq: `"=="`, tNe: `"!="`,
	tLt: `"<"`, tLe: `"<="`, tGt: `">"`, tGe: `">="`, tBang: `"!"`, tPlus: `"+"`, tMinus: `"-"`,
}

func (k tokKind) String() string { return tokNames[k] }

type token struct {
	kind tokKind
	pos  int    // byte offset of the token's first byte
	text string // source text of the token
	val  string // decoded value of string and regex literals
}

// maxQueryLen bounds the work one query can cause at compile time.
const maxQueryLen = 64 << 10

// lex splits src into tokens. It stops at the first error.
func lex(src string) ([]token, *Error) {
	if len(src) > maxQueryLen {
		return nil, errorAt(src, maxQueryLen, "query is longer than %d bytes", maxQueryLen)
	}
	var toks []token
	i := 0
	for {
		for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
			i++
		}
		if i >= len(src) {
			toks = append(toks, token{kind: tEOF, pos: len(src)})
			return toks, nil
		}
		start := i
		c := src[i]
		two := ""
		if i+1 < len(src) {
			two = src[i : i+2]
		}
		switch {
		case c == 'r' && i+1 < len(src) && (src[i+1] == '"' || src[i+1] == '\'' || src[i+1] == '`'):
			body, end, err := scanRegex(src, i+1)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tRegex, pos: start, text: src[start:end], val: body})
			i = end
		case isIdentStart(c):
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			toks = append(toks, token{kind: tIdent, pos: start, text: src[start:i]})
		case c >= '0' && c <= '9':
			kind := tInt
			for i < len(src) && src[i] >= '0' && src[i] <= '9' {
				i++
			}
			if i+1 < len(src) && src[i] == '.' && src[i+1] >= '0' && src[i+1] <= '9' {
				kind = tFloat
				i++
				for i < len(src) && src[i] >= '0' && src[i] <= '9' {
					i++
				}
			}
			if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
				j := i + 1
				if j < len(src) && (src[j] == '+' || src[j] == '-') {
					j++
				}
				if j < len(src) && src[j] >= '0' && src[j] <= '9' {
					kind = tFloat
					i = j
					for i < len(src) && src[i] >= '0' && src[i] <= '9' {
						i++
					}
				}
			}
			if i < len(src) && isIdentStart(src[i]) {
				return nil, errorAt(src, start, "malformed number %q", src[start:i+1])
			}
			toks = append(toks, token{kind: kind, pos: start, text: src[start:i]})
		case c == '"' || c == '\'' || c == '`':
			val, end, err := scanString(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{kind: tString, pos: start, text: src[start:end], val: val})
			i = end
		default:
			var k tokKind
			n := 1
			switch {
			case two == "==":
				k, n = tEq, 2
			case two == "!=":
				k, n = tNe, 2
			case two == "<=":
				k, n = tLe, 2
			case two == ">=":
				k, n = tGe, 2
			case two == "&&" || two == "||":
				return nil, errorAt(src, start, "%q is not KFL: write %q (or prefix the query with \"cel:\" for the CEL dialect)", two, map[string]string{"&&": "and", "||": "or"}[two])
			case c == '(':
				k = tLParen
			case c == ')':
				k = tRParen
			case c == '[':
				k = tLBrack
			case c == ']':
				k = tRBrack
			case c == '.':
				k = tDot
			case c == ',':
				k = tComma
			case c == '*':
				k = tStar
			case c == '<':
				k = tLt
			case c == '>':
				k = tGt
			case c == '!':
				k = tBang
			case c == '+':
				k = tPlus
			case c == '-':
				k = tMinus
			case c == '=':
				return nil, errorAt(src, start, `"=" is not an operator: use "==" to compare`)
			default:
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, errorAt(src, start, "unexpected character %q", r)
			}
			toks = append(toks, token{kind: k, pos: start, text: src[start : start+n]})
			i += n
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// scanString decodes a "…", '…' (with escapes) or `…` (raw) literal starting
// at src[i]. It returns the value and the offset just past the closing quote.
func scanString(src string, i int) (string, int, *Error) {
	q := src[i]
	start := i
	i++
	if q == '`' {
		end := strings.IndexByte(src[i:], '`')
		if end < 0 {
			return "", 0, errorAt(src, start, "unterminated string")
		}
		return src[i : i+end], i + end + 1, nil
	}
	var b strings.Builder
	for {
		if i >= len(src) || src[i] == '\n' {
			return "", 0, errorAt(src, start, "unterminated string")
		}
		c := src[i]
		if c == q {
			return b.String(), i + 1, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(src) {
			return "", 0, errorAt(src, start, "unterminated string")
		}
		esc := src[i+1]
		switch esc {
		case '\\', '"', '\'', '`':
			b.WriteByte(esc)
			i += 2
		case 'n':
			b.WriteByte('\n')
			i += 2
		case 't':
			b.WriteByte('\t')
			i += 2
		case 'r':
			b.WriteByte('\r')
			i += 2
		case 'a', 'b', 'f', 'v', '0':
			b.WriteByte(map[byte]byte{'a': '\a', 'b': '\b', 'f': '\f', 'v': '\v', '0': 0}[esc])
			i += 2
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[esc]
			if i+2+n > len(src) {
				return "", 0, errorAt(src, i, "bad escape in string")
			}
			v, err := strconv.ParseUint(src[i+2:i+2+n], 16, 32)
			if err != nil {
				return "", 0, errorAt(src, i, "bad escape in string")
			}
			if esc == 'x' {
				b.WriteByte(byte(v))
			} else {
				if !utf8.ValidRune(rune(v)) {
					return "", 0, errorAt(src, i, "bad escape in string: invalid code point")
				}
				b.WriteRune(rune(v))
			}
			i += 2 + n
		default:
			return "", 0, errorAt(src, i, "unknown escape \\%c in string", esc)
		}
	}
}

// scanRegex reads the body of r"…" (or r'…', r`…`) starting at the quote.
// The body is kept verbatim for RE2: a backslash escapes nothing, it only
// stops the quote after it from ending the literal (RE2 reads \" as ").
func scanRegex(src string, i int) (string, int, *Error) {
	q := src[i]
	start := i - 1
	i++
	bodyStart := i
	for i < len(src) {
		switch src[i] {
		case q:
			return src[bodyStart:i], i + 1, nil
		case '\\':
			if q != '`' {
				i++
			}
		}
		i++
	}
	return "", 0, errorAt(src, start, "unterminated regex")
}
