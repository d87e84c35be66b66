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
		ours := format(q.root, true)
		fmt.Fprintf(&b, "grouping:   %s\n", ours)
		b.WriteString("tree:\n")
		writeTree(&b, q.root, "  ", "  ")
		if ks, err := parseMode(q.src, true); err == nil {
			if theirs := format(ks, true); theirs != ours {
				fmt.Fprintf(&b, "note:       Kubeshark nests and/or to the right and reads this query as\n            %s\n            kflcap uses the usual precedence (and before or); add parentheses to be explicit\n", theirs)
			}
		}
	} else if q.cel != nil {
		fmt.Fprintf(&b, "cel:        %s\n", q.cel.expr)
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

// writeTree prints and/or/not as branches and everything else as leaves.
func writeTree(b *strings.Builder, n node, first, rest string) {
	n = unparen(n)
	switch x := n.(type) {
	case *binary:
		if x.word != "" {
			b.WriteString(first + x.word + "\n")
			writeTree(b, x.l, rest+"├─ ", rest+"│  ")
			writeTree(b, x.r, rest+"└─ ", rest+"   ")
			return
		}
	case *unary:
		if x.op == "not" {
			b.WriteString(first + "not\n")
			writeTree(b, x.x, rest+"└─ ", rest+"   ")
			return
		}
	}
	b.WriteString(first + format(n, true) + "\n")
}
