package collector

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns) into
// wall-clock time. The offset between the two clocks changes when the wall
// clock is stepped or slewed, so call Refresh now and then.
type Clock struct {
	offset atomic.Int64 // realtime - boottime, ns
}

// NewClock measures the offset once.
func NewClock() *Clock {
	c := &Clock{}
	c.Refresh()
	return c
}

// Refresh measures the offset again: it samples REALTIME, BOOTTIME,
// REALTIME a few times and keeps the sample with the tightest bracket.
func (c *Clock) Refresh() {
	best := int64(-1)
	var offset int64
	for range 7 {
		var r1, b, r2 unix.Timespec
		unix.ClockGettime(unix.CLOCK_REALTIME, &r1)
		unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
		unix.ClockGettime(unix.CLOCK_REALTIME, &r2)
		width := r2.Nano() - r1.Nano()
		if best < 0 || width < best {
			best = width
			offset = r1.Nano() + width/2 - b.Nano()
		}
	}
	c.offset.Store(offset)
}

// UnixNano converts a boot-time timestamp to Unix nanoseconds.
func (c *Clock) UnixNano(bootNs uint64) int64 { return int64(bootNs) + c.offset.Load() }

// Time converts a boot-time timestamp to a time.Time.
func (c *Clock) Time(bootNs uint64) time.Time { return time.Unix(0, c.UnixNano(bootNs)) }
