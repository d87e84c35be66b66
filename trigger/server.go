package trigger

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kflcap/kflcap/kfl"
)

// Config configures the capture API and the alert intake.
type Config struct {
	// Listen is the address, api.listen in the agent's config
	// (default 127.0.0.1:9751).
	Listen string
	// Token is the bearer token (api.token, env KFLCAP_API_TOKEN). Without
	// one the server only listens on loopback and asks for no token.
	Token string
	// TLSCert and TLSKey are PEM file paths; both or neither.
	TLSCert, TLSKey string
	// MaxBodyBytes bounds a request body (default 1 MiB); beyond: 413.
	MaxBodyBytes int64
	// DedupWindow: identical alerts within it start one capture (default
	// 5 s; negative disables). DedupEntries bounds the table (default 4096).
	DedupWindow  time.Duration
	DedupEntries int
	// MaxInFlight bounds the alert requests handled at once (default 32);
	// others wait for a slot up to IntakeWait (default 10 s), then get 503.
	MaxInFlight int
	IntakeWait  time.Duration
	// Rules are the trigger rules (ParseRules); nil means DefaultRule.
	Rules []Rule
	// Resolver finds pod IPs for the built-in target; may be nil.
	Resolver PodResolver
	Logger   *slog.Logger
	// Now is the clock, for tests; nil is time.Now.
	Now func() time.Time
}

// DefaultListen is api.listen's default.
const DefaultListen = "127.0.0.1:9751"

// Counters are the intake's counts since the server started; the agent
// exports them as kflcap_trigger_* metrics.
type Counters struct {
	AlertsReceived     uint64 // POSTs to the intake, answered or not
	AlertsInvalid      uint64 // undecodable (400) or too large (413)
	AlertsMatched      uint64 // fired at least one rule
	AlertsUnmatched    uint64 // fired no rule (202)
	AlertsDeduplicated uint64 // every capture it asked for already runs (202)
	AlertsFailed       uint64 // a rule fired but no capture could start: template, query or engine error
	AlertsRejected     uint64 // the engine's cap refused a capture (429)
	AlertsBusy         uint64 // not read: the intake stayed saturated (503)
	CapturesStarted    uint64 // by alerts
	APICapturesStarted uint64 // by POST /api/v1/captures
	AuthFailures       uint64 // 401s
	DedupEvicted       uint64 // dedup entries dropped early because the table was full
}

type counters struct {
	received, invalid, matched, unmatched, deduplicated, failed, rejected, busy, started, apiStarted, authFailures atomic.Uint64
}

// Server serves the capture API and the alert intake. It is an
// http.Handler; ListenAndServe runs it on Config.Listen.
type Server struct {
	cfg      Config
	caps     Captures
	log      *slog.Logger
	mux      *http.ServeMux
	dedup    *dedup
	inflight chan struct{}
	tokenSum [32]byte
	c        counters
	rules    atomic.Pointer[[]Rule] // swapped whole by SetRules
}

// NewServer checks the configuration and builds the server. It refuses a
// non-loopback Listen without a token.
func NewServer(caps Captures, cfg Config) (*Server, error) {
	if caps == nil {
		return nil, errors.New("trigger server: no capture engine")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if err := CheckListen(cfg.Listen, cfg.Token); err != nil {
		return nil, err
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("api tls: give both the certificate and the key file")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = 5 * time.Second
	}
	if cfg.DedupEntries <= 0 {
		cfg.DedupEntries = 4096
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 32
	}
	if cfg.IntakeWait <= 0 {
		cfg.IntakeWait = 10 * time.Second
	}
	rules, err := compileRules(cfg.Rules)
	if err != nil {
		return nil, err
	}
	cfg.Rules = nil // s.rules holds them
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:      cfg,
		caps:     caps,
		log:      cfg.Logger,
		mux:      http.NewServeMux(),
		dedup:    newDedup(cfg.DedupWindow, cfg.DedupEntries, cfg.Now),
		inflight: make(chan struct{}, cfg.MaxInFlight),
		tokenSum: sha256.Sum256([]byte(cfg.Token)),
	}
	s.rules.Store(&rules)
	s.mux.HandleFunc("POST /api/v1/captures", s.createCapture)
	s.mux.HandleFunc("GET /api/v1/captures", s.listCaptures)
	s.mux.HandleFunc("GET /api/v1/captures/{id}", s.getCapture)
	s.mux.HandleFunc("DELETE /api/v1/captures/{id}", s.stopCapture)
	s.mux.HandleFunc("POST "+intakePath, s.intake)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s, nil
}

