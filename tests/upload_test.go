package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/miniotest"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// The agent runs in namespace A and cannot reach the root namespace's
// loopback, so MinIO runs on A's loopback; the AWS CLI, the independent
// client, runs there too. The agent captures "any" but lo, so its uploads
// are not in its own captures.

const (
	bucket    = "pcaps"
	keyPrefix = "e2e_10.99.0.1" // <cluster>_<nodeIP> of writeAgentConfig
)

// s3Config is the kflPcapS3 part for the S3 sink: archives also stay in
// local.dir (keepLocal), as the reference for the byte comparison.
func s3Config(srv *miniotest.Server, secret, extra string) string {
	return fmt.Sprintf(`  maxDuration: 2s
  awsRegion: us-east-1
  s3Bucket: %s
  s3Endpoint: %s
  awsAccessKeyId: %s
  awsSecretAccessKey: %s
  keepLocal: true
%s`, bucket, srv.Endpoint, miniotest.AccessKey, secret, extra)
}

// traffic sends a DNS query (and now and then an HTTP request answered
// with a 500) every interval from A until stop is called.
func traffic(p *netnstest.Pair, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(interval):
			}
			netnstest.Output(p.A, "dig", "+tries=1", "+time=1", "@"+p.IPB, fmt.Sprintf("t%d.shop.example.test", i))
			if i%5 == 0 {
				netnstest.Output(p.A, "curl", "-sS", "-o", "/dev/null", "--max-time", "2", "http://"+p.IPB+":8080/status/500")
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// startAgentOnly runs the agent in A without the tcpdump oracle.
func startAgentOnly(t *testing.T, p *netnstest.Pair, cfgPath string, args ...string) *proc {
	t.Helper()
	return startAgentAt(t, p, metricsAddr, cfgPath, args...)
}

// startAgentAt is startAgentOnly for an agent whose metrics.listen is addr.
func startAgentAt(t *testing.T, p *netnstest.Pair, addr, cfgPath string, args ...string) *proc {
	t.Helper()
	a := start(t, "ip", append([]string{"netns", "exec", p.A, kflcapBin, "agent", "--config", cfgPath}, args...)...)
	waitAgentUp(t, a, p.A, addr)
	return a
}

// s3Uploads are the metric labels of an agent's deliveries to the S3 sink
// that the store accepted.
var s3Uploads = []string{`sink="s3"`, `result="success"`}

func stopAgent(t *testing.T, a *proc) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.wait(t, 40*time.Second); code != 0 {
		t.Fatalf("agent exited %d:\n%s", code, a.Stderr())
	}
}

// waitOutboxEmpty waits until no archive waits in the spool's outbox.
func waitOutboxEmpty(t *testing.T, dir string, timeout time.Duration, agent *proc) {
	t.Helper()
	netnstest.WaitFor(t, timeout, func() error {
		if left, _ := filepath.Glob(filepath.Join(dir, "spool", "outbox", "*.tar.gz")); len(left) > 0 {
			return fmt.Errorf("%d archives still in the outbox; agent:\n%s", len(left), tail(agent.Stderr(), 40))
		}
		return nil
	})
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

type s3Object struct {
	Key  string
	Size int64
}

// listBucket lists the bucket with the AWS CLI.
func listBucket(t *testing.T, srv *miniotest.Server) []s3Object {
	t.Helper()
	out := srv.AWS(t, "s3api", "list-objects-v2", "--bucket", bucket, "--output", "json")
	var r struct{ Contents []s3Object }
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("list-objects-v2: %v\n%s", err, out)
		}
	}
	return r.Contents
}

type progressEntry struct {
	File     string `json:"file"`
	KFLIndex *int   `json:"kfl_index"`
	KFLQuery string `json:"kfl_query"`
	S3URL    string `json:"s3_url"`
	Time     string `json:"time"`
}

