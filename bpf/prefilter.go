package bpf

import (
	"fmt"
	"net/netip"
	"slices"
)

// Prefilter decides in the kernel which packets are copied at all. A packet
// is copied when every non-empty dimension accepts it:
//   - Protocols: its IP protocol number is listed;
//   - Prefixes: its source or destination address lies in one of them;
//   - Ports: its source or destination port is listed (a non-first IP
//     fragment, having no ports, passes this dimension).
//
// The zero Prefilter copies everything, non-IP packets included; any
// non-empty dimension rejects non-IP packets.
type Prefilter struct {
	Protocols []uint8
	Prefixes  []netip.Prefix
	Ports     []uint16
}

// Empty reports whether p copies everything.
func (p Prefilter) Empty() bool {
	return len(p.Protocols) == 0 && len(p.Prefixes) == 0 && len(p.Ports) == 0
}

const (
	pfProto = 1
	pfAddr  = 2
	pfPort  = 4
)

// prefilterState remembers the entries written, so that the next update
// clears exactly those.
type prefilterState struct {
	protos   []uint8
	ports    []uint16
	prefixes []netip.Prefix
}

// SetPrefilter replaces the kernel prefilter without reattaching. While the
// maps change, the programs copy everything (never less than either the old
// or the new filter wants).
func (o *Objects) SetPrefilter(p Prefilter) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, pfx := range p.Prefixes {
		if !pfx.IsValid() {
			return fmt.Errorf("prefilter: invalid prefix %v", pfx)
		}
	}
	if err := o.objs.KflcapPfCfg.Put(uint32(0), uint32(0)); err != nil {
		return fmt.Errorf("prefilter: open the gate: %w", err)
	}
	old := o.pf
	for _, v := range old.protos {
		if err := o.objs.KflcapPfProto.Put(uint32(v), uint8(0)); err != nil {
			return fmt.Errorf("prefilter: clear protocol %d: %w", v, err)
		}
	}
	for _, v := range old.ports {
		if err := o.objs.KflcapPfPort.Put(uint32(v), uint8(0)); err != nil {
			return fmt.Errorf("prefilter: clear port %d: %w", v, err)
		}
	}
	for _, pfx := range old.prefixes {
		if err := o.deletePrefix(pfx); err != nil {
			return err
		}
	}
	o.pf = prefilterState{}

	var flags uint32
	for _, v := range p.Protocols {
		if err := o.objs.KflcapPfProto.Put(uint32(v), uint8(1)); err != nil {
			return fmt.Errorf("prefilter: set protocol %d: %w", v, err)
		}
		o.pf.protos = append(o.pf.protos, v)
		flags |= pfProto
	}
	for _, v := range p.Ports {
		if err := o.objs.KflcapPfPort.Put(uint32(v), uint8(1)); err != nil {
			return fmt.Errorf("prefilter: set port %d: %w", v, err)
		}
		o.pf.ports = append(o.pf.ports, v)
		flags |= pfPort
	}
	for _, pfx := range p.Prefixes {
		pfx = pfx.Masked()
		if slices.Contains(o.pf.prefixes, pfx) {
			continue
		}
		if err := o.putPrefix(pfx); err != nil {
			return err
		}
		o.pf.prefixes = append(o.pf.prefixes, pfx)
		flags |= pfAddr
	}
	if err := o.objs.KflcapPfCfg.Put(uint32(0), flags); err != nil {
		return fmt.Errorf("prefilter: enable: %w", err)
	}
	return nil
}

func (o *Objects) putPrefix(pfx netip.Prefix) error {
	var err error
	if pfx = v4(pfx); pfx.Addr().Is4() {
		err = o.objs.KflcapPfIp4.Put(captureLpm4{Prefixlen: uint32(pfx.Bits()), Addr: pfx.Addr().As4()}, uint8(1))
	} else {
		err = o.objs.KflcapPfIp6.Put(captureLpm6{Prefixlen: uint32(pfx.Bits()), Addr: pfx.Addr().As16()}, uint8(1))
	}
	if err != nil {
		return fmt.Errorf("prefilter: set prefix %v: %w", pfx, err)
	}
	return nil
}

func (o *Objects) deletePrefix(pfx netip.Prefix) error {
	var err error
	if pfx = v4(pfx); pfx.Addr().Is4() {
		err = o.objs.KflcapPfIp4.Delete(captureLpm4{Prefixlen: uint32(pfx.Bits()), Addr: pfx.Addr().As4()})
	} else {
		err = o.objs.KflcapPfIp6.Delete(captureLpm6{Prefixlen: uint32(pfx.Bits()), Addr: pfx.Addr().As16()})
	}
	if err != nil {
		return fmt.Errorf("prefilter: clear prefix %v: %w", pfx, err)
	}
	return nil
}

// v4 turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into its IPv4
// form: the kernel sees such traffic as IPv4 packets.
func v4(pfx netip.Prefix) netip.Prefix {
	if !pfx.Addr().Is4In6() {
		return pfx
	}
	return netip.PrefixFrom(pfx.Addr().Unmap(), max(pfx.Bits()-96, 0)).Masked()
}
