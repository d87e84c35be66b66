package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	agentpkg "github.com/kflcap/kflcap/agent"
	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/names"
	"github.com/kflcap/kflcap/names/kube"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/trigger"
	"github.com/kflcap/kflcap/upload"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"
)

func init() {
	register("agent", command{summary: "run the node agent: continuous KFL jobs into pcap repositories", run: runAgent})
}

const agentExamples = `  kflcap agent                                   # embedded default: HTTP 500s and DNS into ./kflcap-data/
  kflcap agent --config /etc/kflcap/config.yaml
  kflcap agent --kfl 'http and response.status == 500' --kfl dns
  kflcap agent --config c.yaml --print-config   # the effective configuration, secrets masked`

func runAgent(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("agent", "agent [--config FILE] [--kfl QUERY]...", agentExamples, e.stdout)
	cfgPath := fs.String("config", "", "configuration `FILE` (YAML; default: the embedded default)")
	var queries stringList
	fs.Var(&queries, "kfl", "a KFL query for a job (repeatable; replaces kflPcapS3.kflArr)")
	printConfig := fs.Bool("print-config", false, "print the effective configuration (secrets masked) and exit")
	grace := fs.Duration("grace", 20*time.Second, "on SIGTERM, how long sealing and delivery may take before exit")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected argument %q", pos[0])
	}
	var cfg *config.Config
	if *cfgPath == "" {
		cfg, err = config.Default()
	} else {
		cfg, err = config.Load(*cfgPath)
	}
	if err != nil {
		return usageErrorf("config: %v", err)
	}
	if len(queries) > 0 {
		cfg.KflPcapS3.KflArr = queries
		cfg.KflPcapS3.Active = true
	}
	if *printConfig {
		out, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(out)
		return err
	}
	a, err := newAgent(cfg, e.log)
	if err != nil {
		return err
	}
	setMemoryLimit(e.log, "/sys/fs/cgroup", "/proc/self/cgroup")
	a.cfgPath = *cfgPath
	if len(queries) > 0 {
		a.cfgPath = "" // --kfl replaced the file's jobs: a reload would lose them
	}
	return a.run(ctx, *grace)
}

// agent wires capture → dissector → jobs → repositories → outbox → sinks.
type agent struct {
	cfg      *config.Config
	cfgPath  string // "" for the embedded default (nothing to reload)
	log      *slog.Logger
	queries  []*kfl.Query
	ifaces   []collector.Iface
	spool    *repo.Spool
	outbox   *upload.Outbox
	sinks    []upload.Sink
	slack    *upload.Notifier // nil without Slack settings
	names    *names.History
	set      atomic.Pointer[jobSet]
	newJob   func(index int, query string) *agentpkg.Job
	lookback *agentpkg.Lookback
	triggers *agentpkg.Triggers
	rules    []trigger.Rule
	sinkErrs sinkHealth
	api      atomic.Pointer[trigger.Server] // nil without api.listen
}

// sinkHealth is whether each sink took the last thing it was asked to
// (the start-up check, then every delivery): /readyz reports the sinks
// that did not.
type sinkHealth struct {
	mu   sync.Mutex
	errs map[string]error
}

func (h *sinkHealth) set(sink string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.errs == nil {
		h.errs = map[string]error{}
	}
	if err == nil {
		delete(h.errs, sink)
	} else {
		h.errs[sink] = err
	}
}

// err names the failing sinks with their last error, sorted; nil when
// every sink is reachable.
func (h *sinkHealth) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := slices.Sorted(maps.Keys(h.errs))
	var errs []error
	for _, n := range names {
		errs = append(errs, fmt.Errorf("sink %s: %w", n, h.errs[n]))
	}
	return errors.Join(errs...)
}

// jobSet is the running jobs and their compiled queries, swapped as a
// whole on SIGHUP so that dissector workers always see a consistent pair.
type jobSet struct {
	queries []*kfl.Query
	jobs    []*agentpkg.Job
	pf      kfl.Prefilter // what the queries can select, for new streams
}

// kernelPrefilter is what the kernel may drop for the jobs' pushdown pf.
// Triggered captures can ask for any traffic, including what came before
// them: with the capture API or trigger rules on, the kernel copies
// everything.
func kernelPrefilter(pf kfl.Prefilter, triggersOn bool) bpf.Prefilter {
	if pf.All || triggersOn {
		return bpf.Prefilter{}
	}
	return bpf.Prefilter{Protocols: pf.Protocols, Prefixes: pf.Prefixes, Ports: pf.Ports}
}

