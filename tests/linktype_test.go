package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kflcap/kflcap/internal/netnstest"
)

// A tun device beside the veth gives namespace A one Ethernet interface and
// one raw-IP interface (testdata/tunecho.py answers pings sent into it). A pcap capture of both must switch to LINUX_SLL2
// (tshark decodes every packet, with interface index and direction); a
// pcapng capture keeps each interface's own link type.
func TestMixedLinkTypes(t *testing.T) {
	p := netnstest.NewPair(t)
	netnstest.RequireTool(t, "tshark", "ping")
	netnstest.Exec(t, p.A, "ip", "tuntap", "add", "mode", "tun", "dev", "kfltun")
	echo := netnstest.Start(t, p.A, "python3", "testdata/tunecho.py", "kfltun")
	netnstest.Exec(t, p.A, "ip", "addr", "add", "10.98.0.1/30", "dev", "kfltun")
	netnstest.Exec(t, p.A, "ip", "link", "set", "kfltun", "up")
	// The echo answers (before the captures: these pings are not counted).
	netnstest.WaitFor(t, 10*time.Second, func() error {
		if out, err := netnstest.Output(p.A, "ping", "-c", "1", "-W", "1", "10.98.0.2"); err != nil {
			return fmt.Errorf("no echo through kfltun: %v\n%s\n%s", err, out, echo.Output())
		}
		return nil
	})
	dir := t.TempDir()
	for _, format := range []string{"pcap", "pcapng"} {
		out := filepath.Join(dir, "mixed."+format)
		cap := start(t, kflcapBin, "capture", "--netns", p.A, "-i", p.IfA, "-i", "kfltun", "--format", format, "--proto", "icmp", "-w", out)
		cap.waitCapturing(t, out)
		netnstest.Exec(t, p.A, "ping", "-c", "3", "-i", "0.05", "10.98.0.2")
		netnstest.Exec(t, p.A, "ping", "-c", "3", "-i", "0.05", p.IPB)
		// ping has its replies: every packet is in the ring, which the
		// capture drains when interrupted.
		if code := cap.interrupt(t); code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, cap.Stderr())
		}
		// 3 requests and 3 replies on each interface, all decoded to ICMP.
		fields := tshark(t, "-r", out, "-T", "fields", "-E", "separator=,", "-e", "frame.encap_type", "-e", "ip.proto", "-e", "icmp.type")
		lines := strings.Split(strings.TrimSpace(fields), "\n")
		if len(lines) != 12 {
			t.Fatalf("%s: %d packets, want 12:\n%s", format, len(lines), fields)
		}
		encaps := map[string]int{}
		for _, l := range lines {
			f := strings.Split(l, ",")
			encaps[f[0]]++
			if f[2] == "" {
				t.Errorf("%s: packet not decoded to ICMP: %s", format, l)
			}
		}
		switch format {
		case "pcap":
			// 210 is Wireshark's WTAP_ENCAP for LINUX_SLL2.
			if encaps["210"] != 12 {
				t.Errorf("pcap: encapsulations %v, want all LINUX_SLL2", encaps)
			}
			dirs := tshark(t, "-r", out, "-T", "fields", "-e", "sll.pkttype", "-e", "sll.ifindex")
			if !strings.Contains(dirs, "4\t") || !strings.Contains(dirs, "0\t") {
				t.Errorf("pcap: SLL2 packet types should show outgoing (4) and host (0): %s", dirs)
			}
		case "pcapng":
			if encaps["1"] != 6 || encaps["7"] != 6 { // Ethernet, raw IP
				t.Errorf("pcapng: encapsulations %v, want 6 Ethernet and 6 raw IP", encaps)
			}
		}
	}
}
