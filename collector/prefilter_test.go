package collector

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/bpf"
)

func TestParsePrefilter(t *testing.T) {
	pf, err := ParsePrefilter([]string{"53", "0", "65535"}, []string{"TCP", "udp", "icmp6", "47"}, []string{"10.0.0.0/8", "fd00::1"})
	want := bpf.Prefilter{
		Ports:     []uint16{53, 0, 65535},
		Protocols: []uint8{6, 17, 58, 47},
		Prefixes:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::1/128")},
	}
	if err != nil || !reflect.DeepEqual(pf, want) {
		t.Errorf("ParsePrefilter = %+v, %v; want %+v", pf, err, want)
	}
	if pf, err := ParsePrefilter(nil, nil, nil); err != nil || !pf.Empty() {
		t.Errorf("no flags: %+v, %v; want an empty prefilter", pf, err)
	}
	for _, tc := range []struct {
		ports, protos, nets []string
		want                string
	}{
		{ports: []string{"http"}, want: `--port: "http" is not a port number`},
		{ports: []string{"65536"}, want: `--port: "65536"`},
		{protos: []string{"gre"}, want: `--proto: "gre" is not tcp`},
		{protos: []string{"256"}, want: `--proto: "256"`},
		{nets: []string{"10.0.0.0/33"}, want: `--net: "10.0.0.0/33" is not an address or CIDR`},
	} {
		_, err := ParsePrefilter(tc.ports, tc.protos, tc.nets)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePrefilter(%v, %v, %v) = %v, want an error with %q", tc.ports, tc.protos, tc.nets, err, tc.want)
		}
	}
}
