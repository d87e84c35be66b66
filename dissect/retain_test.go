package dissect_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/packet"
)

// Retention costs each packet's bytes and its header, within the caps; a
// stream Selectable rejects is counted but retains nothing, loses
// nothing and is not dissected (no entries). Five DNS exchanges on one
// 5-tuple; the stream is selected at the fifth answer, when its 10
// packets have been seen.
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
		entries    int
	}{
		{"all selectable", nil, 4, 6, 5},
		{"port 53 selectable", func(proto uint8, a, b netip.AddrPort) bool { return a.Port() == 53 || b.Port() == 53 }, 4, 6, 5},
		{"udp not selectable", func(proto uint8, a, b netip.AddrPort) bool { return proto != 17 }, 0, 0, 0},
		{"port 80 only", func(proto uint8, a, b netip.AddrPort) bool { return a.Port() == 80 || b.Port() == 80 }, 0, 0, 0},
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
				d.Feed(packet.Packet{Time: ts, LinkType: layers.LinkTypeEthernet, Data: b, WireLen: len(b)})
			}
			for i := range byte(5) {
				feed(frame(t, true, "10.99.0.1", "10.99.0.2", 40000, 53, "", 0, query(i)))
				feed(frame(t, true, "10.99.0.2", "10.99.0.1", 53, 40000, "", 0, answer(i)))
			}
			d.Close()
			if answers != c.entries {
				t.Fatalf("%d entries, want %d", answers, c.entries)
			}
			st := d.Stats()
			if st.RetainOverflow != c.wantLost {
				t.Errorf("retain overflow %d, want %d", st.RetainOverflow, c.wantLost)
			}
			if st.Packets != 10 || st.Streams != 1 {
				t.Errorf("counted %d packets in %d streams, want 10 in 1", st.Packets, st.Streams)
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

func (c *countSink) StreamPacket(s dissect.StreamInfo, p packet.Packet) { c.pkts++; c.lost = s.Lost }
func (c *countSink) StreamEnd(s dissect.StreamInfo)                     {}

// An unselectable TCP stream keeps the state its expiry and port reuse
// need: after a FIN each way, a new SYN on the same ports is a new stream,
// as when it is dissected.
func TestUnwantedTCPState(t *testing.T) {
	for _, sel := range []func(uint8, netip.AddrPort, netip.AddrPort) bool{
		nil, func(uint8, netip.AddrPort, netip.AddrPort) bool { return false },
	} {
		entries := 0
		d := dissect.New(dissect.Config{Selectable: sel, OnEntry: func(*dissect.Entry, dissect.StreamRef) { entries++ }})
		ts := time.Unix(1_700_000_000, 0)
		feed := func(b []byte) {
			ts = ts.Add(time.Millisecond)
			d.Feed(packet.Packet{Time: ts, LinkType: layers.LinkTypeEthernet, Data: b, WireLen: len(b)})
		}
		for range 2 {
			feed(frame(t, false, "10.99.0.1", "10.99.0.2", 40000, 2222, "S", 100, ""))
			feed(frame(t, false, "10.99.0.2", "10.99.0.1", 2222, 40000, "SA", 500, ""))
			feed(frame(t, false, "10.99.0.1", "10.99.0.2", 40000, 2222, "PA", 101, "hello"))
			feed(frame(t, false, "10.99.0.1", "10.99.0.2", 40000, 2222, "FA", 106, ""))
			feed(frame(t, false, "10.99.0.2", "10.99.0.1", 2222, 40000, "FA", 501, ""))
		}
		d.Close()
		st := d.Stats()
		wantEntries := 2
		if sel != nil {
			wantEntries = 0
		}
		if st.Streams != 2 || entries != wantEntries {
			t.Errorf("selectable %v: %d streams, %d entries; want 2 streams, %d entries", sel == nil, st.Streams, entries, wantEntries)
		}
	}
}
