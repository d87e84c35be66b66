package repo

import (
	"fmt"
	"strings"
	"time"
)

// Check reports every way in which the repository disagrees with the
// repository format or with itself, one sentence per problem, in a stable
// order. An empty result means the repository is consistent: content.json
// has the reference fields, its l4_streams are exactly the stream pcaps in
// the archive, the merged pcap exists, is in time order and holds as many
// packets as the stream pcaps together, and name_resolution_history.json
// parses.
func (r *Repository) Check() []string {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }

	// Members: only regular files (and harmless directories) with local
	// names, each once.
	seen := map[string]bool{}
	byName := map[string]*Member{}
	for i := range r.Members {
		m := &r.Members[i]
		if reason := unsafeName(m.Name); reason != "" {
			add("member %q: %s", m.Name, reason)
		}
		switch m.Type {
		case "file":
		case "dir":
			continue
		default:
			if m.Link != "" {
				add("member %q is a %s to %q: a repository holds only regular files", m.Name, m.Type, m.Link)
			} else {
				add("member %q is a %s: a repository holds only regular files", m.Name, m.Type)
			}
			continue
		}
		name := cleanName(m.Name)
		if seen[name] {
			add("member %q appears more than once", m.Name)
			continue
		}
		seen[name] = true
		byName[name] = m
		if m.Pcap != nil && m.Pcap.Err != "" {
			add("%s: unreadable pcap after %d packets: %s", name, m.Pcap.Packets, m.Pcap.Err)
		}
	}

	// content.json.
	c := r.Content
	switch {
	case r.ContentJSON == nil:
		add("%s is missing", ContentFile)
	case r.contentErr != nil:
		add("%s does not parse: %v", ContentFile, r.contentErr)
	}
	if c != nil {
		p = append(p, r.checkContent(c, byName)...)
	}
	switch {
	case !r.namesSeen:
		add("%s is missing", NameResolutionFile)
	case r.namesErr != nil:
		add("%s does not parse: %v", NameResolutionFile, r.namesErr)
	}
	return p
}

// checkContent compares content.json with the members.
func (r *Repository) checkContent(c *Content, byName map[string]*Member) []string {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	// Triggered captures are no KFL job: their kfl_index is -1.
	if c.KFLIndex < 0 && !(r.Name.Kind == KindTrigger && c.KFLIndex == -1) {
		add("%s: kfl_index %d is negative", ContentFile, c.KFLIndex)
	}
	if r.Name.Kind == KindKFL && r.Name.Index != c.KFLIndex {
		add("file name says KFL job %d, %s says kfl_index %d", r.Name.Index, ContentFile, c.KFLIndex)
	}
	if _, err := time.Parse(TimeFormat, c.Time); err != nil {
		add("%s: time %q is not in RFC 1123 GMT form (%s)", ContentFile, c.Time, TimeFormat)
	}

	listed := map[string]bool{}
	streamPackets, streamsReadable := 0, true
	for _, s := range c.L4Streams {
		switch {
		case !IsStreamName(s):
			add("l4_streams entry %q is not a stream pcap name (<12-digit id>_<tcp|udp>.pcap)", s)
		case listed[s]:
			add("l4_streams lists %s more than once", s)
			continue
		}
		listed[s] = true
		m := byName[s]
		if m == nil {
			add("l4_streams lists %s, which the archive does not hold", s)
			streamsReadable = false
			continue
		}
		if m.Pcap == nil || m.Pcap.Err != "" {
			streamsReadable = false
			continue
		}
		streamPackets += m.Pcap.Packets
	}
	for i := range r.Members {
		m := &r.Members[i]
		name := cleanName(m.Name)
		if m.Type == "file" && IsStreamName(name) && !listed[name] && byName[name] == m {
			add("member %s is a stream pcap that l4_streams does not list", name)
		}
	}

	merged := byName[c.PcapFileName]
	if !IsMergedName(c.PcapFileName) {
		add("pcap_file_name %q is not a merged pcap name (<unixSeconds>.pcap)", c.PcapFileName)
	}
	switch {
	case merged == nil:
		add("pcap_file_name %s: the archive does not hold it", c.PcapFileName)
	case merged.Pcap == nil || merged.Pcap.Err != "":
		// Already reported as unreadable.
	default:
		if merged.Pcap.Unordered > 0 {
			add("merged pcap %s is not in time order: %d packets are earlier than the one before", c.PcapFileName, merged.Pcap.Unordered)
		}
		if streamsReadable && merged.Pcap.Packets != streamPackets {
			add("merged pcap %s holds %d packets, the %d stream pcaps %d together", c.PcapFileName, merged.Pcap.Packets, len(listed), streamPackets)
		}
	}
	return p
}

// unsafeName says why a member name could write outside the directory it
// is extracted to, or "" when it cannot.
func unsafeName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case strings.HasPrefix(name, "/"):
		return "absolute path"
	case strings.ContainsRune(name, 0):
		return "NUL byte in name"
	case strings.ContainsRune(name, '\\'):
		return "backslash in name (a Windows path separator)"
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return `".." path component`
		}
	}
	return ""
}

// Streams counts the l4_streams entries by transport, for display.
func (c *Content) Streams() (tcp, udp int) {
	for _, s := range c.L4Streams {
		switch {
		case strings.HasSuffix(s, "_tcp.pcap"):
			tcp++
		case strings.HasSuffix(s, "_udp.pcap"):
			udp++
		}
	}
	return tcp, udp
}

// Merged returns the member that pcap_file_name names, or nil.
func (r *Repository) Merged() *Member {
	if r.Content == nil {
		return nil
	}
	for i := range r.Members {
		if m := &r.Members[i]; m.Type == "file" && cleanName(m.Name) == r.Content.PcapFileName {
			return m
		}
	}
	return nil
}
