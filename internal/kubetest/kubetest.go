// Package kubetest runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver at pinned versions, built once from the Go module proxy
// into a cache outside the checkout by scripts/kube-binaries.sh, started on
// 127.0.0.1 random ports with fresh data and keys, and stopped at the
// test's cleanup, also when the test fails.
//
// There is no controller-manager, scheduler or kubelet: objects are what
// the test creates. Pods stay Pending unless the test writes their status
// (status subresource), and EndpointSlices exist only when the test
// creates them. The API server authorises with RBAC; Cluster.Admin is in
// system:masters, Cluster.User is a plain user whose rights the test grants.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kflcap/kflcap/internal/netnstest"
	"github.com/kflcap/kflcap/internal/toolcache"
)

// Versions of the binaries (scripts/kube-binaries.sh pins them).
const (
	KubeVersion = "v1.34.4"
	EtcdVersion = "v3.6.4"
)

// ServiceCIDR is the service cluster IP range the API server allocates from.
const ServiceCIDR = "10.96.0.0/16"

// UserName is the name of Cluster.User (token authenticated, no group).
const UserName = "kflcap-test-user"

var kubeBinaries = toolcache.Tool{Env: "KUBEBUILDER_ASSETS", Script: "kube-binaries.sh", What: "kube-apiserver"}

// Assets returns the directory holding kube-apiserver and etcd (the
// KUBEBUILDER_ASSETS layout): $KUBEBUILDER_ASSETS when set, else what
// scripts/kube-binaries.sh prints (building them on first use, about 7
// minutes). It skips the test under -short, and when the binaries cannot
// be had and CI is not set; on CI it fails.
func Assets(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("kubetest: a real kube-apiserver test: skipped under -short (unit tests only; make test runs it)")
	}
	return kubeBinaries.Path(t)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	Host string // https://127.0.0.1:<port>

	// Admin is in system:masters: everything is allowed.
	Admin           *rest.Config
	AdminClient     *kubernetes.Clientset
	AdminKubeconfig string // path of a kubeconfig file for Admin

	// User (UserName) may do only what the test grants it with RBAC.
	User           *rest.Config
	UserKubeconfig string

	dir   string
	procs []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// Start starts etcd and kube-apiserver and waits until the API server is
// ready (about 5–10 seconds). They are stopped at t's cleanup; their
// output is logged when t has failed.
func Start(t testing.TB) *Cluster {
	t.Helper()
	assets := Assets(t)
	c := &Cluster{dir: t.TempDir()}
	t.Cleanup(func() { c.Stop(t) })

	// etcd
	clientPort, peerPort := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	c.run(t, "etcd", filepath.Join(assets, "etcd"),
		"--name=kubetest",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync", // a test's data need not survive a crash
		"--log-level=warn",
	)

	// kube-apiserver: a service-account key pair, two bearer tokens and a
	// self-signed serving certificate it generates into cert-dir.
	saKey := filepath.Join(c.dir, "sa.key")
	saPub := filepath.Join(c.dir, "sa.pub")
	writeKeyPair(t, saKey, saPub)
	adminToken, userToken := token(t), token(t)
	tokens := filepath.Join(c.dir, "tokens.csv")
	writeFile(t, tokens, fmt.Sprintf("%s,kubetest-admin,kubetest-admin,\"system:masters\"\n%s,%s,%s\n",
		adminToken, userToken, UserName, UserName))
	apiPort := freePort(t)
	c.Host = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	c.run(t, "kube-apiserver", filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+filepath.Join(c.dir, "certs"),
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saPub,
		"--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range="+ServiceCIDR,
		// No controller-manager creates the default service accounts.
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--v=0",
	)

	c.Admin = &rest.Config{Host: c.Host, BearerToken: adminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	c.User = &rest.Config{Host: c.Host, BearerToken: userToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	c.AdminKubeconfig = c.writeKubeconfig(t, "admin", adminToken)
	c.UserKubeconfig = c.writeKubeconfig(t, "user", userToken)
	c.waitReady(t, adminToken)
	cs, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	c.AdminClient = cs
	return c
}

func (c *Cluster) run(t testing.TB, name, bin string, args ...string) {
	t.Helper()
	p := &proc{name: name, log: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	w := &lockedWriter{b: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	// Killed with the test binary, should it die without cleanup.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("kubetest: start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
}

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (c *Cluster) output(p *proc) string {
	return p.cmd.Stdout.(*lockedWriter).String()
}

// waitReady polls /readyz until the API server says ready, failing fast
// when a process exits.
func (c *Cluster) waitReady(t testing.TB, tok string) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	netnstest.WaitFor(t, 90*time.Second, func() error {
		for _, p := range c.procs {
			select {
			case <-p.done:
				t.Fatalf("kubetest: %s exited: %v\n%s", p.name, p.cmd.ProcessState, lastLines(c.output(p), 40))
			default:
			}
		}
		req, _ := http.NewRequest("GET", c.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("kubetest: API server not ready: %v\n%s", err, lastLines(c.output(c.procs[len(c.procs)-1]), 40))
		}
		b := new(bytes.Buffer)
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("kubetest: API server not ready: %d %s\n%s", resp.StatusCode, b.String(), lastLines(c.output(c.procs[len(c.procs)-1]), 40))
		}
		return nil
	})
}

// Stop stops the API server and etcd (idempotent; cleanup calls it).
func (c *Cluster) Stop(t testing.TB) {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("kubetest: %s output:\n%s", p.name, lastLines(c.output(p), 60))
		}
	}
	c.procs = nil
}

func (c *Cluster) writeKubeconfig(t testing.TB, user, tok string) string {
	t.Helper()
	path := filepath.Join(c.dir, user+".kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: %s
  user:
    token: %s
contexts:
- name: %s
  context: {cluster: kubetest, user: %s}
current-context: %s
`, c.Host, user, tok, user, user, user)
	writeFile(t, path, cfg)
	// What a client will read must parse.
	if _, err := clientcmd.BuildConfigFromFlags("", path); err != nil {
		t.Fatalf("kubetest: kubeconfig: %v", err)
	}
	return path
}

// UserClient is a client acting as User.
func (c *Cluster) UserClient(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.User)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Context is a context for API calls, ending with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// GrantNodeReader gives the user Cluster.User the rights the agent's
// ClusterRole has (deploy/manifests, docs/kubernetes.md): get, list and
// watch pods, services and endpointslices, nothing else.
func (c *Cluster) GrantNodeReader(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "kflcap"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "services"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	if _, err := c.AdminClient.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kflcap"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "kflcap"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: UserName}},
	}
	if _, err := c.AdminClient.RbacV1().ClusterRoleBindings().Create(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func token(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeKeyPair(t testing.TB, keyPath, pubPath string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})))
	writeFile(t, pubPath, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
