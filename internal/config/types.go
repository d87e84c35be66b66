package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Size is a byte count written as an integer or with a binary suffix
// (Ki, Mi, Gi, Ti), as Kubernetes quantities are: 16Mi, 10Gi.
type Size int64

// UnmarshalText parses 16Mi, 512Ki, 1Gi or a plain number of bytes.
func (s *Size) UnmarshalText(b []byte) error {
	v := strings.TrimSpace(string(b))
	mult := int64(1)
	for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40} {
		if strings.HasSuffix(v, suffix) {
			mult, v = m, strings.TrimSuffix(v, suffix)
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a size (like 16Mi, 10Gi or a number of bytes)", b)
	}
	*s = Size(n * mult)
	return nil
}

// UnmarshalYAML adds the line to errors, so that they name the key.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if err := s.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// MarshalText writes the largest exact binary suffix.
func (s Size) MarshalText() ([]byte, error) {
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if s != 0 && int64(s)%u.m == 0 {
			return []byte(strconv.FormatInt(int64(s)/u.m, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(int64(s), 10)), nil
}

// Duration is a Go duration string ("6s", "5m"); empty is zero.
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (like 6s or 5m)", b)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML adds the line to errors, so that they name the key.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if err := d.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// MarshalText writes the duration, or nothing for zero.
func (d Duration) MarshalText() ([]byte, error) {
	if d == 0 {
		return []byte(""), nil
	}
	return []byte(time.Duration(d).String()), nil
}

// Secret is a credential. It prints masked everywhere (logs, errors,
// --print-config); use string(s) where the value itself is needed.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "********"
}

// MarshalText masks the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// GoString masks the secret in %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Backend is capture.backend: how the capture programs are hooked to an
// interface. The names are the BPF layer's (bpf.Backend), which config
// does not import; the agent converts.
type Backend string

// The backends.
const (
	BackendAuto   Backend = "auto"   // TCX, else tc, else socket
	BackendTCX    Backend = "tcx"    // TCX links (kernel ≥ 6.6)
	BackendTC     Backend = "tc"     // clsact qdisc + cls_bpf filters
	BackendSocket Backend = "socket" // socket filter on an AF_PACKET socket
)

// UnmarshalText accepts the backend names.
func (b *Backend) UnmarshalText(text []byte) error {
	switch v := Backend(text); v {
	case BackendAuto, BackendTCX, BackendTC, BackendSocket:
		*b = v
		return nil
	}
	return fmt.Errorf("unknown backend %q (want auto, tcx, tc or socket)", text)
}

// UnmarshalYAML adds the line to errors, so that they name the key.
func (b *Backend) UnmarshalYAML(n *yaml.Node) error {
	if err := b.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}
