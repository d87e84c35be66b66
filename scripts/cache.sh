# Sourced by the scripts that build a pinned tool once into the cache
# outside the checkout (${KFLCAP_CACHE:-$HOME/.cache/kflcap}).
CACHE=${KFLCAP_CACHE:-${HOME:-/root}/.cache/kflcap}

# build_once DIR READY BUILD: unless READY (a command) succeeds, runs BUILD
# with a fresh temporary directory next to DIR as its argument, removed
# afterwards, also on failure. One build at a time: go test runs packages
# in parallel, and concurrent callers wait on DIR's lock, then find it
# built.
build_once() {
	_dir=$1 _ready=$2 _build=$3
	$_ready && return 0
	mkdir -p "$_dir"
	exec 9>"$_dir.lock"
	flock 9
	$_ready && return 0
	_tmp=$(mktemp -d "$_dir.tmp.XXXXXX")
	trap 'rm -rf "$_tmp"' EXIT
	$_build "$_tmp"
}
