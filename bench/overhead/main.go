// Command overhead measures what `kflcap agent` costs a node in steady
// state, beside tcpdump in the same run, on a namespace pair it creates
// (and removes, also on failure and Ctrl-C):
//
//   - idle: the agent as the DaemonSet runs it (capture on any, one KFL
//     job, Kubernetes names from a real kube-apiserver + etcd holding a
//     small cluster), no traffic, first without API changes, then with pod
//     churn (one pod on this node and one elsewhere change readiness each
//     second, and their endpointslices follow): CPU, RSS, goroutines, and
//     the API traffic each way, counted by the relay that carries the
//     agent's connection out of its namespace; tcpdump -i any -w /dev/null
//     beside it;
//   - attach latency: veth pairs created one after another in the agent's
//     namespace; for each, the time from the link's creation until the
//     agent logs the attachment, and until its metrics count a packet sent
//     on it;
//   - loaded: 64-byte UDP from trafgen at a fixed rate that both tools keep
//     up with (overhead, not drop behaviour), each tool alone, round-robin,
//     -runs times; medians, and the ratios agent/tcpdump;
//   - soak: the same traffic for longer (-soak) against one agent, whose
//     memory grows until its lookback ring and retention caps are full.
//
// Run as root: go run ./bench/overhead -kflcap bin/kflcap (make bench).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kflcap/kflcap/internal/benchkit"
	"github.com/kflcap/kflcap/internal/kubetest"
	"github.com/kflcap/kflcap/internal/netnstest"
)

var pair = benchkit.NewPair("kflbover")

const metricsAddr = "127.0.0.1:9750"

type options struct {
	bin                             string
	runs, rate, veths               int
	warmup, quiet, idle, dur, churn time.Duration
	soak                            time.Duration
	localPods, remotePods, services int
	tmp, agentCfg                   string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "kflcap", "bin/kflcap", "kflcap binary")
	out := flag.String("out", "", "also write the markdown report here")
	flag.IntVar(&o.runs, "runs", 3, "loaded: runs per configuration (medians reported)")
	flag.IntVar(&o.rate, "rate", 50000, "loaded: 64-byte UDP packets per second")
	flag.DurationVar(&o.dur, "duration", 6*time.Second, "loaded: traffic time per run")
	flag.DurationVar(&o.warmup, "warmup", 10*time.Second, "idle: time after start-up before measuring")
	flag.DurationVar(&o.quiet, "quiet", 15*time.Second, "idle: measured time without API changes")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle: measured time with pod churn (three windows)")
	flag.DurationVar(&o.churn, "churn", time.Second, "idle: interval of pod changes, on this node and elsewhere each")
	flag.IntVar(&o.veths, "veths", 25, "attach: veth pairs created one after another")
	flag.DurationVar(&o.soak, "soak", 90*time.Second, "also run one agent this long under the loaded traffic and follow its memory (0: skip)")
	flag.IntVar(&o.localPods, "local-pods", 30, "pods on the agent's node")
	flag.IntVar(&o.remotePods, "remote-pods", 200, "pods on other nodes")
	flag.IntVar(&o.services, "services", 50, "services (each with an endpointslice)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	abs, err := filepath.Abs(o.bin)
	if err != nil {
		benchkit.Die("%v", err)
	}
	o.bin = abs
	if _, err := os.Stat(o.bin); err != nil {
		benchkit.Die("%v (make build)", err)
	}

	benchkit.HandleSignals()
	ctx, cancel := context.WithCancel(context.Background())
	benchkit.AtExit(cancel)
	t := newProgramTB(ctx)
	o.tmp = t.TempDir()
	pair.Setup()
	// No router solicitations or DAD from the test veths: only the
	// benchmark's packets.
	for _, ns := range []string{pair.A, pair.B} {
		benchkit.Sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}

	log.Printf("starting etcd and kube-apiserver")
	t0 := time.Now()
	var kc *kubetest.Cluster
	spawn(func() { kc = kubetest.Start(t) })
	kc.GrantNodeReader(t) // the DaemonSet's ClusterRole, for the agent's user
	cl, err := populate(ctx, kc.Admin, o.localPods, o.remotePods, o.services)
	if err != nil {
		benchkit.Die("populate the cluster: %v", err)
	}
	log.Printf("API server up, %d pods here, %d elsewhere, %d services with endpointslices (%v)",
		len(cl.local), len(cl.remote), o.services, time.Since(t0).Round(time.Millisecond))
	fwd := netnstest.NewForward(t, pair.A, strings.TrimPrefix(kc.Host, "https://"))
	kubeconfig, err := writeKubeconfig(o.tmp, fwd.Addr, kc.User.BearerToken)
	if err != nil {
		benchkit.Die("%v", err)
	}
	o.agentCfg = writeAgentConfig(o.tmp, kubeconfig)
	sc := newScraper(pair.A, metricsAddr)

	var report bytes.Buffer
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	ver, _ := exec.Command(o.bin, "version").Output()
	tdVer, _ := exec.Command("tcpdump", "--version").Output()
	fmt.Fprintf(&report, "Run %s on %s, kernel %s, %d CPUs (load average at start %s); %s, %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, benchkit.Kernel(), benchkit.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "),
		strings.TrimSpace(string(ver)), strings.SplitN(strings.TrimSpace(string(tdVer)), "\n", 2)[0])
	fmt.Fprintf(&report, "The agent runs inside a network namespace with the DaemonSet's configuration (deploy/manifests/kflcap.yaml: "+
		"capture on `any`, ring 16 MiB, lookback 256 MiB, capture API and metrics on) and one KFL job, `http and response.status == 500`; "+
		"Kubernetes names come from a real kube-apiserver %s + etcd %s holding %d pods on the agent's node, %d on %d other nodes, "+
		"%d services and their endpointslices, read with the DaemonSet's RBAC (pods, services, endpointslices: get/list/watch). "+
		"CPU is the process's CPU time (threads' schedstat) over the window, in %% of one core; RSS is VmRSS now and VmHWM (peak).\n\n",
		kubetest.KubeVersion, kubetest.EtcdVersion, len(cl.local), len(cl.remote), otherNodes, o.services)

	agent := idle(ctx, &o, &report, cl, fwd, sc)
	attach(&o, &report, agent, sc)
	stopAgent(agent)
	loaded(&o, &report, sc)
	if o.soak > 0 {
		soak(&o, &report, sc)
	}

	fmt.Print(report.String())
	if *out != "" {
		if err := os.WriteFile(*out, report.Bytes(), 0o644); err != nil {
			benchkit.Die("%v", err)
		}
	}
	benchkit.RunCleanups()
}

