// Package trigger turns security alerts and API requests into triggered
// captures: it decodes Falco, Falcosidekick and Falco Talon alert
// documents, matches them against trigger rules (rule names, priority,
// tags, output fields, source), renders the rule's KFL template over the
// alert, de-duplicates and caps them, and serves the capture API. The
// captures themselves are run by an implementation of Captures (the agent),
// which selects streams from its lookback buffer and live traffic.
package trigger
