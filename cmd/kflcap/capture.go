package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
	"github.com/kflcap/kflcap/pipeline"
)

func init() {
	register("capture", command{summary: "capture packets to a pcap/pcapng file, like tcpdump", run: runCapture})
}

const captureExamples = `  kflcap capture -i eth0 -w out.pcapng           # every packet on eth0
  kflcap capture -w - | wireshark -k -i -          # live into Wireshark
  kflcap capture -i any --port 53 -c 100 -w dns.pcap --format pcap
  kflcap capture --netns blue -i veth0 --duration 10s -w blue.pcapng
  kflcap capture --backend socket -i eth0          # print one line per packet`

// captureFlags are capture's flags as given, then checked and converted by
// check.
type captureFlags struct {
	ifaces, ports, protos, nets              stringList
	out, format, backend, netns, pinDir, kfl string
	count, snaplen, ringKiB                  int
	duration                                 time.Duration

	fileFormat pcap.Format
	hook       bpf.Backend
	ringBytes  uint32
	prefilter  bpf.Prefilter
	query      *kfl.Query // nil without --kfl
}

func parseCaptureFlags(e *env, args []string) (*captureFlags, error) {
	fs := newFlagSet("capture", "capture [-i IFACE]... [-w FILE|-] [--format pcapng|pcap] [-c COUNT] [-s SNAPLEN] [--duration D] [--backend auto|tcx|tc|socket] [--kfl QUERY]", captureExamples, e.stdout)
	var cf captureFlags
	fs.Var(&cf.ifaces, "i", "interface to capture on (repeatable); `any` is every interface but lo (default any)")
	fs.StringVar(&cf.out, "w", "", "write packets to `FILE` (- for stdout); without -w print one line per packet")
	fs.StringVar(&cf.format, "format", "pcapng", "file format: pcapng or pcap (pcap uses LINUX_SLL2 when interfaces' link types differ)")
	fs.IntVar(&cf.count, "c", 0, "stop after `COUNT` packets (0: no limit)")
	fs.IntVar(&cf.snaplen, "s", bpf.DefaultSnaplen, fmt.Sprintf("bytes to keep of each packet, 1..%d", bpf.MaxSnaplen))
	fs.DurationVar(&cf.duration, "duration", 0, "stop after this long, e.g. 30s (0: until interrupted)")
	fs.StringVar(&cf.backend, "backend", "auto", "how to hook interfaces: auto (tcx, else tc, else socket), tcx, tc or socket")
	fs.StringVar(&cf.netns, "netns", "", "capture inside this network namespace (an `ip netns` name or a path)")
	fs.IntVar(&cf.ringKiB, "B", bpf.DefaultRingBytes/1024, "ring buffer size in KiB (rounded up to a power of two)")
	fs.StringVar(&cf.pinDir, "pin-dir", "", "pin programs and maps here for bpftool (default "+bpf.DefaultPinRoot+"/capture-PID; \"none\" to not pin)")
	fs.Var(&cf.ports, "port", "kernel prefilter: only packets with this source or destination `PORT` (repeatable)")
	fs.Var(&cf.protos, "proto", "kernel prefilter: only this IP protocol: tcp, udp, icmp, icmp6 or a number (repeatable)")
	fs.Var(&cf.nets, "net", "kernel prefilter: only packets from or to this `CIDR` or address (repeatable)")
	fs.StringVar(&cf.kfl, "kfl", "", "write only the packets of L4 streams this KFL query selects")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usageErrorf("unexpected argument %q (capture takes only flags; see --help)", pos[0])
	}
	return &cf, cf.check()
}

