package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Content is content.json, for the Writer that seals it and for every
// reader (Open, ReadContent, the outbox, Slack, `repo inspect`).
//
// The reference wrapper's fields are kfl_index, kfl_query, l4_streams,
// pcap_file_name and time; the others are kflcap's extensions. Fields are
// declared in alphabetical order of their JSON names because that is the
// order content.json has always had (it used to be written from a map):
// the wrapper's fields keep their relative order and old and new files
// compare byte for byte.
type Content struct {
	// Capture is the change of the agent's counters (packets seen,
	// captured, dropped by the kernel and in user space, …) over the
	// repository's lifetime.
	Capture  map[string]uint64 `json:"capture,omitzero"`
	KFLIndex int               `json:"kfl_index"` // -1 for a triggered capture
	KFLQuery string            `json:"kfl_query"`
	// KflcapVersion is the writer's version.
	KflcapVersion string `json:"kflcap_version,omitempty"`
	// L4Streams are the stream pcaps' names, in the order the streams
	// were selected. Set by Seal.
	L4Streams []string `json:"l4_streams"`
	Node      *Node    `json:"node,omitempty"`
	// Opened is when the repository took its first stream, in UTC.
	Opened time.Time `json:"opened,omitzero"`
	// PcapFileName is the merged pcap's name, <unixSeconds>.pcap. Set by
	// Seal.
	PcapFileName string `json:"pcap_file_name"`
	// SealReason says why the repository was sealed: maxMinutes,
	// maxL4Streams, maxBytes or shutdown.
	SealReason string `json:"seal_reason,omitempty"`
	// Time is the creation time in TimeFormat. Set by Seal; kept as text
	// so that a reader can report a malformed one (Check) rather than fail.
	Time    string   `json:"time"`
	Trigger *Trigger `json:"trigger,omitempty"`

	// Extra holds the top-level fields this version does not know (a newer
	// writer's), verbatim; they are written back on marshalling. Unknown
	// fields inside Node or Trigger are dropped here:
	// Repository.ContentJSON keeps the file as it is.
	Extra map[string]json.RawMessage `json:"-"`
}

// Node is the node that captured the repository.
type Node struct {
	Cluster string `json:"cluster"`
	IP      string `json:"ip"`
	Name    string `json:"name"`
}

// Trigger describes a triggered capture: what started it and the window
// it covers.
type Trigger struct {
	// Alert is the security alert that fired the rule, as kflcap decoded
	// it (trigger.Alert, with the document as received in "raw"); absent
	// for captures started through the API.
	Alert    json.RawMessage   `json:"alert,omitempty"`
	Duration string            `json:"duration"` // Go duration syntax, "30s"
	From     time.Time         `json:"from"`     // start of the window (UTC): Started − Lookback, or the oldest packet the lookback ring had
	ID       string            `json:"id"`
	KFL      string            `json:"kfl"`
	Labels   map[string]string `json:"labels"`
	Lookback string            `json:"lookback"` // Go duration syntax
	Name     string            `json:"name"`     // the slug in the archive's name
	Rule     string            `json:"rule"`     // the trigger rule, "" for API captures
	Started  time.Time         `json:"started"`  // UTC
}

// contentFields is Content without its methods, for the default encoding.
type contentFields Content

// knownFields are Content's JSON names.
var knownFields = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeFor[contentFields]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "-" {
			m[name] = true
		}
	}
	return m
}()

// requiredFields are the reference wrapper's content.json fields.
var requiredFields = []string{"kfl_index", "kfl_query", "l4_streams", "pcap_file_name", "time"}

// MarshalJSON writes the fields, and Extra's after merging them in name
// order (the order of the known fields too).
func (c Content) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(contentFields(c))
	if err != nil || len(c.Extra) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// UnmarshalJSON reads the known fields and keeps the others in Extra. It
// does not insist on the wrapper's fields; Open and ReadContent do.
func (c *Content) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	var f contentFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	for k, v := range all {
		if !knownFields[k] {
			if f.Extra == nil {
				f.Extra = map[string]json.RawMessage{}
			}
			f.Extra[k] = v
		}
	}
	*c = Content(f)
	return nil
}

// parseContent parses content.json and insists on the wrapper's fields;
// its errors name the field.
func parseContent(b []byte) (*Content, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	var missing []string
	for _, f := range requiredFields {
		if _, ok := fields[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing field %s", strings.Join(missing, ", "))
	}
	var c Content
	if err := json.Unmarshal(b, &c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("field %s: %s is not a %s", te.Field, te.Value, te.Type)
		}
		return nil, err
	}
	return &c, nil
}
