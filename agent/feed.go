package agent

import (
	"context"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/names"
	"github.com/kflcap/kflcap/names/kube"
	"github.com/kflcap/kflcap/pipeline"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/trigger"
	"github.com/prometheus/client_golang/prometheus"
)

// resolvers name endpoints: Kubernetes pods and services when the API
// server answers, then names learnt from DNS answers and /etc/hosts.
type resolvers struct {
	entries  dissect.Resolver
	pods     trigger.PodResolver // nil without Kubernetes
	localPod func(netip.Addr) bool
	metrics  []prometheus.Collector
}

// startNames starts the Kubernetes resolver when in a cluster or given a
// kubeconfig. Failures leave names unknown; they never stop capture.
func (a *Agent) startNames() (stop func()) {
	a.resolve = resolvers{entries: a.names, localPod: func(netip.Addr) bool { return false }}
	if err := a.local.Refresh(); err != nil {
		a.log.Warn("cannot list this node's addresses: entries from it are not marked outgoing", "err", err)
	}
	ko, ok := kube.FromConfig(a.cfg.Kubernetes, a.cfg.Node.Name)
	if !ok {
		return func() {}
	}
	ko.Names, ko.Logger = a.names, a.log
	ctx, cancel := context.WithCancel(context.Background())
	r, err := kube.Start(ctx, ko)
	if err != nil {
		a.log.Warn("Kubernetes names unavailable: entries and repositories carry IPs only", "err", err)
		return cancel
	}
	a.resolve = resolvers{entries: dissect.Resolvers{r, a.names}, pods: r, localPod: r.Local,
		metrics: []prometheus.Collector{kube.NewMetrics(r)}}
	a.log.Info("resolving names from the Kubernetes API", "node", a.cfg.Node.Name, "kubeconfig", ko.Kubeconfig != "")
	return func() { r.Close(); cancel() }
}

// startJobs makes a Job per query, the lookback ring and the triggered
// captures' engine.
func (a *Agent) startJobs() {
	first := &jobSet{queries: a.queries, pf: kfl.Pushdown(a.queries...)}
	for i := range a.queries {
		first.jobs = append(first.jobs, a.newJob(i, a.cfg.KflPcapS3.KflArr[i]))
	}
	a.set.Store(first)
	if n := a.cfg.Capture.LookbackBytes; n > 0 {
		a.lookback = NewLookback(int(n))
	}
	a.triggers = &Triggers{
		Lookback: a.lookback,
		Log:      a.log,
		Template: JobTemplate{
			Outbox: a.outboxDir(), Spool: a.spool, Snaplen: uint32(a.cfg.Capture.Snaplen), Names: a.names,
			Content: a.content, Stats: a.captureStats, Verbose: a.cfg.KflPcapS3.Verbose,
			OnSealed: func(s Sealed) {
				a.log.Info("triggered repository sealed", "archive", filepath.Base(s.Path), "streams", s.Streams, "bytes", s.Bytes)
				a.outbox.Notify()
			},
		},
	}
}

func (a *Agent) outboxDir() string { return filepath.Join(a.cfg.Spool.Dir, "outbox") }

// newJob makes the job for kflPcapS3.kflArr[i].
func (a *Agent) newJob(i int, query string) *Job {
	k := a.cfg.KflPcapS3
	return &Job{
		Index: i, Query: query, Prefix: k.Prefix,
		Limits: JobLimits{Lifetime: k.RepositoryLifetime(), MaxStreams: k.MaxL4Streams, MaxBytes: int64(k.MaxBytes)},
		Outbox: a.outboxDir(), Spool: a.spool, Snaplen: uint32(a.cfg.Capture.Snaplen),
		Content: a.content, Stats: a.captureStats, Names: a.names,
		OnSealed: func(s Sealed) {
			a.log.Info("repository sealed", "archive", filepath.Base(s.Path), "kfl_index", s.KFLIndex, "streams", s.Streams, "bytes", s.Bytes)
			a.outbox.Notify()
		},
		Verbose: k.Verbose, Log: a.log,
	}
}

// content is what every content.json carries besides the wrapper's fields.
func (a *Agent) content() repo.Content {
	return repo.Content{
		Node:          &repo.Node{Name: a.cfg.Node.Name, IP: a.cfg.Node.IP, Cluster: a.cfg.Node.Cluster},
		KflcapVersion: a.opts.Version,
	}
}

