package repo

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Extract writes the regular files of the archive at path into dir,
// creating dir (and missing parents) first. It refuses, with a
// *RejectError naming the member, any member that is not a regular file or
// a plain directory (symlinks, hard links, devices, fifos), any name that
// is absolute or has a ".." component, a name that appears twice, a member
// or archive over lim, and any file or path component that already exists
// in dir other than as a directory (so a symlink planted in dir is never
// followed). Files are created with O_CREATE|O_EXCL|O_NOFOLLOW through an
// os.Root, so nothing is written outside dir whatever the archive says.
//
// Extract is all or nothing: on any error it removes every file and
// directory it created, dir included when it created it. On success it
// returns the files written, in archive order, with their sizes.
func Extract(ctx context.Context, path, dir string, lim Limits) (files []Member, err error) {
	// Fail on a missing or unreadable archive before creating anything.
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	f.Close()
	madeDirs, err := mkdirAllTracked(dir)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		removeAll(nil, nil, madeDirs)
		return nil, err
	}
	x := &extractor{root: root, path: path, dir: dir, kind: map[string]byte{}}
	defer func() {
		if err != nil {
			removeAll(root, x.created, madeDirs)
			files = nil
		}
		root.Close()
	}()
	err = walk(ctx, path, lim, x.member, func(h *tar.Header, size int64) {
		if h.Typeflag == tar.TypeReg {
			x.files = append(x.files, Member{Name: x.last, Type: "file", Size: size, ModTime: h.ModTime.UTC()})
		}
	})
	return x.files, err
}

type extractor struct {
	root      *os.Root
	path, dir string
	kind      map[string]byte // cleaned name → tar.TypeReg or tar.TypeDir, for what this run made or met
	created   []string        // names inside root, in creation order
	files     []Member
	last      string // cleaned name of the current regular member
}

func (x *extractor) member(h *tar.Header, r io.Reader) error {
	reject := func(format string, a ...any) error {
		return &RejectError{Member: h.Name, Reason: fmt.Sprintf(format, a...)}
	}
	if reason := unsafeName(h.Name); reason != "" {
		return reject("%s", reason)
	}
	name := path.Clean(cleanName(h.Name))
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // PAX defaults for later headers, not a file
	case tar.TypeDir:
		if name == "." {
			return nil
		}
		if x.kind[name] == tar.TypeReg {
			return reject("duplicate name: a file %q was extracted already", name)
		}
		return x.mkdirs(h.Name, name)
	case tar.TypeReg:
	case tar.TypeSymlink, tar.TypeLink:
		return reject("%s to %q: links are not extracted", typeName(h.Typeflag), h.Linkname)
	default:
		return reject("%s: only regular files and directories are extracted", typeName(h.Typeflag))
	}
	if name == "." {
		return reject("names the destination directory itself")
	}
	if _, dup := x.kind[name]; dup {
		return reject("duplicate name: %q appears more than once", name)
	}
	x.kind[name] = tar.TypeReg
	if parent := path.Dir(name); parent != "." {
		if err := x.mkdirs(h.Name, parent); err != nil {
			return err
		}
	}
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return reject("%s already exists in %s: extract neither overwrites files nor writes through links", name, x.dir)
	}
	if err != nil {
		return reject("create: %v", err)
	}
	x.created = append(x.created, name)
	x.last = name
	rr := &readErr{r: r}
	_, err = io.Copy(f, rr)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	switch {
	case err == nil:
		return nil
	case rr.err == nil:
		return fmt.Errorf("write %s: %w", filepath.Join(x.dir, name), err)
	}
	var rej *RejectError
	if errors.As(err, &rej) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return readError(x.path, h.Name, err)
}

// mkdirs makes the directories of name (a cleaned path) inside the root,
// one component at a time, accepting only real directories that exist.
func (x *extractor) mkdirs(member, name string) error {
	var prefix string
	for _, part := range splitPath(name) {
		prefix = path.Join(prefix, part)
		switch x.kind[prefix] {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
			return &RejectError{Member: member, Reason: fmt.Sprintf("%q is a file of this archive, not a directory", prefix)}
		}
		err := x.root.Mkdir(prefix, 0o755)
		switch {
		case err == nil:
			x.created = append(x.created, prefix)
		case errors.Is(err, fs.ErrExist):
			fi, lerr := x.root.Lstat(prefix)
			if lerr != nil || !fi.IsDir() {
				return &RejectError{Member: member, Reason: fmt.Sprintf("%s exists in %s and is not a directory (a symlink?): not writing through it", prefix, x.dir)}
			}
		default:
			return &RejectError{Member: member, Reason: fmt.Sprintf("mkdir %s: %v", prefix, err)}
		}
		x.kind[prefix] = tar.TypeDir
	}
	return nil
}

func splitPath(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}

// readErr remembers the error of its reader, to tell read from write
// errors after io.Copy.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// mkdirAllTracked is os.MkdirAll that returns the directories it made,
// outermost first, so that a failed extraction can remove them.
func mkdirAllTracked(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append([]string{d}, missing...)
		if filepath.Dir(d) == d {
			break
		}
	}
	var made []string
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			removeAll(nil, nil, made)
			return nil, err
		}
		made = append(made, d)
	}
	fi, err := os.Stat(dir)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", dir)
	}
	if err != nil {
		removeAll(nil, nil, made)
		return nil, err
	}
	return made, nil
}

// removeAll undoes an extraction: the names created inside root, newest
// first, then the directories made for dir, innermost first. It removes
// only what this extraction created, never recursively.
func removeAll(root *os.Root, created, madeDirs []string) {
	for i := len(created) - 1; i >= 0; i-- {
		root.Remove(created[i])
	}
	for i := len(madeDirs) - 1; i >= 0; i-- {
		os.Remove(madeDirs[i])
	}
}
