package agent

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"
)

// The ring must hold exactly the newest packets that fit, in order, with
// their bytes intact, whatever the mix of sizes and however often it wraps.
func TestLookbackKeepsNewest(t *testing.T) {
	const ringBytes = 64 << 10
	l := NewLookback(ringBytes)
	rng := rand.New(rand.NewPCG(1, 2))
	var sent []packet.Packet
	base := time.Unix(1700000000, 0)
	for i := range 20000 {
		n := rng.IntN(3000)
		if i%97 == 0 {
			n = rng.IntN(20000)
		}
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(i + j)
		}
		p := packet.Packet{Time: base.Add(time.Duration(i) * time.Millisecond), Data: data, WireLen: n + 10, Ifindex: i % 7, LinkType: layers.LinkTypeEthernet, Dir: packet.Direction(i % 3)}
		l.Add(&p)
		sent = append(sent, p)

		if i%1000 != 999 {
			continue
		}
		var got []packet.Packet
		l.Since(time.Time{}, func(p *packet.Packet) {
			c := *p
			c.Data = append([]byte(nil), p.Data...)
			got = append(got, c)
		})
		// The newest packets whose records fit in the ring; the ring may keep
		// fewer (wrap padding), never more, and never a gap.
		total := 0
		fit := 0
		for k := len(sent) - 1; k >= 0; k-- {
			total += recSize(len(sent[k].Data))
			if total > ringBytes {
				break
			}
			fit++
		}
		if len(got) == 0 || len(got) > fit || len(got) < fit/2 {
			t.Fatalf("after %d packets the ring holds %d, %d would fit", i+1, len(got), fit)
		}
		want := sent[len(sent)-len(got):]
		for k := range got {
			w := want[k]
			if !got[k].Time.Equal(w.Time) || !bytes.Equal(got[k].Data, w.Data) || got[k].WireLen != w.WireLen ||
				got[k].Ifindex != w.Ifindex || got[k].Dir != w.Dir || got[k].LinkType != w.LinkType {
				t.Fatalf("after %d packets, record %d differs from packet %d", i+1, k, len(sent)-len(got)+k)
			}
		}
		if !l.Oldest().Equal(got[0].Time) {
			t.Fatalf("Oldest %v, first record %v", l.Oldest(), got[0].Time)
		}
	}
	if l.Evicted == 0 {
		t.Fatal("nothing evicted: the test did not wrap the ring")
	}
}

func TestLookbackSince(t *testing.T) {
	l := NewLookback(1 << 20)
	base := time.Unix(1700000000, 0)
	for i := range 100 {
		l.Add(&packet.Packet{Time: base.Add(time.Duration(i) * time.Second), Data: []byte{byte(i)}})
	}
	var got []byte
	l.Since(base.Add(90*time.Second), func(p *packet.Packet) { got = append(got, p.Data[0]) })
	if len(got) != 10 || got[0] != 90 || got[9] != 99 {
		t.Fatalf("since 90 s: %v", got)
	}
	big := make([]byte, 2<<20)
	l.Add(&packet.Packet{Time: base, Data: big})
	if l.Dropped != 1 {
		t.Fatalf("a packet larger than the ring must be counted as dropped")
	}
}

func BenchmarkLookbackAdd(b *testing.B) {
	l := NewLookback(64 << 20)
	p := packet.Packet{Time: time.Now(), Data: make([]byte, 600)}
	b.SetBytes(600)
	b.ReportAllocs()
	for b.Loop() {
		l.Add(&p)
	}
}
