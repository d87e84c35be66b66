// Package agent is the node daemon that `kflcap agent` runs: the pipeline
// from the capture programs to delivered repositories, with its jobs,
// lookback, triggered captures, reload and HTTP endpoints.
//
// A packet's path (Run; feed.go's feed is the loop):
//
//  1. collector.Live reads the ring buffer into batches of packet.Packet.
//  2. collector.Dedup drops copies seen on another captured interface.
//  3. Lookback keeps the last N MiB for triggered captures.
//  4. pipeline.Pipeline dissects (package dissect) and matches each entry
//     against every job's KFL query; a match selects the stream into the
//     Job (a dissect.StreamSink).
//  5. Triggers feeds each running triggered capture's own pipeline.
//  6. Job appends the selected streams' packets to a repo.Writer and seals
//     it into the outbox on time, size or stream count.
//  7. upload.Outbox delivers sealed archives to the sinks (local, S3) and
//     announces them on Slack.
//
// Lifetime: New checks the configuration (errors are *ConfigError) and
// attaches nothing; Run attaches, runs until its context ends, then
// detaches, seals every open repository and gives delivery Options.Grace.
// Run reloads jobs and trigger rules on SIGHUP and when the configuration
// file changes, without reattaching. Each stage's metrics live in its own
// package; the agent registers them with its own (Metrics) on one registry
// served at /metrics, beside /healthz, /readyz and /status.
package agent
