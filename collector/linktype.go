package collector

import (
	"context"
	"fmt"
	"os"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/kflcap/kflcap/packet"
)

// FileLinkType is the link type a classic pcap of the packets in the named
// files needs: theirs when they all agree, else LINUX_SLL2, which can carry
// any of them (as tcpdump -i any writes).
func FileLinkType(ctx context.Context, names []string) (layers.LinkType, error) {
	seen := map[layers.LinkType]bool{}
	for _, name := range names {
		// A classic pcap states its one link type in the header; pcapng
		// and repositories have to be scanned.
		if lt, ok := pcapHeaderLinkType(name); ok {
			seen[lt] = true
			continue
		}
		err := ReadFile(ctx, name, func(p packet.Packet) error {
			seen[p.LinkType] = true
			return nil
		}, nil)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
	}
	if len(seen) == 1 {
		for lt := range seen {
			return lt, nil
		}
	}
	return layers.LinkTypeLinuxSLL2, nil
}

// pcapHeaderLinkType returns the link type of a classic pcap file.
func pcapHeaderLinkType(name string) (layers.LinkType, bool) {
	f, err := os.Open(name)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return 0, false
	}
	return r.LinkType(), true
}
