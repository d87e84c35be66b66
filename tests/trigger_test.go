package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/netnstest"
)

const triggerToken = "e2e-trigger-token"

// apiCall runs curl inside ns against the agent's API on 127.0.0.1:9751
// and returns the HTTP status and the JSON body.
func apiCall(t *testing.T, ns, method, path, token, bodyFile string) (int, map[string]any) {
	t.Helper()
	args := []string{"-sS", "-X", method, "-w", "\n%{http_code}", "--max-time", "20"}
	if token != "" {
		args = append(args, "-H", "Authorization: Bearer "+token)
	}
	if bodyFile != "" {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", "@"+bodyFile)
	}
	out := netnstest.Exec(t, ns, "curl", append(args, "http://127.0.0.1:9751"+path)...)
	i := strings.LastIndexByte(strings.TrimSpace(out), '\n')
	if i < 0 {
		t.Fatalf("%s %s: no status in %q", method, path, out)
	}
	code, err := strconv.Atoi(strings.TrimSpace(out[i+1:]))
	if err != nil {
		t.Fatalf("%s %s: status %q", method, path, out[i+1:])
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(out[:i]), &body); err != nil {
		t.Fatalf("%s %s: %d with a non-JSON body: %v\n%s", method, path, code, err, out)
	}
	return code, body
}

// alertFile writes a fixture from trigger/testdata/alerts with its
// addresses, port and time replaced: the pod becomes namespace A, the
// remote end namespace B's server.
func alertFile(t *testing.T, dir, fixture string, p *netnstest.Pair, at time.Time) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "trigger", "testdata", "alerts", fixture))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(
		"10.244.1.17", p.IPA,
		"203.0.113.50", p.IPB,
		"4444", "8080",
		"2025-11-23T14:07:41.523873461Z", at.UTC().Format(time.RFC3339Nano),
		"2025-11-23T14:07:42.018342Z", at.UTC().Format(time.RFC3339Nano),
	).Replace(string(b))
	path := filepath.Join(dir, fixture)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTriggerFalcoAlert: real Falco alert documents posted to a running
