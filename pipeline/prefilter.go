package pipeline

import (
	"github.com/kflcap/kflcap/bpf"
	"github.com/kflcap/kflcap/kfl"
)

// KernelPrefilter is what the capture programs may drop in the kernel for
// queries: the protocols, addresses and ports outside every query's
// pushdown (kfl.Pushdown). It is empty (the kernel copies everything) when
// a query can select any traffic, or when copyAll is set: triggered
// captures can ask for anything, including what came before them.
func KernelPrefilter(copyAll bool, queries ...*kfl.Query) bpf.Prefilter {
	pf := kfl.Pushdown(queries...)
	if pf.All || copyAll || len(queries) == 0 {
		return bpf.Prefilter{}
	}
	return bpf.Prefilter{Protocols: pf.Protocols, Prefixes: pf.Prefixes, Ports: pf.Ports}
}