// captureStats are the node's counters; a repository's content.json
// carries their change over its time span.
func (a *Agent) captureStats() map[string]uint64 {
	m := map[string]uint64{}
	if c, err := a.live.Counters(); err == nil {
		t := bpf.Total(c)
		m["packets_seen"] = t.Seen - t.Filtered
		m["packets_prefiltered"] = t.Filtered
		m["packets_captured"] = t.Delivered
		m["packets_dropped_kernel"] = t.Dropped()
	}
	m["packets_dropped_userspace"] = a.live.Stages.Malformed.Load()
	s := a.pipe.Stats()
	m["dissect_malformed"] = s.Malformed
	m["streams_evicted"] = s.StreamsEvicted
	m["retain_overflow"] = s.RetainOverflow
	m["spool_refused_streams"] = a.spool.Refused.Load()
	return m
}

// startPipeline starts the dissector with the jobs' selections.
func (a *Agent) startPipeline() {
	a.pipe = pipeline.New(pipeline.Config{
		Selections: a.set.Load().selections(),
		OnEntry:    a.learnNames,
		Dissect: dissect.Config{
			Resolver: a.resolve.entries,
			// With triggers on the kernel copies everything; streams no job
			// can select are counted, but not kept for a selection that
			// cannot come, nor dissected. DNS is always dissected: its
			// answers name the addresses of every entry.
			Selectable: func(proto uint8, src, dst netip.AddrPort) bool {
				return src.Port() == 53 || dst.Port() == 53 || a.set.Load().selectable(proto, src, dst)
			},
			// An entry is outgoing when its client is this node: one of its
			// addresses (read again every 5 s) or one of its pods.
			Local:             func(ip netip.Addr) bool { return a.local.Contains(ip) || a.resolve.localPod(ip) },
			Workers:           runtime.NumCPU(),
			StreamRetainBytes: 1 << 20,
			// Packets kept per stream for a later selection: enough for the
			// start of a connection, and bounded in total so that a node
			// with 100k streams stays within a few hundred MiB.
			TotalRetainBytes: 64 << 20,
			// Keep retaining after a selection only when another job may
			// still select the stream (a job added by a reload gets its
			// streams' packets from the moment it starts).
			RetainSelected: len(a.queries) > 1,
			Node:           dissect.Node{Name: a.cfg.Node.Name, IP: a.cfg.Node.IP},
			Logger:         a.log,
		},
	})
}

// learnNames names the addresses in DNS answers.
func (a *Agent) learnNames(e *dissect.Entry) {
	if e.DNS == nil || !e.DNS.HasResponse {
		return
	}
	at := time.UnixMilli(e.Timestamp)
	for _, r := range e.DNS.Response.Answers {
		if r.IP != "" {
			a.names.Add(at, r.IP, names.Record{FullAddress: strings.TrimSuffix(r.Name, "."), Source: names.SourceDNS})
		}
	}
}

// feed is the packet loop: every batch the ring reader hands over goes
// through dedup, into the lookback, the pipeline and the triggered
// captures. Tick after every batch hands the workers what Feed has
// buffered (so entries, and selections, follow the traffic closely) and,
// when the link is idle, still expires streams. It returns when the
// reader has drained the ring after Stop.
func (a *Agent) feed() {
	idle := time.NewTicker(250 * time.Millisecond)
	defer idle.Stop()
	for {
		select {
		case b, ok := <-a.live.Batches():
			if !ok {
				return
			}
			for i := range b.Packets {
				p := &b.Packets[i]
				// A packet crossing two captured interfaces (a veth pair's
				// ends, a pod's veth and the uplink) enters the streams once.
				if a.dedup.Seen(p) {
					continue
				}
				if a.lookback != nil {
					a.lookback.Add(p)
				}
				a.pipe.Feed(p)
				a.triggers.Feed(p)
			}
			b.Release()
			now := time.Now()
			a.pipe.Tick(now)
			a.triggers.Tick(now)
		case now := <-idle.C:
			a.pipe.Tick(now)
			a.triggers.Tick(now)
		}
	}
}
