package pcap_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
)

// FuzzAppendSLL2 checks that AppendSLL2, RecordLen and PcapWriter agree on
// every input: AppendSLL2 converts exactly when RecordLen says a LINUX_SLL2
// file carries the packet, appends exactly RecordLen bytes after what dst
// held, writes a header gopacket decodes with the packet's interface and
// direction, keeps the network layer as it was, and PcapWriter writes the
// same bytes (or skips and counts the packet).
func FuzzAppendSLL2(f *testing.F) {
	f.Add(uint8(0), []byte("\x02\x00\x00\x00\x00\x0b\x02\x00\x00\x00\x00\x0a\x08\x00\x45\x00"), uint8(0), int32(2), []byte{})
	f.Add(uint8(1), []byte("\x60\x00\x00\x00"), uint8(1), int32(7), []byte("prefix"))
	f.Add(uint8(4), []byte("\x00\x04\x00\x01\x00\x06\x02\x00\x00\x00\x00\x0a\x00\x00\x08\x00\x45"), uint8(2), int32(-1), []byte{})
	f.Add(uint8(4), []byte("\x00\x00\x00\x01\x00\xff\x02\x00\x00\x00\x00\x0a\x00\x00\x08\x00"), uint8(0), int32(1), []byte{})
	f.Add(uint8(5), make([]byte, 20), uint8(1), int32(3), []byte{1})
	f.Add(uint8(0), make([]byte, 13), uint8(0), int32(2), []byte{})
	f.Add(uint8(6), []byte{2, 0, 0, 0, 0x45}, uint8(0), int32(2), []byte{})
	f.Fuzz(func(t *testing.T, sel uint8, data []byte, dir uint8, ifindex int32, prefix []byte) {
		lt := layers.LinkType(sel)
		if int(sel) < len(linkTypes) {
			lt = linkTypes[sel]
		}
		p := &packet.Packet{Ifindex: int(ifindex), Dir: packet.Direction(dir % 3), LinkType: lt, WireLen: len(data), Data: data}
		dst := append([]byte(nil), prefix...)
		out, ok := pcap.AppendSLL2(dst, p)
		n, want := pcap.RecordLen(layers.LinkTypeLinuxSLL2, lt, len(data))
		if ok != want {
			t.Fatalf("%v, %d bytes: AppendSLL2 ok=%v, RecordLen ok=%v", lt, len(data), ok, want)
		}
		if !bytes.Equal(out[:min(len(out), len(prefix))], prefix) || len(out) < len(prefix) {
			t.Fatalf("AppendSLL2 changed what dst held")
		}
		if !ok {
			if len(out) != len(prefix) {
				t.Fatalf("AppendSLL2 appended %d bytes and reported false", len(out)-len(prefix))
			}
		} else {
			rec := out[len(prefix):]
			if len(rec) != n {
				t.Fatalf("%v, %d bytes: AppendSLL2 appended %d, RecordLen says %d", lt, len(data), len(rec), n)
			}
			if lt != layers.LinkTypeLinuxSLL2 {
				checkSLL2Header(t, p, rec)
			}
		}
		checkWriter(t, p, ok, out[len(prefix):])
	})
}

// checkSLL2Header decodes a converted frame's header with gopacket.
func checkSLL2Header(t *testing.T, p *packet.Packet, rec []byte) {
	var sll layers.LinuxSLL2
	if err := sll.DecodeFromBytes(rec, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("%v: gopacket cannot decode the SLL2 header: %v", p.LinkType, err)
	}
	if sll.InterfaceIndex != uint32(p.Ifindex) {
		t.Fatalf("ifindex %d, want %d", sll.InterfaceIndex, p.Ifindex)
	}
	if (p.Dir == packet.Egress) != (sll.PacketType == layers.LinuxSLL2PacketTypeOutgoing) && p.LinkType != layers.LinkTypeLinuxSLL {
		t.Fatalf("direction %v, packet type %v", p.Dir, sll.PacketType)
	}
	if p.Dir == packet.Egress && sll.PacketType != layers.LinuxSLL2PacketTypeOutgoing {
		t.Fatalf("egress packet with packet type %v", sll.PacketType)
	}
	if !bytes.HasSuffix(p.Data, rec[20:]) {
		t.Fatalf("the network layer changed")
	}
	if p.LinkType == layers.LinkTypeLinuxSLL && binary.BigEndian.Uint16(p.Data[14:16]) != uint16(sll.ProtocolType) {
		t.Fatalf("SLL protocol %#x became %#x", binary.BigEndian.Uint16(p.Data[14:16]), uint16(sll.ProtocolType))
	}
}

// checkWriter writes p to a LINUX_SLL2 pcap and compares with rec.
func checkWriter(t *testing.T, p *packet.Packet, ok bool, rec []byte) {
	var buf bytes.Buffer
	w, err := pcap.NewPcapWriter(&buf, layers.LinkTypeLinuxSLL2, 262144)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()[24:]
	if !ok {
		if len(got) != 0 || w.Skipped != 1 {
			t.Fatalf("PcapWriter wrote %d bytes, Skipped %d, for a packet AppendSLL2 cannot convert", len(got), w.Skipped)
		}
		return
	}
	if len(got) < 16 || !bytes.Equal(got[16:], rec) || binary.LittleEndian.Uint32(got[8:12]) != uint32(len(rec)) {
		t.Fatalf("PcapWriter wrote %d bytes, want a 16-byte header and the %d bytes of AppendSLL2", len(got), len(rec))
	}
}
