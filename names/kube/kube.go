package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/names"
)

// Options configure Start.
type Options struct {
	// Kubeconfig is a kubeconfig file; when empty, InCluster must be set.
	Kubeconfig string
	// InCluster uses the pod's service account (KUBERNETES_SERVICE_HOST).
	InCluster bool
	// NodeName restricts the pod watch to this node's pods (the downward
	// API's spec.nodeName). Empty: every pod in the cluster.
	NodeName string
	// Names receives every change of name with its time; may be nil.
	Names *names.History
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// Linger is how long a deleted object's addresses still resolve
	// (0: 5 minutes; negative: not at all).
	Linger time.Duration
	// SyncTimeout bounds how long Start waits for the first list
	// (0: 5 seconds). Start returns when it passes, names coming later.
	SyncTimeout time.Duration
	// UserAgent identifies the agent to the API server ("" : "kflcap").
	UserAgent string
}

// FromConfig says whether the kubernetes: section of the configuration asks
// for name resolution here, and with which options. "auto" means: when a
// kubeconfig is given or when running in a pod (KUBERNETES_SERVICE_HOST).
// "true" without a kubeconfig means in-cluster.
func FromConfig(c config.Kubernetes, nodeName string) (Options, bool) {
	o := Options{Kubeconfig: c.Kubeconfig, NodeName: nodeName}
	inPod := os.Getenv("KUBERNETES_SERVICE_HOST") != ""
	switch c.Enabled {
	case "false":
		return o, false
	case "true":
		o.InCluster = c.Kubeconfig == ""
		return o, true
	default: // auto
		o.InCluster = c.Kubeconfig == "" && inPod
		return o, c.Kubeconfig != "" || inPod
	}
}

// Stats are the resolver's counters, for metrics.
type Stats struct {
	Synced         bool   // every informer has completed its first list
	Pods           int    // pods watched (this node's)
	Services       int    // services known
	EndpointSlices int    // endpointslices known
	Addresses      int    // IP addresses that resolve
	AddrPorts      int    // IP:port pairs that resolve (services)
	Events         uint64 // informer events applied
	WatchErrors    uint64 // failed lists and watches (names stale or unknown meanwhile; retried)
	RequestErrors  uint64 // API requests without an answer or with a 5xx (API server unreachable or failing)
}

// Resolver names addresses from the Kubernetes API. It implements
// dissect.Resolver and trigger.PodResolver. Safe for concurrent use.
type Resolver struct {
	t      *table
	log    *slog.Logger
	cancel context.CancelFunc
	stop   sync.Once
	done   chan struct{}

	podFactory, svcFactory informers.SharedInformerFactory
	synced                 []cache.InformerSynced
	events, watchErrs      atomic.Uint64
	reqErrs                atomic.Uint64

	logMu   sync.Mutex
	lastLog map[string]time.Time
}

// Start connects to the API server and starts the informers. It returns an
// error only when no client can be built (a bad kubeconfig, not in a pod);
// an API server that cannot be reached is retried in the background.
func Start(ctx context.Context, o Options) (*Resolver, error) {
	var (
		cfg *rest.Config
		err error
	)
	switch {
	case o.Kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	case o.InCluster:
		cfg, err = rest.InClusterConfig()
	default:
		err = errors.New("neither a kubeconfig nor in-cluster")
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "kflcap"
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = ua
	r := newResolver(o)
	// Count (and log) failed requests: a watch that cannot reconnect
	// (connection refused) is retried by the reflector without reaching
	// the watch error handler.
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{rt: rt, r: r} })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	r.run(ctx, client, o)
	return r, nil
}

func newResolver(o Options) *Resolver {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	linger := o.Linger
	switch {
	case linger == 0:
		linger = 5 * time.Minute
	case linger < 0:
		linger = 0
	}
	return &Resolver{
		t:       newTable(o.Names, linger),
		log:     log,
		done:    make(chan struct{}),
		lastLog: map[string]time.Time{},
	}
}

// countingTransport counts the API requests that fail: no answer, or a
// server error.
type countingTransport struct {
	rt http.RoundTripper
	r  *Resolver
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	switch {
	case err != nil && req.Context().Err() == nil:
		c.r.reqErrs.Add(1)
		c.r.logLimited("requests", err)
	case err == nil && resp.StatusCode >= 500:
		c.r.reqErrs.Add(1)
		c.r.logLimited("requests", fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status))
	}
	return resp, err
}

// start runs a resolver on a client (a fake one in tests).
func start(ctx context.Context, client kubernetes.Interface, o Options) *Resolver {
	r := newResolver(o)
	r.run(ctx, client, o)
	return r
}

