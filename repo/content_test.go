package repo_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/repo"
	rt "github.com/kflcap/kflcap/repo/repotest"
)

var (
	opened  = time.Date(2023, 3, 14, 18, 41, 2, 123456789, time.UTC)
	started = time.Date(2023, 3, 14, 18, 45, 0, 500000000, time.UTC)
)

// fullContent has every field set, as a triggered capture's seal does.
func fullContent() repo.Content {
	return repo.Content{
		Capture:       map[string]uint64{"packets_seen": 220, "packets_dropped_kernel": 0},
		KFLIndex:      -1,
		KFLQuery:      "dns",
		KflcapVersion: "v0.5.0",
		L4Streams:     []string{"000000007221_udp.pcap", "000000007222_udp.pcap"},
		Node:          &repo.Node{Name: "node-1", IP: "192.168.49.2", Cluster: "my-cluster"},
		Opened:        opened,
		PcapFileName:  "1678819573.pcap",
		SealReason:    "shutdown",
		Time:          "Tue, 14 Mar 2023 18:46:13 GMT",
		Trigger: &repo.Trigger{
			Alert:    json.RawMessage(`{"rule":"Redirect STDOUT/STDIN","priority":"Notice","output":"a <b> & c","output_fields":{"k8s.pod.name":"web-1"}}`),
			Duration: "1m0s", From: started.Add(-10 * time.Second), ID: "7a102f3dc515", KFL: "dns",
			Labels: map[string]string{"team": "sec"}, Lookback: "10s", Name: "redirect", Rule: "falco-net", Started: started,
		},
	}
}

// TestContentBytes: content.json is byte for byte what the writer wrote
// when it built content.json as a map (sorted keys, times in RFC 3339 with
// nanoseconds, durations as Go strings), so that old and new repositories
// compare equal.
func TestContentBytes(t *testing.T) {
	asMap := map[string]any{
		"capture":        map[string]uint64{"packets_seen": 220, "packets_dropped_kernel": 0},
		"kfl_index":      -1,
		"kfl_query":      "dns",
		"kflcap_version": "v0.5.0",
		"l4_streams":     []string{"000000007221_udp.pcap", "000000007222_udp.pcap"},
		"node":           map[string]string{"name": "node-1", "ip": "192.168.49.2", "cluster": "my-cluster"},
		"opened":         opened.Format(time.RFC3339Nano),
		"pcap_file_name": "1678819573.pcap",
		"seal_reason":    "shutdown",
		"time":           "Tue, 14 Mar 2023 18:46:13 GMT",
		"trigger": map[string]any{
			"alert":    fullContent().Trigger.Alert,
			"duration": "1m0s", "from": started.Add(-10 * time.Second).Format(time.RFC3339Nano), "id": "7a102f3dc515", "kfl": "dns",
			"labels": map[string]string{"team": "sec"}, "lookback": "10s", "name": "redirect", "rule": "falco-net",
			"started": started.Format(time.RFC3339Nano),
		},
	}
	want, err := json.MarshalIndent(asMap, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(fullContent(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("content.json:\n%s\nwant (the map the writer used to write):\n%s", got, want)
	}

	// A KFL job's: no trigger, no alert; an API capture's: no alert, an
	// empty rule and labels printed as null, as before.
	c := fullContent()
	c.Trigger = nil
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), "trigger") {
		t.Errorf("a KFL job's content.json has a trigger: %s", b)
	}
	c = fullContent()
	c.Trigger.Alert, c.Trigger.Rule, c.Trigger.Labels = nil, "", nil
	b, _ = json.Marshal(c.Trigger)
	if strings.Contains(string(b), "alert") || !strings.Contains(string(b), `"labels":null`) || !strings.Contains(string(b), `"rule":""`) {
		t.Errorf("an API capture's trigger: %s", b)
	}
	// Without counters there is no "capture"; with an empty set there is.
	c = repo.Content{}
	if b, _ := json.Marshal(c); string(b) != `{"kfl_index":0,"kfl_query":"","l4_streams":null,"pcap_file_name":"","time":""}` {
		t.Errorf("zero content: %s", b)
	}
	c.Capture = map[string]uint64{}
	if b, _ := json.Marshal(c); !strings.HasPrefix(string(b), `{"capture":{},`) {
		t.Errorf("empty counters: %s", b)
	}
}

