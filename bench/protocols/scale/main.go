// Command scale writes a pcap made of n copies of a small capture, each
// copy moved to its own IPv4 addresses (second and third octets) and later
// in time, so that every copy's connections are distinct streams for kflcap
// and tshark alike. Ports stay, so port-based decode-as keeps working.
//
//	go run ./bench/protocols/scale -n 1000 dissect/testdata/redis.pcap big.pcap
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func main() {
	n := flag.Int("n", 100, "copies")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: scale [-n copies] in.pcap out.pcap")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *n); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type pkt struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func run(in, out string, n int) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", in, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		return fmt.Errorf("%s: link type %v, want Ethernet", in, r.LinkType())
	}
	var pkts []pkt
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", in, err)
		}
		pkts = append(pkts, pkt{ci, data})
	}
	if len(pkts) == 0 {
		return fmt.Errorf("%s: no packets", in)
	}
	span := pkts[len(pkts)-1].ci.Timestamp.Sub(pkts[0].ci.Timestamp) + time.Second
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(o, 1<<20)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		return err
	}
	buf := make([]byte, 0, 65536)
	for k := range n {
		for _, p := range pkts {
			buf = append(buf[:0], p.data...)
			if len(buf) >= 34 && buf[12] == 0x08 && buf[13] == 0x00 {
				// Source and destination: 10.X.Y.h with X, Y from k.
				buf[27], buf[28] = byte(k/250), byte(k%250)
				buf[31], buf[32] = byte(k/250), byte(k%250)
			}
			ci := p.ci
			ci.Timestamp = ci.Timestamp.Add(time.Duration(k) * span)
			if err := w.WritePacket(ci, buf); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return o.Close()
}
