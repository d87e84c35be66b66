package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kflcap/kflcap/repo"
	"github.com/slack-go/slack"
)

// SlackOptions configure a Notifier. With Webhook, messages go to that
// incoming webhook; with Token and Channel, through chat.postMessage. Both
// may be set; with neither, NewNotifier returns nil and nothing is sent.
type SlackOptions struct {
	Webhook string
	Token   string
	Channel string
	// AttachMaxBytes > 0 attaches archives up to that size to the
	// chat.postMessage announcement (files.getUploadURLExternal and
	// files.completeUploadExternal). It needs Token and Channel.
	AttachMaxBytes int64
	// Sink is the sink whose deliveries are announced ("s3", or "local"
	// when there is no S3 sink).
	Sink string
	// APIURL replaces https://slack.com/api/ (tests).
	APIURL string
	// Attempts per message (default 3), the first retry after Backoff
	// (default 1s), doubling.
	Attempts int
	Backoff  time.Duration
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	Log     *slog.Logger
}

// Notifier announces deliveries on Slack from its own goroutine: OnDelivery
// only queues, so a slow or failing Slack never holds back an upload. A
// message that still fails after its attempts is logged and dropped; so is
// one that finds the queue full (Dropped counts both).
type Notifier struct {
	o      SlackOptions
	api    *slack.Client
	http   *http.Client
	queue  chan Delivery
	done   chan struct{}
	closed sync.Once

	Sent, Failed, Dropped atomic.Int64
}

