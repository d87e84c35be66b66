package dissect_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// kafkaTraffic runs kfake (franz-go's in-process Kafka-protocol broker) in
// B and a franz-go client in A, limited to the request versions of Kafka
// 2.8 so that tshark 4.0 dissects their bodies: produce to two topics,
// consume one, and ask metadata.
func kafkaTraffic(t *testing.T, p *netnstest.Pair) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(9092), kfake.SeedTopics(1, "orders", "payments"),
		kfake.ListenFn(func(network, addr string) (l net.Listener, err error) {
			_, port, _ := net.SplitHostPort(addr)
			inNetns(t, p.B, func() error {
				l, err = net.Listen(network, net.JoinHostPort(p.IPB, port))
				return nil
			})
			return l, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Kafka 2.0's versions (Produce v6, Fetch v8, Metadata v6) and 2.8's
	// flexible ones (Produce v9, Fetch v12, Metadata v11; tshark 4.0 shows
	// their headers but not their topics).
	for i, v := range []*kversion.Versions{kversion.V2_0_0(), kversion.V2_8_0()} {
		kafkaClient(t, p, v, 10, i*8) // 8 of every 10 records go to orders
	}
}

// kafkaClient produces n records (one request each) to orders and
// payments (one partition each) and consumes those of orders from offset.
func kafkaClient(t *testing.T, p *netnstest.Pair, v *kversion.Versions, n, offset int) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(p.IPB+":9092"),
		kgo.ClientID("kflcap-test"),
		kgo.MaxVersions(v),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().At(int64(offset))),
		kgo.Dialer(func(ctx context.Context, network, host string) (conn net.Conn, err error) {
			inNetns(t, p.A, func() error {
				conn, err = (&net.Dialer{}).DialContext(ctx, network, host)
				return nil
			})
			return conn, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	want := 0
	for i := range n {
		topic := "orders"
		if i%4 == 3 {
			topic = "payments"
		} else {
			want++
		}
		r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(strings.Repeat("v", 100))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		got += fs.NumRecords()
	}
}

func TestKafkaAgainstTshark(t *testing.T) {
	path, entries, st := captureClean(t, "kafka", func(p *netnstest.Pair) { kafkaTraffic(t, p) })
	checkKafkaAgainstTshark(t, path, entries)
	t.Logf("stats %+v", st)
	checkKafkaDetails(t, entries)
}

func checkKafkaAgainstTshark(t *testing.T, path string, entries []*dissect.Entry) {
	ranks := streamRanks(entries)
	var reqs, resps, topics []string
	for _, e := range entries {
		k := e.Kafka
		if k == nil {
			continue
		}
		s := ranks[e.StreamID]
		reqs = append(reqs, fmt.Sprintf("%d %d %d %d %s", s, k.APIKey, k.APIVersion, k.CorrelationID, k.ClientID))
		if k.HasResponse {
			resps = append(resps, fmt.Sprintf("%d %d", s, k.CorrelationID))
		}
		if k.APIVersion < map[int16]int16{0: 9, 1: 12, 3: 9}[k.APIKey] {
			for _, tp := range k.Topics {
				topics = append(topics, fmt.Sprintf("%d %d %s", s, k.APIKey, tp))
			}
		}
	}
	const sep = "\x1f"
	var wantReqs, wantResps, wantTopics []string
	for _, r := range tsharkAgg(t, path, "kafka && tcp.dstport == 9092", sep, "tcp.stream", "kafka.api_key", "kafka.api_version", "kafka.correlation_id", "kafka.client_id") {
		keys, vers, ids, cids := strings.Split(r[1], sep), strings.Split(r[2], sep), strings.Split(r[3], sep), strings.Split(r[4], sep)
		for i := range keys {
			wantReqs = append(wantReqs, fmt.Sprintf("%s %s %s %s %s", r[0], keys[i], vers[i], ids[i], cids[min(i, len(cids)-1)]))
		}
	}
	for _, r := range tsharkAgg(t, path, "kafka && tcp.srcport == 9092", sep, "tcp.stream", "kafka.correlation_id") {
		for _, id := range strings.Split(r[1], sep) {
			wantResps = append(wantResps, r[0]+" "+id)
		}
	}
	// Topics of the versions before the flexible encoding, which tshark 4.0
	// dissects.
	for _, r := range tsharkAgg(t, path, "kafka && tcp.dstport == 9092 && (kafka.api_key == 0 && kafka.api_version < 9 || kafka.api_key == 1 && kafka.api_version < 12 || kafka.api_key == 3 && kafka.api_version < 9)", sep, "tcp.stream", "kafka.api_key", "kafka.topic_name") {
		if r[2] == "" {
			continue
		}
		for _, tp := range strings.Split(r[2], sep) {
			wantTopics = append(wantTopics, fmt.Sprintf("%s %s %s", r[0], r[1], tp))
		}
	}
	if len(wantReqs) < 10 {
		t.Fatalf("tshark saw only %d Kafka requests", len(wantReqs))
	}
	diffSets(t, "Kafka requests (stream, key, version, correlation id, client id)", reqs, wantReqs)
	diffSets(t, "Kafka responses (stream, correlation id)", resps, wantResps)
	diffSets(t, "Kafka topics of Produce/Fetch/Metadata requests", topics, wantTopics)
	t.Logf("%d requests, %d responses, %d topic names equal to tshark's", len(reqs), len(resps), len(topics))
}

func checkKafkaDetails(t *testing.T, entries []*dissect.Entry) {
	names := map[string]int{}
	fetchTopics := map[int16]bool{}
	for _, e := range entries {
		k := e.Kafka
		if k == nil {
			continue
		}
		names[k.APIKeyName]++
		if e.Dst.Port != 9092 || k.ClientID != "kflcap-test" || !k.HasResponse {
			t.Errorf("entry %v → %v %+v", e.Src, e.Dst, k)
		}
		switch k.APIKeyName {
		case "Produce":
			if len(k.Topics) != 1 || !slices.Contains([]string{"orders", "payments"}, k.Topics[0]) || len(k.Partitions) != 1 {
				t.Errorf("Produce %+v", k)
			}
		case "Fetch":
			// Incremental fetches of a session (v7+) may list no topic.
			if slices.Contains(k.Topics, "orders") {
				fetchTopics[k.APIVersion] = true
			}
		}
	}
	for _, n := range []string{"ApiVersions", "Metadata", "Produce", "Fetch"} {
		if names[n] == 0 {
			t.Errorf("no %s request: %v", n, names)
		}
	}
	if !fetchTopics[8] || !fetchTopics[12] {
		t.Errorf("Fetch v8 and v12 with topic orders: %v", fetchTopics)
	}
	if names["Produce"] != 20 {
		t.Errorf("%d Produce requests, want 20 (one per synchronous record)", names["Produce"])
	}
}

// TestKafkaCommittedCapture repeats the checks on the committed capture.
func TestKafkaCommittedCapture(t *testing.T) {
	entries, _ := dissectFile(t, "testdata/kafka.pcap", dissect.Config{})
	checkKafkaDetails(t, entries)
	checkKafkaAgainstTshark(t, "testdata/kafka.pcap", entries)
}
