package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
)

// compileQuery compiles a KFL query into a matcher. It is set by
// read_kfl.go, which wires the kfl package.
var compileQuery func(src string) (func(*dissect.Entry) bool, error)

const readExamples = `  kflcap read capture.pcap
  kflcap read capture.pcapng --json
  kflcap read capture.pcap --kfl 'http and response.status == 500'
  kflcap read kfl_0_kflcap_1700000000.tar.gz --kfl dns -w dns.pcap`

func init() {
	register("read", command{
		summary: "dissect pcap, pcapng or repository files into entries",
		run:     runRead,
	})
}

func runRead(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("read", "read FILE... [--kfl QUERY] [--json] [-w OUT]", readExamples, e.stdout)
	query := fs.String("kfl", "", "print only entries matching this KFL `query`; -w writes only their streams")
	asJSON := fs.Bool("json", false, "print one JSON object per entry")
	out := fs.String("w", "", "write the packets of the selected streams to `file` (pcap; pcapng when the name ends in .pcapng; - for stdout)")
	workers := fs.Int("workers", 1, "dissect on `n` goroutines sharded by flow (entry order is then only kept per stream)")
	quiet := fs.Bool("q", false, "print no entries (with -w: just write the file); the summary still goes to stderr")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageErrorf("no input file: read needs at least one pcap, pcapng or repository .tar.gz")
	}
	if *workers < 1 {
		return usageErrorf("--workers must be at least 1, got %d", *workers)
	}
	match := func(*dissect.Entry) bool { return true }
	if *query != "" {
		if compileQuery == nil {
			return usageErrorf("--kfl: this build has no KFL support")
		}
		m, err := compileQuery(*query)
		if err != nil {
			return usageErrorf("--kfl: %v", err)
		}
		match = m
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("open input: %w", err)
		}
	}

	var w *streamWriter
	if *out != "" {
		lt, err := outputLinkType(ctx, files)
		if err != nil {
			return err
		}
		dst := e.stdout
		if *out != "-" {
			f, err := os.Create(*out)
			if err != nil {
				return fmt.Errorf("create output: %w", err)
			}
			defer f.Close()
			dst = f
		}
		w, err = newStreamWriter(dst, lt, strings.HasSuffix(*out, ".pcapng"))
		if err != nil {
			return err
		}
	}

	bw := bufio.NewWriterSize(e.stdout, 64<<10)
	if *out == "-" {
		bw = bufio.NewWriter(io.Discard) // the pcap owns stdout
	}
	var mu sync.Mutex // entries come from several workers with --workers
	enc := json.NewEncoder(bw)
	var printErr error
	cfg := dissect.Config{
		Workers: *workers,
		Logger:  e.log,
		OnEntry: func(en *dissect.Entry, s dissect.StreamRef) {
			if !match(en) {
				return
			}
			if w != nil {
				s.Select(w)
			}
			if *quiet {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if *asJSON {
				if err := enc.Encode(en.JSON()); err != nil && printErr == nil {
					printErr = err
				}
				return
			}
			bw.WriteString(en.Summary())
			bw.WriteByte('\n')
		},
	}
	if w != nil {
		// Keep streams' packets so that a match can write them from the
		// first one; a file is finite, so the caps can be generous.
		cfg.StreamRetainBytes = 256 << 20
		cfg.TotalRetainBytes = 2 << 30
	}
	if os.Getenv("GOGC") == "" {
		// A file read is a batch job whose live heap is small and bounded
		// (stream table, retained packets): trade some memory for less
		// collector work, unless the user chose otherwise.
		debug.SetGCPercent(400)
	}
	d := dissect.New(cfg)
	progress, clearProgress := progressFunc(e.stderr)
	var feedErr error
	for _, name := range files {
		err := collector.ReadFile(ctx, name, func(p packet.Packet) error { return d.Feed(p) }, progress(name))
		clearProgress()
		if err != nil {
			feedErr = fmt.Errorf("%s: %w", name, err)
			break
		}
	}
	d.Close()
	st := d.Stats()
	if err := bw.Flush(); err != nil && printErr == nil {
		printErr = err
	}
	if w != nil {
		if err := w.Close(); err != nil && feedErr == nil {
			feedErr = err
		}
	}
	e.log.Debug("read done", "packets", st.Packets, "entries", st.Entries)
	if st.Malformed > 0 || st.StreamsEvicted > 0 || st.RetainOverflow > 0 || st.ReassemblyGaps > 0 {
		e.log.Info("dissection counters", "packets", st.Packets, "malformed", st.Malformed,
			"streams", st.Streams, "evicted", st.StreamsEvicted, "gaps", st.ReassemblyGaps,
			"retain_overflow", st.RetainOverflow)
	}
	if w != nil && w.skipped() > 0 {
		e.log.Warn("packets not written: link type differs from the output's", "packets", w.skipped())
	}
	if feedErr != nil {
		return feedErr
	}
	return printErr
}

