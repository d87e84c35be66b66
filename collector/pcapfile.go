package collector

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/bpf"
)

// PacketWriter writes packets to a capture file. Implementations buffer;
// Close flushes (it does not close the underlying io.Writer).
type PacketWriter interface {
	WritePacket(p *Packet) error
	// Flush writes buffered packets through.
	Flush() error
	// Close writes trailing statistics (pcapng), flushes, and reports the
	// first write error.
	Close(stats []IfaceStats) error
}

// IfaceStats are an interface's counters for a capture file's trailer.
type IfaceStats struct {
	Ifindex    int
	Received   uint64 // packets the capture accepted (seen - prefiltered)
	KernelDrop uint64 // lost in the kernel (ring full, copy errors)
	Start, End time.Time
}

// Format is a capture file format.
type Format string

const (
	FormatPcapng Format = "pcapng"
	FormatPcap   Format = "pcap"
)

// UnmarshalText accepts "pcapng" and "pcap".
func (f *Format) UnmarshalText(b []byte) error {
	switch v := Format(b); v {
	case FormatPcapng, FormatPcap:
		*f = v
		return nil
	}
	return fmt.Errorf("unknown format %q (want pcapng or pcap)", b)
}

// NewWriter returns a writer of format f for packets of ifaces.
func NewWriter(w io.Writer, f Format, ifaces []Iface, snaplen uint32, app string) (PacketWriter, error) {
	if f == FormatPcap {
		return NewPcapWriter(w, ifaces, snaplen)
	}
	return NewPcapngWriter(w, ifaces, snaplen, app)
}

// --- classic pcap -------------------------------------------------------

// PcapWriter writes classic pcap with nanosecond timestamps. A file holds
// one link type: when the interfaces' types differ, packets are written as
// LINUX_SLL2, with interface index and direction per packet (as
// `tcpdump -i any` does), instead of being dropped or mangled.
type PcapWriter struct {
	w      *bufio.Writer
	raw    io.Writer
	link   layers.LinkType
	types  map[int]layers.LinkType // per ifindex, for SLL2 conversion
	hdr    [16]byte
	sll    [20]byte
	err    error
	sllDst []byte
}

// NewPcapWriter writes the file header.
func NewPcapWriter(w io.Writer, ifaces []Iface, snaplen uint32) (*PcapWriter, error) {
	types := map[int]layers.LinkType{}
	link := layers.LinkTypeLinuxSLL2
	for i, ifc := range ifaces {
		types[ifc.Index] = ifc.LinkType
		if i == 0 {
			link = ifc.LinkType
		} else if ifc.LinkType != link {
			link = layers.LinkTypeLinuxSLL2
		}
	}
	return newPcapWriterBuf(bufio.NewWriterSize(w, 1<<20), w, link, types, snaplen)
}

// newPcapWriterBuf writes a file of link type link (with LINUX_SLL2, types
// gives each interface's own link type for the conversion) through buf,
// which the caller has reset to raw: many small files written one after
// another share one buffer.
func newPcapWriterBuf(buf *bufio.Writer, raw io.Writer, link layers.LinkType, types map[int]layers.LinkType, snaplen uint32) (*PcapWriter, error) {
	pw := &PcapWriter{w: buf, raw: raw, types: types, link: link}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond magic
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], snaplen)
	binary.LittleEndian.PutUint32(h[20:], uint32(pw.link))
	if _, err := pw.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return pw, nil
}

// LinkType is the file's link type.
func (pw *PcapWriter) LinkType() layers.LinkType { return pw.link }

// WritePacket writes one packet.
func (pw *PcapWriter) WritePacket(p *Packet) error {
	if pw.err != nil {
		return pw.err
	}
	data, wire := p.Data, p.WireLen
	var prefix []byte
	if pw.link == layers.LinkTypeLinuxSLL2 {
		prefix, data = pw.sll2(p)
		wire += len(prefix) - (len(p.Data) - len(data))
	}
	binary.LittleEndian.PutUint32(pw.hdr[0:], uint32(p.UnixNano/1e9))
	binary.LittleEndian.PutUint32(pw.hdr[4:], uint32(p.UnixNano%1e9))
	binary.LittleEndian.PutUint32(pw.hdr[8:], uint32(len(prefix)+len(data)))
	binary.LittleEndian.PutUint32(pw.hdr[12:], uint32(wire))
	pw.w.Write(pw.hdr[:])
	pw.w.Write(prefix)
	if err := writeData(pw.w, pw.raw, data); err != nil {
		pw.err = fmt.Errorf("write pcap: %w", err)
	}
	return pw.err
}

// sll2 builds the LINUX_SLL2 header for p and returns it with the part of
// p's data that follows it (the network layer: SLL2 replaces the MAC header).
func (pw *PcapWriter) sll2(p *Packet) ([]byte, []byte) {
	h := pw.sll[:]
	clear(h)
	data := p.Data
	var proto uint16
	arphrd := uint16(0xfffe) // ARPHRD_NONE
	addrLen := 0
	if pw.types[p.Ifindex] == layers.LinkTypeEthernet && len(data) >= 14 {
		proto = binary.BigEndian.Uint16(data[12:])
		arphrd = 1 // ARPHRD_ETHER
		addrLen = 6
		copy(h[12:], data[6:12]) // source MAC
		data = data[14:]
	} else if len(data) > 0 {
		switch data[0] >> 4 {
		case 4:
			proto = 0x0800
		case 6:
			proto = 0x86dd
		}
	}
	binary.BigEndian.PutUint16(h[0:], proto)
	binary.BigEndian.PutUint32(h[4:], uint32(p.Ifindex))
	binary.BigEndian.PutUint16(h[8:], arphrd)
	if p.Dir == bpf.Egress {
		h[10] = 4 // PACKET_OUTGOING
	}
	h[11] = byte(addrLen)
	return h, data
}

// Flush writes buffered packets through.
func (pw *PcapWriter) Flush() error {
	if pw.err == nil {
		if err := pw.w.Flush(); err != nil {
			pw.err = fmt.Errorf("flush pcap: %w", err)
		}
	}
	return pw.err
}

// Close flushes the file. Classic pcap has no statistics trailer.
func (pw *PcapWriter) Close([]IfaceStats) error {
	if pw.err != nil {
		return pw.err
	}
	if err := pw.w.Flush(); err != nil {
		return fmt.Errorf("flush pcap: %w", err)
	}
	return nil
}

// --- pcapng -------------------------------------------------------------

// PcapngWriter writes pcapng: one interface description block per captured
// interface (name, link type, nanosecond resolution), direction flags on
// every packet, and interface statistics (received, kernel drops) at the
// end.
type PcapngWriter struct {
	lastIf int // the last packet's ifindex and its interface id: a cache
	lastID uint32
	w      *bufio.Writer
	raw    io.Writer
	ids    map[int]uint32 // ifindex → interface id in the file
	err    error
	start  time.Time
}

const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 0x00000001
	blockEPB = 0x00000006
	blockISB = 0x00000005
)

// NewPcapngWriter writes the section header and the interface blocks.
func NewPcapngWriter(w io.Writer, ifaces []Iface, snaplen uint32, app string) (*PcapngWriter, error) {
	pw := &PcapngWriter{w: bufio.NewWriterSize(w, 1<<20), raw: w, ids: map[int]uint32{}, start: time.Now()}
	var shb ngBlock
	shb.u32(0x1a2b3c4d).u16(1).u16(0).u64(0xffffffffffffffff)
	shb.opt(2, []byte(runtime.GOARCH)).opt(3, []byte(runtime.GOOS)).opt(4, []byte(app)).end()
	pw.block(blockSHB, shb.b)
	for i, ifc := range ifaces {
		var idb ngBlock
		idb.u16(uint16(ifc.LinkType)).u16(0).u32(snaplen)
		idb.opt(2, []byte(ifc.Name)).opt(9, []byte{9}) // if_name, if_tsresol = 10^-9
		if ifc.NetNS != "" {
			idb.opt(3, []byte("netns "+ifc.NetNS)) // if_description
		}
		idb.end()
		pw.block(blockIDB, idb.b)
		pw.ids[ifc.Index] = uint32(i)
	}
	if err := pw.w.Flush(); err != nil {
		return nil, fmt.Errorf("write pcapng header: %w", err)
	}
	return pw, nil
}

// WritePacket writes one enhanced packet block.
func (pw *PcapngWriter) WritePacket(p *Packet) error {
	if pw.err != nil {
		return pw.err
	}
	id, ok := pw.lastID, p.Ifindex == pw.lastIf && pw.lastIf != 0
	if !ok {
		if id, ok = pw.ids[p.Ifindex]; !ok {
			return fmt.Errorf("pcapng: packet from ifindex %d, which has no interface block", p.Ifindex)
		}
		pw.lastIf, pw.lastID = p.Ifindex, id
	}
	pad := (4 - len(p.Data)&3) & 3
	total := 28 + len(p.Data) + pad + 12 + 4 // header, data, epb_flags + opt_endofopt, trailer
	flags := uint32(1)                       // inbound
	if p.Dir == bpf.Egress {
		flags = 2 // outbound
	}
	ts := uint64(p.UnixNano)
	le := binary.LittleEndian
	if len(p.Data) >= bigPacket {
		var b [28]byte
		le.PutUint32(b[0:], blockEPB)
		le.PutUint32(b[4:], uint32(total))
		le.PutUint32(b[8:], id)
		le.PutUint32(b[12:], uint32(ts>>32))
		le.PutUint32(b[16:], uint32(ts))
		le.PutUint32(b[20:], uint32(len(p.Data)))
		le.PutUint32(b[24:], uint32(p.WireLen))
		pw.w.Write(b[:])
		if err := writeData(pw.w, pw.raw, p.Data); err != nil {
			pw.err = fmt.Errorf("write pcapng: %w", err)
			return pw.err
		}
		var tail [20]byte
		le.PutUint16(tail[pad:], 2) // epb_flags
		le.PutUint16(tail[pad+2:], 4)
		le.PutUint32(tail[pad+4:], flags)
		le.PutUint32(tail[pad+12:], uint32(total))
		if _, err := pw.w.Write(tail[:pad+16]); err != nil {
			pw.err = fmt.Errorf("write pcapng: %w", err)
		}
		return pw.err
	}
	// The common case: build the whole block in the writer's own buffer,
	// one Write, no copy through a temporary.
	if pw.w.Available() < total {
		if err := pw.w.Flush(); err != nil {
			pw.err = fmt.Errorf("write pcapng: %w", err)
			return pw.err
		}
	}
	b := pw.w.AvailableBuffer()
	b = le.AppendUint32(b, blockEPB)
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, id)
	b = le.AppendUint32(b, uint32(ts>>32))
	b = le.AppendUint32(b, uint32(ts))
	b = le.AppendUint32(b, uint32(len(p.Data)))
	b = le.AppendUint32(b, uint32(p.WireLen))
	b = append(b, p.Data...)
	b = append(b, zeros[:pad]...)
	b = le.AppendUint16(b, 2) // epb_flags
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, flags)
	b = le.AppendUint32(b, 0) // opt_endofopt
	b = le.AppendUint32(b, uint32(total))
	if _, err := pw.w.Write(b); err != nil {
		pw.err = fmt.Errorf("write pcapng: %w", err)
	}
	return pw.err
}

