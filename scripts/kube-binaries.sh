#!/bin/sh
# Prints the directory holding the pinned kube-apiserver and etcd binaries
# (the KUBEBUILDER_ASSETS layout: <dir>/kube-apiserver, <dir>/etcd),
# building them from the Go module proxy first when the cache does not hold
# them: once, about 7 minutes on 2 cores with empty Go caches (measured
# 6m43s; it leaves 2.3 GB of build cache and 0.7 GB of modules), 20 s with
# warm Go caches; the two binaries take 123 MB.
#
# The cache is outside the checkout (scripts/cache.sh), keyed by both
# versions. Idempotent; concurrent callers wait on a lock.
#
# kube-apiserver: k8s.io/kubernetes is not meant to be required as a module:
# its go.mod points every staging module (k8s.io/api, apimachinery, …) at
# ./staging/src. A wrapper module requires k8s.io/kubernetes and replaces
# each staging module with its published v0.x twin; the list is read from
# that version's own go.mod so it cannot drift.
# etcd: Debian's etcd 3.4 is too old for kube-apiserver 1.34; a wrapper
# module calls go.etcd.io/etcd/server/v3/etcdmain.Main.
set -eu
KUBE_VERSION=v1.34.4
STAGING_VERSION=v0.34.4
ETCD_VERSION=v3.6.4
. "$(dirname "$0")/cache.sh"
DIR=$CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION

built() { [ -x "$DIR/kube-apiserver" ] && [ -x "$DIR/etcd" ]; }
build() {
	echo "kube-binaries.sh: building kube-apiserver $KUBE_VERSION and etcd $ETCD_VERSION into $DIR (about 7 minutes, once)" >&2
	tmp=$1
	export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

	# etcd
	mkdir -p "$tmp/etcd"
	cat >"$tmp/etcd/main.go" <<-'EOF'
	// Command etcd is the etcd server, for kflcap's tests.
	package main

	import (
		"os"

		"go.etcd.io/etcd/server/v3/etcdmain"
	)

	func main() { etcdmain.Main(os.Args) }
	EOF
	(
		cd "$tmp/etcd"
		go mod init kflcap.test/etcd >/dev/null 2>&1
		go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
		go mod tidy
		go build -trimpath -ldflags "-s -w" -o "$tmp/etcd.bin" .
	) >&2

	# kube-apiserver
	mkdir -p "$tmp/kube"
	kgomod=$(cd "$tmp/kube" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	[ -f "$kgomod" ] || { echo "kube-binaries.sh: no go.mod for k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
	{
		echo "module kflcap.test/kube"
		echo
		echo "go 1.24"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		# "	k8s.io/api => ./staging/src/k8s.io/api" → "replace k8s.io/api => k8s.io/api v0.34.4"
		sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*$#replace \1 => \1 '"$STAGING_VERSION"'#p' "$kgomod"
	} >"$tmp/kube/go.mod"
	grep -q '^replace k8s.io/client-go ' "$tmp/kube/go.mod" ||
		{ echo "kube-binaries.sh: no staging replaces found in $kgomod" >&2; exit 1; }
	cat >"$tmp/kube/tools.go" <<-'EOF'
	//go:build tools

	package tools

	import _ "k8s.io/kubernetes/cmd/kube-apiserver"
	EOF
	pkg=k8s.io/component-base/version
	ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=34 -X $pkg.gitTreeState=clean"
	(
		cd "$tmp/kube"
		go mod tidy
		go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver.bin" k8s.io/kubernetes/cmd/kube-apiserver
	) >&2

	mv "$tmp/etcd.bin" "$DIR/etcd"
	mv "$tmp/kube-apiserver.bin" "$DIR/kube-apiserver"
	printf 'kube-apiserver %s\netcd %s\n' "$KUBE_VERSION" "$ETCD_VERSION" >"$DIR/VERSIONS"
}
build_once "$DIR" built build
echo "$DIR"
