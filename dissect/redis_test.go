package dissect_test

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/internal/netnstest"
)

// redisTraffic runs redis-server in B and redis-cli and redis-benchmark in
// A: strings, lists, hashes, errors, a wrong password, a 100 kB value, RESP3
// (HELLO 3, map replies) and pipelining.
func redisTraffic(t *testing.T, p *netnstest.Pair) {
	netnstest.RequireTool(t, "redis-server", "redis-cli", "redis-benchmark")
	dir := t.TempDir()
	netnstest.Start(t, p.B, "redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", dir)
	netnstest.WaitListening(t, p.B, "tcp", 6379)
	cli := func(args ...string) {
		netnstest.Exec(t, p.A, "redis-cli", append([]string{"-h", p.IPB}, args...)...)
	}
	cli("SET", "user:1", "alice")
	cli("GET", "user:1")
	cli("GET", "missing")
	cli("INCR", "user:1") // error: not an integer
	cli("INCR", "visits")
	cli("RPUSH", "queue", "a", "b", "c")
	cli("LRANGE", "queue", "0", "-1")
	cli("HSET", "h", "f1", "v1", "f2", "v2")
	cli("-3", "HGETALL", "h") // HELLO 3 first, then a map reply
	cli("NOSUCHCOMMAND", "x")
	cli("--no-auth-warning", "-a", "s3cret", "PING") // AUTH fails: no password is set
	netnstest.Exec(t, p.A, "sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x | redis-cli -h "+p.IPB+" -x SET big")
	cli("STRLEN", "big")
	// Pipelining: 2 connections, 10 commands per write.
	netnstest.Exec(t, p.A, "redis-benchmark", "-h", p.IPB, "-n", "100", "-c", "2", "-P", "10", "-t", "set,get", "-q")
}

func TestRedisAgainstTshark(t *testing.T) {
	path, entries, st := captureClean(t, "redis", func(p *netnstest.Pair) { redisTraffic(t, p) })
	got, want := redisCommands(entries), tsharkRedisCommands(t, path)
	if len(want) < 200 {
		t.Fatalf("tshark saw only %d Redis commands; the traffic did not run", len(want))
	}
	diffSets(t, "Redis (stream, command, key, words)", got, want)
	diffSets(t, "Redis error and status replies", redisReplies(entries), tsharkRedisReplies(t, path))
	t.Logf("%d Redis commands equal to tshark's; stats %+v", len(got), st)
	checkRedisDetails(t, entries)
}

// redisCommands are kflcap's (stream, command, key, word count).
func redisCommands(entries []*dissect.Entry) []string {
	ranks := streamRanks(entries)
	var out []string
	for _, e := range entries {
		if r := e.Redis; r != nil {
			out = append(out, fmt.Sprintf("%d %s %q %d", ranks[e.StreamID], r.Request.Command, r.Request.Key, r.Request.ArgCount))
		}
	}
	return out
}

// redisReplies are kflcap's (stream, error or status reply) pairs: the
// replies tshark shows as resp.error and resp.string.
func redisReplies(entries []*dissect.Entry) []string {
	ranks := streamRanks(entries)
	var out []string
	for _, e := range entries {
		if r := e.Redis; r != nil && r.HasResponse && (r.Response.Type == "error" || r.Response.Type == "simple string") {
			out = append(out, fmt.Sprintf("%d %s %s", ranks[e.StreamID], r.Response.Type, r.Response.Value))
		}
	}
	return out
}

// tsharkRedisCommands splits tshark's bulk strings of client frames into
// commands by the array lengths. tshark dissects the first part of a value
// split over segments again in each segment; only the frame that completes
// it counts.
func tsharkRedisCommands(t *testing.T, path string) []string {
	var out []string
	// A large argument is reassembled into a later frame than its
	// command's header: carry lengths and values over per stream.
	lens, vals := map[string][]int{}, map[string][]string{}
	for _, r := range tsharkAgg(t, path, "resp && tcp.dstport == 6379 && !resp.reassembled_in_next_frame", "\x1f", "tcp.stream", "resp.array.length", "resp.bulk_string.value") {
		st := r[0]
		for _, l := range strings.Split(r[1], "\x1f") {
			if n, err := strconv.Atoi(l); err == nil {
				lens[st] = append(lens[st], n)
			}
		}
		if r[2] != "" {
			vals[st] = append(vals[st], strings.Split(r[2], "\x1f")...)
		}
		for len(lens[st]) > 0 && lens[st][0] <= len(vals[st]) {
			n, v := lens[st][0], vals[st]
			lens[st], vals[st] = lens[st][1:], v[n:]
			cmd := strings.ToUpper(unhex(v[0]))
			key := ""
			if n > 1 && !slices.Contains([]string{"PING", "AUTH", "HELLO", "CONFIG", "COMMAND", "INFO", "SELECT", "CLIENT"}, cmd) {
				key = unhex(v[1])
			}
			out = append(out, fmt.Sprintf("%s %s %q %d", st, cmd, key, n))
		}
	}
	for st, l := range lens {
		if len(l) > 0 {
			t.Errorf("tshark stream %s: %d commands without their arguments", st, len(l))
		}
	}
	return out
}

