// Package packet holds the one type every stage of kflcap passes a captured
// packet as: the ring reader and the file readers make it, dedup, the
// lookback, the dissector and the pcap writers take it. It is a leaf: it
// imports nothing of kflcap's.
//
// Lifetime: Data is borrowed. A packet from a live source points into the
// kernel's ring buffer until its batch is released; one from a file reader
// is valid during the callback. A stage that keeps a packet past that
// (lookback, retained stream packets, repositories) copies Data.
package packet

import (
	"time"

	"github.com/gopacket/gopacket/layers"
)

// Packet is one captured frame.
type Packet struct {
	Time     time.Time       // wall-clock capture time
	Ifindex  int             // capturing interface; 0 when unknown (files)
	Dir      Direction       // relative to the capturing interface
	LinkType layers.LinkType // per packet: captures mix Ethernet, raw IP, SLL and SLL2
	WireLen  int             // length on the wire; len(Data) is the captured length
	Data     []byte
}

// Outgoing reports whether the packet was captured leaving its interface.
func (p *Packet) Outgoing() bool { return p.Dir == Egress }

// Direction of a packet relative to the interface it was captured on. The
// values are the capture programs' (bpf/capture.c): 0 ingress, 1 egress.
type Direction uint8

const (
	Ingress Direction = 0
	Egress  Direction = 1
	// Unknown is a packet from a file that does not say (classic pcap).
	Unknown Direction = 2
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return "unknown"
}
