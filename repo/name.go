package repo

import (
	"fmt"
	"regexp"
	"strconv"
)

// File names inside a repository.
const (
	ContentFile        = "content.json"
	NameResolutionFile = "name_resolution_history.json"
)

// TimeFormat is the form of content.json's "time" and of the progress
// log's "time": RFC 1123 in GMT, as HTTP dates are written
// (net/http.TimeFormat), e.g. "Tue, 14 Mar 2023 18:46:13 GMT". Format
// only UTC times with it: the zone is a literal.
const TimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

var (
	streamName = regexp.MustCompile(`^[0-9]{12}_(tcp|udp)\.pcap$`)
	mergedName = regexp.MustCompile(`^[0-9]+\.pcap$`)
	kflName    = regexp.MustCompile(`^kfl_([0-9]+)_(.+)_([0-9]+)\.tar\.gz$`)
	triggerRe  = regexp.MustCompile(`^trigger_(.+)_([0-9]+)\.tar\.gz$`)
)

// IsStreamName reports whether name is a per-stream pcap's name,
// <12-digit id>_<tcp|udp>.pcap.
func IsStreamName(name string) bool { return streamName.MatchString(name) }

// IsMergedName reports whether name is a merged pcap's name, <unixSeconds>.pcap.
func IsMergedName(name string) bool { return mergedName.MatchString(name) }

// MergedName is the merged pcap's name for a repository sealed at unix
// seconds: <unixSeconds>.pcap.
func MergedName(unix int64) string { return fmt.Sprintf("%d.pcap", unix) }

// Kinds of repository, the values of Name.Kind.
const (
	KindKFL     = "kfl"     // a continuous KFL job's
	KindTrigger = "trigger" // a triggered capture's
)

// Name is what a repository's file name says about it.
type Name struct {
	Kind   string // KindKFL or KindTrigger
	Index  int    // the KFL job's index (KindKFL)
	Prefix string // the KFL job's prefix (KindKFL)
	Slug   string // the trigger's slug (KindTrigger)
	Unix   int64  // seconds since the epoch
}

// String is the archive's file name: kfl_<index>_<prefix>_<unixSeconds>.tar.gz
// or trigger_<slug>_<unixSeconds>.tar.gz; "" for an unknown Kind.
// ParseName reads it back.
func (n Name) String() string {
	switch n.Kind {
	case KindKFL:
		return fmt.Sprintf("kfl_%d_%s_%d.tar.gz", n.Index, n.Prefix, n.Unix)
	case KindTrigger:
		return fmt.Sprintf("trigger_%s_%d.tar.gz", n.Slug, n.Unix)
	}
	return ""
}

// ParseName parses kfl_<index>_<prefix>_<unixSeconds>.tar.gz or
// trigger_<slug>_<unixSeconds>.tar.gz (a base name, without directories).
func ParseName(base string) (Name, bool) {
	if m := kflName.FindStringSubmatch(base); m != nil {
		i, err1 := strconv.Atoi(m[1])
		u, err2 := strconv.ParseInt(m[3], 10, 64)
		if err1 == nil && err2 == nil {
			return Name{Kind: KindKFL, Index: i, Prefix: m[2], Unix: u}, true
		}
	}
	if m := triggerRe.FindStringSubmatch(base); m != nil {
		if u, err := strconv.ParseInt(m[2], 10, 64); err == nil {
			return Name{Kind: KindTrigger, Slug: m[1], Unix: u}, true
		}
	}
	return Name{}, false
}
