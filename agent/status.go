package agent

import (
	"fmt"
	"io"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/trigger"
)

// Status is what /status serves and `kflcap status` prints.
type Status struct {
	Version    string            `json:"version"`
	Node       config.Node       `json:"node"`
	Interfaces []IfaceStatus     `json:"interfaces"`
	Drops      map[string]uint64 `json:"userspace_drops"`
	Streams    uint64            `json:"active_streams"`
	Jobs       []JobStatus       `json:"jobs"`
	Triggers   []trigger.Status  `json:"triggered_captures"`
	Outbox     int               `json:"outbox_pending"`
	SpoolBytes int64             `json:"spool_bytes"`
	SpoolLimit int64             `json:"spool_limit_bytes"`
	Lookback   int               `json:"lookback_packets"`
	Reloads    ReloadStatus      `json:"reloads"`
}

// ReloadStatus counts configuration reloads by result; LastError is the
// last rejected configuration's error.
type ReloadStatus struct {
	OK        uint64 `json:"ok"`
	Failed    uint64 `json:"failed"`
	LastError string `json:"last_error,omitempty"`
}

type IfaceStatus struct {
	Name    string       `json:"name"`
	Index   int          `json:"ifindex"`
	Backend string       `json:"backend"`
	In      bpf.Counters `json:"ingress"`
	Out     bpf.Counters `json:"egress"`
}

type JobStatus struct {
	Index        int    `json:"kfl_index"`
	Query        string `json:"kfl_query"`
	OpenStreams  int    `json:"open_streams"`
	OpenBytes    int64  `json:"open_bytes"`
	Selected     uint64 `json:"streams_selected"`
	Sealed       uint64 `json:"repositories_sealed"`
	SealFailures uint64 `json:"seal_failures"`
}

// userDrops are the packets and streams lost in user space, by stage, for
// /status and kflcap_userspace_drops_total: records too short for their
// header, streams a full spool refused, streams evicted from a full table,
// packets over the retain caps.
func (a *Agent) userDrops() map[string]uint64 {
	ds := a.pipe.Stats()
	return map[string]uint64{
		"malformed_record":  a.live.Stages.Malformed.Load(),
		"spool_full":        a.spool.Refused.Load(),
		"stream_table_full": ds.StreamsEvicted,
		"retain_overflow":   ds.RetainOverflow,
	}
}

func (a *Agent) status() Status {
	st := Status{Version: a.opts.Version, Node: a.cfg.Node, Drops: a.userDrops(), Streams: a.pipe.Stats().ActiveStreams}
	counters, _ := a.live.Counters()
	for _, at := range a.live.Attachments() {
		st.Interfaces = append(st.Interfaces, IfaceStatus{
			Name: at.Iface.Name, Index: at.Iface.Index, Backend: string(at.Backend),
			In: counters[bpf.IfKey{Ifindex: at.Iface.Index, Direction: packet.Ingress}], Out: counters[bpf.IfKey{Ifindex: at.Iface.Index, Direction: packet.Egress}],
		})
	}
	for _, j := range a.jobs() {
		n, b := j.Open()
		st.Jobs = append(st.Jobs, JobStatus{Index: j.Index, Query: j.Query, OpenStreams: n, OpenBytes: b,
			Selected: j.Selected.Load(), Sealed: j.Sealed.Load(), SealFailures: j.SealFailures.Load()})
	}
	for _, t := range a.triggers.List() {
		if t.State == trigger.StateRunning || t.State == trigger.StateSealing {
			st.Triggers = append(st.Triggers, t)
		}
	}
	st.Outbox = a.outbox.Pending()
	st.SpoolBytes, st.SpoolLimit = a.spool.Used(), a.spool.MaxBytes
	if a.lookback != nil {
		st.Lookback = a.lookback.Len()
	}
	st.Reloads = ReloadStatus{OK: a.reloads.ok.Load(), Failed: a.reloads.failed.Load()}
	if e := a.reloads.lastErr.Load(); e != nil {
		st.Reloads.LastError = *e
	}
	return st
}

// WriteText prints st for a person, as `kflcap status` does.
func (st *Status) WriteText(w io.Writer) {
	fmt.Fprintf(w, "kflcap %s on %s (%s), cluster %s\n\n", st.Version, st.Node.Name, st.Node.IP, st.Node.Cluster)
	fmt.Fprintf(w, "%-16s %-7s %12s %12s %12s %10s %10s\n", "INTERFACE", "BACKEND", "SEEN", "PREFILTERED", "CAPTURED", "RINGDROPS", "COPYERRS")
	for _, i := range st.Interfaces {
		seen, filt, capt := i.In.Seen+i.Out.Seen, i.In.Filtered+i.Out.Filtered, i.In.Delivered+i.Out.Delivered
		fmt.Fprintf(w, "%-16s %-7s %12d %12d %12d %10d %10d\n", i.Name, i.Backend, seen, filt, capt, i.In.RingDrops+i.Out.RingDrops, i.In.CopyErrors+i.Out.CopyErrors)
	}
	fmt.Fprintf(w, "\nactive streams %d; user-space drops:", st.Streams)
	for _, k := range []string{"malformed_record", "stream_table_full", "retain_overflow", "spool_full"} {
		fmt.Fprintf(w, " %s %d", k, st.Drops[k])
	}
	fmt.Fprintf(w, "\n\n%-4s %-40s %8s %10s %9s %7s\n", "JOB", "QUERY", "OPEN", "OPENBYTES", "SELECTED", "SEALED")
	for _, j := range st.Jobs {
		q := j.Query
		if len(q) > 40 {
			q = q[:39] + "…"
		}
		fmt.Fprintf(w, "%-4d %-40s %8d %10d %9d %7d\n", j.Index, q, j.OpenStreams, j.OpenBytes, j.Selected, j.Sealed)
	}
	if len(st.Triggers) > 0 {
		fmt.Fprintln(w, "\ntriggered captures:")
		for _, t := range st.Triggers {
			fmt.Fprintf(w, "  %s %-20s %-8s until %s  %s\n", t.ID, t.Name, t.State, t.Until.Format(time.TimeOnly), t.KFL)
		}
	}
	fmt.Fprintf(w, "\noutbox: %d waiting; spool %d of %d bytes; lookback %d packets\n", st.Outbox, st.SpoolBytes, st.SpoolLimit, st.Lookback)
	if r := st.Reloads; r.OK+r.Failed > 0 {
		fmt.Fprintf(w, "configuration reloads: %d applied, %d rejected", r.OK, r.Failed)
		if r.LastError != "" {
			fmt.Fprintf(w, " (last: %s)", r.LastError)
		}
		fmt.Fprintln(w)
	}
}
