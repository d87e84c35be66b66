// Command capture benchmarks kflcap's capture path against tcpdump on a veth
// pair between two network namespaces it creates (and removes).
//
// Traffic: trafgen (netsniff-ng, --qdisc-path so the TC egress hook runs)
// sending 64-byte UDP frames (60 bytes + FCS) to 100 destination ports, and
// iperf3 TCP. Configurations per traffic kind: no capture; tcpdump -w
// /dev/null; tcpdump -w file; kflcap -w /dev/null; kflcap -w file; kflcap
// --kfl with a query selecting 1% of the UDP traffic (one port of 100).
// Configurations run round-robin, -runs times, and the report gives medians.
//
// Run as root: go run ./bench/capture (make bench).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kflcap/kflcap/internal/benchkit"
)

var pair = benchkit.NewPair("kflbench")

type config struct {
	name         string
	tool         string // "", "tcpdump", "kflcap"
	toFile       bool
	oneInHundred bool
}

var configs = []config{
	{name: "no capture"},
	{name: "tcpdump -w /dev/null", tool: "tcpdump"},
	{name: "tcpdump -w file", tool: "tcpdump", toFile: true},
	{name: "kflcap -w /dev/null", tool: "kflcap"},
	{name: "kflcap -w file", tool: "kflcap", toFile: true},
	{name: "kflcap --kfl 'udp and dst.port == 5000' (1%) -w /dev/null", tool: "kflcap", oneInHundred: true},
}

type result struct {
	deliveredPPS float64 // packets/s received at the far end
	gbps         float64 // iperf3 only
	captured     int64
	dropped      int64
	cpuSec       float64 // capture process user+system CPU
}

func main() {
	bin := flag.String("kflcap", "bin/kflcap", "kflcap binary")
	dur := flag.Duration("duration", 5*time.Second, "traffic time per run")
	runs := flag.Int("runs", 3, "runs per configuration (median reported)")
	kinds := flag.String("traffic", "udp64,tcp", "traffic kinds: udp64, tcp")
	out := flag.String("out", "", "also write the markdown report here")
	flag.Parse()
	log.SetFlags(0)
	abs, err := filepath.Abs(*bin)
	if err != nil {
		benchkit.Die("%v", err)
	}
	*bin = abs

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; pair.Cleanup(); os.Exit(1) }()
	defer pair.Cleanup()
	pair.Setup()

	tmp, err := os.MkdirTemp("", "kflbench-")
	if err != nil {
		benchkit.Die("%v", err)
	}
	defer os.RemoveAll(tmp)

	var report bytes.Buffer
	hostname, _ := os.Hostname()
	fmt.Fprintf(&report, "Run %s on %s, kernel %s, %d CPUs; %d runs of %v each, medians.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), hostname, benchkit.Kernel(), benchkit.NumCPU(), *runs, *dur)
	for _, kind := range strings.Split(*kinds, ",") {
		results := map[string][]result{}
		for r := 0; r < *runs; r++ {
			for _, c := range configs {
				if c.oneInHundred && kind != "udp64" {
					continue
				}
				res := runOnce(*bin, kind, c, *dur, tmp)
				log.Printf("%s run %d %-40s delivered %.0f pps, %.2f Gbit/s, captured %d, dropped %d, cpu %.2fs",
					kind, r+1, c.name, res.deliveredPPS, res.gbps, res.captured, res.dropped, res.cpuSec)
				results[c.name] = append(results[c.name], res)
			}
		}
		writeTable(&report, kind, results)
	}
	fmt.Print(report.String())
	if *out != "" {
		if err := os.WriteFile(*out, report.Bytes(), 0o644); err != nil {
			benchkit.Die("%v", err)
		}
	}
}

