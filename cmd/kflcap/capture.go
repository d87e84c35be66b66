package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
)

func init() {
	register("capture", command{summary: "capture packets to a pcap/pcapng file, like tcpdump", run: runCapture})
}

const captureExamples = `  kflcap capture -i eth0 -w out.pcapng           # every packet on eth0
  kflcap capture -w - | wireshark -k -i -          # live into Wireshark
  kflcap capture -i any --port 53 -c 100 -w dns.pcap --format pcap
  kflcap capture --netns blue -i veth0 --duration 10s -w blue.pcapng
  kflcap capture --backend socket -i eth0          # print one line per packet`

// captureFlags are capture's settings after parsing and checking.
type captureFlags struct {
	ifaces    []string
	out       string
	format    pcap.Format
	count     int
	snaplen   uint32
	duration  time.Duration
	backend   bpf.Backend
	netns     string
	ringBytes uint32
	pinDir    string
	prefilter bpf.Prefilter
	kfl       string
}

func parseCaptureFlags(e *env, args []string) (*captureFlags, error) {
	fs := newFlagSet("capture", "capture [-i IFACE]... [-w FILE|-] [--format pcapng|pcap] [-c COUNT] [-s SNAPLEN] [--duration D] [--backend auto|tcx|tc|socket] [--kfl QUERY]", captureExamples, e.stdout)
	var (
		ifaces, ports, protos, nets stringList
		cf                          captureFlags
	)
	fs.Var(&ifaces, "i", "interface to capture on (repeatable); `any` is every interface but lo (default any)")
	fs.StringVar(&cf.out, "w", "", "write packets to `FILE` (- for stdout); without -w print one line per packet")
	format := fs.String("format", "pcapng", "file format: pcapng or pcap (pcap uses LINUX_SLL2 when interfaces' link types differ)")
	fs.IntVar(&cf.count, "c", 0, "stop after `COUNT` packets (0: no limit)")
	snaplen := fs.Int("s", bpf.DefaultSnaplen, fmt.Sprintf("bytes to keep of each packet, 1..%d", bpf.MaxSnaplen))
	fs.DurationVar(&cf.duration, "duration", 0, "stop after this long, e.g. 30s (0: until interrupted)")
	backend := fs.String("backend", "auto", "how to hook interfaces: auto (tcx, else tc, else socket), tcx, tc or socket")
	fs.StringVar(&cf.netns, "netns", "", "capture inside this network namespace (an `ip netns` name or a path)")
	ringKiB := fs.Int("B", bpf.DefaultRingBytes/1024, "ring buffer size in KiB (rounded up to a power of two)")
	fs.StringVar(&cf.pinDir, "pin-dir", "", "pin programs and maps here for bpftool (default "+bpf.DefaultPinRoot+"/capture-PID; \"none\" to not pin)")
	fs.Var(&ports, "port", "kernel prefilter: only packets with this source or destination `PORT` (repeatable)")
	fs.Var(&protos, "proto", "kernel prefilter: only this IP protocol: tcp, udp, icmp, icmp6 or a number (repeatable)")
	fs.Var(&nets, "net", "kernel prefilter: only packets from or to this `CIDR` or address (repeatable)")
	fs.StringVar(&cf.kfl, "kfl", "", "write only the packets of L4 streams this KFL query selects")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usageErrorf("unexpected argument %q (capture takes only flags; see --help)", pos[0])
	}
	cf.ifaces = ifaces
	if err := cf.format.UnmarshalText([]byte(*format)); err != nil {
		return nil, usageErrorf("--format: %v", err)
	}
	if err := cf.backend.UnmarshalText([]byte(*backend)); err != nil {
		return nil, usageErrorf("--backend: %v", err)
	}
	if *snaplen < 1 || *snaplen > bpf.MaxSnaplen {
		return nil, usageErrorf("-s: snaplen %d out of range 1..%d", *snaplen, bpf.MaxSnaplen)
	}
	cf.snaplen = uint32(*snaplen)
	if cf.count < 0 {
		return nil, usageErrorf("-c: count %d is negative", cf.count)
	}
	if cf.duration < 0 {
		return nil, usageErrorf("--duration: %v is negative", cf.duration)
	}
	if *ringKiB < 4 || *ringKiB > 1<<20 {
		return nil, usageErrorf("-B: ring buffer size %d KiB out of range 4..1048576", *ringKiB)
	}
	cf.ringBytes = 1
	for cf.ringBytes < uint32(*ringKiB)*1024 {
		cf.ringBytes <<= 1
	}
	for _, p := range ports {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, usageErrorf("--port: %q is not a port number", p)
		}
		cf.prefilter.Ports = append(cf.prefilter.Ports, uint16(n))
	}
	for _, p := range protos {
		n, ok := map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "sctp": 132}[strings.ToLower(p)]
		if !ok {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return nil, usageErrorf("--proto: %q is not tcp, udp, icmp, icmp6, sctp or a protocol number", p)
			}
			n = uint8(v)
		}
		cf.prefilter.Protocols = append(cf.prefilter.Protocols, n)
	}
	for _, n := range nets {
		pfx, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return nil, usageErrorf("--net: %q is not an address or CIDR", n)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		cf.prefilter.Prefixes = append(cf.prefilter.Prefixes, pfx)
	}
	switch cf.pinDir {
	case "":
		cf.pinDir = filepath.Join(bpf.DefaultPinRoot, "capture-"+strconv.Itoa(os.Getpid()))
	case "none":
		cf.pinDir = ""
	}
	return &cf, nil
}

