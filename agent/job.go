package agent

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/names"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/repo"
)

// JobLimits say when a job's repository seals.
type JobLimits struct {
	Lifetime   time.Duration // since the repository opened
	MaxStreams int           // a further stream opens the next repository
	MaxBytes   int64         // packet bytes; 0: no cap
}

// Sealed describes a sealed archive, for the outbox and logs.
type Sealed struct {
	Path     string
	KFLIndex int
	KFLQuery string
	Streams  int
	Bytes    int64
}

// Job keeps the streams one KFL query selects in a series of repositories.
// It is a dissect.StreamSink: the agent selects streams to it when an entry
// matches its query. Safe for concurrent use (dissector workers, the tick
// loop, shutdown).
type Job struct {
	Index  int
	Query  string
	Prefix string
	Limits JobLimits
	// Outbox is where sealed archives go.
	Outbox  string
	Spool   *repo.Spool
	Snaplen uint32
	// Content returns what every content.json starts from (node, version,
	// …); the job sets kfl_index, kfl_query, capture, seal_reason and
	// opened, the writer the rest.
	Content func() repo.Content
	// Stats returns counters whose change over a repository's lifetime
	// goes into its content.json ("capture").
	Stats func() map[string]uint64
	Names *names.History
	// ArchiveName names an archive sealed at unix seconds; nil names it
	// kfl_<index>_<prefix>_<unix>.tar.gz.
	ArchiveName func(unix int64) string
	// OnSealed is called (from a sealing goroutine) for each archive.
	OnSealed func(Sealed)
	// OnSealFailed is called when sealing fails.
	OnSealFailed func(error)
	Verbose      bool
	Log          *slog.Logger

	// Counters for metrics.
	Selected     atomic.Uint64 // streams taken into a repository
	Sealed       atomic.Uint64
	SealFailures atomic.Uint64

	retired atomic.Bool

	mu       sync.Mutex
	cur      *repo.Writer
	curStats map[string]uint64
	lastUnix int64
	refused  map[uint64]bool
	sealing  sync.WaitGroup
}

// StreamPacket implements dissect.StreamSink.
func (j *Job) StreamPacket(info dissect.StreamInfo, p packet.Packet) {
	if j.retired.Load() {
		return // removed by a reload; its streams may still be flowing
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.refused[info.ID] {
		return
	}
	if j.cur != nil && !j.cur.Has(info.ID) && j.cur.Streams() >= j.Limits.MaxStreams {
		j.sealLocked("maxL4Streams")
	}
	if j.cur == nil || !j.cur.Has(info.ID) {
		if j.Spool != nil && j.Spool.Full() {
			if j.refused == nil {
				j.refused = map[uint64]bool{}
			}
			j.refused[info.ID] = true
			j.Spool.Refused.Add(1)
			j.Log.Warn("spool full: stream not kept", "job", j.Index, "stream", info.Name, "spool_bytes", j.Spool.Used())
			return
		}
		if j.cur == nil {
			r, err := repo.NewWriter(j.Spool.Dir, j.Snaplen)
			if err != nil {
				j.Log.Error("open repository", "job", j.Index, "err", err)
				return
			}
			j.cur = r
			if j.Stats != nil {
				j.curStats = j.Stats()
			}
		}
		j.cur.AddStream(info.ID, info.Name)
		j.Selected.Add(1)
		if j.Verbose {
			j.Log.Info("stream selected", "job", j.Index, "query", j.Query, "stream", info.Name, "lost_before_selection", info.Lost)
		}
	}
	if err := j.cur.Append(info.ID, &p); err != nil {
		j.Log.Error("write repository", "job", j.Index, "err", err)
		return
	}
	if j.Spool != nil {
		j.Spool.Add(int64(len(p.Data)))
	}
	if j.Limits.MaxBytes > 0 && j.cur.Bytes() >= j.Limits.MaxBytes {
		j.sealLocked("maxBytes")
	}
}

// StreamEnd implements dissect.StreamSink.
func (j *Job) StreamEnd(info dissect.StreamInfo) {
	j.mu.Lock()
	delete(j.refused, info.ID)
	j.mu.Unlock()
}

// Tick seals the open repository when its lifetime has passed.
func (j *Job) Tick(now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cur != nil && now.Sub(j.cur.Opened) >= j.Limits.Lifetime {
		j.sealLocked("maxMinutes")
	}
}

// Flush seals the open repository (at shutdown) and waits for every seal
// in progress.
func (j *Job) Flush() {
	j.mu.Lock()
	if j.cur != nil {
		j.sealLocked("shutdown")
	}
	j.mu.Unlock()
	j.sealing.Wait()
}

// Retire stops the job taking packets (a reload removed or replaced it),
// seals its open repository and waits for the seal.
func (j *Job) Retire() {
	j.retired.Store(true)
	j.Flush()
}

// sealLocked hands the open repository to a sealing goroutine; the next
// selected packet opens a new one.
func (j *Job) sealLocked(reason string) {
	r := j.cur
	j.cur = nil
	if r == nil || r.Streams() == 0 {
		if r != nil {
			r.Discard()
		}
		return
	}
	now := time.Now()
	// Names carry the second; two seals of one job in one second get
	// consecutive seconds rather than the same name.
	sec := now.Unix()
	if sec <= j.lastUnix {
		sec = j.lastUnix + 1
	}
	j.lastUnix = sec
	at := time.Unix(sec, 0)
	var content repo.Content
	if j.Content != nil {
		content = j.Content()
	}
	content.KFLIndex, content.KFLQuery = j.Index, j.Query
	if j.Stats != nil {
		delta := map[string]uint64{}
		for k, v := range j.Stats() {
			delta[k] = v - j.curStats[k]
		}
		content.Capture = delta
	}
	content.SealReason = reason
	content.Opened = r.Opened.UTC()
	name := repo.Name{Kind: repo.KindKFL, Index: j.Index, Prefix: j.Prefix, Unix: sec}.String()
	if j.ArchiveName != nil {
		name = j.ArchiveName(sec)
	}
	info := repo.SealInfo{
		Name:    name,
		Time:    at,
		Content: content,
	}
	if j.Names != nil {
		info.Names = j.Names.Between(r.Opened, now)
	}
	streams, bytes := r.Streams(), r.Bytes()
	j.sealing.Add(1)
	go func() {
		defer j.sealing.Done()
		path, err := r.Seal(j.Outbox, info)
		if err != nil {
			// The packets stay in the spool's .partial directory; a restart
			// removes it. Nothing corrupt reaches the outbox.
			j.Log.Error("seal repository", "job", j.Index, "archive", info.Name, "err", err)
			j.SealFailures.Add(1)
			if j.OnSealFailed != nil {
				j.OnSealFailed(err)
			}
			return
		}
		j.Sealed.Add(1)
		if j.Verbose {
			j.Log.Info("repository sealed", "job", j.Index, "archive", info.Name, "streams", streams, "bytes", bytes, "reason", reason)
		}
		if j.OnSealed != nil {
			j.OnSealed(Sealed{Path: path, KFLIndex: j.Index, KFLQuery: j.Query, Streams: streams, Bytes: bytes})
		}
	}()
}

// Open reports the open repository's streams and packet bytes.
func (j *Job) Open() (streams int, bytes int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cur == nil {
		return 0, 0
	}
	return j.cur.Streams(), j.cur.Bytes()
}