// compileRules checks rules (nil: DefaultRule) and returns compiled copies.
func compileRules(in []Rule) ([]Rule, error) {
	if in == nil {
		in = []Rule{DefaultRule()}
	}
	rules := make([]Rule, len(in))
	for i, r := range in {
		if err := r.compile(); err != nil {
			return nil, fmt.Errorf("triggers[%d]%s", i, prefixErr(err))
		}
		rules[i] = r
	}
	return rules, nil
}

// SetRules replaces the trigger rules (nil: DefaultRule) for the alerts
// that come next; alerts being handled finish with the old ones. Rules
// that do not compile change nothing.
func (s *Server) SetRules(rules []Rule) error {
	compiled, err := compileRules(rules)
	if err != nil {
		return err
	}
	s.rules.Store(&compiled)
	return nil
}

// Rules returns the rules in force.
func (s *Server) Rules() []Rule { return *s.rules.Load() }

// CheckListen refuses to serve the API on a non-loopback address without
// a token. A host name other than localhost counts as non-loopback.
func CheckListen(listen, token string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("api.listen %q: %w", listen, err)
	}
	if token != "" {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("api.listen %q is not a loopback address: set api.token (or KFLCAP_API_TOKEN) to serve the API there", listen)
}

// Counters returns the current counts.
func (s *Server) Counters() Counters {
	s.dedup.mu.Lock()
	ev := s.dedup.evicted
	s.dedup.mu.Unlock()
	return Counters{
		AlertsReceived:     s.c.received.Load(),
		AlertsInvalid:      s.c.invalid.Load(),
		AlertsMatched:      s.c.matched.Load(),
		AlertsUnmatched:    s.c.unmatched.Load(),
		AlertsDeduplicated: s.c.deduplicated.Load(),
		AlertsFailed:       s.c.failed.Load(),
		AlertsRejected:     s.c.rejected.Load(),
		AlertsBusy:         s.c.busy.Load(),
		CapturesStarted:    s.c.started.Load(),
		APICapturesStarted: s.c.apiStarted.Load(),
		AuthFailures:       s.c.authFailures.Load(),
		DedupEvicted:       ev,
	}
}

// ServeHTTP authenticates, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Token != "" && !s.authorized(r) {
		s.c.authFailures.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="kflcap"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer <api.token>)")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized compares hashes in constant time, so neither the token's
// bytes nor its length leak through timing. The alert intake also takes
// the token as ?access_token= (RFC 6750 §2.3): Falco's http_output cannot
// add headers.
func (s *Server) authorized(r *http.Request) bool {
	var tok string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		tok = strings.TrimSpace(t)
	} else if r.Method == http.MethodPost && r.URL.Path == intakePath {
		tok = r.URL.Query().Get("access_token")
	}
	if tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

const intakePath = "/api/v1/alerts/falco"

// ListenAndServe listens on Config.Listen (with TLS when configured) and
// serves until ctx ends, then shuts down, giving requests 5 s to finish.
// A listen error is returned at once.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends; see ListenAndServe.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("api tls: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("capture api listening", "addr", ln.Addr().String(), "tls", s.cfg.TLSCert != "", "auth", s.cfg.Token != "")
	select {
	case err := <-errc:
		return fmt.Errorf("api serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("api shutdown: %w", err)
	}
	return nil
}

