// Package bpf loads, configures, attaches, pins and detaches kflcap's eBPF
// capture programs. It is the only package that uses cilium/ebpf's load and
// attach APIs.
//
// Lifetime: Load returns an *Objects holding the programs and maps (pinned
// under Options.PinDir when set). Attach hooks the programs to an interface
// with one of three backends: TCX links (kernel ≥ 6.6), a clsact qdisc with
// direct-action cls_bpf filters, or a socket filter on an AF_PACKET socket.
// Objects.Close detaches everything it attached, deletes the qdiscs it
// created and removes its pins. A process that dies without Close leaves
// legacy tc filters and pins behind; Cleanup (called by Load) removes those
// of dead owners.
//
// Concurrency: Objects' methods may be called from several goroutines.
// Packets come out of the ring buffer map returned by Events; the collector
// package reads it.
package bpf
