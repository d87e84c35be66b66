package upload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/netnstest"
	"github.com/kflcap/kflcap/repo"
)

// slackStandIn stands in for Slack's Web API and for an incoming webhook,
// recording what arrives.
type slackStandIn struct {
	srv *httptest.Server
	mu  sync.Mutex
	// Recorded requests.
	webhooks  []map[string]any
	posts     []map[string]string // chat.postMessage form values
	auth      []string            // Authorization headers of API calls
	uploaded  [][]byte            // file bodies
	completed []map[string]string
	// failFirst makes the first n webhook calls answer 500.
	failFirst atomic.Int32
	hang      chan struct{} // when non-nil, every request waits for it
}

func newSlackStandIn(t *testing.T) *slackStandIn {
	s := &slackStandIn{}
	mux := http.NewServeMux()
	mux.HandleFunc("/hooks/T0/B0/secret-hook", func(w http.ResponseWriter, r *http.Request) {
		if s.hang != nil {
			<-s.hang
		}
		if s.failFirst.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.mu.Lock()
		s.webhooks = append(s.webhooks, m)
		s.mu.Unlock()
		io.WriteString(w, "ok")
	})
	form := func(r *http.Request) map[string]string {
		r.ParseForm()
		m := map[string]string{}
		for k, v := range r.Form {
			m[k] = v[0]
		}
		s.mu.Lock()
		auth := r.Header.Get("Authorization")
		if tok := r.Form.Get("token"); tok != "" {
			auth = "Bearer " + tok
		}
		s.auth = append(s.auth, auth)
		s.mu.Unlock()
		return m
	}
	mux.HandleFunc("/api/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
		m := form(r)
		s.mu.Lock()
		s.posts = append(s.posts, m)
		s.mu.Unlock()
		fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":"1.1"}`, m["channel"])
	})
	mux.HandleFunc("/api/files.getUploadURLExternal", func(w http.ResponseWriter, r *http.Request) {
		form(r)
		fmt.Fprintf(w, `{"ok":true,"upload_url":%q,"file_id":"F1"}`, s.srv.URL+"/upload/F1")
	})
	mux.HandleFunc("/upload/F1", func(w http.ResponseWriter, r *http.Request) {
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			if p.FileName() != "" {
				b, _ := io.ReadAll(p)
				s.mu.Lock()
				s.uploaded = append(s.uploaded, b)
				s.mu.Unlock()
			}
		}
		io.WriteString(w, "OK - 1")
	})
	mux.HandleFunc("/api/files.completeUploadExternal", func(w http.ResponseWriter, r *http.Request) {
		m := form(r)
		s.mu.Lock()
		s.completed = append(s.completed, m)
		s.mu.Unlock()
		io.WriteString(w, `{"ok":true,"files":[{"id":"F1","title":"x"}]}`)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *slackStandIn) webhookURL() string { return s.srv.URL + "/hooks/T0/B0/secret-hook" }

func testDelivery(t *testing.T) Delivery {
	a := makeArchive(t, t.TempDir(), "kfl_1_kflcap_1678808543.tar.gz", 1, "dns", 2000)
	return Delivery{Archive: a, Sink: "s3", URL: "https://b.s3.us-east-2.amazonaws.com/c1_10.0.0.1/" + a.Name}
}

// run starts n and returns a function that stops it and waits.
func run(n *Notifier) func() {
	ctx, cancel := context.WithCancel(context.Background())
	go n.Run(ctx)
	return func() { cancel(); n.Wait() }
}

func checkMessage(t *testing.T, text string, d Delivery) {
	t.Helper()
	for _, want := range []string{
		d.Archive.Name, "KFL #1", "`dns`", "Node: n1 (10.0.0.1), cluster c1", "Streams: 1",
		"size: " + humanBytes(d.Archive.Size), "Tue, 14 Mar 2023 15:38:20 GMT – Tue, 14 Mar 2023 15:38:26 GMT", d.URL,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("message lacks %q:\n%s", want, text)
		}
	}
}

