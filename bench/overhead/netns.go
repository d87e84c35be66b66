package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// inNS runs f on a thread moved into namespace ns, so that the sockets f
// makes belong to ns, then moves the thread back (as netnstest's Forward
// does). Only if the way back fails is the thread left locked, for the
// runtime to end.
func inNS[T any](ns string, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var zero T
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		v, err := f()
		if berr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); berr == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// scraper reads the agent's /metrics on its namespace's loopback over a
// kept-alive connection: cheaper for the agent, and quicker, than a curl
// per scrape when polling.
type scraper struct {
	url string
	hc  *http.Client
}

func newScraper(ns, addr string) *scraper {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return inNS(ns, func() (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, network, a) })
		},
		MaxIdleConns: 1,
	}
	return &scraper{url: "http://" + addr + "/metrics", hc: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

func (s *scraper) scrape() (metrics, error) {
	resp, err := s.hc.Get(s.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", s.url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return parseMetrics(b), nil
}

// metrics is an exposition, sample line ("name{labels}") → value.
type metrics map[string]float64

func parseMetrics(b []byte) metrics {
	m := metrics{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

// sum adds the samples of name whose labels contain every one of labels
// (`interface="x"`).
func (m metrics) sum(name string, labels ...string) float64 {
	var t float64
next:
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(k, l) {
				continue next
			}
		}
		t += v
	}
	return t
}

// lineLog keeps a process's output with the time each line arrived.
type lineLog struct {
	mu      sync.Mutex
	all     bytes.Buffer
	lines   []stamped
	partial []byte
}

type stamped struct {
	at   time.Time
	text string
}

func (l *lineLog) Write(p []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, stamped{now, string(l.partial[:i])})
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// first is the first line containing every one of subs.
func (l *lineLog) first(subs ...string) (stamped, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, s := range l.lines {
		for _, sub := range subs {
			if !strings.Contains(s.text, sub) {
				continue next
			}
		}
		return s, true
	}
	return stamped{}, false
}
