package kfl

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
)

var update = flag.Bool("update", false, "rewrite testdata/captures.golden")

// TestTableOnCaptures runs the whole query table on the entries the
// dissectors make from their real captures and compares which entries each
// query selects with testdata/captures.golden. The golden file was reviewed
// when written (and the oracle test above checks a subset independently);
// after a deliberate change to the captures or the dissectors, rerun with
// -update and review the diff.
func TestTableOnCaptures(t *testing.T) {
	paths, _ := filepath.Glob("../dissect/testdata/*.pcap*")
	type labeled struct {
		id string
		e  *dissect.Entry
	}
	var entries []labeled
	for _, path := range paths {
		n := 0
		d := dissect.New(dissect.Config{OnEntry: func(e *dissect.Entry, _ dissect.StreamRef) {
			entries = append(entries, labeled{fmt.Sprintf("%s#%d", filepath.Base(path), n), e})
			n++
		}})
		if err := collector.ReadFile(context.Background(), path, d.Feed, nil); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		d.Close()
	}
	if len(entries) == 0 {
		t.Skip("no captures")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# query → entries selected (capture#index), over %d entries of %d captures\n", len(entries), len(paths))
	for _, tc := range queryTable {
		// now() moves; the golden file must not.
		q, err := Compile(tc.q, WithMacros(testMacros), WithClock(testClock))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, le := range entries {
			if q.Match(le.e) {
				ids = append(ids, le.id)
			}
		}
		fmt.Fprintf(&b, "%s\n\t%d: %s\n", tc.q, len(ids), strings.Join(ids, " "))
	}
	const golden = "testdata/captures.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != b.String() {
		gl, wl := strings.Split(b.String(), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s differs at line %d:\n  got  %s\n  want %s\n(if the captures or the dissectors changed on purpose, run go test ./kfl -run TableOnCaptures -update and review the diff)", golden, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s differs in length", golden)
	}
}
