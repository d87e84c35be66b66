// Package dissect turns packets into the two things the rest of kflcap works
// on: L4 streams (what repositories store) and entries (what KFL queries
// see).
//
// A Dissector decodes each packet's L2–L4 headers with gopacket's
// DecodingLayerParser into preallocated layers (Ethernet, 802.1Q/QinQ, Linux
// SLL and SLL2, raw IP; IPv4 and IPv6 with fragment reassembly, IPv6
// extension headers; TCP, UDP, ICMP), files it into a stream (a TCP connection or a UDP
// flow, both directions, with a 12-digit id and a pcap name
// "<id>_<tcp|udp>.pcap"), reassembles TCP per direction, and runs the L7
// dissector chosen by content (ports are only a hint for DNS): HTTP/1.x, HTTP/2 (prior
// knowledge, Upgrade: h2c, or frames seen mid-connection) with gRPC over it,
// DNS over UDP and TCP, TLS hellos, Redis RESP2/RESP3, PostgreSQL, Kafka
// and AMQP 0-9-1.
// Every stream yields at least one entry: streams no dissector recognises
// get one L4 entry ("tcp"/"udp").
//
// # Lifetime and concurrency
//
// New starts the dissector; Feed is called from one goroutine; Close flushes
// every open stream (pending requests and unanswered queries become entries,
// sinks get StreamEnd) and stops the workers. Tick expires idle streams when
// a live source has no packets to drive packet time forward.
//
// With Config.Workers ≤ 1, Feed dissects synchronously: OnEntry and StreamSink
// calls happen inside Feed, in packet order, so reading a file gives the
// same entries in the same order every time. With Workers > 1, Feed decodes
// L2–L4, hashes the flow (the same for both directions) and hands the packet,
// copied into a per-shard batch, to the shard's goroutine; each shard owns
// its stream table, reassemblers and parsers, so nothing is locked on the
// hot path. Entries of one stream keep their order; entries of different
// streams interleave, and OnEntry and Sinks are called concurrently from the
// workers. Feed blocks when a worker falls behind. Packets wait in a
// per-shard batch until it fills (1024 packets or 1 MiB): a live source
// should call Tick about once a second, which also hands over partial
// batches. Stream ids are unique either way; with n workers shard i numbers
// its streams i+1, i+1+n, …, so a file gives the same ids on every run with
// the same number of workers (but not the same as with one worker).
//
// Packet.Data passed to Feed is not kept: whatever outlives the call (the
// packets a stream retains for a later Select, out-of-order TCP segments,
// IPv4 fragments) is copied.
//
// An Entry is immutable once passed to OnEntry and may be kept. A StreamRef
// is valid only during the OnEntry call; StreamRef.Select subscribes a StreamSink
// to the stream: it receives the retained packets at once, every later
// packet as it arrives, and StreamEnd when the stream closes.
//
// # Bounds
//
// Memory is bounded by Config: MaxStreams caps the stream table (the least
// recently active stream is evicted, counted in Stats.StreamsEvicted);
// StreamRetainBytes and TotalRetainBytes cap retained packets
// (Stats.RetainOverflow); out-of-order TCP data, HTTP header blocks, TLS
// hellos, Redis values (streamed, only a preview is kept), HTTP/2 frames
// and open streams, PostgreSQL, Kafka and AMQP frames (larger ones are
// skipped, not buffered) and pending requests have fixed caps. Malformed packets are counted
// (Stats.Malformed) and skipped; no input makes the dissector panic.
package dissect
