package collector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/kflcap/kflcap/packet"
)

// TestReadPcapVariants: microsecond and nanosecond, little- and big-endian
// pcaps, and a record larger than the read buffer, read back exactly.
func TestReadPcapVariants(t *testing.T) {
	ts := time.Unix(1_700_000_000, 123456789).UTC()
	pkts := [][]byte{[]byte("first packet"), bytes.Repeat([]byte{7}, 3<<20), []byte("last")}
	for _, nanos := range []bool{false, true} {
		var buf bytes.Buffer
		w := pcapgo.NewWriter(&buf)
		if nanos {
			w = pcapgo.NewWriterNanos(&buf)
		}
		w.WriteFileHeader(8<<20, layers.LinkTypeRaw)
		for i, p := range pkts {
			w.WritePacket(gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Second), CaptureLength: len(p), Length: len(p) + 1}, p)
		}
		for _, bigEndian := range []bool{false, true} {
			b := buf.Bytes()
			if bigEndian {
				b = swapPcap(b)
			}
			var got []packet.Packet
			err := ReadPackets(context.Background(), bytes.NewReader(b), func(p packet.Packet) error {
				p.Data = append([]byte(nil), p.Data...)
				got = append(got, p)
				return nil
			})
			if err != nil || len(got) != len(pkts) {
				t.Fatalf("nanos %v big-endian %v: %d packets, %v", nanos, bigEndian, len(got), err)
			}
			want := ts.Truncate(time.Microsecond)
			if nanos {
				want = ts
			}
			for i, p := range got {
				if !bytes.Equal(p.Data, pkts[i]) || p.WireLen != len(pkts[i])+1 || p.LinkType != layers.LinkTypeRaw ||
					!p.Time.Equal(want.Add(time.Duration(i)*time.Second)) {
					t.Errorf("nanos %v big-endian %v packet %d: len %d orig %d lt %v ts %v", nanos, bigEndian, i, len(p.Data), p.WireLen, p.LinkType, p.Time)
				}
			}
			// Truncated files end with an error, not a panic or a hang.
			for _, n := range []int{10, 30, 40, len(b) - 3} {
				if err := ReadPackets(context.Background(), bufio.NewReader(bytes.NewReader(b[:n])), func(packet.Packet) error { return nil }); err == nil && n > 24 {
					t.Errorf("truncated at %d: no error", n)
				}
			}
		}
	}
}

// swapPcap rewrites a little-endian pcap as big-endian.
func swapPcap(le []byte) []byte {
	b := append([]byte(nil), le...)
	sw32 := func(p []byte) { binary.BigEndian.PutUint32(p, binary.LittleEndian.Uint32(p)) }
	sw16 := func(p []byte) { binary.BigEndian.PutUint16(p, binary.LittleEndian.Uint16(p)) }
	sw32(b[0:4])
	sw16(b[4:6])
	sw16(b[6:8])
	for _, o := range []int{8, 12, 16, 20} {
		sw32(b[o : o+4])
	}
	for off := 24; off+16 <= len(b); {
		incl := int(binary.LittleEndian.Uint32(b[off+8:]))
		for _, o := range []int{0, 4, 8, 12} {
			sw32(b[off+o : off+o+4])
		}
		off += 16 + incl
	}
	return b
}
