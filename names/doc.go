// Package names keeps the names of the addresses kflcap sees, with their
// history: from /etc/hosts, from DNS answers in the traffic, and from the
// Kubernetes API (subpackage kube). Entries are named when they are made
// (History implements dissect.Resolver); every repository's
// name_resolution_history.json is History.Between its first and last
// packet. LocalAddrs tells this node's own addresses, for entries'
// "outgoing".
//
// Concurrency: History and LocalAddrs are safe for concurrent use.
package names