// checkBucket downloads every archive in the bucket with the AWS CLI and
// compares it byte for byte with the agent's local copy (keepLocal); it
// checks that the progress log lists every archive exactly once, in the
// order the agents (in the order they ran) confirmed them. It returns the
// number of archives.
func checkBucket(t *testing.T, srv *miniotest.Server, dir string, agents ...*proc) int {
	t.Helper()
	local := filepath.Join(dir, "repos")
	sealed, _ := filepath.Glob(filepath.Join(local, "*.tar.gz"))
	if len(sealed) == 0 {
		t.Fatal("the agent sealed no archive")
	}
	objs := listBucket(t, srv)
	inBucket := map[string]bool{}
	for _, o := range objs {
		if !strings.HasPrefix(o.Key, keyPrefix+"/") {
			t.Errorf("object %s outside %s/", o.Key, keyPrefix)
			continue
		}
		inBucket[strings.TrimPrefix(o.Key, keyPrefix+"/")] = true
	}
	if !inBucket["progress_log.json"] {
		t.Fatalf("no %s/progress_log.json in the bucket; objects: %v", keyPrefix, objs)
	}
	if len(objs) != len(sealed)+1 {
		t.Errorf("%d objects in the bucket, want %d archives and the progress log", len(objs), len(sealed))
	}
	dl := t.TempDir()
	srv.AWS(t, "s3", "cp", "--recursive", "--only-show-errors", "s3://"+bucket+"/"+keyPrefix+"/", dl+"/")
	for _, path := range sealed {
		name := filepath.Base(path)
		want, _ := os.ReadFile(path)
		got, err := os.ReadFile(filepath.Join(dl, name))
		if err != nil {
			t.Errorf("%s sealed but not in the bucket", name)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the bucket's copy differs from the sealed archive (%d vs %d bytes)", name, len(got), len(want))
		}
	}
	// The downloaded archives are repositories of the right shape.
	for _, r := range readRepos(t, dl) {
		idx := int(r.content["kfl_index"].(float64))
		checkShape(t, r, idx, []string{"http and response.status == 500", "dns"}[idx])
	}

	var s3Log, localLog []progressEntry
	b, _ := os.ReadFile(filepath.Join(dl, "progress_log.json"))
	if err := json.Unmarshal(b, &s3Log); err != nil {
		t.Fatalf("progress log: %v\n%s", err, b)
	}
	b, _ = os.ReadFile(filepath.Join(local, "progress_log.json"))
	if err := json.Unmarshal(b, &localLog); err != nil {
		t.Fatalf("local progress log: %v", err)
	}
	count := map[string]int{}
	for _, e := range s3Log {
		count[e.File]++
		wantURL := srv.Endpoint + "/" + bucket + "/" + keyPrefix + "/" + e.File
		if e.S3URL != wantURL || e.KFLIndex == nil || e.KFLQuery == "" {
			t.Errorf("progress entry %+v (want s3_url %s)", e, wantURL)
		}
		if _, err := time.Parse("Mon, 02 Jan 2006 15:04:05 GMT", e.Time); err != nil {
			t.Errorf("progress entry time %q: %v", e.Time, err)
		}
	}
	for _, path := range sealed {
		if n := count[filepath.Base(path)]; n != 1 {
			t.Errorf("%s is %d times in the progress log", filepath.Base(path), n)
		}
	}
	if len(s3Log) != len(sealed) {
		t.Errorf("progress log has %d entries for %d archives", len(s3Log), len(sealed))
	}
	// Upload order: entries are appended as the store accepts each
	// archive, so their times never go back. (With several archives in
	// flight at once the agent's "delivered" log lines, printed after the
	// fact by concurrent deliveries, may come in another order: the log
	// must hold the same archives, not the same order.)
	var order []string
	var last time.Time
	for _, e := range s3Log {
		order = append(order, e.File)
		ts, _ := time.Parse("Mon, 02 Jan 2006 15:04:05 GMT", e.Time)
		if ts.Before(last) {
			t.Errorf("progress log time goes back at %s: %s", e.File, e.Time)
		}
		last = ts
	}
	var confirmed []string
	for _, a := range agents {
		for _, line := range strings.Split(a.Stderr(), "\n") {
			if strings.Contains(line, "msg=delivered") && strings.Contains(line, "sink=s3") {
				if _, rest, ok := strings.Cut(line, "archive="); ok {
					confirmed = append(confirmed, strings.Fields(rest)[0])
				}
			}
		}
	}
	slices.Sort(order)
	slices.Sort(confirmed)
	if strings.Join(order, " ") != strings.Join(confirmed, " ") {
		t.Errorf("progress log and deliveries differ:\n log:       %v\n delivered: %v", order, confirmed)
	}
	if len(localLog) != len(sealed) {
		t.Errorf("local progress log has %d entries for %d archives", len(localLog), len(sealed))
	}
	return len(sealed)
}

func noSecretIn(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a credential (%q)", what, s)
		}
	}
}

func newUploadEnv(t *testing.T) (*netnstest.Pair, *miniotest.Server, string) {
	t.Helper()
	netnstest.RequireTool(t, "aws")
	p := netnstest.NewPair(t)
	startServersForAgent(t, p)
	srv := miniotest.Start(t, miniotest.InNetns(p.A))
	return p, srv, t.TempDir()
}

