package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

const (
	httpPcap = "../../dissect/testdata/http.pcap"
	dnsPcap  = "../../dissect/testdata/dns.pcap"
)

func readCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

func TestReadText(t *testing.T) {
	out, errOut, code := readCmd(t, "read", httpPcap)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 20 {
		t.Errorf("%d lines, want 20 HTTP entries:\n%s", len(lines), out)
	}
	if !strings.Contains(out, "000000000001_tcp.pcap HTTP 10.99.0.1:") || !strings.Contains(out, "GET /status/500?q=500&x=y 500 Internal Server Error") {
		t.Errorf("unexpected output:\n%s", out)
	}
	// Several workers: the same entries (ids are numbered per shard), and
	// the same ids on every run.
	out3, _, code := readCmd(t, "read", "--workers", "3", httpPcap)
	out4, _, _ := readCmd(t, "read", "--workers", "3", httpPcap)
	noIDs := func(s string) []string {
		var ls []string
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				ls = append(ls, strings.Join(append(f[:1:1], f[2:]...), " "))
			}
		}
		slices.Sort(ls)
		return ls
	}
	sorted := func(s string) []string { ls := strings.Split(s, "\n"); slices.Sort(ls); return ls }
	if code != 0 || !slices.Equal(noIDs(out), noIDs(out3)) || !slices.Equal(sorted(out3), sorted(out4)) {
		t.Errorf("--workers 3: exit %d, output differs:\n%s", code, out3)
	}
	// Flags after the file, and several files.
	out2, _, code := readCmd(t, "read", httpPcap, dnsPcap, "--json")
	if code != 0 || strings.Count(out2, "\n") != 20+19 {
		t.Errorf("exit %d, %d lines for two files", code, strings.Count(out2, "\n"))
	}
}

func TestReadJSON(t *testing.T) {
	out, _, code := readCmd(t, "read", "--json", dnsPcap)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON %q: %v", l, err)
		}
		if m["protocol"].(map[string]any)["name"] != "dns" {
			continue
		}
		n++
		q := m["request"].(map[string]any)["questions"].([]any)[0].(map[string]any)
		if q["name"] == "a.test" && q["type"] == "A" {
			ans := m["response"].(map[string]any)["answers"].([]any)[0].(map[string]any)
			if ans["ip"] != "10.99.0.10" {
				t.Errorf("a.test answer %v", ans)
			}
		}
	}
	if n != 19 {
		t.Errorf("%d DNS entries, want 19 (18 answered, 1 unanswered)", n)
	}
}

