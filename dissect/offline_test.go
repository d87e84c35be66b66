package dissect_test

import (
	"testing"

	"github.com/kflcap/kflcap/dissect"
)

// TestCommittedCapturesAgainstTshark repeats the differential checks on the
// captures committed in testdata (made by the namespace tests), so that they
// also run where namespaces cannot be created.
func TestCommittedCapturesAgainstTshark(t *testing.T) {
	entries, _ := dissectFile(t, "testdata/http.pcap", dissect.Config{})
	diffSets(t, "HTTP", httpTuples(entries), tsharkHTTPTuples(t, "testdata/http.pcap"))
	entries, _ = dissectFile(t, "testdata/dns.pcap", dissect.Config{})
	diffSets(t, "DNS", dnsTuples(entries), tsharkDNSTuples(t, "testdata/dns.pcap"))
	entries, _ = dissectFile(t, "testdata/redis.pcap", dissect.Config{})
	diffSets(t, "Redis commands", redisCommands(entries), tsharkRedisCommands(t, "testdata/redis.pcap"))
	diffSets(t, "Redis replies", redisReplies(entries), tsharkRedisReplies(t, "testdata/redis.pcap"))
}
