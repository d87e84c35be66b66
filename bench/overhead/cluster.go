package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The simulated cluster: this node (the agent's) and others, namespaces,
// services with their pods and endpointslices. Pod and host addresses are
// API data only; nothing is configured with them.
const (
	nodeName    = "bench-node-0"
	otherNodes  = 7
	clusterName = "bench"
)

var namespaces = []string{"shop", "payments", "search", "identity", "observability"}

// cluster is the API server's content as the benchmark created it, kept
// current by the churn (the only writer).
type cluster struct {
	kc     *kubernetes.Clientset
	local  []*corev1.Pod // on nodeName
	remote []*corev1.Pod // on the other nodes
	slices map[string]*discoveryv1.EndpointSlice
	podSvc map[string]string // pod key → its service's slice key

	podUpdates, sliceUpdates, errors atomic.Int64
}

// populate creates the namespaces, services, pods (with a kubelet-like
// status: Running, Ready, IPs) and one endpointslice per service listing
// its pods, as the endpointslice controller would.
func populate(ctx context.Context, admin *rest.Config, localPods, remotePods, services int) (*cluster, error) {
	cfg := rest.CopyConfig(admin)
	cfg.QPS, cfg.Burst = 1000, 1000 // setting up, not measured
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	c := &cluster{kc: kc, slices: map[string]*discoveryv1.EndpointSlice{}, podSvc: map[string]string{}}
	for _, ns := range namespaces {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	svcs := make([]*corev1.Service, services)
	for s := range services {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%02d", s), Namespace: namespaces[s%len(namespaces)],
				Labels: map[string]string{"app.kubernetes.io/name": fmt.Sprintf("app-%02d", s), "app.kubernetes.io/part-of": "bench"}},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": fmt.Sprintf("app-%02d", s)},
				Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
					{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090), Protocol: corev1.ProtocolTCP},
				},
			},
		}
		if svcs[s], err = kc.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create service: %w", err)
		}
	}
	// Pod j belongs to service j % services; the first localPods run here.
	members := make([][]*corev1.Pod, services)
	for j := range localPods + remotePods {
		node, idx := 0, j
		if j >= localPods {
			idx = j - localPods
			node = 1 + idx%otherNodes
			idx /= otherNodes
		}
		svc := svcs[j%services]
		pod, err := kc.CoreV1().Pods(svc.Namespace).Create(ctx, podSpec(svc, j%services, j, node), metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create pod: %w", err)
		}
		setRunning(pod, node, idx)
		if pod, err = kc.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("pod status: %w", err)
		}
		if node == 0 {
			c.local = append(c.local, pod)
		} else {
			c.remote = append(c.remote, pod)
		}
		members[j%services] = append(members[j%services], pod)
	}
	for s, svc := range svcs {
		sl := sliceFor(svc, members[s])
		if sl, err = kc.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create endpointslice: %w", err)
		}
		key := sl.Namespace + "/" + sl.Name
		c.slices[key] = sl
		for _, p := range members[s] {
			c.podSvc[p.Namespace+"/"+p.Name] = key
		}
	}
	return c, nil
}