// Real traffic, real MinIO: every sealed archive arrives byte for byte,
// logged once, in order; no credential shows anywhere.
func TestUploadS3(t *testing.T) {
	p, srv, dir := newUploadEnv(t)
	srv.AWS(t, "s3", "mb", "s3://"+bucket)
	// A stand-in for a Slack incoming webhook in A, writing each message's
	// JSON on a line of its own.
	hooks := filepath.Join(dir, "webhooks.jsonl")
	netnstest.Start(t, p.A, "python3", "-c", slackHook, "18099", hooks)
	netnstest.WaitListening(t, p.A, "tcp", 18099)
	const hookURL = "http://127.0.0.1:18099/services/T0/B0/hook-secret"
	cfg := writeAgentConfig(t, dir, s3Config(srv, miniotest.SecretKey, "  slackWebhook: "+hookURL+"\n"))

	out, _, code := runKflcap(t, "agent", "--config", cfg, "--print-config")
	if code != 0 || !strings.Contains(out, "s3Bucket: "+bucket) {
		t.Fatalf("--print-config exit %d:\n%s", code, out)
	}
	noSecretIn(t, "--print-config", out, miniotest.SecretKey, hookURL)

	agent := startAgentOnly(t, p, cfg)
	stop := traffic(p, 150*time.Millisecond)
	// Traffic until the store has taken three archives (sealed every 2 s).
	needMetric(t, 60*time.Second, p.A, metricsAddr, 3, "kflcap_uploads_total", s3Uploads...)
	stop()
	stopAgent(t, agent)
	n := checkBucket(t, srv, dir, agent)
	t.Logf("%d archives uploaded and verified", n)
	if n < 3 {
		t.Errorf("only %d archives", n)
	}
	// Object metadata carries the KFL index and query.
	objs := listBucket(t, srv)
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	head := srv.AWS(t, "s3api", "head-object", "--bucket", bucket, "--key", objs[0].Key)
	if !strings.Contains(head, `"kfl-index"`) || !strings.Contains(head, `"kfl-query"`) {
		t.Errorf("head-object %s: no kfl metadata:\n%s", objs[0].Key, head)
	}
	noSecretIn(t, "the agent's log", agent.Stderr(), miniotest.SecretKey, "hook-secret")
	for _, r := range readRepos(t, filepath.Join(dir, "repos")) {
		b, _ := os.ReadFile(r.files["content.json"])
		noSecretIn(t, r.name+" content.json", string(b), miniotest.SecretKey, miniotest.AccessKey, "hook-secret")
	}

	// One Slack message per uploaded archive, naming its s3_url.
	b, _ := os.ReadFile(hooks)
	texts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct{ Text string }
		if line == "" || json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		for _, o := range objs {
			if strings.HasSuffix(o.Key, ".tar.gz") && strings.Contains(m.Text, srv.Endpoint+"/"+bucket+"/"+o.Key) {
				texts[o.Key]++
			}
		}
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".tar.gz") && texts[o.Key] != 1 {
			t.Errorf("%s announced %d times on Slack", o.Key, texts[o.Key])
		}
	}
}

// slackHook is a stand-in incoming webhook: python3 -c slackHook PORT FILE.
const slackHook = `
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
`

