// Package repofile reads sealed kflcap repositories: the .tar.gz archives
// that hold one pcap per selected L4 stream (<12-digit id>_<tcp|udp>.pcap),
// the merged <unixSeconds>.pcap, content.json and
// name_resolution_history.json (see "Repository format" in ARCHITECTURE.md).
//
// Open reads an archive once, front to back, and keeps only a summary of it:
// each member's name, type and size, a packet count and time span for each
// pcap, and the two small JSON files. Check reports where a repository
// disagrees with itself (a stream listed in content.json but missing, a
// merged pcap whose packet count is not the sum of the streams' counts, …).
// Extract writes the regular members of an archive into a directory and
// refuses anything that could write outside it.
//
// Archives are untrusted input. Every reader counts the bytes it actually
// decompresses, never trusting tar header sizes alone, and stops at the
// Limits it is given, so a gzip or tar bomb costs at most those limits in
// time and disk and a bounded amount of memory. Extract is all or nothing:
// when it refuses a member it removes every file and directory it created.
//
// Nothing here holds resources after a call returns; a Repository is plain
// data and safe to share once Open has returned it. Package repofiletest
// builds realistic and hostile archives for tests.
package repo
