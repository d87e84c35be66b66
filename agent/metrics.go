package agent

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/trigger"
	"github.com/prometheus/client_golang/prometheus"
)

// MetricsSources are what the metrics read at scrape time. Nil fields are
// skipped.
type MetricsSources struct {
	Kernel   func() (map[bpf.IfKey]bpf.Counters, error)
	IfName   func(ifindex int) string
	Stages   *collector.Stages
	Dissect  func() dissect.Stats
	Jobs     func() []*Job
	Spool    *repo.Spool
	Triggers *Triggers
	Pending  func() int // archives waiting in the outbox
	Attached func() int // interfaces the programs are attached to
	Dedup    *collector.Dedup
	Alerts   func() trigger.Counters // the alert intake's counts; nil without the API
	Lookback *Lookback
}

// Metrics exposes kflcap's counters to Prometheus, node_exporter style:
// kernel and pipeline counters are read when scraped and emitted as const
// metrics; only upload results, which happen as events, are kept here.
// Build it with NewMetrics and register it; no global state.
type Metrics struct {
	src MetricsSources

	mu       sync.Mutex
	uploads  map[[2]string]float64 // sink, result → count
	failures map[[2]string]float64 // sink, reason → count
	latency  *prometheus.HistogramVec

	seen, prefiltered, captured, ringDrops, copyErrors, bytesSeen  *prometheus.Desc
	userDrops, activeStreams, streams, entries, malformed          *prometheus.Desc
	jobStreams, sealed, sealFailed, uploadsDesc, spoolBytes        *prometheus.Desc
	spoolLimit, pending, triggered, triggerRejected, triggerActive *prometheus.Desc
	lookbackPackets, lookbackBytes, lookbackEvicted                *prometheus.Desc
	attached, duplicates, alerts, apiAuthFailures, uploadFailures  *prometheus.Desc
}

const ns = "kflcap"

// NewMetrics builds the metrics over src.
func NewMetrics(src MetricsSources) *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
	}
	ifl := []string{"interface", "direction"}
	return &Metrics{
		src:      src,
		uploads:  map[[2]string]float64{},
		failures: map[[2]string]float64{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "upload_duration_seconds", Help: "Time to deliver one repository to a sink.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"sink"}),
		seen:            d("packets_seen_total", "Packets that reached the capture programs.", ifl...),
		prefiltered:     d("packets_prefiltered_total", "Packets the kernel prefilter did not copy (no query wants them).", ifl...),
		captured:        d("packets_captured_total", "Packets copied to the ring buffer.", ifl...),
		ringDrops:       d("ringbuf_drops_total", "Packets lost because the ring buffer was full.", ifl...),
		copyErrors:      d("copy_errors_total", "Packets lost because they could not be copied.", ifl...),
		bytesSeen:       d("bytes_seen_total", "Wire bytes of the packets seen.", ifl...),
		userDrops:       d("userspace_drops_total", "Packets or streams lost in user space, by stage.", "stage"),
		activeStreams:   d("active_streams", "L4 streams in the stream table."),
		streams:         d("streams_total", "L4 streams created."),
		entries:         d("entries_total", "Entries dissected, by protocol.", "protocol"),
		malformed:       d("malformed_packets_total", "Packets the dissector could not decode."),
		jobStreams:      d("kfl_matches_total", "Streams a job's KFL query selected.", "job", "query"),
		sealed:          d("repositories_sealed_total", "Repositories sealed into the outbox.", "kind"),
		sealFailed:      d("repository_seal_failures_total", "Repositories that failed to seal.", "kind"),
		uploadsDesc:     d("uploads_total", "Repository deliveries, by sink and result.", "sink", "result"),
		uploadFailures:  d("upload_failures_total", "Failed deliveries, by sink and reason.", "sink", "reason"),
		spoolBytes:      d("spool_bytes", "Bytes in the spool (open repositories and the outbox)."),
		spoolLimit:      d("spool_limit_bytes", "The spool's size limit."),
		pending:         d("outbox_pending", "Sealed repositories waiting for a sink."),
		triggered:       d("triggered_captures_total", "Triggered captures started."),
		triggerRejected: d("triggered_captures_rejected_total", "Triggered captures refused (bad query, caps)."),
		triggerActive:   d("triggered_captures_running", "Triggered captures running now."),
		lookbackPackets: d("lookback_packets", "Packets held in the lookback ring."),
		lookbackBytes:   d("lookback_capacity_bytes", "Size of the lookback ring."),
		lookbackEvicted: d("lookback_evicted_total", "Packets pushed out of the lookback ring by newer ones."),
		attached:        d("attached_interfaces", "Interfaces the capture programs are attached to."),
		duplicates:      d("duplicate_packets_total", "Packets seen again on another captured interface, kept once."),
		alerts:          d("alerts_total", "Security alerts received by the intake, by outcome.", "result"),
		apiAuthFailures: d("api_auth_failures_total", "API requests refused for a missing or wrong token."),
	}
}

