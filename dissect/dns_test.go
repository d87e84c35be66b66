package dissect_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// dnsTraffic asks dnsmasq in B fixed records with dig, over UDP and TCP,
// plus one query nobody answers.
func dnsTraffic(t *testing.T, p *netnstest.Pair) {
	netnstest.RequireTool(t, "dnsmasq", "dig")
	netnstest.Start(t, p.B, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--port=53",
		"--listen-address="+p.IPB, "--bind-interfaces", "--pid-file=", "--user=root", "--local=/test/",
		"--address=/a.test/10.99.0.10", "--address=/a.test/fd99::10",
		"--host-record=h.test,10.99.0.11,fd99::11", "--cname=c.test,h.test",
		"--txt-record=t.test,hello world", "--mx-host=m.test,mail.m.test,10",
		"--srv-host=_http._tcp.s.test,h.test,80,1,2", "--ptr-record=11.0.99.10.in-addr.arpa,h.test")
	netnstest.WaitListening(t, p.B, "udp", 53)
	queries := [][]string{
		{"a.test", "A"}, {"a.test", "AAAA"}, {"h.test", "A"}, {"c.test", "A"}, {"t.test", "TXT"},
		{"m.test", "MX"}, {"_http._tcp.s.test", "SRV"}, {"-x", "10.99.0.11"}, {"nope.test", "A"},
	}
	for _, tcp := range []string{"+notcp", "+tcp"} {
		for _, q := range queries {
			netnstest.Exec(t, p.A, "dig", append([]string{"@" + p.IPB, tcp, "+tries=1", "+time=2"}, q...)...)
		}
	}
	// Unanswered: nothing listens on 5353 in B.
	netnstest.Output(p.A, "dig", "@"+p.IPB, "-p", "5353", "+tries=1", "+time=1", "lost.test", "A")
}

var dnsTypeNum = map[string]string{"A": "1", "NS": "2", "CNAME": "5", "SOA": "6", "PTR": "12", "MX": "15", "TXT": "16", "AAAA": "28", "SRV": "33"}
var rcodeNum = map[string]string{"NoError": "0", "FormErr": "1", "ServFail": "2", "NXDomain": "3", "NotImp": "4", "Refused": "5"}

func dnsTuples(entries []*dissect.Entry) []string {
	ranks := streamRanks(entries)
	var out []string
	for _, e := range entries {
		d := e.DNS
		if d == nil || !d.HasResponse {
			continue
		}
		var vals []string
		r := &d.Response
		for _, sec := range [][]dissect.DNSRecord{r.Answers, r.Authorities, r.Additionals} {
			for _, a := range sec {
				switch a.Type {
				case "A", "AAAA":
					vals = append(vals, a.IP)
				case "CNAME":
					vals = append(vals, a.CNAME)
				case "MX", "SRV":
					f := strings.Fields(a.Data)
					vals = append(vals, f[len(f)-1])
				case "TXT", "PTR", "NS":
					vals = append(vals, a.Data)
				}
			}
		}
		slices.Sort(vals)
		for _, q := range r.Questions {
			out = append(out, fmt.Sprintf("%s %d %s %s %s [%s]", e.Protocol.Layer4, ranks[e.StreamID], q.Name, dnsTypeNum[q.Type], rcodeNum[r.Code], strings.Join(vals, " ")))
		}
	}
	return out
}

func tsharkDNSTuples(t testing.TB, path string) []string {
	var out []string
	for _, r := range tshark(t, path, "dns.flags.response == 1", "udp.stream", "tcp.stream", "dns.qry.name", "dns.qry.type", "dns.flags.rcode",
		"dns.a", "dns.aaaa", "dns.cname", "dns.txt", "dns.mx.mail_exchange", "dns.srv.target", "dns.ptr.domain_name", "dns.ns") {
		l4, stream := "udp", r[0]
		if r[1] != "" {
			l4, stream = "tcp", r[1]
		}
		var vals []string
		for _, f := range r[5:] {
			if f != "" {
				vals = append(vals, strings.Split(f, ",")...)
			}
		}
		slices.Sort(vals)
		out = append(out, fmt.Sprintf("%s %s %s %s %s [%s]", l4, stream, r[2], r[3], r[4], strings.Join(vals, " ")))
	}
	return out
}

func TestDNSAgainstTshark(t *testing.T) {
	p := netnstest.NewPair(t)
	path := capture(t, p, "dns", func() { dnsTraffic(t, p) })
	entries, st := dissectFile(t, path, dissect.Config{})
	got, want := dnsTuples(entries), tsharkDNSTuples(t, path)
	if len(want) < 18 {
		t.Fatalf("tshark saw only %d DNS responses: %q", len(want), want)
	}
	diffSets(t, "DNS (stream, qname, qtype, rcode, answers)", got, want)
	var unanswered []string
	for _, e := range entries {
		if e.DNS != nil && !e.DNS.HasResponse {
			unanswered = append(unanswered, e.DNS.Request.Questions[0].Name)
		}
	}
	if !slices.Equal(unanswered, []string{"lost.test"}) {
		t.Errorf("unanswered queries = %q, want [lost.test]", unanswered)
	}
	t.Logf("%d DNS responses equal to tshark's; stats %+v", len(got), st)
}
