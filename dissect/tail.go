package dissect

// tail is the per-direction buffer of a length-prefixed protocol (Kafka,
// PostgreSQL): the unparsed end of the stream, and the bytes of an
// oversized message still to skip.
type tail struct {
	buf  []byte
	skip int // bytes of an oversized message still to skip
}

// keep holds the unparsed tail b for the next segment. When b is the end
// of buf it moves only if something was parsed: a frame arriving a byte per
// segment must not be copied once per byte.
func (h *tail) keep(b []byte, buffered bool) {
	if !buffered {
		h.buf = append(h.buf[:0], b...)
		return
	}
	if len(b) < len(h.buf) {
		h.buf = h.buf[:copy(h.buf, b)]
	}
}
