#!/usr/bin/env bash
# Reproduces the "## read" section of docs/benchmarks.md: generates (once,
# cached) a capture of real HTTP/1.1, DNS and TLS traffic between two network
# namespaces, then compares `kflcap read --kfl` with `tshark -Y` on it.
# Needs root, tcpdump, tshark (capinfos), dnsmasq, dig, /usr/bin/time.
#
#   bench/read/run.sh                 # generate if missing, then measure
#   REQS=300000 bench/read/run.sh     # a bigger capture (delete the cache first)
#   KFLCAP_BENCH_DIR=/data bench/read/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${KFLCAP_BENCH_DIR:-/tmp/kflcap-bench-read}
REQS=${REQS:-200000}
DNSQ=${DNSQ:-20000}
TLSN=${TLSN:-2000}
PCAP=$DIR/big.pcap
mkdir -p "$DIR"
go build -o "$DIR/kflcap" ./cmd/kflcap
go build -o "$DIR/gen" ./bench/read/gen

generate() {
	local A=kflb-a B=kflb-b
	cleanup() {
		for p in ${PIDS:-}; do kill "$p" 2>/dev/null || true; done
		ip netns del $A 2>/dev/null || true
		ip netns del $B 2>/dev/null || true
	}
	trap cleanup EXIT
	cleanup
	PIDS=
	ip netns add $A
	ip netns add $B
	ip link add kflb0 netns $A type veth peer name kflb1 netns $B
	ip -n $A addr add 10.99.0.1/24 dev kflb0
	ip -n $B addr add 10.99.0.2/24 dev kflb1
	for ns in $A $B; do ip -n $ns link set lo up; done
	# One MSS per packet, as on a wire: without this the veth carries
	# 64 KiB TSO super-packets and the capture has few, huge packets.
	ip -n $A link set kflb0 gso_max_segs 1 || true
	ip -n $B link set kflb1 gso_max_segs 1 || true
	ip -n $A link set kflb0 up
	ip -n $B link set kflb1 up

	ip netns exec $B "$DIR/gen" server & PIDS="$PIDS $!"
	ip netns exec $B dnsmasq --no-daemon --no-resolv --no-hosts --port=53 --listen-address=10.99.0.2 \
		--bind-interfaces --pid-file= --user=root --local=/test/ --address=/svc.test/10.99.0.20 \
		--host-record=db.test,10.99.0.21 --cname=www.test,db.test --txt-record=t.test,bench \
		--mx-host=m.test,mail.m.test,10 >/dev/null 2>&1 & PIDS="$PIDS $!"
	sleep 1
	ip netns exec $B tcpdump -n -s 0 -B 262144 -i kflb1 -w "$PCAP.tmp" 2>"$DIR/tcpdump.log" & local TD=$!
	PIDS="$PIDS $TD"
	sleep 1
	# DNS queries from a batch file, with dig, over UDP (and some TCP).
	local names=(a.svc.test db.test www.test t.test m.test nope.test)
	local types=(A A A TXT MX A)
	: >"$DIR/dig.batch"
	for i in $(seq 1 "$DNSQ"); do
		local k=$((i % 6))
		local tcp=""
		[ $((i % 20)) -eq 0 ] && tcp="+tcp"
		echo "@10.99.0.2 +tries=1 +time=1 $tcp ${names[$k]} ${types[$k]}" >>"$DIR/dig.batch"
	done
	ip netns exec $A dig -f "$DIR/dig.batch" >/dev/null &
	local DIG=$!
	ip netns exec $A "$DIR/gen" tls -addr 10.99.0.2:443 -n "$TLSN" >"$DIR/tls.truth" &
	local TLS=$!
	ip netns exec $A "$DIR/gen" client -base http://10.99.0.2 -n "$REQS" -c 8 >"$DIR/http.truth"
	wait $DIG $TLS
	sleep 1
	kill -INT $TD
	wait $TD || true
	mv "$PCAP.tmp" "$PCAP"
	cat "$DIR/tcpdump.log" "$DIR/http.truth" "$DIR/tls.truth"
	cleanup
	trap - EXIT
}

[ -s "$PCAP" ] || generate