// agent while real traffic flows. HTTP requests to the alert's remote IP
// (namespace B's 10.99.0.2) start 5 s before the alert and go on after it;
// requests to another address of B (10.99.0.3) run all along. The sealed
// trigger repository holds the streams to the remote IP, including the
// ones from before the alert, with every packet tcpdump saw, and nothing
// else.
func TestTriggerFalcoAlert(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "python3", "curl", "tshark", "tcpdump")
	const otherIP = "10.99.0.3"
	netnstest.Exec(t, p.B, "ip", "addr", "add", otherIP+"/24", "dev", p.IfB)
	netnstest.Start(t, p.B, "python3", "testdata/statusserver.py", p.IPB, "8080")
	netnstest.Start(t, p.B, "python3", "testdata/statusserver.py", otherIP, "8080")
	netnstest.WaitListening(t, p.B, "tcp", 8080)

	dir := t.TempDir()
	const lookback, duration = 10 * time.Second, 4 * time.Second
	cfg := fmt.Sprintf(`node: {name: test-node, ip: 10.99.0.1, cluster: e2e}
capture: {interfaces: [any]}
kflPcapS3: {kflArr: [dns], active: false}
spool: {dir: %[1]s/spool}
local: {dir: %[1]s/repos}
api: {listen: "127.0.0.1:9751", token: %[2]s}
triggers:
  - name: reverse-shell
    match:
      rules: ["Redirect STDOUT/STDIN to Network Connection in Container"]
      priority: ">= Notice"
      tags: [[network, mitre_execution]]
    duration: %[3]s
    lookback: %[4]s
`, dir, triggerToken, duration, lookback)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := startAgent(t, p, dir, cfgPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent stderr:\n%s", env.agent.Stderr())
		}
	})

	loop := func(ip string) *netnstest.Proc {
		return netnstest.Start(t, p.A, "sh", "-c", fmt.Sprintf(
			"while :; do curl -sS -o /dev/null --max-time 2 http://%s:8080/status/200; sleep 0.25; done", ip))
	}
	unrelated := loop(otherIP)
	related := loop(p.IPB)
	// The test's subject, not a wait: 5 s of traffic to the remote IP
	// before the alert, for the lookback to reach back into.
	time.Sleep(5 * time.Second)

	// The request without (or with a wrong) token is refused.
	if code, _ := apiCall(t, p.A, "GET", "/api/v1/captures", "", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	alertAt := time.Now()
	falco := alertFile(t, dir, "falco_redirect_stdout_network.json", p, alertAt)
	code, body := apiCall(t, p.A, "POST", "/api/v1/alerts/falco", triggerToken, falco)
	if code != 201 || body["result"] != "started" {
		t.Fatalf("Falco alert: %d %v", code, body)
	}
	id := body["captures"].([]any)[0].(map[string]any)["id"].(string)
	// The same alert through Falcosidekick is folded into that capture;
	// Talon's notification names a pod this host cannot resolve; the
	// documentation's example has no connection.
	code, body = apiCall(t, p.A, "POST", "/api/v1/alerts/falco", triggerToken, alertFile(t, dir, "falcosidekick_redirect_stdout_network.json", p, alertAt))
	if code != 202 || body["result"] != "duplicate" || !strings.Contains(fmt.Sprint(body["duplicates"]), id) {
		t.Errorf("Falcosidekick alert: %d %v", code, body)
	}
	for _, f := range []string{"talon_webhook_notifier.json", "falco_docs_write_below_binary_dir.json"} {
		code, body = apiCall(t, p.A, "POST", "/api/v1/alerts/falco", triggerToken, alertFile(t, dir, f, p, alertAt))
		if code != 202 || body["result"] != "unmatched" {
			t.Errorf("%s: %d %v", f, code, body)
		}
	}

	// Traffic goes on through the window (duration) until the capture has
	// sealed.
	st := waitCaptureEnded(t, p.A, id, 60*time.Second)
	related.Stop()
	unrelated.Stop()
	if st["state"] != "sealed" {
		t.Fatalf("capture ended %v", st)
	}
	archive, _ := st["repository"].(string)
	if !strings.HasPrefix(archive, "trigger_reverse-shell_") || !strings.HasSuffix(archive, ".tar.gz") {
		t.Errorf("repository name %q", archive)
	}
	from, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(st["from"]))
	until, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(st["until"]))
	if err1 != nil || err2 != nil {
		t.Fatalf("from/until: %v %v", st["from"], st["until"])
	}
	// The agent has run for about 5 s before the alert: the window reaches
	// back that far (the lookback is 10 s, the ring holds what it saw).
	if from.After(alertAt.Add(-4*time.Second)) || until.Before(alertAt.Add(duration-time.Second)) {
		t.Errorf("window %s … %s for an alert at %s", from, until, alertAt)
	}
	// Wait until the local sink has the archive, then stop the agent.
	waitFiles(t, 30*time.Second, filepath.Join(env.local, archive), 1)
	env.stop(t)

	var r *repo
	for _, rr := range readRepos(t, env.local) {
		if rr.name == archive {
			r = &rr
		}
	}
	if r == nil {
		t.Fatalf("%s not found", archive)
	}
	content, _ := json.Marshal(r.content)
	if !strings.Contains(string(content), "Redirect STDOUT/STDIN to Network Connection in Container") {
		t.Errorf("content.json does not carry the alert: %s", content)
	}

	// Every packet of every stream is between A and the remote IP.
	got := map[string]int{} // client port → packets
	var preAlert int
	for _, s := range r.streams() {
		out := tshark(t, "-r", r.files[s], "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "frame.time_epoch")
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Split(l, "\t")
			if len(f) != 5 {
				t.Fatalf("%s: tshark line %q", s, l)
			}
			if !(f[0] == p.IPA && f[1] == p.IPB || f[0] == p.IPB && f[1] == p.IPA) {
				t.Errorf("%s: unrelated packet %s → %s", s, f[0], f[1])
				continue
			}
			client := f[2]
			if client == "8080" {
				client = f[3]
			}
			got[client]++
			if ts, _ := strconv.ParseFloat(f[4], 64); ts < float64(alertAt.UnixNano())/1e9 {
				preAlert++
			}
		}
	}

	// The oracle: the connections to the remote IP that tcpdump saw open
	// well inside [from, until], with their packet counts.
	want := map[string]int{}
	syns := tshark(t, "-r", env.oracle, "-Y", fmt.Sprintf("ip.dst == %s && tcp.dstport == 8080 && tcp.flags.syn == 1 && tcp.flags.ack == 0", p.IPB),
		"-T", "fields", "-e", "tcp.srcport", "-e", "frame.time_epoch")
	oracle := flows(t, env.oracle, "tcp", 8080)
	var wantPre int
	for _, l := range strings.Split(strings.TrimSpace(syns), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 2 {
			continue
		}
		ts, _ := strconv.ParseFloat(f[1], 64)
		at := time.Unix(0, int64(ts*1e9))
		if at.After(from.Add(500*time.Millisecond)) && at.Before(until.Add(-500*time.Millisecond)) {
			want[f[0]] = 0
			if at.Before(alertAt) {
				wantPre++
			}
		}
	}
	// The oracle's per-port counts hold both servers' connections: take
	// them from A ↔ B only.
	onlyB := tshark(t, "-r", env.oracle, "-Y", fmt.Sprintf("ip.addr == %s && tcp.port == 8080", p.IPB), "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport")
	for _, l := range strings.Split(strings.TrimSpace(onlyB), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 2 {
			continue
		}
		client := f[0]
		if client == "8080" {
			client = f[1]
		}
		if _, ok := want[client]; ok {
			want[client]++
		}
	}
	if wantPre < 10 {
		t.Fatalf("only %d connections to the remote IP opened in the lookback before the alert (traffic generator too slow?); oracle has %d connections", wantPre, len(oracle))
	}
	for port, n := range want {
		if got[port] != n {
			t.Errorf("connection from port %s: %d packets in the repository, tcpdump saw %d", port, got[port], n)
		}
	}
	t.Logf("window %s … %s (alert at %s): %d connections to %s in the repository, %d opened before the alert; %d packets from before the alert",
		from.Format("15:04:05.000"), until.Format("15:04:05.000"), alertAt.Format("15:04:05.000"), len(got), p.IPB, wantPre, preAlert)
	if preAlert == 0 {
		t.Error("no packet from before the alert in the repository")
	}
	// The unrelated server had as much traffic and none of it is there.
	if n := strings.Count(tshark(t, "-r", env.oracle, "-Y", "ip.addr == "+otherIP, "-T", "fields", "-e", "frame.number"), "\n"); n < 50 {
		t.Errorf("the unrelated traffic did not flow (%d packets)", n)
	}
}