func TestSlackWebhook(t *testing.T) {
	st := newSlackStandIn(t)
	n := NewNotifier(SlackOptions{Webhook: st.webhookURL(), Sink: "s3", Backoff: 10 * time.Millisecond})
	stop := run(n)
	d := testDelivery(t)
	n.OnDelivery(d)
	n.OnDelivery(Delivery{Archive: d.Archive, Sink: "local", URL: "file:///x"})     // another sink: not announced
	n.OnDelivery(Delivery{Archive: d.Archive, Sink: "s3", Err: fmt.Errorf("boom")}) // failures: not announced
	netnstest.WaitUntil(t, 10*time.Second, "the webhook", func() bool { return n.Sent.Load() == 1 })
	stop()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.webhooks) != 1 || len(st.posts) != 0 {
		t.Fatalf("%d webhook calls, %d postMessage calls; want 1 and 0", len(st.webhooks), len(st.posts))
	}
	checkMessage(t, fmt.Sprint(st.webhooks[0]["text"]), d)
}

func TestSlackPostMessageAndAttach(t *testing.T) {
	st := newSlackStandIn(t)
	n := NewNotifier(SlackOptions{Token: "xoxb-secret-token", Channel: "C123", AttachMaxBytes: 1 << 20, APIURL: st.srv.URL + "/api", Sink: "s3"})
	stop := run(n)
	d := testDelivery(t)
	n.OnDelivery(d)
	big := d
	big.Archive.Size = 2 << 20 // above the limit: announced, not attached
	big.Archive.Name = "kfl_1_kflcap_big.tar.gz"
	n.OnDelivery(big)
	netnstest.WaitUntil(t, 10*time.Second, "two announcements", func() bool { return n.Sent.Load() == 2 })
	stop()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.posts) != 2 {
		t.Fatalf("%d postMessage calls, want 2", len(st.posts))
	}
	if st.posts[0]["channel"] != "C123" {
		t.Errorf("channel %q", st.posts[0]["channel"])
	}
	checkMessage(t, st.posts[0]["text"], d)
	for _, a := range st.auth {
		if a != "Bearer xoxb-secret-token" {
			t.Errorf("authorization %q", a)
		}
	}
	want, _ := os.ReadFile(d.Archive.Path)
	if len(st.uploaded) != 1 || !bytes.Equal(st.uploaded[0], want) {
		t.Errorf("%d files uploaded; want exactly the small archive", len(st.uploaded))
	}
	if len(st.completed) != 1 || st.completed[0]["channel_id"] != "C123" || !strings.Contains(st.completed[0]["files"], "F1") {
		t.Errorf("completeUploadExternal: %v", st.completed)
	}
}

// A webhook that fails twice gets the message on the third attempt; one
// that always fails is logged, without the webhook URL (a credential).
func TestSlackRetries(t *testing.T) {
	st := newSlackStandIn(t)
	st.failFirst.Store(2)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	n := NewNotifier(SlackOptions{Webhook: st.webhookURL(), Backoff: 10 * time.Millisecond, Log: log})
	stop := run(n)
	d := testDelivery(t)
	n.OnDelivery(d)
	netnstest.WaitUntil(t, 10*time.Second, "the retried webhook", func() bool { return n.Sent.Load() == 1 })
	st.failFirst.Store(100)
	n.OnDelivery(d)
	netnstest.WaitUntil(t, 10*time.Second, "the failure", func() bool { return n.Failed.Load() == 1 })
	stop()
	if !strings.Contains(logs.String(), "slack: announcement failed") {
		t.Errorf("failure not logged:\n%s", logs.String())
	}
	// An unreachable webhook: net/http quotes the URL in its error.
	logs.Reset()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/hooks/T0/B0/secret-hook"
	dead.Close()
	n = NewNotifier(SlackOptions{Webhook: deadURL, Attempts: 2, Backoff: 10 * time.Millisecond, Log: log})
	stop = run(n)
	n.OnDelivery(d)
	netnstest.WaitUntil(t, 10*time.Second, "the failure", func() bool { return n.Failed.Load() == 1 })
	stop()
	if strings.Contains(logs.String(), "secret-hook") || !strings.Contains(logs.String(), "[redacted]") {
		t.Errorf("the log shows the webhook or is not redacted:\n%s", logs.String())
	}
}

// No Slack settings: no notifier, and nothing is sent.
func TestSlackNoSettings(t *testing.T) {
	n := NewSlackNotifier(Options{S3: S3Options{Bucket: "b"}}, nil)
	if n != nil {
		t.Fatal("a notifier without Slack settings")
	}
	n.OnDelivery(testDelivery(t)) // a nil notifier is a no-op
	n.Run(context.Background())
	n.Wait()
	if NewNotifier(SlackOptions{Token: "x"}) != nil {
		t.Error("a token without a channel makes a notifier")
	}
}

