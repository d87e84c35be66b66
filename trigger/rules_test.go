package trigger

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kflcap/kflcap/kfl"
)

// parseYAML parses a triggers: list as the agent's config loader does.
func parseYAML(t *testing.T, src string) ([]Rule, error) {
	t.Helper()
	var doc struct {
		Triggers []yaml.Node `yaml:"triggers"`
	}
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return ParseRules(doc.Triggers)
}

func mustRules(t *testing.T, src string) []Rule {
	t.Helper()
	rules, err := parseYAML(t, src)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func TestParseRules(t *testing.T) {
	rules := mustRules(t, `
triggers:
  - name: reverse-shell
    match:
      rules: ["Redirect STDOUT/STDIN to Network Connection in Container", "Netcat Remote Code Execution in Container"]
      priority: ">= Notice"
      tags: [[network, mitre_execution], "T1059, container"]
      output_fields: ["k8s.ns.name != kube-system, fd.rport in (4444, 9001)"]
      source: syscall
    kfl: 'src.ip == {{ ip (field "fd.rip") }} or dst.ip == {{ ip (field "fd.rip") }}'
    duration: 1m
    lookback: 20s
    labels: {team: sec}
    continue: true
  - name: shells
    match: {priority: Warning}
`)
	if len(rules) != 2 {
		t.Fatalf("%d rules", len(rules))
	}
	r := rules[0]
	if r.Name != "reverse-shell" || r.Duration != time.Minute || r.Lookback != 20*time.Second || !r.Continue || r.Labels["team"] != "sec" {
		t.Errorf("rule 0: %+v", r)
	}
	if len(r.Match.Tags) != 2 || len(r.Match.Tags[1]) != 2 || r.Match.Tags[1][1] != "container" {
		t.Errorf("tags: %v", r.Match.Tags)
	}
	if len(r.Match.Sources) != 1 || r.Match.Sources[0] != "syscall" {
		t.Errorf("source: %v", r.Match.Sources)
	}
	if rules[1].Duration != DefaultDuration || rules[1].Lookback != DefaultLookback {
		t.Errorf("defaults: %+v", rules[1])
	}

	def, err := ParseRules(nil)
	if err != nil || len(def) != 1 || def[0].Name != "default" {
		t.Errorf("no triggers: %v %v", def, err)
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"triggers: [{match: {}}]", "triggers[0].name: missing"},
		{"triggers: [{name: a}, {name: a}]", `triggers[1].name: "a" is already`},
		{"triggers: [{name: a, kfl2: x}]", "triggers[0].kfl2: unknown key"},
		{"triggers: [{name: a, match: {prio: x}}]", "triggers[0].match.prio: unknown key"},
		{"triggers: [{name: a, match: {priority: '>= Severe'}}]", `triggers[0].match.priority: "Severe" is not a priority`},
		{"triggers: [{name: a, match: {output_fields: ['k8s.ns.name']}}]", "triggers[0].match.output_fields[0]: \"k8s.ns.name\" is not a condition"},
		{"triggers: [{name: a, match: {output_fields: ['k in a, b']}}]", "triggers[0].match.output_fields[0]"},
		{"triggers: [{name: a, match: {rules: {x: 1}}}]", "triggers[0].match.rules:"},
		{"triggers: [{name: a, duration: 3x}]", `triggers[0].duration: "3x" is not a duration`},
		{"triggers: [{name: a, duration: 0s}]", "triggers[0].duration: must be more than 0"},
		{"triggers: [{name: a, lookback: 1h}]", "triggers[0].lookback: 1h0m0s is outside"},
		{"triggers: [{name: a, kfl: '{{ field '}]", "triggers[0].kfl: template:"},
		{"triggers: [{name: a, kfl: '{{ nosuchfunc }}'}]", "triggers[0].kfl: template:"},
		{"triggers: [{name: a, enabled: maybe}]", "triggers[0].enabled:"},
		{"triggers: [x]", "triggers[0]: line 1: a trigger rule is a mapping"},
	} {
		_, err := parseYAML(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestMatches(t *testing.T) {
	redirect := decodeFixture(t, "falco_redirect_stdout_network.json")
	shell := decodeFixture(t, "falco_terminal_shell.json")
	docs := decodeFixture(t, "falco_docs_write_below_binary_dir.json")
	for _, tc := range []struct {
		match string
		want  [3]bool // redirect, shell, docs
	}{
		{`{}`, [3]bool{true, true, true}},
		{`{rules: ["Terminal shell in container", "Write below binary dir"]}`, [3]bool{false, true, true}},
		{`{priority: ">= Warning"}`, [3]bool{false, false, true}},
		{`{priority: ">=notice"}`, [3]bool{true, true, true}},
		{`{priority: "< Error"}`, [3]bool{true, true, false}},
		{`{priority: "Notice"}`, [3]bool{true, true, false}},
		{`{priority: "!= Notice"}`, [3]bool{false, false, true}},
		{`{tags: [[network, mitre_execution]]}`, [3]bool{true, false, false}},
		{`{tags: [[network, nosuch], [shell]]}`, [3]bool{false, true, false}},
		{`{tags: "container, T1059"}`, [3]bool{true, true, false}},
		{`{source: syscall}`, [3]bool{true, true, false}},
		{`{source: [k8s_audit, syscall]}`, [3]bool{true, true, false}},
		{`{output_fields: ["k8s.ns.name=shop"]}`, [3]bool{true, true, false}},
		{`{output_fields: ["k8s.ns.name!=kube-system"]}`, [3]bool{true, true, true}},
		{`{output_fields: ["fd.rport in (4444, 9001), proc.name=bash"]}`, [3]bool{true, false, false}},
		{`{output_fields: ["fd.rport not in (4444)"]}`, [3]bool{false, true, true}},
		{`{output_fields: ["fd.rport=22", "user.name='root'"]}`, [3]bool{true, true, true}},
		{`{output_fields: ["fd.rport=22", "proc.name=cat"]}`, [3]bool{false, false, false}},
		{`{rules: ["Terminal shell in container"], priority: ">= Warning"}`, [3]bool{false, false, false}},
	} {
		rules := mustRules(t, "triggers: [{name: t, match: "+tc.match+"}]")
		for i, a := range []*Alert{redirect, shell, docs} {
			if got := rules[0].Matches(a); got != tc.want[i] {
				t.Errorf("match %s on %q = %v, want %v", tc.match, a.Rule, got, tc.want[i])
			}
		}
	}
}

func TestRemoteIP(t *testing.T) {
	for _, tc := range []struct {
		fields map[string]string
		want   string
	}{
		{map[string]string{"fd.rip": "203.0.113.5", "fd.sip": "10.0.0.9"}, "203.0.113.5"},
		// Stock rule output: fd.name and ports, no fd.rip.
		{map[string]string{"fd.name": "10.244.1.17:41822->203.0.113.50:4444", "fd.lport": "41822", "fd.rport": "4444"}, "203.0.113.50"},
		// An inbound connection: the remote side is the client.
		{map[string]string{"fd.name": "198.51.100.7:51000->10.244.1.17:22", "fd.lport": "22", "fd.rport": "51000"}, "198.51.100.7"},
		{map[string]string{"fd.cip": "198.51.100.7", "fd.sip": "10.244.1.17", "fd.lip": "10.244.1.17"}, "198.51.100.7"},
		{map[string]string{"fd.cip": "10.244.1.17", "fd.sip": "198.51.100.9", "fd.lip": "10.244.1.17"}, "198.51.100.9"},
		{map[string]string{"fd.sip": "192.0.2.1"}, "192.0.2.1"},
		{map[string]string{"fd.name": "fd99::1:43000->fd99::2:8080", "fd.rport": "8080"}, "fd99::2"},
		{map[string]string{"fd.rip": "::ffff:192.0.2.3"}, "192.0.2.3"},
		{map[string]string{"fd.rip": "<NA>", "fd.sip": "0.0.0.0"}, ""},
		{map[string]string{"fd.name": "/etc/shadow"}, ""},
		{map[string]string{}, ""},
	} {
		a := &Alert{Rule: "r", OutputFields: tc.fields}
		ip, ok := RemoteIP(a)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != tc.want {
			t.Errorf("RemoteIP(%v) = %q, want %q", tc.fields, got, tc.want)
		}
	}
}

type mapResolver map[string]netip.Addr

func (m mapResolver) PodIP(ns, name string) (netip.Addr, bool) {
	a, ok := m[ns+"/"+name]
	return a, ok
}

func TestDefaultRuleSpec(t *testing.T) {
	r := DefaultRule()
	redirect := decodeFixture(t, "falco_redirect_stdout_network.json")
	spec, err := r.Spec(redirect, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.KFL != `(src.ip == "203.0.113.50" or dst.ip == "203.0.113.50")` {
		t.Errorf("kfl = %s", spec.KFL)
	}
	if spec.Duration != 30*time.Second || spec.Lookback != 10*time.Second || spec.Rule != "default" || spec.Alert != redirect {
		t.Errorf("spec = %+v", spec)
	}
	if spec.Name != redirect.Rule || spec.Labels["k8s.pod.name"] != "shop-frontend-7d9c5b6f4-x2x8q" || spec.Labels["falco.priority"] != "Notice" {
		t.Errorf("name %q labels %v", spec.Name, spec.Labels)
	}

	// The Falcosidekick form has fd.name and string ports only.
	sk := decodeFixture(t, "falcosidekick_redirect_stdout_network.json")
	if spec2, err := r.Spec(sk, nil); err != nil || spec2.KFL != spec.KFL {
		t.Errorf("falcosidekick: %q %v", spec2.KFL, err)
	}

	// A shell alert has no connection: the pod's IP, when the resolver knows it.
	shell := decodeFixture(t, "falco_terminal_shell.json")
	if _, err := r.Spec(shell, nil); !errors.Is(err, errNoTarget) {
		t.Errorf("no resolver: %v", err)
	}
	res := mapResolver{"shop/shop-frontend-7d9c5b6f4-x2x8q": netip.MustParseAddr("10.244.1.17")}
	spec, err = r.Spec(shell, res)
	if err != nil || spec.KFL != `(src.ip == "10.244.1.17" or dst.ip == "10.244.1.17")` {
		t.Errorf("pod target: %q %v", spec.KFL, err)
	}
	// Talon names the pod too.
	talon := decodeFixture(t, "talon_webhook_notifier.json")
	if spec, err := r.Spec(talon, res); err != nil || !strings.Contains(spec.KFL, "10.244.1.17") {
		t.Errorf("talon pod target: %q %v", spec.KFL, err)
	}
}

func TestTemplates(t *testing.T) {
	redirect := decodeFixture(t, "falco_redirect_stdout_network.json")
	for _, tc := range []struct{ tmpl, want, err string }{
		{`dst.ip == "{{ index .OutputFields "fd.sip" }}" or src.ip == "{{ index .OutputFields "fd.sip" }}"`, `dst.ip == "203.0.113.50" or src.ip == "203.0.113.50"`, ""},
		{`tcp and dst.ip == {{ ip (field "fd.sip") }} and dst.port == {{ port (field "fd.rport") }}`, `tcp and dst.ip == "203.0.113.50" and dst.port == 4444`, ""},
		{`{{ target }} and tcp`, `(src.ip == "203.0.113.50" or dst.ip == "203.0.113.50") and tcp`, ""},
		{`src.ip == "{{ remoteIP }}"`, `src.ip == "203.0.113.50"`, ""},
		{`{{ if eq .Priority "Notice" }}dst.port == {{ port (field "fd.rport") }}{{ else }}tcp{{ end }}`, `dst.port == 4444`, ""},
		// A missing field fails the alert rather than capturing the wrong thing.
		{`dst.ip == {{ ip (field "fd.nosuch") }}`, "", `ip: "" is not an IP address`},
		{`dst.port == {{ port (field "proc.name") }}`, "", `port: "bash" is not a port number`},
		// Rendered but not KFL: the *kfl.Error comes back.
		{`dst.ip == "{{ field "proc.name" }}"`, "", "rendered kfl"},
		{`   `, "", ""},
		{`{{ "" }}`, "", "empty query"},
	} {
		if strings.TrimSpace(tc.tmpl) == "" {
			continue
		}
		r := Rule{Name: "t", KFL: tc.tmpl, Duration: time.Second}
		if err := r.compile(); err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		spec, err := r.Spec(redirect, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.tmpl, err, tc.err)
			}
			continue
		}
		if err != nil || spec.KFL != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.tmpl, spec.KFL, err, tc.want)
		}
		if spec.Name != "t" {
			t.Errorf("name = %q", spec.Name)
		}
	}
	r := Rule{Name: "t", KFL: `dst.ip == "{{ field "proc.name" }}"`, Duration: time.Second}
	r.compile()
	_, err := r.Spec(redirect, nil)
	var ke *kfl.Error
	if !errors.As(err, &ke) || ke.Offset == 0 {
		t.Errorf("render error does not carry the kfl position: %v", err)
	}
}

