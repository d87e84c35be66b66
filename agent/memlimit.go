package agent

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// setMemoryLimit gives the Go runtime a soft memory limit at 90% of the
// hard limit of the process's cgroup (the container's, in a pod), unless
// GOMEMLIMIT says otherwise: the collector then works harder as the heap
// nears the limit instead of letting the kernel's OOM killer end the agent
// and lose what its open repositories hold. Without a limit nothing
// changes. cgroupRoot is /sys/fs/cgroup; procCgroup is /proc/self/cgroup.
func setMemoryLimit(log *slog.Logger, cgroupRoot, procCgroup string) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("Go memory limit from GOMEMLIMIT", "GOMEMLIMIT", v)
		return
	}
	limit, file, ok := cgroupMemoryLimit(cgroupRoot, procCgroup)
	if !ok {
		return
	}
	soft := limit / 10 * 9
	debug.SetMemoryLimit(soft)
	log.Info("Go memory limit at 90% of the cgroup's", "cgroup_limit", limit, "from", file, "soft_limit", soft)
}

// cgroupMemoryLimit finds the memory limit of the cgroup that procCgroup
// names: cgroup v2 (0::/path → memory.max) or v1 (the memory controller's
// line → memory/path/memory.limit_in_bytes). In a container with its own
// cgroup namespace the path is "/", the cgroup's files at the root.
func cgroupMemoryLimit(cgroupRoot, procCgroup string) (limit int64, file string, ok bool) {
	f, err := os.Open(procCgroup)
	if err != nil {
		return 0, "", false
	}
	defer f.Close()
	var candidates []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			candidates = append(candidates, filepath.Join(cgroupRoot, parts[2], "memory.max"))
		case strings.Contains(","+parts[1]+",", ",memory,"):
			candidates = append(candidates, filepath.Join(cgroupRoot, "memory", parts[2], "memory.limit_in_bytes"))
		}
	}
	for _, c := range candidates {
		if n, ok := readMemoryLimit(c); ok {
			return n, c, true
		}
	}
	return 0, "", false
}

// readMemoryLimit reads memory.max ("max" for none) or memory.limit_in_bytes
// (a huge page-rounded number for none).
func readMemoryLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0, false
	}
	return n, true
}
