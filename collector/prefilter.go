package collector

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/kflcap/kflcap/bpf"
)

// ipProtocols are the protocol names ParsePrefilter knows besides numbers.
var ipProtocols = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "sctp": 132}

// ParsePrefilter builds a kernel prefilter from the text of capture's
// --port, --proto and --net flags: port numbers; tcp, udp, icmp, icmp6,
// sctp or an IP protocol number; CIDRs or single addresses. An error
// names the flag and the value.
func ParsePrefilter(ports, protos, nets []string) (pf bpf.Prefilter, err error) {
	for _, p := range ports {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return pf, fmt.Errorf("--port: %q is not a port number", p)
		}
		pf.Ports = append(pf.Ports, uint16(n))
	}
	for _, p := range protos {
		n, ok := ipProtocols[strings.ToLower(p)]
		if !ok {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return pf, fmt.Errorf("--proto: %q is not tcp, udp, icmp, icmp6, sctp or a protocol number", p)
			}
			n = uint8(v)
		}
		pf.Protocols = append(pf.Protocols, n)
	}
	for _, n := range nets {
		pfx, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return pf, fmt.Errorf("--net: %q is not an address or CIDR", n)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		pf.Prefixes = append(pf.Prefixes, pfx)
	}
	return pf, nil
}
