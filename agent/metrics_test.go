package agent

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/upload"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// fakeCapture stands for a live capture's kernel counters.
type fakeCapture map[bpf.IfKey]bpf.Counters

func (f fakeCapture) Counters() (map[bpf.IfKey]bpf.Counters, error) { return f, nil }
func (f fakeCapture) Iface(i int) (bpf.Interface, bool) {
	ifc := bpf.Interface{}
	ifc.Name, ifc.Index = map[int]string{2: "eth0"}[i], i
	return ifc, ifc.Name != ""
}
func (f fakeCapture) Attachments() []*bpf.Attachment { return nil }

// testMetrics is the agent's registry as newMetrics builds it, over fakes:
// each package's collector and the agent's own.
func testMetrics() (*prometheus.Registry, *Job) {
	j := &Job{Index: 0, Query: `http and response.status == 500`}
	j.Selected.Add(7)
	j.Sealed.Add(2)
	st := &collector.Stages{}
	st.Malformed.Add(1)
	sp := &repo.Spool{MaxBytes: 1 << 30}
	sp.Refused.Add(3)
	kernel := fakeCapture{
		{Ifindex: 2, Direction: packet.Ingress}: {Seen: 100, Filtered: 10, Delivered: 85, RingDrops: 5, Bytes: 6400},
		{Ifindex: 2, Direction: packet.Egress}:  {Seen: 50, Delivered: 50, Bytes: 3200},
	}
	stats := func() dissect.Stats {
		return dissect.Stats{ActiveStreams: 4, Streams: 9, EntriesHTTP: 12, EntriesDNS: 3}
	}
	uploads := upload.NewMetrics(func() int { return 1 })
	uploads.Observe(upload.Delivery{Sink: "local", Latency: 30 * time.Millisecond})
	uploads.Observe(upload.Delivery{Sink: "s3", Err: &upload.S3Error{Reason: "bad credentials", Err: errors.New("403")}, Latency: time.Second})
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collector.NewMetrics(kernel, nil),
		dissect.NewMetrics(stats),
		repo.NewSpoolMetrics(sp),
		uploads,
		NewMetrics(MetricsSources{UserDrops: func() map[string]uint64 {
			return map[string]uint64{"malformed_record": st.Malformed.Load(), "spool_full": sp.Refused.Load(),
				"stream_table_full": stats().StreamsEvicted, "retain_overflow": stats().RetainOverflow}
		}, Jobs: func() []*Job { return []*Job{j} },
			Reloads: func() (uint64, uint64) { return 2, 1 }}),
	)
	return reg, j
}

func TestMetricsValues(t *testing.T) {
	m, _ := testMetrics()
	want := `
# HELP kflcap_packets_seen_total Packets that reached the capture programs.
# TYPE kflcap_packets_seen_total counter
kflcap_packets_seen_total{direction="egress",interface="eth0"} 50
kflcap_packets_seen_total{direction="ingress",interface="eth0"} 100
# HELP kflcap_ringbuf_drops_total Packets lost because the ring buffer was full.
# TYPE kflcap_ringbuf_drops_total counter
kflcap_ringbuf_drops_total{direction="egress",interface="eth0"} 0
kflcap_ringbuf_drops_total{direction="ingress",interface="eth0"} 5
# HELP kflcap_kfl_matches_total Streams a job's KFL query selected.
# TYPE kflcap_kfl_matches_total counter
kflcap_kfl_matches_total{job="0",query="http and response.status == 500"} 7
# HELP kflcap_userspace_drops_total Packets or streams lost in user space, by stage.
# TYPE kflcap_userspace_drops_total counter
kflcap_userspace_drops_total{stage="malformed_record"} 1
kflcap_userspace_drops_total{stage="retain_overflow"} 0
kflcap_userspace_drops_total{stage="spool_full"} 3
kflcap_userspace_drops_total{stage="stream_table_full"} 0
# HELP kflcap_config_reloads_total Configuration reloads (SIGHUP or a changed file), by result.
# TYPE kflcap_config_reloads_total counter
kflcap_config_reloads_total{result="failed"} 1
kflcap_config_reloads_total{result="ok"} 2
# HELP kflcap_upload_failures_total Failed deliveries, by sink and reason.
# TYPE kflcap_upload_failures_total counter
kflcap_upload_failures_total{reason="bad_credentials",sink="s3"} 1
# HELP kflcap_uploads_total Repository deliveries, by sink and result.
# TYPE kflcap_uploads_total counter
kflcap_uploads_total{result="failure",sink="s3"} 1
kflcap_uploads_total{result="success",sink="local"} 1
`
	names := []string{"kflcap_packets_seen_total", "kflcap_ringbuf_drops_total", "kflcap_kfl_matches_total", "kflcap_userspace_drops_total", "kflcap_uploads_total", "kflcap_upload_failures_total", "kflcap_config_reloads_total"}
	if err := testutil.GatherAndCompare(m, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(m); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// promtool, Prometheus's own checker, accepts the exposition.
func TestMetricsPromtool(t *testing.T) {
	netnstest.RequireTool(t, "promtool")
	reg, _ := testMetrics()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		enc.Encode(mf)
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
