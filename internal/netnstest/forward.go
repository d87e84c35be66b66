package netnstest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kflcap/kflcap/internal/netnsrun"
)

// Forward relays TCP connections made inside a namespace to an address in
// the test's own (root) namespace: a process run with `ip netns exec` can
// then reach a server the test started on the host's loopback, such as a
// kube-apiserver. It counts the bytes it carries each way.
type Forward struct {
	Addr string // host:port to dial inside the namespace (on its loopback)

	ln       net.Listener
	target   string
	up, down atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	errs     []error
}

// NewForward listens on 127.0.0.1 inside namespace ns and relays every
// connection to target (host:port, dialled from the root namespace). It is
// closed, with every relayed connection, in t.Cleanup.
func NewForward(t testing.TB, ns, target string) *Forward {
	t.Helper()
	ln, err := listenIn(ns, "127.0.0.1:0")
	if err != nil {
		t.Fatalf("forward from %s: %v", ns, err)
	}
	f := &Forward{Addr: ln.Addr().String(), ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.Close)
	return f
}

// listenIn opens a TCP listener inside namespace ns (a socket belongs to
// the namespace of the thread that made it).
func listenIn(ns, addr string) (ln net.Listener, err error) {
	err = netnsrun.Do("/var/run/netns/"+ns, func() error {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

func (f *Forward) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

func (f *Forward) track(c net.Conn, on bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false // closed
	}
	if on {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
	return true
}

func (f *Forward) relay(in net.Conn) {
	defer f.wg.Done()
	defer in.Close()
	out, err := net.Dial("tcp", f.target)
	if err != nil {
		f.mu.Lock()
		f.errs = append(f.errs, err)
		f.mu.Unlock()
		return
	}
	defer out.Close()
	if !f.track(in, true) || !f.track(out, true) {
		return
	}
	defer f.track(in, false)
	defer f.track(out, false)
	done := make(chan struct{})
	go func() {
		io.Copy(counting{out, &f.up}, in)
		out.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(counting{in, &f.down}, out)
	in.(*net.TCPConn).CloseWrite()
	<-done
}

// counting is a writer adding what it writes to n.
type counting struct {
	w io.Writer
	n *atomic.Int64
}

func (c counting) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Bytes returns the bytes relayed so far: up from the namespace's
// clients to the target, down from the target to them.
func (f *Forward) Bytes() (up, down int64) { return f.up.Load(), f.down.Load() }

// Errors returns the errors met dialling the target, if any.
func (f *Forward) Errors() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.errs...)
}

// Close stops listening, closes every relayed connection and waits for
// the relays to end.
func (f *Forward) Close() {
	f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}
