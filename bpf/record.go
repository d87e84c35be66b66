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

// Record is one ring-buffer record: the header's fields and the captured
// bytes, which alias the record (in place in the ring).
type Record struct {
	BootNs  uint64 // bpf_ktime_get_boot_ns() when the hook ran
	WireLen int
	Ifindex int
	Dir     packet.Direction
	Data    []byte
}

// ParseRecord decodes raw, one record as the capture programs write it. It
// reports false for a record too short for its header or for the length
// the header states.
func ParseRecord(raw []byte) (Record, bool) {
	if len(raw) < RecordHeaderLen {
		return Record{}, false
	}
	capLen := int(binary.NativeEndian.Uint32(raw[offCapLen:]))
	if capLen > len(raw)-RecordHeaderLen {
		return Record{}, false
	}
	end := RecordHeaderLen + capLen
	return Record{
		BootNs:  binary.NativeEndian.Uint64(raw[offTsBoot:]),
		WireLen: int(binary.NativeEndian.Uint32(raw[offWireLen:])),
		Ifindex: int(binary.NativeEndian.Uint32(raw[offIfindex:])),
		Dir:     packet.Direction(raw[offDir]),
		Data:    raw[RecordHeaderLen:end:end],
	}, true
}
