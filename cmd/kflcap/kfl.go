package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kflcap/kflcap/kfl"
)

const kflExamples = `  kflcap kfl check 'http and response.status == 500'
  kflcap kfl explain 'udp and dst.port == 53 or tls and request.sni.endsWith(".example.com")'
  kflcap kfl explain 'cel: http && status_code >= 500'
  kflcap kfl check --macro 'https=tls and (http or http2)' 'https and src.namespace == "shop"'`

func init() {
	register("kfl", command{
		summary: "check or explain a KFL query",
		run:     runKFL,
	})
}

// queryError prints a compile error as the one-line message followed by the
// query and a caret under the position, which is what a user needs to fix it.
type queryError struct{ err *kfl.Error }

func (q queryError) Error() string { return q.err.Detailed() }
func (q queryError) Unwrap() error { return q.err }

// compileQuery compiles the query of a --kfl flag; a bad one is a usage
// error that shows where.
func compileQuery(src string) (*kfl.Query, error) {
	q, err := kfl.Compile(src)
	var ke *kfl.Error
	if errors.As(err, &ke) {
		return nil, usageErrorf("--kfl: kfl: %s", ke.Detailed())
	}
	if err != nil {
		return nil, usageErrorf("--kfl: %v", err)
	}
	return q, nil
}

func runKFL(_ context.Context, e *env, args []string) error {
	fs := newFlagSet("kfl", "kfl check QUERY | explain QUERY", kflExamples, e.stdout)
	var macros stringList
	fs.Var(&macros, "macro", "define a macro NAME=QUERY, as kfl.macros in the config (repeatable)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usageErrorf("usage: kflcap kfl check QUERY | explain QUERY")
	}
	sub, src := pos[0], strings.Join(pos[1:], " ")
	if sub != "check" && sub != "explain" {
		return usageErrorf("unknown kfl subcommand %q: use check or explain", sub)
	}
	m := map[string]string{}
	for _, d := range macros {
		name, body, ok := strings.Cut(d, "=")
		if !ok {
			return usageErrorf("--macro %q: want NAME=QUERY", d)
		}
		m[strings.TrimSpace(name)] = body
	}
	q, err := kfl.Compile(src, kfl.WithMacros(m))
	if err != nil {
		var ke *kfl.Error
		if errors.As(err, &ke) {
			return usageError{queryError{ke}}
		}
		return usageError{err}
	}
	if sub == "check" {
		fmt.Fprintln(e.stdout, q.String())
		return nil
	}
	fmt.Fprint(e.stdout, q.Explain())
	return nil
}
