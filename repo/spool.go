package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// Spool tracks the bytes under the spool directory so that a full spool
// stops new selections instead of filling the disk.
type Spool struct {
	Dir      string
	MaxBytes int64
	used     atomic.Int64
	Refused  atomic.Uint64 // streams not selected because the spool was full
}

// Rescan measures the spool's size again (sealed archives are delivered
// and removed by the outbox; this catches up with that).
func (s *Spool) Rescan() {
	var total int64
	filepath.WalkDir(s.Dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	s.used.Store(total)
}

// Used is the last known spool size.
func (s *Spool) Used() int64 { return s.used.Load() }

// Full reports whether the spool holds MaxBytes or more.
func (s *Spool) Full() bool { return s.MaxBytes > 0 && s.used.Load() >= s.MaxBytes }

// Add counts n bytes written to the spool since the last Rescan.
func (s *Spool) Add(n int64) { s.used.Add(n) }

// RecoverSpool removes what a killed process left in the spool and in the
// outbox: partial repositories (their packets were never sealed) and
// half-written archives (*.partial). Sealed archives are left for the
// outbox. It returns what it removed.
func RecoverSpool(dirs ...string) ([]string, error) {
	var removed []string
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("read spool: %w", err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".partial") {
				p := filepath.Join(dir, e.Name())
				if err := os.RemoveAll(p); err != nil {
					return removed, fmt.Errorf("remove %s: %w", p, err)
				}
				removed = append(removed, p)
			}
		}
	}
	return removed, nil
}
