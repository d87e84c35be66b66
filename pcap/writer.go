// Package pcap writes capture files: classic pcap (nanosecond timestamps,
// LINUX_SLL2 when the packets' link types differ) and pcapng (one interface
// block per interface, direction flags, statistics at the end). It is the
// one writer that capture, read and the repositories use.
//
// Writers buffer and are not safe for concurrent use; Close flushes but does
// not close the underlying io.Writer. Packet data is copied out during
// WritePacket.
package pcap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/packet"
)

// PacketWriter writes packets to a capture file. Implementations buffer;
// Close flushes (it does not close the underlying io.Writer).
type PacketWriter interface {
	WritePacket(p *packet.Packet) error
	// Flush writes buffered packets through.
	Flush() error
	// Close writes trailing statistics (pcapng), flushes, and reports the
	// first write error.
	Close(stats []IfaceStats) error
}

// Interface describes a capturing interface for a file's header.
type Interface struct {
	Index    int
	Name     string
	LinkType layers.LinkType
	// Description is pcapng's if_description (e.g. "netns blue"); optional.
	Description string
}

// LinkTypeOf is the link type a classic pcap of packets from ifaces needs:
// theirs when they agree, else LINUX_SLL2.
func LinkTypeOf(ifaces []Interface) layers.LinkType {
	link := layers.LinkTypeLinuxSLL2
	for i, ifc := range ifaces {
		if i == 0 {
			link = ifc.LinkType
		} else if ifc.LinkType != link {
			return layers.LinkTypeLinuxSLL2
		}
	}
	return link
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
func NewWriter(w io.Writer, f Format, ifaces []Interface, snaplen uint32, app string) (PacketWriter, error) {
	if f == FormatPcap {
		return NewPcapWriter(w, LinkTypeOf(ifaces), snaplen)
	}
	return NewPcapngWriter(w, ifaces, snaplen, app)
}

// --- classic pcap -------------------------------------------------------

// PcapWriter writes classic pcap with nanosecond timestamps. A file holds
// one link type: when packets' types differ, write LINUX_SLL2 (LinkTypeOf),
// with interface index and direction per packet (as `tcpdump -i any`
// does), instead of dropping or mangling them. A packet that can be
// neither written as it is nor converted is counted in Skipped.
type PcapWriter struct {
	w       *bufio.Writer
	raw     io.Writer
	link    layers.LinkType
	hdr     [16]byte
	err     error
	sll     []byte
	Skipped uint64
}

// NewPcapWriter writes the file header of a pcap of link type link.
func NewPcapWriter(w io.Writer, link layers.LinkType, snaplen uint32) (*PcapWriter, error) {
	return NewPcapWriterBuf(bufio.NewWriterSize(w, 1<<20), w, link, snaplen)
}

// NewPcapWriterBuf is NewPcapWriter through buf, which the caller has reset
// to raw: many small files written one after another (a repository's
// members) share one buffer.
func NewPcapWriterBuf(buf *bufio.Writer, raw io.Writer, link layers.LinkType, snaplen uint32) (*PcapWriter, error) {
	pw := &PcapWriter{w: buf, raw: raw, link: link}
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
func (pw *PcapWriter) WritePacket(p *packet.Packet) error {
	if pw.err != nil {
		return pw.err
	}
	data, wire := p.Data, p.WireLen
	if p.LinkType != pw.link {
		ok := false
		if pw.link == layers.LinkTypeLinuxSLL2 {
			if pw.sll, ok = AppendSLL2(pw.sll[:0], p); ok {
				wire += len(pw.sll) - len(data)
				data = pw.sll
			}
		}
		if !ok {
			pw.Skipped++
			return nil
		}
	}
	ns := p.Time.UnixNano()
	binary.LittleEndian.PutUint32(pw.hdr[0:], uint32(ns/1e9))
	binary.LittleEndian.PutUint32(pw.hdr[4:], uint32(ns%1e9))
	binary.LittleEndian.PutUint32(pw.hdr[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(pw.hdr[12:], uint32(max(wire, len(data))))
	pw.w.Write(pw.hdr[:])
	if err := writeData(pw.w, pw.raw, data); err != nil {
		pw.err = fmt.Errorf("write pcap: %w", err)
	}
	return pw.err
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
	last     ifKey // the last packet's interface and its id: a cache
	lastID   uint32
	haveLast bool
	w        *bufio.Writer
	raw      io.Writer
	ids      map[ifKey]uint32 // interface → its id in the file
	byIndex  map[int]uint32   // ifindex → its first interface id (statistics)
	next     uint32
	snaplen  uint32
	err      error
	start    time.Time
}

// ifKey is an interface block: one per interface and link type.
type ifKey struct {
	ifindex int
	link    layers.LinkType
}

const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 0x00000001
	blockEPB = 0x00000006
	blockISB = 0x00000005
)

// NewPcapngWriter writes the section header and the interface blocks.
func NewPcapngWriter(w io.Writer, ifaces []Interface, snaplen uint32, app string) (*PcapngWriter, error) {
	pw := &PcapngWriter{w: bufio.NewWriterSize(w, 1<<20), raw: w, ids: map[ifKey]uint32{}, byIndex: map[int]uint32{}, snaplen: snaplen, start: time.Now()}
	var shb ngBlock
	shb.u32(0x1a2b3c4d).u16(1).u16(0).u64(0xffffffffffffffff)
	shb.opt(2, []byte(runtime.GOARCH)).opt(3, []byte(runtime.GOOS)).opt(4, []byte(app)).end()
	pw.block(blockSHB, shb.b)
	for _, ifc := range ifaces {
		pw.addInterface(ifc)
	}
	if err := pw.w.Flush(); err != nil {
		return nil, fmt.Errorf("write pcapng header: %w", err)
	}
	return pw, nil
}

// addInterface writes an interface description block and returns its id.
func (pw *PcapngWriter) addInterface(ifc Interface) uint32 {
	var idb ngBlock
	idb.u16(uint16(ifc.LinkType)).u16(0).u32(pw.snaplen)
	idb.opt(2, []byte(ifc.Name)).opt(9, []byte{9}) // if_name, if_tsresol = 10^-9
	if ifc.Description != "" {
		idb.opt(3, []byte(ifc.Description))
	}
	idb.end()
	pw.block(blockIDB, idb.b)
	id := pw.next
	pw.ids[ifKey{ifc.Index, ifc.LinkType}] = id
	if _, ok := pw.byIndex[ifc.Index]; !ok {
		pw.byIndex[ifc.Index] = id
	}
	pw.next++
	return id
}

// WritePacket writes one enhanced packet block.
func (pw *PcapngWriter) WritePacket(p *packet.Packet) error {
	if pw.err != nil {
		return pw.err
	}
	key := ifKey{p.Ifindex, p.LinkType}
	id := pw.lastID
	if key != pw.last || !pw.haveLast {
		var ok bool
		if id, ok = pw.ids[key]; !ok {
			// An interface first seen now (a file's packets, a link type
			// the header did not list): its block may come at any point
			// before its first packet.
			name := fmt.Sprintf("if%d", p.Ifindex)
			if p.Ifindex == 0 {
				name = "unknown"
			}
			id = pw.addInterface(Interface{Index: p.Ifindex, Name: name, LinkType: p.LinkType})
		}
		pw.last, pw.lastID, pw.haveLast = key, id, true
	}
	pad := (4 - len(p.Data)&3) & 3
	total := 28 + len(p.Data) + pad + 12 + 4 // header, data, epb_flags + opt_endofopt, trailer
	var flags uint32                         // direction unknown
	switch p.Dir {
	case packet.Ingress:
		flags = 1
	case packet.Egress:
		flags = 2
	}
	ts := uint64(p.Time.UnixNano())
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
		id, ok := pw.byIndex[s.Ifindex]
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