func writeAgentConfig(dir, kubeconfig string) string {
	p := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`node: {name: %s, ip: 10.99.0.1, cluster: %s}
capture: {interfaces: [any], backend: auto, snaplen: 65535, ringBufferBytes: 16Mi, lookbackBytes: 256Mi}
kflPcapS3:
  kflArr: ["http and response.status == 500"]
  maxMinutes: 60
  maxL4Streams: 100000
spool: {dir: %s/spool, maxBytes: 10Gi}
local: {dir: %s/repos}
api: {listen: "127.0.0.1:9751", token: "overhead-bench-token"}
metrics: {listen: %q}
kubernetes: {kubeconfig: %s}
`, nodeName, clusterName, dir, dir, metricsAddr, kubeconfig)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		benchkit.Die("%v", err)
	}
	return p
}

// spawnReq carries work to the spawner thread.
var spawnReq = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread() // for good: the thread lives as long as the program
		for f := range spawnReq {
			f()
		}
	}()
}

// spawn runs f, which starts processes, on one thread that lives as long
// as the program. A child's Pdeathsig (kubetest's servers, the agent)
// fires when the thread that forked it ends, not the process, and the Go
// runtime ends a thread when a goroutine locked to it returns (a namespace
// helper whose way back failed, say): forked from that thread, the API
// server or the agent would be killed in mid-run.
func spawn(f func()) {
	done := make(chan struct{})
	spawnReq <- func() { defer close(done); f() }
	<-done
}

// proc is a process the benchmark started; it is killed at exit.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lineLog
	done chan struct{}
}

