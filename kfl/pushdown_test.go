package kfl

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/dissect"
)

// accepts is the kernel's rule, as the Prefilter doc states it.
func accepts(p Prefilter, proto uint8, src, dst netip.Addr, sport, dport uint16) bool {
	return p.Accepts(proto, src, dst, sport, dport, false)
}

func entryProto(e *dissect.Entry) uint8 {
	switch {
	case e.Protocol.Layer4 == "udp":
		return ProtoUDP
	case e.Protocol.Name == "icmp":
		return ProtoICMP
	case e.Protocol.Name == "icmpv6":
		return ProtoICMPv6
	}
	return ProtoTCP
}

// acceptsStream: every packet of the entry's stream, both directions.
func acceptsStream(p Prefilter, e *dissect.Entry) bool {
	pr := entryProto(e)
	return accepts(p, pr, e.Src.IP, e.Dst.IP, e.Src.Port, e.Dst.Port) &&
		accepts(p, pr, e.Dst.IP, e.Src.IP, e.Dst.Port, e.Src.Port)
}

func TestPrefilterAccepts(t *testing.T) {
	p := MustCompile(`udp and dst.port == 53 and dst.ip.inCidr("10.96.0.0/12")`).Prefilter()
	a, b := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.96.0.10")
	for _, tc := range []struct {
		proto        uint8
		src, dst     netip.Addr
		sport, dport uint16
		frag, want   bool
	}{
		{ProtoUDP, a, b, 40000, 53, false, true},
		{ProtoUDP, b, a, 53, 40000, false, true}, // the answer
		{ProtoTCP, a, b, 40000, 53, false, false},
		{ProtoUDP, a, a, 40000, 53, false, false},
		{ProtoUDP, a, b, 40000, 54, false, false},
		{ProtoUDP, a, b, 0, 0, true, true}, // a later fragment of a big answer
		{ProtoUDP, netip.MustParseAddr("::ffff:10.96.0.1"), a, 53, 1, false, true},
		{ProtoICMP, a, b, 0, 0, false, false}, // portless under a port constraint
	} {
		if got := p.Accepts(tc.proto, tc.src, tc.dst, tc.sport, tc.dport, tc.frag); got != tc.want {
			t.Errorf("%+v: got %v", tc, got)
		}
	}
}

func TestPushdownExamples(t *testing.T) {
	for _, tc := range []struct {
		qs   []string
		want string
	}{
		{[]string{"dns"}, "protocol in {tcp, udp}"},
		{[]string{"udp and dst.port == 53"}, "protocol in {udp} and src or dst port in {53}"},
		{[]string{"http"}, "protocol in {tcp}"},
		{[]string{"http and response.status == 500"}, "protocol in {tcp}"},
		{[]string{"response.status == 500"}, "capture everything (nothing pushable)"},
		{[]string{"not tcp"}, "capture everything (nothing pushable)"},
		{[]string{"tcp or udp"}, "protocol in {tcp, udp}"},
		{[]string{`src.ip == "10.0.0.1" or dst.port == 80`}, "capture everything (nothing pushable)"},
		{[]string{`src.ip == "10.0.0.1" or dst.ip.inCidr("192.168.0.0/16")`}, "src or dst in {10.0.0.1/32, 192.168.0.0/16}"},
		{[]string{`src.ip == "10.0.0.1" and dst.ip == "10.0.0.2"`}, "src or dst in {10.0.0.1/32}"},
		{[]string{`tcp and dst.port >= 8000 and dst.port < 8003`}, "protocol in {tcp} and src or dst port in {8000-8002}"},
		{[]string{`dst.port < 1024 and dst.port == 443`}, "src or dst port in {443}"},
		{[]string{`dst.port < 1024`}, "capture everything (nothing pushable)"}, // holds 0, the port of ICMP entries
		{[]string{`dst.port == 0`}, "capture everything (nothing pushable)"},
		{[]string{`dst.port > 0 and dst.port < 1024`}, "src or dst port in {1-1023}"},
		{[]string{`dst.port > 1024`}, "capture everything (nothing pushable)"},
		{[]string{`dst.port == "8080" or src.port == 9090`}, "src or dst port in {8080, 9090}"},
		{[]string{`tcp and udp`}, "capture everything (nothing pushable)"}, // matches nothing
		{[]string{"udp and dst.port == 53", "tcp and dst.port == 80"}, "protocol in {tcp, udp} and src or dst port in {53, 80}"},
		{[]string{"udp and dst.port == 53", "http"}, "protocol in {tcp, udp}"},
		{[]string{"udp and dst.port == 53", "response.status == 500"}, "capture everything (nothing pushable)"},
		{[]string{"false", "dns"}, "protocol in {tcp, udp}"},
		{[]string{`protocol.layer4 == "udp" and src.ip.inCidr("10.1.0.0/16")`}, "protocol in {udp} and src or dst in {10.1.0.0/16}"},
		{[]string{`cel: udp && dst.port == 53`}, "protocol in {udp} and src or dst port in {53}"},
		{[]string{`cel: src.ip == "10.0.0.1" || dst.ip == "10.0.0.2"`}, "src or dst in {10.0.0.1/32, 10.0.0.2/32}"},
		{[]string{`cel: !(dst.port == 53)`}, "capture everything (nothing pushable)"},
		{[]string{`cel: udp && dst.port in [53, 5353]`}, "protocol in {udp} and src or dst port in {53, 5353}"},
		{[]string{`cel: dst.ip in ["10.0.0.1", "10.0.0.2"] || src.ip == "10.0.0.3"`}, "src or dst in {10.0.0.1/32, 10.0.0.2/32, 10.0.0.3/32}"},
		{[]string{`cel: dst.port in [53, size(path)]`}, "capture everything (nothing pushable)"},
		{[]string{`cel: dst.port in []`}, "capture everything (nothing pushable)"}, // matches nothing
		{[]string{`https`}, "protocol in {tcp}"},
		{nil, "capture everything (nothing pushable)"},
	} {
		var qs []*Query
		for _, s := range tc.qs {
			qs = append(qs, MustCompile(s, WithMacros(testMacros)))
		}
		if got := Pushdown(qs...).String(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.qs, got, tc.want)
		}
	}
}