var zeros [8]byte

// Flush writes buffered packets through.
func (pw *PcapngWriter) Flush() error {
	if pw.err == nil {
		if err := pw.w.Flush(); err != nil {
			pw.err = fmt.Errorf("flush pcapng: %w", err)
		}
	}
	return pw.err
}

// Close writes an interface statistics block per interface and flushes.
func (pw *PcapngWriter) Close(stats []IfaceStats) error {
	if pw.err != nil {
		return pw.err
	}
	now := time.Now()
	for _, s := range stats {
		id, ok := pw.ids[s.Ifindex]
		if !ok {
			continue
		}
		start, end := s.Start, s.End
		if start.IsZero() {
			start = pw.start
		}
		if end.IsZero() {
			end = now
		}
		var isb ngBlock
		ts := uint64(end.UnixNano())
		isb.u32(id).u32(uint32(ts >> 32)).u32(uint32(ts))
		isb.opt(2, tsOpt(start)).opt(3, tsOpt(end))
		isb.opt(4, u64le(s.Received)).opt(5, u64le(s.KernelDrop))
		isb.end()
		pw.block(blockISB, isb.b)
	}
	if pw.err != nil {
		return pw.err
	}
	if err := pw.w.Flush(); err != nil {
		return fmt.Errorf("flush pcapng: %w", err)
	}
	return nil
}

// bigPacket is the size from which packet bytes skip the buffer: copying a
// 64 KiB GSO super-frame into it costs more than the extra write.
const bigPacket = 16 << 10

// writeData writes packet bytes through buf, or, when large, flushes buf
// and writes them to raw directly.
func writeData(buf *bufio.Writer, raw io.Writer, data []byte) error {
	if len(data) < bigPacket {
		_, err := buf.Write(data)
		return err
	}
	if err := buf.Flush(); err != nil {
		return err
	}
	_, err := raw.Write(data)
	return err
}

func tsOpt(t time.Time) []byte {
	ts := uint64(t.UnixNano())
	var b [8]byte
	binary.LittleEndian.PutUint32(b[0:], uint32(ts>>32))
	binary.LittleEndian.PutUint32(b[4:], uint32(ts))
	return b[:]
}

func u64le(v uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return b[:]
}

// block writes a block of type typ around body.
func (pw *PcapngWriter) block(typ uint32, body []byte) {
	total := uint32(12 + len(body))
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint32(h[4:], total)
	pw.w.Write(h[:])
	pw.w.Write(body)
	binary.LittleEndian.PutUint32(h[0:], total)
	if _, err := pw.w.Write(h[:4]); err != nil && pw.err == nil {
		pw.err = fmt.Errorf("write pcapng: %w", err)
	}
}

// ngBlock builds a block body (used for the rare blocks, not packets).
type ngBlock struct{ b []byte }

func (n *ngBlock) u16(v uint16) *ngBlock { n.b = binary.LittleEndian.AppendUint16(n.b, v); return n }
func (n *ngBlock) u32(v uint32) *ngBlock { n.b = binary.LittleEndian.AppendUint32(n.b, v); return n }
func (n *ngBlock) u64(v uint64) *ngBlock { n.b = binary.LittleEndian.AppendUint64(n.b, v); return n }

// opt appends an option padded to 32 bits.
func (n *ngBlock) opt(code uint16, v []byte) *ngBlock {
	n.u16(code).u16(uint16(len(v)))
	n.b = append(n.b, v...)
	for len(n.b)%4 != 0 {
		n.b = append(n.b, 0)
	}
	return n
}

func (n *ngBlock) end() { n.u32(0) }
