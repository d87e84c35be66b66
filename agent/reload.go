package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/pipeline"
	"github.com/kflcap/kflcap/trigger"
)

// configPoll is how often the configuration file is compared with what
// was last loaded.
const configPoll = 2 * time.Second

// reloadLoop reloads on SIGHUP, and when the configuration file's content
// changes: in Kubernetes an edited ConfigMap reaches the mounted file by
// itself (the kubelet swaps it within a minute or so), and nobody sends a
// signal.
func (a *Agent) reloadLoop(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	path := a.opts.ConfigPath
	var poll <-chan time.Time
	var last []byte
	if path != "" {
		last, _ = os.ReadFile(path)
		tick := time.NewTicker(configPoll)
		defer tick.Stop()
		poll = tick.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if path != "" {
				last, _ = os.ReadFile(path)
			}
			a.reload()
		case <-poll:
			b, err := os.ReadFile(path)
			if err != nil || bytes.Equal(b, last) {
				continue
			}
			last = b
			a.log.Info("configuration file changed: reloading", "path", path)
			a.reload()
		}
	}
}

// reload re-reads the configuration file and swaps the jobs without
// reattaching anything: a job whose query is unchanged keeps its open
// repository, a changed or removed one seals it, and the kernel prefilter
// follows the new queries. A configuration that does not load or compile
// leaves everything as it was.
func (a *Agent) reload() {
	if a.opts.ConfigPath == "" {
		a.log.Warn("reload: nothing to reload (no --config file, or --kfl given)")
		return
	}
	cfg, qs, rules, err := a.loadReload()
	if err != nil {
		a.reloads.failed.Add(1)
		msg := err.Error()
		a.reloads.lastErr.Store(&msg)
		a.log.Error("reload: configuration not reloaded, the running jobs and trigger rules stay", "err", err)
		return
	}
	a.reloads.ok.Add(1)
	a.rules = rules
	if fmt.Sprint(cfg.Capture, cfg.Spool, cfg.Local, cfg.API, cfg.Metrics) != fmt.Sprint(a.cfg.Capture, a.cfg.Spool, a.cfg.Local, a.cfg.API, a.cfg.Metrics) {
		a.log.Warn("reload: capture, spool, local, api and metrics settings take effect at the next start")
	}
	old := a.set.Load()
	a.cfg.KflPcapS3 = cfg.KflPcapS3
	a.cfg.KFL = cfg.KFL
	next := &jobSet{queries: qs, pf: kfl.Pushdown(qs...)}
	kept := map[*Job]bool{}
	for i := range qs {
		src := cfg.KflPcapS3.KflArr[i]
		if i < len(old.jobs) && old.jobs[i].Query == src {
			next.jobs = append(next.jobs, old.jobs[i])
			kept[old.jobs[i]] = true
			continue
		}
		next.jobs = append(next.jobs, a.newJob(i, src))
	}
	a.set.Store(next)
	a.pipe.SetSelections(next.selections())
	for _, j := range old.jobs {
		if !kept[j] {
			go j.Retire()
		}
	}
	prefilter := pipeline.KernelPrefilter(a.triggersOn, qs...)
	if err := a.live.Objects().SetPrefilter(prefilter); err != nil {
		a.log.Error("reload: update the kernel prefilter", "err", err)
	}
	a.log.Info("reloaded", "jobs", len(next.jobs), "kept", len(kept), "prefilter", !prefilter.Empty(), "trigger_rules", len(rules))
}

// loadReload loads and checks the configuration file: its jobs' queries
// and its trigger rules (handed to the API, which checks them all before
// changing anything). Nil rules mean the default rule.
func (a *Agent) loadReload() (*config.Config, []*kfl.Query, []trigger.Rule, error) {
	cfg, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := kfl.ValidateMacros(cfg.KFL.Macros); err != nil {
		return nil, nil, nil, err
	}
	qs, err := compileJobs(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	var rules []trigger.Rule
	if len(cfg.Triggers) > 0 {
		if rules, err = trigger.ParseRules(cfg.Triggers); err != nil {
			return nil, nil, nil, err
		}
	}
	if srv := a.api.Load(); srv != nil {
		if err := srv.SetRules(rules); err != nil {
			return nil, nil, nil, err
		}
	}
	return cfg, qs, rules, nil
}
