package repo_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/repo"
	rt "github.com/kflcap/kflcap/repo/repotest"
)

func open(t *testing.T, path string) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), path, repo.Limits{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

func TestOpenConsistent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kfl_1_kflcap_1700000005.tar.gz")
	rt.New(1, "http and response.status == 500").Write(t, path)
	r := open(t, path)

	if r.Name != (repo.Name{Kind: "kfl", Index: 1, Prefix: "kflcap", Unix: 1700000005}) {
		t.Errorf("Name = %+v", r.Name)
	}
	var names []string
	for _, m := range r.Members {
		names = append(names, m.Name)
	}
	want := []string{"000000000001_tcp.pcap", "000000000002_tcp.pcap", "000000000003_udp.pcap", "1700000005.pcap", "content.json", "name_resolution_history.json"}
	if !slices.Equal(names, want) {
		t.Fatalf("members %q, want %q", names, want)
	}
	counts := map[string]int{"000000000001_tcp.pcap": 9, "000000000002_tcp.pcap": 9, "000000000003_udp.pcap": 4, "1700000005.pcap": 22}
	for _, m := range r.Members {
		n, isPcap := counts[m.Name]
		if isPcap != (m.Pcap != nil) {
			t.Errorf("%s: pcap summary %v", m.Name, m.Pcap)
			continue
		}
		if m.Size <= 0 || m.Type != "file" {
			t.Errorf("%s: type %s size %d", m.Name, m.Type, m.Size)
		}
		if !isPcap {
			continue
		}
		if m.Pcap.Packets != n || m.Pcap.Err != "" || m.Pcap.LinkType != "Ethernet" {
			t.Errorf("%s: %+v, want %d packets", m.Name, m.Pcap, n)
		}
	}
	merged := r.Merged()
	if merged == nil || !merged.Pcap.First.Equal(rt.Start) || merged.Pcap.Last.Sub(merged.Pcap.First) != 3*time.Millisecond+800*time.Microsecond {
		t.Errorf("merged %+v: want span %v + 3.8ms", merged, rt.Start)
	}
	if r.Content == nil || r.Content.KFLQuery != "http and response.status == 500" || len(r.Content.L4Streams) != 3 || r.Content.KflcapVersion != "v0.5.0-test" {
		t.Errorf("content %+v", r.Content)
	}
	if got := r.NameResolution["1700000000"]["10.96.0.20:80"]; got.FullAddress != "shop.default" || got.Namespace != "default" {
		t.Errorf("name resolution %+v", r.NameResolution)
	}
	if p := r.Check(); len(p) != 0 {
		t.Errorf("consistent repository has problems: %q", p)
	}
}

