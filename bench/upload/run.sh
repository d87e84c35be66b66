#!/usr/bin/env bash
# Upload benchmark: kflcap's outbox + S3 sink against the AWS CLI (apt's
# awscli), same files, same MinIO on loopback, same run. Needs the AWS CLI
# and the pinned MinIO (scripts/minio.sh builds it once). Not run by go test.
#
#   bench/upload/run.sh               # 1 GiB + 1,000 × 64 KiB, best of 1
#   bench/upload/run.sh -runs 3
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${KFLCAP_BENCH_DIR:-/tmp/kflcap-bench-upload}
mkdir -p "$DIR" bench/out
go build -o "$DIR/bench-upload" ./bench/upload
"$DIR/bench-upload" -dir "$DIR" -out bench/out/upload.md "$@"
