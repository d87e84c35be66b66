package dissect

import (
	"encoding/binary"
	"strconv"
	"time"
)

// Kafka parsing limits.
const (
	maxKafkaFrame      = 1 << 20 // requests parsed whole; larger ones (big Produce batches) by their first bytes
	maxKafkaPending    = 1024    // requests waiting for their response
	maxKafkaTopics     = 32
	maxKafkaPartitions = 64
)

// kafkaAPIKeys are the API key names as Kafka (and Kubeshark) spell them.
var kafkaAPIKeys = [...]string{
	"Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica", "UpdateMetadata",
	"ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator", "JoinGroup", "Heartbeat",
	"LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups", "SaslHandshake", "ApiVersions",
	"CreateTopics", "DeleteTopics", "DeleteRecords", "InitProducerId", "OffsetForLeaderEpoch",
	"AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "WriteTxnMarkers", "TxnOffsetCommit",
	"DescribeAcls", "CreateAcls", "DeleteAcls", "DescribeConfigs", "AlterConfigs",
	"AlterReplicaLogDirs", "DescribeLogDirs", "SaslAuthenticate", "CreatePartitions",
	"CreateDelegationToken", "RenewDelegationToken", "ExpireDelegationToken",
	"DescribeDelegationToken", "DeleteGroups", "ElectLeaders", "IncrementalAlterConfigs",
	"AlterPartitionReassignments", "ListPartitionReassignments", "OffsetDelete",
	"DescribeClientQuotas", "AlterClientQuotas", "DescribeUserScramCredentials",
	"AlterUserScramCredentials", "Vote", "BeginQuorumEpoch", "EndQuorumEpoch", "DescribeQuorum",
	"AlterPartition", "UpdateFeatures", "Envelope", "FetchSnapshot", "DescribeCluster",
	"DescribeProducers", "BrokerRegistration", "BrokerHeartbeat", "UnregisterBroker",
	"DescribeTransactions", "ListTransactions", "AllocateProducerIds", "ConsumerGroupHeartbeat",
	"ConsumerGroupDescribe", "ControllerRegistration", "GetTelemetrySubscriptions", "PushTelemetry",
	"AssignReplicasToDirs", "ListClientMetricsResources", "DescribeTopicPartitions",
}