# timed OUT CMD... : runs CMD under /usr/bin/time -v; sets SECS (wall),
# CPU (user+system seconds) and RSS_MB. CPU time is the fairer measure on a
# shared machine: wall time also counts waiting for other processes.
timed() {
	local out=$1
	shift
	/usr/bin/time -v "$@" >"$out" 2>"$out.time"
	SECS=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out.time")
	CPU=$(awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.2f", s}' "$out.time")
	RSS_MB=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$out.time")
}

# best N OUT CMD... : timed, N times; keeps the lowest wall and CPU time
# (the runs least disturbed by other processes) and the highest RSS.
best() {
	local n=$1 out=$2 bs= bc= br=0
	shift 2
	for _ in $(seq 1 "$n"); do
		timed "$out" "$@"
		if [ -z "$bs" ] || awk -v a="$SECS" -v b="$bs" 'BEGIN {exit !(a < b)}'; then bs=$SECS; fi
		if [ -z "$bc" ] || awk -v a="$CPU" -v b="$bc" 'BEGIN {exit !(a < b)}'; then bc=$CPU; fi
		[ "$RSS_MB" -gt "$br" ] && br=$RSS_MB
	done
	SECS=$bs CPU=$bc RSS_MB=$br
}

PKTS=$(capinfos -M -c "$PCAP" | awk -F': *' '/Number of packets/ {print $2}')
BYTES=$(stat -c %s "$PCAP")
echo "capture: $PCAP, $((BYTES >> 20)) MiB, $PKTS packets"

best 3 "$DIR/kflcap.out" "$DIR/kflcap" read "$PCAP" --kfl 'http and response.status == 500'
K_N=$(wc -l <"$DIR/kflcap.out"); K_S=$SECS; K_C=$CPU; K_RSS=$RSS_MB
best 3 "$DIR/kflcap2.out" "$DIR/kflcap" read --workers 2 "$PCAP" --kfl 'http and response.status == 500'
K2_N=$(wc -l <"$DIR/kflcap2.out"); K2_S=$SECS; K2_C=$CPU; K2_RSS=$RSS_MB
best 3 "$DIR/kflcapall.out" "$DIR/kflcap" read "$PCAP" --json
KA_N=$(wc -l <"$DIR/kflcapall.out"); KA_S=$SECS; KA_C=$CPU; KA_RSS=$RSS_MB
best 2 "$DIR/tshark.out" tshark -n -r "$PCAP" -Y 'http.response.code == 500' -T fields -e frame.number
T_N=$(wc -l <"$DIR/tshark.out"); T_S=$SECS; T_C=$CPU; T_RSS=$RSS_MB

pps() { awk -v p="$PKTS" -v s="$1" 'BEGIN {printf "%.0f", p/s}'; }
echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | HTTP 500 responses | wall (s) | CPU (s) | packets/s (wall) | packets per CPU-second | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|"
echo "| \`kflcap read --kfl 'http and response.status == 500'\` (1 worker) | $K_N | $K_S | $K_C | $(pps "$K_S") | $(pps "$K_C") | $K_RSS |"
echo "| same, \`--workers 2\` | $K2_N | $K2_S | $K2_C | $(pps "$K2_S") | $(pps "$K2_C") | $K2_RSS |"
echo "| \`kflcap read --json\` (every entry, $KA_N lines) | – | $KA_S | $KA_C | $(pps "$KA_S") | $(pps "$KA_C") | $KA_RSS |"
echo "| \`tshark -r -Y 'http.response.code == 500'\` | $T_N | $T_S | $T_C | $(pps "$T_S") | $(pps "$T_C") | $T_RSS |"
awk -v k="$K_S" -v t="$T_S" -v kc="$K_C" -v tc="$T_C" 'BEGIN {printf "\nspeed-up vs tshark (1 worker): %.1fx wall, %.1fx CPU\n", t/k, tc/kc}'
[ -f "$DIR/http.truth" ] && echo "client ground truth: $(cat "$DIR/http.truth")"
if [ "$K_N" != "$T_N" ] || [ "$K2_N" != "$T_N" ]; then
	echo "MISMATCH: kflcap $K_N / $K2_N, tshark $T_N" >&2
	exit 1
fi
