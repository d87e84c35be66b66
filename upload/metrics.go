package upload

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts deliveries (they happen as events, so they are kept here)
// and reads the outbox's backlog when scraped.
type Metrics struct {
	pending func() int

	mu       sync.Mutex
	uploads  map[[2]string]float64 // sink, result → count
	failures map[[2]string]float64 // sink, reason → count
	latency  *prometheus.HistogramVec

	uploadsDesc, failuresDesc, pendingDesc *prometheus.Desc
}

// NewMetrics builds the delivery metrics; pending is the outbox's backlog
// (Outbox.Pending). Register it and call Observe for every delivery.
func NewMetrics(pending func() int) *Metrics {
	return &Metrics{
		pending:  pending,
		uploads:  map[[2]string]float64{},
		failures: map[[2]string]float64{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kflcap", Name: "upload_duration_seconds", Help: "Time to deliver one repository to a sink.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"sink"}),
		uploadsDesc:  prometheus.NewDesc("kflcap_uploads_total", "Repository deliveries, by sink and result.", []string{"sink", "result"}, nil),
		failuresDesc: prometheus.NewDesc("kflcap_upload_failures_total", "Failed deliveries, by sink and reason.", []string{"sink", "reason"}, nil),
		pendingDesc:  prometheus.NewDesc("kflcap_outbox_pending", "Sealed repositories waiting for a sink.", nil, nil),
	}
}

// Observe records one delivery attempt, with the reason of a failure (bad
// credentials, missing bucket, network, …).
func (m *Metrics) Observe(d Delivery) {
	reason := ""
	if d.Err != nil {
		reason = Reason(d.Err)
	}
	m.observe(d.Sink, d.Err == nil, reason, d.Latency)
}

func (m *Metrics) observe(sink string, ok bool, reason string, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !ok {
		m.failures[[2]string{sink, strings.ReplaceAll(reason, " ", "_")}]++
		m.uploads[[2]string{sink, "failure"}]++
		return
	}
	m.uploads[[2]string{sink, "success"}]++
	m.latency.WithLabelValues(sink).Observe(took.Seconds())
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.uploadsDesc
	ch <- m.failuresDesc
	ch <- m.pendingDesc
	m.latency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	for k, v := range m.uploads {
		ch <- prometheus.MustNewConstMetric(m.uploadsDesc, prometheus.CounterValue, v, k[0], k[1])
	}
	for k, v := range m.failures {
		ch <- prometheus.MustNewConstMetric(m.failuresDesc, prometheus.CounterValue, v, k[0], k[1])
	}
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.pendingDesc, prometheus.GaugeValue, float64(m.pending()))
	m.latency.Collect(ch)
}
