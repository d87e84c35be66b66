package repo_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/repo"
	rt "github.com/kflcap/kflcap/repo/repotest"
)

// snapshot maps every path under root (relative) to its type and content,
// without following symlinks, so that any write anywhere shows up.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[rel] = "symlink " + target
		case d.IsDir():
			m[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = "file " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExtract(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "kfl_0_kflcap_1700000005.tar.gz")
	ms := rt.New(0, "dns").Members(t)
	// "tar -C dir ." spells members ./name and adds ./ and subdirectories.
	ms[0].Header.Name = "./" + ms[0].Header.Name
	ms = append(ms,
		rt.Member{Header: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}},
		rt.Member{Header: tar.Header{Name: "extra/", Typeflag: tar.TypeDir, Mode: 0o755}},
		rt.File("extra/notes/readme.txt", []byte("hello")))
	rt.WriteArchive(t, path, ms)

	dir := filepath.Join(base, "new", "out")
	files, err := repo.Extract(context.Background(), path, dir, repo.Limits{})
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	if len(files) != 7 || files[0].Name != "000000000001_tcp.pcap" || files[6].Name != "extra/notes/readme.txt" || files[6].Size != 5 {
		t.Errorf("files %+v", files)
	}
	for _, m := range ms {
		if m.Header.Typeflag != tar.TypeReg {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, m.Header.Name))
		if err != nil || !bytes.Equal(got, m.Body) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", m.Header.Name, len(got), err, len(m.Body))
		}
	}

	// Again into the same directory: refused (no overwriting), and the
	// refusal must not remove what the first extraction wrote.
	before := snapshot(t, base)
	_, err = repo.Extract(context.Background(), path, dir, repo.Limits{})
	var rej *repo.RejectError
	if !errors.As(err, &rej) || rej.Member != "./000000000001_tcp.pcap" || !strings.Contains(rej.Reason, "already exists") {
		t.Errorf("second Extract = %v, want a refusal for the first member", err)
	}
	if after := snapshot(t, base); !mapsEqual(before, after) {
		t.Errorf("a refused extraction changed the directory:\nbefore %v\nafter  %v", before, after)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// lyingHeader returns a tar.gz whose member "liar" claims claim bytes but
// carries actual bytes, after a good member "first".
func lyingHeader(t *testing.T, claim, actual int) []byte {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	tw.WriteHeader(&tar.Header{Name: "first", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("abc"))
	tw.WriteHeader(&tar.Header{Name: "liar", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(actual), Format: tar.FormatUSTAR})
	tw.Write(bytes.Repeat([]byte("A"), actual))
	tw.Close()
	b := raw.Bytes()
	// Rewrite the size field (octal, offset 124) and the checksum of the
	// second header (the block after "first"'s header and data).
	h := b[1024 : 1024+512]
	copy(h[124:136], fmt.Sprintf("%011o\x00", claim))
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return rt.Gzip(t, b)
}

// TestExtractHostile: every hostile archive is refused with an error that
// names the member, nothing is written anywhere (not even a partial file
// of an earlier, good member), and the directory Extract created is gone.
func TestExtractHostile(t *testing.T) {
	good := rt.File("000000000001_tcp.pcap", rt.Pcap(t, rt.New(0, "dns").Streams[0].Packets))
	zeros := make([]byte, 32<<20)
	tests := []struct {
		name    string
		members []rt.Member
		raw     []byte                                  // instead of members
		plant   func(t *testing.T, dir, outside string) // prepares dir before extracting
		lim     repo.Limits
		member  string // the member the error must name
		reason  string
	}{
		{name: "dot-dot", members: []rt.Member{good, rt.File("../evil", []byte("x"))}, member: "../evil", reason: `".." path component`},
		{name: "absolute", members: []rt.Member{good, rt.File("/abs/path", []byte("x"))}, member: "/abs/path", reason: "absolute path"},
		{name: "dot-dot inside", members: []rt.Member{good, rt.File("a/../../x", []byte("x"))}, member: "a/../../x", reason: `".." path component`},
		{name: "symlink then through it", members: []rt.Member{good,
			{Header: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../outside"}},
			rt.File("link/pwned", []byte("x"))}, member: "link", reason: `symlink to "../outside": links are not extracted`},
		{name: "symlink inside", members: []rt.Member{good, {Header: tar.Header{Name: "self", Typeflag: tar.TypeSymlink, Linkname: "."}}}, member: "self", reason: "links are not extracted"},
		{name: "hardlink", members: []rt.Member{good, {Header: tar.Header{Name: "passwd", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}}, member: "passwd", reason: `hardlink to "/etc/passwd"`},
		{name: "device", members: []rt.Member{good, {Header: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}}}, member: "null", reason: "char: only regular files and directories"},
		{name: "fifo", members: []rt.Member{good, {Header: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}}}, member: "fifo", reason: "fifo"},
		{name: "duplicate", members: []rt.Member{good, rt.File("content.json", []byte("{}")), rt.File("./content.json", []byte(`{"x":1}`))}, member: "./content.json", reason: "duplicate name"},
		{name: "file then dir of the same name", members: []rt.Member{good, rt.File("d", []byte("x")), {Header: tar.Header{Name: "d/", Typeflag: tar.TypeDir}}}, member: "d/", reason: "duplicate name"},
		{name: "header claims less than the data", raw: lyingHeader(t, 10, 5000), member: "liar", reason: "corrupt tar data"},
		{name: "header claims more than the data", raw: lyingHeader(t, 1<<20, 5000), member: "liar", reason: "truncated archive"},
		{name: "member over the cap by header", members: []rt.Member{good, rt.File("big", make([]byte, 2<<20))}, lim: repo.Limits{MaxMemberBytes: 1 << 20}, member: "big", reason: "exceeds the 1048576-byte member limit"},
		// A gzip bomb: 32 MiB of zeros is about 32 KiB compressed; the total
		// cap stops it after reading 1 MiB, whatever the header says.
		{name: "gzip bomb", members: []rt.Member{good, rt.File("bomb", zeros)}, lim: repo.Limits{MaxTotalBytes: 1 << 20}, member: "bomb", reason: "archive content exceeds 1048576 bytes, the total limit"},
		{name: "many members over the total", members: []rt.Member{good, rt.File("a", zeros[:600<<10]), rt.File("b", zeros[:600<<10])}, lim: repo.Limits{MaxTotalBytes: 1 << 20}, member: "b", reason: "the total limit"},
		{name: "too many members", members: []rt.Member{good, rt.File("a", nil), rt.File("b", nil)}, lim: repo.Limits{MaxMembers: 2}, member: "b", reason: "more than 2 members"},
		{name: "pre-existing symlink to a file outside", members: []rt.Member{good, rt.File("content.json", []byte("pwned"))},
			plant: func(t *testing.T, dir, outside string) {
				os.MkdirAll(dir, 0o755)
				if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, "content.json")); err != nil {
					t.Fatal(err)
				}
			}, member: "content.json", reason: "already exists"},
		{name: "pre-existing dangling symlink", members: []rt.Member{good, rt.File("content.json", []byte("pwned"))},
			plant: func(t *testing.T, dir, outside string) {
				os.MkdirAll(dir, 0o755)
				os.Symlink(filepath.Join(outside, "new-file"), filepath.Join(dir, "content.json"))
			}, member: "content.json", reason: "already exists"},
		{name: "pre-existing symlink to a directory outside", members: []rt.Member{good, rt.File("sub/x", []byte("pwned"))},
			plant: func(t *testing.T, dir, outside string) {
				os.MkdirAll(dir, 0o755)
				os.Symlink(outside, filepath.Join(dir, "sub"))
			}, member: "sub/x", reason: "is not a directory (a symlink?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.MkdirAll(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "target"), []byte("precious"), 0o644)
			path := filepath.Join(base, "hostile.tar.gz")
			b := tc.raw
			if b == nil {
				b = rt.Archive(t, tc.members)
			}
			os.WriteFile(path, b, 0o644)
			dir := filepath.Join(base, "out")
			if tc.plant != nil {
				tc.plant(t, dir, outside)
			}
			before := snapshot(t, base)

			files, err := repo.Extract(context.Background(), path, dir, tc.lim)
			if err == nil {
				t.Fatalf("Extract accepted it: %+v", files)
			}
			var rej *repo.RejectError
			var ferr *repo.FormatError
			switch {
			case errors.As(err, &rej):
				if rej.Member != tc.member || !strings.Contains(rej.Reason, tc.reason) {
					t.Errorf("refused %q for %q, want %q for %q", rej.Member, rej.Reason, tc.member, tc.reason)
				}
			case errors.As(err, &ferr):
				if ferr.Member != tc.member || !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("format error %v, want %q after member %q", err, tc.reason, tc.member)
				}
			default:
				t.Errorf("error %T %v, want a RejectError or FormatError", err, err)
			}
			if after := snapshot(t, base); !mapsEqual(before, after) {
				t.Errorf("files changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestExtractCancel: a cancelled context stops extraction and removes
// what was written.
func TestExtractCancel(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join(base, "r.tar.gz")
	rt.New(0, "dns").Write(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := repo.Extract(ctx, path, filepath.Join(base, "out"), repo.Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Extract = %v, want context.Canceled", err)
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range snapshot(t, base) {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{".", "r.tar.gz"}) {
		t.Errorf("left %q", got)
	}
}
