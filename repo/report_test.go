package repo

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestFlatten: objects become dotted keys in key order, arrays are indexed,
// strings print unquoted, numbers as written, empty containers as {} and [].
func TestFlatten(t *testing.T) {
	raw := json.RawMessage(`{"tags":["a","b"],"alert":{"rule":"shell","priority":3,"empty":{},"none":[],"x":null},"big":12345678901234567890}`)
	want := [][2]string{
		{"trigger.alert.empty", "{}"},
		{"trigger.alert.none", "[]"},
		{"trigger.alert.priority", "3"},
		{"trigger.alert.rule", "shell"},
		{"trigger.alert.x", "null"},
		{"trigger.big", "12345678901234567890"},
		{"trigger.tags[0]", "a"},
		{"trigger.tags[1]", "b"},
	}
	if got := flatten("trigger", raw); !slices.Equal(got, want) {
		t.Errorf("flatten =\n%q\nwant\n%q", got, want)
	}
	if got := flatten("k", json.RawMessage(`{bad`)); !slices.Equal(got, [][2]string{{"k", "{bad"}}) {
		t.Errorf("invalid JSON: %q, want it as it is", got)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"000000000001_tcp.pcap": "000000000001_tcp.pcap",
		"evil\x1b[2Jname":       `"evil\x1b[2Jname"`,
		"line\nbreak":           `"line\nbreak"`,
		"ünïcode":               "ünïcode",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}

// Every field the writer knows is printed as a reference or an extension
// field, not among the unknown ones.
func TestReportKnowsContentFields(t *testing.T) {
	for k := range knownFields {
		if !slices.Contains(referenceFields, k) && !slices.Contains(extensionFields, k) {
			t.Errorf("content.json field %q is not in referenceFields or extensionFields", k)
		}
	}
}
