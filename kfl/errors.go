package kfl

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is a compile-time error in a query: where it is and what is wrong.
// Error() gives the one-line "line:col: message" form; Caret renders the
// offending query line with a caret under the position.
type Error struct {
	Query  string // the query as given
	Offset int    // byte offset into Query
	Line   int    // 1-based
	Col    int    // 1-based, in runes
	Msg    string

	// notKFL marks errors that say the text is not KFL at all (syntax, unknown
	// names) rather than wrong KFL (types, arguments): only those let Compile
	// try the CEL dialect, so that a KFL typo is not hidden by CEL accepting it.
	notKFL bool
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Caret returns the query line holding the error, indented by two spaces, and
// a caret under the error's column on the next line:
//
//	http and response.stauts == 500
//	         ^
func (e *Error) Caret() string {
	lines := strings.Split(e.Query, "\n")
	if e.Line < 1 || e.Line > len(lines) {
		return ""
	}
	line := strings.ReplaceAll(lines[e.Line-1], "\t", " ")
	return "  " + line + "\n  " + strings.Repeat(" ", e.Col-1) + "^"
}

// Detailed returns Error() followed by the caret form on the next lines, as
// the command line prints it.
func (e *Error) Detailed() string {
	c := e.Caret()
	if c == "" {
		return e.Error()
	}
	return e.Error() + "\n" + c
}

// errorAt builds an Error at byte offset off of src.
func errorAt(src string, off int, format string, a ...any) *Error {
	if off < 0 {
		off = 0
	}
	if off > len(src) {
		off = len(src)
	}
	line, col := 1, 1
	lineStart := 0
	for i := 0; i < off; i++ {
		if src[i] == '\n' {
			line++
			lineStart = i + 1
		}
	}
	col = utf8.RuneCountInString(src[lineStart:off]) + 1
	return &Error{Query: src, Offset: off, Line: line, Col: col, Msg: fmt.Sprintf(format, a...)}
}

// suggest returns the candidate closest to s by edit distance, or "" when
// none is close enough to be a plausible typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	// One edit per three characters (at least one) catches typos and
	// transpositions without suggesting unrelated short names.
	limit := max(1, len(s)/3)
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= limit && best != s {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 200 || len(b) > 200 { // suggestions for huge identifiers are noise
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func utf8DecodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }
