package collector

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestClockConvertsBootTime(t *testing.T) {
	c := NewClock()
	var b unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
	got := c.Time(uint64(b.Nano()))
	if d := time.Since(got); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("boot time converted to %v, %v away from now", got, d)
	}
}