// apiError is the body of every error answer.
type apiError struct {
	Error    string    `json:"error"`
	Position *position `json:"position,omitempty"`
}

type position struct {
	Offset int    `json:"offset"`
	Line   int    `json:"line"`
	Col    int    `json:"col"`
	Query  string `json:"query,omitempty"`
	Caret  string `json:"caret,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func writeKFLError(w http.ResponseWriter, prefix string, ke *kfl.Error) {
	writeJSON(w, http.StatusBadRequest, apiError{
		Error:    prefix + ke.Error(),
		Position: &position{Offset: ke.Offset, Line: ke.Line, Col: ke.Col, Query: ke.Query, Caret: ke.Caret()},
	})
}

// readBody reads a bounded body; it answers 413 or 400 itself and returns
// nil then.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) []byte {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
			return nil
		}
		writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
		return nil
	}
	return body
}

// captureRequest is POST /api/v1/captures's body.
type captureRequest struct {
	KFL      string            `json:"kfl"`
	Duration jsonDuration      `json:"duration"`
	Lookback jsonDuration      `json:"lookback"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
}

// jsonDuration is "30s" or a number of seconds.
type jsonDuration struct {
	d   time.Duration
	set bool
}

func (j *jsonDuration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (30s, 2m)", s)
		}
		j.d, j.set = d, true
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return errors.New(`want a duration: "30s" or a number of seconds`)
	}
	if f < 0 || f > MaxDuration.Seconds()*10 {
		return fmt.Errorf("%v seconds is out of range", f)
	}
	j.d, j.set = time.Duration(f*float64(time.Second)), true
	return nil
}

const (
	maxNameLen   = 128
	maxLabels    = 32
	maxLabelText = 256
)

func (s *Server) createCapture(w http.ResponseWriter, r *http.Request) {
	body := s.readBody(w, r)
	if body == nil {
		return
	}
	var req captureRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad capture request: "+jsonErr(err))
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad capture request: data after the JSON object")
		return
	}
	spec, msg := specFromRequest(&req)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if _, err := kfl.Compile(spec.KFL); err != nil {
		var ke *kfl.Error
		if errors.As(err, &ke) {
			writeKFLError(w, "invalid kfl: ", ke)
			return
		}
		writeError(w, http.StatusBadRequest, "invalid kfl: "+err.Error())
		return
	}
	st, err := s.caps.Start(spec)
	if err != nil {
		s.writeStartError(w, err)
		return
	}
	s.c.apiStarted.Add(1)
	s.log.Info("capture started", "id", st.ID, "kfl", spec.KFL, "duration", spec.Duration, "lookback", spec.Lookback, "via", "api")
	w.Header().Set("Location", "/api/v1/captures/"+st.ID)
	writeJSON(w, http.StatusCreated, st)
}

func specFromRequest(req *captureRequest) (Spec, string) {
	if strings.TrimSpace(req.KFL) == "" {
		return Spec{}, `kfl: missing; say which traffic to capture, e.g. {"kfl": "dst.ip == \"10.0.0.1\""}`
	}
	if len(req.KFL) > maxRendered {
		return Spec{}, fmt.Sprintf("kfl: longer than %d bytes", maxRendered)
	}
	spec := Spec{KFL: req.KFL, Duration: DefaultDuration, Lookback: DefaultLookback, Name: req.Name, Labels: req.Labels}
	if req.Duration.set {
		spec.Duration = req.Duration.d
	}
	if req.Lookback.set {
		spec.Lookback = req.Lookback.d
	}
	if spec.Duration <= 0 || spec.Duration > MaxDuration {
		return Spec{}, fmt.Sprintf("duration: %s is outside (0, %s]", spec.Duration, MaxDuration)
	}
	if spec.Lookback < 0 || spec.Lookback > MaxLookback {
		return Spec{}, fmt.Sprintf("lookback: %s is outside [0, %s]", spec.Lookback, MaxLookback)
	}
	if len(spec.Name) > maxNameLen {
		return Spec{}, fmt.Sprintf("name: longer than %d bytes", maxNameLen)
	}
	if spec.Name == "" {
		spec.Name = "api"
	}
	if len(spec.Labels) > maxLabels {
		return Spec{}, fmt.Sprintf("labels: %d labels, more than %d", len(spec.Labels), maxLabels)
	}
	for k, v := range spec.Labels {
		if k == "" || len(k) > maxLabelText || len(v) > maxLabelText {
			return Spec{}, fmt.Sprintf("labels: %q: keys are 1 to %d bytes, values up to %d", k, maxLabelText, maxLabelText)
		}
	}
	return spec, ""
}

