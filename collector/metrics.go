package collector

import (
	"strconv"

	"github.com/kflcap/kflcap/bpf"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exposes a live capture's counters to Prometheus, read from the
// kernel when scraped (node_exporter style: const metrics, no global
// state): packets per interface and direction, what the kernel lost,
// attached interfaces, and the duplicates dedup recognised.
type Metrics struct {
	live  Capture
	dedup *Dedup // nil: no dedup

	seen, prefiltered, captured, ringDrops, copyErrors, bytesSeen *prometheus.Desc
	attached, duplicates                                          *prometheus.Desc
}

// Capture is what Metrics reads; a *Live is one.
type Capture interface {
	Counters() (map[bpf.IfKey]bpf.Counters, error)
	Iface(index int) (bpf.Interface, bool)
	Attachments() []*bpf.Attachment
}

// NewMetrics builds the metrics of live and dedup (nil: none); register it.
func NewMetrics(live Capture, dedup *Dedup) *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("kflcap", "", name), help, labels, nil)
	}
	ifl := []string{"interface", "direction"}
	return &Metrics{
		live: live, dedup: dedup,
		seen:        d("packets_seen_total", "Packets that reached the capture programs.", ifl...),
		prefiltered: d("packets_prefiltered_total", "Packets the kernel prefilter did not copy (no query wants them).", ifl...),
		captured:    d("packets_captured_total", "Packets copied to the ring buffer.", ifl...),
		ringDrops:   d("ringbuf_drops_total", "Packets lost because the ring buffer was full.", ifl...),
		copyErrors:  d("copy_errors_total", "Packets lost because they could not be copied.", ifl...),
		bytesSeen:   d("bytes_seen_total", "Wire bytes of the packets seen.", ifl...),
		attached:    d("attached_interfaces", "Interfaces the capture programs are attached to."),
		duplicates:  d("duplicate_packets_total", "Packets seen again on another captured interface, kept once."),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.seen, m.prefiltered, m.captured, m.ringDrops, m.copyErrors, m.bytesSeen, m.attached, m.duplicates} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the kernel counters now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if counters, err := m.live.Counters(); err == nil {
		for k, v := range counters {
			name := "other" // interfaces the programs saw before they had a key
			if k.Ifindex != 0 {
				name = strconv.Itoa(k.Ifindex)
				if ifc, ok := m.live.Iface(k.Ifindex); ok && ifc.Name != "" {
					name = ifc.Name
				}
			}
			dir := k.Direction.String()
			c(m.seen, v.Seen, name, dir)
			c(m.prefiltered, v.Filtered, name, dir)
			c(m.captured, v.Delivered, name, dir)
			c(m.ringDrops, v.RingDrops, name, dir)
			c(m.copyErrors, v.CopyErrors, name, dir)
			c(m.bytesSeen, v.Bytes, name, dir)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.attached, prometheus.GaugeValue, float64(len(m.live.Attachments())))
	if m.dedup != nil {
		c(m.duplicates, m.dedup.Duplicates.Load())
	}
}
