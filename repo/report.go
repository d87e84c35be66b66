package repo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// WriteListing prints what `kflcap repo ls` shows: one line per member
// (name, size, and for a pcap its packets and time span), or with asJSON
// one JSON object per member.
func (r *Repository) WriteListing(w io.Writer, asJSON bool) error {
	if asJSON {
		return r.writeListingJSON(w)
	}
	return r.writeListing(w)
}

// WriteReport prints what `kflcap repo inspect` shows: content.json's
// fields readably and then problems (from Check), or that there are none;
// with asJSON, content.json as it is plus a "problems" array.
func (r *Repository) WriteReport(w io.Writer, problems []string, asJSON bool) error {
	if asJSON {
		return r.writeReportJSON(w, problems)
	}
	return r.writeReport(w, problems)
}

// printable quotes s when it holds control characters: member names and
// content.json values come from the archive, and must not drive the
// terminal or break the one-line-per-member layout.
func printable(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

const listTime = "2006-01-02T15:04:05.000000Z"

// writeListing prints one line per member: name, size in bytes, and for a pcap
// its packet count, first and last timestamps and the span between them.
func (r *Repository) writeListing(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range r.Members {
		fmt.Fprintf(tw, "%s\t%d", printable(m.Name), m.Size)
		switch {
		case m.Pcap != nil:
			p := m.Pcap
			fmt.Fprintf(tw, "\t%d %s", p.Packets, plural(p.Packets, "packet"))
			if p.Packets > 0 {
				fmt.Fprintf(tw, "\t%s\t%s\t%s", p.First.Format(listTime), p.Last.Format(listTime), p.Last.Sub(p.First))
			}
			if p.Err != "" {
				fmt.Fprintf(tw, "\terror: %s", p.Err)
			}
		case m.Type == "file":
		case m.Link != "":
			fmt.Fprintf(tw, "\t%s -> %s", m.Type, printable(m.Link))
		default:
			fmt.Fprintf(tw, "\t%s", m.Type)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func (r *Repository) writeListingJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, m := range r.Members {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	return nil
}

// writeReportJSON prints content.json as it is, plus "problems".
func (r *Repository) writeReportJSON(w io.Writer, problems []string) error {
	out := map[string]json.RawMessage{}
	if r.ContentJSON != nil {
		var fields map[string]json.RawMessage
		if json.Unmarshal(r.ContentJSON, &fields) == nil && fields != nil {
			out = fields
		}
	}
	p, err := json.Marshal(append([]string{}, problems...))
	if err != nil {
		return err
	}
	out["problems"] = p
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// The reference fields of content.json, which writeReport prints first,
// and the extensions it prints next, before any it does not know.
var (
	referenceFields = []string{"kfl_index", "kfl_query", "time", "l4_streams", "pcap_file_name"}
	extensionFields = []string{"node", "capture", "kflcap_version", "opened", "seal_reason", "trigger"}
)

// writeReport prints content.json's fields readably (extension objects
// flattened to dotted keys), then whether the repository is consistent.
func (r *Repository) writeReport(w io.Writer, problems []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, format string, a ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", printable(k), printable(fmt.Sprintf(format, a...)))
	}
	line("repository", "%s", r.describe())
	var drops []string
	if c := r.Content; c != nil {
		line("kfl_index", "%d", c.KFLIndex)
		line("kfl_query", "%s", c.KFLQuery)
		line("time", "%s", c.Time)
		tcp, udp := c.Streams()
		line("l4_streams", "%d (%d tcp, %d udp)", len(c.L4Streams), tcp, udp)
		pf := c.PcapFileName
		if m := r.Merged(); m != nil && m.Pcap != nil {
			if p := m.Pcap; p.Packets > 0 {
				pf += fmt.Sprintf(": %d %s, %s to %s", p.Packets, plural(p.Packets, "packet"), p.First.Format(listTime), p.Last.Format(listTime))
			} else {
				pf += ": no packets"
			}
		}
		line("pcap_file_name", "%s", pf)
		drops = r.extensionLines(line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(drops) > 0 {
		fmt.Fprintf(w, "\nwarning: packets were dropped during capture (%s): streams may be incomplete\n", strings.Join(drops, ", "))
	}
	return r.writeVerdict(w, problems)
}

// describe is the repository's file name and what its name says.
func (r *Repository) describe() string {
	desc := filepath.Base(r.Path)
	switch n := r.Name; n.Kind {
	case KindKFL:
		desc += fmt.Sprintf(" (KFL job %d, prefix %s, sealed %s)", n.Index, n.Prefix, time.Unix(n.Unix, 0).UTC().Format(time.RFC3339))
	case KindTrigger:
		desc += fmt.Sprintf(" (trigger %s, sealed %s)", n.Slug, time.Unix(n.Unix, 0).UTC().Format(time.RFC3339))
	}
	return desc
}

// extensionLines prints content.json's extension fields, then those it
// does not know, flattened; it returns the non-zero drop counters of
// "capture".
func (r *Repository) extensionLines(line func(k, format string, a ...any)) (drops []string) {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(r.ContentJSON, &fields) // parsed once already, by Open
	var rest []string
	for k := range fields {
		if !slices.Contains(referenceFields, k) && !slices.Contains(extensionFields, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range append(slices.Clone(extensionFields), rest...) {
		raw, ok := fields[k]
		if !ok {
			continue
		}
		for _, kv := range flatten(k, raw) {
			line(kv[0], "%s", kv[1])
			if k == "capture" && strings.Contains(strings.ToLower(kv[0]), "drop") && kv[1] != "0" {
				drops = append(drops, kv[0]+"="+kv[1])
			}
		}
	}
	return drops
}

// writeVerdict prints that the repository is consistent, or its problems.
func (r *Repository) writeVerdict(w io.Writer, problems []string) error {
	if len(problems) == 0 {
		streams, packets := 0, 0
		if r.Content != nil {
			streams = len(r.Content.L4Streams)
		}
		if m := r.Merged(); m != nil && m.Pcap != nil {
			packets = m.Pcap.Packets
		}
		_, err := fmt.Fprintf(w, "\nconsistent: %d stream %s, %d packets in the merged pcap, as in the stream pcaps together\n", streams, plural(streams, "pcap"), packets)
		return err
	}
	fmt.Fprintf(w, "\n%d %s:\n", len(problems), plural(len(problems), "problem"))
	for _, p := range problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return nil
}

// flatten turns a JSON value into dotted key/value pairs, sorted by key;
// arrays are indexed (trigger.tags[0]). Scalars print as JSON, strings
// unquoted.
func flatten(key string, raw json.RawMessage) [][2]string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return [][2]string{{key, string(raw)}}
	}
	var out [][2]string
	var walk func(k string, v any)
	walk = func(k string, v any) {
		switch t := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for kk := range t {
				keys = append(keys, kk)
			}
			slices.Sort(keys)
			for _, kk := range keys {
				walk(k+"."+kk, t[kk])
			}
			if len(keys) == 0 {
				out = append(out, [2]string{k, "{}"})
			}
		case []any:
			for i, e := range t {
				walk(fmt.Sprintf("%s[%d]", k, i), e)
			}
			if len(t) == 0 {
				out = append(out, [2]string{k, "[]"})
			}
		case string:
			out = append(out, [2]string{k, t})
		case nil:
			out = append(out, [2]string{k, "null"})
		default:
			out = append(out, [2]string{k, fmt.Sprint(t)})
		}
	}
	walk(key, v)
	return out
}
