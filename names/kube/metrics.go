package kube

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exposes a Resolver's Stats to Prometheus, read at scrape time as
// const metrics (node_exporter style; no global state). Register it next
// to the agent's other collectors: reg.MustRegister(kube.NewMetrics(r)).
type Metrics struct {
	r *Resolver

	synced, objects, addresses, events, watchErrors, requestErrors *prometheus.Desc
}

// NewMetrics builds the collector for r.
func NewMetrics(r *Resolver) *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("kflcap", "kube", name), help, labels, nil)
	}
	return &Metrics{
		r:             r,
		synced:        d("synced", "1 when every Kubernetes informer has completed its first list."),
		objects:       d("objects", "Kubernetes objects known, by resource (pods: this node's).", "resource"),
		addresses:     d("addresses", "Addresses that resolve to a name, by key (ip, ip_port).", "key"),
		events:        d("events_total", "Kubernetes informer events applied."),
		watchErrors:   d("watch_errors_total", "Failed Kubernetes lists and watches (names stale or unknown meanwhile)."),
		requestErrors: d("request_errors_total", "Kubernetes API requests without an answer or with a 5xx."),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.synced, m.objects, m.addresses, m.events, m.watchErrors, m.requestErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.r.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	synced := 0.0
	if s.Synced {
		synced = 1
	}
	gauge(m.synced, synced)
	gauge(m.objects, float64(s.Pods), "pods")
	gauge(m.objects, float64(s.Services), "services")
	gauge(m.objects, float64(s.EndpointSlices), "endpointslices")
	gauge(m.addresses, float64(s.Addresses), "ip")
	gauge(m.addresses, float64(s.AddrPorts), "ip_port")
	counter(m.events, s.Events)
	counter(m.watchErrors, s.WatchErrors)
	counter(m.requestErrors, s.RequestErrors)
}
