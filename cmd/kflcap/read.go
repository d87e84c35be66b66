package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
	"github.com/kflcap/kflcap/pipeline"
)

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

// readFlags are read's settings after parsing and checking.
type readFlags struct {
	files       []string
	query       *kfl.Query // nil: every entry
	json, quiet bool
	out         string
	workers     int
}

func parseReadFlags(e *env, args []string) (*readFlags, error) {
	fs := newFlagSet("read", "read FILE... [--kfl QUERY] [--json] [-w OUT]", readExamples, e.stdout)
	var rf readFlags
	query := fs.String("kfl", "", "print only entries matching this KFL `query`; -w writes only their streams")
	fs.BoolVar(&rf.json, "json", false, "print one JSON object per entry")
	fs.StringVar(&rf.out, "w", "", "write the packets of the selected streams to `file` (pcap; pcapng when the name ends in .pcapng; - for stdout)")
	fs.IntVar(&rf.workers, "workers", 1, "dissect on `n` goroutines sharded by flow (entry order is then only kept per stream)")
	fs.BoolVar(&rf.quiet, "q", false, "print no entries (with -w: just write the file); the summary still goes to stderr")
	var err error
	if rf.files, err = parseFlags(fs, args); err != nil {
		return nil, err
	}
	if len(rf.files) == 0 {
		return nil, usageErrorf("no input file: read needs at least one pcap, pcapng or repository .tar.gz")
	}
	if rf.workers < 1 {
		return nil, usageErrorf("--workers must be at least 1, got %d", rf.workers)
	}
	if *query != "" {
		if rf.query, err = compileQuery(*query); err != nil {
			return nil, err
		}
	}
	return &rf, nil
}

// runRead feeds the files through one pipeline selection: the query (every
// entry without --kfl) prints matching entries and selects their streams
// into the -w file.
func runRead(ctx context.Context, e *env, args []string) error {
	rf, err := parseReadFlags(e, args)
	if err != nil {
		return err
	}
	for _, f := range rf.files {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("open input: %w", err)
		}
	}
	cfg := dissect.Config{Workers: rf.workers, Logger: e.log}
	sel := pipeline.Selection{Query: rf.query}
	var out *readOutput
	if rf.out != "" {
		if out, err = createReadOutput(ctx, e.stdout, rf.out, rf.files); err != nil {
			return err
		}
		sel.Sink = out
		// Keep streams' packets so that a match can write them from the
		// first one; a file is finite, so the caps can be generous.
		cfg.StreamRetainBytes = 256 << 20
		cfg.TotalRetainBytes = 2 << 30
	}
	printer := dissect.NewEntryPrinter(e.stdout, rf.json)
	if !rf.quiet && rf.out != "-" { // with -w - the pcap owns stdout
		sel.OnMatch = printer.Print
	}
	if os.Getenv("GOGC") == "" {
		// A file read is a batch job whose live heap is small and bounded
		// (stream table, retained packets): trade some memory for less
		// collector work, unless the user chose otherwise.
		debug.SetGCPercent(400)
	}
	p := pipeline.New(pipeline.Config{Dissect: cfg, Selections: []pipeline.Selection{sel}})
	feedErr := feedFiles(ctx, e.stderr, p, rf.files)
	p.Close()
	printErr := printer.Flush()
	if out != nil {
		if err := out.close(); err != nil && feedErr == nil {
			feedErr = err
		}
	}
	logReadStats(e.log, p.Stats(), out)
	return cmp.Or(feedErr, printErr)
}

// feedFiles feeds every packet of files, in order, into p.
func feedFiles(ctx context.Context, stderr io.Writer, p *pipeline.Pipeline, files []string) error {
	progress, clearProgress := progressFunc(stderr)
	for _, name := range files {
		err := collector.ReadFile(ctx, name, func(pkt packet.Packet) error { return p.Feed(&pkt) }, progress(name))
		clearProgress()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func logReadStats(log *slog.Logger, st dissect.Stats, out *readOutput) {
	log.Debug("read done", "packets", st.Packets, "entries", st.Entries)
	if st.Malformed > 0 || st.StreamsEvicted > 0 || st.RetainOverflow > 0 || st.ReassemblyGaps > 0 {
		log.Info("dissection counters", "packets", st.Packets, "malformed", st.Malformed,
			"streams", st.Streams, "evicted", st.StreamsEvicted, "gaps", st.ReassemblyGaps,
			"retain_overflow", st.RetainOverflow)
	}
	if out != nil && out.skipped() > 0 {
		log.Warn("packets not written: link type differs from the output's", "packets", out.skipped())
	}
}

// readOutput is read -w: the selected streams' packets in one capture
// file. A classic pcap converts them to its link type (LINUX_SLL2 when the
// inputs' differ); pcapng keeps each packet's own.
type readOutput struct {
	*pipeline.WriterSink
	classic *pcap.PcapWriter // nil for pcapng
	file    *os.File         // nil for stdout
}

func createReadOutput(ctx context.Context, stdout io.Writer, name string, inputs []string) (*readOutput, error) {
	lt, err := collector.FileLinkType(ctx, inputs)
	if err != nil {
		return nil, err
	}
	o := &readOutput{}
	dst := stdout
	if name != "-" {
		if o.file, err = os.Create(name); err != nil {
			return nil, fmt.Errorf("create output: %w", err)
		}
		dst = o.file
	}
	const snaplen = 262144
	var w pcap.PacketWriter
	if strings.HasSuffix(name, ".pcapng") {
		w, err = pcap.NewPcapngWriter(dst, nil, snaplen, "kflcap "+version)
	} else {
		o.classic, err = pcap.NewPcapWriter(dst, lt, snaplen)
		w = o.classic
	}
	if err != nil {
		o.close()
		return nil, err
	}
	o.WriterSink = pipeline.NewWriterSink(w)
	return o, nil
}

// skipped is how many packets the output's link type could not carry.
func (o *readOutput) skipped() uint64 {
	if o.classic == nil {
		return 0
	}
	return o.classic.Skipped
}

func (o *readOutput) close() error {
	var err error
	if o.WriterSink != nil {
		err = o.WriterSink.Close()
	}
	if o.file != nil {
		err = errors.Join(err, o.file.Close())
	}
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
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
