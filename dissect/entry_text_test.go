package dissect_test

import (
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kflcap/kflcap/dissect"
)

var updateSummary = flag.Bool("update-summary", false, "rewrite testdata/summary/*.txt from the current Summary output")

// TestEntrySummaryGolden compares the one-line form of every entry of the
// committed captures with testdata/summary/<capture>.txt, which is what
// `kflcap read <capture>` printed before Summary moved here.
func TestEntrySummaryGolden(t *testing.T) {
	pcaps, _ := filepath.Glob("testdata/*.pcap")
	if len(pcaps) == 0 {
		t.Fatal("no captures in testdata")
	}
	for _, path := range pcaps {
		name := strings.TrimSuffix(filepath.Base(path), ".pcap")
		t.Run(name, func(t *testing.T) {
			entries, _ := dissectFile(t, path, dissect.Config{})
			var b strings.Builder
			for _, e := range entries {
				b.WriteString(e.Summary())
				b.WriteByte('\n')
			}
			golden := filepath.Join("testdata", "summary", name+".txt")
			if *updateSummary {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("Summary differs from %s:\n%s\nwant\n%s", golden, got, want)
			}
		})
	}
}

// TestSummaryAddresses: IPv6 in brackets, IPv4-mapped addresses unmapped.
func TestSummaryAddresses(t *testing.T) {
	e := &dissect.Entry{Protocol: dissect.Protocol{Name: "udp"}, Stream: "000000000001_udp.pcap"}
	e.Src.IP, e.Dst.IP = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.0.0.1")
	e.Src.Port, e.Dst.Port = 5353, 53
	got := e.Summary()
	want := "1970-01-01T00:00:00.000Z 000000000001_udp.pcap UDP  [2001:db8::1]:5353 -> 10.0.0.1:53"
	if got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

// TestEntryPrinter: text lines are Summary, JSON lines are the entry
// model, concurrent Prints do not interleave, and a write error is kept.
func TestEntryPrinter(t *testing.T) {
	entries, _ := dissectFile(t, "testdata/dns.pcap", dissect.Config{})
	for _, asJSON := range []bool{false, true} {
		var buf strings.Builder
		p := dissect.NewEntryPrinter(&buf, asJSON)
		var wg sync.WaitGroup
		for _, e := range entries {
			wg.Add(1)
			go func() { defer wg.Done(); p.Print(e) }()
		}
		wg.Wait()
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, e := range entries {
			if asJSON {
				b, _ := json.Marshal(e.JSON())
				want = append(want, string(b))
			} else {
				want = append(want, e.Summary())
			}
		}
		got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("json=%v: printed\n%s\nwant\n%s", asJSON, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	p := dissect.NewEntryPrinter(failingWriter{}, false)
	p.Print(entries[0])
	if err := p.Flush(); !errors.Is(err, errDiskFull) {
		t.Errorf("Flush to a failing writer: %v", err)
	}
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }
