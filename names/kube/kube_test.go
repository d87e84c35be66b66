package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/internal/kubetest"
	"github.com/kflcap/kflcap/internal/netnstest"
	"github.com/kflcap/kflcap/names"
	"github.com/kflcap/kflcap/trigger"
)

var (
	_ dissect.Resolver    = (*Resolver)(nil)
	_ trigger.PodResolver = (*Resolver)(nil)
)

func resolvesTo(r *Resolver, ip string, port uint16, name, ns string) func() bool {
	a := netip.MustParseAddr(ip)
	return func() bool {
		n, s, _ := r.Resolve(a, port)
		return n == name && s == ns
	}
}

func pod(ns, name, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   node, // no scheduler: bound at creation
			Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none"}},
		},
	}
}

func service(ns, name string, port, target int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "p", Port: port, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// slice is an EndpointSlice of service svc: addresses → pod names ("" for
// no targetRef).
func slice(ns, name, svc string, port int32, eps map[string]string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("p"), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for addr, podName := range eps {
		ep := discoveryv1.Endpoint{Addresses: []string{addr}}
		if podName != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: podName}
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func ptr[T any](v T) *T { return &v }

// cluster wraps the admin client with the calls the tests make.
type cluster struct {
	t  *testing.T
	cs kubernetes.Interface
}

func (c cluster) ctx() context.Context { return context.Background() }

func (c cluster) namespace(name string) {
	c.t.Helper()
	if _, err := c.cs.CoreV1().Namespaces().Create(c.ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// runPod creates the pod and, as a kubelet would, sets its IP and phase
// through the status subresource.
func (c cluster) runPod(p *corev1.Pod, ip string) {
	c.t.Helper()
	p, err := c.cs.CoreV1().Pods(p.Namespace).Create(c.ctx(), p, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	if _, err := c.cs.CoreV1().Pods(p.Namespace).UpdateStatus(c.ctx(), p, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c cluster) deletePod(ns, name string) {
	c.t.Helper()
	// No kubelet confirms the deletion: grace period 0 removes it at once.
	if err := c.cs.CoreV1().Pods(ns).Delete(c.ctx(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		c.t.Fatal(err)
	}
}

func (c cluster) createService(s *corev1.Service) netip.Addr {
	c.t.Helper()
	s, err := c.cs.CoreV1().Services(s.Namespace).Create(c.ctx(), s, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	a, err := netip.ParseAddr(s.Spec.ClusterIP)
	if err != nil {
		c.t.Fatalf("service %s: cluster IP %q: %v", s.Name, s.Spec.ClusterIP, err)
	}
	return a
}

func (c cluster) applySlice(es *discoveryv1.EndpointSlice) {
	c.t.Helper()
	cur, err := c.cs.DiscoveryV1().EndpointSlices(es.Namespace).Get(c.ctx(), es.Name, metav1.GetOptions{})
	if err == nil {
		es.ResourceVersion = cur.ResourceVersion
		_, err = c.cs.DiscoveryV1().EndpointSlices(es.Namespace).Update(c.ctx(), es, metav1.UpdateOptions{})
	} else {
		_, err = c.cs.DiscoveryV1().EndpointSlices(es.Namespace).Create(c.ctx(), es, metav1.CreateOptions{})
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// nextSecond sleeps into the next wall-clock second, so that the history
// (kept per second) tells the steps of a test apart.
func nextSecond() time.Time {
	now := time.Now()
	next := now.Truncate(time.Second).Add(time.Second)
	time.Sleep(next.Sub(now) + 10*time.Millisecond)
	return time.Now()
}

// recordAt finds key's record in a history and the second it was made.
func recordAt(h map[string]map[string]names.Record, key, fullAddress string) (int64, bool) {
	for sec, m := range h {
		if r, ok := m[key]; ok && r.FullAddress == fullAddress {
			var s int64
			fmt.Sscan(sec, &s)
			return s, true
		}
	}
	return 0, false
}

// TestResolverAPIServer runs the resolver against a real kube-apiserver
// and etcd, as a user holding only the documented RBAC rights, watching
// the pods of node-a: pods, services and endpointslices are created,
// changed and deleted, and the answers and the history follow.
func TestResolverAPIServer(t *testing.T) {
	kc := kubetest.Start(t)
	c := cluster{t: t, cs: kc.AdminClient}
	kc.GrantNodeReader(t)
	c.namespace("shop")

	// Before the agent starts: a local pod behind a service, a remote pod
	// behind a service, and a remote pod behind none.
	c.runPod(pod("shop", "web-1", "node-a", map[string]string{"app": "web", "v": "1"}), "10.244.1.10")
	c.runPod(pod("shop", "db-1", "node-b", map[string]string{"app": "db"}), "10.244.2.20")
	c.runPod(pod("shop", "lonely", "node-b", nil), "10.244.2.30")
	webIP := c.createService(service("shop", "web", 80, 8080))
	dbIP := c.createService(service("shop", "db", 5432, 5432))
	c.applySlice(slice("shop", "web-x1", "web", 8080, map[string]string{"10.244.1.10": "web-1"}))
	c.applySlice(slice("shop", "db-x1", "db", 5432, map[string]string{"10.244.2.20": "db-1", "192.0.2.7": ""}))

	nm := names.New(0)
	t0 := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startGoroutines := runtime.NumGoroutine()
	r, err := Start(ctx, Options{
		Kubeconfig: kc.UserKubeconfig, NodeName: "node-a", Names: nm,
		Linger: 3 * time.Second, SyncTimeout: 30 * time.Second, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Stats().Synced {
		t.Fatalf("not synced after Start: %+v", r.Stats())
	}
	t1 := time.Now()

	// Initial state.
	for _, c := range []struct {
		ip       string
		port     uint16
		name, ns string
	}{
		{"10.244.1.10", 43210, "web-1", "shop"},     // local pod, any port
		{webIP.String(), 80, "web", "shop"},         // cluster IP:port
		{"10.244.2.20", 5432, "db-1", "shop"},       // remote pod, named by its endpointslice
		{dbIP.String(), 5432, "db", "shop"},         //
		{"192.0.2.7", 5432, "db", "shop"},           // endpoint without a pod: the service
		{"10.244.2.30", 80, "", ""},                 // remote pod behind no service: not watched
		{"10.96.0.1", 443, "kubernetes", "default"}, // the API server's own service
	} {
		if n, ns, _ := r.Resolve(netip.MustParseAddr(c.ip), c.port); n != c.name || ns != c.ns {
			t.Errorf("Resolve(%s, %d) = %q, %q; want %q, %q", c.ip, c.port, n, ns, c.name, c.ns)
		}
	}
	if _, _, l := r.Resolve(netip.MustParseAddr("10.244.1.10"), 80); l["app"] != "web" || l["v"] != "1" {
		t.Errorf("Resolve(web-1) labels %v", l)
	}
	if id, ok := r.Lookup(netip.MustParseAddr("10.244.1.10")); !ok || id.Kind != KindPod || id.Labels["app"] != "web" {
		t.Errorf("Lookup(web-1) = %+v, %v", id, ok)
	}
	// Local: this node's pods only (db-1 is known, from its endpointslice,
	// but runs on node-b).
	if !r.Local(netip.MustParseAddr("10.244.1.10")) || r.Local(netip.MustParseAddr("10.244.2.20")) || r.Local(webIP) {
		t.Errorf("Local: web-1 %v, db-1 %v, the web service %v; want true, false, false",
			r.Local(netip.MustParseAddr("10.244.1.10")), r.Local(netip.MustParseAddr("10.244.2.20")), r.Local(webIP))
	}
	if a, ok := r.PodIP("shop", "web-1"); !ok || a.String() != "10.244.1.10" {
		t.Errorf("PodIP(shop, web-1) = %v, %v", a, ok)
	}
	if a, ok := r.PodIP("shop", "db-1"); !ok || a.String() != "10.244.2.20" {
		t.Errorf("PodIP(shop, db-1) (remote, from its endpointslice) = %v, %v", a, ok)
	}
	if _, ok := r.PodIP("shop", "lonely"); ok {
		t.Error("PodIP of a remote pod behind no service: the field selector should hide it")
	}
	if s := r.Stats(); s.Pods != 1 || s.Services != 3 || s.EndpointSlices != 2 || s.WatchErrors != 0 {
		t.Errorf("stats: %+v (want 1 pod of node-a, 3 services, 2 slices, no errors)", s)
	}

	// Changes: web-1 relabelled, web-2 starts on node-a and joins the
	// service.
	t2 := nextSecond()
	p, err := kc.AdminClient.CoreV1().Pods("shop").Get(context.Background(), "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Labels["v"] = "2"
	if _, err := kc.AdminClient.CoreV1().Pods("shop").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.runPod(pod("shop", "web-2", "node-a", map[string]string{"app": "web"}), "10.244.1.11")
	c.applySlice(slice("shop", "web-x1", "web", 8080, map[string]string{"10.244.1.10": "web-1", "10.244.1.11": "web-2"}))
	netnstest.WaitUntil(t, 10*time.Second, "web-2", resolvesTo(r, "10.244.1.11", 8080, "web-2", "shop"))
	netnstest.WaitUntil(t, 10*time.Second, "web-1 relabelled", func() bool {
		id, ok := r.Lookup(netip.MustParseAddr("10.244.1.10"))
		return ok && id.Labels["v"] == "2"
	})
	t3 := time.Now()

	// web-1 dies mid-run and leaves the service.
	nextSecond()
	c.deletePod("shop", "web-1")
	c.applySlice(slice("shop", "web-x1", "web", 8080, map[string]string{"10.244.1.11": "web-2"}))
	netnstest.WaitUntil(t, 10*time.Second, "web-1's pod deleted", func() bool { return r.Stats().Pods == 1 })
	// Entries of streams ending just after still name it (Linger) …
	if n, _, _ := r.Resolve(netip.MustParseAddr("10.244.1.10"), 80); n != "web-1" {
		t.Errorf("just after the delete: %q, want web-1 (lingering)", n)
	}
	// … and then it is forgotten by the live view.
	netnstest.WaitUntil(t, 10*time.Second, "web-1 forgotten", resolvesTo(r, "10.244.1.10", 80, "", ""))
	if _, ok := r.PodIP("shop", "web-1"); ok {
		t.Error("PodIP of a deleted pod")
	}
	t5 := time.Now()

	// Its address is reused by web-3; the db service goes.
	t6 := nextSecond()
	c.runPod(pod("shop", "web-3", "node-a", map[string]string{"app": "web"}), "10.244.1.10")
	if err := kc.AdminClient.CoreV1().Services("shop").Delete(context.Background(), "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	netnstest.WaitUntil(t, 10*time.Second, "web-3", resolvesTo(r, "10.244.1.10", 80, "web-3", "shop"))
	netnstest.WaitUntil(t, 10*time.Second, "db service forgotten", resolvesTo(r, dbIP.String(), 5432, "", ""))
	t7 := time.Now()

	// The history: every name at the second it was learnt.
	h := nm.Between(t0, t7)
	within := func(key, full string, from, to time.Time) {
		t.Helper()
		sec, ok := recordAt(h, key, full)
		if !ok {
			t.Errorf("history has no %s → %s:\n%v", key, full, h)
			return
		}
		if sec < from.Unix() || sec > to.Unix() {
			t.Errorf("history: %s → %s at %d, want within [%d, %d]", key, full, sec, from.Unix(), to.Unix())
		}
	}
	within("10.244.1.10", "web-1", t0, t1)
	within(webIP.String(), "web.shop", t0, t1)
	within(webIP.String()+":80", "web.shop", t0, t1)
	within("10.244.2.20", "db-1", t0, t1)
	within("10.244.2.20:5432", "db.shop", t0, t1)
	within(dbIP.String()+":5432", "db.shop", t0, t1)
	within("10.244.1.11", "web-2", t2, t3)
	within("10.244.1.10", "web-3", t6, t7)
	if _, ok := recordAt(h, "10.244.2.30", "lonely"); ok {
		t.Error("history names a remote pod the agent does not watch")
	}
	if r := h[fmt.Sprint(t0.Unix())]["10.244.1.10"]; r.Namespace != "shop" && r.FullAddress != "" {
		t.Errorf("record namespace: %+v", r)
	}

	// A repository spanning only the time after web-1 died and before its
	// address was reused still says the address was web-1's.
	mid := nm.Between(t5, t5)
	found := false
	for _, m := range mid {
		if m["10.244.1.10"].FullAddress == "web-1" {
			found = true
		}
	}
	if !found {
		t.Errorf("history over [%d, %d] lost web-1: %v", t5.Unix(), t5.Unix(), mid)
	}

	// Close stops every goroutine the resolver started.
	r.Close()
	netnstest.WaitUntil(t, 10*time.Second, "informer goroutines to end", func() bool { return runtime.NumGoroutine() <= startGoroutines+2 })
}

// TestResolverAPIServerDown: when the API server goes away the resolver
// keeps answering what it knew, counts the failures, and catches up when
// a new one comes (here: a new, empty one).
func TestResolverAPIServerDown(t *testing.T) {
	kc := kubetest.Start(t)
	c := cluster{t: t, cs: kc.AdminClient}
	c.namespace("shop")
	c.runPod(pod("shop", "web-1", "node-a", nil), "10.244.1.10")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := Start(ctx, Options{Kubeconfig: kc.AdminKubeconfig, NodeName: "node-a", SyncTimeout: 30 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	netnstest.WaitUntil(t, 10*time.Second, "web-1", resolvesTo(r, "10.244.1.10", 80, "web-1", "shop"))

	// A user without the RBAC rights: forbidden lists are counted, names
	// stay unknown, nothing stops.
	denied, err := Start(ctx, Options{Kubeconfig: kc.UserKubeconfig, NodeName: "node-a", SyncTimeout: time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	netnstest.WaitUntil(t, 10*time.Second, "forbidden lists counted", func() bool { return denied.Stats().WatchErrors >= 3 })
	if s := denied.Stats(); s.Synced || s.RequestErrors != 0 {
		t.Errorf("without RBAC rights: %+v", s)
	}
	if n, _, _ := denied.Resolve(netip.MustParseAddr("10.244.1.10"), 80); n != "" {
		t.Errorf("resolved %q without RBAC rights", n)
	}
	denied.Close()

	kc.Stop(t)
	// Watches end and their re-lists fail; the answers stay.
	netnstest.WaitFor(t, 60*time.Second, func() error {
		if s := r.Stats(); s.RequestErrors == 0 {
			return fmt.Errorf("no request error counted after the API server stopped: %+v", s)
		}
		return nil
	})
	if n, _, _ := r.Resolve(netip.MustParseAddr("10.244.1.10"), 80); n != "web-1" {
		t.Errorf("with the API server down: %q, want web-1 (known names stay)", n)
	}
}

// TestStartUnreachable: an API server that never answers costs Start its
// SyncTimeout, not an error; names are unknown and failures counted.
func TestStartUnreachable(t *testing.T) {
	dir := t.TempDir()
	kcfg := filepath.Join(dir, "kubeconfig")
	// Port 1 on loopback: connection refused.
	os.WriteFile(kcfg, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	start := time.Now()
	r, err := Start(context.Background(), Options{Kubeconfig: kcfg, SyncTimeout: 500 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Start took %v", d)
	}
	if n, _, _ := r.Resolve(netip.MustParseAddr("10.244.1.10"), 80); n != "" {
		t.Errorf("resolved %q with no API server", n)
	}
	netnstest.WaitUntil(t, 10*time.Second, "errors counted", func() bool { s := r.Stats(); return s.WatchErrors > 0 && s.RequestErrors > 0 })
	if r.Stats().Synced {
		t.Error("synced with no API server")
	}

	if _, err := Start(context.Background(), Options{Kubeconfig: filepath.Join(dir, "missing")}); err == nil {
		t.Error("Start with a missing kubeconfig: no error")
	}
}

// TestFakeClientset: the informer plumbing (events, deletes) on client-go's
// fake clientset, for runs without the API server binaries (-short).
func TestFakeClientset(t *testing.T) {
	p := pod("shop", "web-1", "node-a", map[string]string{"app": "web"})
	p.Status.PodIP = "10.244.1.10"
	p.Status.Phase = corev1.PodRunning
	svc := service("shop", "web", 80, 8080)
	svc.Spec.ClusterIP = "10.96.0.20"
	svc.Spec.ClusterIPs = []string{"10.96.0.20"}
	hostNet := pod("kube-system", "proxy", "node-a", nil)
	hostNet.Spec.HostNetwork = true
	hostNet.Status.PodIP = "192.0.2.1"
	cs := fake.NewClientset(p, svc, hostNet)
	nm := names.New(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := start(ctx, cs, Options{Names: nm, NodeName: "node-a", Linger: -1, Logger: testLogger(t)})
	defer r.Close()
	netnstest.WaitUntil(t, 10*time.Second, "web-1", resolvesTo(r, "10.244.1.10", 80, "web-1", "shop"))
	netnstest.WaitUntil(t, 10*time.Second, "web", resolvesTo(r, "10.96.0.20", 80, "web", "shop"))
	if n, _, _ := r.Resolve(netip.MustParseAddr("192.0.2.1"), 80); n != "" {
		t.Errorf("host-network pod claimed the node's address: %q", n)
	}
	if err := cs.CoreV1().Pods("shop").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	netnstest.WaitUntil(t, 10*time.Second, "web-1 gone", resolvesTo(r, "10.244.1.10", 80, "", ""))
	if rec, ok := nm.Lookup("10.244.1.10"); !ok || rec.FullAddress != "web-1" {
		t.Errorf("history lost web-1: %+v", rec)
	}
	// A finished pod gives its address back.
	done := pod("shop", "job-1", "node-a", nil)
	done.Status.PodIP = "10.244.1.12"
	done.Status.Phase = corev1.PodSucceeded
	if _, err := cs.CoreV1().Pods("shop").Create(ctx, done, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	netnstest.WaitUntil(t, 10*time.Second, "job-1 seen", func() bool { return r.Stats().Pods == 2 }) // proxy, job-1
	if n, _, _ := r.Resolve(netip.MustParseAddr("10.244.1.12"), 80); n != "" {
		t.Errorf("finished pod resolved: %q", n)
	}
}

func TestFromConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, c := range []struct {
		enabled, kubeconfig, env string
		want, inCluster          bool
	}{
		{"false", "/k", "10.0.0.1", false, false},
		{"auto", "", "", false, false},
		{"auto", "", "10.0.0.1", true, true},
		{"auto", "/k", "", true, false},
		{"true", "", "", true, true},
		{"true", "/k", "10.0.0.1", true, false},
	} {
		t.Setenv("KUBERNETES_SERVICE_HOST", c.env)
		o, ok := FromConfig(config.Kubernetes{Enabled: c.enabled, Kubeconfig: c.kubeconfig}, "n")
		if ok != c.want || o.InCluster != c.inCluster || o.Kubeconfig != c.kubeconfig || o.NodeName != "n" {
			t.Errorf("%+v: got %+v, %v", c, o, ok)
		}
	}
}

// TestMetrics: the exposition of a resolver's Stats.
func TestMetrics(t *testing.T) {
	p := pod("shop", "web-1", "node-a", nil)
	p.Status.PodIP = "10.244.1.10"
	p.Status.Phase = corev1.PodRunning
	svc := service("shop", "web", 80, 8080)
	svc.Spec.ClusterIPs = []string{"10.96.0.20"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := start(ctx, fake.NewClientset(p, svc), Options{NodeName: "node-a", Logger: testLogger(t)})
	defer r.Close()
	netnstest.WaitUntil(t, 10*time.Second, "web", resolvesTo(r, "10.96.0.20", 80, "web", "shop"))
	netnstest.WaitUntil(t, 10*time.Second, "web-1", resolvesTo(r, "10.244.1.10", 80, "web-1", "shop"))
	want := `
# HELP kflcap_kube_addresses Addresses that resolve to a name, by key (ip, ip_port).
# TYPE kflcap_kube_addresses gauge
kflcap_kube_addresses{key="ip"} 2
kflcap_kube_addresses{key="ip_port"} 1
# HELP kflcap_kube_events_total Kubernetes informer events applied.
# TYPE kflcap_kube_events_total counter
kflcap_kube_events_total 2
# HELP kflcap_kube_objects Kubernetes objects known, by resource (pods: this node's).
# TYPE kflcap_kube_objects gauge
kflcap_kube_objects{resource="endpointslices"} 0
kflcap_kube_objects{resource="pods"} 1
kflcap_kube_objects{resource="services"} 1
# HELP kflcap_kube_request_errors_total Kubernetes API requests without an answer or with a 5xx.
# TYPE kflcap_kube_request_errors_total counter
kflcap_kube_request_errors_total 0
# HELP kflcap_kube_synced 1 when every Kubernetes informer has completed its first list.
# TYPE kflcap_kube_synced gauge
kflcap_kube_synced 1
# HELP kflcap_kube_watch_errors_total Failed Kubernetes lists and watches (names stale or unknown meanwhile).
# TYPE kflcap_kube_watch_errors_total counter
kflcap_kube_watch_errors_total 0
`
	if err := testutil.CollectAndCompare(NewMetrics(r), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if probs, err := testutil.CollectAndLint(NewMetrics(r)); err != nil || len(probs) > 0 {
		t.Fatalf("lint: %v %v", probs, err)
	}
}
