package collector

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestFileLinkType: one link type is kept, a mix (across files or inside
// one pcapng) needs LINUX_SLL2, and an unreadable file is an error.
func TestFileLinkType(t *testing.T) {
	dir := t.TempDir()
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(1_700_000_000, 0), CaptureLength: 1, Length: 1}
	pcapOf := func(name string, lt layers.LinkType) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w := pcapgo.NewWriter(f)
		w.WriteFileHeader(65535, lt)
		w.WritePacket(ci, []byte{0x45})
		return path
	}
	eth, raw := "../dissect/testdata/http.pcap", pcapOf("raw.pcap", layers.LinkTypeRaw)

	mixed := filepath.Join(dir, "mixed.pcapng")
	f, err := os.Create(mixed)
	if err != nil {
		t.Fatal(err)
	}
	ng, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{Name: "eth", LinkType: layers.LinkTypeEthernet}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	tun, _ := ng.AddInterface(pcapgo.NgInterface{Name: "tun", LinkType: layers.LinkTypeRaw})
	ng.WritePacket(gopacket.CaptureInfo{Timestamp: ci.Timestamp, CaptureLength: 14, Length: 14}, make([]byte, 14))
	ng.WritePacket(gopacket.CaptureInfo{Timestamp: ci.Timestamp, CaptureLength: 1, Length: 1, InterfaceIndex: tun}, []byte{0x45})
	ng.Flush()
	f.Close()

	for _, tc := range []struct {
		names []string
		want  layers.LinkType
	}{
		{[]string{eth}, layers.LinkTypeEthernet},
		{[]string{eth, eth}, layers.LinkTypeEthernet},
		{[]string{raw}, layers.LinkTypeRaw},
		{[]string{eth, raw}, layers.LinkTypeLinuxSLL2},
		{[]string{mixed}, layers.LinkTypeLinuxSLL2},
	} {
		got, err := FileLinkType(context.Background(), tc.names)
		if err != nil || got != tc.want {
			t.Errorf("FileLinkType(%v) = %v, %v; want %v", tc.names, got, err, tc.want)
		}
	}
	if _, err := FileLinkType(context.Background(), []string{filepath.Join(dir, "missing.pcap")}); err == nil {
		t.Error("a missing file is not an error")
	}
}