func (r *Resolver) run(ctx context.Context, client kubernetes.Interface, o Options) {
	log := r.log
	ctx, r.cancel = context.WithCancel(ctx)

	// Only what is read is kept in the informers' caches.
	slim := informers.WithTransform(func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(nil)
			m.SetAnnotations(nil)
		}
		return obj, nil
	})
	podOpts := []informers.SharedInformerOption{slim}
	if o.NodeName != "" {
		sel := fields.OneTermEqualSelector("spec.nodeName", o.NodeName).String()
		podOpts = append(podOpts, informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.FieldSelector = sel }))
	}
	r.podFactory = informers.NewSharedInformerFactoryWithOptions(client, 0, podOpts...)
	r.svcFactory = informers.NewSharedInformerFactoryWithOptions(client, 0, slim)

	pods := r.podFactory.Core().V1().Pods().Informer()
	svcs := r.svcFactory.Core().V1().Services().Informer()
	slices := r.svcFactory.Discovery().V1().EndpointSlices().Informer()
	r.watch(pods, "pods", r.applyPod)
	r.watch(svcs, "services", r.applyService)
	r.watch(slices, "endpointslices", r.applySlice)
	r.synced = []cache.InformerSynced{pods.HasSynced, svcs.HasSynced, slices.HasSynced}

	r.podFactory.Start(ctx.Done())
	r.svcFactory.Start(ctx.Done())
	go r.sweep(ctx)

	timeout := o.SyncTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	wctx, wcancel := context.WithTimeout(ctx, timeout)
	defer wcancel()
	if !r.WaitSynced(wctx) {
		log.Warn("kubernetes names not synced yet: names unknown until the API server answers", "after", timeout)
	}
}

// watch routes an informer's events to apply (obj nil: deleted).
func (r *Resolver) watch(inf cache.SharedIndexInformer, resource string, apply func(key string, obj any)) {
	_ = inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		r.watchErrs.Add(1)
		r.logLimited(resource, err)
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			r.events.Add(1)
			apply(objKey(obj), obj)
		},
		UpdateFunc: func(_, obj any) {
			r.events.Add(1)
			apply(objKey(obj), obj)
		},
		DeleteFunc: func(obj any) {
			r.events.Add(1)
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				apply(d.Key, nil)
				return
			}
			apply(objKey(obj), nil)
		},
	})
}

func objKey(obj any) string {
	k, _ := cache.MetaNamespaceKeyFunc(obj)
	return k
}

// logLimited logs a list/watch failure at most once a minute per resource.
func (r *Resolver) logLimited(resource string, err error) {
	r.logMu.Lock()
	now := time.Now()
	skip := now.Sub(r.lastLog[resource]) < time.Minute
	if !skip {
		r.lastLog[resource] = now
	}
	r.logMu.Unlock()
	if !skip {
		r.log.Warn("kubernetes API failed: names may be stale or unknown until it recovers", "resource", resource, "err", err)
	}
}

func splitKey(key string) (namespace, name string) {
	ns, n, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return "", key
	}
	return ns, n
}

func (r *Resolver) applyPod(key string, obj any) {
	ns, name := splitKey(key)
	o := owner{'p', ns, name}
	p, _ := obj.(*corev1.Pod)
	// Host-network pods share the node's address; finished pods have
	// given theirs back.
	if p == nil || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		r.t.set(o, nil, nil)
		return
	}
	id := &Identity{Name: p.Name, Namespace: p.Namespace, Kind: KindPod, Labels: p.Labels, Local: true}
	c := claim{id: id, prio: prioPod}
	ips := map[netip.Addr]claim{}
	for _, pip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(pip.IP); err == nil {
			ips[a.Unmap()] = c
		}
	}
	if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
		ips[a.Unmap()] = c
	}
	r.t.set(o, ips, nil)
}

func (r *Resolver) applyService(key string, obj any) {
	ns, name := splitKey(key)
	o := owner{'s', ns, name}
	s, _ := obj.(*corev1.Service)
	if s == nil {
		r.t.set(o, nil, nil)
		return
	}
	id := &Identity{Name: s.Name, Namespace: s.Namespace, Kind: KindService, Labels: s.Labels}
	addrs := append([]string{}, s.Spec.ClusterIPs...)
	if len(addrs) == 0 {
		addrs = append(addrs, s.Spec.ClusterIP)
	}
	addrs = append(addrs, s.Spec.ExternalIPs...)
	for _, in := range s.Status.LoadBalancer.Ingress {
		addrs = append(addrs, in.IP)
	}
	c := claim{id: id, prio: prioService}
	ips := map[netip.Addr]claim{}
	ports := map[netip.AddrPort]claim{}
	for _, v := range addrs {
		a, err := netip.ParseAddr(v) // "None" (headless) and "" do not parse
		if err != nil {
			continue
		}
		a = a.Unmap()
		ips[a] = c
		for _, sp := range s.Spec.Ports {
			ports[netip.AddrPortFrom(a, uint16(sp.Port))] = c
		}
	}
	r.t.set(o, ips, ports)
}

