package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sync/atomic"
	"testing"

	"github.com/kflcap/kflcap/internal/benchkit"
)

// programTB lets a benchmark program use the test helpers (kubetest,
// netnstest), which take a testing.TB: cleanups run at the program's exit
// (benchkit.AtExit, also on Die and on a signal), a fatal error or a skip
// ends the program after them. The embedded interface is nil: it only
// supplies testing.TB's unexported method; every method the helpers call
// is defined here.
type programTB struct {
	testing.TB
	ctx    context.Context
	failed atomic.Bool
}

func newProgramTB(ctx context.Context) *programTB {
	// kubetest.Assets asks testing.Short, which needs the testing flags
	// registered (and flag.Parse called, which main has done).
	testing.Init()
	return &programTB{ctx: ctx}
}

func (t *programTB) Helper()                   {}
func (t *programTB) Name() string              { return "overhead" }
func (t *programTB) Context() context.Context  { return t.ctx }
func (t *programTB) Output() io.Writer         { return os.Stderr }
func (t *programTB) Cleanup(f func())          { benchkit.AtExit(f) }
func (t *programTB) Failed() bool              { return t.failed.Load() }
func (t *programTB) Skipped() bool             { return false }
func (t *programTB) Fail()                     { t.failed.Store(true) }
func (t *programTB) Log(a ...any)              { log.Print(a...) }
func (t *programTB) Logf(f string, a ...any)   { log.Printf(f, a...) }
func (t *programTB) Error(a ...any)            { t.Fail(); log.Print(a...) }
func (t *programTB) Errorf(f string, a ...any) { t.Fail(); log.Printf(f, a...) }
func (t *programTB) FailNow()                  { t.Fatal("failed") }
func (t *programTB) Fatal(a ...any)            { t.Fail(); benchkit.Die("%s", fmt.Sprint(a...)) }
func (t *programTB) Fatalf(f string, a ...any) { t.Fail(); benchkit.Die(f, a...) }

// A skip is a missing prerequisite (no API server binaries, not root): for
// a benchmark that is fatal.
func (t *programTB) Skip(a ...any)            { t.Fatal(a...) }
func (t *programTB) Skipf(f string, a ...any) { t.Fatalf(f, a...) }
func (t *programTB) SkipNow()                 { t.Fatal("skipped") }

func (t *programTB) TempDir() string {
	dir, err := os.MkdirTemp("", "kflbover-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (t *programTB) Setenv(k, v string) { os.Setenv(k, v) }
