// Command trigger benchmarks triggered captures: a Falco alert posted to a
// running `kflcap agent` while HTTP traffic flows on a veth pair between
// two namespaces it creates (and removes).
//
// Reported, over -runs alerts (each a 10 s capture with 10 s of lookback):
//
//   - alert → first selected byte (the API's status says bytes > 0), and
//     alert → first byte on disk (a file in the spool has data);
//   - alert → uploaded (the status has its s3_url), to MinIO when
//     scripts/minio.sh gives one, else to the local sink;
//   - packets from before the alert in the repository, against a tcpdump
//     started when the alert arrives (the Falco Talon flow), which by
//     construction has none; and how long that tcpdump took to start;
//   - the lookback buffer's memory: the agent's RSS with a full 32 MiB and
//     a full 288 MiB ring, per MiB of ring.
//
// Run as root from the repository root: go run ./bench/trigger [-kflcap bin/kflcap].
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kflcap/kflcap/internal/benchkit"
)

var (
	pair               = benchkit.NewPair("kflbtrig")
	nsA, nsB, ifA, ipA = pair.A, pair.B, pair.IfA, pair.IPA
	ipB                = pair.IPB
)

const (
	token     = "bench-trigger-token"
	accessKey = "kflcap-bench"
	secretKey = "kflcap-bench-secret"
	bucket    = "kflcap-trigger-bench"
)