// TestCheck: each way of breaking a repository is reported, by a sentence
// naming what is wrong.
func TestCheck(t *testing.T) {
	stream2 := "000000000002_tcp.pcap"
	tests := []struct {
		name  string
		file  string // archive name, default kfl_0_kflcap_1700000005.tar.gz
		edit  func(r *rt.Repo)
		raw   func(ms []rt.Member) []rt.Member
		wants []string
	}{
		{name: "missing stream member", edit: func(r *rt.Repo) {
			r.Streams = slices.Delete(r.Streams, 1, 2)
		}, wants: []string{"l4_streams lists 000000000002_tcp.pcap, which the archive does not hold"}},
		{name: "unlisted stream member", edit: func(r *rt.Repo) {
			r.Content["l4_streams"] = []string{"000000000001_tcp.pcap", "000000000003_udp.pcap"}
		}, wants: []string{"member 000000000002_tcp.pcap is a stream pcap that l4_streams does not list", "merged pcap 1700000005.pcap holds 22 packets, the 2 stream pcaps 13 together"}},
		{name: "merged count wrong", edit: func(r *rt.Repo) {
			var all []rt.Packet
			for _, s := range r.Streams {
				all = append(all, s.Packets...)
			}
			slices.SortFunc(all, func(a, b rt.Packet) int { return a.Time.Compare(b.Time) })
			r.Merged = all[:len(all)-1]
		}, wants: []string{"merged pcap 1700000005.pcap holds 21 packets, the 3 stream pcaps 22 together"}},
		{name: "merged out of order", edit: func(r *rt.Repo) {
			for _, s := range r.Streams {
				r.Merged = append(r.Merged, s.Packets...)
			}
		}, wants: []string{"merged pcap 1700000005.pcap is not in time order"}},
		{name: "merged missing", edit: func(r *rt.Repo) {
			r.Content["pcap_file_name"] = "1700000099.pcap"
		}, wants: []string{"pcap_file_name 1700000099.pcap: the archive does not hold it"}},
		{name: "missing required field", edit: func(r *rt.Repo) {
			delete(r.Content, "kfl_query")
			delete(r.Content, "time")
		}, wants: []string{"content.json does not parse: missing field kfl_query, time"}},
		{name: "wrong field type", edit: func(r *rt.Repo) {
			r.Content["kfl_index"] = "zero"
		}, wants: []string{"content.json does not parse: field kfl_index"}},
		{name: "time not RFC 1123", edit: func(r *rt.Repo) {
			r.Content["time"] = "2023-11-14T22:13:25Z"
		}, wants: []string{`content.json: time "2023-11-14T22:13:25Z" is not in RFC 1123 GMT form`}},
		{name: "bad stream name", edit: func(r *rt.Repo) {
			r.Content["l4_streams"] = []string{"000000000001_tcp.pcap", stream2, "000000000003_udp.pcap", "7_sctp.pcap"}
		}, wants: []string{`l4_streams entry "7_sctp.pcap" is not a stream pcap name`, "l4_streams lists 7_sctp.pcap, which the archive does not hold"}},
		{name: "index differs from file name", file: "kfl_3_kflcap_1700000005.tar.gz", wants: []string{"file name says KFL job 3, content.json says kfl_index 0"}},
		{name: "trigger name is fine", file: "trigger_shell-in-pod_1700000005.tar.gz"},
		{name: "missing content.json", raw: func(ms []rt.Member) []rt.Member {
			return slices.DeleteFunc(ms, func(m rt.Member) bool { return m.Header.Name == "content.json" })
		}, wants: []string{"content.json is missing"}},
		{name: "content.json not JSON", raw: func(ms []rt.Member) []rt.Member {
			ms[4].Body = []byte(`{"kfl_index": 0,`)
			return ms
		}, wants: []string{"content.json does not parse: unexpected end of JSON input"}},
		{name: "name resolution not JSON", raw: func(ms []rt.Member) []rt.Member {
			ms[5].Body = []byte(`{"1700000000": ["10.0.0.1"]}`)
			return ms
		}, wants: []string{"name_resolution_history.json does not parse"}},
		{name: "name resolution missing", raw: func(ms []rt.Member) []rt.Member {
			return ms[:5]
		}, wants: []string{"name_resolution_history.json is missing"}},
		{name: "truncated stream pcap", raw: func(ms []rt.Member) []rt.Member {
			ms[1].Body = ms[1].Body[:len(ms[1].Body)-10]
			return ms
		}, wants: []string{"000000000002_tcp.pcap: unreadable pcap after 8 packets: truncated after 8 packets"}},
		{name: "stream is not a pcap", raw: func(ms []rt.Member) []rt.Member {
			ms[0].Body = []byte("GET / HTTP/1.1\r\n\r\n")
			return ms
		}, wants: []string{"000000000001_tcp.pcap: unreadable pcap after 0 packets"}},
		{name: "symlink and duplicate members", raw: func(ms []rt.Member) []rt.Member {
			return append(ms,
				rt.Member{Header: tar.Header{Name: "passwd", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}},
				rt.File("content.json", ms[4].Body),
				rt.File("../escape", []byte("x")))
		}, wants: []string{`member "passwd" is a symlink to "/etc/passwd"`, `member "content.json" appears more than once`, `member "../escape": ".." path component`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = "kfl_0_kflcap_1700000005.tar.gz"
			}
			path := filepath.Join(t.TempDir(), file)
			r := rt.New(0, "dns")
			if tc.edit != nil {
				tc.edit(r)
			}
			ms := r.Members(t)
			if tc.raw != nil {
				ms = tc.raw(ms)
			}
			rt.WriteArchive(t, path, ms)
			problems := open(t, path).Check()
			for _, w := range tc.wants {
				if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("no problem says %q; got %q", w, problems)
				}
			}
			if len(problems) != len(tc.wants) {
				t.Errorf("%d problems, want %d: %q", len(problems), len(tc.wants), problems)
			}
		})
	}
}

