#!/bin/sh
# Prints the path of the pinned MinIO server, building it from the Go module
# proxy first when the cache does not hold it (about 3 minutes, once).
# The cache is outside the checkout: ${KFLCAP_CACHE:-$HOME/.cache/kflcap}.
# MinIO's release tags are not semver, so the pin is a pseudo-version.
set -eu
VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CACHE=${KFLCAP_CACHE:-${HOME:-/root}/.cache/kflcap}
DIR=$CACHE/minio-$VERSION
BIN=$DIR/minio
if [ ! -x "$BIN" ]; then
	mkdir -p "$DIR"
	# One build at a time: go test runs packages in parallel.
	exec 9>"$DIR.lock"
	flock 9
	if [ ! -x "$BIN" ]; then
		echo "minio.sh: building github.com/minio/minio@$VERSION into $DIR (about 3 minutes, once)" >&2
		tmp=$(mktemp -d "$DIR.tmp.XXXXXX")
		# Outside any module, so that go install resolves MinIO's own go.mod.
		(cd "$tmp" && GOBIN="$tmp" GOFLAGS= go install "github.com/minio/minio@$VERSION") >&2
		mv "$tmp/minio" "$BIN"
		rm -rf "$tmp"
	fi
fi
echo "$BIN"
