package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/bpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Iface is an interface to capture on, with the link type of the packets
// the programs see on it.
type Iface struct {
	bpf.Interface
	LinkType layers.LinkType
}

// NetNSPath turns a --netns argument into a path: a bare name is one of
// `ip netns`'s (/var/run/netns/NAME); anything with a slash is a path.
// It checks that the namespace exists.
func NetNSPath(arg string) (string, error) {
	if arg == "" {
		return "", nil
	}
	path := arg
	if !strings.Contains(arg, "/") {
		path = filepath.Join("/var/run/netns", arg)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("network namespace %q: %w", arg, err)
	}
	return path, nil
}

// Discover resolves interface names in the netns at nsPath ("" = current).
// "any" (also the meaning of no names) is every interface but lo; lo is
// captured when named. An unknown name is an error that lists the known ones.
func Discover(nsPath string, names []string) ([]Iface, error) {
	var h *netlink.Handle
	var err error
	if nsPath == "" {
		h, err = netlink.NewHandle()
	} else {
		var ns netns.NsHandle
		ns, err = netns.GetFromPath(nsPath)
		if err == nil {
			h, err = netlink.NewHandleAt(ns)
			ns.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	byName := map[string]Iface{}
	var known []string
	for _, l := range links {
		a := l.Attrs()
		lt := linkType(a.EncapType)
		ifc := Iface{
			Interface: bpf.Interface{Name: a.Name, Index: a.Index, Loopback: a.EncapType == "loopback", RawIP: lt == layers.LinkTypeRaw, NetNS: nsPath},
			LinkType:  lt,
		}
		byName[a.Name] = ifc
		known = append(known, a.Name)
	}
	sort.Strings(known)
	if len(names) == 0 {
		names = []string{"any"}
	}
	seen := map[int]bool{}
	var out []Iface
	for _, n := range names {
		if n == "any" {
			for _, name := range known {
				if ifc := byName[name]; !ifc.Loopback && !seen[ifc.Index] {
					seen[ifc.Index] = true
					out = append(out, ifc)
				}
			}
			continue
		}
		ifc, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("unknown interface %q (interfaces: %s)", n, strings.Join(known, ", "))
		}
		if !seen[ifc.Index] {
			seen[ifc.Index] = true
			out = append(out, ifc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no interface to capture on (interfaces: %s)", strings.Join(known, ", "))
	}
	return out, nil
}

// linkType maps netlink's encapsulation name (the ARPHRD type) to the link
// type of what the programs see: a MAC header on Ethernet-like devices, the
// IP header first on L3 devices (tun, wireguard, ipip, …).
func linkType(encap string) layers.LinkType {
	switch encap {
	case "ether", "loopback":
		return layers.LinkTypeEthernet
	}
	return layers.LinkTypeRaw
}
