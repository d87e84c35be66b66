package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/kflcap/kflcap/internal/netnsrun"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ownerPin is a one-element array map in every pin directory holding the pid
// of the process that owns it: bpffs holds only BPF objects, so the owner is
// recorded as one.
const ownerPin = "kflcap_owner"

// pinNames are every name a pin directory may hold.
var pinNames = []string{
	"kflcap_events", "kflcap_ifstats", "kflcap_unkeyed", "kflcap_ifcfg", "kflcap_pf_cfg", "kflcap_pf_proto",
	"kflcap_pf_port", "kflcap_pf_ip4", "kflcap_pf_ip6", "kflcap_tc_in", "kflcap_tc_eg", "kflcap_sock",
	ownerPin,
}

// alive reports whether pid is a running process other than a zombie.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S …".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

// pinOwner returns the pid recorded in dir, 0 when there is none.
func pinOwner(dir string) int {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, ownerPin), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return 0
	}
	defer m.Close()
	var pid uint32
	if err := m.Lookup(uint32(0), &pid); err != nil {
		return 0
	}
	return int(pid)
}

// claimPinDir makes dir ours: it refuses a directory owned by a live
// process, removes what a dead owner left, and records our pid.
func claimPinDir(dir string, log *slog.Logger) error {
	if err := ensureBPFFS(dir, log); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory %s: %w (is bpffs mounted at /sys/fs/bpf?)", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin directory %s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", dir)
	}
	if pid := pinOwner(dir); pid != 0 && pid != os.Getpid() && alive(pid) {
		return fmt.Errorf("pin directory %s is in use by kflcap pid %d", dir, pid)
	} else if n := removePins(dir); n > 0 {
		log.Info("removed pins left by a previous run", "dir", dir, "pins", n, "owner", pid)
	}
	owner, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: ownerPin, Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1,
	})
	if err != nil {
		return fmt.Errorf("create owner map: %w", err)
	}
	defer owner.Close() // the pin keeps it
	if err := owner.Put(uint32(0), uint32(os.Getpid())); err != nil {
		return fmt.Errorf("record owner: %w", err)
	}
	if err := owner.Pin(filepath.Join(dir, ownerPin)); err != nil {
		return fmt.Errorf("pin owner map in %s: %w", dir, err)
	}
	return nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf when dir lies below it and
// nothing is mounted there yet (as systemd does on most distributions, and
// bpftool does when asked to pin).
func ensureBPFFS(dir string, log *slog.Logger) error {
	const root = "/sys/fs/bpf"
	if dir != root && !strings.HasPrefix(dir, root+"/") {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil || st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", root, err)
	}
	log.Info("mounted bpffs", "at", root)
	return nil
}

func releasePinDir(dir string) {
	os.Remove(filepath.Join(dir, ownerPin))
	os.Remove(dir) // only when empty
	if parent := filepath.Dir(dir); parent == DefaultPinRoot {
		os.Remove(parent) // likewise
	}
}

// removePins removes kflcap's pins from dir and returns how many there were.
func removePins(dir string) int {
	n := 0
	for _, name := range pinNames {
		if os.Remove(filepath.Join(dir, name)) == nil {
			n++
		}
	}
	return n
}

// CleanupPins removes the pin directories below root (root/*) whose owners
// are dead. It does not touch root's own pins: the process that uses root
// itself claims it on Load.
func CleanupPins(root string, log *slog.Logger) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if pid := pinOwner(dir); pid == os.Getpid() || alive(pid) {
			continue
		}
		if n := removePins(dir); n > 0 && log != nil {
			log.Info("removed pins left by a previous run", "dir", dir, "pins", n)
		}
		os.Remove(dir)
	}
}

// CleanupFilters removes legacy tc filters that a kflcap process which has
// since died left on any interface of the netns at path ("" = current), and
// the clsact qdiscs that were left with no filter at all. It returns how
// many filters it removed.
func CleanupFilters(path string) (int, error) {
	h, err := netnsrun.Netlink(path)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return 0, fmt.Errorf("list interfaces: %w", err)
	}
	removed := 0
	var errs []error
	for _, l := range links {
		ours, others := 0, 0
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			filters, err := h.FilterList(l, parent)
			if err != nil {
				continue // no clsact here
			}
			for _, f := range filters {
				bf, ok := f.(*netlink.BpfFilter)
				if !ok {
					others++
					continue
				}
				pid, ok := filterOwner(bf.Name)
				if !ok || pid == os.Getpid() || alive(pid) {
					others++
					continue
				}
				if err := h.FilterDel(bf); err != nil && !isGone(err) {
					errs = append(errs, fmt.Errorf("delete leftover filter %s on %s: %w", bf.Name, l.Attrs().Name, err))
					continue
				}
				ours++
				removed++
			}
		}
		if ours > 0 && others == 0 {
			q := &netlink.GenericQdisc{
				QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
				QdiscType:  "clsact",
			}
			if err := h.QdiscDel(q); err != nil && !isGone(err) {
				errs = append(errs, fmt.Errorf("delete leftover clsact on %s: %w", l.Attrs().Name, err))
			}
		}
	}
	return removed, errors.Join(errs...)
}