// selectable reports whether a job could select a stream between a and b.
func (s *jobSet) selectable(proto uint8, a, b netip.AddrPort) bool {
	return len(s.queries) > 0 && s.pf.Accepts(proto, a.Addr(), b.Addr(), a.Port(), b.Port(), false)
}

func (a *agent) jobs() []*agentpkg.Job {
	if s := a.set.Load(); s != nil {
		return s.jobs
	}
	return nil
}

// newAgent checks everything that can be checked before attaching: queries
// (with their positions), spool and local directories, interfaces. Its
// errors are usage errors (exit 2).
func newAgent(cfg *config.Config, log *slog.Logger) (*agent, error) {
	a := &agent{cfg: cfg, log: log, names: names.New(0)}
	if err := kfl.ValidateMacros(cfg.KFL.Macros); err != nil {
		return nil, usageErrorf("config: kfl.macros: %v", err)
	}
	qs, err := compileJobs(cfg)
	if err != nil {
		return nil, usageError{err}
	}
	a.queries = qs
	for _, d := range []struct{ key, dir string }{{"spool.dir", cfg.Spool.Dir}, {"local.dir", cfg.Local.Dir}} {
		if err := checkWritableDir(d.dir); err != nil {
			return nil, usageErrorf("config: %s: %v", d.key, err)
		}
	}
	if len(cfg.Triggers) > 0 {
		rules, err := trigger.ParseRules(cfg.Triggers)
		if err != nil {
			return nil, usageErrorf("config: %v", err)
		}
		a.rules = rules
	}
	if cfg.API.Listen != "" {
		if err := trigger.CheckListen(cfg.API.Listen, string(cfg.API.Token)); err != nil {
			return nil, usageErrorf("config: %v", err)
		}
	}
	ifaces, err := collector.Discover("", cfg.Capture.Interfaces)
	if err != nil {
		return nil, usageErrorf("config: capture.interfaces: %v", err)
	}
	a.ifaces = ifaces
	uo := agentpkg.UploadOptions(cfg)
	if a.sinks, err = upload.NewSinks(context.Background(), uo, log); err != nil {
		return nil, usageErrorf("config: kflPcapS3: %v", err)
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
				return nil, fmt.Errorf("config: kflPcapS3.kflArr[%d]: kfl: %s", i, ke.Detailed())
			}
			return nil, fmt.Errorf("config: kflPcapS3.kflArr[%d]: %v", i, err)
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

func (a *agent) run(ctx context.Context, grace time.Duration) error {
	cfg := a.cfg
	spoolDir := cfg.Spool.Dir
	outboxDir := filepath.Join(spoolDir, "outbox")
	if removed, err := repo.RecoverSpool(spoolDir, outboxDir); err != nil {
		return err
	} else if len(removed) > 0 {
		a.log.Warn("removed unsealed repositories left by a previous run", "spool", spoolDir, "removed", removed)
	}
	a.spool = &repo.Spool{Dir: spoolDir, MaxBytes: int64(cfg.Spool.MaxBytes)}
	a.spool.Rescan()
	var err error
	a.outbox, err = upload.NewOutbox(outboxDir, a.sinks, a.log)
	if err != nil {
		return err
	}
	go func() { // advice only: archives wait in the outbox either way
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, s := range a.sinks {
			err := upload.Check(ctx, []upload.Sink{s})
			a.sinkErrs.set(s.Name(), err)
			if err != nil {
				a.log.Error("upload: the store cannot take archives yet; they wait in the outbox", "sink", s.Name(), "err", err)
			}
		}
	}()
	slackCtx, stopSlack := context.WithCancel(context.Background())
	go a.slack.Run(slackCtx)
	defer func() { stopSlack(); a.slack.Wait() }() // after shutdown's last deliveries
	if err := a.names.LoadHosts("/etc/hosts", time.Now()); err != nil {
		a.log.Debug("no /etc/hosts names", "err", err)
	}

	outboxCtx, stopOutbox := context.WithCancel(context.Background())
	defer stopOutbox()
	outboxDone := make(chan struct{})
	go func() { a.outbox.Run(outboxCtx); close(outboxDone) }()

	if len(a.queries) == 0 && cfg.API.Listen == "" && len(cfg.Triggers) == 0 {
		a.log.Info("no active jobs (kflPcapS3.active is false) and no triggers: delivering what the spool holds, capturing nothing")
		<-ctx.Done()
		return a.shutdown(nil, nil, stopOutbox, outboxDone, grace)
	}

	pf := kfl.Pushdown(a.queries...)
	triggersOn := cfg.API.Listen != "" || len(cfg.Triggers) > 0
	prefilter := kernelPrefilter(pf, triggersOn)
	backend := bpf.Backend(cfg.Capture.Backend)
	live, err := collector.StartLive(collector.LiveOptions{
		Ifaces: a.ifaces, Backend: backend, Snaplen: uint32(cfg.Capture.Snaplen),
		RingBytes: uint32(cfg.Capture.RingBufferBytes), PinDir: bpf.DefaultPinRoot,
		Prefilter: prefilter, Logger: a.log,
		// A quiet ring keeps its packets at most this long (the BPF side
		// wakes the reader early once enough bytes wait): an idle node is
		// not woken 20 times a second for nothing.
		Reader: collector.ReaderOptions{Deadline: 200 * time.Millisecond},
	})
	if err != nil {
		return fmt.Errorf("start capture: %w", err)
	}
	defer live.Close()
	var attached []string
	for _, at := range live.Attachments() {
		attached = append(attached, at.Iface.Name+"/"+string(at.Backend))
	}
	a.log.Info("capturing", "interfaces", strings.Join(attached, ","), "jobs", len(a.queries), "prefilter", !prefilter.Empty(), "lookback_bytes", int64(cfg.Capture.LookbackBytes), "spool", spoolDir, "local", cfg.Local.Dir)

	// Follow interfaces that come and go (pods' veths) when the selection
	// is "any" or a pattern.
	if sel, _ := collector.NewSelector(cfg.Capture.Interfaces); sel.Dynamic() {
		watchCtx, stopWatch := context.WithCancel(context.Background())
		defer stopWatch()
		err := collector.WatchLinks(watchCtx, "", sel,
			func(ifc collector.Iface) {
				start := time.Now()
				added, err := live.Add(ifc)
				if err != nil {
					a.log.Warn("attach new interface", "interface", ifc.Name, "err", err)
					return
				}
				if !added {
					return // a later event of a link already attached
				}
				a.log.Info("attached new interface", "interface", ifc.Name, "ifindex", ifc.Index, "took", time.Since(start))
			},
			func(index int) {
				ifc, _ := live.Iface(index)
				removed, err := live.Remove(index)
				if err != nil {
					a.log.Debug("detach removed interface", "interface", ifc.Name, "err", err)
				}
				if removed {
					a.log.Info("released removed interface", "interface", ifc.Name, "ifindex", index)
				}
			},
			func(err error) { a.log.Warn("interface watch", "err", err) })
		if err != nil {
			a.log.Warn("not following new interfaces", "err", err)
		}
	}
	var dis *dissect.Dissector
	stats := func() map[string]uint64 {
		m := map[string]uint64{}
		if c, err := live.Counters(); err == nil {
			t := bpf.Total(c)
			m["packets_seen"] = t.Seen - t.Filtered
			m["packets_prefiltered"] = t.Filtered
			m["packets_captured"] = t.Delivered
			m["packets_dropped_kernel"] = t.Dropped()
		}
		m["packets_dropped_userspace"] = live.Stages.Malformed.Load()
		if dis != nil {
			s := dis.Stats()
			m["dissect_malformed"] = s.Malformed
			m["streams_evicted"] = s.StreamsEvicted
			m["retain_overflow"] = s.RetainOverflow
		}
		m["spool_refused_streams"] = a.spool.Refused.Load()
		return m
	}
	a.newJob = func(i int, query string) *agentpkg.Job {
		k := a.cfg.KflPcapS3
		return &agentpkg.Job{
			Index: i, Query: query, Prefix: k.Prefix,
			Limits: agentpkg.JobLimits{Lifetime: k.RepositoryLifetime(), MaxStreams: k.MaxL4Streams, MaxBytes: int64(k.MaxBytes)},
			Outbox: outboxDir, Spool: a.spool, Snaplen: uint32(cfg.Capture.Snaplen),
			Content: a.content, Stats: stats, Names: a.names,
			OnSealed: func(s agentpkg.Sealed) {
				a.log.Info("repository sealed", "archive", filepath.Base(s.Path), "kfl_index", s.KFLIndex, "streams", s.Streams, "bytes", s.Bytes)
				a.outbox.Notify()
			},
			Verbose: k.Verbose, Log: a.log,
		}
	}
	first := &jobSet{queries: a.queries, pf: pf}
	for i := range a.queries {
		first.jobs = append(first.jobs, a.newJob(i, cfg.KflPcapS3.KflArr[i]))
	}
	a.set.Store(first)
	if cfg.Capture.LookbackBytes > 0 {
		a.lookback = agentpkg.NewLookback(int(cfg.Capture.LookbackBytes))
	}
	a.triggers = &agentpkg.Triggers{
		Lookback: a.lookback,
		Log:      a.log,
		Template: agentpkg.JobTemplate{
			Outbox: outboxDir, Spool: a.spool, Snaplen: uint32(cfg.Capture.Snaplen), Names: a.names,
			Content: a.content, Stats: stats, Verbose: cfg.KflPcapS3.Verbose,
			OnSealed: func(s agentpkg.Sealed) {
				a.log.Info("triggered repository sealed", "archive", filepath.Base(s.Path), "streams", s.Streams, "bytes", s.Bytes)
				a.outbox.Notify()
			},
		},
	}
	// Kubernetes names (pods, services) when in a cluster or given a
	// kubeconfig; failures leave names unknown, never stop capture. Names
	// from DNS answers and /etc/hosts name the other addresses.
	var (
		resolver    dissect.Resolver = a.names
		podResolver trigger.PodResolver
		localPod    = func(netip.Addr) bool { return false }
		extraColl   []prometheus.Collector
	)
	if ko, ok := kube.FromConfig(cfg.Kubernetes, cfg.Node.Name); ok {
		ko.Names, ko.Logger = a.names, a.log
		kctx, stopKube := context.WithCancel(context.Background())
		defer stopKube()
		if r, err := kube.Start(kctx, ko); err != nil {
			a.log.Warn("Kubernetes names unavailable: entries and repositories carry IPs only", "err", err)
		} else {
			defer r.Close()
			resolver, podResolver, localPod = dissect.Resolvers{r, a.names}, r, r.Local
			extraColl = append(extraColl, kube.NewMetrics(r))
			a.log.Info("resolving names from the Kubernetes API", "node", cfg.Node.Name, "kubeconfig", ko.Kubeconfig != "")
		}
	}
	dedup := collector.NewDedup(int64(50*time.Millisecond), 16)
	metrics := agentpkg.NewMetrics(agentpkg.MetricsSources{
		Alerts: func() trigger.Counters {
			if srv := a.api.Load(); srv != nil {
				return srv.Counters()
			}
			return trigger.Counters{}
		},
		Dedup:    dedup,
		Kernel:   live.Counters,
		IfName:   func(i int) string { ifc, _ := live.Iface(i); return ifc.Name },
		Attached: func() int { return len(live.Attachments()) },
		Stages:   &live.Stages,
		Dissect: func() dissect.Stats {
			if dis == nil {
				return dissect.Stats{}
			}
			return dis.Stats()
		},
		Jobs:     a.jobs,
		Spool:    a.spool,
		Triggers: a.triggers,
		Pending:  a.outbox.Pending,
		Lookback: a.lookback,
	})
	a.outbox.OnDelivery = func(d upload.Delivery) {
		reason := ""
		if d.Err != nil {
			reason = upload.Reason(d.Err)
		}
		metrics.ObserveUpload(d.Sink, d.Err == nil, reason, d.Latency)
		a.sinkErrs.set(d.Sink, d.Err)
		a.slack.OnDelivery(d)
		if d.Err == nil {
			a.triggers.MarkDelivered(d.Archive.Name, d.URL)
		}
	}
	if cfg.API.Listen != "" {
		srv, err := trigger.NewServer(a.triggers, trigger.Config{
			Listen: cfg.API.Listen, Token: string(cfg.API.Token), TLSCert: cfg.API.TLSCert, TLSKey: cfg.API.TLSKey,
			Rules: a.rules, Logger: a.log, Resolver: podResolver,
		})
		if err != nil {
			live.Close()
			return usageErrorf("config: api: %v", err)
		}
		ln, err := net.Listen("tcp", cfg.API.Listen)
		if err != nil {
			live.Close()
			return usageErrorf("config: api.listen: %v", err)
		}
		a.api.Store(srv)
		apiCtx, stopAPI := context.WithCancel(context.Background())
		defer stopAPI()
		go func() {
			if err := srv.Serve(apiCtx, ln); err != nil {
				a.log.Error("capture API", "err", err)
			}
		}()
		a.log.Info("serving the capture API", "addr", ln.Addr().String(), "token", cfg.API.Token != "", "rules", len(a.rules))
	}
	readerDone := make(chan struct{})
	if cfg.Metrics.Listen != "" {
		srv, err := a.serveMetrics(cfg.Metrics.Listen, metrics, func() error {
			select {
			case <-readerDone:
				return errors.New("capture stopped")
			default:
			}
			if len(live.Attachments()) == 0 {
				return errors.New("no interface attached")
			}
			return a.sinkErrs.err()
		}, func() agentStatus { return a.status(live, dis) }, extraColl...)
		if err != nil {
			live.Close()
			return usageErrorf("config: metrics.listen: %v", err)
		}
		defer srv.Close()
	}
	// An entry is outgoing when its client is this node: one of its
	// addresses (read again every 5 s) or one of its pods.
	var local names.LocalAddrs
	if err := local.Refresh(); err != nil {
		a.log.Warn("cannot list this node's addresses: entries from it are not marked outgoing", "err", err)
	}
	dis = dissect.New(dissect.Config{
		Resolver: resolver,
		// With triggers on the kernel copies everything; streams no job
		// can select are counted, but not kept for a selection that cannot
		// come, nor dissected. DNS is always dissected: its answers name
		// the addresses of every entry.
		Selectable: func(proto uint8, src, dst netip.AddrPort) bool {
			return src.Port() == 53 || dst.Port() == 53 || a.set.Load().selectable(proto, src, dst)
		},
		Local:             func(ip netip.Addr) bool { return local.Contains(ip) || localPod(ip) },
		Workers:           runtime.NumCPU(),
		StreamRetainBytes: 1 << 20,
		// Packets kept per stream for a later selection: enough for the
		// start of a connection, and bounded in total so that a node with
		// 100k streams stays within a few hundred MiB.
		TotalRetainBytes: 64 << 20,
		// Keep retaining after a selection only when another job may still
		// select the stream (a job added by SIGHUP gets its streams' packets
		// from the moment it starts).
		RetainSelected: len(a.queries) > 1,
		Node:           dissect.Node{Name: cfg.Node.Name, IP: cfg.Node.IP},
		Logger:         a.log,
		OnEntry:        a.onEntry,
	})

	// Seal on time, follow the spool, expire idle streams.
	tickCtx, stopTick := context.WithCancel(context.Background())
	var tickers sync.WaitGroup
	tickers.Add(1)
	go func() {
		defer tickers.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		n := 0
		for {
			select {
			case <-tickCtx.Done():
				return
			case now := <-t.C:
				for _, j := range a.jobs() {
					j.Tick(now)
				}
				if n++; n%4 == 0 {
					a.spool.Rescan()
				}
				if n%10 == 0 {
					local.Refresh()
				}
			}
		}
	}()
	go func() {
		<-ctx.Done()
		a.log.Info("stopping: detaching, then sealing open repositories", "grace", grace)
		live.Stop()
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go a.reloadLoop(ctx, hup, live, triggersOn)

	// Tick after every batch hands the workers what Feed has buffered (so
	// entries, and selections, follow the traffic closely) and, when the
	// link is idle, still expires streams.
	idle := time.NewTicker(250 * time.Millisecond)
	defer idle.Stop()
feed:
	for {
		select {
		case b, ok := <-live.Batches():
			if !ok {
				break feed
			}
			for i := range b.Packets {
				p := &b.Packets[i]
				// A packet crossing two captured interfaces (a veth pair's ends,
				// a pod's veth and the uplink) enters the streams once.
				if dedup.Seen(p) {
					continue
				}
				if a.lookback != nil {
					a.lookback.Add(p)
				}
				dis.Feed(*p)
				a.triggers.Feed(p)
			}
			b.Release()
			now := time.Now()
			dis.Tick(now)
			a.triggers.Tick(now)
		case now := <-idle.C:
			dis.Tick(now)
			a.triggers.Tick(now)
		}
	}
	readErr := live.Wait()
	close(readerDone)
	dis.Close() // pending requests become entries; they may still select streams
	a.triggers.Close()
	stopTick()
	tickers.Wait()
	return errors.Join(readErr, a.shutdown(live, dis, stopOutbox, outboxDone, grace))
}

// configPoll is how often the configuration file is compared with what
// was last loaded.
const configPoll = 2 * time.Second

// reloadLoop reloads on SIGHUP, and when the configuration file's content
// changes: in Kubernetes an edited ConfigMap reaches the mounted file by
// itself (the kubelet swaps it within a minute or so), and nobody sends a
// signal.
func (a *agent) reloadLoop(ctx context.Context, hup <-chan os.Signal, live *collector.Live, triggersOn bool) {
	if a.cfgPath == "" {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.reload(live, triggersOn)
			}
		}
	}
	last, _ := os.ReadFile(a.cfgPath)
	tick := time.NewTicker(configPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last, _ = os.ReadFile(a.cfgPath)
			a.reload(live, triggersOn)
		case <-tick.C:
			b, err := os.ReadFile(a.cfgPath)
			if err != nil || bytes.Equal(b, last) {
				continue
			}
			last = b
			a.log.Info("configuration file changed: reloading", "path", a.cfgPath)
			a.reload(live, triggersOn)
		}
	}
}

