package kfl

import (
	"strings"
	"testing"
)

const (
	benchSimple = `http and response.status == 500`
	benchMixed  = `http and request.method == "POST" and dst.port == 8080 and request.headers["content-type"] == "application/json" and src.ip.inCidr("10.0.0.0/8")`
	benchRegex  = `http and request.path == r"^/api/v[0-9]+/orders"`
	benchCEL    = `http && status_code == 500`
)

// benchQuery measures two workloads: "all" cycles through the fixtures
// (most entries fail the first clause), "match" evaluates the entry that
// matches, which runs every clause.
func benchQuery(b *testing.B, src string) {
	q := MustCompile(src)
	entries := fixtureSlice()
	post := fixtures()["post"]
	if !q.Match(post) {
		b.Fatalf("%q does not match the benchmark entry", src)
	}
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for i := 0; i < b.N; i++ {
			if q.Match(entries[i%len(entries)]) {
				n++
			}
		}
		if b.N > len(entries) && n == 0 {
			b.Fatal("nothing matched")
		}
	})
	b.Run("match", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if !q.Match(post) {
				b.Fatal("no match")
			}
		}
	})
}

func BenchmarkMatchSimple(b *testing.B) { benchQuery(b, benchSimple) }
func BenchmarkMatchMixed5(b *testing.B) { benchQuery(b, benchMixed) }
func BenchmarkMatchRegex(b *testing.B)  { benchQuery(b, benchRegex) }
func BenchmarkMatchCEL(b *testing.B)    { benchQuery(b, benchCEL) }

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(benchMixed); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMatchDoesNotAllocate: every KFL query of the table, on every fixture,
// evaluates without allocating, except for the documented exceptions
// (regexes and text helpers on IP addresses, JSON strings with escapes).
func TestMatchDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	entries := fixtureSlice()
	checked := 0
	for _, tc := range append(queryTable, struct{ q, want string }{benchMixed, ""}, struct{ q, want string }{benchRegex, ""}) {
		if strings.Contains(tc.q, `src.ip == r"`) || strings.Contains(tc.q, "src.ip.startsWith") || strings.Contains(tc.q, `note ==`) {
			continue
		}
		q, err := Compile(tc.q, WithMacros(testMacros), WithClock(testClock))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			q.Match(e) // warm lazily built tables
		}
		allocs := testing.AllocsPerRun(20, func() {
			for _, e := range entries {
				q.Match(e)
			}
		})
		if allocs != 0 {
			t.Errorf("%q: %.1f allocations per evaluation round", tc.q, allocs)
		}
		checked++
	}
	t.Logf("%d queries evaluate without allocating", checked)
}
