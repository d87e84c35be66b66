package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/repo"
	rt "github.com/kflcap/kflcap/repo/repotest"
)

func repoCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), append([]string{"repo"}, args...), &o, &e)
	return o.String(), e.String(), code
}

// repoWrite writes a consistent repository of KFL job 0 (two HTTP
// connections, one DNS exchange) after edit, if any, changed it.
func repoWrite(t *testing.T, edit func(*rt.Repo)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kfl_0_kflcap_1700000005.tar.gz")
	r := rt.New(0, "http and response.status == 500")
	if edit != nil {
		edit(r)
	}
	r.Write(t, path)
	return path
}

func TestRepoLs(t *testing.T) {
	path := repoWrite(t, nil)
	out, errOut, code := repoCmd(t, "ls", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^000000000001_tcp\.pcap +793 +9 packets +2023-11-14T22:13:20\.000000Z +2023-11-14T22:13:20\.000800Z +800µs$`),
		regexp.MustCompile(`^000000000002_tcp\.pcap +\d+ +9 packets +2023-11-14T22:13:20\.003000Z +2023-11-14T22:13:20\.003800Z +800µs$`),
		regexp.MustCompile(`^000000000003_udp\.pcap +\d+ +4 packets +2023-11-14T22:13:20\.001000Z +2023-11-14T22:13:20\.002300Z +1\.3ms$`),
		regexp.MustCompile(`^1700000005\.pcap +\d+ +22 packets +2023-11-14T22:13:20\.000000Z +2023-11-14T22:13:20\.003800Z +3\.8ms$`),
		regexp.MustCompile(`^content\.json +\d+$`),
		regexp.MustCompile(`^name_resolution_history\.json +\d+$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %s", i, lines[i], re)
		}
	}

	// Flags after the positional arguments, as everywhere.
	out, _, code = repoCmd(t, "ls", path, "--json")
	if code != 0 {
		t.Fatalf("ls --json: exit %d", code)
	}
	var packets []int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m struct {
			Name string
			Type string
			Size int64
			Pcap *struct {
				Packets  int
				LinkType string `json:"link_type"`
				First    time.Time
			}
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		if m.Type != "file" || m.Size <= 0 {
			t.Errorf("member %+v", m)
		}
		if m.Pcap != nil {
			packets = append(packets, m.Pcap.Packets)
			if m.Pcap.LinkType != "Ethernet" || m.Pcap.First.Before(rt.Start) {
				t.Errorf("%s: %+v", m.Name, m.Pcap)
			}
		}
	}
	if !slices.Equal(packets, []int{9, 9, 4, 22}) {
		t.Errorf("packet counts %v", packets)
	}
}

func TestRepoInspect(t *testing.T) {
	path := repoWrite(t, nil)
	out, errOut, code := repoCmd(t, "inspect", path)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	for _, kv := range [][2]string{
		{"repository", "kfl_0_kflcap_1700000005.tar.gz (KFL job 0, prefix kflcap, sealed 2023-11-14T22:13:25Z)"},
		{"kfl_index", "0"},
		{"kfl_query", "http and response.status == 500"},
		{"time", "Tue, 14 Nov 2023 22:13:25 GMT"},
		{"l4_streams", "3 (2 tcp, 1 udp)"},
		{"pcap_file_name", "1700000005.pcap: 22 packets, 2023-11-14T22:13:20.000000Z to 2023-11-14T22:13:20.003800Z"},
		{"node.cluster", "my-cluster"},
		{"node.name", "node-1"},
		{"capture.packets_dropped_kernel", "0"},
		{"capture.packets_seen", "220"},
		{"kflcap_version", "v0.5.0-test"},
		{"seal_reason", "maxDuration"},
	} {
		repoHasLine(t, out, kv[0], kv[1])
	}
	if !strings.HasSuffix(out, "\n\nconsistent: 3 stream pcaps, 22 packets in the merged pcap, as in the stream pcaps together\n") {
		t.Errorf("no consistency verdict:\n%s", out)
	}
	if strings.Contains(out, "warning") || strings.Contains(out, "trigger") {
		t.Errorf("unexpected warning or trigger:\n%s", out)
	}

	// Drops and a trigger are shown when content.json has them.
	path = repoWrite(t, func(r *rt.Repo) {
		r.Content["capture"].(map[string]any)["packets_dropped_kernel"] = 17
		r.Content["trigger"] = map[string]any{"rule": "Terminal shell in container", "source": "falco", "output_fields": map[string]any{"k8s.pod.name": "shop-7d9"}}
	})
	out, _, code = repoCmd(t, "inspect", path)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	repoHasLine(t, out, "trigger.output_fields.k8s.pod.name", "shop-7d9")
	repoHasLine(t, out, "trigger.rule", "Terminal shell in container")
	if want := "\nwarning: packets were dropped during capture (capture.packets_dropped_kernel=17): streams may be incomplete\n"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// repoHasLine checks that out has a line "key   value" (columns aligned by
// any number of spaces).
func repoHasLine(t *testing.T, out, key, value string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` {2,}` + regexp.QuoteMeta(value) + `$`).MatchString(out) {
		t.Errorf("no line %q  %q in:\n%s", key, value, out)
	}
}