func start(name string, args ...string) *proc {
	p := &proc{name: name, cmd: exec.Command(args[0], args[1:]...), out: &lineLog{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	var err error
	spawn(func() { err = p.cmd.Start() })
	if err != nil {
		benchkit.Die("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	benchkit.AtExit(func() { p.stop(syscall.SIGKILL, 0) })
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitOutput waits for a line of output, dying with the output when the
// process ends first.
func (p *proc) waitOutput(subs ...string) {
	benchkit.WaitFor(p.name+" start-up", func() bool {
		if _, ok := p.out.first(subs...); ok {
			return true
		}
		if p.exited() {
			benchkit.Die("%s exited: %v\n%s", p.name, p.cmd.ProcessState, p.out.String())
		}
		return false
	})
}

// stop signals the process's group, waits up to grace, then kills it.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	syscall.Kill(-p.pid(), sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// startAgent starts the agent in namespace A and waits until it captures,
// serves metrics and has listed the Kubernetes objects.
func startAgent(o *options, sc *scraper) *proc {
	a := start("agent", "ip", "netns", "exec", pair.A, o.bin, "agent", "--config", o.agentCfg)
	a.waitOutput("msg=capturing")
	a.waitOutput("msg=\"serving metrics\"")
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m, err := sc.scrape()
		if err == nil && m.sum("kflcap_kube_synced") == 1 && m.sum("kflcap_kube_objects", `resource="pods"`) == float64(o.localPods) {
			break
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("synced %v, pods %v, watch errors %v, request errors %v", m.sum("kflcap_kube_synced"),
				m.sum("kflcap_kube_objects", `resource="pods"`), m.sum("kflcap_kube_watch_errors_total"), m.sum("kflcap_kube_request_errors_total"))
		}
		if time.Now().After(deadline) || a.exited() {
			benchkit.Die("the agent has not listed the cluster after 30 s: %s\n%s", last, lastLines(a.out.String(), 20))
		}
	}
	return a
}

func stopAgent(a *proc) {
	a.stop(syscall.SIGTERM, 30*time.Second)
	if st := a.cmd.ProcessState; st == nil || st.ExitCode() != 0 {
		log.Printf("agent exit: %v\n%s", st, lastLines(a.out.String(), 20))
	}
}

func startTcpdump(file string) *proc {
	td := start("tcpdump", "ip", "netns", "exec", pair.A, "tcpdump", "-i", "any", "-s", "65535", "-B", "16384", "-w", file)
	td.waitOutput("listening on")
	return td
}

// --- idle ---

// sample is a reading of both processes and the API relay. The scrape
// (for goroutines) sits between two CPU readings so that a window from
// one sample to the next does not pay for it.
type sample struct {
	at                time.Time
	agentCPU          float64 // before the scrape
	agentCPUAfter     float64 // after it
	tdCPU             float64
	up, down          int64
	goroutines, fds   float64
	events            float64
	attached          float64
	agentRSS, tdRSS   int64
	agentPeak, tdPeak int64
	agentRuns, tdRuns float64 // timeslices run, all threads
}

func takeSample(agent, td *proc, fwd *netnstest.Forward, sc *scraper) sample {
	s := sample{at: time.Now(), agentCPU: benchkit.CPUSeconds(agent.pid()), agentRuns: benchkit.Timeslices(agent.pid())}
	if td != nil {
		s.tdCPU, s.tdRuns = benchkit.CPUSeconds(td.pid()), benchkit.Timeslices(td.pid())
		s.tdRSS, s.tdPeak = benchkit.CurrentRSS(td.pid()), benchkit.PeakRSS(td.pid())
	}
	s.up, s.down = fwd.Bytes()
	s.agentRSS, s.agentPeak = benchkit.CurrentRSS(agent.pid()), benchkit.PeakRSS(agent.pid())
	m, err := sc.scrape()
	if err != nil {
		benchkit.Die("scrape the agent: %v", err)
	}
	s.goroutines, s.fds = m.sum("go_goroutines"), m.sum("process_open_fds")
	s.events, s.attached = m.sum("kflcap_kube_events_total"), m.sum("kflcap_attached_interfaces")
	s.agentCPUAfter = benchkit.CPUSeconds(agent.pid())
	return s
}

type window struct {
	secs                 float64
	agentPct, tdPct      float64
	agentWake, tdWake    float64 // thread wake-ups per second
	upPerMin, downPerMin float64
	events               float64
}

func between(a, b sample) window {
	w := window{secs: b.at.Sub(a.at).Seconds()}
	w.agentPct = 100 * (b.agentCPU - a.agentCPUAfter) / w.secs
	w.agentWake, w.tdWake = (b.agentRuns-a.agentRuns)/w.secs, (b.tdRuns-a.tdRuns)/w.secs
	w.tdPct = 100 * (b.tdCPU - a.tdCPU) / w.secs
	w.upPerMin = float64(b.up-a.up) / w.secs * 60
	w.downPerMin = float64(b.down-a.down) / w.secs * 60
	w.events = b.events - a.events
	return w
}

func idle(ctx context.Context, o *options, report *bytes.Buffer, cl *cluster, fwd *netnstest.Forward, sc *scraper) *proc {
	td := startTcpdump("/dev/null")
	up0, down0 := fwd.Bytes()
	t0 := time.Now()
	agent := startAgent(o, sc)
	startup := time.Since(t0)
	upSync, downSync := fwd.Bytes()
	log.Printf("idle: agent up and synced in %v (API: %d bytes down, %d up); warm-up %v", startup.Round(time.Millisecond), downSync-down0, upSync-up0, o.warmup)
	time.Sleep(o.warmup)

	s0 := takeSample(agent, td, fwd, sc)
	log.Printf("idle: %v without API changes", o.quiet)
	time.Sleep(o.quiet)
	s1 := takeSample(agent, td, fwd, sc)

	log.Printf("idle: %v with pod churn (a pod here and one elsewhere every %v)", o.idle, o.churn)
	pods0, slices0 := cl.podUpdates.Load(), cl.sliceUpdates.Load()
	cctx, stopChurn := context.WithCancel(ctx)
	churnDone := make(chan struct{})
	go func() { cl.churn(cctx, o.churn); close(churnDone) }()
	samples := []sample{s1}
	for range 3 {
		time.Sleep(o.idle / 3)
		samples = append(samples, takeSample(agent, td, fwd, sc))
	}
	stopChurn()
	<-churnDone
	podUpdates, sliceUpdates := cl.podUpdates.Load()-pods0, cl.sliceUpdates.Load()-slices0
	td.stop(syscall.SIGINT, 5*time.Second)

	quiet := between(s0, s1)
	var ws []window
	for i := 1; i < len(samples); i++ {
		ws = append(ws, between(samples[i-1], samples[i]))
	}
	churn := between(samples[0], samples[len(samples)-1])
	med := func(f func(window) float64) float64 {
		v := make([]float64, len(ws))
		for i, w := range ws {
			v[i] = f(w)
		}
		return median(v)
	}
	last := samples[len(samples)-1]
	log.Printf("idle: quiet agent %.3f%% tcpdump %.3f%%; churn agent %.3f%% tcpdump %.3f%%, API %.0f B/min down, %.0f up, %v kube events; goroutines %v→%v, RSS %d MiB",
		quiet.agentPct, quiet.tdPct, churn.agentPct, churn.tdPct, churn.downPerMin, churn.upPerMin, churn.events, s0.goroutines, last.goroutines, last.agentRSS>>20)
	if cl.errors.Load() > 0 {
		log.Printf("idle: %d churn API calls failed", cl.errors.Load())
	}

	fmt.Fprintf(report, "### idle\n\n")
	fmt.Fprintf(report, "No traffic. The agent started and listed the cluster in %.1f s (initial lists: %s down, %s up through the relay); "+
		"%v warm-up, then %v without API changes, then %v of churn: every %v a pod on the agent's node and one on another node "+
		"flip readiness (status update: restart count, container state, Ready condition) and their service's endpointslice follows — "+
		"%d pod status and %d endpointslice updates, of which the agent is sent this node's pods and every endpointslice "+
		"(it counted %.0f informer events). CPU with churn: median of three %v windows. tcpdump -i any -w /dev/null ran beside it in the same namespace.\n\n",
		startup.Seconds(), kb(downSync-down0), kb(upSync-up0), o.warmup, o.quiet, o.idle, o.churn, podUpdates, sliceUpdates, churn.events, o.idle/3)
	fmt.Fprintln(report, "| measure | kflcap agent | tcpdump -i any -w /dev/null | agent/tcpdump |")
	fmt.Fprintln(report, "|---|---:|---:|---:|")
	fmt.Fprintf(report, "| CPU, no API changes | %.3f %% | %.3f %% | %s |\n", quiet.agentPct, quiet.tdPct, ratio(quiet.agentPct, quiet.tdPct))
	ma, mt := med(func(w window) float64 { return w.agentPct }), med(func(w window) float64 { return w.tdPct })
	fmt.Fprintf(report, "| CPU, with pod churn | %.3f %% | %.3f %% | %s |\n", ma, mt, ratio(ma, mt))
	fmt.Fprintf(report, "| thread wake-ups per second, no API changes | %.0f | %.1f | %s |\n", quiet.agentWake, quiet.tdWake, ratio(quiet.agentWake, quiet.tdWake))
	fmt.Fprintf(report, "| RSS now / peak | %d / %d MiB | %d / %d MiB | %s |\n", last.agentRSS>>20, last.agentPeak>>20, last.tdRSS>>20, last.tdPeak>>20, ratio(float64(last.agentRSS), float64(last.tdRSS)))
	fmt.Fprintf(report, "| goroutines: after warm-up → after quiet → after churn | %.0f → %.0f → %.0f | – | |\n", s0.goroutines, s1.goroutines, last.goroutines)
	fmt.Fprintf(report, "| open fds: after warm-up → after churn | %.0f → %.0f | – | |\n", s0.fds, last.fds)
	fmt.Fprintf(report, "| API traffic, no changes (down / up) | %s / %s per min | – | |\n", kb(int64(quiet.downPerMin)), kb(int64(quiet.upPerMin)))
	fmt.Fprintf(report, "| API traffic, with churn (down / up) | %s / %s per min | – | |\n",
		kb(int64(med(func(w window) float64 { return w.downPerMin }))), kb(int64(med(func(w window) float64 { return w.upPerMin }))))
	perChange := 0.0
	if churn.events > 0 {
		perChange = float64(samples[len(samples)-1].down-samples[0].down) / churn.events
	}
	fmt.Fprintf(report, "\nWith churn the agent receives about %.0f bytes per object change it is sent (TLS records of watch events, HTTP/2 framing included).\n\n", perChange)
	return agent
}

// --- attach latency ---

func attach(o *options, report *bytes.Buffer, agent *proc, sc *scraper) {
	nsA, err := netns.GetFromName(pair.A)
	if err != nil {
		benchkit.Die("%v", err)
	}
	defer nsA.Close()
	nsB, err := netns.GetFromName(pair.B)
	if err != nil {
		benchkit.Die("%v", err)
	}
	defer nsB.Close()
	hA, err := netlink.NewHandleAt(nsA)
	if err != nil {
		benchkit.Die("%v", err)
	}
	defer hA.Close()
	hB, err := netlink.NewHandleAt(nsB)
	if err != nil {
		benchkit.Die("%v", err)
	}
	defer hB.Close()
	udp, err := inNS(pair.A, func() (net.PacketConn, error) { return net.ListenPacket("udp4", "0.0.0.0:0") })
	if err != nil {
		benchkit.Die("udp socket in %s: %v", pair.A, err)
	}
	defer udp.Close()
	before, err := sc.scrape()
	if err != nil {
		benchkit.Die("%v", err)
	}

	log.Printf("attach: %d veth pairs, one after another", o.veths)
	var adds, logged, counted, took []float64
	var slowest string
	for i := range o.veths {
		a, b := fmt.Sprintf("kflbv%02da", i), fmt.Sprintf("kflbv%02db", i)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b, PeerNamespace: netlink.NsFd(int(nsB))}
		adding := time.Now()
		if err := hA.LinkAdd(veth); err != nil {
			benchkit.Die("add %s: %v", a, err)
		}
		created := time.Now()
		adds = append(adds, ms(created.Sub(adding)))
		// What a CNI does next: addresses, up; then the pod sends.
		la, err := hA.LinkByName(a)
		if err != nil {
			benchkit.Die("%v", err)
		}
		lb, err := hB.LinkByName(b)
		if err != nil {
			benchkit.Die("%v", err)
		}
		must(hA.AddrAdd(la, mustAddr(fmt.Sprintf("10.97.%d.1/30", i))), "address "+a)
		must(hB.AddrAdd(lb, mustAddr(fmt.Sprintf("10.97.%d.2/30", i))), "address "+b)
		must(hB.LinkSetUp(lb), "set up "+b)
		must(hA.LinkSetUp(la), "set up "+a)
		// A permanent neighbour: every probe leaves at once, none waits
		// in ARP resolution (whose retry comes a second later).
		must(hA.NeighAdd(&netlink.Neigh{LinkIndex: la.Attrs().Index, State: netlink.NUD_PERMANENT,
			IP: net.ParseIP(fmt.Sprintf("10.97.%d.2", i)), HardwareAddr: lb.Attrs().HardwareAddr}), "neighbour on "+a)
		dst := &net.UDPAddr{IP: net.ParseIP(fmt.Sprintf("10.97.%d.2", i)), Port: 9}
		var seenAt time.Time
		for deadline := created.Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			udp.WriteTo([]byte("kflcap attach probe"), dst)
			m, err := sc.scrape()
			if err != nil {
				benchkit.Die("%v", err)
			}
			if m.sum("kflcap_packets_seen_total", `interface="`+a+`"`) > 0 {
				seenAt = time.Now()
				break
			}
		}
		// The line may come just after the count: the agent logs once
		// the attachment call has returned.
		var line stamped
		var ok bool
		for deadline := time.Now().Add(2 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			line, ok = agent.out.first("attached new interface", "interface="+a+" ")
		}
		if !ok || seenAt.IsZero() {
			syscall.Kill(agent.pid(), syscall.SIGQUIT) // goroutine dump
			time.Sleep(2 * time.Second)
			dump := filepath.Join(os.TempDir(), "kflbover-agent.log")
			os.WriteFile(dump, []byte(agent.out.String()), 0o644)
			benchkit.Die("%s not attached 5 s after its creation (log line %v, counted %v); the agent's output and goroutines are in %s", a, ok, !seenAt.IsZero(), dump)
		}
		logged = append(logged, ms(line.at.Sub(created)))
		counted = append(counted, ms(seenAt.Sub(created)))
		if d, err := time.ParseDuration(field(line.text, "took")); err == nil {
			took = append(took, ms(d))
		}
		if c := counted[len(counted)-1]; c >= maxOf(counted) {
			slowest = a
		}
		log.Printf("attach: %s logged after %.1f ms (took %s), counted after %.1f ms", a, logged[len(logged)-1], field(line.text, "took"), counted[len(counted)-1])
		if err := hA.LinkDel(la); err != nil {
			benchkit.Die("delete %s: %v", a, err)
		}
		agent.waitOutput("released removed interface", "interface="+a+" ")
	}
	time.Sleep(200 * time.Millisecond)
	after, err := sc.scrape()
	if err != nil {
		benchkit.Die("%v", err)
	}
	log.Printf("attach: log line median %.1f ms (max %.1f), first packet counted median %.1f ms (max %.1f, %s)",
		percentile(logged, 50), maxOf(logged), percentile(counted, 50), maxOf(counted), slowest)

	fmt.Fprintf(report, "### attach latency\n\n")
	fmt.Fprintf(report, "With the agent running on `any`, %d veth pairs created one after another in its namespace (the peer in the other namespace), "+
		"each as a CNI would: create (netlink), address both ends, up. Times from the creation request's return (the agent may see the new link, and start attaching, before that: then the time is near zero); \"counted\" is when the agent's "+
		"`kflcap_packets_seen_total{interface=…}` first counts a UDP packet that the benchmark sends on the new link every 5 ms "+
		"(metrics polled over a kept-alive connection, so it includes up to one poll of delay). Each veth is deleted after its measurement "+
		"and its release awaited.\n\n", o.veths)
	fmt.Fprintln(report, "| from the link's creation until | median | p90 | max |")
	fmt.Fprintln(report, "|---|---:|---:|---:|")
	fmt.Fprintf(report, "| (creating the veth pair: the netlink request itself) | %.1f ms | %.1f ms | %.1f ms |\n", percentile(adds, 50), percentile(adds, 90), maxOf(adds))
	fmt.Fprintf(report, "| the agent logs the attachment | %.1f ms | %.1f ms | %.1f ms |\n", percentile(logged, 50), percentile(logged, 90), maxOf(logged))
	fmt.Fprintf(report, "| its metrics count a packet sent on the link | %.1f ms | %.1f ms | %.1f ms |\n", percentile(counted, 50), percentile(counted, 90), maxOf(counted))
	if len(took) > 0 {
		fmt.Fprintf(report, "| (the attachment itself, the log's `took`) | %.2f ms | %.2f ms | %.2f ms |\n", percentile(took, 50), percentile(took, 90), maxOf(took))
	}
	fmt.Fprintf(report, "\nTarget: new pod veths attached within a second. Before → after the %d create/delete cycles: attached interfaces %.0f → %.0f, "+
		"goroutines %.0f → %.0f, open fds %.0f → %.0f.\n\n", o.veths,
		before.sum("kflcap_attached_interfaces"), after.sum("kflcap_attached_interfaces"),
		before.sum("go_goroutines"), after.sum("go_goroutines"), before.sum("process_open_fds"), after.sum("process_open_fds"))
}

func must(err error, what string) {
	if err != nil {
		benchkit.Die("%s: %v", what, err)
	}
}

func mustAddr(s string) *netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		benchkit.Die("%v", err)
	}
	return a
}