// --- the property test ---

var (
	ipPool   = []string{"10.0.0.1", "10.0.0.2", "10.0.1.9", "10.96.0.10", "192.168.1.5", "8.8.8.8", "fd00::1", "fd00::2", "2001:db8::7"}
	cidrPool = []string{"10.0.0.0/8", "10.0.0.0/24", "10.96.0.0/12", "192.168.0.0/16", "8.8.8.8/32", "fd00::/8", "2001:db8::/32", "0.0.0.0/0"}
	portPool = []uint16{53, 80, 443, 5432, 8080, 30000, 40000, 50000, 65535, 1, 0}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func randAtom(r *rand.Rand) string {
	side := pick(r, []string{"src", "dst"})
	switch r.IntN(16) {
	case 0:
		return pick(r, protocolWords)
	case 1:
		return fmt.Sprintf("%s.ip == %q", side, pick(r, ipPool))
	case 2:
		return fmt.Sprintf("%s.ip.inCidr(%q)", side, pick(r, cidrPool))
	case 3:
		return fmt.Sprintf("%s.port == %d", side, pick(r, portPool))
	case 4:
		return fmt.Sprintf("%s.port %s %d", side, pick(r, []string{"<", "<=", ">", ">=", "!="}), pick(r, portPool))
	case 5:
		return fmt.Sprintf("%s.port == \"%d\"", side, pick(r, portPool))
	case 6:
		return fmt.Sprintf("protocol.layer4 == %q", pick(r, []string{"tcp", "udp", "icmp"}))
	case 7:
		return fmt.Sprintf("protocol.name == %q", pick(r, []string{"http", "dns", "tls", "tcp", "udp"}))
	case 8:
		return fmt.Sprintf("response.status %s %d", pick(r, []string{"==", "!=", ">="}), pick(r, []int{200, 404, 500}))
	case 9:
		return fmt.Sprintf("request.path.startsWith(%q)", pick(r, []string{"/", "/api", "/x"}))
	case 10:
		return fmt.Sprintf("request.questions[*].name == %q", pick(r, []string{"a.com", "b.org"}))
	case 11:
		return pick(r, []string{"outgoing", "true", "false", "src.name == nil", "src.ip == dst.ip"})
	case 12:
		return fmt.Sprintf("%d %s %s.port", pick(r, portPool), pick(r, []string{"==", "<", ">"}), side)
	case 13:
		return fmt.Sprintf("%s.ip != %q", side, pick(r, ipPool))
	case 14:
		return fmt.Sprintf("%s.port == r\"^%d\"", side, r.IntN(9)+1)
	}
	return pick(r, []string{"https", "internal", "dns_errors"})
}

func randQuery(r *rand.Rand, depth int) string {
	if depth <= 0 || r.IntN(3) == 0 {
		return randAtom(r)
	}
	switch r.IntN(5) {
	case 0:
		return "not (" + randQuery(r, depth-1) + ")"
	case 1:
		return "(" + randQuery(r, depth-1) + ")"
	case 2:
		return randQuery(r, depth-1) + " or " + randQuery(r, depth-1)
	}
	return randQuery(r, depth-1) + " and " + randQuery(r, depth-1)
}

func randEntry(r *rand.Rand) *dissect.Entry {
	e := &dissect.Entry{
		Src:  dissect.Endpoint{IP: netip.MustParseAddr(pick(r, ipPool)), Port: pick(r, portPool)},
		Dst:  dissect.Endpoint{IP: netip.MustParseAddr(pick(r, ipPool)), Port: pick(r, portPool)},
		Node: node1, Outgoing: r.IntN(2) == 0,
	}
	if r.IntN(3) == 0 {
		e.Src.Name = "a.b"
	}
	switch r.IntN(6) {
	case 5:
		// ICMP has no ports: its entries carry port 0.
		e.Protocol = dissect.Protocol{Name: "icmp", Abbr: "ICMP"}
		e.Src.Port, e.Dst.Port = 0, 0
	case 0:
		e.Protocol = dissect.Protocol{Name: "http", Abbr: "HTTP", Layer4: "tcp"}
		e.HTTP = &dissect.HTTP{Request: dissect.HTTPRequest{Method: "GET", Path: pick(r, []string{"/", "/api/x", "/y"})},
			Response: dissect.HTTPResponse{Status: pick(r, []int{200, 404, 500})}, HasResponse: r.IntN(4) != 0}
	case 1:
		e.Protocol = dissect.Protocol{Name: "dns", Abbr: "DNS", Layer4: pick(r, []string{"tcp", "udp"})}
		e.DNS = &dissect.DNS{Request: dissect.DNSMessage{Questions: []dissect.DNSQuestion{{Name: pick(r, []string{"a.com", "b.org"})}}},
			Response: dissect.DNSMessage{Code: pick(r, []string{"NoError", "NXDomain"})}, HasResponse: r.IntN(2) == 0}
	case 2:
		e.Protocol = dissect.Protocol{Name: "tls", Abbr: "TLS", Layer4: "tcp"}
		e.TLS = &dissect.TLS{ServerName: "x.example.com", NegotiatedVersion: pick(r, []string{"", "1.3"})}
	case 3:
		e.Protocol = dissect.Protocol{Name: "tcp", Abbr: "TCP", Layer4: "tcp"}
	default:
		e.Protocol = dissect.Protocol{Name: "udp", Abbr: "UDP", Layer4: "udp"}
	}
	return e
}

// TestPushdownSound: for random queries and entries, if a query matches an
// entry then the prefilter of any query set containing it accepts every
// packet of the entry's stream, in both directions.
func TestPushdownSound(t *testing.T) {
	iters := 20000
	if testing.Short() {
		iters = 2000
	}
	r := rand.New(rand.NewPCG(4, 2026))
	entries := make([]*dissect.Entry, 300)
	for i := range entries {
		entries[i] = randEntry(r)
	}
	matched, pushed := 0, 0
	for i := 0; i < iters; i++ {
		src := randQuery(r, 4)
		if r.IntN(8) == 0 { // the CEL dialect's pushdown too
			src = "cel: " + strings.NewReplacer(" and ", " && ", " or ", " || ", "not (", "!(").Replace(src)
			in := fmt.Sprintf("%s.port in [%d, %d]", pick(r, []string{"src", "dst"}), pick(r, portPool), pick(r, portPool))
			if r.IntN(2) == 0 {
				in = fmt.Sprintf("%s.ip in [%q, %q]", pick(r, []string{"src", "dst"}), pick(r, ipPool), pick(r, ipPool))
			}
			src += pick(r, []string{" && ", " || "}) + in
		}
		q, err := Compile(src, WithMacros(testMacros))
		if err != nil {
			continue // CEL rewrites of KFL-only atoms do not compile; that is fine
		}
		others := []*Query{q}
		for j := r.IntN(3); j > 0; j-- {
			if o, err := Compile(randQuery(r, 2), WithMacros(testMacros)); err == nil {
				others = append(others, o)
			}
		}
		alone, set := Pushdown(q), Pushdown(others...)
		if !alone.All {
			pushed++
		}
		for _, e := range entries {
			if !q.Match(e) {
				continue
			}
			matched++
			if !acceptsStream(alone, e) {
				t.Fatalf("unsound: %q matches %+v but its prefilter %v drops the stream", src, e, alone)
			}
			if !acceptsStream(set, e) {
				t.Fatalf("unsound: %q (in a set of %d) matches %+v but the set's prefilter %v drops the stream", src, len(others), e, set)
			}
		}
	}
	t.Logf("%d queries, %d with a non-trivial prefilter, %d matching (query, entry) pairs checked", iters, pushed, matched)
	if pushed < iters/10 || matched < iters {
		t.Fatalf("the generator is too weak: %d pushed, %d matched", pushed, matched)
	}
}
