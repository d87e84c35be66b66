#!/usr/bin/env bash
# Capture benchmark: kflcap vs tcpdump on a veth pair. Needs root.
# Usage: bench/capture/run.sh [-runs N] [-duration D] [-traffic udp64,tcp]
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bench/out
go run ./bench/capture -kflcap bin/kflcap -out bench/out/capture.md "$@"