// field reads key=value from an slog text line.
func field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// --- loaded ---

type loadConfig struct {
	name string
	tool string // "", "agent", "tcpdump"
	file bool
}

var loadConfigs = []loadConfig{
	{name: "no capture"},
	{name: "kflcap agent", tool: "agent"},
	{name: "tcpdump -i any -w /dev/null", tool: "tcpdump"},
	{name: "tcpdump -i any -w file", tool: "tcpdump", file: true},
}

type loadResult struct {
	delivered  float64 // packets/s at the far end
	seen       float64 // packets the tool saw / captured
	dropped    float64
	cpu        float64 // tool CPU seconds over the traffic
	senderCPU  float64 // trafgen's CPU seconds (includes the in-kernel capture hooks it runs)
	rss, peak  int64
	goroutines float64
}

// trafgenConfig writes the capture benchmark's frames: 64-byte UDP to 100
// destination ports.
func trafgenConfig(o *options) string {
	p := filepath.Join(o.tmp, "udp64.cfg")
	cfg := fmt.Sprintf("{\n  eth(da=%s),\n  ipv4(saddr=%s, daddr=%s),\n  udp(sport=4000, dport=dinc(5000, 5099)),\n  fill(0x41, 18)\n}\n", pair.MAC(), pair.IPA, pair.IPB)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		benchkit.Die("%v", err)
	}
	return p
}