// Values come from the monitored workload: the typed helpers refuse what
// would change the query.
func TestTemplateInjection(t *testing.T) {
	a := &Alert{Rule: "r", OutputFields: map[string]string{
		"fd.sip":       `1.2.3.4" or dst.port > 0 or "`,
		"fd.rport":     `80 or true`,
		"proc.cmdline": `x" or http or "`,
	}}
	for _, tmpl := range []string{
		`dst.ip == {{ ip (field "fd.sip") }}`,
		`dst.port == {{ port (field "fd.rport") }}`,
	} {
		r := Rule{Name: "t", KFL: tmpl, Duration: time.Second}
		r.compile()
		if spec, err := r.Spec(a, nil); err == nil {
			t.Errorf("%s rendered %q", tmpl, spec.KFL)
		}
	}
	r := Rule{Name: "t", KFL: `request.path == {{ quote (field "proc.cmdline") }}`, Duration: time.Second}
	r.compile()
	spec, err := r.Spec(a, nil)
	if err != nil || spec.KFL != `request.path == "x\" or http or \""` {
		t.Errorf("quote: %q %v", spec.KFL, err)
	}
}

// FuzzParseRules: the triggers: parser never panics, and a rule it accepts
// can match and render any alert without panicking.
func FuzzParseRules(f *testing.F) {
	f.Add(`triggers: [{name: a, match: {rules: [x], priority: ">= Warning", tags: [[a, b], "c, d"], output_fields: ["k=v, k2 in (a, b)"], source: syscall}, kfl: 'dst.ip == {{ ip (field "fd.sip") }}'}]`)
	f.Add(`triggers: [{name: b, match: {output_fields: ["k not in (x)", "a!=b"]}, duration: 5s, lookback: 0s, continue: true}]`)
	f.Add(`triggers: [{name: c, kfl: '{{ target }} and tcp', enabled: false, labels: {a: b}}]`)
	alert := decodeFixture(f, "falco_redirect_stdout_network.json")
	f.Fuzz(func(t *testing.T, src string) {
		var doc struct {
			Triggers []yaml.Node `yaml:"triggers"`
		}
		if yaml.Unmarshal([]byte(src), &doc) != nil {
			return
		}
		rules, err := ParseRules(doc.Triggers)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "triggers[") {
				t.Fatalf("error does not name the entry: %v", err)
			}
			return
		}
		for i := range rules {
			r := &rules[i]
			if r.Name == "" || r.Duration <= 0 || r.Duration > MaxDuration || r.Lookback < 0 || r.Lookback > MaxLookback {
				t.Fatalf("accepted %+v", r)
			}
			if r.Matches(alert) {
				r.Spec(alert, nil)
			}
		}
	})
}

// A Rule built in Go is inert until compiled, rather than silently
// ignoring its template and conditions.
func TestUncompiledRule(t *testing.T) {
	a := decodeFixture(t, "falco_redirect_stdout_network.json")
	r := Rule{Name: "go", KFL: `tcp and {{ target }}`, Match: Match{Priority: ">= Critical"}, Duration: time.Second}
	if r.Matches(a) {
		t.Error("uncompiled rule matches")
	}
	if _, err := r.Spec(a, nil); err == nil || !strings.Contains(err.Error(), "not compiled") {
		t.Errorf("uncompiled Spec: %v", err)
	}
	if err := r.Compile(); err != nil {
		t.Fatal(err)
	}
	if r.Matches(a) { // Notice is below Critical
		t.Error("priority condition ignored")
	}
	if spec, err := r.Spec(a, nil); err != nil || !strings.HasPrefix(spec.KFL, "tcp and (") {
		t.Errorf("compiled: %q %v", spec.KFL, err)
	}
}
