package kfl

import (
	"fmt"
	"strings"
)

// Explain describes how the query is read and what it costs: the dialect,
// the parse tree with precedence made explicit, the fields used and their
// types, directives, and the kernel prefilter it allows.
func (q *Query) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dialect:    %s\n", q.dialect)
	fmt.Fprintf(&b, "normalized: %s\n", q.String())
	if q.dialect == DialectKFL {
		ours := grouping(q.root)
		fmt.Fprintf(&b, "grouping:   %s\n", ours)
		b.WriteString("tree:\n")
		writeTree(&b, q.root, "  ", "  ")
		if ks, err := parseMode(q.src, true); err == nil {
			if theirs := grouping(ks); theirs != ours {
				fmt.Fprintf(&b, "note:       Kubeshark nests and/or to the right and reads this query as\n            %s\n            kflcap uses the usual precedence (and before or); add parentheses to be explicit\n", theirs)
			}
		}
	} else if q.cel != nil {
		b.WriteString("tree:\n" + q.cel.tree)
	}
	if len(q.uses) > 0 {
		b.WriteString("fields:\n")
		w := 0
		for _, u := range q.uses {
			w = max(w, len(u.Path))
		}
		for _, u := range q.uses {
			fmt.Fprintf(&b, "  %-*s  %s\n", w, u.Path, u.Type)
		}
	}
	if n, ok := q.Limit(); ok {
		fmt.Fprintf(&b, "limit:      %d matching entries per repository\n", n)
	}
	if len(q.redact) > 0 {
		fmt.Fprintf(&b, "redact:     %s\n", strings.Join(q.redact, ", "))
	}
	fmt.Fprintf(&b, "pushdown:   %s\n", q.Prefilter())
	return b.String()
}

// chain returns the operands of a run of the same logical operator, so
// that "a and b and c" reads as one group: and/or associate, and showing
// their binary nesting would only add noise.
func chain(n node, word string) []node {
	n = unparen(n)
	if b, ok := n.(*binary); ok && b.word == word {
		return append(chain(b.l, word), chain(b.r, word)...)
	}
	return []node{n}
}

// grouping prints n with every and/or group that sits inside another one
// parenthesized: the precedence made explicit.
func grouping(n node) string {
	n = unparen(n)
	switch x := n.(type) {
	case *binary:
		if x.word != "" {
			parts := chain(x, x.word)
			out := make([]string, len(parts))
			for i, p := range parts {
				out[i] = grouping(p)
				if b, ok := p.(*binary); ok && b.word != "" {
					out[i] = "(" + out[i] + ")"
				}
			}
			return strings.Join(out, " "+x.word+" ")
		}
	case *unary:
		if x.op == "not" {
			inner := unparen(x.x)
			if b, ok := inner.(*binary); ok && b.word != "" {
				return "not (" + grouping(inner) + ")"
			}
			return "not " + grouping(inner)
		}
	}
	return format(n, false)
}

// writeTree prints and/or groups and not as branches, everything else as
// leaves.
func writeTree(b *strings.Builder, n node, first, rest string) {
	n = unparen(n)
	switch x := n.(type) {
	case *binary:
		if x.word != "" {
			b.WriteString(first + x.word + "\n")
			parts := chain(x, x.word)
			for i, p := range parts {
				if i == len(parts)-1 {
					writeTree(b, p, rest+"└─ ", rest+"   ")
				} else {
					writeTree(b, p, rest+"├─ ", rest+"│  ")
				}
			}
			return
		}
	case *unary:
		if x.op == "not" {
			b.WriteString(first + "not\n")
			writeTree(b, x.x, rest+"└─ ", rest+"   ")
			return
		}
	}
	b.WriteString(first + format(n, false) + "\n")
}