// startTrafgen sends n frames at rate from namespace A.
func startTrafgen(cfgPath string, n, rate int) (*exec.Cmd, *bytes.Buffer) {
	tg := exec.Command("ip", "netns", "exec", pair.A, "trafgen", "-o", pair.IfA, "-i", cfgPath, "-q", "-P", "1", "-C",
		"-n", fmt.Sprint(n), "-b", fmt.Sprintf("%dpps", rate))
	tg.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	var out bytes.Buffer
	tg.Stdout, tg.Stderr = &out, &out
	var err error
	spawn(func() { err = tg.Start() })
	if err != nil {
		benchkit.Die("trafgen: %v", err)
	}
	benchkit.AtExit(func() { syscall.Kill(-tg.Process.Pid, syscall.SIGKILL) })
	return tg, &out
}

func loaded(o *options, report *bytes.Buffer, sc *scraper) {
	cfgPath := trafgenConfig(o)
	results := map[string][]loadResult{}
	for r := range o.runs {
		for _, c := range loadConfigs {
			res := loadOnce(o, c, cfgPath, sc)
			log.Printf("loaded run %d %-28s delivered %.0f pps, seen %.0f, dropped %.0f, cpu %.3fs, sender cpu %.3fs, rss %d MiB (peak %d), goroutines %.0f",
				r+1, c.name, res.delivered, res.seen, res.dropped, res.cpu, res.senderCPU, res.rss>>20, res.peak>>20, res.goroutines)
			results[c.name] = append(results[c.name], res)
		}
	}
	med := map[string]loadResult{}
	for name, rs := range results {
		f := func(g func(loadResult) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = g(r)
			}
			return median(v)
		}
		med[name] = loadResult{
			delivered: f(func(r loadResult) float64 { return r.delivered }), seen: f(func(r loadResult) float64 { return r.seen }),
			dropped: f(func(r loadResult) float64 { return r.dropped }), cpu: f(func(r loadResult) float64 { return r.cpu }),
			senderCPU: f(func(r loadResult) float64 { return r.senderCPU }),
			rss:       int64(f(func(r loadResult) float64 { return float64(r.rss) })), peak: int64(f(func(r loadResult) float64 { return float64(r.peak) })),
			goroutines: f(func(r loadResult) float64 { return r.goroutines }),
		}
	}
	n := o.rate * int(o.dur.Seconds())
	fmt.Fprintf(report, "### loaded\n\n")
	fmt.Fprintf(report, "The capture benchmark's traffic, paced: trafgen --qdisc-path sends %d 64-byte UDP frames (100 destination ports) at %d packets/s "+
		"from namespace A over the veth, a rate every configuration keeps up with, so that this compares costs, not drops. "+
		"Each tool runs alone, started fresh for each run (the agent with its Kubernetes names, as in idle), round-robin, %d runs; medians. "+
		"Tool CPU is over the traffic (start-up excluded); sender CPU is trafgen's, which includes what the capture hooks cost in the kernel "+
		"on the sending path (the agent's TC program, tcpdump's packet socket tap).\n\n", n, o.rate, o.runs)
	fmt.Fprintln(report, "| configuration | delivered packets/s | seen | dropped | tool CPU s (% of one core) | sender CPU s | RSS now / peak | goroutines |")
	fmt.Fprintln(report, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range loadConfigs {
		m := med[c.name]
		seen, drop, cpu, rss, gr := "–", "–", "–", "–", "–"
		if c.tool != "" {
			seen, drop = fmt.Sprintf("%.0f", m.seen), fmt.Sprintf("%.0f", m.dropped)
			cpu = fmt.Sprintf("%.3f (%.1f %%)", m.cpu, 100*m.cpu/o.dur.Seconds())
			rss = fmt.Sprintf("%d / %d MiB", m.rss>>20, m.peak>>20)
		}
		if c.tool == "agent" {
			gr = fmt.Sprintf("%.0f", m.goroutines)
		}
		fmt.Fprintf(report, "| %s | %.0f | %s | %s | %s | %.3f | %s | %s |\n", c.name, m.delivered, seen, drop, cpu, m.senderCPU, rss, gr)
	}
	ag, tn, tf, none := med["kflcap agent"], med["tcpdump -i any -w /dev/null"], med["tcpdump -i any -w file"], med["no capture"]
	fmt.Fprintf(report, "\nRatios agent/tcpdump: **CPU %s (-w /dev/null), %s (-w file); RSS %s and %s**; sender CPU %s and %s.",
		ratio(ag.cpu, tn.cpu), ratio(ag.cpu, tf.cpu), ratio(float64(ag.rss), float64(tn.rss)), ratio(float64(ag.rss), float64(tf.rss)),
		ratio(ag.senderCPU, tn.senderCPU), ratio(ag.senderCPU, tf.senderCPU))
	perPkt := func(r loadResult) string {
		return fmt.Sprintf("%.0f ns", (r.senderCPU-none.senderCPU)/float64(n)*1e9)
	}
	fmt.Fprintf(report, " Per packet, on the sending CPU, against no capture: agent %s, tcpdump %s (/dev/null), %s (file); "+
		"per packet in the tool itself: agent %.0f ns, tcpdump %.0f ns and %.0f ns.\n\n",
		perPkt(ag), perPkt(tn), perPkt(tf), ag.cpu/float64(n)*1e9, tn.cpu/float64(n)*1e9, tf.cpu/float64(n)*1e9)
}