// progressFunc returns, per file, a progress callback that rewrites one
// line on stderr when it is a terminal and the file is large, and a
// function that erases that line.
func progressFunc(stderr io.Writer) (func(name string) func(done, total int64), func()) {
	none := func(string) func(int64, int64) { return nil }
	f, ok := stderr.(*os.File)
	if !ok {
		return none, func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return none, func() {}
	}
	shown := false
	return func(name string) func(int64, int64) {
			start := time.Now()
			return func(done, total int64) {
				if total < 64<<20 {
					return
				}
				shown = true
				fmt.Fprintf(f, "\r%s: %3d%% (%d MiB, %.0f MiB/s)\x1b[K", name, done*100/max(total, 1),
					done>>20, float64(done>>20)/time.Since(start).Seconds())
			}
		}, func() {
			if shown {
				fmt.Fprint(f, "\r\x1b[K")
				shown = false
			}
		}
}

// outputLinkType chooses the output's link type: the inputs' one when they
// agree, else LINUX_SLL2, which can carry any of them (as tcpdump -i any).
func outputLinkType(ctx context.Context, files []string) (layers.LinkType, error) {
	seen := map[layers.LinkType]bool{}
	for _, name := range files {
		// A classic pcap states its one link type in the header; pcapng
		// and repositories have to be scanned.
		if lt, ok := pcapHeaderLinkType(name); ok {
			seen[lt] = true
			continue
		}
		err := collector.ReadFile(ctx, name, func(p packet.Packet) error {
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

// streamWriter is the Sink of read -w: it writes the selected streams'
// packets (a classic pcap converts them to its link type, LINUX_SLL2 when
// the inputs' differ; pcapng keeps each packet's own).
type streamWriter struct {
	mu  sync.Mutex
	w   pcap.PacketWriter
	pw  *pcap.PcapWriter // nil for pcapng
	err error
}

func newStreamWriter(dst io.Writer, lt layers.LinkType, ng bool) (*streamWriter, error) {
	const snaplen = 262144
	if ng {
		w, err := pcap.NewPcapngWriter(dst, nil, snaplen, "kflcap "+version)
		return &streamWriter{w: w}, err
	}
	pw, err := pcap.NewPcapWriter(dst, lt, snaplen)
	return &streamWriter{w: pw, pw: pw}, err
}

func (w *streamWriter) StreamPacket(_ dissect.StreamInfo, p packet.Packet) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = w.w.WritePacket(&p)
	}
}

func (w *streamWriter) StreamEnd(dissect.StreamInfo) {}

// skipped is how many packets the output's link type could not carry.
func (w *streamWriter) skipped() uint64 {
	if w.pw == nil {
		return 0
	}
	return w.pw.Skipped
}

func (w *streamWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := errors.Join(w.err, w.w.Close(nil)); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