func (cf *captureFlags) check() error {
	if err := cf.fileFormat.UnmarshalText([]byte(cf.format)); err != nil {
		return usageErrorf("--format: %v", err)
	}
	if err := cf.hook.UnmarshalText([]byte(cf.backend)); err != nil {
		return usageErrorf("--backend: %v", err)
	}
	switch {
	case cf.snaplen < 1 || cf.snaplen > bpf.MaxSnaplen:
		return usageErrorf("-s: snaplen %d out of range 1..%d", cf.snaplen, bpf.MaxSnaplen)
	case cf.count < 0:
		return usageErrorf("-c: count %d is negative", cf.count)
	case cf.duration < 0:
		return usageErrorf("--duration: %v is negative", cf.duration)
	case cf.ringKiB < 4 || cf.ringKiB > 1<<20:
		return usageErrorf("-B: ring buffer size %d KiB out of range 4..1048576", cf.ringKiB)
	}
	cf.ringBytes = 1
	for cf.ringBytes < uint32(cf.ringKiB)*1024 {
		cf.ringBytes <<= 1
	}
	switch cf.pinDir {
	case "":
		cf.pinDir = filepath.Join(bpf.DefaultPinRoot, "capture-"+strconv.Itoa(os.Getpid()))
	case "none":
		cf.pinDir = ""
	}
	var err error
	if cf.prefilter, err = collector.ParsePrefilter(cf.ports, cf.protos, cf.nets); err != nil {
		return usageError{err}
	}
	if cf.kfl == "" {
		return nil
	}
	if cf.query, err = compileQuery(cf.kfl); err != nil {
		return err
	}
	// The kernel copies only what the query could select, unless the
	// prefilter flags say otherwise.
	if cf.prefilter.Empty() {
		cf.prefilter = pipeline.KernelPrefilter(false, cf.query)
	}
	return nil
}

func runCapture(ctx context.Context, e *env, args []string) error {
	cf, err := parseCaptureFlags(e, args)
	if err != nil {
		return err
	}
	nsPath, err := collector.NetNSPath(cf.netns)
	if err != nil {
		return usageErrorf("--netns: %v", err)
	}
	ifaces, err := collector.Discover(nsPath, cf.ifaces)
	if err != nil {
		return usageErrorf("-i: %v", err)
	}
	// Open the output before attaching anything: an unwritable file is a
	// usage error, and nothing must be left attached.
	out, outFile, err := openCaptureOutput(e.stdout, cf.out)
	if err != nil {
		return err
	}
	if outFile != nil {
		defer outFile.Close()
	}
	live, err := collector.StartLive(collector.LiveOptions{
		Ifaces: ifaces, Backend: cf.hook, Snaplen: uint32(cf.snaplen), RingBytes: cf.ringBytes,
		PinDir: cf.pinDir, Prefilter: cf.prefilter, Logger: e.log, Inline: true,
		// Like tcpdump's buffer timeout (1 s by default), a bound on how long
		// a quiet ring keeps packets: fewer wake-ups, not fewer packets.
		Reader: collector.ReaderOptions{Deadline: 200 * time.Millisecond},
	})
	if err != nil {
		if outFile != nil {
			os.Remove(cf.out)
		}
		return fmt.Errorf("start capture: %w", err)
	}
	defer live.Close()
	started := time.Now()
	var hooks []string
	for _, a := range live.Attachments() {
		hooks = append(hooks, a.Iface.Name+"/"+string(a.Backend))
	}
	fmt.Fprintf(e.stderr, "kflcap: capturing on %s, snaplen %d\n", strings.Join(hooks, ", "), cf.snaplen)

	c, err := newCapturer(cf, ifaces, out, e.stdout)
	if err != nil {
		return err
	}
	// The file header goes out now: a non-empty output says the programs
	// are attached (scripts and tests wait for it, as for the line above).
	c.flush()
	readErr := c.run(ctx, live, cf.duration)
	counters, err := live.Counters()
	if err != nil {
		return err
	}
	writeErr := c.close(collector.PcapStats(counters, started), outFile)
	if err := live.Close(); err != nil {
		e.log.Warn("detach", "err", err)
	}
	c.report(e.stderr, bpf.Total(counters), &live.Stages)
	return errors.Join(writeErr, readErr)
}

// openCaptureOutput opens -w: nil without it (print a line per packet),
// stdout for "-", else the file it creates.
func openCaptureOutput(stdout io.Writer, name string) (io.Writer, *os.File, error) {
	switch name {
	case "":
		return nil, nil, nil
	case "-":
		return stdout, nil, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, nil, usageErrorf("-w: %v", err)
	}
	return f, f, nil
}

// capturer writes, or prints, what a capture keeps: every packet, or with
// --kfl the packets of the L4 streams the query selects. Everything runs
// on the reader's goroutine.
type capturer struct {
	count       uint64             // -c; 0: no limit
	pw          pcap.PacketWriter  // nil: print one line per packet
	printer     *bufio.Writer      // without -w
	names       map[int]string     // ifindex → interface name, for printing
	pipe        *pipeline.Pipeline // nil without --kfl
	written     uint64
	beyondCount uint64 // packets that came after -c was reached
	err         error  // the first write error; nothing is written after it
}

