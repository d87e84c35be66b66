// Command agent benchmarks `kflcap agent` against `tcpdump -w` on the same
// traffic, on a veth pair between two namespaces it creates (and removes):
//
//   - an HTTP workload: one request per connection, 1% answered 500, from
//     a Go client against a Go server (this binary, re-executed inside the
//     namespaces);
//   - background UDP from trafgen (the capture benchmark's traffic, paced).
//
// The agent runs the job "http and response.status == 500". Reported:
// selected streams/s, repository bytes/s, agent CPU and peak RSS, drops,
// tcpdump's bytes, and the ratio; and whether every 500-carrying connection
// is in the repositories. A second scenario floods 400k UDP packets
// with random ports and reports the agent's peak RSS while it tracks them.
//
// Run as root: go run ./bench/agent (make bench).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kflcap/kflcap/internal/benchkit"
)

var pair = benchkit.NewPair("kflbagent")

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		serve(os.Args[2])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "load" {
		load(os.Args[2:])
		return
	}
	bin := flag.String("kflcap", "bin/kflcap", "kflcap binary")
	dur := flag.Duration("duration", 10*time.Second, "HTTP workload time")
	conns := flag.Int("concurrency", 8, "concurrent HTTP clients")
	udpRate := flag.String("udp-rate", "20000pps", "background UDP rate (trafgen -b)")
	out := flag.String("out", "", "also write the markdown report here")
	flag.Parse()
	log.SetFlags(0)
	*bin, _ = filepath.Abs(*bin)
	self, _ := os.Executable()

	defer pair.Cleanup()
	pair.Setup()
	tmp, _ := os.MkdirTemp("", "kflbagent-")
	defer os.RemoveAll(tmp)

	var report bytes.Buffer
	fmt.Fprintf(&report, "Run %s, kernel %s; HTTP workload %v with %d clients, 1%% of responses 500; background UDP at %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), benchkit.Kernel(), *dur, *conns, *udpRate)

	// --- scenario 1: selection vs capture-everything ---
	srv := exec.Command("ip", "netns", "exec", pair.B, self, "serve", pair.IPB+":8080")
	srv.Start()
	defer srv.Process.Kill()
	benchkit.WaitTCP(pair.A, pair.IPB+":8080")

	cfg := filepath.Join(tmp, "agent.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("kflPcapS3:\n  kflArr: [\"http and response.status == 500\"]\n  maxDuration: 5s\ncapture: {lookbackBytes: 0}\nspool: {dir: %s/spool}\nlocal: {dir: %s/repos}\n", tmp, tmp)), 0o644)
	tdFile := filepath.Join(tmp, "tcpdump.pcap")
	td := exec.Command("ip", "netns", "exec", pair.A, "tcpdump", "-i", pair.IfA, "-s", "65535", "-B", "32768", "-w", tdFile)
	var tdErr bytes.Buffer
	td.Stderr = &tdErr
	td.Start()
	agent := exec.Command("ip", "netns", "exec", pair.A, *bin, "agent", "--config", cfg)
	var agErr benchkit.SyncBuf
	agent.Stderr = &agErr
	agent.Start()
	benchkit.WaitFor("start-up", func() bool {
		return strings.Contains(agErr.String(), "msg=capturing") && strings.Contains(tdErr.String(), "listening")
	})
	cpu0 := benchkit.CPUSeconds(agent.Process.Pid)
	log.Printf("agent and tcpdump running; HTTP load for %v", *dur)

	udp := exec.Command("ip", "netns", "exec", pair.A, "trafgen", "-o", pair.IfA, "-i", trafgenCfg(tmp, false), "-q", "-P", "1", "-C", "-b", *udpRate)
	udp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // trafgen forks a sender per CPU
	udp.Start()
	t0 := time.Now()
	loadOut, err := exec.Command("ip", "netns", "exec", pair.A, self, "load", "http://"+pair.IPB+":8080", strconv.Itoa(*conns), dur.String()).Output()
	if err != nil {
		benchkit.Die("load: %v", err)
	}
	// trafgen in rate mode does not always end on SIGINT: end its group.
	syscall.Kill(-udp.Process.Pid, syscall.SIGKILL)
	udp.Wait()
	elapsed := time.Since(t0)
	var lr loadResult
	json.Unmarshal(loadOut, &lr)
	log.Printf("load done: %+v; stopping", lr)
	time.Sleep(500 * time.Millisecond)
	cpu := benchkit.CPUSeconds(agent.Process.Pid) - cpu0
	rss := benchkit.PeakRSS(agent.Process.Pid)
	agent.Process.Signal(os.Interrupt)
	agent.Wait()
	td.Process.Signal(os.Interrupt)
	td.Wait()

	log.Printf("agent and tcpdump stopped; reading repositories")
	repoBytes, repo500, repoStreams := repositories(filepath.Join(tmp, "repos"))
	tdBytes := benchkit.FileSize(tdFile)
	tdPackets := benchkit.StatLine(tdErr.String(), "packets captured")
	agentDrops := benchkit.KV(agErr.String(), "dropped_kernel") + benchkit.KV(agErr.String(), "dropped_userspace")
	fmt.Fprintln(&report, "| measure | kflcap agent | tcpdump -w |")
	fmt.Fprintln(&report, "|---|---:|---:|")
	fmt.Fprintf(&report, "| HTTP requests (500s) sent | %d (%d) | same traffic |\n", lr.Requests, lr.Errors500)
	fmt.Fprintf(&report, "| connections with a 500 kept | %d of %d | all %d packets |\n", repo500, lr.Errors500, tdPackets)
	fmt.Fprintf(&report, "| selected streams/s | %.1f | – |\n", float64(repoStreams)/elapsed.Seconds())
	fmt.Fprintf(&report, "| bytes written | %d (%.1f KB/s) | %d (%.1f KB/s) |\n", repoBytes, float64(repoBytes)/elapsed.Seconds()/1e3, tdBytes, float64(tdBytes)/elapsed.Seconds()/1e3)
	fmt.Fprintf(&report, "| agent CPU s over the run / peak RSS | %.2f / %d MiB | – |\n", cpu, rss>>20)
	fmt.Fprintf(&report, "| drops | %d | %d |\n", agentDrops, benchkit.StatLine(tdErr.String(), "packets dropped by kernel"))
	ratio := 0.0
	if repoBytes > 0 {
		ratio = float64(tdBytes) / float64(repoBytes)
	}
	fmt.Fprintf(&report, "\ntcpdump wrote %.0f× the bytes of the agent's repositories (target ≥ 50×); every 500-carrying connection kept: %v.\n\n",
		ratio, repo500 == lr.Errors500)

	// --- scenario 2: RSS with ~130k concurrent UDP flows ---
	os.RemoveAll(filepath.Join(tmp, "repos"))
	os.RemoveAll(filepath.Join(tmp, "spool"))
	cfg2 := filepath.Join(tmp, "agent2.yaml")
	os.WriteFile(cfg2, []byte(fmt.Sprintf("kflPcapS3:\n  kflArr: [\"udp\"]\n  maxDuration: 5s\ncapture: {lookbackBytes: 0}\nspool: {dir: %s/spool}\nlocal: {dir: %s/repos}\n", tmp, tmp)), 0o644)
	agent2 := exec.Command("ip", "netns", "exec", pair.A, *bin, "agent", "--config", cfg2)
	var ag2 benchkit.SyncBuf
	agent2.Stderr = &ag2
	agent2.Start()
	benchkit.WaitFor("start-up", func() bool { return strings.Contains(ag2.String(), "msg=capturing") })
	flood := exec.Command("ip", "netns", "exec", pair.A, "trafgen", "-o", pair.IfA, "-i", trafgenCfg(tmp, true), "-q", "-P", "1", "-C", "-n", "400000", "-b", "60000pps")
	flood.Run()
	time.Sleep(time.Second)
	rss2 := benchkit.PeakRSS(agent2.Process.Pid)
	agent2.Process.Signal(os.Interrupt)
	agent2.Wait()
	flows := benchkit.KV(ag2.String(), "streams")
	fmt.Fprintf(&report, "Many flows: 400,000 UDP packets with random ports (almost every packet a new 5-tuple) and the job \"udp\" selecting every stream: the agent created %d streams, keeping at most 100,000 in its table (LRU eviction, counted), with a peak RSS of %d MiB (target < 300 MiB with 100k concurrent streams).\n", flows, rss2>>20)

	fmt.Print(report.String())
	if *out != "" {
		os.WriteFile(*out, report.Bytes(), 0o644)
	}
}

