package names

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// DNS and /etc/hosts names answer Resolve; Kubernetes ones do not (their
// own resolver knows when a pod is gone), though all are in the history.
func TestNamesResolveBySource(t *testing.T) {
	n := New(0)
	t0 := time.Unix(1_800_000_000, 0)
	hosts := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n10.1.2.3 db.internal db # the database\n::ffff:10.1.2.4 mapped\n"), 0o644)
	if err := n.LoadHosts(hosts, t0); err != nil {
		t.Fatal(err)
	}
	n.Add(t0.Add(time.Second), "93.184.216.34", Record{FullAddress: "example.com", Source: SourceDNS})
	n.Add(t0.Add(time.Second), "10.244.1.10", Record{FullAddress: "web-1", Namespace: "shop", Source: SourceKubernetes})
	for _, c := range []struct{ ip, name string }{
		{"10.1.2.3", "db.internal"},
		{"10.1.2.4", "mapped"},
		{"::ffff:10.1.2.3", "db.internal"},
		{"93.184.216.34", "example.com"},
		{"10.244.1.10", ""},
		{"127.0.0.1", ""},
		{"192.0.2.1", ""},
	} {
		if name, _, _ := n.Resolve(netip.MustParseAddr(c.ip), 80); name != c.name {
			t.Errorf("Resolve(%s) = %q, want %q", c.ip, name, c.name)
		}
	}
	// A Kubernetes name over a DNS one leaves the DNS name to answer
	// when the pod is gone.
	n.Add(t0.Add(2*time.Second), "93.184.216.34", Record{FullAddress: "egress-gw", Namespace: "infra", Source: SourceKubernetes})
	if name, _, _ := n.Resolve(netip.MustParseAddr("93.184.216.34"), 443); name != "example.com" {
		t.Errorf("after a Kubernetes record: %q", name)
	}
	h := n.Between(t0, t0.Add(2*time.Second))
	if h["1800000000"]["10.1.2.3"].FullAddress != "db.internal" || h["1800000001"]["93.184.216.34"].FullAddress != "example.com" ||
		h["1800000002"]["93.184.216.34"].FullAddress != "egress-gw" {
		t.Errorf("history: %v", h)
	}
}

// Past its bound the history drops superseded records before current
// ones: a name learnt once and never changed survives any amount of
// churn on other keys.
func TestNamesTrimPerKey(t *testing.T) {
	const max = 100
	n := New(max)
	t0 := time.Unix(1_800_000_000, 0)
	n.Add(t0, "10.0.0.1", Record{FullAddress: "steady", Source: SourceDNS})
	for i := range 10_000 {
		n.Add(t0.Add(time.Duration(i+1)*time.Second), "10.0.0.2", Record{FullAddress: fmt.Sprint("churn-", i), Source: SourceDNS})
	}
	if len(n.log) > max+max/4 {
		t.Errorf("%d records kept, bound %d", len(n.log), max)
	}
	end := t0.Add(20_000 * time.Second)
	h := n.Between(end, end)
	if h["1800000000"]["10.0.0.1"].FullAddress != "steady" {
		t.Errorf("the steady name was trimmed: %v", h)
	}
	if h["1800010000"]["10.0.0.2"].FullAddress != "churn-9999" {
		t.Errorf("the latest churning name: %v", h)
	}
	if name, _, _ := n.Resolve(netip.MustParseAddr("10.0.0.1"), 0); name != "steady" {
		t.Errorf("Resolve(steady) = %q", name)
	}

	// More current keys than the bound: the oldest are forgotten.
	for i := range 3 * max {
		n.Add(end.Add(time.Duration(i)*time.Second), fmt.Sprintf("10.1.%d.%d", i/256, i%256), Record{FullAddress: fmt.Sprint("host-", i), Source: SourceDNS})
	}
	if len(n.log) > max+max/4 || len(n.current) > max+max/4 || len(n.learnt) > max+max/4 {
		t.Errorf("kept %d records, %d current, %d learnt; bound %d", len(n.log), len(n.current), len(n.learnt), max)
	}
	if name, _, _ := n.Resolve(netip.MustParseAddr("10.0.0.1"), 0); name != "" {
		t.Errorf("the oldest current name should have gone: %q", name)
	}
	last := fmt.Sprintf("10.1.%d.%d", (3*max-1)/256, (3*max-1)%256)
	if name, _, _ := n.Resolve(netip.MustParseAddr(last), 0); name != fmt.Sprint("host-", 3*max-1) {
		t.Errorf("the newest name: %q", name)
	}
}
