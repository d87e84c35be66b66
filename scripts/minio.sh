#!/bin/sh
# Prints the path of the pinned MinIO server, building it from the Go module
# proxy first when the cache does not hold it (about 3 minutes, once).
# The cache is outside the checkout (scripts/cache.sh).
# MinIO's release tags are not semver, so the pin is a pseudo-version.
set -eu
VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
. "$(dirname "$0")/cache.sh"
DIR=$CACHE/minio-$VERSION
BIN=$DIR/minio

built() { [ -x "$BIN" ]; }
build() {
	echo "minio.sh: building github.com/minio/minio@$VERSION into $DIR (about 3 minutes, once)" >&2
	# Outside any module, so that go install resolves MinIO's own go.mod.
	(cd "$1" && GOBIN="$1" GOFLAGS= go install "github.com/minio/minio@$VERSION") >&2
	mv "$1/minio" "$BIN"
}
build_once "$DIR" built build
echo "$BIN"