// jsonErr words encoding/json's errors for a client.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return fmt.Sprintf("%s: want %s, got a JSON %s", te.Field, te.Type, te.Value)
	case errors.Is(err, io.EOF):
		return "empty body; want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: the object is cut short"
	}
	return err.Error()
}

func (s *Server) writeStartError(w http.ResponseWriter, err error) {
	var ke *kfl.Error
	switch {
	case errors.Is(err, ErrTooMany):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "capture refused: "+err.Error())
	case errors.As(err, &ke):
		writeKFLError(w, "invalid kfl: ", ke)
	default:
		writeError(w, http.StatusInternalServerError, "start capture: "+err.Error())
	}
}

func (s *Server) listCaptures(w http.ResponseWriter, r *http.Request) {
	list := s.caps.List()
	if list == nil {
		list = []Status{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"captures": list})
}

func (s *Server) getCapture(w http.ResponseWriter, r *http.Request) {
	st, err := s.caps.Get(r.PathValue("id"))
	s.writeStatus(w, st, err)
}

func (s *Server) stopCapture(w http.ResponseWriter, r *http.Request) {
	st, err := s.caps.Stop(r.PathValue("id"))
	if err == nil {
		s.log.Info("capture stopped early", "id", st.ID)
	}
	s.writeStatus(w, st, err)
}

func (s *Server) writeStatus(w http.ResponseWriter, st Status, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, st)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// IntakeResult is the answer to an alert.
type IntakeResult struct {
	Result     string        `json:"result"` // started, duplicate, unmatched, rejected, failed
	Rule       string        `json:"rule"`   // the alert's rule
	Priority   string        `json:"priority,omitempty"`
	Format     string        `json:"format"`
	Captures   []Status      `json:"captures,omitempty"`
	Duplicates []Duplicate   `json:"duplicates,omitempty"`
	Errors     []RuleFailure `json:"errors,omitempty"`
}

// Duplicate says which running capture an alert was folded into.
type Duplicate struct {
	Trigger   string `json:"trigger"`
	CaptureID string `json:"capture_id,omitempty"`
}

// RuleFailure is a rule that fired but could not start its capture.
type RuleFailure struct {
	Trigger string `json:"trigger"`
	Error   string `json:"error"`
}

func (s *Server) intake(w http.ResponseWriter, r *http.Request) {
	s.c.received.Add(1)
	// Bound the alerts being read and decoded at once: a burst waits here
	// instead of holding a body buffer per connection.
	t := time.NewTimer(s.cfg.IntakeWait)
	select {
	case s.inflight <- struct{}{}:
		t.Stop()
	case <-t.C:
		s.c.busy.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "alert intake busy; try again")
		return
	case <-r.Context().Done():
		t.Stop()
		return
	}
	defer func() { <-s.inflight }()

	body := s.readBody(w, r)
	if body == nil {
		s.c.invalid.Add(1)
		return
	}
	a, err := DecodeAlert(body)
	if err != nil {
		s.c.invalid.Add(1)
		s.log.Warn("alert refused", "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, "undecodable alert: "+err.Error())
		return
	}
	code, res := s.Handle(a)
	writeJSON(w, code, res)
}

