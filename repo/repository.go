package repo

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// Member is one entry of the archive.
type Member struct {
	Name    string    `json:"name"` // as the archive spells it
	Type    string    `json:"type"` // file, dir, symlink, hardlink, char, block, fifo or "typeflag X"
	Size    int64     `json:"size"` // content bytes actually read (the header's claim for non-regular members)
	Link    string    `json:"link,omitempty"`
	ModTime time.Time `json:"mtime"`
	// Pcap summarises a regular member named *.pcap or *.pcapng.
	Pcap *PcapSummary `json:"pcap,omitempty"`
}

// PcapSummary is what one pass over a pcap member found.
type PcapSummary struct {
	Format   string    `json:"format"` // pcap or pcapng
	LinkType string    `json:"link_type,omitempty"`
	Packets  int       `json:"packets"`
	First    time.Time `json:"first,omitzero"` // earliest packet timestamp
	Last     time.Time `json:"last,omitzero"`  // latest packet timestamp
	// Unordered counts packets stamped earlier than the packet before them.
	Unordered int `json:"unordered,omitempty"`
	// Err says why reading stopped early; Packets counts those read before.
	Err string `json:"error,omitempty"`
}

// Resolution is one entry of name_resolution_history.json.
type Resolution struct {
	FullAddress string `json:"FullAddress"`
	Namespace   string `json:"Namespace"`
}

// maxJSONBytes bounds what is kept of content.json and
// name_resolution_history.json; 100000 streams take about 3 MB.
const maxJSONBytes = 64 << 20

// maxSnaplen bounds the packet buffer a pcap's header can ask for.
const maxSnaplen = 16 << 20

// Repository is the summary of one archive that Open read.
type Repository struct {
	Path    string
	Name    Name // zero when the file name does not follow the convention
	Members []Member
	// ContentJSON is content.json verbatim, nil if the archive has none.
	ContentJSON []byte
	// Content is content.json parsed, nil when missing or malformed.
	Content *Content
	// NameResolution is name_resolution_history.json parsed, keyed by
	// Unix seconds and then by "ip" or "ip:port"; nil when missing or
	// malformed.
	NameResolution map[string]map[string]Resolution

	contentErr, namesErr error
	namesSeen            bool
}

// Open reads the repository archive at path from start to end, within lim.
// It fails when the file is not a readable .tar.gz or breaks a limit
// (*FormatError, *RejectError); a well-formed archive whose content
// is inconsistent opens fine, and Check says what is wrong with it.
func Open(ctx context.Context, path string, lim Limits) (*Repository, error) {
	r := &Repository{Path: path}
	r.Name, _ = ParseName(filepath.Base(path))
	var cur *Member
	err := walk(ctx, path, lim, func(h *tar.Header, rd io.Reader) error {
		r.Members = append(r.Members, Member{
			Name:    h.Name,
			Type:    typeName(h.Typeflag),
			Size:    h.Size,
			Link:    h.Linkname,
			ModTime: h.ModTime.UTC(),
		})
		cur = &r.Members[len(r.Members)-1]
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		name := cleanName(h.Name)
		switch {
		case strings.HasSuffix(name, ".pcap") || strings.HasSuffix(name, ".pcapng"):
			cur.Pcap = summarize(rd)
		case name == ContentFile && r.ContentJSON == nil:
			b, err := readJSON(rd)
			r.ContentJSON = b
			if b == nil {
				r.ContentJSON = []byte{}
			}
			if err == nil {
				r.Content, err = parseContent(b)
			}
			r.contentErr = err
		case name == NameResolutionFile && !r.namesSeen:
			r.namesSeen = true
			b, err := readJSON(rd)
			if err == nil {
				err = json.Unmarshal(b, &r.NameResolution)
			}
			if err != nil {
				r.NameResolution, r.namesErr = nil, err
			}
		}
		return nil
	}, func(h *tar.Header, size int64) {
		if h.Typeflag == tar.TypeReg {
			cur.Size = size
		}
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// errContentRead stops ReadContent's walk once content.json is read.
var errContentRead = errors.New("content.json read")

// ReadContent reads the content.json of the repository archive at path
// and stops there: the Writer puts it first, so the packets of a sealed
// repository are not decompressed. It reads within lim, as Open does, and
// fails like Open, and also when the archive has no content.json or its
// content.json does not parse (the error names the field).
func ReadContent(ctx context.Context, path string, lim Limits) (*Content, error) {
	var c *Content
	err := walk(ctx, path, lim, func(h *tar.Header, rd io.Reader) error {
		if h.Typeflag != tar.TypeReg || cleanName(h.Name) != ContentFile {
			return nil
		}
		b, err := readJSON(rd)
		if err == nil {
			c, err = parseContent(b)
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, ContentFile, err)
		}
		return errContentRead
	}, nil)
	switch {
	case errors.Is(err, errContentRead):
		return c, nil
	case err != nil:
		return nil, err
	}
	return nil, fmt.Errorf("%s: no %s", path, ContentFile)
}

func readJSON(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxJSONBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJSONBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxJSONBytes)
	}
	return b, nil
}

// summarize counts the packets of a pcap or pcapng member and notes their
// time span. It never fails; what stops it early is in Err.
func summarize(r io.Reader) *PcapSummary {
	s := &PcapSummary{Format: "pcap"}
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil {
		s.Err = "too short for a pcap header"
		if !errors.Is(err, io.EOF) {
			s.Err = err.Error()
		}
		return s
	}
	var next func() (time.Time, error)
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		s.Format = "pcapng"
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{SkipUnknownVersion: true, WantMixedLinkType: true})
		if err != nil {
			s.Err = err.Error()
			return s
		}
		s.LinkType = ng.LinkType().String()
		next = func() (time.Time, error) {
			_, ci, err := ng.ZeroCopyReadPacketData()
			return ci.Timestamp, err
		}
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			s.Err = err.Error()
			return s
		}
		// The header's snap length sizes the reader's packet buffer.
		if pr.Snaplen() > maxSnaplen {
			pr.SetSnaplen(maxSnaplen)
		}
		s.LinkType = pr.LinkType().String()
		next = func() (time.Time, error) {
			_, ci, err := pr.ZeroCopyReadPacketData()
			return ci.Timestamp, err
		}
	}
	var prev time.Time
	for {
		ts, err := next()
		if errors.Is(err, io.EOF) {
			return s
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				s.Err = fmt.Sprintf("truncated after %d packets", s.Packets)
			} else {
				s.Err = err.Error()
			}
			return s
		}
		ts = ts.UTC()
		if s.Packets == 0 || ts.Before(s.First) {
			s.First = ts
		}
		if s.Packets == 0 || ts.After(s.Last) {
			s.Last = ts
		}
		if s.Packets > 0 && ts.Before(prev) {
			s.Unordered++
		}
		prev = ts
		s.Packets++
	}
}

// cleanName is a member name without the "./" that "tar -C dir ." puts in
// front of every member.
func cleanName(name string) string {
	for strings.HasPrefix(name, "./") {
		name = strings.TrimLeft(name[2:], "/")
	}
	return name
}

func typeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "file"
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeChar:
		return "char"
	case tar.TypeBlock:
		return "block"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeGNUSparse:
		return "sparse"
	}
	return fmt.Sprintf("typeflag %q", t)
}
