package trigger

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kflcap/kflcap/kfl"
)

// Defaults of a trigger rule.
const (
	DefaultDuration = 30 * time.Second
	DefaultLookback = 10 * time.Second
	// MaxDuration and MaxLookback bound what a rule or an API request may
	// ask for; the engine's byte budget applies on top.
	MaxDuration = time.Hour
	MaxLookback = 10 * time.Minute
	// maxRendered bounds a rendered KFL query.
	maxRendered = 16 << 10
)

// Rule is one entry of the config's triggers: list. An alert fires the rule
// when every condition given under match holds; the rule's kfl (a Go
// text/template over the Alert) then names the traffic to capture. An empty
// kfl means the built-in target: the alert's remote IP from its fd.*
// fields, or the pod's IP.
//
//	triggers:
//	  - name: reverse-shell
//	    match:
//	      rules: ["Redirect STDOUT/STDIN to Network Connection in Container"]
//	      priority: ">= Notice"
//	      tags: [[network, mitre_execution]]
//	      output_fields: ["k8s.ns.name != kube-system"]
//	      source: syscall
//	    kfl: 'src.ip == {{ ip (field "fd.rip") }} or dst.ip == {{ ip (field "fd.rip") }}'
//	    duration: 30s
//	    lookback: 10s
//
// Rules are tried in order; the first that fires ends the search unless it
// says continue: true.
type Rule struct {
	Name     string            `yaml:"name"`
	Enabled  *bool             `yaml:"enabled"` // default true
	Match    Match             `yaml:"match"`
	KFL      string            `yaml:"kfl"`
	Duration time.Duration     `yaml:"duration"` // default 30s
	Lookback time.Duration     `yaml:"lookback"` // default 10s
	Labels   map[string]string `yaml:"labels"`
	Continue bool              `yaml:"continue"`

	compiled bool
	tmpl     *template.Template
	prio     prioCond
	tags     [][]string
	conds    [][]fieldCond
}

// Match holds the conditions of a rule, Falco Talon style. Every condition
// given must hold; an empty Match fires on every alert.
type Match struct {
	// Rules: the alert's rule is one of these (exact names).
	Rules []string `yaml:"rules"`
	// Priority: a comparison with Falco's order, ">= Warning", "< Error",
	// "= Notice" or just "Notice" (equal).
	Priority string `yaml:"priority"`
	// Tags: groups of tags; the alert must carry all the tags of at least
	// one group. A group is a list or a comma-separated string.
	Tags [][]string `yaml:"tags"`
	// OutputFields: conditions on output fields, "k=v", "k!=v",
	// "k in (a, b)", "k not in (a, b)"; comma-separated conditions in one
	// entry must all hold; entries are alternatives.
	OutputFields []string `yaml:"output_fields"`
	// Source: the alert's source is one of these (syscall, k8s_audit, …).
	Sources []string `yaml:"source"`
}

// PodResolver finds a pod's IP address. The agent's Kubernetes name
// resolution implements it; nil means pods are not resolved.
type PodResolver interface {
	PodIP(namespace, name string) (netip.Addr, bool)
}

// DefaultRule is what an empty triggers: list means: every alert whose
// fd.* fields name a remote IP, or whose pod the resolver knows, starts a
// capture of that address's traffic for 30 s with 10 s of lookback. Alerts
// with neither are acknowledged as unmatched.
func DefaultRule() Rule {
	r := Rule{Name: "default", Duration: DefaultDuration, Lookback: DefaultLookback}
	r.compile()
	return r
}

// ParseRules decodes and checks the config's triggers: nodes. Errors name
// the entry and key, "triggers[2].match.priority: …". No nodes gives the
// default rule alone.
func ParseRules(nodes []yaml.Node) ([]Rule, error) {
	if len(nodes) == 0 {
		return []Rule{DefaultRule()}, nil
	}
	rules := make([]Rule, 0, len(nodes))
	names := map[string]int{}
	for i := range nodes {
		var r Rule
		if err := nodes[i].Decode(&r); err != nil {
			return nil, fmt.Errorf("triggers[%d]%s", i, prefixErr(err))
		}
		if j, dup := names[r.Name]; dup {
			return nil, fmt.Errorf("triggers[%d].name: %q is already the name of triggers[%d]", i, r.Name, j)
		}
		names[r.Name] = i
		rules = append(rules, r)
	}
	return rules, nil
}