// MinIO down in the middle of a run, until five archives wait: they wait
// and then arrive exactly once; the progress log neither loses nor repeats
// one.
func TestUploadS3Outage(t *testing.T) {
	p, srv, dir := newUploadEnv(t)
	srv.AWS(t, "s3", "mb", "s3://"+bucket)
	cfg := writeAgentConfig(t, dir, s3Config(srv, miniotest.SecretKey, ""))
	agent := startAgentOnly(t, p, cfg)
	stop := traffic(p, 200*time.Millisecond)
	defer stop()
	// The store takes an archive before it goes down.
	delivered := needMetric(t, 30*time.Second, p.A, metricsAddr, 1, "kflcap_uploads_total", s3Uploads...)
	before := len(listBucket(t, srv))
	srv.Stop()
	down := time.Now()
	// Archives pile up in the outbox; the agent is unready while the store
	// is down, naming it; capture goes on.
	var waiting []string
	netnstest.WaitFor(t, 60*time.Second, func() error {
		waiting, _ = filepath.Glob(filepath.Join(dir, "spool", "outbox", "*.tar.gz"))
		code, body, err := netnstest.HTTPGet(p.A, "http://"+metricsAddr+"/readyz")
		if len(waiting) < 5 || err != nil || code != 503 || !strings.Contains(body, "sink s3") {
			return fmt.Errorf("%d archives waiting; /readyz: %d %q %v; want 5 waiting and 503 naming sink s3", len(waiting), code, body, err)
		}
		return nil
	})
	srv.Restart(t)
	t.Logf("MinIO down for %v: %d objects before, %d archives waiting at the restart", time.Since(down).Round(time.Second), before, len(waiting))
	// Traffic goes on until the store has taken something again.
	needMetric(t, 90*time.Second, p.A, metricsAddr, delivered+1, "kflcap_uploads_total", s3Uploads...)
	stop()
	// The outbox retries with backoff (up to a minute here, after 30 s of
	// failures): wait for it rather than for the shutdown's grace.
	waitOutboxEmpty(t, dir, 100*time.Second, agent)
	if code, body, err := netnstest.HTTPGet(p.A, "http://"+metricsAddr+"/readyz"); err != nil || code != 200 || strings.TrimSpace(body) != "ready" {
		t.Errorf("/readyz after the store came back: %d %q, %v", code, body, err)
	}
	stopAgent(t, agent)
	if !strings.Contains(agent.Stderr(), "network") {
		t.Errorf("the agent's log does not say the store is unreachable:\n%s", tail(agent.Stderr(), 20))
	}
	n := checkBucket(t, srv, dir, agent)
	t.Logf("%d archives in all, each exactly once", n)
}

// Wrong credentials: a clear error, archives kept; fixed and restarted,
// the agent delivers them.
func TestUploadS3BadCredentials(t *testing.T) {
	p, srv, dir := newUploadEnv(t)
	srv.AWS(t, "s3", "mb", "s3://"+bucket)
	const wrong = "this-is-the-wrong-secret"
	cfg := writeAgentConfig(t, dir, s3Config(srv, wrong, ""))
	agent := startAgentOnly(t, p, cfg, "--grace", "1s")
	stop := traffic(p, 200*time.Millisecond)
	// Traffic until an archive is sealed and the store has refused it.
	needMetric(t, 30*time.Second, p.A, metricsAddr, 1, "kflcap_upload_failures_total", `sink="s3"`)
	stop()
	stopAgent(t, agent)
	if !strings.Contains(agent.Stderr(), "bad credentials") {
		t.Errorf("the agent's log does not say the credentials are bad:\n%s", tail(agent.Stderr(), 20))
	}
	noSecretIn(t, "the agent's log", agent.Stderr(), wrong)
	kept, _ := filepath.Glob(filepath.Join(dir, "spool", "outbox", "*.tar.gz"))
	if len(kept) == 0 {
		t.Fatal("no archive kept in the outbox")
	}
	if objs := listBucket(t, srv); len(objs) != 0 {
		t.Fatalf("objects in the bucket with wrong credentials: %v", objs)
	}
	t.Logf("%d archives kept after failing with wrong credentials", len(kept))

	writeAgentConfig(t, dir, s3Config(srv, miniotest.SecretKey, ""))
	first := agent
	agent = startAgentOnly(t, p, cfg)
	waitOutboxEmpty(t, dir, 30*time.Second, agent)
	stopAgent(t, agent)
	for _, k := range kept {
		if _, err := os.Stat(filepath.Join(dir, "repos", filepath.Base(k))); err != nil {
			t.Errorf("%s was not delivered after the fix", filepath.Base(k))
		}
	}
	checkBucket(t, srv, dir, first, agent)
}