// NewNotifier returns nil when the options name no Slack destination.
// Start it with Run.
func NewNotifier(o SlackOptions) *Notifier {
	if o.Webhook == "" && (o.Token == "" || o.Channel == "") {
		return nil
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{o: o, http: &http.Client{Timeout: o.Timeout}, queue: make(chan Delivery, 256), done: make(chan struct{})}
	if o.Token != "" && o.Channel != "" {
		opts := []slack.Option{slack.OptionHTTPClient(n.http)}
		if o.APIURL != "" {
			opts = append(opts, slack.OptionAPIURL(strings.TrimRight(o.APIURL, "/")+"/"))
		}
		n.api = slack.New(o.Token, opts...)
	}
	return n
}

// OnDelivery queues an announcement of a successful delivery to the
// announced sink; it never blocks. Use it as (part of) Outbox.OnDelivery.
func (n *Notifier) OnDelivery(d Delivery) {
	if n == nil || d.Err != nil || (n.o.Sink != "" && d.Sink != n.o.Sink) {
		return
	}
	select {
	case n.queue <- d:
	default:
		n.Dropped.Add(1)
		n.o.Log.Warn("slack: queue full, announcement dropped", "archive", d.Archive.Name)
	}
}

// Run sends queued announcements until ctx ends, then sends what is queued
// for at most a few seconds more.
func (n *Notifier) Run(ctx context.Context) {
	if n == nil {
		return
	}
	defer close(n.done)
	for {
		select {
		case d := <-n.queue:
			n.send(ctx, d)
		case <-ctx.Done():
			drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for {
				select {
				case d := <-n.queue:
					n.send(drain, d)
				default:
					return
				}
			}
		}
	}
}

// Wait waits for Run to return.
func (n *Notifier) Wait() {
	if n != nil {
		<-n.done
	}
}

func (n *Notifier) send(ctx context.Context, d Delivery) {
	text := Message(d)
	var errs []error
	if n.o.Webhook != "" {
		if err := n.retry(ctx, func(ctx context.Context) error {
			return slack.PostWebhookCustomHTTPContext(ctx, n.o.Webhook, n.http, &slack.WebhookMessage{Text: text})
		}); err != nil {
			errs = append(errs, fmt.Errorf("webhook: %w", err))
		}
	}
	if n.api != nil {
		if err := n.retry(ctx, func(ctx context.Context) error {
			_, _, err := n.api.PostMessageContext(ctx, n.o.Channel, slack.MsgOptionText(text, false))
			return err
		}); err != nil {
			errs = append(errs, fmt.Errorf("chat.postMessage: %w", err))
		} else if n.o.AttachMaxBytes > 0 && d.Archive.Size <= n.o.AttachMaxBytes {
			if err := n.retry(ctx, func(ctx context.Context) error { return n.attach(ctx, d) }); err != nil {
				errs = append(errs, fmt.Errorf("file upload: %w", err))
			}
		}
	}
	if len(errs) > 0 {
		n.Failed.Add(1)
		n.o.Log.Warn("slack: announcement failed", "archive", d.Archive.Name, "err", n.redact(errors.Join(errs...)))
		return
	}
	n.Sent.Add(1)
}

func (n *Notifier) attach(ctx context.Context, d Delivery) error {
	f, err := os.Open(d.Archive.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = n.api.UploadFileContext(ctx, slack.UploadFileParameters{
		Reader: f, FileSize: int(d.Archive.Size), Filename: d.Archive.Name, Title: d.Archive.Name, Channel: n.o.Channel,
	})
	return err
}

// retry calls f up to Attempts times, honouring Slack's Retry-After.
func (n *Notifier) retry(ctx context.Context, f func(context.Context) error) error {
	backoff := n.o.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, n.o.Timeout)
		err = f(actx)
		cancel()
		if err == nil || attempt >= n.o.Attempts || ctx.Err() != nil {
			return err
		}
		wait := backoff/2 + rand.N(backoff)
		var rl *slack.RateLimitedError
		if errors.As(err, &rl) && rl.RetryAfter > 0 {
			wait = min(rl.RetryAfter, time.Minute)
		}
		backoff *= 2
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// redact removes the webhook URL (a credential) and the token from an
// error's text: net/http quotes the URL it failed to reach.
func (n *Notifier) redact(err error) error {
	s := err.Error()
	for _, secret := range []string{n.o.Webhook, n.o.Token} {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return errors.New(s)
}

// Message is the announcement's text: what a responder needs to decide
// whether to open the archive.
func Message(d Delivery) string {
	a := d.Archive
	c := a.Content
	var b strings.Builder
	if t := c.Trigger; t != nil {
		fmt.Fprintf(&b, "*kflcap: triggered capture* `%s`\n", a.Name)
		if t.Rule != "" {
			fmt.Fprintf(&b, "Trigger rule: %s\n", t.Rule)
		} else {
			fmt.Fprintf(&b, "Capture: %s (API)\n", t.Name)
		}
		fmt.Fprintf(&b, "KFL: `%s`\n", t.KFL)
		// The alert is whatever the sender sent, decoded by the trigger
		// package: read it loosely, showing what is there.
		var alert map[string]any
		if json.Unmarshal(t.Alert, &alert) == nil && alert != nil {
			fmt.Fprintf(&b, "Alert: %s (%s)\n", field(alert, "rule"), field(alert, "priority"))
			if f, ok := alert["output_fields"].(map[string]any); ok {
				if pod, ns := field(f, "k8s.pod.name"), field(f, "k8s.ns.name"); pod != "" || ns != "" {
					fmt.Fprintf(&b, "Pod: %s/%s\n", ns, pod)
				}
			}
			if out := field(alert, "output"); out != "" {
				fmt.Fprintf(&b, "> %s\n", out)
			}
		}
	} else {
		fmt.Fprintf(&b, "*kflcap: new PCAP repository* `%s`\n", a.Name)
		fmt.Fprintf(&b, "KFL #%d: `%s`\n", c.KFLIndex, c.KFLQuery)
	}
	if n := c.Node; n != nil {
		fmt.Fprintf(&b, "Node: %s (%s), cluster %s\n", n.Name, n.IP, n.Cluster)
	}
	fmt.Fprintf(&b, "Streams: %d, size: %s\n", len(c.L4Streams), humanBytes(a.Size))
	if !c.Opened.IsZero() {
		fmt.Fprintf(&b, "Time span: %s – %s\n", c.Opened.UTC().Format(repo.TimeFormat), c.Time)
	} else if c.Time != "" {
		fmt.Fprintf(&b, "Time: %s\n", c.Time)
	}
	fmt.Fprintf(&b, "URL: %s", d.URL)
	return b.String()
}

// field is m[k] as text, "" when absent or null.
func field(m map[string]any, k string) string {
	if v, ok := m[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
