package dissect

import (
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"
)

// PacketSummary is a one-line description of a packet, tcpdump-style, as
// `kflcap capture` without -w prints it: time, interface, direction, the
// network and transport endpoints (or the innermost layer gopacket knows)
// and the length on the wire.
func PacketSummary(p *packet.Packet, ifname string) string {
	dir := "In "
	if p.Dir == packet.Egress {
		dir = "Out"
	}
	pkt := gopacket.NewPacket(p.Data, p.LinkType, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	desc := ""
	if nl := pkt.NetworkLayer(); nl != nil {
		src, dst := nl.NetworkFlow().Endpoints()
		if tl := pkt.TransportLayer(); tl != nil {
			sp, dp := tl.TransportFlow().Endpoints()
			desc = fmt.Sprintf("%s %s.%s > %s.%s: %s", nl.LayerType(), src, sp, dst, dp, tl.LayerType())
		} else {
			desc = fmt.Sprintf("%s %s > %s", nl.LayerType(), src, dst)
			if l := pkt.Layer(layers.LayerTypeICMPv4); l != nil {
				desc += ": " + l.(*layers.ICMPv4).TypeCode.String()
			} else if l := pkt.Layer(layers.LayerTypeICMPv6); l != nil {
				desc += ": " + l.(*layers.ICMPv6).TypeCode.String()
			}
		}
	} else if l := pkt.Layer(layers.LayerTypeARP); l != nil {
		desc = "ARP"
	} else if len(pkt.Layers()) > 0 {
		desc = pkt.Layers()[len(pkt.Layers())-1].LayerType().String()
	}
	return fmt.Sprintf("%s %s %s %s, length %d", p.Time.Format("15:04:05.000000"), ifname, dir, desc, p.WireLen)
}
