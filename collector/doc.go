// Package collector turns what the capture programs write into packets in
// user space: it reads the ring buffer into batches of records, converts the
// kernel's boot-time timestamps to wall-clock time, hands batches on through
// bounded queues (counting what a full queue drops, by stage), discovers the
// interfaces to capture on, and writes packets to pcap and pcapng files.
//
// Lifetime: a Reader runs until its context ends, then drains what is left in
// the ring and closes its output channel. Batches received from a Reader
// must be given back with Release once their packets are no longer used;
// packet Data is only valid until then.
package collector
