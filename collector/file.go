package collector

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/kflcap/kflcap/packet"
)

// ReadFile reads the packets of a pcap, pcapng (any mix of link types), a
// gzip-compressed one, or a repository .tar.gz and calls fn with each, in
// file order. Packet data is valid only during the call. For a repository
// it reads the merged pcap when there is one, else the per-stream pcaps.
// progress, if not nil, is called now and then with bytes read and the
// file's size.
func ReadFile(ctx context.Context, name string, fn func(packet.Packet) error, progress func(done, total int64)) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	cr := &countingReader{r: f, total: st.Size(), progress: progress}
	br := bufio.NewReaderSize(cr, 1<<20)
	magic, _ := br.Peek(4)
	if len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return readGzip(ctx, name, br, fn)
	}
	return ReadPackets(ctx, br, fn)
}

// ReadPackets reads a pcap or pcapng stream.
func ReadPackets(ctx context.Context, r io.Reader, fn func(packet.Packet) error) error {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	magic, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("read capture header: %w", err)
	}
	if string(magic) == "\x0a\x0d\x0d\x0a" {
		// WantMixedLinkType: without it pcapgo silently skips packets of
		// interfaces whose link type differs from the first one's.
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{SkipUnknownVersion: true, WantMixedLinkType: true})
		if err != nil {
			return fmt.Errorf("read pcapng: %w", err)
		}
		for i := 0; ; i++ {
			data, ci, err := ng.ZeroCopyReadPacketData()
			if err != nil {
				return eofOK(err, "read pcapng")
			}
			var lt layers.LinkType
			if ifc, err := ng.Interface(ci.InterfaceIndex); err == nil {
				lt = ifc.LinkType
			}
			if err := fn(packet.Packet{Time: ci.Timestamp, Dir: packet.Unknown, LinkType: lt, Data: data, WireLen: ci.Length, Ifindex: ci.InterfaceIndex}); err != nil {
				return err
			}
			if i&0xfff == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return readPcap(ctx, br, fn)
}

// readPcap reads a classic pcap. It hands out packets straight from the
// bufio buffer (Peek, then Discard) instead of copying each one out as
// pcapgo.Reader does: on large files that copy was a tenth of read's time.
func readPcap(ctx context.Context, br *bufio.Reader, fn func(packet.Packet) error) error {
	h, err := br.Peek(24)
	if err != nil {
		return fmt.Errorf("read pcap: header: %w", err)
	}
	var bo binary.ByteOrder
	nanos := false
	switch binary.LittleEndian.Uint32(h) {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nanos = binary.LittleEndian, true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nanos = binary.BigEndian, true
	default:
		return fmt.Errorf("read pcap: unknown magic %x", h[:4])
	}
	// The link type is the low 16 bits; the high ones hold FCS flags.
	lt := layers.LinkType(bo.Uint32(h[20:24]) & 0xffff)
	br.Discard(24)
	var big []byte // packets larger than the bufio buffer
	for i := 0; ; i++ {
		rh, err := br.Peek(16)
		if err != nil {
			if errors.Is(err, io.EOF) && len(rh) == 0 {
				return nil
			}
			return eofOK(io.ErrUnexpectedEOF, "read pcap")
		}
		sec, frac := bo.Uint32(rh[0:4]), bo.Uint32(rh[4:8])
		incl, orig := int(bo.Uint32(rh[8:12])), int(bo.Uint32(rh[12:16]))
		if incl > maxPcapRecord {
			return fmt.Errorf("read pcap: packet %d claims %d bytes", i+1, incl)
		}
		if !nanos {
			frac *= 1000
		}
		ts := time.Unix(int64(sec), int64(frac)).UTC()
		br.Discard(16)
		var data []byte
		if incl <= br.Size() {
			data, err = br.Peek(incl)
		} else {
			big = append(big[:0], make([]byte, incl)...)
			_, err = io.ReadFull(br, big)
			data = big
		}
		if err != nil {
			return eofOK(io.ErrUnexpectedEOF, "read pcap")
		}
		if err := fn(packet.Packet{Time: ts, Dir: packet.Unknown, LinkType: lt, Data: data, WireLen: orig}); err != nil {
			return err
		}
		if incl <= br.Size() {
			br.Discard(incl)
		}
		if i&0xfff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// maxPcapRecord bounds one record, so that a corrupt length cannot make
// the reader allocate gigabytes (pcapgo's limit is the snaplen).
const maxPcapRecord = 16 << 20

func eofOK(err error, what string) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: truncated file: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// mergedPcap is the name of a repository's merged capture.
var mergedPcap = regexp.MustCompile(`^[0-9]+\.pcap$`)

// streamPcap is the name of one stream's capture in a repository.
var streamPcap = regexp.MustCompile(`^[0-9]{12}_(tcp|udp)\.pcap$`)

func readGzip(ctx context.Context, name string, br *bufio.Reader, fn func(packet.Packet) error) error {
	zr, err := gzip.NewReader(br)
	if err != nil {
		return fmt.Errorf("read gzip: %w", err)
	}
	zbr := bufio.NewReaderSize(zr, 1<<20)
	head, _ := zbr.Peek(512)
	if len(head) < 262 || !bytes.Equal(head[257:262], []byte("ustar")) {
		return ReadPackets(ctx, zbr, fn) // a gzip-compressed capture
	}
	// A repository. Its merged pcap holds every packet once; the stream
	// pcaps hold the same packets again, so read only one kind.
	hasMerged, err := scanTar(zbr)
	if err != nil {
		return err
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	zr2, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("read gzip: %w", err)
	}
	tr := tar.NewReader(zr2)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read repository %s: %w", name, err)
		}
		base := path.Base(h.Name)
		if h.Typeflag != tar.TypeReg || hasMerged && !mergedPcap.MatchString(base) ||
			!hasMerged && !streamPcap.MatchString(base) {
			continue
		}
		if err := ReadPackets(ctx, tr, fn); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

func scanTar(r io.Reader) (hasMerged bool, err error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hasMerged, nil
		}
		if err != nil {
			return false, fmt.Errorf("read repository: %w", err)
		}
		if mergedPcap.MatchString(path.Base(h.Name)) && !strings.Contains(h.Name, "/.") {
			hasMerged = true
		}
	}
}

// countingReader reports read progress.
type countingReader struct {
	r        io.Reader
	n, total int64
	last     int64
	progress func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && c.n-c.last >= 16<<20 {
		c.last = c.n
		c.progress(c.n, c.total)
	}
	return n, err
}