// writeKubeconfig writes a kubeconfig for the agent: the API server at
// server (the forward's address inside the agent's namespace), as
// kubetest's plain user. The serving certificate is self-signed.
func writeKubeconfig(dir, server, token string) (string, error) {
	path := filepath.Join(dir, "agent.kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: "https://%s", insecure-skip-tls-verify: true}
users:
- name: agent
  user: {token: %q}
contexts:
- name: agent
  context: {cluster: bench, user: agent}
current-context: agent
`, server, token)
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

func nodeOf(n int) string { return fmt.Sprintf("bench-node-%d", n) }

// podSpec is a Deployment-made pod of service svc: what a pod of a small
// web application carries (probes, resources, env, a projected token).
func podSpec(svc *corev1.Service, s, j, node int) *corev1.Pod {
	app := svc.Spec.Selector["app"]
	hash := fmt.Sprintf("%08x", uint32(s+1)*2654435761) // the ReplicaSet's
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s-%s-%05x", app, hash, j*7919%0xfffff),
			Namespace: svc.Namespace,
			Labels:    map[string]string{"app": app, "pod-template-hash": hash, "app.kubernetes.io/part-of": "bench", "version": "v1.4.2"},
			Annotations: map[string]string{
				"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
				"kubectl.kubernetes.io/restartedAt": "2026-11-20T09:12:44Z",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-" + hash,
				UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012x", s)), Controller: ptr(true), BlockOwnerDeletion: ptr(true)}},
		},
		Spec: corev1.PodSpec{
			NodeName:           nodeOf(node),
			ServiceAccountName: "default",
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.example.com/bench/" + app + ":v1.4.2",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
				Env: []corev1.EnvVar{
					{Name: "LOG_LEVEL", Value: "info"}, {Name: "PORT", Value: "8080"},
					{Name: "DB_HOST", Value: "postgres.payments.svc.cluster.local"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}}, PeriodSeconds: 5},
				LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 10},
				VolumeMounts:   []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3607))}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				}}}}},
		},
	}
}

// setRunning gives a pod the status a kubelet reports for a running,
// ready pod: pod k on node n has 10.244.n.(k+2) on host 10.250.0.(n+1).
func setRunning(p *corev1.Pod, node, k int) {
	now := metav1.Now()
	ip := fmt.Sprintf("10.244.%d.%d", node, k+2)
	host := fmt.Sprintf("10.250.0.%d", node+1)
	p.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    host,
		HostIPs:   []corev1.HostIP{{IP: host}},
		PodIP:     ip,
		PodIPs:    []corev1.PodIP{{IP: ip}},
		QOSClass:  corev1.PodQOSBurstable,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: "PodReadyToStartContainers", Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Ready: true, Started: ptr(true),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			Image:       p.Spec.Containers[0].Image,
			ImageID:     "registry.example.com/bench/app@sha256:4f1e3c0b8a5d2e7f9c6b1a0d3e8f7c2b5a4d9e0f1c3b6a8d7e2f5c4b9a0d1e3f",
			ContainerID: fmt.Sprintf("containerd://%064x", node<<16|k),
		}},
	}
}

func sliceFor(svc *corev1.Service, pods []*corev1.Pod) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: svc.Name + "-", Namespace: svc.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
				Controller: ptr(true), BlockOwnerDeletion: ptr(true)}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: ptr(corev1.ProtocolTCP)},
			{Name: ptr("metrics"), Port: ptr(int32(9090)), Protocol: ptr(corev1.ProtocolTCP)},
		},
	}
	for _, p := range pods {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
			NodeName:   ptr(p.Spec.NodeName),
			Zone:       ptr("zone-a"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		})
	}
	return sl
}

func ptr[T any](v T) *T { return &v }

// churn changes pods until ctx ends, as kubelets and the endpointslice
// controller would: every tick one pod here and one elsewhere (in turn)
// crash (not ready) or come back (ready, restart count + 1), and their
// service's endpointslice follows the readiness.
func (c *cluster) churn(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, pods := range [][]*corev1.Pod{c.local, c.remote} {
			if len(pods) > 0 {
				c.flip(ctx, pods, i%len(pods))
			}
		}
	}
}

func (c *cluster) flip(ctx context.Context, pods []*corev1.Pod, i int) {
	p := pods[i].DeepCopy()
	now := metav1.Now()
	cs := &p.Status.ContainerStatuses[0]
	ready := !cs.Ready
	cs.Ready = ready
	if ready {
		cs.RestartCount++
		cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 137, Reason: "OOMKilled", StartedAt: cs.State.Running.StartedAt, FinishedAt: now}}
		cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}
	} else {
		cs.State = corev1.ContainerState{Running: cs.State.Running}
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	for k := range p.Status.Conditions {
		if t := p.Status.Conditions[k].Type; t == corev1.PodReady || t == corev1.ContainersReady {
			p.Status.Conditions[k].Status, p.Status.Conditions[k].LastTransitionTime = status, now
		}
	}
	up, err := c.kc.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		if ctx.Err() == nil {
			c.errors.Add(1)
		}
		return
	}
	pods[i] = up
	c.podUpdates.Add(1)

	key := c.podSvc[p.Namespace+"/"+p.Name]
	sl := c.slices[key].DeepCopy()
	for k := range sl.Endpoints {
		if sl.Endpoints[k].TargetRef.Name == p.Name {
			sl.Endpoints[k].Conditions.Ready, sl.Endpoints[k].Conditions.Serving = ptr(ready), ptr(ready)
		}
	}
	upSl, err := c.kc.DiscoveryV1().EndpointSlices(sl.Namespace).Update(ctx, sl, metav1.UpdateOptions{})
	if err != nil {
		if ctx.Err() == nil {
			c.errors.Add(1)
		}
		return
	}
	c.slices[key] = upSl
	c.sliceUpdates.Add(1)
}
