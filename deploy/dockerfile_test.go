package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile's build step, run here as written (no Docker on the test
// machine), makes a static binary that runs on an image without a libc,
// and the image starts it the way the DaemonSet expects.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*) -o /out/kflcap (\./cmd/kflcap)$`).FindStringSubmatch(text)
	if build == nil {
		t.Fatal("no `RUN CGO_ENABLED=0 go build … -o /out/kflcap ./cmd/kflcap` in the Dockerfile")
	}
	if !strings.Contains(text, "COPY --from=build /out/kflcap /usr/local/bin/kflcap") ||
		!strings.Contains(text, `ENTRYPOINT ["/usr/local/bin/kflcap"]`) {
		t.Error("the final stage does not install and start /usr/local/bin/kflcap")
	}
	if !regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static`).MatchString(text) {
		t.Error("the final stage is not a static (libc-less) base image")
	}

	out := filepath.Join(t.TempDir(), "kflcap")
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(build[1], "${VERSION}", "docker-test")+" -o "+out+" "+build[2])
	cmd.Dir = ".."
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd.Args[2], err, o)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%v): it would not start on distroless/static", p.Type)
		}
	}
	if o, err := exec.Command(out, "version").CombinedOutput(); err != nil || strings.TrimSpace(string(o)) != "kflcap docker-test" {
		t.Errorf("kflcap version: %q, %v", o, err)
	}

	// The DaemonSet passes arguments only: the image's ENTRYPOINT is the
	// binary, and they start with the agent command.
	docs := documents(t, "manifests/kflcap.yaml")
	c := get(find(docs, "DaemonSet"), "spec", "template", "spec", "containers").([]any)[0]
	if get(c, "command") != nil {
		t.Error("the DaemonSet overrides the image's entrypoint")
	}
	if args, _ := get(c, "args").([]any); len(args) == 0 || args[0] != "agent" {
		t.Errorf("DaemonSet args %v do not start the agent", get(c, "args"))
	}
}