func runCapture(ctx context.Context, e *env, args []string) error {
	cf, err := parseCaptureFlags(e, args)
	if err != nil {
		return err
	}
	var query *kfl.Query
	if cf.kfl != "" {
		if query, err = kfl.Compile(cf.kfl); err != nil {
			var ke *kfl.Error
			if errors.As(err, &ke) {
				return usageErrorf("--kfl: kfl: %s", ke.Detailed())
			}
			return usageErrorf("--kfl: %v", err)
		}
		// The kernel copies only what the query could select, unless the
		// prefilter flags say otherwise.
		if cf.prefilter.Empty() {
			if pf := kfl.Pushdown(query); !pf.All {
				cf.prefilter = bpf.Prefilter{Protocols: pf.Protocols, Prefixes: pf.Prefixes, Ports: pf.Ports}
			}
		}
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
	var out io.Writer
	var outFile *os.File
	switch cf.out {
	case "":
		out = nil
	case "-":
		out = os.Stdout
		if e.stdout != os.Stdout {
			out = e.stdout
		}
	default:
		outFile, err = os.Create(cf.out)
		if err != nil {
			return usageErrorf("-w: %v", err)
		}
		defer outFile.Close()
		out = outFile
	}

	live, err := collector.StartLive(collector.LiveOptions{
		Ifaces: ifaces, Backend: cf.backend, Snaplen: cf.snaplen, RingBytes: cf.ringBytes,
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
	var backends []string
	for _, a := range live.Attachments() {
		backends = append(backends, a.Iface.Name+"/"+string(a.Backend))
	}
	fmt.Fprintf(e.stderr, "kflcap: capturing on %s, snaplen %d\n", strings.Join(backends, ", "), cf.snaplen)

	var pw pcap.PacketWriter
	if out != nil {
		pw, err = pcap.NewWriter(out, cf.format, pcapInterfaces(ifaces), cf.snaplen, "kflcap "+version)
		if err != nil {
			return err
		}
	}
	names := map[int]string{}
	for _, ifc := range ifaces {
		names[ifc.Index] = ifc.Name
	}
	printer := bufio.NewWriter(e.stdout)

	stopCtx := ctx
	if cf.duration > 0 {
		var cancel context.CancelFunc
		stopCtx, cancel = context.WithTimeout(ctx, cf.duration)
		defer cancel()
	}
	go func() {
		<-stopCtx.Done()
		live.Stop()
	}()

	var written, beyondCount uint64
	var writeErr error
	emit := func(p *packet.Packet) {
		if writeErr != nil || (cf.count > 0 && written >= uint64(cf.count)) {
			beyondCount++
			return
		}
		if pw != nil {
			writeErr = pw.WritePacket(p)
		} else {
			printPacket(printer, p, names[p.Ifindex], ifaceLinkType(ifaces, p.Ifindex))
		}
		if writeErr == nil {
			written++
		}
	}
	// With --kfl, packets go through the dissector (synchronously, one
	// worker) and only the streams the query selects are written: their
	// packets retained from before the match, then every later one.
	var dis *dissect.Dissector
	if query != nil {
		sel := &selectedWriter{emit: emit}
		dis = dissect.New(dissect.Config{
			Workers:           1,
			StreamRetainBytes: 4 << 20,
			OnEntry: func(e *dissect.Entry, s dissect.StreamRef) {
				if query.Match(e) {
					s.Select(sel)
				}
			},
		})
	}
	// The reader runs in this goroutine: no hand-off between threads for
	// each batch (capture is single-threaded, like tcpdump).
	live.Consume(func(b *collector.Batch) {
		for i := range b.Packets {
			p := &b.Packets[i]
			if dis == nil {
				emit(p)
				continue
			}
			dis.Feed(*p)
		}
		if cf.count > 0 && written >= uint64(cf.count) || writeErr != nil {
			live.Stop()
		}
		// Flush per batch so a reader at the other end of a pipe
		// (wireshark -k -i -) sees packets as they come.
		if pw == nil {
			printer.Flush()
		} else if writeErr == nil {
			writeErr = pw.Flush()
		}
	})
	readErr := live.Wait()
	if dis != nil {
		dis.Close() // pending messages become entries and may still select streams
	}
	counters, cerr := live.Counters()
	if cerr != nil {
		return cerr
	}

	// Per-interface statistics for the pcapng trailer.
	var stats []pcap.IfaceStats
	perIf := map[int]*pcap.IfaceStats{}
	for k, c := range counters {
		s := perIf[k.Ifindex]
		if s == nil {
			s = &pcap.IfaceStats{Ifindex: k.Ifindex, Start: started}
			perIf[k.Ifindex] = s
		}
		s.Received += c.Seen - c.Filtered
		s.KernelDrop += c.Dropped()
	}
	for _, s := range perIf {
		stats = append(stats, *s)
	}
	sort.Slice(stats, func(i, j int) bool { return stats[i].Ifindex < stats[j].Ifindex })
	if pw != nil {
		if err := pw.Close(stats); err != nil && writeErr == nil {
			writeErr = err
		}
	}
	if outFile != nil && writeErr == nil {
		if fi, err := outFile.Stat(); err == nil && fi.Mode().IsRegular() {
			writeErr = outFile.Sync() // *PathError names the file
		}
	}
	if err := live.Close(); err != nil {
		e.log.Warn("detach", "err", err)
	}

	total := bpf.Total(counters)
	fmt.Fprintf(e.stderr, "%d packets captured\n", written)
	fmt.Fprintf(e.stderr, "%d packets received by filter\n", total.Seen-total.Filtered)
	fmt.Fprintf(e.stderr, "%d packets dropped by kernel (ring buffer full %d, copy errors %d)\n", total.Dropped(), total.RingDrops, total.CopyErrors)
	fmt.Fprintf(e.stderr, "%d packets dropped in user space (malformed records)\n", live.Stages.Malformed.Load())
	if total.Filtered > 0 {
		fmt.Fprintf(e.stderr, "%d packets not wanted by the prefilter\n", total.Filtered)
	}
	if beyondCount > 0 {
		fmt.Fprintf(e.stderr, "%d packets read after the -c limit, not written\n", beyondCount)
	}
	if read := live.Stages.Read.Load(); read != total.Delivered {
		fmt.Fprintf(e.stderr, "kflcap: warning: kernel delivered %d records but %d were read\n", total.Delivered, read)
	}
	return errors.Join(writeErr, readErr)
}

// selectedWriter writes the packets of the streams a query selected.
type selectedWriter struct{ emit func(*packet.Packet) }

func (w *selectedWriter) StreamPacket(_ dissect.StreamInfo, p packet.Packet) { w.emit(&p) }

func (w *selectedWriter) StreamEnd(dissect.StreamInfo) {}

func ifaceLinkType(ifaces []collector.Iface, ifindex int) layers.LinkType {
	for _, ifc := range ifaces {
		if ifc.Index == ifindex {
			return ifc.LinkType
		}
	}
	return layers.LinkTypeEthernet
}

// printPacket prints a one-line summary, tcpdump-style.
func printPacket(w io.Writer, p *packet.Packet, ifname string, lt layers.LinkType) {
	ts := p.Time.Format("15:04:05.000000")
	dir := "In "
	if p.Dir == packet.Egress {
		dir = "Out"
	}
	pkt := gopacket.NewPacket(p.Data, lt, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	desc := ""
	if nl := pkt.NetworkLayer(); nl != nil {
		src, dst := nl.NetworkFlow().Endpoints()
		desc = fmt.Sprintf("%s %s", nl.LayerType(), src)
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
	fmt.Fprintf(w, "%s %s %s %s, length %d\n", ts, ifname, dir, desc, p.WireLen)
}

// pcapInterfaces describes ifaces for a capture file's header.
func pcapInterfaces(ifaces []collector.Iface) []pcap.Interface {
	out := make([]pcap.Interface, 0, len(ifaces))
	for _, ifc := range ifaces {
		pi := pcap.Interface{Index: ifc.Index, Name: ifc.Name, LinkType: ifc.LinkType}
		if ifc.NetNS != "" {
			pi.Description = "netns " + ifc.NetNS
		}
		out = append(out, pi)
	}
	return out
}