func writeTable(w *bytes.Buffer, kind string, results map[string][]result) {
	fmt.Fprintf(w, "### %s\n\n", map[string]string{"udp64": "64-byte UDP frames (trafgen --qdisc-path, 1 sender CPU)", "tcp": "TCP (iperf3, 1 stream)"}[kind])
	fmt.Fprintln(w, "| configuration | delivered packets/s | Gbit/s | captured | dropped | capture CPU s |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	med := map[string]result{}
	for _, c := range configs {
		rs := results[c.name]
		if len(rs) == 0 {
			continue
		}
		m := result{
			deliveredPPS: median(rs, func(r result) float64 { return r.deliveredPPS }),
			gbps:         median(rs, func(r result) float64 { return r.gbps }),
			captured:     int64(median(rs, func(r result) float64 { return float64(r.captured) })),
			dropped:      int64(median(rs, func(r result) float64 { return float64(r.dropped) })),
			cpuSec:       median(rs, func(r result) float64 { return r.cpuSec }),
		}
		med[c.name] = m
		capt, drop := fmt.Sprint(m.captured), fmt.Sprint(m.dropped)
		if c.tool == "" {
			capt, drop = "–", "–"
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %s | %s | %.3f |\n", c.name, m.deliveredPPS, m.gbps, capt, drop, m.cpuSec)
	}
	ratio := func(a, b string, f func(result) float64) string {
		x, y := f(med[a]), f(med[b])
		if y == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	pps := func(r result) float64 { return r.deliveredPPS }
	cpu := func(r result) float64 { return r.cpuSec }
	fmt.Fprintf(w, "\nRatios kflcap/tcpdump: delivered packets/s %s (-w /dev/null), %s (-w file); capture CPU %s (/dev/null), %s (file).\n",
		ratio("kflcap -w /dev/null", "tcpdump -w /dev/null", pps), ratio("kflcap -w file", "tcpdump -w file", pps),
		ratio("kflcap -w /dev/null", "tcpdump -w /dev/null", cpu), ratio("kflcap -w file", "tcpdump -w file", cpu))
	const onePct = "kflcap --kfl 'udp and dst.port == 5000' (1%) -w /dev/null"
	if _, ok := med[onePct]; ok {
		fmt.Fprintf(w, "A query selecting 1%% (pushed down into the kernel prefilter): CPU %s of the unfiltered kflcap run.\n",
			ratio(onePct, "kflcap -w /dev/null", cpu))
	}
	fmt.Fprintln(w)
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func runOnce(bin, kind string, c config, dur time.Duration, tmp string) result {
	var res result
	outFile := "/dev/null"
	if c.toFile {
		outFile = filepath.Join(tmp, "cap")
		defer os.Remove(outFile)
	}
	var capCmd *exec.Cmd
	var capErr bytes.Buffer
	switch c.tool {
	case "tcpdump":
		capCmd = exec.Command("ip", "netns", "exec", pair.A, "tcpdump", "-i", pair.IfA, "-s", "65535", "-B", "16384", "-w", outFile)
	case "kflcap":
		args := []string{"capture", "--netns", pair.A, "-i", pair.IfA, "-w", outFile}
		if c.oneInHundred {
			// One port of the hundred: the query's pushdown becomes the
			// kernel prefilter, and the dissector sees only that 1%.
			args = append(args, "--kfl", "udp and dst.port == 5000")
		}
		capCmd = exec.Command(bin, args...)
	}
	if capCmd != nil {
		capCmd.Stderr = &capErr
		if err := capCmd.Start(); err != nil {
			benchkit.Die("start %s: %v", c.tool, err)
		}
		ready := map[string]string{"tcpdump": "listening on", "kflcap": "capturing on"}[c.tool]
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(capErr.String(), ready) {
			if time.Now().After(deadline) {
				benchkit.Die("%s not ready: %s", c.tool, capErr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var cpu0 float64
	if capCmd != nil {
		cpu0 = benchkit.CPUSeconds(capCmd.Process.Pid) // start-up (loading, attaching) is not counted
	}
	rx0 := pair.RxPackets()
	t0 := time.Now()
	switch kind {
	case "udp64":
		cmd := exec.Command("ip", "netns", "exec", pair.A, "timeout", "-s", "INT", fmt.Sprint(dur.Seconds()),
			"trafgen", "-o", pair.IfA, "-i", trafgenConfig(tmp), "-q", "-P", "1", "-C")
		cmd.Run() // ends by timeout's SIGINT
	case "tcp":
		srv := exec.Command("ip", "netns", "exec", pair.B, "iperf3", "-s", "-1", "-B", pair.IPB)
		srv.Start()
		time.Sleep(300 * time.Millisecond)
		t0 = time.Now()
		rx0 = pair.RxPackets()
		out, err := exec.Command("ip", "netns", "exec", pair.A, "iperf3", "-c", pair.IPB, "-t", fmt.Sprint(int(dur.Seconds())), "-J").Output()
		if err != nil {
			benchkit.Die("iperf3: %v", err)
		}
		srv.Wait()
		var j struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		json.Unmarshal(out, &j)
		res.gbps = j.End.SumReceived.BitsPerSecond / 1e9
	}
	elapsed := time.Since(t0).Seconds()
	res.deliveredPPS = float64(pair.RxPackets()-rx0) / elapsed
	if capCmd != nil {
		time.Sleep(300 * time.Millisecond)
		res.cpuSec = benchkit.CPUSeconds(capCmd.Process.Pid) - cpu0
		capCmd.Process.Signal(os.Interrupt)
		capCmd.Wait()
		res.captured = benchkit.StatLine(capErr.String(), "packets captured")
		res.dropped = benchkit.StatLine(capErr.String(), "packets dropped by kernel") + benchkit.StatLine(capErr.String(), "packets dropped in user space")
	}
	return res
}

var trafgenCfg string

func trafgenConfig(tmp string) string {
	if trafgenCfg != "" {
		return trafgenCfg
	}
	trafgenCfg = filepath.Join(tmp, "udp64.cfg")
	cfg := fmt.Sprintf("{\n  eth(da=%s),\n  ipv4(saddr=%s, daddr=%s),\n  udp(sport=4000, dport=dinc(5000, 5099)),\n  fill(0x41, 18)\n}\n", pair.MAC(), pair.IPA, pair.IPB)
	if err := os.WriteFile(trafgenCfg, []byte(cfg), 0o644); err != nil {
		benchkit.Die("%v", err)
	}
	return trafgenCfg
}