func tsharkRedisReplies(t *testing.T, path string) []string {
	var out []string
	for _, r := range tsharkAgg(t, path, "resp && tcp.srcport == 6379 && !resp.reassembled_in_next_frame", "\x1f", "tcp.stream", "resp.error", "resp.string") {
		for i, typ := range []string{"error", "simple string"} {
			if r[1+i] == "" {
				continue
			}
			for _, v := range strings.Split(r[1+i], "\x1f") {
				out = append(out, fmt.Sprintf("%s %s %s", r[0], typ, v))
			}
		}
	}
	return out
}

// unhex decodes a tshark FT_BYTES field ("73:65:74" or "736574").
func unhex(s string) string {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil {
		return s
	}
	return string(b)
}

// checkRedisDetails checks what the differential does not: replies paired
// to the right commands, RESP3, redaction, big values, pipelining.
func checkRedisDetails(t *testing.T, entries []*dissect.Entry) {
	seen := map[string]bool{}
	pipelined := 0
	for _, e := range entries {
		r := e.Redis
		if r == nil {
			continue
		}
		if e.Dst.Port != 6379 || e.Protocol.Name != "redis" {
			t.Errorf("entry %v → %v: %+v", e.Src, e.Dst, e.Protocol)
		}
		if !r.HasResponse {
			t.Errorf("%s %s: no reply", r.Request.Command, r.Request.Key)
			continue
		}
		q, a := &r.Request, &r.Response
		switch {
		case q.Command == "GET" && q.Key == "user:1":
			seen["get"] = a.Type == "bulk string" && a.Value == "alice"
		case q.Command == "GET" && q.Key == "missing":
			seen["null"] = a.Type == "null"
		case q.Command == "INCR" && q.Key == "user:1":
			seen["error"] = a.Error && strings.HasPrefix(a.Value, "ERR value is not an integer")
		case q.Command == "INCR" && q.Key == "visits":
			seen["integer"] = a.Type == "integer" && a.Value == "1"
		case q.Command == "LRANGE":
			seen["array"] = a.Type == "array" && a.Count == 3 && a.Value == "a b c" && slices.Equal(q.Args, []string{"queue", "0", "-1"})
		case q.Command == "HGETALL":
			seen["map"] = a.Type == "map" && a.Count == 2 && e.Protocol.Version == "3"
		case q.Command == "AUTH":
			seen["auth"] = a.Error && slices.Equal(q.Args, []string{"<redacted>"})
		case q.Command == "SET" && q.Key == "big":
			seen["big"] = a.Value == "OK" && len(q.Args) == 2 && len(q.Args[1]) == 256
		case q.Command == "STRLEN":
			seen["strlen"] = a.Value == "100000"
		case q.Key == "key:__rand_int__":
			pipelined++
		}
	}
	for _, k := range []string{"get", "null", "error", "integer", "array", "map", "auth", "big", "strlen"} {
		if !seen[k] {
			t.Errorf("%s: no entry or wrong", k)
		}
	}
	if pipelined != 200 {
		t.Errorf("%d pipelined benchmark commands with replies, want 200", pipelined)
	}
}

// TestRedisCommittedCapture checks the committed capture without root,
// and again with packets lost: a command or reply the capture missed must
// not shift the pairing of the ones after it.
func TestRedisCommittedCapture(t *testing.T) {
	entries, _ := dissectFile(t, "testdata/redis.pcap", dissect.Config{})
	checkRedisDetails(t, entries)

	for _, every := range []int{5, 7, 11} {
		pkts, lt := loadPcap(t, "testdata/redis.pcap")
		var kept []rawPacket
		for i, p := range pkts {
			if i%every != 0 || len(p.data) < 70 { // keep handshakes and bare ACKs
				kept = append(kept, p)
			}
		}
		lossy := writePcap(t, kept, lt)
		entries, st := dissectFile(t, lossy, dissect.Config{})
		paired := 0
		for _, e := range entries {
			r := e.Redis
			if r == nil || !r.HasResponse || r.Request.Key != "key:__rand_int__" {
				continue
			}
			paired++
			switch {
			case r.Request.Command == "SET" && r.Response.Value != "OK",
				r.Request.Command == "GET" && r.Response.Type != "bulk string":
				t.Errorf("every %d lost: %s paired with %s %q", every, r.Request.Command, r.Response.Type, r.Response.Value)
			}
		}
		if paired == 0 {
			t.Errorf("every %d lost: no benchmark command paired at all", every)
		}
		t.Logf("every %dth packet lost: %d benchmark commands paired; gaps %d", every, paired, st.ReassemblyGaps)
	}
}