func loadOnce(o *options, c loadConfig, cfgPath string, sc *scraper) loadResult {
	var res loadResult
	var tool *proc
	file := "/dev/null"
	switch c.tool {
	case "agent":
		tool = startAgent(o, sc)
	case "tcpdump":
		if c.file {
			file = filepath.Join(o.tmp, "tcpdump.pcap")
			defer os.Remove(file)
		}
		tool = startTcpdump(file)
	}
	time.Sleep(time.Second) // settle after start-up
	var cpu0 float64
	var m0 metrics
	if tool != nil {
		cpu0 = benchkit.CPUSeconds(tool.pid())
	}
	if c.tool == "agent" {
		var err error
		if m0, err = sc.scrape(); err != nil {
			benchkit.Die("%v", err)
		}
		cpu0 = benchkit.CPUSeconds(tool.pid())
	}
	n := o.rate * int(o.dur.Seconds())
	rx0 := pair.RxPackets()
	t0 := time.Now()
	tg, tgOut := startTrafgen(cfgPath, n, o.rate)
	kill := time.AfterFunc(o.dur+15*time.Second, func() { syscall.Kill(-tg.Process.Pid, syscall.SIGKILL) })
	err := tg.Wait()
	kill.Stop()
	elapsed := time.Since(t0).Seconds()
	if err != nil {
		benchkit.Die("trafgen: %v\n%s", err, tgOut.String())
	}
	if ru, ok := tg.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.senderCPU = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	time.Sleep(500 * time.Millisecond) // let the tool drain
	res.delivered = float64(pair.RxPackets()-rx0) / elapsed
	if tool == nil {
		return res
	}
	res.cpu = benchkit.CPUSeconds(tool.pid()) - cpu0
	res.rss, res.peak = benchkit.CurrentRSS(tool.pid()), benchkit.PeakRSS(tool.pid())
	switch c.tool {
	case "agent":
		m1, err := sc.scrape()
		if err != nil {
			benchkit.Die("%v", err)
		}
		d := func(name string, labels ...string) float64 { return m1.sum(name, labels...) - m0.sum(name, labels...) }
		res.seen = d("kflcap_packets_seen_total", `interface="`+pair.IfA+`"`)
		res.dropped = d("kflcap_ringbuf_drops_total") + d("kflcap_copy_errors_total") + d("kflcap_userspace_drops_total")
		res.goroutines = m1.sum("go_goroutines")
		stopAgent(tool)
	case "tcpdump":
		tool.stop(syscall.SIGINT, 10*time.Second)
		out := tool.out.String()
		res.seen = float64(benchkit.StatLine(out, "packets captured"))
		res.dropped = float64(benchkit.StatLine(out, "packets dropped by kernel"))
	}
	return res
}

