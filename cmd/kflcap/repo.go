package main

import (
	"bytes"
	"context"
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

	"github.com/kflcap/kflcap/internal/config"
	"github.com/kflcap/kflcap/repo"
)

const repoExamples = `  kflcap repo ls kfl_0_kflcap_1700000000.tar.gz
  kflcap repo ls --json kfl_0_kflcap_1700000000.tar.gz | jq -r 'select(.pcap) | .name'
  kflcap repo inspect kfl_0_kflcap_1700000000.tar.gz
  kflcap repo inspect --json trigger_shell-in-pod_1700000000.tar.gz | jq .problems
  kflcap repo extract kfl_0_kflcap_1700000000.tar.gz ./out
  kflcap repo extract --max-member-bytes 256Mi --max-total-bytes 1Gi untrusted.tar.gz ./out`

func init() {
	register("repo", command{
		summary: "list, inspect or safely extract a repository .tar.gz",
		run:     runRepo,
	})
}

func runRepo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("repo", "repo ls REPO.tar.gz | inspect REPO.tar.gz | extract REPO.tar.gz DIR", repoExamples, e.stdout)
	asJSON := fs.Bool("json", false, "ls: one JSON object per member; inspect: content.json plus a \"problems\" array")
	maxMember := config.Size(repo.DefaultMaxMemberBytes)
	maxTotal := config.Size(repo.DefaultMaxTotalBytes)
	fs.TextVar(&maxMember, "max-member-bytes", maxMember, "refuse an archive with a member of more than `size` bytes (16Mi, 4Gi or a number)")
	fs.TextVar(&maxTotal, "max-total-bytes", maxTotal, "refuse an archive whose members hold more than `size` bytes together")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if maxMember <= 0 || maxTotal <= 0 {
		return usageErrorf("--max-member-bytes and --max-total-bytes must be positive")
	}
	lim := repo.Limits{MaxMemberBytes: int64(maxMember), MaxTotalBytes: int64(maxTotal)}
	if len(pos) == 0 {
		return usageErrorf("missing subcommand: use ls REPO.tar.gz, inspect REPO.tar.gz or extract REPO.tar.gz DIR")
	}
	sub, pos := pos[0], pos[1:]
	want := map[string]int{"ls": 1, "inspect": 1, "extract": 2}
	n, ok := want[sub]
	switch {
	case !ok:
		return usageErrorf("unknown repo subcommand %q: use ls, inspect or extract", sub)
	case len(pos) != n && sub == "extract":
		return usageErrorf("usage: kflcap repo extract REPO.tar.gz DIR")
	case len(pos) != n:
		return usageErrorf("usage: kflcap repo %s REPO.tar.gz", sub)
	case sub == "extract" && *asJSON:
		return usageErrorf("--json applies to ls and inspect, not extract")
	}
	switch sub {
	case "ls":
		r, err := repo.Open(ctx, pos[0], lim)
		if err != nil {
			return err
		}
		if *asJSON {
			return repoListJSON(e.stdout, r)
		}
		return repoList(e.stdout, r)
	case "inspect":
		r, err := repo.Open(ctx, pos[0], lim)
		if err != nil {
			return err
		}
		problems := r.Check()
		if *asJSON {
			err = repoInspectJSON(e.stdout, r, problems)
		} else {
			err = repoInspect(e.stdout, r, problems)
		}
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s is inconsistent: %d %s", pos[0], len(problems), plural(len(problems), "problem"))
		}
		return nil
	default:
		files, err := repo.Extract(ctx, pos[0], pos[1], lim)
		if err != nil {
			return fmt.Errorf("extract %s: %w; nothing was extracted", pos[0], err)
		}
		var total int64
		for _, f := range files {
			total += f.Size
		}
		fmt.Fprintf(e.stdout, "extracted %d %s (%d bytes) into %s\n", len(files), plural(len(files), "file"), total, pos[1])
		return nil
	}
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

const repoTime = "2006-01-02T15:04:05.000000Z"

// repoList prints one line per member: name, size in bytes, and for a pcap
// its packet count, first and last timestamps and the span between them.
func repoList(w io.Writer, r *repo.Repository) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range r.Members {
		fmt.Fprintf(tw, "%s\t%d", printable(m.Name), m.Size)
		switch {
		case m.Pcap != nil:
			p := m.Pcap
			fmt.Fprintf(tw, "\t%d %s", p.Packets, plural(p.Packets, "packet"))
			if p.Packets > 0 {
				fmt.Fprintf(tw, "\t%s\t%s\t%s", p.First.Format(repoTime), p.Last.Format(repoTime), p.Last.Sub(p.First))
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

func repoListJSON(w io.Writer, r *repo.Repository) error {
	enc := json.NewEncoder(w)
	for _, m := range r.Members {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	return nil
}

// repoInspectJSON prints content.json as it is, plus "problems".
func repoInspectJSON(w io.Writer, r *repo.Repository, problems []string) error {
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

// The reference fields of content.json, which repoInspect prints first,
// and the extensions it prints next, before any it does not know.
var (
	referenceFields = []string{"kfl_index", "kfl_query", "time", "l4_streams", "pcap_file_name"}
	extensionFields = []string{"node", "capture", "kflcap_version", "trigger"}
)

// repoInspect prints content.json's fields readably (extension objects
// flattened to dotted keys), then whether the repository is consistent.
func repoInspect(w io.Writer, r *repo.Repository, problems []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, format string, a ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", printable(k), printable(fmt.Sprintf(format, a...)))
	}

	desc := filepath.Base(r.Path)
	switch n := r.Name; n.Kind {
	case repo.KindKFL:
		desc += fmt.Sprintf(" (KFL job %d, prefix %s, sealed %s)", n.Index, n.Prefix, time.Unix(n.Unix, 0).UTC().Format(time.RFC3339))
	case repo.KindTrigger:
		desc += fmt.Sprintf(" (trigger %s, sealed %s)", n.Slug, time.Unix(n.Unix, 0).UTC().Format(time.RFC3339))
	}
	line("repository", "%s", desc)
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
				pf += fmt.Sprintf(": %d %s, %s to %s", p.Packets, plural(p.Packets, "packet"), p.First.Format(repoTime), p.Last.Format(repoTime))
			} else {
				pf += ": no packets"
			}
		}
		line("pcap_file_name", "%s", pf)

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
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(drops) > 0 {
		fmt.Fprintf(w, "\nwarning: packets were dropped during capture (%s): streams may be incomplete\n", strings.Join(drops, ", "))
	}
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
