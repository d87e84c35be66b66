package benchkit

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

var exitMu sync.Mutex

// AtExit registers f to run when the program ends through Die, Exit or a
// signal (HandleSignals), before the cleanups registered earlier (last
// registered, first run, as with testing.T.Cleanup), and at most once.
func AtExit(f func()) {
	var once sync.Once
	exitMu.Lock()
	defer exitMu.Unlock()
	cleanups = append([]func(){func() { once.Do(f) }}, cleanups...)
}

// RunCleanups runs the registered cleanups: the ones registered with
// AtExit (newest first), then Pair.Setup's. It may run while Die runs them
// too (a signal during a failure): each AtExit function runs once, and a
// second caller waits for it to finish, so neither exits half-way.
func RunCleanups() {
	exitMu.Lock()
	cs := cleanups
	exitMu.Unlock()
	for _, c := range cs {
		c()
	}
}

// Exit runs the cleanups and exits with code.
func Exit(code int) {
	RunCleanups()
	os.Exit(code)
}

// HandleSignals makes SIGINT and SIGTERM (Ctrl-C, a killed make) run the
// cleanups and exit 1, so that no namespace, server or capture is left.
func HandleSignals() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		os.Stderr.WriteString("interrupted (" + s.String() + "): cleaning up\n")
		Exit(1)
	}()
}
