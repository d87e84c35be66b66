package dissect_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// tlsTraffic runs openssl s_server in B and TLS 1.2/1.3 clients with SNI
// and ALPN in A.
func tlsTraffic(t *testing.T, p *netnstest.Pair) {
	netnstest.RequireTool(t, "openssl", "curl")
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", cert, "-subj", "/CN=kflcap.test", "-days", "1").CombinedOutput(); err != nil {
		t.Fatalf("make certificate: %v\n%s", err, out)
	}
	netnstest.Start(t, p.B, "openssl", "s_server", "-accept", "8443", "-cert", cert, "-key", key, "-alpn", "http/1.1", "-www", "-quiet")
	netnstest.WaitListening(t, p.B, "tcp", 8443)
	for _, args := range [][]string{
		{"-servername", "one.kflcap.test", "-alpn", "h2,http/1.1"},
		{"-servername", "two.kflcap.test", "-tls1_2"},
		{"-servername", "three.kflcap.test", "-alpn", "h2"},
	} {
		cmd := []string{"-c", "openssl s_client -connect " + p.IPB + ":8443 " + strings.Join(args, " ") + " </dev/null >/dev/null 2>&1"}
		netnstest.Output(p.A, "sh", cmd...)
	}
	netnstest.Exec(t, p.A, "curl", "-sk", "-o", "/dev/null", "--resolve", "web.kflcap.test:8443:"+p.IPB, "https://web.kflcap.test:8443/")
}

func TestTLSAgainstTshark(t *testing.T) {
	p := netnstest.NewPair(t)
	path := capture(t, p, "tls", func() { tlsTraffic(t, p) })
	entries, _ := dissectFile(t, path, dissect.Config{})
	ranks := streamRanks(entries)
	var got, gotV []string
	for _, e := range entries {
		if e.TLS == nil {
			continue
		}
		if e.Protocol.Name != "tls" || e.Dst.Port != 8443 {
			t.Errorf("entry %s: protocol %q dst %v", e.Stream, e.Protocol.Name, e.Dst)
		}
		got = append(got, fmt.Sprintf("%d %s %s", ranks[e.StreamID], e.TLS.ServerName, strings.Join(e.TLS.ALPN, ",")))
		if e.TLS.NegotiatedVersion != "" { // no ServerHello when ALPN fails
			v := map[string]string{"1.2": "0x0303", "1.3": "0x0304"}[e.TLS.NegotiatedVersion]
			gotV = append(gotV, fmt.Sprintf("%d %s %s", ranks[e.StreamID], v, e.TLS.NegotiatedALPN))
		}
	}
	var want, wantV []string
	for _, r := range tshark(t, path, "tls.handshake.type == 1", "tcp.stream", "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str") {
		want = append(want, strings.Join(r, " "))
	}
	for _, r := range tshark(t, path, "tls.handshake.type == 2", "tcp.stream", "tls.handshake.extensions.supported_version", "tls.handshake.version", "tls.handshake.extensions_alpn_str") {
		v := r[1]
		if v == "" {
			v = r[2]
		}
		wantV = append(wantV, fmt.Sprintf("%s %s %s", r[0], v, r[3]))
	}
	if len(want) < 4 {
		t.Fatalf("tshark saw %d ClientHellos: %q", len(want), want)
	}
	diffSets(t, "TLS ClientHello (stream, sni, alpn)", got, want)
	diffSets(t, "TLS ServerHello (stream, version, alpn)", gotV, wantV)
}
