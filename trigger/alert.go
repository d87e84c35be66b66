package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of DecodeAlert. A document beyond them is refused with an error
// that names the field, rather than cut silently: a truncated IP or port
// would aim a capture at the wrong traffic.
const (
	MaxAlertBytes   = 1 << 20 // whole document
	MaxOutputBytes  = 64 << 10
	MaxStringBytes  = 4 << 10 // rule, priority, source, hostname, uuid, time, tags
	MaxTags         = 256
	MaxOutputFields = 1024
	MaxFieldKey     = 256
	MaxFieldValue   = 16 << 10
)

// Alert formats, the values of Alert.Format.
const (
	FormatFalco         = "falco"
	FormatFalcosidekick = "falcosidekick"
	FormatTalon         = "talon"
)

// DecodeAlert decodes one alert document: Falco's JSON output (what
// http_output posts), Falcosidekick's webhook payload (the same fields plus
// uuid), or Falco Talon's webhook notifier payload. Numbers, booleans and
// nested values in output_fields become strings (numbers keep their exact
// text: evt.time's 19 digits survive); null fields are left out. The error
// names the offending field.
func DecodeAlert(doc []byte) (*Alert, error) {
	if len(doc) > MaxAlertBytes {
		return nil, fmt.Errorf("alert is %d bytes, more than the %d allowed", len(doc), MaxAlertBytes)
	}
	top, err := decodeObject(doc)
	if err != nil {
		return nil, err
	}
	a := &Alert{Raw: json.RawMessage(bytes.Clone(doc))}
	if isTalon(top) {
		err = a.fromTalon(top)
	} else {
		err = a.fromFalco(top)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// decodeObject decodes the top level into raw members, with a clear error
// for what is not one JSON object.
func decodeObject(doc []byte) (map[string]json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	var top map[string]json.RawMessage
	if err := d.Decode(&top); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("alert is a JSON %s, not an object", te.Value)
		}
		return nil, fmt.Errorf("alert is not valid JSON: %w", err)
	}
	if top == nil {
		return nil, errors.New("alert is null, not an object")
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("alert has data after the JSON object")
	}
	return top, nil
}

// isTalon tells Falco Talon's notifier payload (utils.LogLine, or the older
// {pod, namespace, action, status}) from a Falco alert: Talon's carries the
// action it ran and no output_fields.
func isTalon(top map[string]json.RawMessage) bool {
	if _, ok := top["output_fields"]; ok {
		return false
	}
	for _, k := range []string{"actionner", "action", "actionner_category", "notifier", "objects"} {
		if _, ok := top[k]; ok {
			return true
		}
	}
	return false
}

func (a *Alert) fromFalco(top map[string]json.RawMessage) error {
	a.Format = FormatFalco
	var err error
	str := func(key string, max int, dst *string) {
		if err == nil {
			*dst, err = stringMember(top, key, max)
		}
	}
	str("rule", MaxStringBytes, &a.Rule)
	str("output", MaxOutputBytes, &a.Output)
	str("source", MaxStringBytes, &a.Source)
	str("hostname", MaxStringBytes, &a.Hostname)
	str("uuid", MaxStringBytes, &a.UUID)
	var prio, ts, traceID string
	str("priority", MaxStringBytes, &prio)
	str("time", MaxStringBytes, &ts)
	str("trace_id", MaxStringBytes, &traceID) // Talon's own intake adds it
	if err != nil {
		return err
	}
	if a.Rule == "" {
		return errors.New("rule: missing or empty; a Falco alert names its rule")
	}
	if a.UUID != "" {
		a.Format = FormatFalcosidekick
	} else if traceID != "" {
		a.UUID = traceID
	}
	if a.Priority, err = normalPriority(prio); err != nil {
		return err
	}
	if ts != "" {
		t, perr := time.Parse(time.RFC3339Nano, ts)
		if perr != nil {
			return fmt.Errorf("time: %q is not an RFC 3339 time", ts)
		}
		a.Time = t
	}
	if a.Tags, err = tagsMember(top); err != nil {
		return err
	}
	a.OutputFields, err = fieldsMember(top)
	return err
}

