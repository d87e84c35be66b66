package collector

import (
	"sort"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/pcap"
)

// PcapInterfaces describes ifaces for a capture file's header.
func PcapInterfaces(ifaces []bpf.Interface) []pcap.Interface {
	out := make([]pcap.Interface, 0, len(ifaces))
	for _, ifc := range ifaces {
		pi := pcap.Interface{Index: ifc.Index, Name: ifc.Name, LinkType: ifc.LinkType()}
		if ifc.NetNS != "" {
			pi.Description = "netns " + ifc.NetNS
		}
		out = append(out, pi)
	}
	return out
}

// PcapStats sums the kernel counters (both directions) per interface for a
// pcapng trailer, in ifindex order: received is what the prefilter let
// through, kernel drops what the ring or a copy lost.
func PcapStats(counters map[bpf.IfKey]bpf.Counters, start time.Time) []pcap.IfaceStats {
	perIf := map[int]*pcap.IfaceStats{}
	for k, c := range counters {
		s := perIf[k.Ifindex]
		if s == nil {
			s = &pcap.IfaceStats{Ifindex: k.Ifindex, Start: start}
			perIf[k.Ifindex] = s
		}
		s.Received += c.Seen - c.Filtered
		s.KernelDrop += c.Dropped()
	}
	stats := make([]pcap.IfaceStats, 0, len(perIf))
	for _, s := range perIf {
		stats = append(stats, *s)
	}
	sort.Slice(stats, func(i, j int) bool { return stats[i].Ifindex < stats[j].Ifindex })
	return stats
}
