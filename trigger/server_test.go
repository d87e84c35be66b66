package trigger

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/netnstest"
	"github.com/kflcap/kflcap/kfl"
)

// memCaptures is an in-memory Captures for testing the HTTP layer: it
// keeps specs, enforces a cap on running captures, and checks KFL as the
// engine does.
type memCaptures struct {
	mu      sync.Mutex
	max     int
	n       int
	caps    map[string]*Status
	specs   []Spec
	starts  atomic.Int64
	startFn func() // optional delay inside Start
}

func newMem(max int) *memCaptures { return &memCaptures{max: max, caps: map[string]*Status{}} }

func (m *memCaptures) Start(spec Spec) (Status, error) {
	m.starts.Add(1)
	if m.startFn != nil {
		m.startFn()
	}
	if _, err := kfl.Compile(spec.KFL); err != nil {
		return Status{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	running := 0
	for _, s := range m.caps {
		if s.State == StateRunning {
			running++
		}
	}
	if running >= m.max {
		return Status{}, fmt.Errorf("%d running: %w", running, ErrTooMany)
	}
	m.n++
	now := time.Now()
	st := &Status{ID: fmt.Sprintf("c%d", m.n), Name: spec.Name, KFL: spec.KFL, Rule: spec.Rule, Labels: spec.Labels,
		State: StateRunning, Started: now, From: now.Add(-spec.Lookback), Until: now.Add(spec.Duration)}
	m.caps[st.ID] = st
	m.specs = append(m.specs, spec)
	return *st, nil
}

func (m *memCaptures) List() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Status
	for _, s := range m.caps {
		out = append(out, *s)
	}
	return out
}

func (m *memCaptures) Get(id string) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.caps[id]; ok {
		return *s, nil
	}
	return Status{}, ErrNotFound
}

func (m *memCaptures) Stop(id string) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.caps[id]
	if !ok {
		return Status{}, ErrNotFound
	}
	s.State = StateSealed
	s.Until = time.Now()
	s.Repository = "trigger_" + s.Name + "_" + fmt.Sprint(s.Started.Unix()) + ".tar.gz"
	return *s, nil
}

const testToken = "s3cret-token"

func newTestServer(t *testing.T, caps Captures, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	s, err := NewServer(caps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

type answer struct {
	code int
	body map[string]any
	raw  string
}

func do(t testing.TB, ts *httptest.Server, method, path, token string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, raw: string(b)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: content type %q", method, path, ct)
	}
	if err := json.Unmarshal(b, &a.body); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", method, path, err, b)
	}
	return a
}

func TestAuth(t *testing.T) {
	ts := newTestServer(t, newMem(4), Config{})
	for _, tok := range []string{"", "wrong", testToken + "x", strings.ToUpper(testToken)} {
		for _, ep := range []struct{ m, p string }{{"GET", "/api/v1/captures"}, {"POST", "/api/v1/alerts/falco"}, {"DELETE", "/api/v1/captures/c1"}, {"GET", "/nosuch"}} {
			a := do(t, ts, ep.m, ep.p, tok, []byte(`{}`))
			if a.code != http.StatusUnauthorized || !strings.Contains(a.body["error"].(string), "bearer token") {
				t.Errorf("%s %s with token %q: %d %s", ep.m, ep.p, tok, a.code, a.raw)
			}
		}
	}
	// Basic auth with the right secret is not a bearer token either.
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/captures", nil)
	req.SetBasicAuth("x", testToken)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("basic auth: %d", resp.StatusCode)
	}
	if a := do(t, ts, "GET", "/api/v1/captures", testToken, nil); a.code != 200 {
		t.Errorf("right token: %d %s", a.code, a.raw)
	}
	// Falco's http_output cannot set headers: the intake, and only the
	// intake, takes the token in the query.
	if a := do(t, ts, "POST", "/api/v1/alerts/falco?access_token="+testToken, "", []byte(`{"rule":"r"}`)); a.code != 202 {
		t.Errorf("intake with access_token: %d %s", a.code, a.raw)
	}
	if a := do(t, ts, "POST", "/api/v1/alerts/falco?access_token=nope", "", []byte(`{"rule":"r"}`)); a.code != 401 {
		t.Errorf("intake with a wrong access_token: %d %s", a.code, a.raw)
	}
	if a := do(t, ts, "GET", "/api/v1/captures?access_token="+testToken, "", nil); a.code != 401 {
		t.Errorf("access_token on the capture API: %d %s", a.code, a.raw)
	}
}

func TestNoTokenOnLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		listen, token string
		ok            bool
	}{
		{"127.0.0.1:9751", "", true},
		{"[::1]:9751", "", true},
		{"localhost:9751", "", true},
		{"0.0.0.0:9751", "", false},
		{":9751", "", false},
		{"[::]:9751", "", false},
		{"10.0.0.5:9751", "", false},
		{"node.example:9751", "", false},
		{"0.0.0.0:9751", "t", true},
		{"nonsense", "t", false},
	} {
		_, err := NewServer(newMem(1), Config{Listen: tc.listen, Token: tc.token})
		if (err == nil) != tc.ok {
			t.Errorf("listen %q token %q: %v", tc.listen, tc.token, err)
		}
		if err != nil && tc.listen != "nonsense" && !strings.Contains(err.Error(), "api.token") {
			t.Errorf("error does not say what to do: %v", err)
		}
	}
	// Without a token (on loopback) no Authorization is needed.
	s, err := NewServer(newMem(1), Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	if a := do(t, ts, "GET", "/api/v1/captures", "", nil); a.code != 200 {
		t.Errorf("no token configured: %d", a.code)
	}
}

func TestListenAndServeRefusesAndServes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(newMem(1), Config{Listen: ln.Addr().String(), Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/captures", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// The port is in use by nobody now; a bad TLS pair fails at start.
	s2, _ := NewServer(newMem(1), Config{Listen: "127.0.0.1:0", Token: "t", TLSCert: "/nonexistent.pem", TLSKey: "/nonexistent.key"})
	if err := s2.ListenAndServe(context.Background()); err == nil || !strings.Contains(err.Error(), "api tls") {
		t.Errorf("bad tls: %v", err)
	}
	if _, err := NewServer(newMem(1), Config{TLSCert: "x.pem"}); err == nil {
		t.Error("a cert without a key is accepted")
	}
}

func TestCaptureAPI(t *testing.T) {
	mem := newMem(2)
	ts := newTestServer(t, mem, Config{})
	a := do(t, ts, "POST", "/api/v1/captures", testToken, []byte(`{"kfl": "dst.ip == \"10.0.0.7\"", "duration": "20s", "lookback": 5, "name": "incident-42", "labels": {"ticket": "SEC-42"}}`))
	if a.code != http.StatusCreated || a.body["id"] != "c1" || a.body["state"] != "running" {
		t.Fatalf("create: %d %s", a.code, a.raw)
	}
	spec := mem.specs[0]
	if spec.Duration != 20*time.Second || spec.Lookback != 5*time.Second || spec.Name != "incident-42" || spec.Labels["ticket"] != "SEC-42" || spec.Rule != "" || spec.Alert != nil {
		t.Errorf("spec = %+v", spec)
	}
	// Defaults.
	do(t, ts, "POST", "/api/v1/captures", testToken, []byte(`{"kfl": "dns"}`))
	if s := mem.specs[1]; s.Duration != DefaultDuration || s.Lookback != DefaultLookback || s.Name != "api" {
		t.Errorf("defaults: %+v", s)
	}
	// The cap: 429 with a reason.
	a = do(t, ts, "POST", "/api/v1/captures", testToken, []byte(`{"kfl": "http"}`))
	if a.code != http.StatusTooManyRequests || !strings.Contains(a.body["error"].(string), "too many triggered captures") {
		t.Errorf("cap: %d %s", a.code, a.raw)
	}

	a = do(t, ts, "GET", "/api/v1/captures", testToken, nil)
	if a.code != 200 || len(a.body["captures"].([]any)) != 2 {
		t.Errorf("list: %d %s", a.code, a.raw)
	}
	a = do(t, ts, "GET", "/api/v1/captures/c1", testToken, nil)
	if a.code != 200 || a.body["kfl"] != `dst.ip == "10.0.0.7"` {
		t.Errorf("get: %d %s", a.code, a.raw)
	}
	a = do(t, ts, "DELETE", "/api/v1/captures/c1", testToken, nil)
	if a.code != 200 || a.body["state"] != "sealed" || !strings.HasPrefix(a.body["repository"].(string), "trigger_incident-42_") {
		t.Errorf("delete: %d %s", a.code, a.raw)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if a := do(t, ts, m, "/api/v1/captures/nosuch", testToken, nil); a.code != 404 || a.body["error"] != ErrNotFound.Error() {
			t.Errorf("%s unknown id: %d %s", m, a.code, a.raw)
		}
	}
	// Stopping c1 freed a slot.
	if a := do(t, ts, "POST", "/api/v1/captures", testToken, []byte(`{"kfl": "http"}`)); a.code != 201 {
		t.Errorf("after delete: %d %s", a.code, a.raw)
	}
}

func TestCaptureAPIBadRequests(t *testing.T) {
	mem := newMem(10)
	ts := newTestServer(t, mem, Config{MaxBodyBytes: 4096})
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"kfl": "dns"`, 400, "invalid JSON: the object is cut short"},
		{`{"kfl": "dns",, }`, 400, "invalid JSON at byte"},
		{``, 400, "empty body"},
		{`[]`, 400, "want trigger.captureRequest"},
		{`{"kfl": 5}`, 400, "kfl: want string"},
		{`{"kfl": "dns", "colour": "red"}`, 400, `unknown field "colour"`},
		{`{"kfl": "dns"} {}`, 400, "data after"},
		{`{"duration": "10s"}`, 400, "kfl: missing"},
		{`{"kfl": "dns", "duration": "soon"}`, 400, `"soon" is not a duration`},
		{`{"kfl": "dns", "duration": "0s"}`, 400, "duration: 0s is outside"},
		{`{"kfl": "dns", "duration": "2h"}`, 400, "duration: 2h0m0s is outside"},
		{`{"kfl": "dns", "lookback": "-1s"}`, 400, "lookback: -1s is outside"},
		{`{"kfl": "dns", "labels": {"": "x"}}`, 400, "labels"},
		{`{"kfl": "http and response.stauts == 500"}`, 400, "invalid kfl: 1:10:"},
		{`{"kfl": "` + strings.Repeat("dns or ", 1000) + `dns"}`, 413, "larger than 4096 bytes"},
	} {
		a := do(t, ts, "POST", "/api/v1/captures", testToken, []byte(tc.body))
		if a.code != tc.code || !strings.Contains(fmt.Sprint(a.body["error"]), tc.want) {
			t.Errorf("%.60s: %d %s, want %d %q", tc.body, a.code, a.raw, tc.code, tc.want)
		}
	}
	a := do(t, ts, "POST", "/api/v1/captures", testToken, []byte(`{"kfl": "http and response.stauts == 500"}`))
	pos, ok := a.body["position"].(map[string]any)
	if !ok || pos["offset"] != float64(9) || pos["line"] != float64(1) || pos["col"] != float64(10) || !strings.Contains(pos["caret"].(string), "^") {
		t.Errorf("position: %s", a.raw)
	}
	if mem.starts.Load() != 0 {
		t.Errorf("%d starts for bad requests", mem.starts.Load())
	}
}

func postAlert(t testing.TB, ts *httptest.Server, doc []byte) answer {
	return do(t, ts, "POST", "/api/v1/alerts/falco", testToken, doc)
}

func TestIntake(t *testing.T) {
	mem := newMem(10)
	clk := &fakeClock{t: time.Date(2025, 11, 23, 14, 7, 42, 0, time.UTC)}
	srv, err := NewServer(mem, Config{Token: testToken, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	// The stock network rule starts a capture of the remote IP.
	a := postAlert(t, ts, readFixture(t, "falco_redirect_stdout_network.json"))
	if a.code != http.StatusCreated || a.body["result"] != "started" {
		t.Fatalf("redirect: %d %s", a.code, a.raw)
	}
	caps := a.body["captures"].([]any)
	if len(caps) != 1 || caps[0].(map[string]any)["id"] != "c1" {
		t.Errorf("captures: %v", caps)
	}
	spec := mem.specs[0]
	if spec.KFL != `(src.ip == "203.0.113.50" or dst.ip == "203.0.113.50")` || spec.Alert == nil || spec.Alert.Rule != "Redirect STDOUT/STDIN to Network Connection in Container" || len(spec.Alert.Raw) == 0 {
		t.Errorf("spec: %+v", spec)
	}
	// The alert was 0.48 s old: the lookback reaches back from the event.
	if spec.Lookback <= DefaultLookback || spec.Lookback > DefaultLookback+time.Second {
		t.Errorf("lookback %s", spec.Lookback)
	}
	// The same alert through Falcosidekick, 2 s later: one capture already runs.
	clk.add(2 * time.Second)
	a = postAlert(t, ts, readFixture(t, "falcosidekick_redirect_stdout_network.json"))
	if a.code != http.StatusAccepted || a.body["result"] != "duplicate" || a.body["duplicates"].([]any)[0].(map[string]any)["capture_id"] != "c1" {
		t.Errorf("duplicate: %d %s", a.code, a.raw)
	}
	// After the window it is a new capture.
	clk.add(4 * time.Second)
	if a = postAlert(t, ts, readFixture(t, "falco_redirect_stdout_network.json")); a.code != 201 {
		t.Errorf("after the window: %d %s", a.code, a.raw)
	}
	// No network fields, no resolver: acknowledged, not an error.
	for _, f := range []string{"falco_terminal_shell.json", "falco_docs_write_below_binary_dir.json", "talon_webhook_notifier.json"} {
		a = postAlert(t, ts, readFixture(t, f))
		if a.code != http.StatusAccepted || a.body["result"] != "unmatched" {
			t.Errorf("%s: %d %s", f, a.code, a.raw)
		}
	}
	// Undecodable.
	for _, doc := range []string{`{"rule": 5}`, `not json`, `{"priority": "Warning"}`} {
		a = postAlert(t, ts, []byte(doc))
		if a.code != 400 || !strings.HasPrefix(a.body["error"].(string), "undecodable alert: ") {
			t.Errorf("%s: %d %s", doc, a.code, a.raw)
		}
	}
	a = postAlert(t, ts, bytes.Repeat([]byte(" "), 2<<20))
	if a.code != 413 {
		t.Errorf("oversized alert: %d %s", a.code, a.raw)
	}
	c := srv.Counters()
	want := Counters{AlertsReceived: 10, AlertsInvalid: 4, AlertsMatched: 3, AlertsUnmatched: 3, AlertsDeduplicated: 1, CapturesStarted: 2}
	if c != want {
		t.Errorf("counters %+v\nwant     %+v", c, want)
	}
}

func TestIntakeRules(t *testing.T) {
	rules := mustRules(t, `
triggers:
  - name: reverse-shell
    match:
      rules: ["Redirect STDOUT/STDIN to Network Connection in Container"]
      priority: ">= Notice"
    kfl: 'tcp and (dst.ip == {{ ip (field "fd.sip") }} or src.ip == {{ ip (field "fd.sip") }})'
    duration: 10s
    lookback: 5s
    continue: true
  - name: shell-pod
    match: {rules: ["Terminal shell in container"]}
    kfl: 'src.ip == {{ ip podIP }}'
  - name: broken
    match: {rules: ["Write below binary dir"]}
    kfl: 'dst.ip == "{{ field "fd.name" }}"'
  - name: default-target
    match: {tags: [[network]]}
`)
	mem := newMem(10)
	var logs bytes.Buffer
	srv, err := NewServer(mem, Config{Token: testToken, Rules: rules, Logger: slogTo(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	// reverse-shell fires and continues; default-target fires as well.
	a := postAlert(t, ts, readFixture(t, "falco_redirect_stdout_network.json"))
	if a.code != 201 || len(a.body["captures"].([]any)) != 2 {
		t.Fatalf("two rules: %d %s", a.code, a.raw)
	}
	if s := mem.specs[0]; s.Rule != "reverse-shell" || s.Name != "reverse-shell" || s.Duration != 10*time.Second || s.KFL != `tcp and (dst.ip == "203.0.113.50" or src.ip == "203.0.113.50")` {
		t.Errorf("reverse-shell spec: %+v", s)
	}
	if s := mem.specs[1]; s.Rule != "default-target" || !strings.Contains(s.KFL, "203.0.113.50") {
		t.Errorf("default-target spec: %+v", s)
	}
	// shell-pod fires, but without a resolver podIP is "": the alert fails with a reason.
	a = postAlert(t, ts, readFixture(t, "falco_terminal_shell.json"))
	if a.code != http.StatusUnprocessableEntity || !strings.Contains(a.raw, `ip: \"\" is not an IP address`) {
		t.Errorf("shell-pod: %d %s", a.code, a.raw)
	}
	// A template that renders an invalid query fails that alert, logged.
	a = postAlert(t, ts, readFixture(t, "falco_docs_write_below_binary_dir.json"))
	if a.code != http.StatusUnprocessableEntity || a.body["result"] != "failed" || !strings.Contains(a.raw, "rendered kfl") {
		t.Errorf("broken: %d %s", a.code, a.raw)
	}
	if !strings.Contains(logs.String(), "trigger rule cannot capture this alert") || !strings.Contains(logs.String(), "trigger=broken") {
		t.Errorf("no log line for the failed render:\n%s", logs.String())
	}
	if c := srv.Counters(); c.AlertsFailed != 2 || c.CapturesStarted != 2 || c.AlertsMatched != 3 {
		t.Errorf("counters %+v", c)
	}
	// Disabled rules do not fire.
	off := false
	rules[0].Enabled = &off
	srv2, _ := NewServer(mem, Config{Token: testToken, Rules: rules[:1]})
	ts2 := httptest.NewServer(srv2)
	defer ts2.Close()
	if a := postAlert(t, ts2, readFixture(t, "falco_redirect_stdout_network.json")); a.code != 202 || a.body["result"] != "unmatched" {
		t.Errorf("disabled: %d %s", a.code, a.raw)
	}
}

