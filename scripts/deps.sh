#!/usr/bin/env bash
# Installs what one kind of work on kflcap needs, only when something is
# missing: Debian packages through apt-get. Safe to run repeatedly.
#   scripts/deps.sh generate   clang, llvm and headers to rebuild the BPF objects
#   scripts/deps.sh test       the above, and the tools and servers the tests drive
# Building and running the agent needs none of them (the BPF objects are
# committed), so `make run` does not call this.
set -euo pipefail
what=${1:-test}
case $what in
generate | test) ;;
*) echo "deps: unknown set $what (want generate or test)" >&2; exit 2 ;;
esac

# command:package pairs; a package is installed when its command is missing.
gen=(clang:clang llc:llvm)
need=(
  bpftool:bpftool tshark:tshark tcpdump:tcpdump ip:iproute2
  ss:iproute2 ping:iputils-ping curl:curl dig:dnsutils nc:netcat-openbsd
  iperf3:iperf3 trafgen:netsniff-ng dnsmasq:dnsmasq openssl:openssl
  python3:python3 tar:tar gzip:gzip promtool:prometheus aws:awscli
  redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools
  psql:postgresql pgbench:postgresql /usr/lib/postgresql/15/bin/postgres:postgresql
  /usr/lib/rabbitmq/bin/rabbitmq-server:rabbitmq-server
)
[ "$what" = test ] || need=()
pkgs=()
for pair in "${gen[@]}" "${need[@]}"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || pkgs+=("$pkg")
done
# Headers, not commands.
[ -f /usr/include/bpf/bpf_helpers.h ] || pkgs+=(libbpf-dev)
[ "$what" != test ] || [ -x /usr/bin/time ] || pkgs+=(time) # benchmarks read peak RSS from it
[ -d /usr/include/x86_64-linux-gnu/asm ] || [ "$(uname -m)" != x86_64 ] || pkgs+=(linux-libc-dev)

if [ ${#pkgs[@]} -gt 0 ]; then
  # Sort and de-duplicate.
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
  echo "deps: installing ${pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, quietly.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi
