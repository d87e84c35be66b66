package netnstest

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tcpdump is tcpdump writing what crosses one interface to a pcap file:
// the independent oracle the tests compare kflcap's captures with.
type Tcpdump struct {
	*Proc
	File string
}

// StartTcpdump starts tcpdump on iface inside namespace ns, writing
// packet by packet (-U --immediate-mode) to file, and returns once it
// captures: tcpdump opens the file only after its capture socket is up, so
// the file appearing is the signal (not its "listening on" line). args
// come before -w, e.g. "-B", "65536", "-s", "0".
func StartTcpdump(t testing.TB, ns, iface, file string, args ...string) *Tcpdump {
	t.Helper()
	RequireTool(t, "tcpdump")
	full := append([]string{"-U", "--immediate-mode", "-n", "-i", iface}, args...)
	p := Start(t, ns, "tcpdump", append(full, "-w", file)...)
	WaitFor(t, 20*time.Second, func() error {
		if p.Exited() {
			t.Fatalf("tcpdump on %s in %s exited: %v\n%s", iface, ns, p.err, p.Output())
		}
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("tcpdump has not opened %s yet: %s", file, p.Output())
		}
		return nil
	})
	return &Tcpdump{Proc: p, File: file}
}

// tcpdump's one-line counters, printed on SIGUSR1 without stopping.
var tcpdumpCounters = regexp.MustCompile(`(\d+) packets? captured, (\d+) packets? received by filter, (\d+) packets? dropped by kernel`)

// CatchUp waits until tcpdump has written every packet the kernel has
// handed it so far: asked with SIGUSR1 (tcpdump(8): it prints its counters
// and goes on), the packets it captured plus those the kernel dropped add
// up to those its filter received. Call it once the traffic is over (see
// WaitTCPSettled): then the file holds all of it.
func (d *Tcpdump) CatchUp(t testing.TB) {
	t.Helper()
	seen := -1
	WaitFor(t, 20*time.Second, func() error {
		if d.Exited() {
			t.Fatalf("tcpdump exited: %v\n%s", d.err, d.Output())
		}
		all := tcpdumpCounters.FindAllStringSubmatch(d.Output(), -1)
		if seen >= 0 && len(all) > seen {
			last := all[len(all)-1]
			captured, _ := strconv.Atoi(last[1])
			received, _ := strconv.Atoi(last[2])
			dropped, _ := strconv.Atoi(last[3])
			if captured+dropped >= received {
				return nil
			}
		}
		seen = len(all)
		d.Cmd.Process.Signal(syscall.SIGUSR1)
		if seen > 0 {
			return fmt.Errorf("tcpdump has not written everything it received: %s", all[seen-1][0])
		}
		return fmt.Errorf("tcpdump has not printed its counters")
	})
}

// Stop waits until tcpdump has caught up (CatchUp), interrupts it and
// waits for it to exit; its summary is then in Output.
func (d *Tcpdump) Stop(t testing.TB) {
	t.Helper()
	d.CatchUp(t)
	d.Cmd.Process.Signal(syscall.SIGINT)
	if !d.WaitExit(20 * time.Second) {
		t.Fatalf("tcpdump did not exit on SIGINT:\n%s", d.Output())
	}
}

// WaitTCPSettled waits until no TCP connection in the namespaces is being
// opened or closed. A client may exit before its connection's last packets
// (the peer's FIN, the last ACK) have crossed the wire; once every socket is
// listening, established or in TIME-WAIT they have.
func WaitTCPSettled(t testing.TB, namespaces ...string) {
	t.Helper()
	RequireTool(t, "ss")
	args := []string{"-Htan"}
	for _, s := range []string{"syn-sent", "syn-recv", "fin-wait-1", "fin-wait-2", "close-wait", "last-ack", "closing"} {
		args = append(args, "state", s)
	}
	WaitFor(t, 20*time.Second, func() error {
		for _, ns := range namespaces {
			out, err := Output(ns, "ss", args...)
			if err != nil {
				return fmt.Errorf("ss in %s: %v\n%s", ns, err, out)
			}
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("TCP connections still opening or closing in %s:\n%s", ns, out)
			}
		}
		return nil
	})
}