// TestContentUnknownFields: fields from a newer writer survive a read and
// a write, in name order among the known ones.
func TestContentUnknownFields(t *testing.T) {
	in := `{"kfl_index":2,"kfl_query":"dns","l4_streams":[],"pcap_file_name":"1.pcap","time":"Tue, 14 Mar 2023 18:46:13 GMT",` +
		`"zz_future":{"a":[1,2.50,"x"]},"b_future":true,"node":{"name":"n","ip":"10.0.0.1","cluster":"c","zone":"z1"}}`
	var c repo.Content
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.KFLIndex != 2 || c.Node == nil || c.Node.Name != "n" || len(c.Extra) != 2 || string(c.Extra["zz_future"]) != `{"a":[1,2.50,"x"]}` {
		t.Fatalf("decoded %+v", c)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b_future":true,"kfl_index":2,"kfl_query":"dns","l4_streams":[],"node":{"cluster":"c","ip":"10.0.0.1","name":"n"},` +
		`"pcap_file_name":"1.pcap","time":"Tue, 14 Mar 2023 18:46:13 GMT","zz_future":{"a":[1,2.50,"x"]}}`
	if string(out) != want {
		t.Errorf("re-encoded\n%s\nwant\n%s", out, want)
	}
	if err := json.Unmarshal([]byte(`{"opened":"yesterday"}`), &c); err == nil {
		t.Error("a malformed opened time decoded")
	}
}

// TestSealOpenContent: what the Writer seals, Open reads back field for
// field, and content.json is the first member (the outbox reads only it).
func TestSealOpenContent(t *testing.T) {
	dir := t.TempDir()
	w, err := repo.NewWriter(dir, 65535)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range rt.New(0, "dns").Streams[:2] {
		w.AddStream(uint64(i), s.Name)
		for _, p := range s.Packets {
			pkt := packet.Packet{Time: p.Time, LinkType: 1, WireLen: len(p.Data), Data: p.Data}
			if err := w.Append(uint64(i), &pkt); err != nil {
				t.Fatal(err)
			}
		}
	}
	in := fullContent()
	in.L4Streams, in.PcapFileName, in.Time = nil, "", "" // Seal's to fill
	in.Extra = map[string]json.RawMessage{"future": json.RawMessage(`[1]`)}
	sealedAt := time.Unix(1700000005, 0)
	path, err := w.Seal(dir, repo.SealInfo{Name: repo.Name{Kind: repo.KindTrigger, Slug: "redirect", Unix: sealedAt.Unix()}.String(), Time: sealedAt, Content: in})
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), path, repo.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Check(); len(p) > 0 {
		t.Errorf("problems: %q", p)
	}
	want := in
	want.L4Streams = []string{"000000000001_tcp.pcap", "000000000002_tcp.pcap"}
	want.PcapFileName = "1700000005.pcap"
	want.Time = "Tue, 14 Nov 2023 22:13:25 GMT"
	// Raw members (the alert, unknown fields) come back indented as in
	// the file: compare encodings, which compact them.
	gotJSON, _ := json.Marshal(r.Content)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) || !r.Content.Opened.Equal(opened) || r.Content.Trigger.Started != started {
		t.Errorf("read back\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	if r.Members[0].Name != repo.ContentFile {
		t.Errorf("first member %s, want %s", r.Members[0].Name, repo.ContentFile)
	}
	c, err := repo.ReadContent(context.Background(), path, repo.Limits{})
	if b, _ := json.Marshal(c); err != nil || string(b) != string(wantJSON) {
		t.Errorf("ReadContent = %s, %v", b, err)
	}
	if got := filepath.Base(path); got != "trigger_redirect_1700000005.tar.gz" {
		t.Errorf("archive %s", got)
	}
}

// TestReadContent: ReadContent finds content.json wherever it is, stops
// reading there, and fails when it is missing or malformed.
func TestReadContent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r := rt.New(3, "dns")
	ms := r.Members(t)
	path := filepath.Join(dir, "kfl_3_kflcap_1700000005.tar.gz")
	// content.json after the pcaps (as tar -c writes it), and a damaged
	// stream behind it that ReadContent never reaches.
	rt.WriteArchive(t, path, append(ms, rt.File("zz.bin", make([]byte, 1<<20))))
	c, err := repo.ReadContent(ctx, path, repo.Limits{})
	if err != nil || c.KFLIndex != 3 || c.KFLQuery != "dns" || c.Node == nil || c.Node.Cluster != "my-cluster" || c.Capture["packets_seen"] != 220 {
		t.Fatalf("ReadContent = %+v, %v", c, err)
	}
	// It stops at content.json: a limit that the member after it breaks
	// is not reached.
	lim := repo.Limits{MaxTotalBytes: 1 << 19}
	if _, err := repo.Open(ctx, path, lim); err == nil {
		t.Fatal("Open within the limit: the test proves nothing")
	}
	if _, err := repo.ReadContent(ctx, path, lim); err != nil {
		t.Errorf("ReadContent read past content.json: %v", err)
	}
	for name, members := range map[string][]rt.Member{
		"missing":   ms[:4],
		"malformed": append(ms[:4:4], rt.File("content.json", []byte(`{"kfl_index":"one"}`))),
	} {
		p := filepath.Join(dir, name+".tar.gz")
		rt.WriteArchive(t, p, members)
		if _, err := repo.ReadContent(ctx, p, repo.Limits{}); err == nil {
			t.Errorf("%s content.json: no error", name)
		}
	}
}
