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

func benchQuery(b *testing.B, src string) {
	q := MustCompile(src)
	entries := fixtureSlice()
	post := fixtures()["post"]
	if !q.Match(post) {
		b.Fatalf("%q does not match the benchmark entry", src)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		// Alternate the matching entry with the others so that both the
		// early exit and the full evaluation are measured.
		e := post
		if i&1 == 1 {
			e = entries[i%len(entries)]
		}
		if q.Match(e) {
			n++
		}
	}
	if n == 0 {
		b.Fatal("nothing matched")
	}
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
