package dissect

import "github.com/prometheus/client_golang/prometheus"

// Metrics exposes a dissector's Stats to Prometheus, read when scraped
// (const metrics, no global state).
type Metrics struct {
	stats                                    func() Stats
	activeStreams, streams, entries, malform *prometheus.Desc
}

// NewMetrics builds the metrics of the dissector whose Stats stats returns
// (a zero Stats while there is none yet); register it.
func NewMetrics(stats func() Stats) *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("kflcap", "", name), help, labels, nil)
	}
	return &Metrics{
		stats:         stats,
		activeStreams: d("active_streams", "L4 streams in the stream table."),
		streams:       d("streams_total", "L4 streams created."),
		entries:       d("entries_total", "Entries dissected, by protocol.", "protocol"),
		malform:       d("malformed_packets_total", "Packets the dissector could not decode."),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.activeStreams
	ch <- m.streams
	ch <- m.entries
	ch <- m.malform
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	st := m.stats()
	c := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(m.activeStreams, prometheus.GaugeValue, float64(st.ActiveStreams))
	c(m.streams, st.Streams)
	c(m.malform, st.Malformed)
	for proto, n := range map[string]uint64{
		"http": st.EntriesHTTP, "http2": st.EntriesHTTP2, "grpc": st.EntriesGRPC, "dns": st.EntriesDNS,
		"tls": st.EntriesTLS, "redis": st.EntriesRedis, "postgres": st.EntriesPostgres, "kafka": st.EntriesKafka,
		"amqp": st.EntriesAMQP, "l4": st.EntriesL4,
	} {
		c(m.entries, n, proto)
	}
}
