package netnstest

import (
	"strings"
	"testing"
)

func TestPairPings(t *testing.T) {
	p := NewPair(t)
	out := Exec(t, p.A, "ping", "-c", "1", "-W", "2", p.IPB)
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping across the pair failed:\n%s", out)
	}
}
