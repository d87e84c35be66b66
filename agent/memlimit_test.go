package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The limit is found for cgroup v2 and v1, at the root (a container's own
// cgroup namespace) or down the process's path; "no limit" is none.
func TestCgroupMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		name, proc string
		files      map[string]string
		want       int64
	}{
		{"v2 in a pod", "0::/\n", map[string]string{"memory.max": "1073741824\n"}, 1 << 30},
		{"v2 down a path", "0::/kubepods/burstable/pod1/c1\n", map[string]string{"kubepods/burstable/pod1/c1/memory.max": "536870912\n"}, 512 << 20},
		{"v2 unlimited", "0::/\n", map[string]string{"memory.max": "max\n"}, 0},
		{"v1", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n", map[string]string{"memory/docker/abc/memory.limit_in_bytes": "268435456\n"}, 256 << 20},
		{"v1 unlimited", "4:memory:/\n", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"hybrid: v1 memory wins when v2 has none", "4:memory:/x\n0::/\n", map[string]string{"memory/x/memory.limit_in_bytes": "300000000\n"}, 300000000},
		{"no files", "0::/\n", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			proc := filepath.Join(t.TempDir(), "cgroup")
			write(t, proc, c.proc)
			for p, text := range c.files {
				write(t, filepath.Join(root, p), text)
			}
			got, _, ok := cgroupMemoryLimit(root, proc)
			if got != c.want || ok != (c.want > 0) {
				t.Errorf("%d, %v; want %d", got, ok, c.want)
			}
		})
	}
}

func TestSetMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	root := t.TempDir()
	proc := filepath.Join(t.TempDir(), "cgroup")
	write(t, proc, "0::/\n")
	write(t, filepath.Join(root, "memory.max"), "1000000000\n")
	log := slog.New(slog.DiscardHandler)
	t.Setenv("GOMEMLIMIT", "")
	setMemoryLimit(log, root, proc)
	if got := debug.SetMemoryLimit(-1); got != 900000000 {
		t.Errorf("soft limit %d, want 90%% of 1e9", got)
	}
	debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "123MiB") // GOMEMLIMIT wins
	setMemoryLimit(log, root, proc)
	if got := debug.SetMemoryLimit(-1); got != old {
		t.Errorf("with GOMEMLIMIT set the limit changed to %d", got)
	}
}