type loadResult struct {
	Requests, Errors500, Failures int64
}

// load runs HTTP clients: one request per connection, 1% to /status/500.
func load(args []string) {
	base := args[0]
	n, _ := strconv.Atoi(args[1])
	d, _ := time.ParseDuration(args[2])
	var res loadResult
	var reqs, e500, fails atomic.Int64
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
			for time.Now().Before(end) {
				path := "/status/200"
				if rand.IntN(100) == 0 {
					path = "/status/500"
				}
				resp, err := c.Get(base + path)
				if err != nil {
					fails.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				reqs.Add(1)
				if resp.StatusCode == 500 {
					e500.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	res.Requests, res.Errors500, res.Failures = reqs.Load(), e500.Load(), fails.Load()
	json.NewEncoder(os.Stdout).Encode(res)
}

func serve(addr string) {
	http.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if code == 0 {
			code = 200
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d\n%s", code, strings.Repeat("x", 512))
	})
	benchkit.Die("%v", http.ListenAndServe(addr, nil))
}

// repositories sums archive sizes and counts the 500 responses and streams
// in them (with tshark, on the merged pcaps).
func repositories(dir string) (bytes int64, with500 int64, streams int64) {
	archives, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz"))
	for _, a := range archives {
		bytes += benchkit.FileSize(a)
		x, _ := os.MkdirTemp("", "kflbx-")
		exec.Command("tar", "xzf", a, "-C", x).Run()
		var content struct {
			Streams []string `json:"l4_streams"`
			Merged  string   `json:"pcap_file_name"`
		}
		b, _ := os.ReadFile(filepath.Join(x, "content.json"))
		json.Unmarshal(b, &content)
		streams += int64(len(content.Streams))
		out, _ := exec.Command("tshark", "-r", filepath.Join(x, content.Merged), "-Y", "http.response.code == 500", "-T", "fields", "-e", "tcp.stream").Output()
		with500 += int64(strings.Count(string(out), "\n"))
		os.RemoveAll(x)
	}
	return
}

func trafgenCfg(tmp string, manyFlows bool) string {
	sport, dport, name := "4000", "dinc(5000, 5099)", "bg.cfg"
	if manyFlows {
		sport, dport, name = "drnd()", "drnd()", "flows.cfg"
	}
	p := filepath.Join(tmp, name)
	os.WriteFile(p, []byte(fmt.Sprintf("{\n  eth(da=%s),\n  ipv4(saddr=%s, daddr=%s),\n  udp(sport=%s, dport=%s),\n  fill(0x41, 18)\n}\n", pair.MAC(), pair.IPA, pair.IPB, sport, dport)), 0o644)
	return p
}