// ObserveUpload records one delivery attempt; reason says why it failed
// ("" on success): bad credentials, missing bucket, network, …
func (m *Metrics) ObserveUpload(sink string, ok bool, reason string, took time.Duration) {
	result := "success"
	if !ok {
		result = "failure"
		m.mu.Lock()
		m.failures[[2]string{sink, strings.ReplaceAll(reason, " ", "_")}]++
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.uploads[[2]string{sink, result}]++
	m.mu.Unlock()
	if ok {
		m.latency.WithLabelValues(sink).Observe(took.Seconds())
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.seen, m.prefiltered, m.captured, m.ringDrops, m.copyErrors, m.bytesSeen,
		m.userDrops, m.activeStreams, m.streams, m.entries, m.malformed, m.jobStreams, m.sealed, m.sealFailed,
		m.uploadsDesc, m.spoolBytes, m.spoolLimit, m.pending, m.triggered, m.triggerRejected, m.triggerActive,
		m.lookbackPackets, m.lookbackBytes, m.lookbackEvicted, m.attached, m.duplicates, m.alerts, m.apiAuthFailures, m.uploadFailures} {
		ch <- d
	}
	m.latency.Describe(ch)
}

// Collect implements prometheus.Collector: it reads the counters now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	s := m.src
	if s.Kernel != nil {
		if counters, err := s.Kernel(); err == nil {
			for k, v := range counters {
				name := "other" // interfaces the programs saw before they had a key
				if k.Ifindex != 0 {
					name = strconv.Itoa(k.Ifindex)
					if s.IfName != nil {
						if n := s.IfName(k.Ifindex); n != "" {
							name = n
						}
					}
				}
				dir := k.Direction.String()
				c(m.seen, float64(v.Seen), name, dir)
				c(m.prefiltered, float64(v.Filtered), name, dir)
				c(m.captured, float64(v.Delivered), name, dir)
				c(m.ringDrops, float64(v.RingDrops), name, dir)
				c(m.copyErrors, float64(v.CopyErrors), name, dir)
				c(m.bytesSeen, float64(v.Bytes), name, dir)
			}
		}
	}
	if s.Stages != nil {
		c(m.userDrops, float64(s.Stages.Malformed.Load()), "malformed_record")
	}
	if s.Spool != nil {
		c(m.userDrops, float64(s.Spool.Refused.Load()), "spool_full")
		g(m.spoolBytes, float64(s.Spool.Used()))
		g(m.spoolLimit, float64(s.Spool.MaxBytes))
	}
	if s.Dissect != nil {
		st := s.Dissect()
		g(m.activeStreams, float64(st.ActiveStreams))
		c(m.streams, float64(st.Streams))
		c(m.malformed, float64(st.Malformed))
		c(m.userDrops, float64(st.StreamsEvicted), "stream_table_full")
		c(m.userDrops, float64(st.RetainOverflow), "retain_overflow")
		for proto, n := range map[string]uint64{
			"http": st.EntriesHTTP, "http2": st.EntriesHTTP2, "grpc": st.EntriesGRPC, "dns": st.EntriesDNS,
			"tls": st.EntriesTLS, "redis": st.EntriesRedis, "postgres": st.EntriesPostgres, "kafka": st.EntriesKafka,
			"amqp": st.EntriesAMQP, "l4": st.EntriesL4,
		} {
			c(m.entries, float64(n), proto)
		}
	}
	sealed := map[string]float64{"kfl": 0, "trigger": 0}
	failed := map[string]float64{"kfl": 0, "trigger": 0}
	if s.Jobs != nil {
		for _, j := range s.Jobs() {
			c(m.jobStreams, float64(j.Selected.Load()), strconv.Itoa(j.Index), j.Query)
			sealed["kfl"] += float64(j.Sealed.Load())
			failed["kfl"] += float64(j.SealFailures.Load())
		}
	}
	if s.Triggers != nil {
		c(m.triggered, float64(s.Triggers.Started.Load()))
		c(m.triggerRejected, float64(s.Triggers.Rejected.Load()))
		g(m.triggerActive, float64(s.Triggers.running.Load()))
		sealed["trigger"] += float64(s.Triggers.Sealed.Load())
		failed["trigger"] += float64(s.Triggers.SealFailures.Load())
	}
	for kind, v := range sealed {
		c(m.sealed, v, kind)
		c(m.sealFailed, failed[kind], kind)
	}
	if s.Pending != nil {
		g(m.pending, float64(s.Pending()))
	}
	if s.Attached != nil {
		g(m.attached, float64(s.Attached()))
	}
	if s.Dedup != nil {
		c(m.duplicates, float64(s.Dedup.Duplicates.Load()))
	}
	if s.Alerts != nil {
		a := s.Alerts()
		for result, v := range map[string]uint64{
			"invalid": a.AlertsInvalid, "matched": a.AlertsMatched, "unmatched": a.AlertsUnmatched,
			"deduplicated": a.AlertsDeduplicated, "failed": a.AlertsFailed, "rejected": a.AlertsRejected, "busy": a.AlertsBusy,
		} {
			c(m.alerts, float64(v), result)
		}
		c(m.apiAuthFailures, float64(a.AuthFailures))
	}
	if s.Lookback != nil {
		s.Lookback.mu.Lock()
		n, evicted := s.Lookback.n, s.Lookback.Evicted
		s.Lookback.mu.Unlock()
		g(m.lookbackPackets, float64(n))
		g(m.lookbackBytes, float64(s.Lookback.Cap()))
		c(m.lookbackEvicted, float64(evicted))
	}
	m.mu.Lock()
	for k, v := range m.uploads {
		c(m.uploadsDesc, v, k[0], k[1])
	}
	for k, v := range m.failures {
		c(m.uploadFailures, v, k[0], k[1])
	}
	m.mu.Unlock()
	m.latency.Collect(ch)
}
