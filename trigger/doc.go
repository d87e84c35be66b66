// Package trigger turns security alerts and API requests into triggered
// captures: it decodes Falco, Falcosidekick and Falco Talon alert
// documents, matches them against trigger rules (rule names, priority,
// tags, output fields, source), renders the rule's KFL template over the
// alert, de-duplicates and caps them, and serves the capture API. The
// captures themselves are run by an implementation of Captures (the agent),
// which selects streams from its lookback buffer and live traffic.
//
// The pieces, in the order an alert meets them:
//
//	a, err := trigger.DecodeAlert(body)          // *Alert; errors name the field
//	rules, err := trigger.ParseRules(cfg.Triggers) // config's triggers: list
//	spec, err := rules[0].Spec(a, resolver)      // the capture to start
//	srv, err := trigger.NewServer(engine, trigger.Config{Listen: …, Token: …, Rules: rules})
//	err = srv.ListenAndServe(ctx)
//
// Concurrency and lifetime: DecodeAlert is a pure function. A Rule is
// immutable once compiled (by ParseRules, DefaultRule or Compile): Matches
// and Spec may be called from any number of goroutines. A Server is safe
// for concurrent use; it keeps no state but its counters and the dedup
// table (bounded, expiring), and ListenAndServe/Serve return when their
// context ends, after giving requests 5 s to finish. Alerts passed to the
// engine in a Spec must not be modified afterwards.
//
// User documentation: docs/triggers.md.
package trigger
