package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/pipeline"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/trigger"
	"github.com/kflcap/kflcap/upload"
)

// Run captures until ctx ends, then detaches, seals the open repositories
// and gives delivery Options.Grace; what is not delivered stays in the
// spool for the next start. A packet's path through it:
//
//	collector.Live (ring reader) → feed: dedup → lookback → pipeline
//	(dissect → KFL match → Job, a dissect.StreamSink) and the triggered
//	captures → repo.Writer → seal into the outbox → upload sinks.
func (a *Agent) Run(ctx context.Context) error {
	setMemoryLimit(a.log, "/sys/fs/cgroup", "/proc/self/cgroup")
	d, err := a.startDelivery()
	if err != nil {
		return err
	}
	defer d.stopSlack()
	if len(a.queries) == 0 && a.cfg.API.Listen == "" && len(a.cfg.Triggers) == 0 {
		a.log.Info("no active jobs (kflPcapS3.active is false) and no triggers: delivering what the spool holds, capturing nothing")
		<-ctx.Done()
		return a.shutdown(d)
	}
	if err := a.startCapture(); err != nil {
		return err
	}
	defer a.live.Close()
	stopWatch := a.followInterfaces()
	defer stopWatch()
	stopKube := a.startNames()
	defer stopKube()
	a.startJobs()
	a.startPipeline()
	stopServers, err := a.startServers()
	if err != nil {
		return err
	}
	defer stopServers()
	stopTick := a.startTicker()
	go func() {
		<-ctx.Done()
		a.log.Info("stopping: detaching, then sealing open repositories", "grace", a.opts.Grace)
		a.live.Stop()
	}()
	go a.reloadLoop(ctx)

	a.feed()
	readErr := a.live.Wait()
	close(a.readerDone)
	a.pipe.Close() // pending requests become entries; they may still select streams
	a.triggers.Close()
	stopTick()
	return errors.Join(readErr, a.shutdown(d))
}

// delivery is the outbox's goroutine and Slack's.
type delivery struct {
	stopOutbox context.CancelFunc
	outboxDone chan struct{}
	stopSlack  func() // after shutdown's last deliveries
}

// startDelivery removes what a crashed run left unsealed, opens the spool
// and the outbox, and starts delivering what the outbox holds.
func (a *Agent) startDelivery() (*delivery, error) {
	spoolDir := a.cfg.Spool.Dir
	outboxDir := filepath.Join(spoolDir, "outbox")
	if removed, err := repo.RecoverSpool(spoolDir, outboxDir); err != nil {
		return nil, err
	} else if len(removed) > 0 {
		a.log.Warn("removed unsealed repositories left by a previous run", "spool", spoolDir, "removed", removed)
	}
	a.spool = &repo.Spool{Dir: spoolDir, MaxBytes: int64(a.cfg.Spool.MaxBytes)}
	a.spool.Rescan()
	var err error
	if a.outbox, err = upload.NewOutbox(outboxDir, a.sinks, a.log); err != nil {
		return nil, err
	}
	go a.checkSinks()
	slackCtx, stopSlack := context.WithCancel(context.Background())
	go a.slack.Run(slackCtx)
	if err := a.names.LoadHosts("/etc/hosts", time.Now()); err != nil {
		a.log.Debug("no /etc/hosts names", "err", err)
	}
	outboxCtx, stopOutbox := context.WithCancel(context.Background())
	d := &delivery{stopOutbox: stopOutbox, outboxDone: make(chan struct{}),
		stopSlack: func() { stopSlack(); a.slack.Wait() }}
	go func() { a.outbox.Run(outboxCtx); close(d.outboxDone) }()
	return d, nil
}

// checkSinks asks each sink whether it can take archives, for /readyz and
// the log. Advice only: archives wait in the outbox either way.
func (a *Agent) checkSinks() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range a.sinks {
		err := upload.Check(ctx, []upload.Sink{s})
		a.sinkErrs.set(s.Name(), err)
		if err != nil {
			a.log.Error("upload: the store cannot take archives yet; they wait in the outbox", "sink", s.Name(), "err", err)
		}
	}
}

