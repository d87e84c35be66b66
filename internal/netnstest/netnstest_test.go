package netnstest

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestPairPings(t *testing.T) {
	p := NewPair(t)
	out := Exec(t, p.A, "ping", "-c", "1", "-W", "2", p.IPB)
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping across the pair failed:\n%s", out)
	}
}

// A server on the root namespace's loopback is reachable from inside a
// namespace through a Forward, and the bytes are counted.
func TestForward(t *testing.T) {
	p := NewPair(t)
	RequireTool(t, "curl")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the root namespace")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	f := NewForward(t, p.A, ln.Addr().String())
	if out := Exec(t, p.A, "curl", "-sS", "--fail", "http://"+f.Addr+"/"); out != "hello from the root namespace" {
		t.Fatalf("through the forward: %q", out)
	}
	// The listener is in A, not in the root namespace.
	if c, err := net.Dial("tcp", f.Addr); err == nil {
		c.Close()
		t.Errorf("%s is reachable from the root namespace", f.Addr)
	}
	up, down := f.Bytes()
	if up < 50 || down < 29 {
		t.Errorf("bytes relayed up %d, down %d", up, down)
	}
}