func TestReadUsage(t *testing.T) {
	if _, _, code := readCmd(t, "read"); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
	if _, _, code := readCmd(t, "read", "--bogus", httpPcap); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if _, _, code := readCmd(t, "read", "/nonexistent.pcap"); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
	out, _, code := readCmd(t, "read", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

func tsharkCount(t *testing.T, path, filter string) int {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	out, err := exec.Command("tshark", "-n", "-r", path, "-d", "tcp.port==8080,http", "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	return strings.Count(string(out), "\n")
}

// TestReadWrite: -w writes every packet of the selected streams; all
// streams are selected without --kfl, so everything but ARP is written.
func TestReadWrite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.pcap")
	if _, e, code := readCmd(t, "read", "-q", httpPcap, "-w", out); code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if got, want := tsharkCount(t, out, "tcp"), tsharkCount(t, httpPcap, "tcp"); got != want || got == 0 {
		t.Errorf("wrote %d TCP packets, input has %d", got, want)
	}
	if got := tsharkCount(t, out, "http.response.code == 500"); got != 3 {
		t.Errorf("written file has %d HTTP 500 responses, want 3", got)
	}
}

// TestReadMixedLinkTypes: a pcapng with Ethernet and raw-IP interfaces
// dissects like the Ethernet original, and -w to pcap writes LINUX_SLL2.
func TestReadMixedLinkTypes(t *testing.T) {
	f, err := os.Open(httpPcap)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ngPath := filepath.Join(dir, "mixed.pcapng")
	nf, _ := os.Create(ngPath)
	w, err := pcapgo.NewNgWriterInterface(nf, pcapgo.NgInterface{Name: "eth", LinkType: layers.LinkTypeEthernet, SnapLength: 262144}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := w.AddInterface(pcapgo.NgInterface{Name: "tun", LinkType: layers.LinkTypeRaw, SnapLength: 262144})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if i%2 == 1 && binaryEtherIP(data) {
			data = data[14:]
			ci.InterfaceIndex = raw
			ci.CaptureLength, ci.Length = len(data), len(data)
		}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	nf.Close()
	orig, _, _ := readCmd(t, "read", httpPcap)
	mixed, e, code := readCmd(t, "read", ngPath)
	if code != 0 || mixed != orig {
		t.Errorf("exit %d %s; mixed pcapng output differs:\n%s\nwant\n%s", code, e, mixed, orig)
	}
	out := filepath.Join(dir, "out.pcap")
	if _, e, code := readCmd(t, "read", "-q", ngPath, "-w", out); code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	of, _ := os.Open(out)
	defer of.Close()
	or, err := pcapgo.NewReader(of)
	if err != nil || or.LinkType() != layers.LinkTypeLinuxSLL2 {
		t.Fatalf("output link type %v, %v; want LINUX_SLL2", or.LinkType(), err)
	}
	if got := tsharkCount(t, out, "http.response.code == 500"); got != 3 {
		t.Errorf("SLL2 output has %d HTTP 500 responses, want 3", got)
	}
}

func binaryEtherIP(b []byte) bool { return len(b) > 14 && b[12] == 0x08 && b[13] == 0x00 }

// TestReadRepository: a repository .tar.gz is read through its merged pcap,
// not once more through the per-stream pcaps.
func TestReadRepository(t *testing.T) {
	pcap, err := os.ReadFile(httpPcap)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kfl_0_kflcap_1700000000.tar.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"000000000001_tcp.pcap", "1700000000.pcap"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(pcap))})
		tw.Write(pcap)
	}
	content := []byte(`{"kfl_index":0}`)
	tw.WriteHeader(&tar.Header{Name: "content.json", Mode: 0o644, Size: int64(len(content))})
	tw.Write(content)
	tw.Close()
	zw.Close()
	os.WriteFile(path, buf.Bytes(), 0o644)
	orig, _, _ := readCmd(t, "read", httpPcap)
	got, e, code := readCmd(t, "read", path)
	if code != 0 || got != orig {
		t.Errorf("exit %d %s; repository output differs:\n%s", code, e, got)
	}
}

var _ = gopacket.CaptureInfo{}

// TestReadKFL: --kfl filters entries, and -w writes only the matching
// streams, whole (packets before and after the matching exchange).
func TestReadKFL(t *testing.T) {
	out, e, code := readCmd(t, "read", httpPcap, "--kfl", "http and response.status == 500")
	if code != 0 || strings.Count(out, "\n") != 3 || strings.Count(out, " 500 Internal Server Error") != 3 {
		t.Fatalf("exit %d %s\n%s", code, e, out)
	}
	if _, e, code := readCmd(t, "read", httpPcap, "--kfl", "response.status =="); code != 2 || !strings.Contains(e, "1:") {
		t.Errorf("bad query: exit %d, %q (want 2 and a position)", code, e)
	}
	w := filepath.Join(t.TempDir(), "sel.pcap")
	if _, e, code := readCmd(t, "read", "-q", httpPcap, "--kfl", "http and response.status == 500", "-w", w); code != 0 {
		t.Fatalf("exit %d %s", code, e)
	}
	// The three 500s are in tshark's streams 0, 1 and 6.
	if got, want := tsharkCount(t, w, "tcp"), tsharkCount(t, httpPcap, "tcp.stream == 0 or tcp.stream == 1 or tcp.stream == 6"); got != want {
		t.Errorf("wrote %d packets, the selected streams have %d", got, want)
	}
	if got := tsharkCount(t, w, "http.request.uri == \"/status/201?q=201&x=y\""); got != 1 {
		t.Errorf("the exchange before the match is missing (%d)", got)
	}
}
