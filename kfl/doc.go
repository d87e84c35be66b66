// Package kfl implements KFL, the Kubeshark Filter Language, for kflcap: the
// lexer and parser, type checking against the entry schema of package
// dissect, a compiled evaluator, error messages that point at the
// offending place, the KFL2/CEL dialect, and the pushdown of L3/L4
// predicates into a kernel prefilter.
//
// A query is compiled once with Compile and evaluated with Query.Match on
// every entry:
//
//	q, err := kfl.Compile(`http and response.status == 500`)
//	if err != nil { … }  // *kfl.Error: line, column, message, caret form
//	if q.Match(entry) { … }
//
// Concurrency and lifetime: a *Query is immutable after Compile returns.
// Match, String, Limit, Redact and every other method may be called from any
// number of goroutines at once without locking. Match does not parse, does
// not use reflection and does not allocate for KFL queries (a regex on an IP
// address, and JSON strings with escapes, are the documented exceptions); CEL
// queries allocate per evaluation, as cel-go does. Entries passed to Match
// must not be modified while Match runs, which dissect guarantees: entries
// are read-only once made.
//
// Pushdown turns a set of queries into a Prefilter, a sound superset of the
// packets those queries can select, for the kernel prefilter maps.
//
// The language reference is docs/kfl.md.
package kfl
