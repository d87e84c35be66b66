package dissect_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/dissect"
)

// Retention costs each packet's bytes and its header, within the caps; a
// stream Selectable rejects retains nothing and loses nothing. Five DNS
// exchanges on one 5-tuple; the stream is selected at the fifth answer,
// when its 10 packets have been seen.
func TestRetainCostAndSelectable(t *testing.T) {
	query := func(id byte) string {
		return string([]byte{0x12, id}) + "\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x04test\x00\x00\x01\x00\x01"
	}
	answer := func(id byte) string {
		return string([]byte{0x12, id}) + "\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x01x\x04test\x00\x00\x01\x00\x01"
	}
	for _, c := range []struct {
		name       string
		selectable func(uint8, netip.AddrPort, netip.AddrPort) bool
		wantKept   int // of the 10 datagrams, replayed at Select
		wantLost   uint64
	}{
		{"all selectable", nil, 4, 6},
		{"port 53 selectable", func(proto uint8, a, b netip.AddrPort) bool { return a.Port() == 53 || b.Port() == 53 }, 4, 6},
		{"udp not selectable", func(proto uint8, a, b netip.AddrPort) bool { return proto != 17 }, 0, 0},
		{"port 80 only", func(proto uint8, a, b netip.AddrPort) bool { return a.Port() == 80 || b.Port() == 80 }, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			size := len(frame(t, true, "10.99.0.1", "10.99.0.2", 40000, 53, "", 0, query(0)))
			sink := &countSink{}
			answers := 0
			d := dissect.New(dissect.Config{
				// Room for exactly 4 of these datagrams with their headers.
				StreamRetainBytes: 4*(size+dissect.PacketHeaderBytes) + 1,
				Selectable:        c.selectable,
				OnEntry: func(e *dissect.Entry, s dissect.StreamRef) {
					if answers++; answers == 5 {
						s.Select(sink)
					}
				},
			})
			ts := time.Unix(1_700_000_000, 0)
			feed := func(b []byte) {
				ts = ts.Add(time.Millisecond)
				d.Feed(dissect.Packet{Timestamp: ts, LinkType: layers.LinkTypeEthernet, Data: b, OrigLen: len(b)})
			}
			for i := range byte(5) {
				feed(frame(t, true, "10.99.0.1", "10.99.0.2", 40000, 53, "", 0, query(i)))
				feed(frame(t, true, "10.99.0.2", "10.99.0.1", 53, 40000, "", 0, answer(i)))
			}
			d.Close()
			if answers != 5 {
				t.Fatalf("%d entries, want 5", answers)
			}
			if st := d.Stats(); st.RetainOverflow != c.wantLost {
				t.Errorf("retain overflow %d, want %d", st.RetainOverflow, c.wantLost)
			}
			if sink.pkts != c.wantKept || sink.lost != c.wantLost {
				t.Errorf("replayed %d packets (lost %d), want %d (%d)", sink.pkts, sink.lost, c.wantKept, c.wantLost)
			}
		})
	}
}

type countSink struct {
	pkts int
	lost uint64
}

func (c *countSink) StreamPacket(s dissect.StreamInfo, p dissect.Packet) { c.pkts++; c.lost = s.Lost }
func (c *countSink) StreamEnd(s dissect.StreamInfo)                      {}
