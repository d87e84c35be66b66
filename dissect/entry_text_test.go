package dissect_test

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
