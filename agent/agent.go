package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/names"
	"github.com/kflcap/kflcap/pipeline"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/trigger"
	"github.com/kflcap/kflcap/upload"
)

// Options are what the agent takes besides its configuration.
type Options struct {
	// ConfigPath is the file the configuration came from, reloaded on
	// SIGHUP and when its content changes; "" for the embedded default or
	// when --kfl replaced the file's jobs (nothing to reload).
	ConfigPath string
	// Grace bounds sealing and delivery after the context ends.
	Grace time.Duration
	// Version goes into content.json and /status.
	Version string
	Logger  *slog.Logger
}

// ConfigError is a configuration the agent cannot run with (exit code 2):
// a query, a directory, an interface or an address that does not work.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "config: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configErrorf(format string, a ...any) error {
	return &ConfigError{fmt.Errorf(format, a...)}
}

// Agent is the node daemon: it captures on the configured interfaces,
// keeps the streams its KFL jobs select in repositories, runs triggered
// captures, and delivers sealed repositories to its sinks.
type Agent struct {
	cfg     *config.Config
	opts    Options
	log     *slog.Logger
	queries []*kfl.Query
	ifaces  []bpf.Interface
	rules   []trigger.Rule
	sinks   []upload.Sink
	slack   *upload.Notifier // nil without Slack settings
	names   *names.History

	// Set up by Run.
	spool      *repo.Spool
	outbox     *upload.Outbox
	live       *collector.Live
	pipe       *pipeline.Pipeline
	dedup      *collector.Dedup
	lookback   *Lookback // nil when capture.lookbackBytes is 0
	triggers   *Triggers
	resolve    resolvers
	local      names.LocalAddrs
	triggersOn bool
	set        atomic.Pointer[jobSet]
	sinkErrs   sinkHealth
	api        atomic.Pointer[trigger.Server] // nil without api.listen
	readerDone chan struct{}
	reloads    reloadCounts
}

// reloadCounts are the configuration reloads by result, for /status and
// the metrics: a rejected configuration is otherwise only a log line.
type reloadCounts struct {
	ok, failed atomic.Uint64
	lastErr    atomic.Pointer[string]
}

// jobSet is the running jobs and their compiled queries, swapped as a
// whole on reload.
type jobSet struct {
	queries []*kfl.Query
	jobs    []*Job
	pf      kfl.Prefilter // what the queries can select, for new streams
}

// selectable reports whether a job could select a stream between a and b.
func (s *jobSet) selectable(proto uint8, a, b netip.AddrPort) bool {
	return len(s.queries) > 0 && s.pf.Accepts(proto, a.Addr(), b.Addr(), a.Port(), b.Port(), false)
}

// selections pairs each job with its query for the pipeline.
func (s *jobSet) selections() []pipeline.Selection {
	sel := make([]pipeline.Selection, len(s.jobs))
	for i, j := range s.jobs {
		sel[i] = pipeline.Selection{Query: s.queries[i], Sink: j}
	}
	return sel
}

func (a *Agent) jobs() []*Job {
	if s := a.set.Load(); s != nil {
		return s.jobs
	}
	return nil
}

// New checks everything that can be checked before attaching: queries
// (with their positions), spool and local directories, trigger rules, the
// API address, interfaces, sinks. Its errors are *ConfigError.
func New(cfg *config.Config, opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	log := opts.Logger
	a := &Agent{cfg: cfg, opts: opts, log: log, names: names.New(0)}
	if err := kfl.ValidateMacros(cfg.KFL.Macros); err != nil {
		return nil, configErrorf("kfl.macros: %v", err)
	}
	qs, err := compileJobs(cfg)
	if err != nil {
		return nil, &ConfigError{err}
	}
	a.queries = qs
	for _, d := range []struct{ key, dir string }{{"spool.dir", cfg.Spool.Dir}, {"local.dir", cfg.Local.Dir}} {
		if err := checkWritableDir(d.dir); err != nil {
			return nil, configErrorf("%s: %v", d.key, err)
		}
	}
	if len(cfg.Triggers) > 0 {
		if a.rules, err = trigger.ParseRules(cfg.Triggers); err != nil {
			return nil, &ConfigError{err}
		}
	}
	if cfg.API.Listen != "" {
		if err := trigger.CheckListen(cfg.API.Listen, string(cfg.API.Token)); err != nil {
			return nil, &ConfigError{err}
		}
	}
	if a.ifaces, err = collector.Discover("", cfg.Capture.Interfaces); err != nil {
		return nil, configErrorf("capture.interfaces: %v", err)
	}
	uo := uploadOptions(cfg)
	if a.sinks, err = upload.NewSinks(context.Background(), uo, log); err != nil {
		return nil, configErrorf("kflPcapS3: %v", err)
	}
	a.slack = upload.NewSlackNotifier(uo, log)
	return a, nil
}

// compileJobs compiles kflPcapS3.kflArr (none when inactive); errors name
// the query's index and position.
func compileJobs(cfg *config.Config) ([]*kfl.Query, error) {
	if !cfg.KflPcapS3.Active {
		return nil, nil
	}
	var qs []*kfl.Query
	for i, src := range cfg.KflPcapS3.KflArr {
		q, err := kfl.Compile(src, kfl.WithMacros(cfg.KFL.Macros))
		if err != nil {
			var ke *kfl.Error
			if errors.As(err, &ke) {
				return nil, fmt.Errorf("kflPcapS3.kflArr[%d]: kfl: %s", i, ke.Detailed())
			}
			return nil, fmt.Errorf("kflPcapS3.kflArr[%d]: %v", i, err)
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// checkWritableDir creates dir and proves a file can be written in it.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".kflcap-write-test-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
