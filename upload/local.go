package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kflcap/kflcap/repo"
)

// ProgressEntry is one line of a progress log: the wrapper's shape.
type ProgressEntry struct {
	File     string `json:"file"`
	KFLIndex int    `json:"kfl_index"`
	KFLQuery string `json:"kfl_query"`
	S3URL    string `json:"s3_url"`
	Time     string `json:"time"` // repo.TimeFormat
}

// NewProgressEntry makes the entry for a delivered archive.
func NewProgressEntry(a Archive, url string, at time.Time) ProgressEntry {
	return ProgressEntry{File: a.Name, KFLIndex: a.Content.KFLIndex, KFLQuery: a.Content.KFLQuery, S3URL: url, Time: at.UTC().Format(repo.TimeFormat)}
}

// LocalSink keeps archives in a directory and appends to its
// progress_log.json, whose s3_url is a file:// URL.
type LocalSink struct {
	Dir string
}

// Name implements Sink.
func (l *LocalSink) Name() string { return "local" }

// Deliver copies the archive into Dir (temporary name, fsync, rename) and
// logs it. An archive already there with the same size, and already in the
// log, is not copied or logged again.
func (l *LocalSink) Deliver(ctx context.Context, a Archive) (string, error) {
	if err := os.MkdirAll(l.Dir, 0o750); err != nil {
		return "", fmt.Errorf("local sink: %w", err)
	}
	dst := filepath.Join(l.Dir, a.Name)
	abs, err := filepath.Abs(dst)
	if err != nil {
		return "", fmt.Errorf("local sink: %w", err)
	}
	u := (&url.URL{Scheme: "file", Path: abs}).String()
	if fi, err := os.Stat(dst); err != nil || fi.Size() != a.Size {
		if err := copyFile(a.Path, dst); err != nil {
			return "", fmt.Errorf("local sink: %w", err)
		}
	}
	if err := appendProgress(filepath.Join(l.Dir, "progress_log.json"), NewProgressEntry(a, u, time.Now())); err != nil {
		return "", fmt.Errorf("local sink: %w", err)
	}
	return u, nil
}

// copyFile copies src to dst through a temporary file and a rename, so
// that dst is either absent or complete.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// appendProgress adds e to the JSON array in path unless an entry for the
// same file is there already. An exclusive lock on a side file serialises
// writers (two agents during a rolling update); the array is rewritten
// through a temporary file and a rename, so readers never see half of it.
func appendProgress(path string, e ProgressEntry) error {
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock progress log: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	var entries []ProgressEntry
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read progress log: %w", err)
	default:
		if err := json.Unmarshal(b, &entries); err != nil {
			return fmt.Errorf("progress log %s is not a JSON array of entries: %w", path, err)
		}
	}
	for _, x := range entries {
		if x.File == e.File {
			return nil
		}
	}
	entries = append(entries, e)
	out, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o640); err != nil {
		return fmt.Errorf("write progress log: %w", err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		f.Sync()
		f.Close()
	}
	return os.Rename(tmp, path)
}
