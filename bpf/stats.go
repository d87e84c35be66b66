package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/kflcap/kflcap/packet"
)

// Counters are the kernel-side packet counters of one interface and
// direction (or all of them), summed over CPUs. For every key,
// Seen == Filtered + Delivered + RingDrops + CopyErrors.
type Counters struct {
	Seen       uint64 // packets that reached the hook
	Filtered   uint64 // rejected by the prefilter
	Delivered  uint64 // written to the ring buffer
	RingDrops  uint64 // lost: ring buffer full
	CopyErrors uint64 // lost: the packet could not be copied
	Bytes      uint64 // wire bytes of the seen packets
}

// Dropped is what the kernel side lost.
func (c Counters) Dropped() uint64 { return c.RingDrops + c.CopyErrors }

// Add adds d to c.
func (c *Counters) Add(d Counters) {
	c.Seen += d.Seen
	c.Filtered += d.Filtered
	c.Delivered += d.Delivered
	c.RingDrops += d.RingDrops
	c.CopyErrors += d.CopyErrors
	c.Bytes += d.Bytes
}

// IfKey names one interface and direction. Ifindex 0 collects packets of
// interfaces that had no key yet.
type IfKey struct {
	Ifindex   int
	Direction packet.Direction
}

func sumPerCPU(vals []captureCounters) Counters {
	var c Counters
	for _, v := range vals {
		c.Add(Counters{v.Seen, v.Filtered, v.Delivered, v.RingDrops, v.CopyErrors, v.Bytes})
	}
	return c
}

// addKey makes the programs count ifindex/dir separately.
func (o *Objects) addKey(ifindex int, dir packet.Direction) error {
	k := captureIfKey{Ifindex: uint32(ifindex), Direction: uint32(dir)}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys[k] {
		return nil
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	zero := make([]captureCounters, ncpu)
	// NOEXIST: a leftover key from an earlier attach keeps its counts.
	if err := o.objs.KflcapIfstats.Update(k, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("add counters for ifindex %d %s: %w", ifindex, dir, err)
	}
	o.keys[k] = true
	return nil
}

// Counters reads the kernel counters now, per interface and direction.
func (o *Objects) Counters() (map[IfKey]Counters, error) {
	out := map[IfKey]Counters{}
	var (
		k    captureIfKey
		vals []captureCounters
	)
	it := o.objs.KflcapIfstats.Iterate()
	for it.Next(&k, &vals) {
		out[IfKey{int(k.Ifindex), packet.Direction(k.Direction)}] = sumPerCPU(vals)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read interface counters: %w", err)
	}
	if err := o.objs.KflcapUnkeyed.Lookup(uint32(0), &vals); err != nil {
		return nil, fmt.Errorf("read unkeyed counters: %w", err)
	}
	if c := sumPerCPU(vals); c.Seen > 0 {
		out[IfKey{}] = c
	}
	return out, nil
}

// Total sums counters over all keys.
func Total(m map[IfKey]Counters) Counters {
	var t Counters
	for _, c := range m {
		t.Add(c)
	}
	return t
}