// Handle runs one decoded alert through the rules, the dedup table and the
// engine, and returns the HTTP status that answers it: 201 when a capture
// started, 202 when acknowledged without one (no rule fired, or all were
// duplicates), 429 when the engine's cap refused, 422 when a rule fired but
// its capture could not start.
func (s *Server) Handle(a *Alert) (int, IntakeResult) {
	now := s.cfg.Now()
	if a.Time.IsZero() {
		a.Time = now
	}
	res := IntakeResult{Rule: a.Rule, Priority: a.Priority, Format: a.Format}
	fired, rejected := 0, 0
	rules := *s.rules.Load()
	for i := range rules {
		rule := &rules[i]
		if !rule.enabled() || !rule.Matches(a) {
			continue
		}
		spec, err := rule.Spec(a, s.cfg.Resolver)
		if errors.Is(err, errNoTarget) && rule.matchesAll() {
			continue // a catch-all rule only fires on alerts with a target
		}
		fired++
		if err != nil {
			s.log.Warn("trigger rule cannot capture this alert", "trigger", rule.Name, "alert_rule", a.Rule, "err", err)
			res.Errors = append(res.Errors, RuleFailure{Trigger: rule.Name, Error: err.Error()})
			if !rule.Continue {
				break
			}
			continue
		}
		// The capture's window starts Lookback before the event, not before
		// its delivery: add how late the alert arrived (up to a minute).
		if late := now.Sub(a.Time); late > 0 && late <= time.Minute {
			spec.Lookback = min(spec.Lookback+late, MaxLookback)
		}
		key := dedupKey(rule.Name, spec.KFL)
		var st Status
		prev, mine := s.dedup.claim(key)
		if mine {
			st, err = s.caps.Start(spec)
			s.dedup.settle(key, prev, st.ID, err)
		} else {
			select {
			case <-prev.done:
				err = prev.err
			case <-time.After(10 * time.Second):
				err = errors.New("timed out waiting for an identical alert's capture to start")
			}
		}
		if !mine && err == nil {
			res.Duplicates = append(res.Duplicates, Duplicate{Trigger: rule.Name, CaptureID: prev.id})
		} else {
			switch {
			case err == nil:
				s.c.started.Add(1)
				s.log.Info("capture started", "id", st.ID, "trigger", rule.Name, "alert_rule", a.Rule, "priority", a.Priority, "kfl", spec.KFL, "lookback", spec.Lookback, "duration", spec.Duration)
				res.Captures = append(res.Captures, st)
			case errors.Is(err, ErrTooMany):
				rejected++
				s.log.Warn("capture refused", "trigger", rule.Name, "alert_rule", a.Rule, "err", err)
				res.Errors = append(res.Errors, RuleFailure{Trigger: rule.Name, Error: "capture refused: " + err.Error()})
			default:
				s.log.Warn("capture failed to start", "trigger", rule.Name, "alert_rule", a.Rule, "kfl", spec.KFL, "err", err)
				res.Errors = append(res.Errors, RuleFailure{Trigger: rule.Name, Error: "start capture: " + err.Error()})
			}
		}
		if !rule.Continue {
			break
		}
	}
	switch {
	case fired == 0:
		s.c.unmatched.Add(1)
		s.log.Debug("alert matched no trigger rule", "alert_rule", a.Rule, "priority", a.Priority)
		res.Result = "unmatched"
		return http.StatusAccepted, res
	case len(res.Captures) > 0:
		s.c.matched.Add(1)
		res.Result = "started"
		return http.StatusCreated, res
	case rejected > 0:
		s.c.matched.Add(1)
		s.c.rejected.Add(1)
		res.Result = "rejected"
		return http.StatusTooManyRequests, res
	case len(res.Errors) > 0:
		s.c.matched.Add(1)
		s.c.failed.Add(1)
		res.Result = "failed"
		return http.StatusUnprocessableEntity, res
	default:
		s.c.matched.Add(1)
		s.c.deduplicated.Add(1)
		res.Result = "duplicate"
		return http.StatusAccepted, res
	}
}
