// Package collector collects packets, and nothing else: it turns what the
// capture programs write into packet.Packet values in user space, and
// reads capture files into the same type.
//
//   - Live sources: Live loads and attaches the programs (package bpf) to
//     the interfaces Discover and WatchLinks find; Reader reads the ring
//     buffer in place into batches (Clock converts the kernel's boot-time
//     stamps to wall-clock time; Stages counts what user space lost);
//     Dedup recognises a packet captured again on another interface.
//   - File sources: ReadFile reads pcap, pcapng (any mix of link types),
//     gzip and repository .tar.gz files.
//
// Lifetime: a Reader runs until its context ends, then drains what is left
// in the ring and closes its output channel. Batches received from a
// Reader must be given back with Release once their packets are no longer
// used; packet Data is only valid until then. Live.Close detaches and
// frees everything.
package collector
