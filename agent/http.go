package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/trigger"
	"github.com/kflcap/kflcap/upload"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// sinkHealth is whether each sink took the last thing it was asked to
// (the start-up check, then every delivery): /readyz reports the sinks
// that did not.
type sinkHealth struct {
	mu   sync.Mutex
	errs map[string]error
}

func (h *sinkHealth) set(sink string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.errs == nil {
		h.errs = map[string]error{}
	}
	if err == nil {
		delete(h.errs, sink)
	} else {
		h.errs[sink] = err
	}
}

// err names the failing sinks with their last error, sorted; nil when
// every sink is reachable.
func (h *sinkHealth) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for _, n := range slices.Sorted(maps.Keys(h.errs)) {
		errs = append(errs, fmt.Errorf("sink %s: %w", n, h.errs[n]))
	}
	return errors.Join(errs...)
}

// newMetrics builds the metrics registry: each stage's collector from its
// own package, and the agent's. Every delivery is counted there, in sink
// health, on Slack and in the triggered capture it came from.
func (a *Agent) newMetrics() *prometheus.Registry {
	uploads := upload.NewMetrics(a.outbox.Pending)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collector.NewMetrics(a.live, a.dedup),
		dissect.NewMetrics(a.pipe.Stats),
		repo.NewSpoolMetrics(a.spool),
		uploads,
		trigger.NewMetrics(func() trigger.Counters {
			if srv := a.api.Load(); srv != nil {
				return srv.Counters()
			}
			return trigger.Counters{}
		}),
		NewMetrics(MetricsSources{
			UserDrops: a.userDrops,
			Jobs:      a.jobs, Triggers: a.triggers, Lookback: a.lookback,
			Reloads: func() (uint64, uint64) { return a.reloads.ok.Load(), a.reloads.failed.Load() },
		}),
	)
	reg.MustRegister(a.resolve.metrics...)
	a.outbox.OnDelivery = func(d upload.Delivery) {
		uploads.Observe(d)
		a.sinkErrs.set(d.Sink, d.Err)
		a.slack.OnDelivery(d)
		if d.Err == nil {
			a.triggers.MarkDelivered(d.Archive.Name, d.URL)
		}
	}
	return reg
}

// ready is /readyz: capture attached and reading, every sink reachable.
func (a *Agent) ready() error {
	select {
	case <-a.readerDone:
		return errors.New("capture stopped")
	default:
	}
	if len(a.live.Attachments()) == 0 {
		return errors.New("no interface attached")
	}
	return a.sinkErrs.err()
}

// serveHTTP serves /metrics (Prometheus), /healthz (the process is
// alive), /readyz and /status on addr.
func (a *Agent) serveHTTP(addr string, reg *prometheus.Registry) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.status())
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	a.log.Info("serving metrics", "addr", ln.Addr().String())
	return srv, nil
}
