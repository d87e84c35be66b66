package trigger

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "alerts", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeFixture(t testing.TB, name string) *Alert {
	t.Helper()
	a, err := DecodeAlert(readFixture(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return a
}

func TestDecodeFalcoDocs(t *testing.T) {
	a := decodeFixture(t, "falco_docs_write_below_binary_dir.json")
	if a.Format != FormatFalco || a.Rule != "Write below binary dir" || a.Priority != "Error" {
		t.Errorf("format/rule/priority = %q %q %q", a.Format, a.Rule, a.Priority)
	}
	want := time.Date(2017, 10, 9, 23, 31, 56, 746609046, time.UTC)
	if !a.Time.Equal(want) {
		t.Errorf("time = %v, want %v", a.Time, want)
	}
	// A 19-digit number must not go through float64.
	if got := a.OutputFields["evt.time"]; got != "1507591916746609046" {
		t.Errorf("evt.time = %q", got)
	}
	if a.OutputFields["fd.name"] != "/bin/hack" || a.OutputFields["user.name"] != "root" {
		t.Errorf("output_fields = %v", a.OutputFields)
	}
	if !strings.Contains(a.Output, "File below a known binary directory") {
		t.Errorf("output = %q", a.Output)
	}
	if string(a.Raw) != string(readFixture(t, "falco_docs_write_below_binary_dir.json")) {
		t.Error("raw is not the document as received")
	}
}

func TestDecodeFalcoRedirect(t *testing.T) {
	a := decodeFixture(t, "falco_redirect_stdout_network.json")
	if a.Format != FormatFalco || a.Source != "syscall" || a.Hostname != "worker-2" || a.Priority != "Notice" {
		t.Errorf("got %+v", a)
	}
	for k, want := range map[string]string{
		"fd.rport": "4444", "fd.lport": "41822", "fd.sport": "4444", "fd.cport": "41822",
		"fd.rip": "203.0.113.50", "fd.sip": "203.0.113.50", "fd.cip": "10.244.1.17", "fd.lip": "10.244.1.17",
		"user.loginuid": "-1", "proc.tty": "0", "k8s.pod.name": "shop-frontend-7d9c5b6f4-x2x8q",
		"k8s.ns.name": "shop", "container.id": "4b1c0e7d9a2f", "proc.name": "bash",
	} {
		if got := a.OutputFields[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := a.OutputFields["proc.aname[4]"]; ok {
		t.Error("a null field is kept")
	}
	if len(a.Tags) != 6 || a.Tags[0] != "T1059" {
		t.Errorf("tags = %v", a.Tags)
	}
}

func TestDecodeFalcosidekick(t *testing.T) {
	a := decodeFixture(t, "falcosidekick_redirect_stdout_network.json")
	if a.Format != FormatFalcosidekick || a.UUID != "5b2b6c1e-9f3a-4d7e-8a51-2f0c7a6e1d44" {
		t.Errorf("format %q uuid %q", a.Format, a.UUID)
	}
	if a.Priority != "Notice" { // sent in lower case
		t.Errorf("priority = %q", a.Priority)
	}
	if a.OutputFields["fd.rport"] != "4444" || a.OutputFields["user.loginuid"] != "-1" {
		t.Errorf("ports as strings: %v", a.OutputFields)
	}
}

func TestDecodeTalon(t *testing.T) {
	a := decodeFixture(t, "talon_webhook_notifier.json")
	if a.Format != FormatTalon || a.Rule != "Isolate reverse shells" || a.UUID != "c1f2e6c8-3f0d-4b7a-9e84-6a5b0e2d7f10" {
		t.Errorf("got %+v", a)
	}
	if a.Field("k8s.pod.name") != "shop-frontend-7d9c5b6f4-x2x8q" || a.Field("k8s.ns.name") != "shop" {
		t.Errorf("pod/ns from objects: %v", a.OutputFields)
	}
	if a.Field("talon.action") != "Label the pod" || a.Field("talon.actionner") != "kubernetes:label" {
		t.Errorf("talon fields: %v", a.OutputFields)
	}
	if !strings.HasPrefix(a.Output, "14:07:41.523873461: Notice Redirect") {
		t.Errorf("output = %q", a.Output)
	}

	old := decodeFixture(t, "talon_webhook_legacy.json")
	if old.Format != FormatTalon || old.Rule != "kubernetes:terminate" || old.Field("k8s.ns.name") != "shop" || old.Field("k8s.pod.name") == "" {
		t.Errorf("legacy talon: %+v", old)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{``, "not valid JSON"},
		{`[1,2]`, "array, not an object"},
		{`"x"`, "string, not an object"},
		{`null`, "null, not an object"},
		{`{"rule":"r"} {}`, "data after"},
		{`{"priority":"Warning"}`, "rule: missing"},
		{`{"rule":7}`, "rule: want a string, got a number"},
		{`{"rule":"r","priority":"Severe"}`, `priority: "Severe" is not one of`},
		{`{"rule":"r","time":"yesterday"}`, `time: "yesterday" is not an RFC 3339 time`},
		{`{"rule":"r","tags":"network"}`, "tags: want an array of strings, got a string"},
		{`{"rule":"r","tags":["a",1]}`, "tags[1]: want a string"},
		{`{"rule":"r","output_fields":[1]}`, "output_fields: want an object, got an array"},
		{`{"rule":"r","output_fields":{"":"x"}}`, "output_fields: a field name is empty"},
		{`{"action":"a","objects":"pod"}`, "objects: not a JSON object"},
		{`{"status":"success","objects":{}}`, "rule: missing or empty, and no action"},
	} {
		_, err := DecodeAlert([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeAlert(%s) = %v, want an error with %q", tc.doc, err, tc.want)
		}
	}
}

func TestDecodeLimits(t *testing.T) {
	big := `{"rule":"r","output":"` + strings.Repeat("x", MaxOutputBytes+1) + `"}`
	if _, err := DecodeAlert([]byte(big)); err == nil || !strings.Contains(err.Error(), "output:") {
		t.Errorf("oversized output: %v", err)
	}
	fields := map[string]int{}
	for i := 0; i <= MaxOutputFields; i++ {
		fields["f"+strconv.Itoa(i)] = i
	}
	doc, _ := json.Marshal(map[string]any{"rule": "r", "output_fields": fields})
	if _, err := DecodeAlert(doc); err == nil || !strings.Contains(err.Error(), "output_fields:") {
		t.Errorf("too many fields: %v", err)
	}
	huge := make([]byte, MaxAlertBytes+1)
	if _, err := DecodeAlert(huge); err == nil || !strings.Contains(err.Error(), "bytes, more than") {
		t.Errorf("oversized document: %v", err)
	}
	val := `{"rule":"r","output_fields":{"proc.cmdline":"` + strings.Repeat("y", MaxFieldValue+1) + `"}}`
	if _, err := DecodeAlert([]byte(val)); err == nil || !strings.Contains(err.Error(), `output_fields["proc.cmdline"]`) {
		t.Errorf("oversized value: %v", err)
	}
}

func TestOutputFieldKinds(t *testing.T) {
	a, err := DecodeAlert([]byte(`{"rule":"r","output_fields":{"n":1.5e3,"b":true,"arr":[1, "a"],"obj":{"k": 1},"s":"<NA>","z":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"n": "1.5e3", "b": "true", "arr": `[1,"a"]`, "obj": `{"k":1}`, "s": "<NA>"}
	for k, v := range want {
		if a.OutputFields[k] != v {
			t.Errorf("%s = %q, want %q", k, a.OutputFields[k], v)
		}
	}
	if a.Field("s") != "" {
		t.Error(`Field treats "<NA>" as a value`)
	}
	if len(a.OutputFields) != len(want) {
		t.Errorf("fields = %v", a.OutputFields)
	}
}

func TestPriorityRank(t *testing.T) {
	order := []string{"debug", "Informational", "NOTICE", "warning", "Error", "critical", "alert", "Emergency"}
	for i, p := range order {
		if PriorityRank(p) != i {
			t.Errorf("PriorityRank(%q) = %d, want %d", p, PriorityRank(p), i)
		}
	}
	if PriorityRank("info") != 1 || PriorityRank("") != -1 || PriorityRank("severe") != -1 {
		t.Error("info alias or unknown priorities")
	}
}

// FuzzDecodeAlert: DecodeAlert never panics, what it accepts stays within
// the limits, and an accepted alert survives a JSON round trip of its
// fields (the intake stores them in content.json).
func FuzzDecodeAlert(f *testing.F) {
	for _, name := range []string{
		"falco_docs_write_below_binary_dir.json", "falco_redirect_stdout_network.json",
		"falcosidekick_redirect_stdout_network.json", "talon_webhook_notifier.json",
		"talon_webhook_legacy.json", "falco_terminal_shell.json",
	} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"rule":"r","output_fields":{"a":-0.0e-1,"b":[{}],"c":"\u0000"}}`))
	f.Add([]byte(`{"action":"x","objects":{"pod":1}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		a, err := DecodeAlert(doc)
		if err != nil {
			if a != nil {
				t.Fatal("alert and error")
			}
			return
		}
		if a.Rule == "" || a.Format == "" {
			t.Fatalf("accepted without rule or format: %+v", a)
		}
		if len(a.OutputFields) > MaxOutputFields+12 || len(a.Tags) > MaxTags || len(a.Output) > MaxOutputBytes {
			t.Fatal("limits exceeded")
		}
		if a.Priority != "" && PriorityRank(a.Priority) < 0 {
			t.Fatalf("priority %q", a.Priority)
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back Alert
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		if back.Rule != a.Rule || len(back.OutputFields) != len(a.OutputFields) {
			t.Fatal("round trip changed the alert")
		}
		// Rules and the built-in target run on whatever was accepted.
		Target(a, nil)
		r := DefaultRule()
		r.Spec(a, nil)
	})
}