// reload re-reads the configuration file (SIGHUP) and swaps the jobs
// without reattaching anything: a job whose query is unchanged keeps its
// open repository, a changed or removed one seals it, and the kernel
// prefilter follows the new queries. A configuration that does not load
// or compile leaves everything as it was.
func (a *agent) reload(live *collector.Live, triggersOn bool) {
	if a.cfgPath == "" {
		a.log.Warn("reload: nothing to reload (no --config file, or --kfl given)")
		return
	}
	cfg, err := config.Load(a.cfgPath)
	if err == nil {
		err = kfl.ValidateMacros(cfg.KFL.Macros)
	}
	var qs []*kfl.Query
	if err == nil {
		qs, err = compileJobs(cfg)
	}
	var rules []trigger.Rule // nil: the default rule
	if err == nil && len(cfg.Triggers) > 0 {
		rules, err = trigger.ParseRules(cfg.Triggers)
	}
	if err == nil {
		if srv := a.api.Load(); srv != nil {
			err = srv.SetRules(rules) // checks them all before changing anything
		}
	}
	if err != nil {
		a.log.Error("reload: configuration not reloaded, the running jobs and trigger rules stay", "err", err)
		return
	}
	a.rules = rules
	if fmt.Sprint(cfg.Capture, cfg.Spool, cfg.Local, cfg.API, cfg.Metrics) != fmt.Sprint(a.cfg.Capture, a.cfg.Spool, a.cfg.Local, a.cfg.API, a.cfg.Metrics) {
		a.log.Warn("reload: capture, spool, local, api and metrics settings take effect at the next start")
	}
	old := a.set.Load()
	a.cfg.KflPcapS3 = cfg.KflPcapS3
	a.cfg.KFL = cfg.KFL
	next := &jobSet{queries: qs, pf: kfl.Pushdown(qs...)}
	kept := map[*agentpkg.Job]bool{}
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
	for _, j := range old.jobs {
		if !kept[j] {
			go j.Retire()
		}
	}
	prefilter := kernelPrefilter(next.pf, triggersOn)
	if err := live.Objects().SetPrefilter(prefilter); err != nil {
		a.log.Error("reload: update the kernel prefilter", "err", err)
	}
	a.log.Info("reloaded", "jobs", len(next.jobs), "kept", len(kept), "prefilter", !prefilter.Empty(), "trigger_rules", len(rules))
}