// A Slack that hangs holds back no delivery.
func TestSlackDownDoesNotDelayUploads(t *testing.T) {
	st := newSlackStandIn(t)
	st.hang = make(chan struct{})
	n := NewNotifier(SlackOptions{Webhook: st.webhookURL(), Sink: "local", Timeout: 30 * time.Second})
	stop := run(n)
	defer stop()
	defer close(st.hang) // before stop: let the queued announcements go

	dir := t.TempDir()
	ob, err := NewOutbox(filepath.Join(dir, "outbox"), []Sink{&LocalSink{Dir: filepath.Join(dir, "repos")}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ob.OnDelivery = n.OnDelivery
	for i := range 5 {
		makeArchive(t, ob.Dir, fmt.Sprintf("kfl_0_kflcap_%d.tar.gz", i), 0, "dns", 1000)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if !ob.Drain(ctx) {
		t.Fatal("outbox not drained")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("delivering 5 archives took %v with Slack hanging", took)
	}
	if got, _ := filepath.Glob(filepath.Join(dir, "repos", "*.tar.gz")); len(got) != 5 {
		t.Errorf("%d archives delivered, want 5", len(got))
	}
}

func TestNewSinks(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	names := func(ss []Sink) string {
		var n []string
		for _, s := range ss {
			n = append(n, s.Name())
		}
		return strings.Join(n, ",")
	}
	ctx := context.Background()
	node := Options{Cluster: "c1", NodeIP: "10.0.0.1", LocalDir: t.TempDir()}
	for _, tc := range []struct {
		s3        S3Options
		keepLocal bool
		want      string
	}{
		{want: "local"},
		{s3: S3Options{Bucket: "b", Endpoint: "http://127.0.0.1:9000"}, want: "s3"},
		{s3: S3Options{Bucket: "b", Region: "eu-west-1"}, keepLocal: true, want: "s3,local"},
	} {
		o := node
		o.S3, o.KeepLocal = tc.s3, tc.keepLocal
		ss, err := NewSinks(ctx, o, nil)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if got := names(ss); got != tc.want {
			t.Errorf("%+v: sinks %s, want %s", tc, got, tc.want)
		}
	}
	o := node
	o.S3 = S3Options{Bucket: "b", Region: "eu-west-1", Prefix: "ignored"}
	ss, _ := NewSinks(ctx, o, nil)
	if u := ss[0].(*S3Sink).URL(ss[0].(*S3Sink).Key("x.tar.gz")); u != "https://b.s3.eu-west-1.amazonaws.com/c1_10.0.0.1/x.tar.gz" {
		t.Errorf("url %s", u)
	}
	if _, err := NewSinks(ctx, Options{S3: S3Options{Bucket: "b", SSE: "aes"}}, nil); err == nil {
		t.Error("a bad sse made a sink")
	}
	o = node
	o.Slack = SlackOptions{Webhook: "http://127.0.0.1:1/x"}
	if n := NewSlackNotifier(o, nil); n == nil || n.o.Sink != "local" {
		t.Errorf("webhook without a bucket: %+v", n)
	}
	o.S3.Bucket = "b"
	if n := NewSlackNotifier(o, nil); n == nil || n.o.Sink != "s3" {
		t.Errorf("webhook with a bucket: %+v", n)
	}
}

// A triggered capture's message quotes the rule, the alert's priority, the
// pod and namespace, and the alert's output line.
func TestMessageTrigger(t *testing.T) {
	d := Delivery{URL: "s3://b/k", Archive: Archive{Name: "trigger_redirect_1.tar.gz", Size: 2048, Content: repo.Content{
		L4Streams: []string{"000000000001_tcp.pcap"},
		Time:      "Tue, 14 Mar 2023 18:46:13 GMT",
		Trigger: &repo.Trigger{
			Name: "redirect", Rule: "falco-network", KFL: `src.ip == "10.0.0.9"`,
			Alert: json.RawMessage(`{"rule": "Redirect STDOUT/STDIN to Network Connection in Container", "priority": "Notice",
				"output": "Redirect stdout/stdin to network connection (gparent=bash ...)",
				"output_fields": {"k8s.pod.name": "web-1", "k8s.ns.name": "shop"}}`),
		},
	}}}
	msg := Message(d)
	for _, want := range []string{"triggered capture", "Trigger rule: falco-network", "Redirect STDOUT/STDIN to Network Connection in Container (Notice)",
		"Pod: shop/web-1", "> Redirect stdout/stdin to network connection", "URL: s3://b/k", "Streams: 1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}
