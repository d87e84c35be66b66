#!/bin/sh
# Prints the path of the pinned helm binary, building it from the Go module
# proxy first when the cache does not hold it (Debian does not package helm;
# the proxy is the only network the tests may count on): once, about 2
# minutes on 2 cores with empty Go caches (measured 1m47s; it leaves 0.7 GB
# of build cache and 0.4 GB of modules), 1m20s with only the Kubernetes
# modules cached; the binary takes 61 MB.
#
# The cache is outside the checkout (scripts/cache.sh). Idempotent;
# concurrent callers wait on a lock.
#
# helm's go.mod has no replace directives, so go install resolves it
# directly. The ldflags are those of helm's own Makefile: the version that
# `helm version` prints, and the Kubernetes version that `helm template` and
# `helm lint` assume without a cluster (client-go v0.X.Y → 1.X).
set -eu
VERSION=v3.19.0
. "$(dirname "$0")/cache.sh"
DIR=$CACHE/helm-$VERSION
BIN=$DIR/helm

built() { [ -x "$BIN" ]; }
build() {
	echo "helm.sh: building helm.sh/helm/v3/cmd/helm@$VERSION into $DIR (about 2 minutes, once)" >&2
	# Outside any module, so that go install resolves helm's own go.mod.
	cd "$1"
	export GOFLAGS= GOWORK=off CGO_ENABLED=0
	gomod=$(go mod download -json "helm.sh/helm/v3@$VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	# "	k8s.io/client-go v0.34.0" → 34
	minor=$(sed -n 's#^[[:space:]]*k8s\.io/client-go v0\.\([0-9]*\)\..*$#\1#p' "$gomod")
	[ -n "$minor" ] || { echo "helm.sh: no k8s.io/client-go in $gomod" >&2; exit 1; }
	ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
	done
	GOBIN="$1" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$VERSION" >&2
	mv "$1/helm" "$BIN"
}
build_once "$DIR" built build
echo "$BIN"
