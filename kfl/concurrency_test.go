package kfl

import (
	"sync"
	"testing"
)

// TestConcurrentMatch runs one compiled query from many goroutines, as the
// dissector shards do; run with -race to check the no-locking contract.
func TestConcurrentMatch(t *testing.T) {
	qs := []*Query{
		MustCompile(benchMixed),
		MustCompile(`response.status == r"^5"`), // lazily built regex table
		MustCompile(`response.body.json().users[*].name == "bob" or request.body.json().note == "say \"hi\""`),
		MustCompile(benchCEL),
	}
	entries := fixtureSlice()
	want := make([][]bool, len(qs))
	for i, q := range qs {
		for _, e := range entries {
			want[i] = append(want[i], q.Match(e))
		}
	}
	// Fresh queries so that lazy state is built under contention.
	for i := range qs {
		qs[i] = MustCompile(qs[i].Source())
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 200; n++ {
				for i, q := range qs {
					for j, e := range entries {
						if q.Match(e) != want[i][j] {
							t.Errorf("%q on entry %d changed under concurrency", q.Source(), j)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}