// startCapture loads and attaches the capture programs, with the kernel
// prefilter of the jobs' queries.
func (a *Agent) startCapture() error {
	cfg := a.cfg
	a.triggersOn = cfg.API.Listen != "" || len(cfg.Triggers) > 0
	prefilter := pipeline.KernelPrefilter(a.triggersOn, a.queries...)
	live, err := collector.StartLive(collector.LiveOptions{
		Ifaces: a.ifaces, Backend: bpf.Backend(cfg.Capture.Backend), Snaplen: uint32(cfg.Capture.Snaplen),
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
	a.live = live
	a.readerDone = make(chan struct{})
	// A packet crossing two captured interfaces (a veth pair's ends, a
	// pod's veth and the uplink) is recognised within 50 ms.
	a.dedup = collector.NewDedup(int64(50*time.Millisecond), 16)
	var attached []string
	for _, at := range live.Attachments() {
		attached = append(attached, at.Iface.Name+"/"+string(at.Backend))
	}
	a.log.Info("capturing", "interfaces", strings.Join(attached, ","), "jobs", len(a.queries), "prefilter", !prefilter.Empty(),
		"lookback_bytes", int64(cfg.Capture.LookbackBytes), "spool", cfg.Spool.Dir, "local", cfg.Local.Dir)
	return nil
}

// followInterfaces attaches to interfaces that come (pods' veths) and
// releases those that go, when the selection is "any" or a pattern.
func (a *Agent) followInterfaces() (stop func()) {
	sel, _ := collector.NewSelector(a.cfg.Capture.Interfaces)
	if !sel.Dynamic() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := collector.WatchLinks(ctx, "", sel, a.attach, a.release,
		func(err error) { a.log.Warn("interface watch", "err", err) })
	if err != nil {
		a.log.Warn("not following new interfaces", "err", err)
	}
	return cancel
}

func (a *Agent) attach(ifc bpf.Interface) {
	start := time.Now()
	added, err := a.live.Add(ifc)
	if err != nil {
		a.log.Warn("attach new interface", "interface", ifc.Name, "err", err)
		return
	}
	if added { // else a later event of a link already attached
		a.log.Info("attached new interface", "interface", ifc.Name, "ifindex", ifc.Index, "took", time.Since(start))
	}
}

func (a *Agent) release(index int) {
	ifc, _ := a.live.Iface(index)
	removed, err := a.live.Remove(index)
	if err != nil {
		a.log.Debug("detach removed interface", "interface", ifc.Name, "err", err)
	}
	if removed {
		a.log.Info("released removed interface", "interface", ifc.Name, "ifindex", index)
	}
}

// startServers serves the capture API (api.listen) and the metrics,
// health and status endpoints (metrics.listen).
func (a *Agent) startServers() (stop func(), err error) {
	cfg := a.cfg
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	if cfg.API.Listen != "" {
		srv, err := trigger.NewServer(a.triggers, trigger.Config{
			Listen: cfg.API.Listen, Token: string(cfg.API.Token), TLSCert: cfg.API.TLSCert, TLSKey: cfg.API.TLSKey,
			Rules: a.rules, Logger: a.log, Resolver: a.resolve.pods,
		})
		if err != nil {
			return stop, configErrorf("api: %v", err)
		}
		ln, err := net.Listen("tcp", cfg.API.Listen)
		if err != nil {
			return stop, configErrorf("api.listen: %v", err)
		}
		a.api.Store(srv)
		ctx, cancel := context.WithCancel(context.Background())
		stops = append(stops, cancel)
		go func() {
			if err := srv.Serve(ctx, ln); err != nil {
				a.log.Error("capture API", "err", err)
			}
		}()
		a.log.Info("serving the capture API", "addr", ln.Addr().String(), "token", cfg.API.Token != "", "rules", len(a.rules))
	}
	reg := a.newMetrics()
	if cfg.Metrics.Listen != "" {
		srv, err := a.serveHTTP(cfg.Metrics.Listen, reg)
		if err != nil {
			stop()
			return func() {}, configErrorf("metrics.listen: %v", err)
		}
		stops = append(stops, func() { srv.Close() })
	}
	return stop, nil
}

// startTicker seals repositories on time, follows the spool's size and
// the node's addresses.
func (a *Agent) startTicker() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				for _, j := range a.jobs() {
					j.Tick(now)
				}
				if n%4 == 0 {
					a.spool.Rescan()
				}
				if n%10 == 0 {
					a.local.Refresh()
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// shutdown seals open repositories and gives the outbox the grace period
// to deliver; what is not delivered stays in the spool for the next start.
func (a *Agent) shutdown(d *delivery) error {
	for _, j := range a.jobs() {
		j.Flush()
	}
	d.stopOutbox()
	<-d.outboxDone
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.Grace)
	defer cancel()
	if !a.outbox.Drain(ctx) {
		a.log.Warn("grace period over: undelivered repositories stay in the spool for the next start", "pending", a.outbox.Pending())
	}
	if a.live == nil {
		return nil
	}
	var seen, captured, dropped uint64
	if c, err := a.live.Counters(); err == nil {
		t := bpf.Total(c)
		seen, captured, dropped = t.Seen-t.Filtered, t.Delivered, t.Dropped()
	}
	s := a.pipe.Stats()
	a.log.Info("stopped", "packets_seen", seen, "packets_captured", captured, "dropped_kernel", dropped,
		"dropped_userspace", a.live.Stages.Malformed.Load(), "streams", s.Streams, "entries", s.Entries,
		"spool_refused_streams", a.spool.Refused.Load())
	return nil
}