// prefixErr joins a rule's error to "triggers[i]": a field error reads
// ".match.priority: …", anything else ": …".
func prefixErr(err error) string {
	var fe *fieldError
	if errors.As(err, &fe) {
		return "." + fe.Error()
	}
	return ": " + err.Error()
}

type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func ferr(field string, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

// UnmarshalYAML decodes a rule key by key so that errors name the key, and
// compiles its conditions and template.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a trigger rule is a mapping (name:, match:, kfl:, …)", n.Line)
	}
	*r = Rule{}
	var dur, look string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		var err error
		switch k {
		case "name":
			err = v.Decode(&r.Name)
		case "enabled":
			var b bool
			err = v.Decode(&b)
			r.Enabled = &b
		case "match":
			err = r.Match.decode(v)
			if fe := (*fieldError)(nil); errors.As(err, &fe) {
				return &fieldError{field: "match." + fe.field, err: fe.err}
			}
		case "kfl":
			err = v.Decode(&r.KFL)
		case "duration":
			err = v.Decode(&dur)
		case "lookback":
			err = v.Decode(&look)
		case "labels":
			err = v.Decode(&r.Labels)
		case "continue":
			err = v.Decode(&r.Continue)
		default:
			return ferr(k, "unknown key (line %d); a rule has name, enabled, match, kfl, duration, lookback, labels, continue", n.Content[i].Line)
		}
		if err != nil {
			return &fieldError{field: k, err: yamlErr(err)}
		}
	}
	if r.Name == "" {
		return ferr("name", "missing; every trigger rule needs a name (it names the repositories)")
	}
	var err error
	if r.Duration, err = parseDuration(dur, DefaultDuration, MaxDuration); err != nil {
		return &fieldError{field: "duration", err: err}
	}
	if r.Lookback, err = parseDuration(look, DefaultLookback, MaxLookback); err != nil {
		return &fieldError{field: "lookback", err: err}
	}
	if r.Duration == 0 {
		return ferr("duration", "must be more than 0")
	}
	return r.compile()
}

// yamlErr drops yaml's "yaml: unmarshal errors:\n  " preamble.
func yamlErr(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return err
}

func parseDuration(s string, def, max time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (30s, 2m)", s)
	}
	if d < 0 || d > max {
		return 0, fmt.Errorf("%s is outside 0 … %s", d, max)
	}
	return d, nil
}

func (m *Match) decode(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("match is a mapping (rules:, priority:, tags:, output_fields:, source:)")
	}
	*m = Match{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		var err error
		switch k {
		case "rules":
			m.Rules, err = stringList(v)
		case "priority":
			err = v.Decode(&m.Priority)
		case "tags":
			m.Tags, err = tagGroups(v)
		case "output_fields":
			m.OutputFields, err = stringList(v)
		case "source":
			m.Sources, err = stringList(v)
		default:
			return ferr(k, "unknown key (line %d); match has rules, priority, tags, output_fields, source", n.Content[i].Line)
		}
		if err != nil {
			return &fieldError{field: k, err: yamlErr(err)}
		}
	}
	return nil
}

// stringList accepts one string or a list of strings.
func stringList(n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}, nil
	}
	var out []string
	err := n.Decode(&out)
	return out, err
}