// TestRepoInspectInconsistent: a stream listed but missing and a merged
// pcap with a packet too few are reported, and inspect exits 1.
func TestRepoInspectInconsistent(t *testing.T) {
	path := repoWrite(t, func(r *rt.Repo) {
		var all []rt.Packet
		for _, s := range r.Streams {
			all = append(all, s.Packets...)
		}
		slices.SortFunc(all, func(a, b rt.Packet) int { return a.Time.Compare(b.Time) })
		r.Merged = all[1:]
		r.Streams = r.Streams[:2] // 000000000003_udp.pcap is listed but left out
	})
	out, errOut, code := repoCmd(t, "inspect", path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut, "kfl_0_kflcap_1700000005.tar.gz is inconsistent: 1 problem") {
		t.Errorf("stderr %q", errOut)
	}
	if !strings.Contains(out, "\n1 problem:\n  - l4_streams lists 000000000003_udp.pcap, which the archive does not hold\n") {
		t.Errorf("output:\n%s", out)
	}

	// With every stream there, the merged count is compared; --json
	// prints content.json and the problems.
	path = repoWrite(t, func(r *rt.Repo) {
		var all []rt.Packet
		for _, s := range r.Streams {
			all = append(all, s.Packets...)
		}
		slices.SortFunc(all, func(a, b rt.Packet) int { return a.Time.Compare(b.Time) })
		r.Merged = all[1:]
	})
	out, errOut, code = repoCmd(t, "inspect", "--json", path)
	if code != 1 || !strings.Contains(errOut, "inconsistent: 1 problem") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	var got struct {
		KFLQuery  string   `json:"kfl_query"`
		L4Streams []string `json:"l4_streams"`
		Node      struct{ Name string }
		Problems  []string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out)
	}
	if got.KFLQuery != "http and response.status == 500" || len(got.L4Streams) != 3 || got.Node.Name != "node-1" {
		t.Errorf("content fields %+v", got)
	}
	if want := []string{"merged pcap 1700000005.pcap holds 21 packets, the 3 stream pcaps 22 together"}; !slices.Equal(got.Problems, want) {
		t.Errorf("problems %q, want %q", got.Problems, want)
	}
}

func TestRepoInspectJSONConsistent(t *testing.T) {
	out, _, code := repoCmd(t, "inspect", repoWrite(t, nil), "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if string(m["problems"]) != "[]" || string(m["kfl_index"]) != "0" || string(m["pcap_file_name"]) != `"1700000005.pcap"` {
		t.Errorf("output %s", out)
	}
}

