// Package toolcache gives tests the servers they run for real (MinIO,
// kube-apiserver, etcd): an environment variable may name them, otherwise a
// script under scripts/ builds them once from the Go module proxy into a
// cache outside the checkout and prints where they are.
package toolcache

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Tool is one cached build. Path runs the script at most once per process.
type Tool struct {
	Env    string // overrides the script when set
	Script string // file name under scripts/, printing the path on stdout
	What   string // for messages: "MinIO server"

	once sync.Once
	path string
	err  error
}

// Path returns the tool's path. Without it the test is skipped, except on
// CI (CI=true), where it fails: there the tools must be buildable.
func (tl *Tool) Path(t testing.TB) string {
	t.Helper()
	tl.once.Do(func() {
		if p := os.Getenv(tl.Env); p != "" {
			tl.path = p
			return
		}
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", tl.Script)
		var stderr bytes.Buffer
		cmd := exec.Command("sh", script)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			tl.err = fmt.Errorf("scripts/%s: %v\n%s", tl.Script, err, lastLines(stderr.String(), 30))
			return
		}
		tl.path = strings.TrimSpace(string(out))
	})
	if tl.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(tl.err)
		}
		t.Skipf("no %s: %v", tl.What, tl.err)
	}
	return tl.path
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
