package repo

import "github.com/prometheus/client_golang/prometheus"

// SpoolMetrics exposes a spool's size and limit to Prometheus, read when
// scraped. The streams a full spool refused are counted by the agent as a
// user-space drop stage.
type SpoolMetrics struct {
	spool        *Spool
	bytes, limit *prometheus.Desc
}

// NewSpoolMetrics builds the metrics of s; register it.
func NewSpoolMetrics(s *Spool) *SpoolMetrics {
	return &SpoolMetrics{
		spool: s,
		bytes: prometheus.NewDesc("kflcap_spool_bytes", "Bytes in the spool (open repositories and the outbox).", nil, nil),
		limit: prometheus.NewDesc("kflcap_spool_limit_bytes", "The spool's size limit.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *SpoolMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.bytes; ch <- m.limit }

// Collect implements prometheus.Collector.
func (m *SpoolMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.GaugeValue, float64(m.spool.Used()))
	ch <- prometheus.MustNewConstMetric(m.limit, prometheus.GaugeValue, float64(m.spool.MaxBytes))
}
