package agent

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exposes what the agent itself owns, read when scraped: jobs'
// selections and seals, triggered captures, the lookback ring, and
// user-space drops by stage (gathered from each stage's counters, so that
// one metric accounts for every packet or stream lost after the kernel).
// Each stage's own metrics live in its package (collector, dissect, repo,
// upload, trigger, names/kube); the agent registers them all.
type Metrics struct {
	src MetricsSources

	userDrops, jobStreams, sealed, sealFailed       *prometheus.Desc
	triggered, triggerRejected, triggerActive       *prometheus.Desc
	lookbackPackets, lookbackBytes, lookbackEvicted *prometheus.Desc
	reloads                                         *prometheus.Desc
}

// MetricsSources are what Metrics reads at scrape time. Nil fields are
// skipped.
type MetricsSources struct {
	// UserDrops are the packets and streams lost in user space, by stage.
	UserDrops func() map[string]uint64
	Jobs      func() []*Job
	Triggers  *Triggers
	Lookback  *Lookback
	// Reloads are the configuration reloads applied and rejected.
	Reloads func() (ok, failed uint64)
}

// NewMetrics builds the agent's metrics over src; register it.
func NewMetrics(src MetricsSources) *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("kflcap", "", name), help, labels, nil)
	}
	return &Metrics{
		src:             src,
		userDrops:       d("userspace_drops_total", "Packets or streams lost in user space, by stage.", "stage"),
		jobStreams:      d("kfl_matches_total", "Streams a job's KFL query selected.", "job", "query"),
		sealed:          d("repositories_sealed_total", "Repositories sealed into the outbox.", "kind"),
		sealFailed:      d("repository_seal_failures_total", "Repositories that failed to seal.", "kind"),
		triggered:       d("triggered_captures_total", "Triggered captures started."),
		triggerRejected: d("triggered_captures_rejected_total", "Triggered captures refused (bad query, caps)."),
		triggerActive:   d("triggered_captures_running", "Triggered captures running now."),
		lookbackPackets: d("lookback_packets", "Packets held in the lookback ring."),
		lookbackBytes:   d("lookback_capacity_bytes", "Size of the lookback ring."),
		lookbackEvicted: d("lookback_evicted_total", "Packets pushed out of the lookback ring by newer ones."),
		reloads:         d("config_reloads_total", "Configuration reloads (SIGHUP or a changed file), by result.", "result"),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.userDrops, m.jobStreams, m.sealed, m.sealFailed, m.triggered,
		m.triggerRejected, m.triggerActive, m.lookbackPackets, m.lookbackBytes, m.lookbackEvicted, m.reloads} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the counters now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	g := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	s := m.src
	if s.UserDrops != nil {
		for stage, n := range s.UserDrops() {
			c(m.userDrops, n, stage)
		}
	}
	sealed := map[string]uint64{"kfl": 0, "trigger": 0}
	failed := map[string]uint64{"kfl": 0, "trigger": 0}
	if s.Jobs != nil {
		for _, j := range s.Jobs() {
			c(m.jobStreams, j.Selected.Load(), strconv.Itoa(j.Index), j.Query)
			sealed["kfl"] += j.Sealed.Load()
			failed["kfl"] += j.SealFailures.Load()
		}
	}
	if t := s.Triggers; t != nil {
		c(m.triggered, t.Started.Load())
		c(m.triggerRejected, t.Rejected.Load())
		g(m.triggerActive, float64(t.running.Load()))
		sealed["trigger"] += t.Sealed.Load()
		failed["trigger"] += t.SealFailures.Load()
	}
	for kind, v := range sealed {
		c(m.sealed, v, kind)
		c(m.sealFailed, failed[kind], kind)
	}
	if s.Reloads != nil {
		ok, failed := s.Reloads()
		c(m.reloads, ok, "ok")
		c(m.reloads, failed, "failed")
	}
	if l := s.Lookback; l != nil {
		l.mu.Lock()
		n, evicted := l.n, l.Evicted
		l.mu.Unlock()
		g(m.lookbackPackets, float64(n))
		g(m.lookbackBytes, float64(l.Cap()))
		c(m.lookbackEvicted, evicted)
	}
}
