package collector

import (
	"slices"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
)

func TestPcapInterfaces(t *testing.T) {
	ifaces := []bpf.Interface{
		{Name: "eth0", Index: 2},
		{Name: "tun0", Index: 7, RawIP: true, NetNS: "/var/run/netns/blue"},
	}
	want := []pcap.Interface{
		{Index: 2, Name: "eth0", LinkType: layers.LinkTypeEthernet},
		{Index: 7, Name: "tun0", LinkType: layers.LinkTypeRaw, Description: "netns /var/run/netns/blue"},
	}
	if got := PcapInterfaces(ifaces); !slices.Equal(got, want) {
		t.Errorf("PcapInterfaces = %+v, want %+v", got, want)
	}
}

// TestPcapStats: both directions of an interface add up; received leaves
// out what the prefilter did not want; drops are ring drops and copy
// errors.
func TestPcapStats(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	counters := map[bpf.IfKey]bpf.Counters{
		{Ifindex: 9, Direction: packet.Ingress}: {Seen: 10, Filtered: 4, RingDrops: 1},
		{Ifindex: 9, Direction: packet.Egress}:  {Seen: 5, CopyErrors: 2},
		{Ifindex: 3, Direction: packet.Ingress}: {Seen: 1},
	}
	want := []pcap.IfaceStats{
		{Ifindex: 3, Received: 1, Start: start},
		{Ifindex: 9, Received: 11, KernelDrop: 3, Start: start},
	}
	if got := PcapStats(counters, start); !slices.Equal(got, want) {
		t.Errorf("PcapStats = %+v, want %+v", got, want)
	}
}
