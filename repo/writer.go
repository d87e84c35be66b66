package repo

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/kflcap/kflcap/names"
	"github.com/kflcap/kflcap/packet"
	"github.com/kflcap/kflcap/pcap"
)

// A Writer collects the packets of the streams one job (or trigger)
// selected, in a spool file, and seals them into an archive: one pcap per
// stream, a merged pcap in time order, content.json and
// name_resolution_history.json, as Kubeshark's wrapper.kflPcapS3 does.
//
// Packets are appended to <spool>/<id>.partial/packets as they come (the
// streams interleave); an index remembers where each stream's packets are,
// so sealing writes every member in one pass over the index with positioned
// reads, never holding packet bytes in memory. A Writer is not safe
// for concurrent use: its job serialises access.
type Writer struct {
	dir     string // the .partial directory
	f       *os.File
	w       *bufio.Writer
	off     int64
	Opened  time.Time
	streams map[uint64]*repoStream
	order   []*repoStream
	bytes   int64 // packet bytes appended
	packets int
	snaplen uint32
	buf     []byte        // one packet, for sealing
	out     *bufio.Writer // shared by the members, for sealing
}

type repoStream struct {
	id   uint64
	name string // "000000007221_tcp.pcap"
	pkts []pktRef
}

// pktRef locates one packet in the spool file.
type pktRef struct {
	off      int64
	capLen   uint32
	wireLen  uint32
	unixNano int64
	ifindex  int32
	link     layers.LinkType
	dir      packet.Direction
}

// NewWriter starts a repository in a new .partial directory under spool.
func NewWriter(spool string, snaplen uint32) (*Writer, error) {
	dir, err := os.MkdirTemp(spool, "repo-*.partial")
	if err != nil {
		return nil, fmt.Errorf("create repository in spool: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "packets"), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create repository spool file: %w", err)
	}
	return &Writer{dir: dir, f: f, w: bufio.NewWriterSize(f, 256<<10), Opened: time.Now(),
		streams: map[uint64]*repoStream{}, snaplen: snaplen}, nil
}

// Streams is the number of streams in the repository.
func (r *Writer) Streams() int { return len(r.order) }

// Bytes is the packet bytes appended so far.
func (r *Writer) Bytes() int64 { return r.bytes }

// Has reports whether the stream is in the repository.
func (r *Writer) Has(id uint64) bool { _, ok := r.streams[id]; return ok }

// AddStream registers a stream; its packets follow with Append.
func (r *Writer) AddStream(id uint64, name string) {
	if _, ok := r.streams[id]; ok {
		return
	}
	s := &repoStream{id: id, name: name}
	r.streams[id] = s
	r.order = append(r.order, s)
}

// Append adds one packet of a stream added with AddStream.
func (r *Writer) Append(id uint64, p *packet.Packet) error {
	data := p.Data
	s, ok := r.streams[id]
	if !ok {
		return fmt.Errorf("append to stream %d, which is not in the repository", id)
	}
	if _, err := r.w.Write(data); err != nil {
		return fmt.Errorf("append to repository spool: %w", err)
	}
	s.pkts = append(s.pkts, pktRef{off: r.off, capLen: uint32(len(data)), wireLen: uint32(p.WireLen),
		unixNano: p.Time.UnixNano(), ifindex: int32(p.Ifindex), link: p.LinkType, dir: p.Dir})
	r.off += int64(len(data))
	r.bytes += int64(len(data))
	r.packets++
	return nil
}

// Discard removes the repository's spool files.
func (r *Writer) Discard() {
	r.f.Close()
	os.RemoveAll(r.dir)
}

// SealInfo is what the archive's metadata needs besides the packets.
type SealInfo struct {
	// Name is the archive file name, e.g. kfl_0_kflcap_1678808288.tar.gz.
	Name string
	// Time is the creation time: content.json's "time" and the merged
	// pcap's name (<unixSeconds>.pcap).
	Time time.Time
	// Content is content.json: Seal fills the wrapper's l4_streams,
	// pcap_file_name and time; kfl_index, kfl_query and the extensions
	// come from the caller.
	Content Content
	// Names is name_resolution_history.json's content.
	Names map[string]map[string]names.Record
}

