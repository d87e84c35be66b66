package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/internal/netnsrun"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

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

// Selector says which interfaces to capture on: names, "any" (every
// interface but lo; lo is captured only when named), shell patterns
// ("veth*", "eth?") and exclusions ("!docker0", "!veth9*"), in any mix.
type Selector struct {
	names, patterns, excludes []string
	any                       bool
}

// NewSelector parses interface arguments; none means "any".
func NewSelector(args []string) (*Selector, error) {
	s := &Selector{}
	if len(args) == 0 {
		args = []string{"any"}
	}
	for _, a := range args {
		switch {
		case a == "any":
			s.any = true
		case strings.HasPrefix(a, "!"):
			if _, err := filepath.Match(a[1:], ""); err != nil || a == "!" {
				return nil, fmt.Errorf("bad exclusion %q", a)
			}
			s.excludes = append(s.excludes, a[1:])
		case strings.ContainsAny(a, "*?["):
			if _, err := filepath.Match(a, ""); err != nil {
				return nil, fmt.Errorf("bad interface pattern %q: %w", a, err)
			}
			s.patterns = append(s.patterns, a)
		default:
			s.names = append(s.names, a)
		}
	}
	return s, nil
}

// Dynamic reports whether interfaces that appear later can match (any or
// patterns), so that the agent should follow link events.
func (s *Selector) Dynamic() bool { return s.any || len(s.patterns) > 0 }

// Match reports whether an interface is selected.
func (s *Selector) Match(name string, loopback bool) bool {
	for _, x := range s.excludes {
		if ok, _ := filepath.Match(x, name); ok {
			return false
		}
	}
	for _, n := range s.names {
		if n == name {
			return true
		}
	}
	for _, p := range s.patterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return s.any && !loopback
}

// Discover resolves interface names in the netns at nsPath ("" = current);
// see Selector for the forms. A name that matches no interface is an error
// that lists the known ones.
func Discover(nsPath string, names []string) ([]bpf.Interface, error) {
	sel, err := NewSelector(names)
	if err != nil {
		return nil, err
	}
	h, err := netnsrun.Netlink(nsPath)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var known []string
	byName := map[string]bool{}
	var out []bpf.Interface
	for _, l := range links {
		ifc := ifaceOf(l, nsPath)
		known = append(known, ifc.Name)
		byName[ifc.Name] = true
		if sel.Match(ifc.Name, ifc.Loopback) {
			out = append(out, ifc)
		}
	}
	sort.Strings(known)
	for _, n := range sel.names {
		if !byName[n] {
			return nil, fmt.Errorf("unknown interface %q (interfaces: %s)", n, strings.Join(known, ", "))
		}
	}
	if len(out) == 0 && !sel.Dynamic() {
		return nil, fmt.Errorf("no interface to capture on (interfaces: %s)", strings.Join(known, ", "))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

func ifaceOf(l netlink.Link, nsPath string) bpf.Interface {
	a := l.Attrs()
	return bpf.Interface{Name: a.Name, Index: a.Index, Loopback: a.EncapType == "loopback",
		RawIP: rawIP(a.EncapType), NetNS: nsPath}
}

// WatchLinks calls onAdd for every interface that appears (or is renamed)
// and matches sel, and onDel for every interface that disappears, until
// ctx ends. Events come from netlink, so a new pod's veth is seen within
// milliseconds. Right after subscribing it lists the interfaces and calls
// onAdd for each match (one created between the caller's own listing and
// the subscription is not missed; onAdd must take an interface it knows).
// If the subscription fails (netlink drops events when its socket buffer
// overflows), it reports the error, subscribes again and lists again,
// calling onDel for interfaces that went meanwhile. onErr is not called
// once ctx has ended.
func WatchLinks(ctx context.Context, nsPath string, sel *Selector, onAdd func(bpf.Interface), onDel func(index int), onErr func(error)) error {
	report := func(err error) {
		if ctx.Err() == nil {
			onErr(err)
		}
	}
	subscribe := func() (chan netlink.LinkUpdate, chan struct{}, error) {
		updates := make(chan netlink.LinkUpdate, 256)
		done := make(chan struct{})
		opts := netlink.LinkSubscribeOptions{ErrorCallback: report}
		if nsPath != "" {
			ns, err := netns.GetFromPath(nsPath)
			if err != nil {
				return nil, nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
			}
			defer ns.Close()
			opts.Namespace = &ns
		}
		if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
			return nil, nil, fmt.Errorf("watch interfaces: %w", err)
		}
		return updates, done, nil
	}
	updates, done, err := subscribe()
	if err != nil {
		return err
	}
	known := map[int]bool{} // reported to onAdd and not deleted since
	resync := func() {
		h, err := netnsrun.Netlink(nsPath)
		if err != nil {
			report(err)
			return
		}
		defer h.Close()
		links, err := h.LinkList()
		if err != nil {
			report(fmt.Errorf("list interfaces: %w", err))
			return
		}
		present := map[int]bool{}
		for _, l := range links {
			ifc := ifaceOf(l, nsPath)
			present[ifc.Index] = true
			if sel.Match(ifc.Name, ifc.Loopback) {
				known[ifc.Index] = true
				onAdd(ifc)
			}
		}
		for index := range known {
			if !present[index] {
				delete(known, index)
				onDel(index)
			}
		}
	}
	go func() {
		defer func() { close(done) }()
		resync()
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					// The subscription ended with an error (reported): take
					// a new one, and catch up on what happened between.
					for {
						select {
						case <-ctx.Done():
							return
						case <-time.After(100 * time.Millisecond):
						}
						close(done)
						if updates, done, err = subscribe(); err == nil {
							break
						}
						report(err)
						done = make(chan struct{})
					}
					report(errors.New("interface watch subscribed again after an error; interfaces listed again"))
					resync()
					continue
				}
				switch u.Header.Type {
				case unix.RTM_NEWLINK:
					ifc := ifaceOf(u.Link, nsPath)
					if sel.Match(ifc.Name, ifc.Loopback) {
						known[ifc.Index] = true
						onAdd(ifc)
					}
				case unix.RTM_DELLINK:
					delete(known, int(u.Index))
					onDel(int(u.Index))
				}
			}
		}
	}()
	return nil
}

// rawIP reports from netlink's encapsulation name (the ARPHRD type)
// whether the programs see the IP header first (L3 devices: tun,
// wireguard, ipip, …) rather than a MAC header (Ethernet-like devices and
// loopback).
func rawIP(encap string) bool {
	return encap != "ether" && encap != "loopback"
}
