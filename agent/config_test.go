package agent

import (
	"testing"

	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/internal/config"
)

// config keeps its own copy of the capture limits and backend names, so
// that it need not import bpf; they must stay what bpf accepts.
func TestConfigAgreesWithBPF(t *testing.T) {
	if config.DefaultSnaplen != bpf.DefaultSnaplen || config.MaxSnaplen != bpf.MaxSnaplen || config.DefaultRingBufferBytes != bpf.DefaultRingBytes {
		t.Errorf("config's snaplen %d (max %d) and ring %d, bpf's %d (max %d) and %d",
			config.DefaultSnaplen, config.MaxSnaplen, config.DefaultRingBufferBytes, bpf.DefaultSnaplen, bpf.MaxSnaplen, bpf.DefaultRingBytes)
	}
	backends := map[config.Backend]bpf.Backend{
		config.BackendAuto: bpf.BackendAuto, config.BackendTCX: bpf.BackendTCX,
		config.BackendTC: bpf.BackendTC, config.BackendSocket: bpf.BackendSocket,
	}
	for c, b := range backends {
		// The agent converts with bpf.Backend(cfg.Capture.Backend).
		var got bpf.Backend
		if err := got.UnmarshalText([]byte(c)); err != nil || got != b || bpf.Backend(c) != b {
			t.Errorf("config backend %q is bpf's %q (%v), want %q", c, got, err, b)
		}
		var back config.Backend
		if err := back.UnmarshalText([]byte(b)); err != nil || back != c {
			t.Errorf("bpf backend %q: config says %q, %v", b, back, err)
		}
	}
}