// Seal writes the archive to dir/Name: members into a temporary file, then
// tar close, gzip close, fsync, rename, fsync of dir; it removes the spool
// files on success. On error nothing is left in dir and the spool files are
// kept for Discard.
func (r *Writer) Seal(dir string, info SealInfo) (path string, err error) {
	if err := r.w.Flush(); err != nil {
		return "", fmt.Errorf("flush repository spool: %w", err)
	}
	final := filepath.Join(dir, info.Name)
	tmp := final + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("create archive: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Fastest compression: an agent seals while it captures, and pcaps
	// of a few thousand streams must not take seconds.
	gz, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(gz)

	// One link type for the whole repository: the capture's, or LINUX_SLL2
	// where interfaces of different link types contributed.
	link := layers.LinkType(0)
	for _, s := range r.order {
		for _, p := range s.pkts {
			if link == 0 {
				link = p.link
			} else if p.link != link {
				link = layers.LinkTypeLinuxSLL2
			}
		}
	}
	if link == 0 {
		link = layers.LinkTypeEthernet
	}

	// The metadata goes first: readers (the outbox, `repo inspect`) find
	// it without decompressing the packets.
	var streams []string
	for _, s := range r.order {
		streams = append(streams, s.name)
	}
	merged := MergedName(info.Time.Unix())
	content := info.Content
	content.L4Streams = streams
	content.PcapFileName = merged
	content.Time = info.Time.UTC().Format(TimeFormat)
	if err := writeJSON(tw, ContentFile, info.Time, content); err != nil {
		return "", err
	}
	history := info.Names
	if history == nil {
		history = map[string]map[string]names.Record{}
	}
	if err := writeJSON(tw, NameResolutionFile, info.Time, history); err != nil {
		return "", err
	}
	var all []pktRef
	for _, s := range r.order {
		if err := r.writePcap(tw, s.name, info.Time, link, s.pkts); err != nil {
			return "", err
		}
		all = append(all, s.pkts...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].unixNano < all[j].unixNano })
	if err := r.writePcap(tw, merged, info.Time, link, all); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("close tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return "", fmt.Errorf("close gzip: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close archive: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", fmt.Errorf("seal archive: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	r.Discard()
	return final, nil
}

// writePcap writes one classic pcap member from spool records.
func (r *Writer) writePcap(tw *tar.Writer, name string, mtime time.Time, link layers.LinkType, pkts []pktRef) error {
	size := int64(24)
	for _, p := range pkts {
		if n, ok := pcap.RecordLen(link, p.link, int(p.capLen)); ok {
			size += 16 + int64(n)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("write %s header: %w", name, err)
	}
	if r.out == nil {
		r.out = bufio.NewWriterSize(tw, 256<<10)
	}
	r.out.Reset(tw)
	pw, err := pcap.NewPcapWriterBuf(r.out, tw, link, r.snaplen)
	if err != nil {
		return err
	}
	for _, p := range pkts {
		if cap(r.buf) < int(p.capLen) {
			r.buf = make([]byte, max(int(p.capLen), 64<<10))
		}
		data := r.buf[:p.capLen]
		if _, err := r.f.ReadAt(data, p.off); err != nil {
			return fmt.Errorf("read repository spool: %w", err)
		}
		pkt := packet.Packet{Time: time.Unix(0, p.unixNano), Ifindex: int(p.ifindex), Dir: p.dir, LinkType: p.link, WireLen: int(p.wireLen), Data: data}
		if err := pw.WritePacket(&pkt); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := pw.Close(nil); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func writeJSON(tw *tar.Writer, name string, mtime time.Time, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	b = append(b, '\n')
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("write %s header: %w", name, err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
