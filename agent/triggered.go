package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/names"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pipeline"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/trigger"
)

// TriggerLimits bound triggered captures.
type TriggerLimits struct {
	MaxConcurrent int           // captures running at once (default 4)
	MaxBytes      int64         // packet bytes of all running captures (default 1 GiB)
	MaxDuration   time.Duration // longest capture window (default 1h)
	MaxLookback   time.Duration // longest lookback (default 10m)
	History       int           // finished captures remembered for the API (default 1000)
}

// Triggers runs triggered captures; it implements trigger.Captures. Each
// capture has its own dissector (one worker) fed first with the lookback
// ring's packets since T − lookback, then with live packets until
// T + duration; the streams its query selects go into one repository
// trigger_<slug>_<unixSeconds>.tar.gz, sealed into the outbox like the
// continuous jobs' ones.
//
// The agent's feed loop drives it: Feed with every live packet, Tick now
// and then. Start, Stop, Get and List may be called from any goroutine
// (the API); starting and stopping take effect in the feed loop, so that a
// capture sees the lookback and the live packets exactly once, in order.
type Triggers struct {
	Lookback *Lookback
	Limits   TriggerLimits
	// Template is what every capture's job inherits.
	Template JobTemplate
	Log      *slog.Logger

	mu           sync.Mutex
	caps         map[string]*triggered
	order        []string // ids, oldest first
	pending      []*triggered
	active       []*triggered // touched only by the feed loop
	running      atomic.Int32
	Started      atomic.Uint64
	Rejected     atomic.Uint64
	Sealed       atomic.Uint64
	SealFailures atomic.Uint64
}

type triggered struct {
	id     string
	spec   trigger.Spec
	query  *kfl.Query
	pipe   *pipeline.Pipeline
	job    *Job
	status trigger.Status // guarded by Triggers.mu
	stop   atomic.Bool
}

// JobTemplate holds the Job fields triggered captures share.
type JobTemplate struct {
	Outbox   string
	Spool    *repo.Spool
	Snaplen  uint32
	Names    *names.History
	Content  func() repo.Content
	Stats    func() map[string]uint64
	OnSealed func(Sealed)
	Verbose  bool
}

var _ trigger.Captures = (*Triggers)(nil)

func (t *Triggers) defaults() {
	if t.Limits.MaxConcurrent <= 0 {
		t.Limits.MaxConcurrent = 4
	}
	if t.Limits.MaxBytes <= 0 {
		t.Limits.MaxBytes = 1 << 30
	}
	if t.Limits.MaxDuration <= 0 {
		t.Limits.MaxDuration = time.Hour
	}
	if t.Limits.MaxLookback <= 0 {
		t.Limits.MaxLookback = 10 * time.Minute
	}
	if t.Limits.History <= 0 {
		t.Limits.History = 1000
	}
	if t.caps == nil {
		t.caps = map[string]*triggered{}
	}
}

var slugUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes a name safe for the archive name: lowercase letters, digits
// and dashes, at most 40 characters.
func slug(name string) string {
	s := strings.Trim(slugUnsafe.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	if s == "" {
		s = "capture"
	}
	return s
}

// Start implements trigger.Captures.
func (t *Triggers) Start(spec trigger.Spec) (trigger.Status, error) {
	q, err := kfl.Compile(spec.KFL)
	if err != nil {
		t.Rejected.Add(1)
		return trigger.Status{}, err
	}
	if spec.Duration <= 0 {
		spec.Duration = 30 * time.Second
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.defaults()
	if spec.Duration > t.Limits.MaxDuration {
		t.Rejected.Add(1)
		return trigger.Status{}, fmt.Errorf("duration %v is over the limit %v", spec.Duration, t.Limits.MaxDuration)
	}
	if spec.Lookback < 0 || spec.Lookback > t.Limits.MaxLookback {
		t.Rejected.Add(1)
		return trigger.Status{}, fmt.Errorf("lookback %v is outside 0..%v", spec.Lookback, t.Limits.MaxLookback)
	}
	if int(t.running.Load()) >= t.Limits.MaxConcurrent {
		t.Rejected.Add(1)
		return trigger.Status{}, fmt.Errorf("%w: %d running (limit %d)", trigger.ErrTooMany, t.running.Load(), t.Limits.MaxConcurrent)
	}
	idb := make([]byte, 6)
	rand.Read(idb)
	now := time.Now()
	name := spec.Name
	if name == "" {
		name = spec.Rule
	}
	c := &triggered{id: hex.EncodeToString(idb), spec: spec, query: q}
	c.status = trigger.Status{
		ID: c.id, Name: slug(name), KFL: q.String(), Rule: spec.Rule, Labels: spec.Labels,
		State: trigger.StateRunning, Started: now, From: now.Add(-spec.Lookback), Until: now.Add(spec.Duration),
	}
	t.caps[c.id] = c
	t.order = append(t.order, c.id)
	t.pending = append(t.pending, c)
	t.running.Add(1)
	t.Started.Add(1)
	t.forget()
	t.Log.Info("triggered capture started", "id", c.id, "name", c.status.Name, "kfl", spec.KFL, "lookback", spec.Lookback, "duration", spec.Duration, "rule", spec.Rule)
	return c.status, nil
}

// forget drops the oldest finished captures beyond the history limit.
func (t *Triggers) forget() {
	for len(t.order) > t.Limits.History {
		id := t.order[0]
		if c := t.caps[id]; c != nil && (c.status.State == trigger.StateRunning || c.status.State == trigger.StateSealing) {
			break
		}
		delete(t.caps, id)
		t.order = t.order[1:]
	}
}

// List implements trigger.Captures.
func (t *Triggers) List() []trigger.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]trigger.Status, 0, len(t.order))
	for _, id := range t.order {
		out = append(out, t.statusLocked(t.caps[id]))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Get implements trigger.Captures.
func (t *Triggers) Get(id string) (trigger.Status, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.caps[id]
	if !ok {
		return trigger.Status{}, trigger.ErrNotFound
	}
	return t.statusLocked(c), nil
}

func (t *Triggers) statusLocked(c *triggered) trigger.Status {
	s := c.status
	if s.State == trigger.StateRunning && c.job != nil {
		s.Streams, s.Bytes = c.job.Open()
	}
	return s
}

// Stop implements trigger.Captures: the capture window closes at the next
// Tick and the repository seals.
func (t *Triggers) Stop(id string) (trigger.Status, error) {
	t.mu.Lock()
	c, ok := t.caps[id]
	t.mu.Unlock()
	if !ok {
		return trigger.Status{}, trigger.ErrNotFound
	}
	c.stop.Store(true)
	return t.Get(id)
}

// MarkDelivered records the URL of a delivered trigger archive.
func (t *Triggers) MarkDelivered(archive, url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.caps {
		if c.status.Repository == archive {
			c.status.URL = url
		}
	}
}

// Feed hands a live packet to every running capture. Feed loop only.
func (t *Triggers) Feed(p *packet.Packet) {
	for _, c := range t.active {
		c.pipe.Feed(p)
	}
}

// Tick starts pending captures (replaying the lookback into them) and
// closes the windows that ended. Feed loop only.
func (t *Triggers) Tick(now time.Time) {
	t.mu.Lock()
	t.defaults()
	pending := t.pending
	t.pending = nil
	t.mu.Unlock()
	for _, c := range pending {
		t.begin(c)
	}
	kept := t.active[:0]
	for _, c := range t.active {
		t.mu.Lock()
		until := c.status.Until
		t.mu.Unlock()
		if now.Before(until) && !c.stop.Load() && t.bytes() <= t.Limits.MaxBytes {
			kept = append(kept, c)
			continue
		}
		t.end(c, now)
	}
	t.active = kept
}

// bytes is what the running captures hold.
func (t *Triggers) bytes() int64 {
	var n int64
	for _, c := range t.active {
		_, b := c.job.Open()
		n += b
	}
	return n
}

func (t *Triggers) begin(c *triggered) {
	tmpl := t.Template
	c.job = &Job{
		Index: -1, Query: c.spec.KFL, Prefix: "trigger",
		Limits: JobLimits{Lifetime: 365 * 24 * time.Hour, MaxStreams: 1 << 30},
		Outbox: tmpl.Outbox, Spool: tmpl.Spool, Snaplen: tmpl.Snaplen, Names: tmpl.Names, Stats: tmpl.Stats,
		Log: t.Log, Verbose: tmpl.Verbose,
		ArchiveName: func(unix int64) string {
			t.mu.Lock()
			defer t.mu.Unlock()
			return repo.Name{Kind: repo.KindTrigger, Slug: c.status.Name, Unix: unix}.String()
		},
		Content: func() repo.Content {
			var content repo.Content
			if tmpl.Content != nil {
				content = tmpl.Content()
			}
			t.mu.Lock()
			st := c.status
			t.mu.Unlock()
			tr := &repo.Trigger{
				ID: c.id, Name: st.Name, KFL: c.spec.KFL, Rule: c.spec.Rule, Labels: c.spec.Labels,
				Started: st.Started.UTC(), Lookback: c.spec.Lookback.String(),
				Duration: c.spec.Duration.String(), From: st.From.UTC(),
			}
			if c.spec.Alert != nil {
				alert, err := json.Marshal(c.spec.Alert)
				if err != nil {
					// Only an alert whose raw document is not JSON fails, and
					// DecodeAlert refuses those; the capture is kept anyway.
					t.Log.Error("content.json: alert left out", "id", c.id, "err", err)
				}
				tr.Alert = alert
			}
			content.Trigger = tr
			return content
		},
		OnSealed: func(s Sealed) {
			t.Sealed.Add(1)
			t.mu.Lock()
			c.status.State = trigger.StateSealed
			c.status.Repository = baseName(s.Path)
			c.status.Streams, c.status.Bytes = s.Streams, s.Bytes
			t.mu.Unlock()
			if tmpl.OnSealed != nil {
				tmpl.OnSealed(s)
			}
		},
		OnSealFailed: func(err error) {
			t.SealFailures.Add(1)
			t.mu.Lock()
			c.status.State, c.status.Error = trigger.StateFailed, err.Error()
			t.mu.Unlock()
		},
	}
	c.pipe = pipeline.New(pipeline.Config{
		Dissect:    dissect.Config{Workers: 1, StreamRetainBytes: 4 << 20},
		Selections: []pipeline.Selection{{Query: c.query, Sink: c.job}},
	})
	t.mu.Lock()
	from := c.status.From
	t.mu.Unlock()
	replayed := 0
	// Replay even without a lookback: packets that came between Start and
	// this feed-loop turn are in the ring and belong to the capture.
	if t.Lookback != nil {
		if oldest := t.Lookback.Oldest(); !oldest.IsZero() && oldest.After(from) {
			t.mu.Lock()
			c.status.From = oldest // the ring did not reach that far back
			t.mu.Unlock()
		}
		t.Lookback.Since(from, func(p *packet.Packet) {
			c.pipe.Feed(p)
			replayed++
		})
	}
	t.Log.Info("triggered capture replayed its lookback", "id", c.id, "packets", replayed, "from", from)
	t.active = append(t.active, c)
}

func (t *Triggers) end(c *triggered, now time.Time) {
	t.mu.Lock()
	c.status.State = trigger.StateSealing
	if now.Before(c.status.Until) {
		c.status.Until = now
	}
	t.mu.Unlock()
	t.running.Add(-1)
	go func() {
		c.pipe.Close() // pending messages become entries: they may still select streams
		streams, _ := c.job.Open()
		c.job.Flush()
		if streams == 0 {
			t.mu.Lock()
			c.status.State = trigger.StateEmpty
			t.mu.Unlock()
		}
		t.Log.Info("triggered capture ended", "id", c.id, "streams", streams)
	}()
}

// Close ends every capture (shutdown) and waits for their seals.
func (t *Triggers) Close() {
	var wg sync.WaitGroup
	for _, c := range t.active {
		t.mu.Lock()
		c.status.State = trigger.StateSealing
		t.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.pipe.Close()
			c.job.Flush()
		}()
	}
	t.active = nil
	wg.Wait()
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
