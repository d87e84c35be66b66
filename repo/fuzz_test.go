package repo_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kflcap/kflcap/repo"
	rt "github.com/kflcap/kflcap/repo/repotest"
)

var fuzzLimits = repo.Limits{MaxMemberBytes: 1 << 20, MaxTotalBytes: 4 << 20, MaxMembers: 256}

func fuzzSeeds(f *testing.F) [][]byte {
	r := rt.New(0, "dns")
	seeds := [][]byte{
		rt.Archive(f, r.Members(f)),
		rt.Archive(f, []rt.Member{rt.File("../evil", []byte("x")), {Header: tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/"}}, rt.File("l/x", nil)}),
		rt.Archive(f, []rt.Member{{Header: tar.Header{Name: "d/", Typeflag: tar.TypeDir}}, rt.File("d/000000000001_udp.pcap", rt.Pcap(f, r.Streams[2].Packets)), rt.File("d/000000000001_udp.pcap", nil)}),
		rt.Gzip(f, rt.Pcap(f, r.Streams[0].Packets)),
	}
	return seeds
}

// checkArchive opens and extracts the archive at path and checks what
// must hold for any input: errors are typed, a refused extraction leaves
// nothing behind, an accepted one wrote only regular files inside its
// directory, and Extract never accepts what Open refused.
func checkArchive(t *testing.T, dir, path string) {
	ctx := context.Background()
	r, openErr := repo.Open(ctx, path, fuzzLimits)
	var rej *repo.RejectError
	var ferr *repo.FormatError
	if openErr != nil && !errors.As(openErr, &rej) && !errors.As(openErr, &ferr) {
		t.Fatalf("Open: untyped error %T %v", openErr, openErr)
	}
	if openErr == nil {
		r.Check()
	}
	out := filepath.Join(dir, "out")
	files, err := repo.Extract(ctx, path, out, fuzzLimits)
	if err != nil {
		if !errors.As(err, &rej) && !errors.As(err, &ferr) {
			t.Fatalf("Extract: untyped error %T %v", err, err)
		}
		if _, serr := os.Lstat(out); serr == nil {
			t.Fatalf("refused extraction (%v) left %s", err, out)
		}
	} else {
		if openErr != nil {
			t.Fatalf("Extract accepted what Open refused: %v", openErr)
		}
		for _, f := range files {
			fi, err := os.Lstat(filepath.Join(out, f.Name))
			if err != nil || !fi.Mode().IsRegular() || fi.Size() != f.Size {
				t.Fatalf("extracted %+v: %v %v", f, fi, err)
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "out" && e.Name() != filepath.Base(path) {
			t.Fatalf("wrote %s outside the extraction directory", e.Name())
		}
	}
}

// FuzzOpen feeds raw bytes as the .tar.gz file.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "kfl_0_kflcap_1700000005.tar.gz")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		checkArchive(t, dir, path)
	})
}

// FuzzTar feeds the uncompressed tar stream, gzipped here, so that the
// fuzzer reaches the tar, pcap and JSON parsers rather than stopping at
// gzip checksums.
func FuzzTar(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		zr, err := gzip.NewReader(bytes.NewReader(s))
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := io.ReadAll(zr)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "kfl_0_kflcap_1700000005.tar.gz")
		if err := os.WriteFile(path, rt.Gzip(t, data), 0o644); err != nil {
			t.Fatal(err)
		}
		checkArchive(t, dir, path)
	})
}