// onEntry learns names from DNS answers and selects the entry's stream for
// every job whose query matches.
func (a *agent) onEntry(e *dissect.Entry, s dissect.StreamRef) {
	if e.DNS != nil && e.DNS.HasResponse {
		at := time.UnixMilli(e.Timestamp)
		for _, r := range e.DNS.Response.Answers {
			if r.IP != "" {
				a.names.Add(at, r.IP, names.Record{FullAddress: strings.TrimSuffix(r.Name, "."), Source: names.SourceDNS})
			}
		}
	}
	set := a.set.Load()
	for i, q := range set.queries {
		if q.Match(e) {
			s.Select(set.jobs[i])
		}
	}
}

// content is what every content.json carries besides the wrapper's fields.
func (a *agent) content() repo.Content {
	return repo.Content{
		Node:          &repo.Node{Name: a.cfg.Node.Name, IP: a.cfg.Node.IP, Cluster: a.cfg.Node.Cluster},
		KflcapVersion: version,
	}
}

// shutdown seals open repositories and gives the outbox the grace period
// to deliver; what is not delivered stays in the spool for the next start.
func (a *agent) shutdown(live *collector.Live, dis *dissect.Dissector, stopOutbox context.CancelFunc, outboxDone chan struct{}, grace time.Duration) error {
	for _, j := range a.jobs() {
		j.Flush()
	}
	stopOutbox()
	<-outboxDone
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if !a.outbox.Drain(ctx) {
		a.log.Warn("grace period over: undelivered repositories stay in the spool for the next start", "pending", a.outbox.Pending())
	}
	if live != nil {
		total := map[string]uint64{}
		if c, err := live.Counters(); err == nil {
			t := bpf.Total(c)
			total["seen"], total["captured"], total["dropped_kernel"] = t.Seen-t.Filtered, t.Delivered, t.Dropped()
		}
		s := dis.Stats()
		a.log.Info("stopped", "packets_seen", total["seen"], "packets_captured", total["captured"], "dropped_kernel", total["dropped_kernel"],
			"dropped_userspace", live.Stages.Malformed.Load(), "streams", s.Streams, "entries", s.Entries, "spool_refused_streams", a.spool.Refused.Load())
	}
	return nil
}

