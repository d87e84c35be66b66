package bpf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/kflcap/kflcap/internal/netnsrun"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Backend is how the programs are hooked to an interface.
type Backend string

const (
	BackendAuto   Backend = "auto"   // TCX, else tc, else socket
	BackendTCX    Backend = "tcx"    // TCX links (kernel ≥ 6.6)
	BackendTC     Backend = "tc"     // clsact qdisc + direct-action cls_bpf filters
	BackendSocket Backend = "socket" // socket filter on an AF_PACKET socket
)

// UnmarshalText accepts the backend names.
func (b *Backend) UnmarshalText(text []byte) error {
	switch v := Backend(text); v {
	case BackendAuto, BackendTCX, BackendTC, BackendSocket:
		*b = v
		return nil
	}
	return fmt.Errorf("unknown backend %q (want auto, tcx, tc or socket)", text)
}

// Interface is a network interface to capture on.
type Interface struct {
	Name     string
	Index    int
	Loopback bool
	// RawIP is set for L3 interfaces (tun, wireguard, ipip): their packets
	// start with the IP header, not an Ethernet header.
	RawIP bool
	// NetNS is the path of the interface's network namespace
	// (/var/run/netns/NAME, /proc/PID/ns/net); "" is the current one.
	NetNS string
}

// LinkType is the link type of the packets the programs see on the
// interface: raw IP for L3 interfaces, Ethernet for the others (loopback
// included: its frames carry a zeroed Ethernet header).
func (i Interface) LinkType() layers.LinkType {
	if i.RawIP {
		return layers.LinkTypeRaw
	}
	return layers.LinkTypeEthernet
}

func (i Interface) String() string {
	if i.NetNS == "" {
		return i.Name
	}
	return i.Name + "@" + i.NetNS
}

// Attachment is the programs hooked to one interface.
type Attachment struct {
	Iface   Interface
	Backend Backend

	links     []link.Link
	filters   []*netlink.BpfFilter
	madeQdisc bool
	sockFD    int
}

// Attach hooks the capture programs to iface. With BackendAuto it tries
// TCX, then tc, then socket, and reports the one it used. On a loopback
// interface only the ingress hook is used: every packet crosses lo twice
// (out, then in), and tcpdump shows it once too.
func (o *Objects) Attach(iface Interface, backend Backend) (*Attachment, error) {
	if err := o.addKey(iface.Index, packet.Ingress); err != nil {
		return nil, err
	}
	if err := o.addKey(iface.Index, packet.Egress); err != nil {
		return nil, err
	}
	eth := uint8(1)
	if iface.RawIP {
		eth = 0
	}
	if err := o.objs.KflcapIfcfg.Put(uint32(iface.Index), eth); err != nil {
		return nil, fmt.Errorf("record link layer of %s: %w", iface, err)
	}
	var (
		a   *Attachment
		err error
	)
	switch backend {
	case BackendTCX:
		a, err = o.attachTCX(iface)
	case BackendTC:
		a, err = o.attachTC(iface)
	case BackendSocket:
		a, err = o.attachSocket(iface)
	case BackendAuto, "":
		var errs []error
		for _, try := range []func(Interface) (*Attachment, error){o.attachTCX, o.attachTC, o.attachSocket} {
			if a, err = try(iface); err == nil {
				break
			}
			errs = append(errs, err)
		}
		if a == nil {
			err = errors.Join(errs...)
		}
	default:
		return nil, fmt.Errorf("unknown backend %q", backend)
	}
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.attached = append(o.attached, a)
	o.mu.Unlock()
	return a, nil
}

// Detach unhooks a and forgets it.
func (o *Objects) Detach(a *Attachment) error {
	o.mu.Lock()
	for i, b := range o.attached {
		if b == a {
			o.attached = append(o.attached[:i], o.attached[i+1:]...)
			break
		}
	}
	o.mu.Unlock()
	err := a.detach()
	o.forget(a.Iface.Index)
	return err
}

// forget removes an interface's counters and link-layer entry, so that
// interfaces coming and going (pod veths) do not fill the maps.
func (o *Objects) forget(ifindex int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, dir := range []packet.Direction{packet.Ingress, packet.Egress} {
		k := captureIfKey{Ifindex: uint32(ifindex), Direction: uint32(dir)}
		o.objs.KflcapIfstats.Delete(k)
		delete(o.keys, k)
	}
	o.objs.KflcapIfcfg.Delete(uint32(ifindex))
}

// Attachments lists what is attached now.
func (o *Objects) Attachments() []*Attachment {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*Attachment(nil), o.attached...)
}

