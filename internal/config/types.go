package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Size is a byte count written as a Kubernetes quantity: a number of
// bytes, or with a binary (Ki, Mi, Gi, Ti, Pi, Ei) or decimal (k, M, G, T,
// P, E) suffix: 16Mi, 10Gi, 500M, 1.5Gi.
type Size int64

// UnmarshalText parses a quantity (resource.ParseQuantity). A fraction of
// a byte rounds up; a negative size, or one of 2^63-1 bytes or more, is an
// error (ParseQuantity clamps larger values to 2^63-1 rather than failing).
func (s *Size) UnmarshalText(b []byte) error {
	q, err := resource.ParseQuantity(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%q is not a size (like 16Mi, 10Gi, 500M or a number of bytes)", b)
	}
	if q.Sign() < 0 {
		return fmt.Errorf("size %q is negative", b)
	}
	if q.CmpInt64(math.MaxInt64) >= 0 {
		return fmt.Errorf("size %q is too large", b)
	}
	*s = Size(q.Value())
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
