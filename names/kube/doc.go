// Package kube names the endpoints of captured traffic from the Kubernetes
// API: client-go informers on pods, services and endpointslices maintain
// IP → identity (name, namespace, kind, labels) and IP:port → service, and
// record every change, with its time, in the node's names.History, which
// the repositories write as name_resolution_history.json.
//
// What is watched: this node's pods only (field selector
// spec.nodeName=<node>, so that the API server sends each agent a node's
// worth of pods rather than the cluster's), every service and every
// endpointslice. The trade-off: a pod on another node is named only when it
// backs a service (its endpointslice entry names the pod in targetRef);
// other remote pods stay unnamed here and are left to DNS answers and
// /etc/hosts. Without a node name every pod is watched.
//
// Lifetime: Start builds the client, starts the informers and waits (a
// bounded time) for their first list; they run until the context given to
// Start is done or Close is called. Close waits for the informer goroutines.
// API failures never stop the Resolver: the informers retry with back-off,
// names already known stay known, names not yet known stay unknown, and
// Stats counts the failures (one log line per resource and minute at most).
//
// A deleted pod's identity keeps resolving for Options.Linger (so that
// entries of streams ending just after it died still carry its name), and
// stays in the Names history for good: the history of a span that saw the
// pod names it.
//
// Concurrency: Resolve and Lookup are called from the dissector's workers,
// per entry: they read a sync.Map and take no lock. PodIP takes a read
// lock. Informer events are applied one at a time under a mutex that only
// the informer goroutines and the linger sweep take.
package kube