// TestBurst: 1,000 alerts in about a second, from 50 connections: every
// one is answered; identical ones start one capture; distinct ones beyond
// the engine's cap get 429; memory stays bounded.
func TestBurst(t *testing.T) {
	mem := newMem(20)
	mem.startFn = func() { time.Sleep(2 * time.Millisecond) } // the engine takes a moment: a simulated cost, not a wait
	srv, err := NewServer(mem, Config{Token: testToken, DedupEntries: 256})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ts.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 64

	tmpl := string(readFixture(t, "falco_redirect_stdout_network.json"))
	doc := func(i int) []byte {
		if i%2 == 0 {
			return []byte(tmpl) // the same alert, 500 times
		}
		// 500 distinct remote IPs
		ip := fmt.Sprintf("198.51.%d.%d", i/250, i%250)
		return []byte(strings.ReplaceAll(tmpl, "203.0.113.50", ip))
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// Sample the heap while the burst runs.
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()

	const n, workers = 1000, 50
	codes := make([]int, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				// Pace to about 1,000 per second overall.
				if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
					time.Sleep(d)
				}
				req, _ := http.NewRequest("POST", ts.URL+"/api/v1/alerts/falco", bytes.NewReader(doc(i)))
				req.Header.Set("Authorization", "Bearer "+testToken)
				resp, err := ts.Client().Do(req)
				if err != nil {
					t.Errorf("alert %d: %v", i, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled

	hist := map[int]int{}
	for _, c := range codes {
		hist[c]++
	}
	t.Logf("%d alerts in %s: %v; engine starts %d", n, elapsed, hist, mem.starts.Load())
	if hist[0] != 0 {
		t.Errorf("%d alerts unanswered", hist[0])
	}
	if hist[201] != 20 {
		t.Errorf("%d captures started, want the cap, 20", hist[201])
	}
	if hist[201]+hist[202]+hist[429] != n {
		t.Errorf("unexpected answers: %v", hist)
	}
	// The 500 identical alerts made at most one engine call that was not
	// refused by the cap; the rest were duplicates.
	if hist[202] < 499-20 {
		t.Errorf("only %d duplicates", hist[202])
	}
	c := srv.Counters()
	if c.AlertsReceived != n || c.CapturesStarted != 20 || c.AlertsRejected != uint64(hist[429]) || c.AlertsDeduplicated != uint64(hist[202]) {
		t.Errorf("counters %+v", c)
	}
	if entries := srv.dedup.size(); entries > 256 {
		t.Errorf("dedup table %d entries; cap 256", entries)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap %d → %d bytes (%+d), peak in use %d, %d specs kept by the fake engine", before.HeapAlloc, after.HeapAlloc, grown, peak.Load(), len(mem.specs))
	if peak.Load() > 64<<20 {
		t.Errorf("heap in use peaked at %d bytes during the burst", peak.Load())
	}
	if grown > 16<<20 {
		t.Errorf("heap grew by %d bytes for 1,000 alerts", grown)
	}
}

func TestHandleWithResolver(t *testing.T) {
	// A resolver that knows the pod turns a shell alert into a capture.
	mem := newMem(5)
	res := mapResolver{"shop/shop-frontend-7d9c5b6f4-x2x8q": mustAddr("10.244.1.17")}
	srv, err := NewServer(mem, Config{Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	code, r := srv.Handle(decodeFixture(t, "falco_terminal_shell.json"))
	if code != 201 || r.Result != "started" || !strings.Contains(mem.specs[0].KFL, "10.244.1.17") {
		t.Errorf("%d %+v", code, r)
	}
	code, r = srv.Handle(decodeFixture(t, "talon_webhook_notifier.json"))
	if code != 202 || r.Result != "duplicate" { // same pod, same query, same rule
		t.Errorf("talon: %d %+v", code, r)
	}
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(newMem(1), Config{Listen: ln.Addr().String(), Token: testToken, TLSCert: certFile, TLSKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, ln)

	certPEM, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+ln.Addr().String()+"/api/v1/captures", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("https: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP on the TLS port does not reach the API.
	resp, err = http.Get("http://" + ln.Addr().String() + "/api/v1/captures")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain http on the tls port: %d", resp.StatusCode)
		}
	}
}

func writeSelfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kflcap test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestIntakeBusy: with every intake slot held by a slow engine, a further
// alert is answered 503 after IntakeWait rather than queued without end.
func TestIntakeBusy(t *testing.T) {
	mem := newMem(10)
	release := make(chan struct{})
	mem.startFn = func() { <-release }
	srv, err := NewServer(mem, Config{Token: testToken, MaxInFlight: 1, IntakeWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	first := make(chan answer, 1)
	go func() { first <- postAlert(t, ts, readFixture(t, "falco_redirect_stdout_network.json")) }()
	netnstest.WaitFor(t, 10*time.Second, func() error {
		if mem.starts.Load() == 0 {
			return errors.New("the first alert has not reached the engine")
		}
		return nil
	})
	a := postAlert(t, ts, readFixture(t, "falco_docs_write_below_binary_dir.json"))
	if a.code != http.StatusServiceUnavailable || !strings.Contains(a.raw, "busy") {
		t.Errorf("while saturated: %d %s", a.code, a.raw)
	}
	close(release)
	if a := <-first; a.code != 201 {
		t.Errorf("the slow alert: %d %s", a.code, a.raw)
	}
	if c := srv.Counters(); c.AlertsBusy != 1 || c.AlertsReceived != 2 || c.CapturesStarted != 1 {
		t.Errorf("counters %+v", c)
	}
}
