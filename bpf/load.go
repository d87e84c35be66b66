package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// Limits of the capture programs.
const (
	// MaxSnaplen is the largest snaplen the programs' scratch buffer holds.
	MaxSnaplen = 262144
	// DefaultSnaplen covers full frames and 64 KiB GSO/GRO super-frames'
	// payload; it is the configuration default.
	DefaultSnaplen = 65535
	// DefaultRingBytes is the default ring buffer size (capture.ringBufferBytes).
	DefaultRingBytes = 16 << 20
	// DefaultPinRoot is where pins live unless configured otherwise.
	DefaultPinRoot = "/sys/fs/bpf/kflcap"
)

// Options configure Load.
type Options struct {
	// Snaplen is the most bytes copied per packet, 1..MaxSnaplen.
	Snaplen uint32
	// RingBytes is the ring buffer size: a power of two, at least a page.
	RingBytes uint32
	// WakeupBytes: the reader is woken only when this many bytes wait in the
	// ring (it polls with a deadline for the rest). 0 picks RingBytes/16.
	WakeupBytes uint64
	// PinDir, when set, is the bpffs directory where programs and maps are
	// pinned for bpftool. It must not be in use by a live process.
	PinDir string
	// Logger gets notices about cleanup of leftovers. Nil discards.
	Logger *slog.Logger
}

// Objects are the loaded programs and maps.
type Objects struct {
	objs   captureObjects
	pinDir string
	log    *slog.Logger

	mu       sync.Mutex
	attached []*Attachment
	keys     map[captureIfKey]bool
	pf       prefilterState
}

// Load checks opts, removes the memlock limit, loads the programs and maps
// and pins them when opts.PinDir is set.
func Load(opts Options) (*Objects, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Snaplen == 0 || opts.Snaplen > MaxSnaplen {
		return nil, fmt.Errorf("snaplen %d out of range 1..%d", opts.Snaplen, MaxSnaplen)
	}
	if opts.RingBytes == 0 {
		opts.RingBytes = DefaultRingBytes
	}
	if opts.RingBytes < uint32(os.Getpagesize()) || opts.RingBytes&(opts.RingBytes-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d must be a power of two of at least %d", opts.RingBytes, os.Getpagesize())
	}
	if opts.WakeupBytes == 0 {
		opts.WakeupBytes = uint64(opts.RingBytes / 16)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}

	spec, err := loadCapture()
	if err != nil {
		return nil, fmt.Errorf("load capture spec: %w", err)
	}
	if err := spec.Variables["snaplen"].Set(opts.Snaplen); err != nil {
		return nil, fmt.Errorf("set snaplen: %w", err)
	}
	if err := spec.Variables["wakeup_bytes"].Set(opts.WakeupBytes); err != nil {
		return nil, fmt.Errorf("set wakeup threshold: %w", err)
	}
	spec.Maps["kflcap_events"].MaxEntries = opts.RingBytes

	o := &Objects{pinDir: opts.PinDir, log: opts.Logger, keys: map[captureIfKey]bool{}}
	if err := spec.LoadAndAssign(&o.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load capture programs: %+v", ve)
		}
		return nil, fmt.Errorf("load capture programs: %w", err)
	}
	if opts.PinDir != "" {
		if err := o.pin(); err != nil {
			o.objs.Close()
			return nil, err
		}
	}
	return o, nil
}

// pinnable lists what is pinned, by name.
func (o *Objects) pinnable() map[string]interface{ Pin(string) error } {
	return map[string]interface{ Pin(string) error }{
		"kflcap_events":   o.objs.KflcapEvents,
		"kflcap_ifstats":  o.objs.KflcapIfstats,
		"kflcap_unkeyed":  o.objs.KflcapUnkeyed,
		"kflcap_ifcfg":    o.objs.KflcapIfcfg,
		"kflcap_pf_cfg":   o.objs.KflcapPfCfg,
		"kflcap_pf_proto": o.objs.KflcapPfProto,
		"kflcap_pf_port":  o.objs.KflcapPfPort,
		"kflcap_pf_ip4":   o.objs.KflcapPfIp4,
		"kflcap_pf_ip6":   o.objs.KflcapPfIp6,
		"kflcap_tc_in":    o.objs.KflcapTcIn,
		"kflcap_tc_eg":    o.objs.KflcapTcEg,
		"kflcap_sock":     o.objs.KflcapSock,
	}
}

func (o *Objects) pin() error {
	if err := claimPinDir(o.pinDir, o.log); err != nil {
		return err
	}
	for name, obj := range o.pinnable() {
		if err := obj.Pin(filepath.Join(o.pinDir, name)); err != nil {
			o.unpin()
			return fmt.Errorf("pin %s in %s: %w", name, o.pinDir, err)
		}
	}
	return nil
}

func (o *Objects) unpin() {
	if o.pinDir == "" {
		return
	}
	for name := range o.pinnable() {
		os.Remove(filepath.Join(o.pinDir, name))
	}
	releasePinDir(o.pinDir)
}

// Events is the ring buffer map the programs write records to.
func (o *Objects) Events() *ebpf.Map { return o.objs.KflcapEvents }

// PinDir is where the objects are pinned ("" when not pinned).
func (o *Objects) PinDir() string { return o.pinDir }

// Close detaches every attachment, then unpins and closes the objects.
func (o *Objects) Close() error {
	o.mu.Lock()
	attached := o.attached
	o.attached = nil
	o.mu.Unlock()
	var errs []error
	for _, a := range attached {
		if err := a.detach(); err != nil {
			errs = append(errs, err)
		}
	}
	o.unpin()
	if err := o.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close capture objects: %w", err))
	}
	return errors.Join(errs...)
}