// burstScript posts N alerts from 50 threads, paced to about 1,000 a
// second: even ones are the same alert, odd ones name distinct remote IPs.
// It prints {"codes": {status: count}, "errors": n, "seconds": s}.
const burstScript = `
import json, sys, threading, time, urllib.request, urllib.error
tmpl = open(sys.argv[1]).read()
n, token, remote = int(sys.argv[2]), sys.argv[3], sys.argv[4]
codes, errors, lock = {}, [0], threading.Lock()
start = time.time()
def worker(w):
    for i in range(w, n, 50):
        delay = start + i / 1000.0 - time.time()
        if delay > 0:
            time.sleep(delay)
        doc = tmpl if i % 2 == 0 else tmpl.replace(remote, "10.99.%d.%d" % (1 + i // 250, 1 + i % 250))
        req = urllib.request.Request("http://127.0.0.1:9751/api/v1/alerts/falco", data=doc.encode(),
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            code = urllib.request.urlopen(req, timeout=30).status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception:
            with lock:
                errors[0] += 1
            continue
        with lock:
            codes[code] = codes.get(code, 0) + 1
threads = [threading.Thread(target=worker, args=(w,)) for w in range(50)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"codes": codes, "errors": errors[0], "seconds": time.time() - start}))
`

// TestTriggerAPIAndBurst: the capture API on a running agent (invalid KFL
// answered with its position, DELETE seals early), then 1,000 alerts in
// about a second: every one answered, identical ones folded into one
// capture, distinct ones beyond the engine's cap refused with 429, and the
// agent's memory bounded.
func TestTriggerAPIAndBurst(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "python3", "curl")
	netnstest.Start(t, p.B, "python3", "testdata/statusserver.py", p.IPB, "8080")
	netnstest.WaitListening(t, p.B, "tcp", 8080)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`node: {name: test-node, ip: 10.99.0.1, cluster: e2e}
capture: {interfaces: [any]}
kflPcapS3: {kflArr: [dns], active: false}
spool: {dir: %[1]s/spool}
local: {dir: %[1]s/repos}
api: {listen: "127.0.0.1:9751", token: %[2]s}
triggers:
  - name: burst
    match: {rules: ["Redirect STDOUT/STDIN to Network Connection in Container"]}
    duration: 3s
    lookback: 1s
`, dir, triggerToken)
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	env := startAgent(t, p, dir, cfgPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent stderr:\n%s", env.agent.Stderr())
		}
	})
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(body), 0o644)
		return path
	}

	// Invalid KFL: 400 with the position.
	code, body := apiCall(t, p.A, "POST", "/api/v1/captures", triggerToken, write("bad.json", `{"kfl": "http and response.stauts == 500"}`))
	pos, _ := body["position"].(map[string]any)
	if code != 400 || pos["col"] != float64(10) || !strings.Contains(fmt.Sprint(body["error"]), "response.stauts") {
		t.Errorf("invalid kfl: %d %v", code, body)
	}
	// A long capture, stopped early by DELETE, seals what it has.
	code, body = apiCall(t, p.A, "POST", "/api/v1/captures", triggerToken, write("good.json",
		fmt.Sprintf(`{"kfl": "dst.ip == \"%s\" or src.ip == \"%s\"", "duration": "10m", "lookback": "2s", "name": "api-e2e", "labels": {"ticket": "SEC-1"}}`, p.IPB, p.IPB)))
	if code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	id := body["id"].(string)
	for range 3 {
		netnstest.Exec(t, p.A, "curl", "-sS", "-o", "/dev/null", "http://"+p.IPB+":8080/status/200")
	}
	// The capture has the three connections before it is stopped.
	netnstest.WaitFor(t, 10*time.Second, func() error {
		if _, st := apiCall(t, p.A, "GET", "/api/v1/captures/"+id, triggerToken, ""); st["streams"] != float64(3) {
			return fmt.Errorf("capture before DELETE: %v", st)
		}
		return nil
	})
	netnstest.WaitTCPSettled(t, p.A, p.B)
	stopped := time.Now()
	code, body = apiCall(t, p.A, "DELETE", "/api/v1/captures/"+id, triggerToken, "")
	if code != 200 {
		t.Fatalf("delete: %d %v", code, body)
	}
	st := waitCaptureEnded(t, p.A, id, 30*time.Second)
	if st["state"] != "sealed" || st["streams"] != float64(3) || !strings.HasPrefix(fmt.Sprint(st["repository"]), "trigger_api-e2e_") {
		t.Errorf("after DELETE: %v", st)
	}
	t.Logf("DELETE to sealed: %s", time.Since(stopped).Round(time.Millisecond))
	if code, _ := apiCall(t, p.A, "GET", "/api/v1/captures/nosuch", triggerToken, ""); code != 404 {
		t.Errorf("unknown id: %d", code)
	}

	// The burst.
	pid := agentPID(t, env)
	rss0 := vmRSS(t, pid)
	alert := alertFile(t, dir, "falco_redirect_stdout_network.json", p, time.Now())
	out := netnstest.Exec(t, p.A, "python3", write("burst.py", burstScript), alert, "1000", triggerToken, p.IPB)
	var res struct {
		Codes   map[string]int `json:"codes"`
		Errors  int            `json:"errors"`
		Seconds float64        `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]), &res); err != nil {
		t.Fatalf("burst output: %v\n%s", err, out)
	}
	rss1 := vmRSS(t, pid)
	t.Logf("1,000 alerts in %.2f s: %v, %d unanswered; agent RSS %d → %d MiB", res.Seconds, res.Codes, res.Errors, rss0>>20, rss1>>20)
	total := res.Codes["201"] + res.Codes["202"] + res.Codes["429"]
	if res.Errors != 0 || total != 1000 {
		t.Errorf("answers: %v, %d without an answer", res.Codes, res.Errors)
	}
	if n := res.Codes["201"]; n < 1 || n > 4 { // the engine's default cap is 4
		t.Errorf("%d captures started", n)
	}
	if res.Codes["202"] < 499 {
		t.Errorf("only %d duplicates of the 500 identical alerts", res.Codes["202"])
	}
	if rss1-rss0 > 64<<20 {
		t.Errorf("agent RSS grew by %d MiB in the burst", (rss1-rss0)>>20)
	}
	// Still serving, and the burst's captures end (empty: no traffic).
	code, body = apiCall(t, p.A, "GET", "/api/v1/captures", triggerToken, "")
	if code != 200 || len(body["captures"].([]any)) < 2 {
		t.Errorf("list after the burst: %d %v", code, body)
	}

	// Trigger rules reload with the file: the terminal-shell alert matches
	// no rule, then the edited configuration adds one and the same alert
	// starts a capture, without a restart.
	shell := alertFile(t, dir, "falco_terminal_shell.json", p, time.Now())
	if code, body := apiCall(t, p.A, "POST", "/api/v1/alerts/falco", triggerToken, shell); code != 202 || body["result"] != "unmatched" {
		t.Fatalf("shell alert before the reload: %d %v", code, body)
	}
	b, _ := os.ReadFile(cfgPath)
	edited := string(b) + fmt.Sprintf(`  - name: shell
    match: {rules: ["Terminal shell in container"]}
    kfl: 'dst.ip == "%s"'
    duration: 2s
`, p.IPB)
	os.WriteFile(cfgPath+".new", []byte(edited), 0o644)
	os.Rename(cfgPath+".new", cfgPath)
	// The alert matches once the agent has reloaded its rules (it looks at
	// the file every 2 s). (The burst's captures may still hold the
	// engine's cap: 429 until they end.)
	netnstest.WaitFor(t, 20*time.Second, func() error {
		shell = alertFile(t, dir, "falco_terminal_shell.json", p, time.Now())
		code, body := apiCall(t, p.A, "POST", "/api/v1/alerts/falco", triggerToken, shell)
		switch {
		case code == 202 && body["result"] == "unmatched", code == 429:
			return fmt.Errorf("shell alert after the reload: %d %v", code, body)
		case code != 201 || body["result"] != "started":
			t.Fatalf("shell alert after the reload: %d %v", code, body)
		}
		return nil
	})
	// A broken rule set changes nothing, and /status says it was rejected
	// and why.
	os.WriteFile(cfgPath+".new", []byte(edited+"  - name: broken\n    match: {priority: Loud}\n"), 0o644)
	os.Rename(cfgPath+".new", cfgPath)
	waitStatus(t, env.agent, p.A, metricsAddr, 10*time.Second, func(st agentStatus) error {
		if st.Reloads.Failed == 0 {
			return fmt.Errorf("no rejected reload yet: %+v", st.Reloads)
		}
		if !strings.Contains(st.Reloads.LastError, "Loud") {
			t.Errorf("the rejected reload's error does not name the bad priority: %q", st.Reloads.LastError)
		}
		return nil
	})
	shell = alertFile(t, dir, "falco_terminal_shell.json", p, time.Now())
	if code, body := apiCall(t, p.A, "POST", "/api/v1/alerts/falco", triggerToken, shell); code == 202 && body["result"] == "unmatched" {
		t.Errorf("after the broken rule set the shell rule is gone: %d %v", code, body)
	}
}

// waitCaptureEnded polls a triggered capture until it has ended (sealed,
// empty or failed) and returns its status.
func waitCaptureEnded(t *testing.T, ns, id string, timeout time.Duration) map[string]any {
	t.Helper()
	var st map[string]any
	netnstest.WaitFor(t, timeout, func() error {
		var code int
		if code, st = apiCall(t, ns, "GET", "/api/v1/captures/"+id, triggerToken, ""); code != 200 {
			t.Fatalf("GET capture: %d %v", code, st)
		}
		if s := st["state"]; s != "sealed" && s != "empty" && s != "failed" {
			return fmt.Errorf("capture %s not ended: %v", id, st)
		}
		return nil
	})
	return st
}

// agentPID is the agent's pid: ip netns exec execs the binary in place.
func agentPID(t *testing.T, env *agentEnv) int {
	t.Helper()
	return env.agent.cmd.Process.Pid
}

func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}
