package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/internal/netnstest"
	"github.com/kflcap/kflcap/kfl"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/repo"
	"github.com/kflcap/kflcap/trigger"
)

// dnsPacket builds an Ethernet/IPv4/UDP DNS query or response.
func dnsPacket(t *testing.T, client string, port uint16, id uint16, response bool, at time.Time) packet.Packet {
	t.Helper()
	src, dst := net.ParseIP(client).To4(), net.ParseIP("10.50.0.53").To4()
	sport, dport := layers.UDPPort(port), layers.UDPPort(53)
	if response {
		src, dst, sport, dport = dst, src, dport, sport
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src, DstIP: dst}
	udp := &layers.UDP{SrcPort: sport, DstPort: dport}
	udp.SetNetworkLayerForChecksum(ip)
	dns := &layers.DNS{ID: id, QR: response, RD: true, Questions: []layers.DNSQuestion{{Name: []byte("shop.example.test"), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	if response {
		dns.ANCount = 1
		dns.Answers = []layers.DNSResourceRecord{{Name: []byte("shop.example.test"), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 60, IP: net.ParseIP("10.50.7.7").To4()}}
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4},
		ip, udp, dns)
	if err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	return packet.Packet{Time: at, LinkType: layers.LinkTypeEthernet, Data: data, WireLen: len(data), Ifindex: 3}
}

// A capture started at T with a 10 s lookback holds the matching streams
// from the lookback ring (before T) and from live traffic (after T), and
// nothing else; its archive is a consistent repository named
// trigger_<slug>_<unix>.tar.gz whose content.json carries the trigger.
func TestTriggeredCaptureIncludesLookback(t *testing.T) {
	dir := t.TempDir()
	spool := &repo.Spool{Dir: dir}
	outbox := filepath.Join(dir, "outbox")
	os.MkdirAll(outbox, 0o755)
	sealed := make(chan Sealed, 1)
	tr := &Triggers{
		Lookback: NewLookback(1 << 20),
		Log:      slog.New(slog.DiscardHandler),
		Template: JobTemplate{Outbox: outbox, Spool: spool, Snaplen: 65535, OnSealed: func(s Sealed) { sealed <- s }},
	}
	now := time.Now()
	feed := func(p packet.Packet) {
		tr.Lookback.Add(&p)
		tr.Feed(&p)
	}
	// Before the trigger: the suspect (10.50.0.9) and a bystander (10.50.0.8).
	feed(dnsPacket(t, "10.50.0.9", 40001, 1, false, now.Add(-5*time.Second)))
	feed(dnsPacket(t, "10.50.0.9", 40001, 1, true, now.Add(-5*time.Second+time.Millisecond)))
	feed(dnsPacket(t, "10.50.0.8", 40002, 2, false, now.Add(-4*time.Second)))
	feed(dnsPacket(t, "10.50.0.8", 40002, 2, true, now.Add(-4*time.Second+time.Millisecond)))
	// Too old for the lookback window.
	old := dnsPacket(t, "10.50.0.9", 40000, 9, false, now.Add(-60*time.Second))
	tr.Lookback.Add(&old)

	if _, err := tr.Start(trigger.Spec{KFL: `src.ip == "nonsense`}); err == nil {
		t.Fatal("an invalid query started a capture")
	} else if ke := (*kfl.Error)(nil); !errors.As(err, &ke) {
		t.Fatalf("error %v is not a *kfl.Error with a position", err)
	}
	st, err := tr.Start(trigger.Spec{KFL: `dns and (src.ip == "10.50.0.9" or dst.ip == "10.50.0.9")`, Lookback: 10 * time.Second, Duration: time.Hour, Name: "Suspicious DNS!"})
	if err != nil {
		t.Fatal(err)
	}
	tr.Tick(time.Now()) // begins: replays the lookback
	// After the trigger.
	feed(dnsPacket(t, "10.50.0.9", 40003, 3, false, now.Add(time.Second)))
	feed(dnsPacket(t, "10.50.0.9", 40003, 3, true, now.Add(time.Second+time.Millisecond)))
	feed(dnsPacket(t, "10.50.0.8", 40004, 4, false, now.Add(2*time.Second)))
	tr.Tick(time.Now())
	if got, _ := tr.Get(st.ID); got.State != trigger.StateRunning || got.Streams != 2 {
		t.Fatalf("running status %+v, want 2 streams", got)
	}
	if _, err := tr.Stop(st.ID); err != nil {
		t.Fatal(err)
	}
	tr.Tick(time.Now())
	var s Sealed
	select {
	case s = <-sealed:
	case <-time.After(10 * time.Second):
		t.Fatal("the capture did not seal")
	}
	var got trigger.Status
	netnstest.WaitFor(t, 5*time.Second, func() error {
		if got, _ = tr.Get(st.ID); got.State != trigger.StateSealed {
			return fmt.Errorf("state %s", got.State)
		}
		return nil
	})
	if got.Repository != filepath.Base(s.Path) {
		t.Fatalf("final status %+v", got)
	}
	if want := "trigger_suspicious-dns_"; len(got.Repository) < len(want) || got.Repository[:len(want)] != want {
		t.Fatalf("archive name %s", got.Repository)
	}
	r, err := repo.Open(t.Context(), s.Path, repo.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if problems := r.Check(); len(problems) > 0 {
		t.Fatalf("inconsistent repository: %v", problems)
	}
	if len(r.Content.L4Streams) != 2 {
		t.Fatalf("streams %v, want the suspect's two flows (one before the trigger, one after)", r.Content.L4Streams)
	}
	if m := r.Merged(); m == nil || m.Pcap == nil || m.Pcap.Packets != 4 || m.Pcap.First.After(now) {
		t.Fatalf("merged pcap %+v: want 4 packets, the first before the trigger", m)
	}
	tc := r.Content.Trigger
	if tc == nil {
		t.Fatal("content.json has no trigger")
	}
	if tc.ID != st.ID || tc.Name != "suspicious-dns" || tc.Lookback != "10s" || tc.Duration != "1h0m0s" || tc.Alert != nil ||
		tc.Started.Location() != time.UTC || tc.From.Before(tc.Started.Add(-10*time.Second)) || tc.From.After(tc.Started) {
		t.Errorf("content.json trigger %+v", tc)
	}
	if r.Content.KFLIndex != -1 || r.Content.SealReason != "shutdown" || r.Content.Opened.IsZero() {
		t.Errorf("content.json %+v", r.Content)
	}
}

// With no lookback asked for, the packets that arrive between Start and the
// feed loop's next turn still belong to the capture.
func TestTriggeredCaptureWithoutLookback(t *testing.T) {
	dir := t.TempDir()
	outbox := filepath.Join(dir, "outbox")
	os.MkdirAll(outbox, 0o755)
	sealed := make(chan Sealed, 1)
	tr := &Triggers{
		Lookback: NewLookback(1 << 20),
		Log:      slog.New(slog.DiscardHandler),
		Template: JobTemplate{Outbox: outbox, Spool: &repo.Spool{Dir: dir}, Snaplen: 65535, OnSealed: func(s Sealed) { sealed <- s }},
	}
	feed := func(p packet.Packet) {
		tr.Lookback.Add(&p)
		tr.Feed(&p)
	}
	feed(dnsPacket(t, "10.50.0.9", 40001, 1, false, time.Now().Add(-time.Second))) // before Start: not wanted
	st, err := tr.Start(trigger.Spec{KFL: `dns`, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	feed(dnsPacket(t, "10.50.0.9", 40002, 2, false, now)) // after Start, before the capture began
	feed(dnsPacket(t, "10.50.0.9", 40002, 2, true, now.Add(time.Millisecond)))
	tr.Tick(time.Now())
	feed(dnsPacket(t, "10.50.0.9", 40003, 3, false, now.Add(time.Second)))
	feed(dnsPacket(t, "10.50.0.9", 40003, 3, true, now.Add(time.Second+time.Millisecond)))
	tr.Stop(st.ID)
	tr.Tick(time.Now())
	select {
	case s := <-sealed:
		if s.Streams != 2 {
			t.Fatalf("%d streams, want the 2 flows after Start (one of them before the capture began)", s.Streams)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no seal")
	}
}