// TestOpenErrors: files that are not a .tar.gz fail with a message naming
// the file and what is wrong with it.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	good := rt.Archive(t, rt.New(0, "dns").Members(t))
	pcap := rt.Pcap(t, rt.New(0, "dns").Streams[0].Packets)
	corrupt := append([]byte{}, good...)
	corrupt[len(corrupt)-8] ^= 0xff // the gzip trailer's CRC-32
	files := map[string][]byte{
		"empty.tar.gz":     {},
		"plain.pcap":       pcap,
		"pcap.gz":          rt.Gzip(t, pcap),
		"truncated.tar.gz": good[:len(good)/2],
		"corrupt.tar.gz":   corrupt,
		"gzip-header-only": good[:5],
		"text.gz":          rt.Gzip(t, []byte("hello\n")),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ file, want string }{
		{"missing.tar.gz", "missing.tar.gz: no such file or directory"},
		{"", "is a directory"},
		{"empty.tar.gz", "empty.tar.gz: empty file, not a gzip-compressed repository"},
		{"plain.pcap", "plain.pcap: not a gzip file"},
		{"pcap.gz", "pcap.gz: not a tar archive inside the gzip stream"},
		{"truncated.tar.gz", "truncated archive"},
		{"corrupt.tar.gz", "corrupt.tar.gz: after member \"name_resolution_history.json\": corrupt gzip data: gzip: invalid checksum"},
		{"gzip-header-only", "gzip-header-only: not a gzip file"},
		{"text.gz", "text.gz: not a tar archive inside the gzip stream"},
	}
	for _, tc := range tests {
		path := filepath.Join(dir, tc.file)
		_, err := repo.Open(context.Background(), path, repo.Limits{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s) = %v, want an error containing %q", tc.file, err, tc.want)
		}
	}
}

// TestOpenLimits: a member bigger than the limit stops Open, whatever its
// header says, and so does the total.
func TestOpenLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.tar.gz")
	rt.WriteArchive(t, path, []rt.Member{rt.File("a.bin", make([]byte, 3000)), rt.File("b.bin", make([]byte, 3000))})
	for _, tc := range []struct {
		lim  repo.Limits
		want string
	}{
		{repo.Limits{MaxMemberBytes: 2999}, `member "a.bin": size 3000 bytes exceeds the 2999-byte member limit`},
		{repo.Limits{MaxTotalBytes: 5999}, `member "b.bin": archive content exceeds 5999 bytes, the total limit`},
		{repo.Limits{MaxMembers: 1}, `member "b.bin": archive has more than 1 members`},
	} {
		_, err := repo.Open(context.Background(), path, tc.lim)
		var rej *repo.RejectError
		if !errors.As(err, &rej) || err.Error() != tc.want {
			t.Errorf("Open with %+v = %v, want %q", tc.lim, err, tc.want)
		}
	}
	if _, err := repo.Open(context.Background(), path, repo.Limits{MaxMemberBytes: 3000, MaxTotalBytes: 6000}); err != nil {
		t.Errorf("at the limits: %v", err)
	}

	// Zeros after the end of the tar archive are read (the gzip checksum
	// comes after them), and counted.
	tarEnd := make([]byte, 1024)
	os.WriteFile(path, rt.Gzip(t, append(tarEnd, make([]byte, 8<<20)...)), 0o644)
	_, err := repo.Open(context.Background(), path, repo.Limits{MaxTotalBytes: 1 << 20})
	if want := "archive decompresses to more than 1114112 bytes (total limit plus headers)"; err == nil || err.Error() != want {
		t.Errorf("trailing bomb: %v, want %q", err, want)
	}
}

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want repo.Name
		ok   bool
	}{
		{"kfl_0_kubeshark_1678808288.tar.gz", repo.Name{Kind: "kfl", Index: 0, Prefix: "kubeshark", Unix: 1678808288}, true},
		{"kfl_12_my_prefix_1678808288.tar.gz", repo.Name{Kind: "kfl", Index: 12, Prefix: "my_prefix", Unix: 1678808288}, true},
		{"trigger_shell-in-pod_1700000000.tar.gz", repo.Name{Kind: "trigger", Slug: "shell-in-pod", Unix: 1700000000}, true},
		{"kfl_x_kflcap_1.tar.gz", repo.Name{}, false},
		{"trigger_1.tar.gz", repo.Name{}, false},
		{"repo.tar.gz", repo.Name{}, false},
	} {
		got, ok := repo.ParseName(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseName(%q) = %+v, %v", tc.in, got, ok)
		}
		if ok && got.String() != tc.in {
			t.Errorf("ParseName(%q).String() = %q: the builder and the parser disagree", tc.in, got.String())
		}
	}
}

func TestNameString(t *testing.T) {
	for _, tc := range []struct {
		n    repo.Name
		want string
	}{
		{repo.Name{Kind: repo.KindKFL, Index: 1, Prefix: "kflcap", Unix: 1678819560}, "kfl_1_kflcap_1678819560.tar.gz"},
		{repo.Name{Kind: repo.KindTrigger, Slug: "shell-in-pod", Unix: 1700000000}, "trigger_shell-in-pod_1700000000.tar.gz"},
		{repo.Name{Unix: 1}, ""},
	} {
		if got := tc.n.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.n, got, tc.want)
		}
	}
}
