package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/kubetest"
	"github.com/kflcap/kflcap/internal/netnstest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// get fetches url from namespace ns on a new connection and returns the
// client port curl used.
func get(t *testing.T, ns, url string) string {
	t.Helper()
	return strings.TrimSpace(netnstest.Exec(t, ns, "curl", "-sS", "-o", "/dev/null", "-w", "%{local_port}", url))
}

// keptPorts returns the client ports of the TCP connections to port svc in
// job index's repositories (merged pcaps, read by tshark), sorted.
func keptPorts(t *testing.T, repos []repo, index int, svc int) []string {
	t.Helper()
	var ports []string
	for _, r := range repos {
		if r.content["kfl_index"] != float64(index) {
			continue
		}
		for port := range flows(t, r.files[fmt.Sprint(r.content["pcap_file_name"])], "tcp", svc) {
			ports = append(ports, port)
		}
	}
	slices.Sort(ports)
	return ports
}

// historyNames returns, for one key, every name a job's repositories'
// name_resolution_history.json gives it, with the second it was learnt.
func historyNames(repos []repo, index int, key string) map[string]int64 {
	out := map[string]int64{}
	for _, r := range repos {
		if r.content["kfl_index"] != float64(index) {
			continue
		}
		for sec, m := range r.history {
			if rec, ok := m[key]; ok {
				s, _ := strconv.ParseInt(sec, 10, 64)
				out[rec["FullAddress"]] = s
			}
		}
	}
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// TestAgentKubernetesNames runs the agent, in its namespace, against a
// real kube-apiserver (reached through a relay, as a pod on the host
// network reaches it), with only the documented RBAC rights. Pods,
// services and endpointslices change while traffic flows; queries on
// names, namespaces and labels select the right connections at each
// moment, and each repository's name history says which pod an address
// was, also for a pod deleted mid-run.
func TestAgentKubernetesNames(t *testing.T) {
	p := netnstest.NewPair(t)
	startServersForAgent(t, p)
	kc := kubetest.Start(t)
	cs := kc.AdminClient
	ctx := context.Background()
	kc.GrantNodeReader(t)
	for _, ns := range []string{"shop", "front"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	runPod := func(ns, name string, labels map[string]string, ip string) {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none"}}},
		}
		pod, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status.Phase, pod.Status.PodIP, pod.Status.PodIPs = corev1.PodRunning, ip, []corev1.PodIP{{IP: ip}}
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	slice := func(podName string) *discoveryv1.EndpointSlice {
		port, proto, pname := int32(8080), corev1.ProtocolTCP, "http"
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "web-x1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port, Protocol: &proto}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{p.IPB},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: podName}}},
		}
	}

	// The cluster before the agent starts: a client pod and web-1 (the
	// HTTP server's address) behind the service web.
	runPod("front", "client-1", map[string]string{"app": "client"}, p.IPA)
	runPod("shop", "web-1", map[string]string{"app": "web", "version": "1"}, p.IPB)
	svc, err := cs.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("shop").Create(ctx, slice("web-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The agent reaches the API server through a relay inside its
	// namespace, as the user with the DaemonSet's rights.
	fwd := netnstest.NewForward(t, p.A, strings.TrimPrefix(kc.Host, "https://"))
	dir := t.TempDir()
	b, err := os.ReadFile(kc.UserKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	os.WriteFile(kubeconfig, []byte(strings.ReplaceAll(string(b), kc.Host, "https://"+fwd.Addr)), 0o600)
	queries := []string{
		`http and dst.name == "web-1" and dst.labels.app == "web"`,
		`http and dst.name == "web-2" and dst.labels.version == "2"`,
		`http and src.namespace == "front" and src.name.startsWith("client-") and dst.namespace == "shop"`,
	}
	cfg := fmt.Sprintf(`node: {name: node-a, ip: %s}
capture: {interfaces: [any]}
kubernetes: {kubeconfig: %s}
kflPcapS3:
  kflArr: [%q, %q, %q]
  verbose: true
spool: {dir: %s/spool}
local: {dir: %s/repos}
`, p.IPA, kubeconfig, queries[0], queries[1], queries[2], dir, dir)
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	env := startAgent(t, p, dir, cfgPath)
	if v := waitMetric(t, p.A, 1, "kflcap_kube_synced"); v != 1 {
		t.Fatalf("the agent did not sync with the API server; relay errors %v; agent:\n%s", fwd.Errors(), env.agent.Stderr())
	}
	url := "http://" + p.IPB + ":8080/"

	// Phase 1: the server is web-1. Names are resolved when an entry is
	// made; wait for those entries before the cluster changes.
	phase1 := []string{get(t, p.A, url), get(t, p.A, url), get(t, p.A, url)}
	t1 := time.Now()
	needMetric(t, 10*time.Second, p.A, metricsAddr, 3, "kflcap_kfl_matches_total", `job="0"`)
	events := metricValue(t, scrape(t, p.A, metricsAddr), "kflcap_kube_events_total")

	// web-1 is deleted mid-run and web-2 takes its address (a new
	// version of the deployment); the service's slice follows. This sleep
	// is the test's subject, not a wait: the name history is kept per
	// second, and the change must fall in a later second than phase 1.
	time.Sleep(time.Until(t1.Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	t2 := time.Now()
	if err := cs.CoreV1().Pods("shop").Delete(ctx, "web-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	runPod("shop", "web-2", map[string]string{"app": "web", "version": "2"}, p.IPB)
	if _, err := cs.DiscoveryV1().EndpointSlices("shop").Update(ctx, slice("web-2"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The traffic that must be named web-2 waits for the agent's watches
	// to deliver the four changes: web-1 deleted, web-2 created and given
	// its address, the slice updated.
	needMetric(t, 10*time.Second, p.A, metricsAddr, events+4, "kflcap_kube_events_total")

	// Phase 2: the server is web-2.
	phase2 := []string{get(t, p.A, url), get(t, p.A, url)}
	env.stop(t)
	repos := readRepos(t, env.local)
	if len(repos) == 0 {
		t.Fatalf("no repositories; agent:\n%s", env.agent.Stderr())
	}
	for _, r := range repos {
		idx := int(r.content["kfl_index"].(float64))
		checkShape(t, r, idx, queries[idx])
	}

	// Each query kept exactly the connections of its time, every packet
	// of them (tcpdump's count per connection).
	oracle := flows(t, env.oracle, "tcp", 8080)
	for i, want := range [][]string{sorted(phase1...), sorted(phase2...), sorted(append(phase1, phase2...)...)} {
		got := keptPorts(t, repos, i, 8080)
		if !slices.Equal(got, want) {
			t.Errorf("job %d (%s) kept connections %v, want %v", i, queries[i], got, want)
		}
		for _, r := range repos {
			if r.content["kfl_index"] != float64(i) {
				continue
			}
			for port, n := range flows(t, r.files[fmt.Sprint(r.content["pcap_file_name"])], "tcp", 8080) {
				if n != oracle[port] {
					t.Errorf("job %d, connection %s: %d packets, tcpdump saw %d", i, port, n, oracle[port])
				}
			}
		}
	}

	// The name histories: job 0's repository (phase 1 only), sealed
	// after web-1 was deleted, still names the server web-1; job 1's
	// (phase 2 only) names it web-2, learnt at t2; job 2's, spanning
	// both, has both, each at its time. The client and the service
	// (cluster IP and port) are named too.
	for _, c := range []struct {
		job  int
		key  string
		name string
		from time.Time
		to   time.Time
	}{
		{0, p.IPB, "web-1", time.Time{}, t1},
		{0, p.IPA, "client-1", time.Time{}, t1},
		{0, svc.Spec.ClusterIP + ":80", "web.shop", time.Time{}, t1},
		{1, p.IPB, "web-2", t2, time.Now()},
		{2, p.IPA, "client-1", time.Time{}, t1},
		{2, p.IPB, "web-1", time.Time{}, t1},
		{2, p.IPB, "web-2", t2, time.Now()},
	} {
		names := historyNames(repos, c.job, c.key)
		sec, ok := names[c.name]
		if !ok {
			t.Errorf("job %d history: %s is never %s (%v)", c.job, c.key, c.name, names)
			continue
		}
		if sec < c.from.Unix() || sec > c.to.Unix() {
			t.Errorf("job %d history: %s → %s at %d, want within [%d, %d]", c.job, c.key, c.name, sec, c.from.Unix(), c.to.Unix())
		}
	}
	for _, r := range repos {
		for sec, m := range r.history {
			if rec, ok := m[p.IPB]; ok && rec["FullAddress"] != "web-1" && rec["FullAddress"] != "web-2" {
				t.Errorf("%s: history at %s names the server %v", r.name, sec, rec)
			}
			if rec, ok := m[p.IPB]; ok && rec["Namespace"] != "shop" {
				t.Errorf("%s: history at %s: namespace %q", r.name, sec, rec["Namespace"])
			}
		}
	}

	// The relay carried the agent's list and watch traffic: the lists at
	// start and the few events since, not a stream of re-lists.
	if t.Failed() {
		t.Logf("agent:\n%s\nrelay errors: %v", env.agent.Stderr(), fwd.Errors())
	}
	up, down := fwd.Bytes()
	t.Logf("API server traffic: %d bytes up, %d down", up, down)
	if down == 0 {
		t.Error("nothing came from the API server through the relay")
	}
	if log := env.agent.Stderr(); !strings.Contains(log, "resolving names from the Kubernetes API") ||
		strings.Contains(log, "Kubernetes names unavailable") || strings.Contains(log, "not synced yet") {
		t.Errorf("agent log:\n%s", env.agent.Stderr())
	}
}

// TestAgentDNSAndHostsNames: addresses outside Kubernetes are named by
// the DNS answers the agent sees and by /etc/hosts, and queries select on
// those names. A connection made before its name was seen in DNS is not
// named. Entries whose client is the node itself are outgoing; those from
// elsewhere are not.
func TestAgentDNSAndHostsNames(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "python3", "curl", "dig", "dnsmasq", "tshark", "tcpdump")
	const other = "10.99.0.3"
	netnstest.Exec(t, p.B, "ip", "addr", "add", other+"/24", "dev", p.IfB)
	netnstest.Start(t, p.B, "python3", "testdata/statusserver.py", p.IPB, "8080")
	netnstest.Start(t, p.B, "python3", "testdata/statusserver.py", other, "8080")
	netnstest.Start(t, p.B, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--listen-address="+p.IPB, "--bind-interfaces",
		"--address=/web.example.test/"+other, "--pid-file=")
	netnstest.WaitListening(t, p.B, "tcp", 8080)
	netnstest.WaitListening(t, p.B, "udp", 53)

	// ip netns exec mounts /etc/netns/<ns>/hosts over /etc/hosts.
	etc := filepath.Join("/etc/netns", p.A)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n"+p.IPB+" status.hosts.test status\n"), 0o644)

	dir := t.TempDir()
	queries := []string{`http and dst.name == "web.example.test"`, `http and dst.name == "status.hosts.test"`,
		`http and outgoing`, `http and not outgoing`}
	cfg := fmt.Sprintf(`node: {name: test-node, ip: %s}
capture: {interfaces: [any]}
kubernetes: {enabled: "false"}
kflPcapS3:
  kflArr: [%q, %q, %q, %q]
spool: {dir: %s/spool}
local: {dir: %s/repos}
`, p.IPA, queries[0], queries[1], queries[2], queries[3], dir, dir)
	// A server in the agent's namespace: B's requests to it are incoming.
	netnstest.Start(t, p.A, "python3", "testdata/statusserver.py", p.IPA, "8081")
	netnstest.WaitListening(t, p.A, "tcp", 8081)
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	env := startAgent(t, p, dir, cfgPath)

	incoming := get(t, p.B, "http://"+p.IPA+":8081/")
	before := get(t, p.A, "http://"+other+":8080/")
	// Both entries are made (their names looked up) before the DNS answer
	// comes: in one ring batch, the answer could reach its dissector
	// worker before the earlier connection's response reaches another.
	needMetric(t, 10*time.Second, p.A, metricsAddr, 2, "kflcap_entries_total", `protocol="http"`)
	if out := netnstest.Exec(t, p.A, "dig", "+short", "+tries=1", "+time=2", "@"+p.IPB, "web.example.test"); strings.TrimSpace(out) != other {
		t.Fatalf("dig web.example.test: %q", out)
	}
	// The answer is dissected (and the name learnt) before the next
	// connection starts.
	waitMetric(t, p.A, 1, "kflcap_entries_total", `protocol="dns"`)
	after := get(t, p.A, "http://"+other+":8080/")
	// The agent stops at once: the last connection is still in the ring
	// when the programs are detached, and must be decoded all the same.
	hosts := get(t, p.A, "http://"+p.IPB+":8080/")
	env.stop(t)
	if m := regexp.MustCompile(`msg=stopped packets_seen=(\d+)`).FindStringSubmatch(env.agent.Stderr()); m == nil || m[1] == "0" {
		t.Errorf("the stop summary does not count the packets seen: %v", m)
	}
	repos := readRepos(t, env.local)
	for _, r := range repos {
		idx := int(r.content["kfl_index"].(float64))
		checkShape(t, r, idx, queries[idx])
	}
	if got := keptPorts(t, repos, 0, 8080); !slices.Equal(got, []string{after}) {
		t.Errorf("DNS-named job kept %v, want only %s (the connection before the answer, %s, has no name)", got, after, before)
	}
	if got := keptPorts(t, repos, 1, 8080); !slices.Equal(got, []string{hosts}) {
		t.Errorf("hosts-named job kept %v, want %s", got, hosts)
	}
	// Outgoing: the client is this node (its addresses).
	if got := keptPorts(t, repos, 2, 8080); !slices.Equal(got, sorted(before, after, hosts)) {
		t.Errorf("outgoing kept %v, want the agent's side's connections %v", got, sorted(before, after, hosts))
	}
	if got := keptPorts(t, repos, 3, 8081); !slices.Equal(got, []string{incoming}) {
		t.Errorf("not outgoing kept %v, want B's connection %s", got, incoming)
	}
	if got := keptPorts(t, repos, 2, 8081); len(got) != 0 {
		t.Errorf("outgoing kept B's connection %v", got)
	}
	if n := historyNames(repos, 0, other); n["web.example.test"] == 0 {
		t.Errorf("job 0 history for %s: %v", other, n)
	}
	if n := historyNames(repos, 1, p.IPB); n["status.hosts.test"] == 0 {
		t.Errorf("job 1 history for %s: %v", p.IPB, n)
	}
}