func newCapturer(cf *captureFlags, ifaces []bpf.Interface, out, stdout io.Writer) (*capturer, error) {
	c := &capturer{count: uint64(cf.count), printer: bufio.NewWriter(stdout), names: map[int]string{}}
	for _, ifc := range ifaces {
		c.names[ifc.Index] = ifc.Name
	}
	if out != nil {
		pw, err := pcap.NewWriter(out, cf.fileFormat, collector.PcapInterfaces(ifaces), uint32(cf.snaplen), "kflcap "+version)
		if err != nil {
			return nil, err
		}
		c.pw = pw
	}
	if cf.query != nil {
		// Packets go through the dissector (synchronously, one worker) and
		// only the streams the query selects are written: their packets
		// retained from before the match, then every later one.
		c.pipe = pipeline.New(pipeline.Config{
			Dissect:    dissect.Config{Workers: 1, StreamRetainBytes: 4 << 20},
			Selections: []pipeline.Selection{{Query: cf.query, Sink: pipeline.PacketSink(c.emit)}},
		})
	}
	return c, nil
}

// run reads the ring until ctx ends, the duration passes, -c is reached
// or a write fails; it returns the reader's error.
func (c *capturer) run(ctx context.Context, live *collector.Live, duration time.Duration) error {
	stopCtx, cancel := context.WithCancel(ctx)
	if duration > 0 {
		stopCtx, cancel = context.WithTimeout(ctx, duration)
	}
	defer cancel()
	stopLater := context.AfterFunc(stopCtx, func() { live.Stop() })
	defer stopLater()
	// The reader runs in this goroutine: no hand-off between threads for
	// each batch (capture is single-threaded, like tcpdump).
	live.Consume(func(b *collector.Batch) {
		for i := range b.Packets {
			if c.pipe == nil {
				c.emit(&b.Packets[i])
			} else {
				c.pipe.Feed(&b.Packets[i])
			}
		}
		if c.count > 0 && c.written >= c.count || c.err != nil {
			live.Stop()
		}
		c.flush()
	})
	readErr := live.Wait()
	if c.pipe != nil {
		c.pipe.Close() // pending messages become entries and may still select streams
		c.flush()
	}
	return readErr
}

func (c *capturer) emit(p *packet.Packet) {
	if c.err != nil || (c.count > 0 && c.written >= c.count) {
		c.beyondCount++
		return
	}
	if c.pw != nil {
		c.err = c.pw.WritePacket(p)
	} else {
		c.printer.WriteString(dissect.PacketSummary(p, c.names[p.Ifindex]))
		c.printer.WriteByte('\n')
	}
	if c.err == nil {
		c.written++
	}
}

// flush hands what a batch wrote on, so that a reader at the other end of
// a pipe (wireshark -k -i -) sees packets as they come.
func (c *capturer) flush() {
	if c.pw == nil {
		c.printer.Flush()
	} else if c.err == nil {
		c.err = c.pw.Flush()
	}
}

// close writes the file's trailer and syncs a regular output file; it
// returns the first write error.
func (c *capturer) close(stats []pcap.IfaceStats, f *os.File) error {
	if c.pw != nil {
		if err := c.pw.Close(stats); err != nil && c.err == nil {
			c.err = err
		}
	}
	if f != nil && c.err == nil {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			c.err = f.Sync() // *PathError names the file
		}
	}
	return c.err
}

// report prints, like tcpdump, what was captured and what was lost where.
func (c *capturer) report(w io.Writer, total bpf.Counters, stages *collector.Stages) {
	fmt.Fprintf(w, "%d packets captured\n", c.written)
	fmt.Fprintf(w, "%d packets received by filter\n", total.Seen-total.Filtered)
	fmt.Fprintf(w, "%d packets dropped by kernel (ring buffer full %d, copy errors %d)\n", total.Dropped(), total.RingDrops, total.CopyErrors)
	fmt.Fprintf(w, "%d packets dropped in user space (malformed records)\n", stages.Malformed.Load())
	if total.Filtered > 0 {
		fmt.Fprintf(w, "%d packets not wanted by the prefilter\n", total.Filtered)
	}
	if c.beyondCount > 0 {
		fmt.Fprintf(w, "%d packets read after the -c limit, not written\n", c.beyondCount)
	}
	if read := stages.Read.Load(); read != total.Delivered {
		fmt.Fprintf(w, "kflcap: warning: kernel delivered %d records but %d were read\n", total.Delivered, read)
	}
}
