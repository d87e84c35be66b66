package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kflcap/kflcap/agent"
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
	var st agent.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("agent at %s: unreadable status: %w", *addr, err)
	}
	st.WriteText(e.stdout)
	return nil
}
