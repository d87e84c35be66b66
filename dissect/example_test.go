package dissect_test

import (
	"context"
	"fmt"

	"github.com/kflcap/kflcap/collector"
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/packet"
)

// pcapSink stands for a repository writer: it gets whole streams.
type pcapSink struct{ packets map[string]int }

func (s *pcapSink) StreamPacket(st dissect.StreamInfo, p packet.Packet) { s.packets[st.Name]++ }
func (s *pcapSink) StreamEnd(st dissect.StreamInfo)                     {}

// A capture path: feed packets, select the streams whose entries match, and
// receive every packet of those streams, including the ones before the match.
func Example() {
	sink := &pcapSink{packets: map[string]int{}}
	d := dissect.New(dissect.Config{
		StreamRetainBytes: 1 << 20, // keep up to 1 MiB per stream for a later match
		OnEntry: func(e *dissect.Entry, s dissect.StreamRef) {
			if e.HTTP != nil && e.HTTP.Response.Status == 500 { // a compiled KFL query in real use
				fmt.Println(e.Stream, e.HTTP.Request.Method, e.HTTP.Request.URL)
				s.Select(sink)
			}
		},
	})
	// A live source calls d.Feed per packet and d.Tick once a second.
	if err := collector.ReadFile(context.Background(), "testdata/http.pcap", d.Feed, nil); err != nil {
		fmt.Println(err)
	}
	d.Close()
	fmt.Println(sink.packets["000000000001_tcp.pcap"], "packets of stream 1")
	// Output:
	// 000000000001_tcp.pcap GET /status/500?q=500&x=y
	// 000000000002_tcp.pcap GET /status/500
	// 000000000007_tcp.pcap GET /status/500
	// 51 packets of stream 1
}