// A missing bucket: a clear error and no bucket, unless createBucket: true.
func TestUploadS3MissingBucket(t *testing.T) {
	p, srv, dir := newUploadEnv(t)
	cfg := writeAgentConfig(t, dir, s3Config(srv, miniotest.SecretKey, ""))
	agent := startAgentOnly(t, p, cfg, "--grace", "1s")
	// Known at start, before any archive is sealed: /readyz names the sink.
	netnstest.WaitFor(t, 30*time.Second, func() error {
		if code, body, err := netnstest.HTTPGet(p.A, "http://"+metricsAddr+"/readyz"); err != nil || code != 503 || !strings.Contains(body, "sink s3") {
			return fmt.Errorf("/readyz before any archive: %d %q %v; want 503 naming sink s3", code, body, err)
		}
		return nil
	})
	stop := traffic(p, 200*time.Millisecond)
	// Traffic until an archive is sealed and its delivery has failed.
	needMetric(t, 30*time.Second, p.A, metricsAddr, 1, "kflcap_upload_failures_total", `sink="s3"`)
	stop()
	stopAgent(t, agent)
	log := agent.Stderr()
	for _, want := range []string{"the store cannot take archives yet", "delivery failed", "createBucket"} {
		if !strings.Contains(log, want) {
			t.Errorf("the agent's log does not say %q:\n%s", want, tail(log, 10))
		}
	}
	if _, _, err := srv.AWSResult("s3api", "head-bucket", "--bucket", bucket); err == nil {
		t.Fatal("the bucket exists without createBucket")
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "spool", "outbox", "*.tar.gz"))
	if len(kept) == 0 {
		t.Fatal("no archive kept in the outbox")
	}

	writeAgentConfig(t, dir, s3Config(srv, miniotest.SecretKey, "  createBucket: true\n"))
	first := agent
	agent = startAgentOnly(t, p, cfg)
	waitOutboxEmpty(t, dir, 30*time.Second, agent)
	stopAgent(t, agent)
	srv.AWS(t, "s3api", "head-bucket", "--bucket", bucket)
	checkBucket(t, srv, dir, first, agent)
}

// Two agents on one node (a rolling update) deliver to one progress log
// at the same time: no entry is lost or repeated.
func TestUploadS3TwoAgents(t *testing.T) {
	p, srv, dir := newUploadEnv(t)
	srv.AWS(t, "s3", "mb", "s3://"+bucket)
	var agents []*proc
	var dirs []string
	for i, prefix := range []string{"kflcap", "kflcapb"} {
		d := filepath.Join(dir, prefix)
		os.MkdirAll(d, 0o755)
		cfg := fmt.Sprintf(`node: {name: test-node, ip: 10.99.0.1, cluster: e2e}
capture: {interfaces: [any]}
kflPcapS3:
  kflArr: ["http and response.status == 500", "dns"]
  prefix: %s
  maxDuration: 700ms
  awsRegion: us-east-1
  s3Bucket: %s
  s3Endpoint: %s
  awsAccessKeyId: %s
  awsSecretAccessKey: %s
  keepLocal: true
spool: {dir: %s/spool}
local: {dir: %s/repos}
api: {listen: "127.0.0.1:%d"}
metrics: {listen: "127.0.0.1:%d"}
`, prefix, bucket, srv.Endpoint, miniotest.AccessKey, miniotest.SecretKey, d, d, 19751+10*i, 19750+10*i)
		path := filepath.Join(d, "config.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, startAgentAt(t, p, fmt.Sprintf("127.0.0.1:%d", 19750+10*i), path))
		dirs = append(dirs, d)
	}
	stop := traffic(p, 100*time.Millisecond)
	// Traffic until each agent has delivered three archives: enough for
	// their progress log updates to race.
	for i := range agents {
		needMetric(t, 60*time.Second, p.A, fmt.Sprintf("127.0.0.1:%d", 19750+10*i), 3, "kflcap_uploads_total", s3Uploads...)
	}
	stop()
	for _, a := range agents {
		stopAgent(t, a)
	}

	var sealed []string
	for _, d := range dirs {
		s, _ := filepath.Glob(filepath.Join(d, "repos", "*.tar.gz"))
		sealed = append(sealed, s...)
	}
	var log []progressEntry
	if err := json.Unmarshal([]byte(srv.AWS(t, "s3", "cp", "s3://"+bucket+"/"+keyPrefix+"/progress_log.json", "-")), &log); err != nil {
		t.Fatalf("progress log: %v", err)
	}
	count := map[string]int{}
	for _, e := range log {
		count[e.File]++
	}
	perAgent := map[bool]int{}
	for _, s := range sealed {
		name := filepath.Base(s)
		perAgent[strings.Contains(name, "_kflcapb_")]++
		if count[name] != 1 {
			t.Errorf("%s is %d times in the progress log", name, count[name])
		}
	}
	if len(log) != len(sealed) {
		t.Errorf("progress log has %d entries for %d archives", len(log), len(sealed))
	}
	if objs := listBucket(t, srv); len(objs) != len(sealed)+1 {
		t.Errorf("%d objects in the bucket for %d archives", len(objs), len(sealed))
	}
	if perAgent[false] < 3 || perAgent[true] < 3 {
		t.Errorf("archives per agent %v: too few to race", perAgent)
	}
	t.Logf("%d + %d archives from two agents, each once in one progress log", perAgent[false], perAgent[true])
}
