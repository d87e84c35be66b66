package trigger

import "github.com/prometheus/client_golang/prometheus"

// Metrics exposes the alert intake's Counters to Prometheus, read when
// scraped.
type Metrics struct {
	counters     func() Counters
	alerts, auth *prometheus.Desc
}

// NewMetrics builds the metrics of the intake whose Counters counters
// returns (zero Counters without the API); register it.
func NewMetrics(counters func() Counters) *Metrics {
	return &Metrics{
		counters: counters,
		alerts:   prometheus.NewDesc("kflcap_alerts_total", "Security alerts received by the intake, by outcome.", []string{"result"}, nil),
		auth:     prometheus.NewDesc("kflcap_api_auth_failures_total", "API requests refused for a missing or wrong token.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.alerts; ch <- m.auth }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	a := m.counters()
	for result, v := range map[string]uint64{
		"invalid": a.AlertsInvalid, "matched": a.AlertsMatched, "unmatched": a.AlertsUnmatched,
		"deduplicated": a.AlertsDeduplicated, "failed": a.AlertsFailed, "rejected": a.AlertsRejected, "busy": a.AlertsBusy,
	} {
		ch <- prometheus.MustNewConstMetric(m.alerts, prometheus.CounterValue, float64(v), result)
	}
	ch <- prometheus.MustNewConstMetric(m.auth, prometheus.CounterValue, float64(a.AuthFailures))
}