// serveMetrics serves /metrics (Prometheus), /healthz (the process is
// alive) and /readyz (capture attached and reading) on addr.
func (a *agent) serveMetrics(addr string, m *agentpkg.Metrics, ready func() error, status func() agentStatus, extra ...prometheus.Collector) (*http.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(extra...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(status())
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	a.log.Info("serving metrics", "addr", ln.Addr().String())
	return srv, nil
}

// agentStatus is what /status serves and `kflcap status` prints.
type agentStatus struct {
	Version    string            `json:"version"`
	Node       config.Node       `json:"node"`
	Interfaces []ifaceStatus     `json:"interfaces"`
	Drops      map[string]uint64 `json:"userspace_drops"`
	Streams    uint64            `json:"active_streams"`
	Jobs       []jobStatus       `json:"jobs"`
	Triggers   []trigger.Status  `json:"triggered_captures"`
	Outbox     int               `json:"outbox_pending"`
	SpoolBytes int64             `json:"spool_bytes"`
	SpoolLimit int64             `json:"spool_limit_bytes"`
	Lookback   int               `json:"lookback_packets"`
}

type ifaceStatus struct {
	Name    string       `json:"name"`
	Index   int          `json:"ifindex"`
	Backend string       `json:"backend"`
	In      bpf.Counters `json:"ingress"`
	Out     bpf.Counters `json:"egress"`
}

type jobStatus struct {
	Index        int    `json:"kfl_index"`
	Query        string `json:"kfl_query"`
	OpenStreams  int    `json:"open_streams"`
	OpenBytes    int64  `json:"open_bytes"`
	Selected     uint64 `json:"streams_selected"`
	Sealed       uint64 `json:"repositories_sealed"`
	SealFailures uint64 `json:"seal_failures"`
}

func (a *agent) status(live *collector.Live, dis *dissect.Dissector) agentStatus {
	st := agentStatus{Version: version, Node: a.cfg.Node, Drops: map[string]uint64{}}
	counters, _ := live.Counters()
	for _, at := range live.Attachments() {
		st.Interfaces = append(st.Interfaces, ifaceStatus{
			Name: at.Iface.Name, Index: at.Iface.Index, Backend: string(at.Backend),
			In: counters[bpf.IfKey{Ifindex: at.Iface.Index, Direction: packet.Ingress}], Out: counters[bpf.IfKey{Ifindex: at.Iface.Index, Direction: packet.Egress}],
		})
	}
	st.Drops["malformed_record"] = live.Stages.Malformed.Load()
	st.Drops["spool_full"] = a.spool.Refused.Load()
	if dis != nil {
		ds := dis.Stats()
		st.Streams = ds.ActiveStreams
		st.Drops["stream_table_full"] = ds.StreamsEvicted
		st.Drops["retain_overflow"] = ds.RetainOverflow
	}
	for _, j := range a.jobs() {
		n, b := j.Open()
		st.Jobs = append(st.Jobs, jobStatus{Index: j.Index, Query: j.Query, OpenStreams: n, OpenBytes: b,
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
	return st
}
