// Package repo is kflcap's repository format: the sealed .tar.gz in which
// a KFL job or a triggered capture keeps the L4 streams it selected, as
// Kubeshark's wrapper.kflPcapS3 defines it, plus kflcap's extensions (see
// "Repository format" in ARCHITECTURE.md). It writes repositories
// (Writer), reads them (Open, ReadContent), checks them (Check) and
// extracts them (Extract).
//
// # Archive
//
// A repository is named kfl_<index>_<prefix>_<unixSeconds>.tar.gz (KFL job
// index, prefix "kflcap" by default) or trigger_<slug>_<unixSeconds>.tar.gz
// (a triggered capture); Name.String builds the names and ParseName reads
// them. The Writer puts its members in this order, so that readers find
// the metadata without decompressing packets:
//
//	content.json                   what the repository holds (Content)
//	name_resolution_history.json   names of the addresses seen
//	<12-digit id>_<tcp|udp>.pcap   one per stream, e.g. 000000007221_udp.pcap,
//	                               every captured packet of the stream
//	<unixSeconds>.pcap             all the streams merged in time order
//
// All pcaps are classic pcap with one link type: the capture's, or
// LINUX_SLL2 (interface index and direction per packet) when interfaces of
// different link types contributed.
//
// # content.json
//
// Content is content.json for the writer and every reader. The wrapper's
// fields:
//
//	kfl_index        the job's index in kflArr; -1 for a triggered capture
//	kfl_query        the KFL query
//	l4_streams       the stream pcaps' names
//	pcap_file_name   the merged pcap's name
//	time             when the repository was sealed, TimeFormat:
//	                 "Tue, 14 Mar 2023 18:46:13 GMT"
//
// kflcap's extensions: capture (the agent's packet and drop counters over
// the repository's lifetime), kflcap_version, node {cluster, ip, name},
// opened (RFC 3339, UTC), seal_reason, and for a triggered capture trigger
// {alert, duration, from, id, kfl, labels, lookback, name, rule, started},
// the alert being the security alert that fired it. Fields are written in
// name order, the order content.json has always had. A reader keeps the
// top-level fields it does not know in Content.Extra and writes them back;
// Repository.ContentJSON is the file verbatim.
//
// # name_resolution_history.json
//
// The names the node knew for addresses while the repository was open,
// keyed by the Unix second they were learnt and then by "<ip>" or
// "<ip>:<port>":
//
//	{"1678818739": {"10.103.193.44:80": {"FullAddress": "kubeshark-front.kubeshark", "Namespace": "kubeshark"}}}
//
// # Lifetime
//
// A Writer is not safe for concurrent use: the job that owns it serialises
// access. It appends packets to a spool file in a new <spool>/repo-*.partial
// directory; Seal writes <dir>/<name>.partial, closes, fsyncs and renames
// it to <dir>/<name> and fsyncs dir, so an archive under its final name is
// complete; then it removes the spool files. After a failed Seal, Discard
// removes them. RecoverSpool removes what a killed process left (*.partial).
// Spool counts spool bytes so that a full spool refuses new streams.
//
// # Reading
//
// Archives are untrusted input. Open reads an archive once, front to back,
// and keeps only a summary: each member's name, type and size, a packet
// count and time span for each pcap, and the two JSON files. ReadContent
// reads only as far as content.json. Both count the bytes they actually
// decompress, never trusting tar headers alone, and stop at the Limits
// they are given, so a gzip or tar bomb costs at most those limits in time
// and disk and a bounded amount of memory. Check reports where a repository
// disagrees with itself (a stream listed in content.json but missing, a
// merged pcap whose packet count is not the sum of the streams', …).
// Extract writes the regular members into a directory, refuses anything
// that could write outside it, and is all or nothing: when it refuses a
// member it removes every file and directory it created.
//
// Nothing here holds resources after a call returns; a Repository is plain
// data and safe to share once Open has returned it. Package repotest builds
// realistic and hostile archives for tests.
package repo