// tagGroups accepts [[a, b], [c]], ["a, b", "c"], or "a, b".
func tagGroups(n *yaml.Node) ([][]string, error) {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var groups [][]string
	for _, it := range items {
		var g []string
		switch it.Kind {
		case yaml.ScalarNode:
			g = splitTrim(it.Value, ",")
		case yaml.SequenceNode:
			if err := it.Decode(&g); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("line %d: a tag group is a list of tags or a comma-separated string", it.Line)
		}
		if len(g) == 0 {
			return nil, fmt.Errorf("line %d: empty tag group", it.Line)
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func splitTrim(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Compile checks and compiles the conditions and the template of a rule
// built in Go rather than decoded from YAML (ParseRules and NewServer do it).
// Matches and Spec need a compiled rule.
func (r *Rule) Compile() error { return r.compile() }

func (r *Rule) compile() error {
	r.compiled = false
	var err error
	if r.prio, err = parsePrio(r.Match.Priority); err != nil {
		return ferr("match.priority", "%v", err)
	}
	r.tags = r.Match.Tags
	r.conds = nil
	for i, s := range r.Match.OutputFields {
		c, err := parseConds(s)
		if err != nil {
			return ferr(fmt.Sprintf("match.output_fields[%d]", i), "%v", err)
		}
		r.conds = append(r.conds, c)
	}
	r.tmpl = nil
	if strings.TrimSpace(r.KFL) != "" {
		t, err := template.New(r.Name).Funcs(templateFuncs(nil, &Alert{})).Option("missingkey=zero").Parse(r.KFL)
		if err != nil {
			return ferr("kfl", "template: %v", err)
		}
		r.tmpl = t
	}
	r.compiled = true
	return nil
}

// enabled reports whether the rule takes part.
func (r *Rule) enabled() bool { return r.Enabled == nil || *r.Enabled }

// Matches reports whether the alert satisfies every condition of the
// rule's match.
func (r *Rule) Matches(a *Alert) bool {
	if !r.compiled {
		return false
	}
	m := &r.Match
	if len(m.Rules) > 0 && !contains(m.Rules, a.Rule) {
		return false
	}
	if !r.prio.holds(a.Priority) {
		return false
	}
	if len(m.Sources) > 0 && !contains(m.Sources, a.Source) {
		return false
	}
	if len(r.tags) > 0 {
		ok := false
		for _, g := range r.tags {
			if hasAll(a.Tags, g) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.conds) > 0 {
		ok := false
		for _, all := range r.conds {
			if condsHold(all, a) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (r *Rule) matchesAll() bool {
	m := &r.Match
	return len(m.Rules) == 0 && m.Priority == "" && len(m.Tags) == 0 && len(m.OutputFields) == 0 && len(m.Sources) == 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !contains(have, w) {
			return false
		}
	}
	return true
}

type prioCond struct {
	op   string // "", "=", "!=", ">", ">=", "<", "<="
	rank int
}

func parsePrio(s string) (prioCond, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return prioCond{}, nil
	}
	op := "="
	for _, o := range []string{">=", "<=", "!=", ">", "<", "="} {
		if strings.HasPrefix(s, o) {
			op, s = o, strings.TrimSpace(s[len(o):])
			break
		}
	}
	r := PriorityRank(s)
	if r < 0 {
		return prioCond{}, fmt.Errorf("%q is not a priority; use one of %s, with >=, >, <=, <, = or !=", s, strings.Join(priorities, ", "))
	}
	return prioCond{op: op, rank: r}, nil
}

func (c prioCond) holds(p string) bool {
	if c.op == "" {
		return true
	}
	r := PriorityRank(p)
	if r < 0 {
		return c.op == "!=" // an alert without a priority only passes "not equal"
	}
	switch c.op {
	case "=":
		return r == c.rank
	case "!=":
		return r != c.rank
	case ">":
		return r > c.rank
	case ">=":
		return r >= c.rank
	case "<":
		return r < c.rank
	default:
		return r <= c.rank
	}
}

type fieldCond struct {
	key    string
	negate bool
	values []string
}

// parseConds parses "k=v, k2!=v2, k3 in (a, b)".
func parseConds(s string) ([]fieldCond, error) {
	var out []fieldCond
	for _, part := range splitOutsideParens(s) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		c, err := parseCond(part)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("empty condition; write k=v, k!=v or k in (a, b)")
	}
	return out, nil
}

func splitOutsideParens(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func parseCond(s string) (fieldCond, error) {
	if i := strings.Index(s, "!="); i > 0 {
		return fieldCond{key: strings.TrimSpace(s[:i]), negate: true, values: []string{unquote(s[i+2:])}}, nil
	}
	if i := strings.Index(s, "="); i > 0 {
		return fieldCond{key: strings.TrimSpace(s[:i]), values: []string{unquote(s[i+1:])}}, nil
	}
	f := strings.Fields(s)
	if len(f) >= 3 && f[1] == "in" || len(f) >= 4 && f[1] == "not" && f[2] == "in" {
		neg := f[1] == "not"
		rest := strings.TrimSpace(s[strings.Index(s, " in")+3:])
		if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
			return fieldCond{}, fmt.Errorf("%q: the values of in are in parentheses: k in (a, b)", s)
		}
		var vals []string
		for _, v := range strings.Split(rest[1:len(rest)-1], ",") {
			vals = append(vals, unquote(v))
		}
		return fieldCond{key: f[0], negate: neg, values: vals}, nil
	}
	return fieldCond{}, fmt.Errorf("%q is not a condition; write k=v, k!=v, k in (a, b) or k not in (a, b)", s)
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// condsHold: every condition holds. A missing field is unequal to
// anything, so "k!=v" holds and "k=v" does not.
func condsHold(all []fieldCond, a *Alert) bool {
	for _, c := range all {
		v, ok := a.OutputFields[c.key]
		in := ok && contains(c.values, v)
		if in == c.negate {
			return false
		}
	}
	return true
}

// Spec renders the capture spec of a rule that fired on an alert. An error
// means the rule cannot capture for this alert: a template that failed or
// rendered an invalid query (a *kfl.Error inside), or no target.
func (r *Rule) Spec(a *Alert, res PodResolver) (Spec, error) {
	if !r.compiled {
		return Spec{}, fmt.Errorf("trigger rule %q is not compiled (ParseRules, DefaultRule or Compile)", r.Name)
	}
	var q string
	if r.tmpl == nil {
		t, ok := Target(a, res)
		if !ok {
			return Spec{}, errNoTarget
		}
		q = t
	} else {
		var b limitedBuffer
		b.max = maxRendered
		t, err := r.tmpl.Clone()
		if err != nil {
			return Spec{}, fmt.Errorf("kfl template: %w", err)
		}
		if err := t.Funcs(templateFuncs(res, a)).Execute(&b, a); err != nil {
			return Spec{}, fmt.Errorf("kfl template: %w", err)
		}
		q = strings.TrimSpace(b.String())
		if q == "" {
			return Spec{}, errors.New("kfl template rendered an empty query")
		}
	}
	if _, err := kfl.Compile(q); err != nil {
		return Spec{}, &RenderError{Query: q, Err: err}
	}
	name := r.Name
	if r.tmpl == nil && r.Name == "default" {
		name = a.Rule // the default rule's repositories say which alert
	}
	labels := map[string]string{"trigger.rule": r.Name, "falco.rule": a.Rule}
	if a.Priority != "" {
		labels["falco.priority"] = a.Priority
	}
	for _, k := range []string{"k8s.ns.name", "k8s.pod.name", "container.id"} {
		if v := a.Field(k); v != "" {
			labels[k] = v
		}
	}
	for k, v := range r.Labels {
		labels[k] = v
	}
	return Spec{KFL: q, Duration: r.Duration, Lookback: r.Lookback, Name: name, Labels: labels, Rule: r.Name, Alert: a}, nil
}

// RenderError is a rule's template that rendered a query KFL refuses.
type RenderError struct {
	Query string
	Err   error // a *kfl.Error
}

func (e *RenderError) Error() string {
	return fmt.Sprintf("rendered kfl %q is invalid: %v", e.Query, e.Err)
}
func (e *RenderError) Unwrap() error { return e.Err }

var errNoTarget = errors.New("the alert names no remote IP (fd.rip, fd.sip/fd.cip, fd.name) and no pod the resolver knows")

type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("rendered query longer than %d bytes", b.max)
	}
	return b.Buffer.Write(p)
}

// templateFuncs are the functions KFL templates may call, besides Go's
// (index, printf, eq, …). Values come from the alert, that is from the
// monitored workload: ip, port and quote turn them into KFL literals that
// cannot change the query's meaning.
func templateFuncs(res PodResolver, a *Alert) template.FuncMap {
	return template.FuncMap{
		// field "fd.sip": the output field, "" when missing or <NA>.
		"field": func(name string) string { return a.Field(name) },
		// ip VALUE: VALUE as a KFL IP literal ("10.0.0.1"); an error if it is not one.
		"ip": func(v string) (string, error) {
			addr, err := netip.ParseAddr(strings.Trim(strings.TrimSpace(v), "[]"))
			if err != nil {
				return "", fmt.Errorf("ip: %q is not an IP address", v)
			}
			return strconv.Quote(addr.Unmap().String()), nil
		},
		// port VALUE: VALUE as a port number; an error if it is not one.
		"port": func(v string) (string, error) {
			p, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
			if err != nil {
				return "", fmt.Errorf("port: %q is not a port number", v)
			}
			return strconv.FormatUint(p, 10), nil
		},
		// quote VALUE: a KFL string literal.
		"quote": func(v string) string { return strconv.Quote(v) },
		// target: the built-in target's query; an error when there is none.
		"target": func() (string, error) {
			t, ok := Target(a, res)
			if !ok {
				return "", errNoTarget
			}
			return t, nil
		},
		// remoteIP: the remote IP the built-in target uses, "" if none.
		"remoteIP": func() string {
			if addr, ok := RemoteIP(a); ok {
				return addr.String()
			}
			return ""
		},
		// podIP: the IP of the alert's pod (k8s.ns.name, k8s.pod.name), "" if unknown.
		"podIP": func() string {
			if addr, ok := podIP(a, res); ok {
				return addr.String()
			}
			return ""
		},
	}
}

// Target is the built-in target's KFL: every stream to or from the
// alert's remote IP (see RemoteIP), or else to or from the IP of the pod
// named by k8s.ns.name and k8s.pod.name when the resolver knows it.
func Target(a *Alert, res PodResolver) (string, bool) {
	addr, ok := RemoteIP(a)
	if !ok {
		addr, ok = podIP(a, res)
	}
	if !ok {
		return "", false
	}
	lit := strconv.Quote(addr.String())
	return "(src.ip == " + lit + " or dst.ip == " + lit + ")", true
}

func podIP(a *Alert, res PodResolver) (netip.Addr, bool) {
	ns, pod := a.Field("k8s.ns.name"), a.Field("k8s.pod.name")
	if res == nil || ns == "" || pod == "" {
		return netip.Addr{}, false
	}
	addr, ok := res.PodIP(ns, pod)
	return addr.Unmap(), ok && addr.IsValid()
}

// RemoteIP is the peer the alert's connection talks to, from Falco's fd.*
// fields: fd.rip when given; else the side of fd.name
// ("cip:cport->sip:sport") or of fd.cip/fd.sip that is not local, local
// being told by fd.lip, or by fd.lport/fd.rport against the ports; else
// fd.sip. The unspecified address is no target.
func RemoteIP(a *Alert) (netip.Addr, bool) {
	if ip, ok := parseIP(a.Field("fd.rip")); ok {
		return ip, true
	}
	cip, cport, sip, sport, _ := parseFDName(a.Field("fd.name"))
	if c, ok := parseIP(a.Field("fd.cip")); ok {
		cip = c
	}
	if s, ok := parseIP(a.Field("fd.sip")); ok {
		sip = s
	}
	if p := a.Field("fd.cport"); p != "" {
		cport = p
	}
	if p := a.Field("fd.sport"); p != "" {
		sport = p
	}
	if lip, ok := parseIP(a.Field("fd.lip")); ok {
		switch {
		case cip.IsValid() && cip == lip && sip.IsValid():
			return validTarget(sip)
		case sip.IsValid() && sip == lip && cip.IsValid():
			return validTarget(cip)
		}
	}
	rport, lport := a.Field("fd.rport"), a.Field("fd.lport")
	if cip.IsValid() && sip.IsValid() && cport != sport {
		switch {
		case rport != "" && rport == sport, lport != "" && lport == cport:
			return validTarget(sip)
		case rport != "" && rport == cport, lport != "" && lport == sport:
			return validTarget(cip)
		}
	}
	if sip.IsValid() {
		return validTarget(sip) // Falco's outbound rules name the server
	}
	return netip.Addr{}, false
}

func validTarget(ip netip.Addr) (netip.Addr, bool) {
	if !ip.IsValid() || ip.IsUnspecified() {
		return netip.Addr{}, false
	}
	return ip, true
}

func parseIP(s string) (netip.Addr, bool) {
	s = strings.Trim(strings.TrimSpace(s), "[]")
	if s == "" {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// parseFDName splits Falco's fd.name of a connected socket,
// "10.0.0.1:43210->1.2.3.4:443" (IPv6 addresses are not bracketed: the
// port is after the last colon).
func parseFDName(s string) (cip netip.Addr, cport string, sip netip.Addr, sport string, ok bool) {
	l, r, found := strings.Cut(s, "->")
	if !found {
		return
	}
	split := func(hp string) (netip.Addr, string, bool) {
		i := strings.LastIndexByte(hp, ':')
		if i <= 0 {
			return netip.Addr{}, "", false
		}
		ip, ok := parseIP(hp[:i])
		if _, err := strconv.ParseUint(hp[i+1:], 10, 16); err != nil {
			return netip.Addr{}, "", false
		}
		return ip, hp[i+1:], ok
	}
	var ok1, ok2 bool
	cip, cport, ok1 = split(strings.TrimSpace(l))
	sip, sport, ok2 = split(strings.TrimSpace(r))
	if !ok1 || !ok2 {
		return netip.Addr{}, "", netip.Addr{}, "", false
	}
	return cip, cport, sip, sport, true
}