// fromTalon maps Falco Talon's notifier payload. Talon does not forward the
// alert's output_fields; what it has about the target, objects.pod and
// objects.namespace (or the older top-level pod and namespace), becomes
// k8s.pod.name and k8s.ns.name so that rules and the pod resolver work the
// same way; every other Talon member is kept under talon.*.
func (a *Alert) fromTalon(top map[string]json.RawMessage) error {
	a.Format = FormatTalon
	a.OutputFields = map[string]string{}
	var err error
	str := func(key string, max int) string {
		var s string
		if err == nil {
			s, err = stringMember(top, key, max)
		}
		return s
	}
	a.Rule = str("rule", MaxStringBytes)
	event := str("event", MaxOutputBytes)
	output := str("output", MaxOutputBytes)
	a.Source = str("source", MaxStringBytes)
	a.UUID = str("trace_id", MaxStringBytes)
	prio := str("priority", MaxStringBytes)
	ts := str("time", MaxStringBytes)
	if err != nil {
		return err
	}
	for _, k := range []string{"message", "action", "actionner", "actionner_category", "status", "result", "error", "notifier", "pod", "namespace"} {
		v := str(k, MaxFieldValue)
		if err != nil {
			return err
		}
		if v != "" {
			a.OutputFields["talon."+k] = v
		}
	}
	if output != "" {
		a.OutputFields["talon.output"] = output
	}
	// Talon's action notification carries the alert's output line in
	// "event"; its match notification carries the Falco rule there.
	a.Output = event
	if a.Output == "" {
		a.Output = output
	}
	if a.Rule == "" {
		a.Rule = a.OutputFields["talon.action"]
	}
	if a.Rule == "" {
		return errors.New("rule: missing or empty, and no action either; not a Falco Talon notification")
	}
	if a.Priority, err = normalPriority(prio); err != nil {
		return err
	}
	if ts != "" {
		t, perr := time.Parse(time.RFC3339Nano, ts)
		if perr != nil {
			return fmt.Errorf("time: %q is not an RFC 3339 time", ts)
		}
		a.Time = t
	}
	if raw, ok := top["objects"]; ok && !isNull(raw) {
		var objs map[string]json.RawMessage
		if json.Unmarshal(raw, &objs) != nil {
			return errors.New("objects: not a JSON object")
		}
		if len(objs) > MaxOutputFields {
			return fmt.Errorf("objects: %d members, more than the %d allowed", len(objs), MaxOutputFields)
		}
		for k, v := range objs {
			s, ok, err := scalarText(v)
			if err != nil {
				return fmt.Errorf("objects.%s: %w", k, err)
			}
			if err := checkField("objects", k, s); err != nil {
				return err
			}
			if ok {
				a.OutputFields["talon.objects."+k] = s
			}
		}
	}
	for _, m := range [][3]string{
		{"talon.objects.pod", "talon.pod", "k8s.pod.name"},
		{"talon.objects.namespace", "talon.namespace", "k8s.ns.name"},
	} {
		if v := a.OutputFields[m[0]]; v != "" {
			a.OutputFields[m[2]] = v
		} else if v := a.OutputFields[m[1]]; v != "" {
			a.OutputFields[m[2]] = v
		}
	}
	return nil
}

// stringMember returns a string member, "" when absent or null. A number
// where a string is expected is an error: these members are names.
func stringMember(top map[string]json.RawMessage, key string, max int) (string, error) {
	raw, ok := top[key]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s: want a string, got %s", key, jsonKind(raw))
	}
	if len(s) > max {
		return "", fmt.Errorf("%s: %d bytes, more than the %d allowed", key, len(s), max)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%s: not valid UTF-8", key)
	}
	return s, nil
}

func tagsMember(top map[string]json.RawMessage) ([]string, error) {
	raw, ok := top["tags"]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("tags: want an array of strings, got %s", jsonKind(raw))
	}
	if len(items) > MaxTags {
		return nil, fmt.Errorf("tags: %d tags, more than the %d allowed", len(items), MaxTags)
	}
	tags := make([]string, 0, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, fmt.Errorf("tags[%d]: want a string, got %s", i, jsonKind(it))
		}
		if len(s) > MaxStringBytes || !utf8.ValidString(s) {
			return nil, fmt.Errorf("tags[%d]: longer than %d bytes or not UTF-8", i, MaxStringBytes)
		}
		tags = append(tags, s)
	}
	return tags, nil
}

func fieldsMember(top map[string]json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	raw, ok := top["output_fields"]
	if !ok || isNull(raw) {
		return out, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("output_fields: want an object, got %s", jsonKind(raw))
	}
	if len(fields) > MaxOutputFields {
		return nil, fmt.Errorf("output_fields: %d fields, more than the %d allowed", len(fields), MaxOutputFields)
	}
	for k, v := range fields {
		s, ok, err := scalarText(v)
		if err != nil {
			return nil, fmt.Errorf("output_fields[%q]: %w", k, err)
		}
		if err := checkField("output_fields", k, s); err != nil {
			return nil, err
		}
		if ok {
			out[k] = s
		}
	}
	return out, nil
}

func checkField(member, k, v string) error {
	if k == "" || len(k) > MaxFieldKey || !utf8.ValidString(k) {
		return fmt.Errorf("%s: a field name is empty, longer than %d bytes or not UTF-8", member, MaxFieldKey)
	}
	if len(v) > MaxFieldValue {
		return fmt.Errorf("%s[%q]: %d bytes, more than the %d allowed", member, k, len(v), MaxFieldValue)
	}
	return nil
}

// scalarText turns one output field into its text: strings as they are,
// numbers in their exact JSON form, booleans as true/false, arrays and
// objects as compact JSON. ok is false for null.
func scalarText(raw json.RawMessage) (s string, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return "", false, nil
	}
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, errors.New("bad string")
		}
		if !utf8.ValidString(s) {
			return "", false, errors.New("not valid UTF-8")
		}
		return s, true, nil
	case '{', '[':
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return "", false, errors.New("bad JSON value")
		}
		return b.String(), true, nil
	default: // number, true, false; validated by the outer decode
		return string(raw), true, nil
	}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// Falco's priorities, most severe first (Falco's own order).
var priorities = []string{"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}

// PriorityRank is a priority's severity: 7 for Emergency down to 0 for
// Debug, -1 for "" or an unknown name. Case does not matter, and "info"
// means Informational as in Falco's configuration.
func PriorityRank(p string) int {
	if strings.EqualFold(p, "info") {
		p = "Informational"
	}
	for i, name := range priorities {
		if strings.EqualFold(p, name) {
			return len(priorities) - 1 - i
		}
	}
	return -1
}

// normalPriority spells a priority as Falco does ("Warning"); Falcosidekick
// sends them in lower case.
func normalPriority(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	r := PriorityRank(p)
	if r < 0 {
		return "", fmt.Errorf("priority: %q is not one of %s", p, strings.Join(priorities, ", "))
	}
	return priorities[len(priorities)-1-r], nil
}

// Field returns an output field's value, "" when it is missing or is
// Falco's "<NA>" (no value for this event).
func (a *Alert) Field(name string) string {
	v := a.OutputFields[name]
	if v == "<NA>" {
		return ""
	}
	return v
}
