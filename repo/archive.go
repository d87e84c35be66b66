package repo

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Default limits. A repository seals at maxL4Streams (100000 by default)
// streams and its spool holds 10 GiB by default, so honest archives stay
// well inside them.
const (
	DefaultMaxMemberBytes = 4 << 30
	DefaultMaxTotalBytes  = 16 << 30
	DefaultMaxMembers     = 1 << 20
)

// Limits bound what reading one archive may cost. Zero fields take the
// defaults above.
type Limits struct {
	// MaxMemberBytes is the most content bytes one member may hold.
	MaxMemberBytes int64
	// MaxTotalBytes is the most content bytes all members together may hold.
	MaxTotalBytes int64
	// MaxMembers is the most members (of any type) an archive may hold.
	MaxMembers int
}

func (l Limits) withDefaults() Limits {
	if l.MaxMemberBytes <= 0 {
		l.MaxMemberBytes = DefaultMaxMemberBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxMembers <= 0 {
		l.MaxMembers = DefaultMaxMembers
	}
	return l
}

// headerAllowance is how many decompressed bytes of tar headers and padding
// each member may add on top of its content: a header block, up to a block
// of padding, and room for a PAX record or a GNU long name. trailerAllowance
// covers the end-of-archive blocks and the record padding GNU tar adds.
const (
	headerAllowance  = 4 << 10
	trailerAllowance = 64 << 10
)

// RejectError is returned when an archive breaks a limit or, in Extract,
// holds a member that must not be written.
type RejectError struct {
	Member string // the member's name as the archive spells it; empty when no member is concerned
	Reason string
}

func (e *RejectError) Error() string {
	if e.Member == "" {
		return e.Reason
	}
	return fmt.Sprintf("member %q: %s", e.Member, e.Reason)
}

// FormatError is returned when a file is not a readable .tar.gz.
type FormatError struct {
	Path   string
	Member string // the last member read before the damage, if any
	Err    error
}

func (e *FormatError) Error() string {
	if e.Member != "" {
		return fmt.Sprintf("%s: after member %q: %v", e.Path, e.Member, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// walk reads the archive at path and calls fn for every member with a
// reader of the member's content. fn need not read all of it; walk reads
// the rest, so that limits and sizes always cover every byte. size is the
// number of content bytes of the member, counted as they were read.
func walk(ctx context.Context, path string, lim Limits, fn func(h *tar.Header, r io.Reader) error, done func(h *tar.Header, size int64)) error {
	lim = lim.withDefaults()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return err
	} else if st.IsDir() {
		return &FormatError{Path: path, Err: errors.New("is a directory, not a .tar.gz repository")}
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 256<<10))
	switch {
	case errors.Is(err, io.EOF):
		return &FormatError{Path: path, Err: errors.New("empty file, not a gzip-compressed repository")}
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, io.ErrUnexpectedEOF):
		return &FormatError{Path: path, Err: fmt.Errorf("not a gzip file (a repository is a .tar.gz): %w", err)}
	case err != nil:
		return &FormatError{Path: path, Err: err}
	}
	defer zr.Close()

	// stream counts every decompressed byte, headers included, so that an
	// archive of endless headers is stopped as surely as a huge member.
	stream := &countReader{r: zr, ctx: ctx, limit: lim.MaxTotalBytes + trailerAllowance}
	tr := tar.NewReader(stream)
	var (
		total   int64
		members int
		last    string
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var rej *RejectError
			if errors.As(err, &rej) {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if members == 0 && (errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return &FormatError{Path: path, Err: fmt.Errorf("not a tar archive inside the gzip stream: %w", err)}
			}
			return readError(path, last, err)
		}
		members++
		last = h.Name
		if members > lim.MaxMembers {
			return &RejectError{Member: h.Name, Reason: fmt.Sprintf("archive has more than %d members", lim.MaxMembers)}
		}
		// An honest header can be checked before reading anything; a
		// lying one is caught by counting below.
		if h.Size > lim.MaxMemberBytes {
			return &RejectError{Member: h.Name, Reason: fmt.Sprintf("size %d bytes exceeds the %d-byte member limit", h.Size, lim.MaxMemberBytes)}
		}
		stream.limit = lim.MaxTotalBytes + int64(members)*headerAllowance + trailerAllowance
		stream.member = h.Name
		mr := &memberReader{r: tr, name: h.Name, max: lim.MaxMemberBytes, total: &total, maxTotal: lim.MaxTotalBytes}
		if err := fn(h, mr); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, mr); err != nil {
			var rej *RejectError
			if errors.As(err, &rej) {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return readError(path, h.Name, err)
		}
		if done != nil {
			done(h, mr.n)
		}
	}
	// Read to the end of the gzip stream: its checksum is only verified
	// there, and a corrupt archive must not pass for a good one.
	stream.member = ""
	if _, err := io.Copy(io.Discard, stream); err != nil {
		var rej *RejectError
		if errors.As(err, &rej) {
			return err
		}
		return readError(path, last, err)
	}
	return nil
}

func readError(path, member string, err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("truncated archive: %w", err)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		err = fmt.Errorf("corrupt gzip data: %w", err)
	case errors.Is(err, tar.ErrHeader):
		err = fmt.Errorf("corrupt tar data (a header lied about its size, or the archive is damaged): %w", err)
	}
	return &FormatError{Path: path, Member: member, Err: err}
}

// countReader counts the decompressed stream and stops it at limit.
type countReader struct {
	r      io.Reader
	ctx    context.Context
	n      int64
	limit  int64
	member string
}

func (c *countReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if c.n > c.limit {
		return 0, &RejectError{Member: c.member, Reason: fmt.Sprintf("archive decompresses to more than %d bytes (total limit plus headers)", c.limit)}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// memberReader counts one member's content bytes against the member and
// total limits. tar.Reader never returns more than the header's size, but
// the size is what the archive claims, so the count is what is trusted.
type memberReader struct {
	r        io.Reader
	name     string
	n, max   int64
	total    *int64
	maxTotal int64
	err      error // sticky: a limit, once broken, stays broken
}

func (m *memberReader) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.r.Read(p)
	m.n += int64(n)
	*m.total += int64(n)
	switch {
	case m.n > m.max:
		m.err = &RejectError{Member: m.name, Reason: fmt.Sprintf("more than %d bytes, the member limit", m.max)}
	case *m.total > m.maxTotal:
		m.err = &RejectError{Member: m.name, Reason: fmt.Sprintf("archive content exceeds %d bytes, the total limit", m.maxTotal)}
	case err != nil && err != io.EOF:
		m.err = err
	}
	if m.err != nil {
		return n, m.err
	}
	return n, err
}