// looksKafka reports whether b starts with a Kafka request: size, a known
// API key, a plausible version and a printable client id.
func looksKafka(b []byte) bool {
	if len(b) < 14 {
		return false
	}
	size := int32(binary.BigEndian.Uint32(b))
	key, ver := int16(binary.BigEndian.Uint16(b[4:])), int16(binary.BigEndian.Uint16(b[6:]))
	if size < 10 || size > 100<<20 || key < 0 || int(key) >= len(kafkaAPIKeys) || ver < 0 || ver > 20 {
		return false
	}
	n := int(int16(binary.BigEndian.Uint16(b[12:])))
	if n == -1 {
		return true
	}
	if n < 0 || n > 255 || 14+n > int(size)+4 {
		return false
	}
	for _, c := range b[14:min(len(b), 14+n)] {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// kafkaApp pairs requests and responses by correlation id.
type kafkaApp struct {
	clientDir int
	half      [2]kafkaHalf
	pending   map[int32]*kafkaReq
	order     []int32
	stopped   bool // framing lost: nothing more is parsed
}

type kafkaHalf struct{ tail }

type kafkaReq struct {
	ts time.Time
	x  *Kafka
}

func newKafkaApp(dir int, s *stream) *kafkaApp {
	s.clientIsB = dir == 1
	return &kafkaApp{clientDir: dir, pending: map[int32]*kafkaReq{}}
}

func (a *kafkaApp) data(sh *shard, s *stream, dir int, b []byte, ts time.Time) {
	if a.stopped {
		return
	}
	h := &a.half[dir]
	if h.skip > 0 {
		n := min(len(b), h.skip)
		h.skip -= n
		b = b[n:]
	}
	buffered := len(h.buf) > 0
	if buffered {
		h.buf = append(h.buf, b...)
		b = h.buf
	}
	for len(b) >= 4 {
		size := int(int32(binary.BigEndian.Uint32(b)))
		if size < 4 {
			sh.c.l7Errors.Add(1)
			a.stop(sh, s)
			return
		}
		if size > maxKafkaFrame {
			// Parse what is here (the header, the start of the body), skip
			// the rest.
			if len(b) < 4+min(size, 4096) {
				break
			}
			a.frame(sh, s, dir, b[4:4+min(size, 4096)], size, ts)
			h.skip = 4 + size - len(b)
			b = b[min(len(b), 4+size):]
			continue
		}
		if len(b) < 4+size {
			break
		}
		a.frame(sh, s, dir, b[4:4+size], size, ts)
		b = b[4+size:]
	}
	h.keep(b, buffered)
}

func (a *kafkaApp) frame(sh *shard, s *stream, dir int, p []byte, size int, ts time.Time) {
	if dir != a.clientDir {
		if len(p) < 4 {
			return
		}
		id := int32(binary.BigEndian.Uint32(p))
		r := a.pending[id]
		if r == nil {
			sh.c.orphans.Add(1)
			return
		}
		delete(a.pending, id)
		r.x.HasResponse, r.x.ResponseSize = true, int32(size)
		a.emit(sh, s, r, ts.Sub(r.ts).Milliseconds())
		return
	}
	if len(p) < 8 {
		sh.c.l7Errors.Add(1)
		return
	}
	x := &Kafka{
		APIKey:        int16(binary.BigEndian.Uint16(p)),
		APIVersion:    int16(binary.BigEndian.Uint16(p[2:])),
		CorrelationID: int32(binary.BigEndian.Uint32(p[4:])),
		RequestSize:   int32(size),
	}
	if x.APIKey >= 0 && int(x.APIKey) < len(kafkaAPIKeys) {
		x.APIKeyName = kafkaAPIKeys[x.APIKey]
	}
	r := &kafkaReader{b: p[8:]}
	if x.APIKey != 7 || x.APIVersion > 0 { // ControlledShutdown v0 has no client id
		if id, ok := r.str(); ok {
			x.ClientID = id
		}
	}
	if kafkaFlexible(x.APIKey, x.APIVersion) {
		r.flex = true
		r.tags()
	}
	if !r.bad {
		parseKafkaTopics(x, r)
	}
	if len(a.pending) >= maxKafkaPending {
		for len(a.order) > 0 {
			old := a.pending[a.order[0]]
			delete(a.pending, a.order[0])
			a.order = a.order[1:]
			if old != nil {
				a.emit(sh, s, old, 0)
				break
			}
		}
	}
	if old := a.pending[x.CorrelationID]; old != nil {
		a.emit(sh, s, old, 0) // a reused id: the first went unanswered
	}
	a.pending[x.CorrelationID] = &kafkaReq{ts: ts, x: x}
	a.order = append(a.order, x.CorrelationID)
	if len(a.order) > 4*maxKafkaPending {
		a.compact()
	}
}

// compact drops answered ids from order.
func (a *kafkaApp) compact() {
	o := a.order[:0]
	for _, id := range a.order {
		if a.pending[id] != nil {
			o = append(o, id)
		}
	}
	a.order = o
}

// kafkaFlexible reports whether a request version uses the flexible
// (compact, tagged-field) encoding, for the APIs whose bodies are parsed;
// for the others only the header up to the client id is read.
func kafkaFlexible(key, ver int16) bool {
	switch key {
	case 0:
		return ver >= 9
	case 1:
		return ver >= 12
	case 3:
		return ver >= 9
	}
	return false
}

// parseKafkaTopics reads the topics (and partitions) of Produce, Fetch and
// Metadata requests. Versions that name topics by id only give partitions.
func parseKafkaTopics(x *Kafka, r *kafkaReader) {
	v := x.APIVersion
	topic := func(byID bool) {
		if byID {
			r.skip(16)
		} else if name, ok := r.str(); ok && len(x.Topics) < maxKafkaTopics {
			x.Topics = append(x.Topics, name)
		}
	}
	part := func(p int32) {
		for _, q := range x.Partitions {
			if q == p {
				return
			}
		}
		if len(x.Partitions) < maxKafkaPartitions {
			x.Partitions = append(x.Partitions, p)
		}
	}
	switch x.APIKey {
	case 0: // Produce
		if v >= 3 {
			r.str() // transactional id
		}
		r.skip(2 + 4) // acks, timeout
		for range r.array() {
			topic(v >= 13)
			for range r.array() {
				part(r.i32())
				r.bytes() // records
				r.tags()
			}
			r.tags()
		}
	case 1: // Fetch
		if v <= 14 {
			r.skip(4) // replica id
		}
		r.skip(4 + 4) // max wait, min bytes
		if v >= 3 {
			r.skip(4)
		}
		if v >= 4 {
			r.skip(1)
		}
		if v >= 7 {
			r.skip(8)
		}
		for range r.array() {
			topic(v >= 13)
			for range r.array() {
				part(r.i32())
				if v >= 9 {
					r.skip(4)
				}
				r.skip(8)
				if v >= 12 {
					r.skip(4)
				}
				if v >= 5 {
					r.skip(8)
				}
				r.skip(4)
				r.tags()
			}
			r.tags()
		}
	case 3: // Metadata
		for range r.array() {
			if v >= 10 {
				r.skip(16)
			}
			topic(false)
			r.tags()
		}
	}
}

// kafkaReader reads Kafka primitive types; flex selects the compact forms.
// Reads past the end set bad and return zero values.
type kafkaReader struct {
	b    []byte
	flex bool
	bad  bool
}

func (r *kafkaReader) skip(n int) {
	if n < 0 || len(r.b) < n {
		r.bad, r.b = true, nil
		return
	}
	r.b = r.b[n:]
}

func (r *kafkaReader) i32() int32 {
	if len(r.b) < 4 {
		r.bad, r.b = true, nil
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *kafkaReader) uvarint() int {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > 1<<30 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

// length reads a (compact) length; -1 is null.
func (r *kafkaReader) length(wide bool) int {
	if r.flex {
		return r.uvarint() - 1
	}
	if wide {
		return int(r.i32())
	}
	if len(r.b) < 2 {
		r.bad, r.b = true, nil
		return -1
	}
	n := int(int16(binary.BigEndian.Uint16(r.b)))
	r.b = r.b[2:]
	return n
}

func (r *kafkaReader) str() (string, bool) {
	n := r.length(false)
	if n < 0 || r.bad || len(r.b) < n {
		if n >= 0 {
			r.bad, r.b = true, nil
		}
		return "", false
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s, true
}

func (r *kafkaReader) bytes() {
	if n := r.length(true); n > 0 {
		r.skip(n)
	}
}

// array returns a sequence as long as the array's element count, ended
// early when the input runs out.
func (r *kafkaReader) array() func(func(int) bool) {
	n := r.length(true)
	return func(yield func(int) bool) {
		for i := 0; i < n && !r.bad; i++ {
			if !yield(i) {
				return
			}
		}
	}
}

// tags skips a tagged-field section (flexible versions only).
func (r *kafkaReader) tags() {
	if !r.flex {
		return
	}
	for n := r.uvarint(); n > 0 && !r.bad; n-- {
		r.uvarint()
		r.skip(r.uvarint())
	}
}

func (a *kafkaApp) stop(sh *shard, s *stream) {
	a.stopped = true
	a.flush(sh, s)
}

// gap: size-prefixed frames cannot be resynchronised in a byte stream, so
// parsing of the connection stops; pending requests are emitted alone.
func (a *kafkaApp) gap(sh *shard, s *stream, dir int, n int) {
	if h := &a.half[dir]; h.skip > n {
		h.skip -= n // inside a skipped frame: boundaries survive
		return
	}
	a.stop(sh, s)
}

func (a *kafkaApp) flush(sh *shard, s *stream) {
	for _, id := range a.order {
		if r := a.pending[id]; r != nil {
			delete(a.pending, id)
			a.emit(sh, s, r, 0)
		}
	}
	a.order = nil
}

func (a *kafkaApp) end(sh *shard, s *stream, dir int, ts time.Time) {}

func (a *kafkaApp) close(sh *shard, s *stream) { a.flush(sh, s) }

func (a *kafkaApp) emit(sh *shard, s *stream, r *kafkaReq, elapsed int64) {
	e := sh.newEntry(s, a.clientDir, r.ts)
	e.Protocol = Protocol{Name: "kafka", Abbr: "KAFKA", Version: strconv.Itoa(int(r.x.APIVersion)), Layer4: "tcp"}
	e.Kafka = r.x
	e.ElapsedTime = elapsed
	sh.emit(s, e)
}
