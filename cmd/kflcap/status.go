package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

func init() {
	register("status", command{summary: "show a running agent: interfaces, counters, jobs, captures, outbox", run: runStatus})
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("status", "status [--addr HOST:PORT] [--json]",
		"  kflcap status\n  kflcap status --addr 10.0.0.7:9750 --json", e.stdout)
	addr := fs.String("addr", "127.0.0.1:9750", "the agent's metrics.listen address")
	asJSON := fs.Bool("json", false, "print the agent's status document")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q", pos[0])
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no agent answers at %s (is it running? metrics.listen?): %w", *addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent at %s answered %s: %s", *addr, resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := e.stdout.Write(body)
		return err
	}
	var st agentStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("agent at %s: unreadable status: %w", *addr, err)
	}
	printStatus(e.stdout, &st)
	return nil
}

func printStatus(w io.Writer, st *agentStatus) {
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
}