// soak follows the agent's memory under the loaded traffic for longer:
// the lookback ring and the streams' retained packets fill over minutes.
func soak(o *options, report *bytes.Buffer, sc *scraper) {
	cfgPath := trafgenConfig(o)
	agent := startAgent(o, sc)
	time.Sleep(time.Second)
	log.Printf("soak: %v of traffic at %d packets/s", o.soak, o.rate)
	n := o.rate * int(o.soak.Seconds())
	cpu0 := benchkit.CPUSeconds(agent.pid())
	t0 := time.Now()
	tg, _ := startTrafgen(cfgPath, n, o.rate)
	done := make(chan struct{})
	go func() { tg.Wait(); close(done) }()
	type point struct {
		at             time.Duration
		rss            int64
		heap, overflow float64
	}
	var points []point
	tick := time.NewTicker(o.soak / 6)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
		}
		if !running && len(points) > 0 && time.Since(t0)-points[len(points)-1].at < 2*time.Second {
			break // the last tick was the end
		}
		m, err := sc.scrape()
		if err != nil {
			benchkit.Die("%v", err)
		}
		points = append(points, point{time.Since(t0).Round(time.Second), benchkit.CurrentRSS(agent.pid()),
			m.sum("go_memstats_heap_inuse_bytes"), m.sum("kflcap_userspace_drops_total", `stage="retain_overflow"`)})
		p := points[len(points)-1]
		log.Printf("soak: %v rss %d MiB, heap in use %.0f MiB, retain overflow %.0f", p.at, p.rss>>20, p.heap/(1<<20), p.overflow)
	}
	cpu := benchkit.CPUSeconds(agent.pid()) - cpu0
	m, _ := sc.scrape()
	drops := m.sum("kflcap_ringbuf_drops_total") + m.sum("kflcap_copy_errors_total")
	stopAgent(agent)
	fmt.Fprintf(report, "### memory under sustained traffic\n\n")
	fmt.Fprintf(report, "The loaded traffic for %v against one agent (%d packets; agent CPU %.1f %% of one core, %.0f kernel drops). "+
		"The lookback ring (256 MiB) and the packets retained per stream for a later selection fill over time:\n\n", o.soak, n, 100*cpu/time.Since(t0).Seconds(), drops)
	fmt.Fprintln(report, "| after | agent RSS | Go heap in use | `kflcap_userspace_drops_total{stage=\"retain_overflow\"}` |")
	fmt.Fprintln(report, "|---:|---:|---:|---:|")
	for _, p := range points {
		fmt.Fprintf(report, "| %v | %d MiB | %.0f MiB | %.0f |\n", p.at, p.rss>>20, p.heap/(1<<20), p.overflow)
	}
	fmt.Fprintln(report)
}

// --- numbers ---

func median(v []float64) float64 { return percentile(v, 50) }

// percentile is the nearest-rank percentile (p in 0..100).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if p == 50 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	i := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func maxOf(v []float64) float64 { return percentile(v, 100) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b float64) string {
	switch r := a / b; {
	case b == 0:
		return "n/a"
	case r >= 100:
		return fmt.Sprintf("%.0f×", r)
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	default:
		return fmt.Sprintf("%.2f×", r)
	}
}

func kb(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 10<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