// TestRepoInspectAgentRepository: what the agent's writer seals is
// consistent by inspect's rules, including a repository that mixes link
// types (written as LINUX_SLL2).
func TestRepoInspectAgentRepository(t *testing.T) {
	dir := t.TempDir()
	w, err := repo.NewWriter(dir, 262144)
	if err != nil {
		t.Fatal(err)
	}
	fixture := rt.New(0, "dns")
	for i, s := range fixture.Streams {
		w.AddStream(uint64(i+1), s.Name)
		for j, p := range s.Packets {
			link, data := layers.LinkTypeEthernet, p.Data
			if j%2 == 1 {
				link, data = layers.LinkTypeRaw, p.Data[14:] // a tunnel's side
			}
			dir := packet.Ingress
			if j%2 == 0 {
				dir = packet.Egress
			}
			pkt := packet.Packet{Time: p.Time, Ifindex: 2 + j%2, Dir: dir, LinkType: link, WireLen: len(data), Data: data}
			if err := w.Append(uint64(i+1), &pkt); err != nil {
				t.Fatal(err)
			}
		}
	}
	sealed, err := w.Seal(dir, repo.SealInfo{
		Name:    "kfl_0_kflcap_1700000005.tar.gz",
		Time:    time.Unix(1700000005, 0),
		Content: repo.Content{KFLIndex: 0, KFLQuery: "dns"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := repoCmd(t, "inspect", sealed)
	if code != 0 || !strings.Contains(out, "consistent: 3 stream pcaps, 22 packets") {
		t.Errorf("exit %d %s:\n%s", code, errOut, out)
	}
	out, _, _ = repoCmd(t, "ls", "--json", sealed)
	if strings.Count(out, `"link_type":"Linux SLL2"`) != 4 {
		t.Errorf("want 4 LINUX_SLL2 pcaps:\n%s", out)
	}
}

func TestRepoExtract(t *testing.T) {
	path := repoWrite(t, nil)
	dir := filepath.Join(t.TempDir(), "a", "b")
	out, errOut, code := repoCmd(t, "extract", path, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`^extracted 6 files \(\d+ bytes\) into .*/a/b\n$`).MatchString(out) {
		t.Errorf("output %q", out)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 6 {
		t.Errorf("%d files in %s", len(ents), dir)
	}
	// The extracted merged pcap is a pcap that read understands.
	if o, e, code := readCmd(t, "read", filepath.Join(dir, "1700000005.pcap")); code != 0 || !strings.Contains(o, "GET /status/500") {
		t.Errorf("read of the extracted pcap: exit %d %s\n%s", code, e, o)
	}
}

// TestRepoExtractHostile: each hostile archive is refused with exit 1 and
// a message naming the member and the reason; nothing is written inside or
// outside DIR, and no partial file is left.
func TestRepoExtractHostile(t *testing.T) {
	good := rt.File("000000000001_tcp.pcap", rt.Pcap(t, rt.New(0, "dns").Streams[0].Packets))
	tests := []struct {
		name    string
		members []rt.Member
		raw     func(t *testing.T) []byte
		flags   []string
		planted bool // DIR exists and holds content.json -> ../outside/target
		want    string
	}{
		{name: "dot-dot", members: []rt.Member{good, rt.File("../evil", []byte("x"))}, want: `member "../evil": ".." path component`},
		{name: "absolute", members: []rt.Member{good, rt.File("/abs/path", []byte("x"))}, want: `member "/abs/path": absolute path`},
		{name: "dot-dot inside", members: []rt.Member{good, rt.File("a/../../x", []byte("x"))}, want: `member "a/../../x": ".." path component`},
		{name: "symlink then a file through it", members: []rt.Member{good,
			{Header: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../outside"}},
			rt.File("link/pwned", []byte("x"))}, want: `member "link": symlink to "../outside": links are not extracted`},
		{name: "hardlink", members: []rt.Member{good, {Header: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside/target"}}}, want: `member "h": hardlink to "../outside/target"`},
		{name: "header lies about size", raw: func(t *testing.T) []byte {
			b := rt.Archive(t, []rt.Member{good, rt.File("liar", bytes.Repeat([]byte("A"), 5000))})
			return repoLieAboutSize(t, b, "liar", 100)
		}, want: `after member "liar": corrupt tar data`},
		{name: "gzip bomb", members: []rt.Member{good, rt.File("bomb", make([]byte, 32<<20))}, flags: []string{"--max-total-bytes", "1Mi"},
			want: `member "bomb": archive content exceeds 1048576 bytes, the total limit`},
		{name: "member over the cap", members: []rt.Member{good, rt.File("big", make([]byte, 3<<20))}, flags: []string{"--max-member-bytes=2Mi"},
			want: `member "big": size 3145728 bytes exceeds the 2097152-byte member limit`},
		{name: "duplicate", members: []rt.Member{good, rt.File("000000000001_tcp.pcap", []byte("x"))}, want: `member "000000000001_tcp.pcap": duplicate name`},
		{name: "pre-existing symlink in DIR", members: []rt.Member{good, rt.File("content.json", []byte("pwned"))}, planted: true,
			want: `member "content.json": content.json already exists in`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			os.Mkdir(filepath.Join(base, "outside"), 0o755)
			os.WriteFile(filepath.Join(base, "outside", "target"), []byte("precious"), 0o644)
			path := filepath.Join(base, "hostile.tar.gz")
			var b []byte
			if tc.raw != nil {
				b = tc.raw(t)
			} else {
				b = rt.Archive(t, tc.members)
			}
			os.WriteFile(path, b, 0o644)
			dir := filepath.Join(base, "dir")
			if tc.planted {
				os.Mkdir(dir, 0o755)
				os.Symlink("../outside/target", filepath.Join(dir, "content.json"))
			}
			before := repoTree(t, base)
			args := append([]string{"extract", path, dir}, tc.flags...)
			out, errOut, code := repoCmd(t, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1; stdout %q", code, out)
			}
			if !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "nothing was extracted") {
				t.Errorf("stderr %q, want %q", errOut, tc.want)
			}
			if after := repoTree(t, base); after != before {
				t.Errorf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// repoLieAboutSize rewrites the size in member's ustar header to size, with
// a valid checksum, so that only the size lies.
func repoLieAboutSize(t *testing.T, gz []byte, member string, size int64) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+512 <= len(raw); off += 512 {
		h := raw[off : off+512]
		if string(bytes.TrimRight(h[:100], "\x00")) != member {
			continue
		}
		copy(h[124:136], fmt.Sprintf("%011o\x00", size))
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
		return rt.Gzip(t, raw)
	}
	t.Fatalf("no header for %q", member)
	return nil
}

// repoTree describes every path under root, its type and content, without
// following symlinks.
func repoTree(t *testing.T, root string) string {
	t.Helper()
	var sb strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			sb.WriteString(rel + " -> " + target + "\n")
		case d.IsDir():
			sb.WriteString(rel + "/\n")
		default:
			b, _ := os.ReadFile(p)
			sb.WriteString(rel + " " + string(b[:min(len(b), 32)]) + "\n")
		}
		return nil
	})
	return sb.String()
}

func TestRepoErrors(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "capture.pcap")
	os.WriteFile(pcap, rt.Pcap(t, rt.New(0, "dns").Streams[0].Packets), 0o644)
	gzPcap := filepath.Join(dir, "capture.pcap.gz")
	os.WriteFile(gzPcap, rt.Gzip(t, rt.Pcap(t, rt.New(0, "dns").Streams[0].Packets)), 0o644)
	good := repoWrite(t, nil)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ls", filepath.Join(dir, "missing.tar.gz")}, 1, "missing.tar.gz: no such file or directory"},
		{[]string{"inspect", pcap}, 1, "capture.pcap: not a gzip file (a repository is a .tar.gz)"},
		{[]string{"ls", gzPcap}, 1, "capture.pcap.gz: not a tar archive inside the gzip stream"},
		{[]string{"extract", gzPcap, filepath.Join(dir, "out")}, 1, "capture.pcap.gz: not a tar archive inside the gzip stream"},
		{[]string{"ls", dir}, 1, "is a directory"},
		{nil, 2, "missing subcommand"},
		{[]string{"list", good}, 2, `unknown repo subcommand "list"`},
		{[]string{"ls"}, 2, "usage: kflcap repo ls REPO.tar.gz"},
		{[]string{"inspect", good, good}, 2, "usage: kflcap repo inspect REPO.tar.gz"},
		{[]string{"extract", good}, 2, "usage: kflcap repo extract REPO.tar.gz DIR"},
		{[]string{"extract", good, dir, "--json"}, 2, "--json applies to ls and inspect"},
		{[]string{"ls", good, "--max-member-bytes", "0"}, 2, "must be positive"},
		{[]string{"ls", good, "--max-total-bytes", "lots"}, 2, `"lots" is not a size`},
		{[]string{"ls", good, "--bogus"}, 2, "flag provided but not defined: -bogus"},
	} {
		_, errOut, code := repoCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("repo %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Errorf("a failed extract left its directory")
	}
	out, _, code := repoCmd(t, "--help")
	if code != 0 || !strings.Contains(out, "kflcap repo extract --max-member-bytes 256Mi") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

// TestRepoLsHostileNames: names from the archive cannot drive the terminal
// or forge lines; links are shown with their targets.
func TestRepoLsHostileNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "evil.tar.gz")
	rt.WriteArchive(t, path, []rt.Member{
		rt.File("\x1b[2Jclear", nil),
		rt.File("two\nlines", nil),
		{Header: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
	})
	out, _, code := repoCmd(t, "ls", path)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := "\"\\x1b[2Jclear\"  0\n\"two\\nlines\"    0\nlink            0  symlink -> /etc\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}
