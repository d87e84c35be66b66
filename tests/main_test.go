// Package tests holds end-to-end tests: they build the real kflcap binary,
// run it against real traffic inside network namespaces the tests create,
// and check its output with tshark and tcpdump as independent oracles.
package tests

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/netnstest"
)

// kflcapBin is the binary under test, built once by TestMain.
var kflcapBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test here is privileged and starts with netnstest.NewPair
		// (or newUploadEnv), which skips under -short: no binary to build.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "kflcap-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kflcapBin = filepath.Join(dir, "kflcap")
	build := exec.Command("go", "build", "-o", kflcapBin, "../cmd/kflcap")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kflcap:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a background process whose output is collected.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start runs name args in the background; it is killed at cleanup.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitCapturing waits until `kflcap capture -w out` has attached: it
// writes the file header once its programs are attached, so out (a file,
// or stdout for "-") is no longer empty. It fails at once when the
// capture exits.
func (p *proc) waitCapturing(t *testing.T, out string) {
	t.Helper()
	netnstest.WaitFor(t, 20*time.Second, func() error {
		if p.exited() {
			t.Fatalf("%s exited (%v) before capturing; stderr:\n%s", p.cmd.Path, p.err, p.Stderr())
		}
		if out == "-" {
			if p.Stdout() == "" {
				return errors.New("nothing on stdout yet")
			}
			return nil
		}
		if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
			return fmt.Errorf("%s empty or missing (%v); stderr:\n%s", out, err, p.Stderr())
		}
		return nil
	})
}

// interrupt sends SIGINT and waits for exit; it returns the exit code.
func (p *proc) interrupt(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	return p.wait(t, 30*time.Second)
}

func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		t.Fatalf("%s did not exit within %v; stderr:\n%s", p.cmd.Path, timeout, p.Stderr())
	}
	if p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// runKflcap runs the binary to completion and returns stdout, stderr and the
// exit code.
func runKflcap(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(kflcapBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run kflcap: %v", err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// tshark runs tshark and fails the test when it prints anything on stderr
// other than its root warning: a file it warns about is not a good file.
func tshark(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("tshark", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
		if line != "" && !strings.Contains(line, "Running as user \"root\"") {
			t.Fatalf("tshark %s warned: %s", strings.Join(args, " "), errb.String())
		}
	}
	return out.String()
}