func (o *Objects) attachTCX(iface Interface) (*Attachment, error) {
	a := &Attachment{Iface: iface, Backend: BackendTCX, sockFD: -1}
	hooks := []struct {
		prog *ebpf.Program
		at   ebpf.AttachType
	}{{o.objs.KflcapTcIn, ebpf.AttachTCXIngress}, {o.objs.KflcapTcEg, ebpf.AttachTCXEgress}}
	if iface.Loopback {
		hooks = hooks[:1]
	}
	// BPF_LINK_CREATE resolves the ifindex in the calling thread's netns.
	err := netnsrun.Do(iface.NetNS, func() error {
		for _, h := range hooks {
			l, err := link.AttachTCX(link.TCXOptions{
				Interface: iface.Index,
				Program:   h.prog,
				Attach:    h.at,
				Anchor:    link.Head(), // see packets before other programs act on them
			})
			if err != nil {
				return fmt.Errorf("attach tcx to %s: %w", iface, err)
			}
			a.links = append(a.links, l)
		}
		return nil
	})
	if err != nil {
		a.detach()
		return nil, err
	}
	return a, nil
}

// filterName names a legacy tc filter so that a later start can tell ours
// from others' and a dead owner's from a live one's.
func filterName(dir string) string {
	return "kflcap:" + strconv.Itoa(os.Getpid()) + ":" + dir
}

// filterOwner returns the pid in a filter name made by filterName.
func filterOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "kflcap:")
	if !ok {
		return 0, false
	}
	pid, _, _ := strings.Cut(rest, ":")
	n, err := strconv.Atoi(pid)
	return n, err == nil
}

func (o *Objects) attachTC(iface Interface) (*Attachment, error) {
	a := &Attachment{Iface: iface, Backend: BackendTC, sockFD: -1}
	h, err := netnsrun.Netlink(iface.NetNS)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: iface.Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	switch err := h.QdiscAdd(qdisc); {
	case err == nil:
		a.madeQdisc = true
	case errors.Is(err, unix.EEXIST):
		// Someone's clsact is there already: share it, leave it on detach.
	default:
		return nil, fmt.Errorf("add clsact qdisc to %s: %w", iface, err)
	}
	hooks := []struct {
		prog   *ebpf.Program
		parent uint32
		dir    string
	}{{o.objs.KflcapTcIn, netlink.HANDLE_MIN_INGRESS, "in"}, {o.objs.KflcapTcEg, netlink.HANDLE_MIN_EGRESS, "eg"}}
	if iface.Loopback {
		hooks = hooks[:1]
	}
	for _, hk := range hooks {
		f := &netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: iface.Index,
				Parent:    hk.parent,
				Handle:    netlink.MakeHandle(0, 1),
				Protocol:  unix.ETH_P_ALL,
				Priority:  1, // first, to see packets before other filters act
			},
			Fd:           hk.prog.FD(),
			Name:         filterName(hk.dir),
			DirectAction: true,
		}
		if err := h.FilterAdd(f); err != nil {
			a.detach()
			return nil, fmt.Errorf("add tc %s filter to %s: %w", hk.dir, iface, err)
		}
		a.filters = append(a.filters, f)
	}
	return a, nil
}

func (o *Objects) attachSocket(iface Interface) (*Attachment, error) {
	a := &Attachment{Iface: iface, Backend: BackendSocket, sockFD: -1}
	// The socket belongs to the netns it is created in.
	err := netnsrun.Do(iface.NetNS, func() error {
		// Protocol 0 receives nothing until bind; attach the filter first so
		// the socket never queues a packet.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket for %s: %w", iface, err)
		}
		a.sockFD = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, o.objs.KflcapSock.FD()); err != nil {
			return fmt.Errorf("attach socket filter for %s: %w", iface, err)
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: iface.Index}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind packet socket to %s: %w", iface, err)
		}
		return nil
	})
	if err != nil {
		a.detach()
		return nil, err
	}
	return a, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (a *Attachment) detach() error {
	var errs []error
	for _, l := range a.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach tcx from %s: %w", a.Iface, err))
		}
	}
	a.links = nil
	if len(a.filters) > 0 || a.madeQdisc {
		h, err := netnsrun.Netlink(a.Iface.NetNS)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		defer h.Close()
		for _, f := range a.filters {
			if err := h.FilterDel(f); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("delete tc filter %s from %s: %w", f.Name, a.Iface, err))
			}
		}
		a.filters = nil
		if a.madeQdisc {
			q := &netlink.GenericQdisc{
				QdiscAttrs: netlink.QdiscAttrs{LinkIndex: a.Iface.Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
				QdiscType:  "clsact",
			}
			if err := h.QdiscDel(q); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("delete clsact qdisc from %s: %w", a.Iface, err))
			}
			a.madeQdisc = false
		}
	}
	if a.sockFD >= 0 {
		unix.Close(a.sockFD)
		a.sockFD = -1
	}
	return errors.Join(errs...)
}

// isGone reports errors that mean the thing to delete no longer exists (the
// interface was deleted, taking its qdisc and filters along).
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL)
}
