package bpf

import (
	"encoding/binary"
	"unsafe"

	"github.com/kflcap/kflcap/packet"
)

// The record header's layout comes from the generated captureRecordHdr
// (bpf2go's copy of capture.c's struct record_hdr): a change to the C
// struct changes these offsets, or fails the build, instead of silently
// misreading every record.
const (
	// RecordHeaderLen is the size of the header before each record's bytes.
	RecordHeaderLen = int(unsafe.Sizeof(captureRecordHdr{}))

	offTsBoot  = unsafe.Offsetof(captureRecordHdr{}.TsBootNs)
	offWireLen = unsafe.Offsetof(captureRecordHdr{}.WireLen)
	offCapLen  = unsafe.Offsetof(captureRecordHdr{}.CapLen)
	offIfindex = unsafe.Offsetof(captureRecordHdr{}.Ifindex)
	offDir     = unsafe.Offsetof(captureRecordHdr{}.Direction)
)

// The readers below read 8-byte and 4-byte fields at these offsets.
var _ = [1]struct{}{}[unsafe.Sizeof(captureRecordHdr{}.TsBootNs)-8]
var _ = [1]struct{}{}[unsafe.Sizeof(captureRecordHdr{}.WireLen)-4]
var _ = [1]struct{}{}[unsafe.Sizeof(captureRecordHdr{}.CapLen)-4]
var _ = [1]struct{}{}[unsafe.Sizeof(captureRecordHdr{}.Ifindex)-4]
var _ = [1]struct{}{}[unsafe.Sizeof(captureRecordHdr{}.Direction)-1]

// DecodeRecord decodes raw, one record as the capture programs write it,
// into p's Ifindex, Dir, WireLen and Data (which aliases raw: in place in
// the ring), and returns its bpf_ktime_get_boot_ns() stamp. It reports
// false, leaving p as it was, for a record too short for its header or
// for the length the header states. It fills p in place because it runs
// for every packet: building a record to copy into the packet cost the
// capture path a tenth of its CPU.
func DecodeRecord(raw []byte, p *packet.Packet) (bootNs uint64, ok bool) {
	if len(raw) < RecordHeaderLen {
		return 0, false
	}
	capLen := int(binary.NativeEndian.Uint32(raw[offCapLen:]))
	if capLen > len(raw)-RecordHeaderLen {
		return 0, false
	}
	end := RecordHeaderLen + capLen
	p.WireLen = int(binary.NativeEndian.Uint32(raw[offWireLen:]))
	p.Ifindex = int(binary.NativeEndian.Uint32(raw[offIfindex:]))
	p.Dir = packet.Direction(raw[offDir])
	p.Data = raw[RecordHeaderLen:end:end]
	return binary.NativeEndian.Uint64(raw[offTsBoot:]), true
}
