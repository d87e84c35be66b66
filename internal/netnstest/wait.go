package netnstest

import (
	"fmt"
	"testing"
	"time"
)

// WaitFor waits until cond returns nil and fails the test with cond's last
// error, and how long it waited, when timeout passes first. It is how the
// tests wait for a condition (a file appearing, /readyz answering, a
// metric reaching a value, a process exiting) rather than sleeping for a
// fixed time or waiting for a log line.
//
// cond runs on the test's goroutine, so it may itself end the test with
// t.Fatal, for instance when the process being waited on has exited.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("not within %v: %v", timeout, err)
	}
}

// WaitUntil is WaitFor for a condition that only holds or not: the
// failure says what was awaited.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitFor(t, timeout, func() error {
		if !cond() {
			return fmt.Errorf("waiting for %s", what)
		}
		return nil
	})
}

// Poll is WaitFor for a caller that goes on either way: it returns nil once
// cond does, or cond's last error once timeout has passed, or at once an
// error cond wrapped with Abort. cond is called at once, then at growing
// intervals (10 ms up to 250 ms), and once more at the deadline.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	interval := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if a, ok := err.(abortError); ok {
			return a.err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		time.Sleep(min(interval, left))
		interval = min(interval*3/2, 250*time.Millisecond)
	}
}

// Abort makes cond's error end a Poll or WaitFor at once: what is waited
// for can no longer happen (the process that was to do it has exited).
func Abort(err error) error { return abortError{err} }

type abortError struct{ err error }

func (a abortError) Error() string { return a.err.Error() }