func (r *Resolver) applySlice(key string, obj any) {
	ns, name := splitKey(key)
	o := owner{'e', ns, name}
	es, _ := obj.(*discoveryv1.EndpointSlice)
	if es == nil || es.AddressType == discoveryv1.AddressTypeFQDN {
		r.t.set(o, nil, nil)
		return
	}
	// The slice's service names its addresses' ports, and the addresses
	// themselves when they name no pod.
	var svc claim
	if n := es.Labels[discoveryv1.LabelServiceName]; n != "" {
		svc = claim{id: &Identity{Name: n, Namespace: es.Namespace, Kind: KindService}, prio: prioEndpoint}
	}
	ips := map[netip.Addr]claim{}
	ports := map[netip.AddrPort]claim{}
	for _, ep := range es.Endpoints {
		c := svc
		if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" && ref.Name != "" {
			refNS := ref.Namespace
			if refNS == "" {
				refNS = es.Namespace
			}
			c = claim{id: &Identity{Name: ref.Name, Namespace: refNS, Kind: KindPod}, prio: prioEndpointPod}
		}
		for _, v := range ep.Addresses {
			a, err := netip.ParseAddr(v)
			if err != nil {
				continue
			}
			a = a.Unmap()
			if c.id != nil {
				ips[a] = c
			}
			if svc.id == nil {
				continue
			}
			for _, p := range es.Ports {
				if p.Port != nil {
					ports[netip.AddrPortFrom(a, uint16(*p.Port))] = svc
				}
			}
		}
	}
	r.t.set(o, ips, ports)
}

func (r *Resolver) sweep(ctx context.Context) {
	defer close(r.done)
	// Lingering addresses go within half a linger of their time.
	every := min(max(r.t.linger/2, 100*time.Millisecond), 15*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.t.sweep()
		}
	}
}

// WaitSynced waits until every informer has completed its first list, or
// ctx is done; it reports which.
func (r *Resolver) WaitSynced(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), r.synced...)
}

// Close stops the informers and waits for their goroutines. Resolve keeps
// answering from what was known.
func (r *Resolver) Close() {
	r.stop.Do(func() {
		r.cancel()
		r.podFactory.Shutdown()
		r.svcFactory.Shutdown()
		<-r.done
	})
}

// Resolve implements dissect.Resolver: the name, namespace and labels of
// the pod or service at ip (and port, for a service's cluster IP), or ""
// when unknown. Lock-free.
func (r *Resolver) Resolve(ip netip.Addr, port uint16) (name, namespace string, labels map[string]string) {
	if id := r.t.resolve(ip, port); id != nil {
		return id.Name, id.Namespace, id.Labels
	}
	return "", "", nil
}

// Local reports whether ip is the address of one of this node's pods.
// Lock-free.
func (r *Resolver) Local(ip netip.Addr) bool {
	id, ok := r.t.lookup(ip)
	return ok && id.Local
}

// Lookup returns the full identity (kind and labels included) that ip
// resolves to. Lock-free; the Identity must not be modified.
func (r *Resolver) Lookup(ip netip.Addr) (*Identity, bool) {
	return r.t.lookup(ip)
}

// PodIP implements trigger.PodResolver: the address of a pod on this node,
// or of any pod backing a service.
func (r *Resolver) PodIP(namespace, name string) (netip.Addr, bool) {
	return r.t.podIP(namespace, name)
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	s := Stats{
		Events:        r.events.Load(),
		WatchErrors:   r.watchErrs.Load(),
		RequestErrors: r.reqErrs.Load(),
		Synced:        true,
	}
	for _, f := range r.synced {
		s.Synced = s.Synced && f()
	}
	s.Pods = len(r.podFactory.Core().V1().Pods().Informer().GetStore().ListKeys())
	s.Services = len(r.svcFactory.Core().V1().Services().Informer().GetStore().ListKeys())
	s.EndpointSlices = len(r.svcFactory.Discovery().V1().EndpointSlices().Informer().GetStore().ListKeys())
	s.Addresses, s.AddrPorts = r.t.size()
	return s
}