func main() {
	if len(os.Args) > 2 {
		switch os.Args[1] {
		case "serve":
			serve(os.Args[2])
			return
		case "load":
			load(os.Args[2:])
			return
		case "mkbucket":
			mkbucket(os.Args[2])
			return
		case "get":
			get(os.Args[2], os.Args[3])
			return
		}
	}
	bin := flag.String("kflcap", "bin/kflcap", "kflcap binary")
	runs := flag.Int("runs", 3, "alerts (captures) to measure")
	out := flag.String("out", "", "also write the markdown report here")
	flag.Parse()
	log.SetFlags(0)
	*bin, _ = filepath.Abs(*bin)
	self, _ := os.Executable()

	pair.Setup()
	defer pair.Cleanup()
	tmp, _ := os.MkdirTemp("", "kflbtrig-")
	defer os.RemoveAll(tmp)

	srv := exec.Command("ip", "netns", "exec", nsB, self, "serve", ipB+":8080")
	srv.Start()
	defer srv.Process.Kill()
	benchkit.WaitTCP(nsA, ipB+":8080")

	sink, stopMinIO := startMinIO(tmp, self)
	defer stopMinIO()

	var report bytes.Buffer
	fmt.Fprintf(&report, "Run %s, kernel %s, %d CPUs. HTTP traffic A → B, one request per connection every 20 ms; the alert is the stock rule \"Redirect STDOUT/STDIN to Network Connection in Container\" naming B; each capture is 10 s with 10 s of lookback; sink: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), benchkit.Kernel(), benchkit.NumCPU(), sink.desc)

	// --- latency and pre-alert packets ---
	cfg := writeConfig(tmp, "main", "256Mi", sink.yaml)
	agent, agErr := startAgent(*bin, cfg)
	traffic := exec.Command("ip", "netns", "exec", nsA, self, "load", "http://"+ipB+":8080/status/200", "20ms", "0")
	traffic.Start()
	time.Sleep(12 * time.Second) // fill more than the lookback
	spool := filepath.Join(tmp, "main", "spool")

	var firstSel, firstDisk, uploaded, tdStart []time.Duration
	var pre, tdPre []int
	for i := range *runs {
		r := oneAlert(tmp, spool, i)
		firstSel = append(firstSel, r.firstSelected)
		firstDisk = append(firstDisk, r.firstOnDisk)
		uploaded = append(uploaded, r.uploaded)
		tdStart = append(tdStart, r.tcpdumpStart)
		pre = append(pre, r.preAlert)
		tdPre = append(tdPre, r.tcpdumpPre)
		log.Printf("run %d: %+v", i+1, r)
		time.Sleep(time.Second)
	}
	traffic.Process.Kill()
	traffic.Wait()
	agent.Process.Signal(os.Interrupt)
	agent.Wait()
	if strings.Contains(agErr.String(), "level=ERROR") {
		log.Printf("agent errors:\n%s", agErr.String())
	}

	fmt.Fprintf(&report, "| measure (median of %d, min … max) | kflcap agent | tcpdump started on the alert |\n|---|---:|---:|\n", *runs)
	fmt.Fprintf(&report, "| alert → first selected byte | %s | – |\n", spread(firstSel))
	fmt.Fprintf(&report, "| alert → first byte on disk | %s | %s (until \"listening on\") |\n", spread(firstDisk), spread(tdStart))
	fmt.Fprintf(&report, "| alert → repository uploaded (%s) | %s | – |\n", sink.name, spread(uploaded))
	fmt.Fprintf(&report, "| packets from before the alert | %s | %s |\n\n", ints(pre), ints(tdPre))
	fmt.Fprintf(&report, "The API is polled with curl inside the namespace, about every 30 ms: the first two rows are upper bounds at that resolution. Upload latency is the 10 s window, the seal and the upload.\n\n")

	// --- lookback memory ---
	rssSmall := lookbackRSS(*bin, self, tmp, "32Mi", sink.yaml)
	rssLarge := lookbackRSS(*bin, self, tmp, "288Mi", sink.yaml)
	perMiB := float64(rssLarge-rssSmall) / 256
	fmt.Fprintf(&report, "Lookback memory: agent RSS %d MiB with a full 32 MiB ring, %d MiB with a full 288 MiB ring: %.2f MiB of RSS per MiB of lookback.\n",
		rssSmall>>20, rssLarge>>20, perMiB/(1<<20))

	fmt.Print(report.String())
	if *out != "" {
		os.WriteFile(*out, report.Bytes(), 0o644)
	}
}

type runResult struct {
	firstSelected, firstOnDisk, uploaded, tcpdumpStart time.Duration
	preAlert, tcpdumpPre                               int
}

// oneAlert posts one alert and follows its capture to the upload; a
// tcpdump started at the same moment plays the after-the-alert capture.
func oneAlert(tmp, spool string, i int) runResult {
	var r runResult
	doc := alertDoc(tmp, i)
	tdFile := filepath.Join(tmp, fmt.Sprintf("after-alert-%d.pcap", i))
	t0 := time.Now()
	td := exec.Command("ip", "netns", "exec", nsA, "tcpdump", "-i", ifA, "-s", "65535", "-U", "-w", tdFile, "host", ipB)
	var tdErr benchkit.SyncBuf
	td.Stderr = &tdErr
	td.Start()
	code, body := api("POST", "/api/v1/alerts/falco", doc)
	if code != 201 {
		benchkit.Die("alert %d: %d %v", i, code, body)
	}
	id := body["captures"].([]any)[0].(map[string]any)["id"].(string)
	tdReady := make(chan time.Duration, 1)
	go func() {
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(tdErr.String(), "listening on"); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				benchkit.Die("tcpdump did not start: %s", tdErr.String())
			}
		}
		tdReady <- time.Since(t0)
	}()
	var st map[string]any
	for {
		now := time.Now()
		_, st = api("GET", "/api/v1/captures/"+id, "")
		if r.firstSelected == 0 {
			if b, _ := st["bytes"].(float64); b > 0 {
				r.firstSelected = now.Sub(t0)
			}
		}
		if r.firstOnDisk == 0 && newData(spool, t0) {
			r.firstOnDisk = time.Since(t0)
		}
		if u, _ := st["s3_url"].(string); u != "" {
			r.uploaded = time.Since(t0)
			break
		}
		if s := st["state"]; s == "failed" || s == "empty" {
			benchkit.Die("capture %s: %v", id, st)
		}
		if time.Since(t0) > 2*time.Minute {
			benchkit.Die("capture %s not uploaded: %v", id, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.tcpdumpStart = <-tdReady
	td.Process.Signal(os.Interrupt)
	td.Wait()
	r.tcpdumpPre = countBefore(tdFile, t0)

	// The repository: extract it from the local copy the sink left, or
	// fetch it back; count the packets from before the alert.
	archive := filepath.Join(tmp, "main", "repos", fmt.Sprint(st["repository"]))
	if _, err := os.Stat(archive); err != nil {
		archive = fetch(tmp, fmt.Sprint(st["s3_url"]))
	}
	x, _ := os.MkdirTemp(tmp, "x-")
	exec.Command("tar", "xzf", archive, "-C", x).Run()
	var content struct {
		Merged string `json:"pcap_file_name"`
	}
	b, _ := os.ReadFile(filepath.Join(x, "content.json"))
	json.Unmarshal(b, &content)
	r.preAlert = countBefore(filepath.Join(x, content.Merged), t0)
	return r
}

// newData reports whether a file in dir (recursively) got data after t0.
func newData(dir string, t0 time.Time) bool {
	found := false
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && !fi.ModTime().Before(t0) {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

func countBefore(pcap string, t time.Time) int {
	out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "frame.time_epoch").Output()
	if err != nil {
		return -1
	}
	n := 0
	for _, f := range strings.Fields(string(out)) {
		if ts, _ := strconv.ParseFloat(f, 64); ts < float64(t.UnixNano())/1e9 {
			n++
		}
	}
	return n
}

func alertDoc(tmp string, i int) string {
	b, err := os.ReadFile("trigger/testdata/alerts/falco_redirect_stdout_network.json")
	if err != nil {
		benchkit.Die("run from the repository root: %v", err)
	}
	// A fresh time and client port per run; runs are further apart than
	// the dedup window.
	s := strings.NewReplacer("10.244.1.17", ipA, "203.0.113.50", ipB, "4444", "8080",
		"41822", strconv.Itoa(41822+i), "2025-11-23T14:07:41.523873461Z", time.Now().UTC().Format(time.RFC3339Nano)).Replace(string(b))
	p := filepath.Join(tmp, fmt.Sprintf("alert-%d.json", i))
	os.WriteFile(p, []byte(s), 0o644)
	return p
}

// api calls the agent's API from inside namespace A with curl.
func api(method, path, bodyFile string) (int, map[string]any) {
	args := []string{"netns", "exec", nsA, "curl", "-sS", "-X", method, "-w", "\n%{http_code}", "-H", "Authorization: Bearer " + token}
	if bodyFile != "" {
		args = append(args, "--data-binary", "@"+bodyFile)
	}
	out, err := exec.Command("ip", append(args, "http://127.0.0.1:9751"+path)...).Output()
	if err != nil {
		benchkit.Die("%s %s: %v", method, path, err)
	}
	s := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(s, '\n')
	code, _ := strconv.Atoi(s[i+1:])
	var body map[string]any
	json.Unmarshal([]byte(s[:i]), &body)
	return code, body
}

type sinkConf struct{ name, desc, yaml string }

// startMinIO starts the pinned MinIO inside namespace A (where the agent
// runs) with a bucket; without MinIO the local sink is measured.
func startMinIO(tmp, self string) (sinkConf, func()) {
	local := sinkConf{name: "local sink", desc: "the local directory sink (no MinIO)"}
	bin, err := exec.Command("sh", "scripts/minio.sh").Output()
	if err != nil {
		log.Printf("no MinIO (%v): measuring the local sink", err)
		return local, func() {}
	}
	data := filepath.Join(tmp, "minio-data")
	os.MkdirAll(data, 0o755)
	cmd := exec.Command("ip", "netns", "exec", nsA, strings.TrimSpace(string(bin)), "server", "--quiet", "--address", "127.0.0.1:9000", data)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+accessKey, "MINIO_ROOT_PASSWORD="+secretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	if err := cmd.Start(); err != nil {
		log.Printf("minio: %v: measuring the local sink", err)
		return local, func() {}
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := exec.Command("ip", "netns", "exec", nsA, self, "mkbucket", "http://127.0.0.1:9000").CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			log.Printf("minio did not come up (%s): measuring the local sink", out)
			return local, func() {}
		}
	}
	y := fmt.Sprintf("  awsRegion: us-east-1\n  s3Bucket: %s\n  s3Endpoint: http://127.0.0.1:9000\n  awsAccessKeyId: %s\n  awsSecretAccessKey: %s\n", bucket, accessKey, secretKey)
	return sinkConf{name: "MinIO", desc: "MinIO on the agent's loopback", yaml: y}, stop
}

func s3Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")})
}

func mkbucket(endpoint string) {
	c := s3Client(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil && !strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
		benchkit.Die("create bucket: %v", err)
	}
}

// fetch gets an uploaded archive back (inside namespace A, with curl and
// MinIO's path-style URL; the bucket's objects need the credentials, so
// this re-uses the local copy when there is one).
func fetch(tmp, url string) string {
	if strings.HasPrefix(url, "file://") {
		return strings.TrimPrefix(url, "file://")
	}
	p := filepath.Join(tmp, filepath.Base(url))
	self, _ := os.Executable()
	if out, err := exec.Command("ip", "netns", "exec", nsA, self, "get", url, p).CombinedOutput(); err != nil {
		benchkit.Die("fetch %s: %v %s", url, err, out)
	}
	return p
}

// get downloads an uploaded object, named by its s3:// or path-style
// http:// URL, from the MinIO on this namespace's loopback.
func get(url, dst string) {
	key := url
	for _, prefix := range []string{"s3://" + bucket + "/", "http://127.0.0.1:9000/" + bucket + "/"} {
		key = strings.TrimPrefix(key, prefix)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obj, err := s3Client("http://127.0.0.1:9000").GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		benchkit.Die("get %s: %v", key, err)
	}
	defer obj.Body.Close()
	f, err := os.Create(dst)
	if err != nil {
		benchkit.Die("%v", err)
	}
	if _, err := io.Copy(f, obj.Body); err != nil {
		benchkit.Die("get %s: %v", key, err)
	}
	f.Close()
}

func writeConfig(tmp, name, lookback, s3yaml string) string {
	dir := filepath.Join(tmp, name)
	os.MkdirAll(dir, 0o755)
	cfg := fmt.Sprintf(`node: {name: bench, ip: %s, cluster: bench}
capture: {interfaces: [%s], lookbackBytes: %s}
kflPcapS3:
  kflArr: [dns]
  active: false
%sspool: {dir: %s/spool}
local: {dir: %s/repos}
api: {listen: "127.0.0.1:9751", token: %s}
triggers:
  - name: bench
    match: {rules: ["Redirect STDOUT/STDIN to Network Connection in Container"]}
    duration: 10s
    lookback: 10s
`, ipA, ifA, lookback, s3yaml, dir, dir, token)
	p := filepath.Join(dir, "agent.yaml")
	os.WriteFile(p, []byte(cfg), 0o644)
	return p
}

func startAgent(bin, cfg string) (*exec.Cmd, *benchkit.SyncBuf) {
	agent := exec.Command("ip", "netns", "exec", nsA, bin, "agent", "--config", cfg)
	var errb benchkit.SyncBuf
	agent.Stderr = &errb
	if err := agent.Start(); err != nil {
		benchkit.Die("agent: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); !(strings.Contains(errb.String(), "msg=capturing") && strings.Contains(errb.String(), "capture API")); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			agent.Process.Kill()
			benchkit.Die("agent did not start:\n%s", errb.String())
		}
	}
	return agent, &errb
}

// lookbackRSS runs an agent with the given ring, pushes three times the
// ring through it in large HTTP responses, and returns its RSS.
func lookbackRSS(bin, self, tmp, size, s3yaml string) int64 {
	cfg := writeConfig(tmp, "rss-"+size, size, s3yaml)
	agent, _ := startAgent(bin, cfg)
	mib, _ := strconv.Atoi(strings.TrimSuffix(size, "Mi"))
	exec.Command("ip", "netns", "exec", nsA, self, "load", "http://"+ipB+":8080/big", "0", strconv.Itoa(3*mib)).Run()
	time.Sleep(2 * time.Second)
	rss := benchkit.CurrentRSS(agent.Process.Pid)
	agent.Process.Signal(os.Interrupt)
	agent.Wait()
	return rss
}

// load: "load URL every 0" requests URL every interval until killed;
// "load URL 0 MiB" downloads MiB mebibytes of /big responses, 1 MiB each.
func load(args []string) {
	url := args[0]
	every, _ := time.ParseDuration(args[1])
	total, _ := strconv.Atoi(args[2])
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: every > 0}, Timeout: 10 * time.Second}
	if every > 0 { // until killed
		for t := time.NewTicker(every); ; <-t.C {
			go func() {
				if resp, err := c.Get(url); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for got.Add(1) <= int64(total) {
				if resp, err := c.Get(url); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
}

func serve(addr string) {
	big := bytes.Repeat([]byte("kflcap lookback "), 1<<16) // 1 MiB
	http.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "ok\n%s", strings.Repeat("x", 512))
	})
	http.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(big) })
	benchkit.Die("%v", http.ListenAndServe(addr, nil))
}

func spread(ds []time.Duration) string {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("%s (%s … %s)", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]))
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
