package netnstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
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

// Poll returns as soon as the condition holds, gives up with the
// condition's last error at the deadline, and at once on Abort.
func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(5*time.Second, func() error {
		if n++; n < 3 {
			return fmt.Errorf("try %d", n)
		}
		return nil
	}); err != nil || n != 3 {
		t.Errorf("held on try 3: err %v after %d tries", err, n)
	}

	start := time.Now()
	err := Poll(50*time.Millisecond, func() error { return errors.New("never") })
	if took := time.Since(start); err == nil || err.Error() != "never" || took < 50*time.Millisecond || took > 2*time.Second {
		t.Errorf("never holding: %v after %v", err, took)
	}

	n = 0
	start = time.Now()
	err = Poll(10*time.Second, func() error { n++; return Abort(errors.New("gone")) })
	if err == nil || err.Error() != "gone" || n != 1 || time.Since(start) > time.Second {
		t.Errorf("abort: %v after %d tries, %v", err, n, time.Since(start))
	}
}

// SkipShort skips under -short only.
func TestSkipShort(t *testing.T) {
	ran := false
	t.Run("tier", func(t *testing.T) {
		SkipShort(t, "example")
		ran = true
	})
	if ran == testing.Short() {
		t.Errorf("with -short %v the test ran: %v", testing.Short(), ran)
	}
}

// tcpdump captures from the moment StartTcpdump returns, and after Stop
// its file holds every packet that crossed the interface.
func TestTcpdump(t *testing.T) {
	p := NewPair(t)
	RequireTool(t, "ping")
	td := StartTcpdump(t, p.B, p.IfB, filepath.Join(t.TempDir(), "b.pcap"), "-s", "0")
	Exec(t, p.A, "ping", "-c", "20", "-i", "0.01", p.IPB)
	WaitTCPSettled(t, p.A, p.B)
	td.Stop(t)
	f, err := os.Open(td.File)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	icmp := 0
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 23 && data[12] == 0x08 && data[13] == 0x00 && data[23] == 1 {
			icmp++
		}
	}
	if icmp != 40 {
		t.Errorf("%d ICMP packets in tcpdump's file, want the 20 echo requests and 20 replies\n%s", icmp, td.Output())
	}
}
