#!/usr/bin/env bash
# Reproduces the "## protocols" section of docs/benchmarks.md: per-protocol
# dissection throughput of `kflcap read` against tshark on the captures the
# dissector tests committed (dissect/testdata), scaled up by
# bench/protocols/scale (N copies, each on its own addresses). Not root.
# Needs tshark and /usr/bin/time.
#
#   bench/protocols/run.sh            # all protocols
#   COPIES=4 bench/protocols/run.sh   # multiply every default copy count
#   ONLY=kafka bench/protocols/run.sh # one protocol
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${KFLCAP_BENCH_DIR:-/tmp/kflcap-bench-protocols}
MUL=${COPIES:-1}
mkdir -p "$DIR"
go build -o "$DIR/kflcap" ./cmd/kflcap
go build -o "$DIR/scale" ./bench/protocols/scale

# best RUNS CMD...: the lowest wall and the lowest CPU (user+sys) seconds of
# RUNS runs, as "wall cpu rss_mib" (the machine is shared and noisy).
best() {
	local runs=$1; shift
	local bw=999999 bc=999999 rss=0
	for _ in $(seq "$runs"); do
		/usr/bin/time -f '%e %U %S %M' -o "$DIR/time" "$@" >/dev/null 2>"$DIR/err" || { cat "$DIR/err" >&2; return 1; }
		read -r w u s m <"$DIR/time"
		c=$(echo "$u + $s" | bc)
		bw=$(echo "if ($w < $bw) $w else $bw" | bc)
		bc=$(echo "if ($c < $bc) $c else $bc" | bc)
		rss=$((m / 1024))
	done
	echo "$bw $bc $rss"
}

# name capture copies kfl-count kfl-miss tshark-filter-miss decode-as...
bench() {
	local name=$1 cap=$2 copies=$(($3 * MUL)) count=$4 miss=$5 tmiss=$6
	shift 6
	if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then return; fi
	local big=$DIR/$name.pcap
	"$DIR/scale" -n "$copies" "$cap" "$big"
	local pkts msgs
	pkts=$(capinfos -Tmc "$big" | tail -1 | cut -d, -f2)
	msgs=$("$DIR/kflcap" read "$big" --kfl "$count" | wc -l)
	read -r kw kc krss < <(best 3 "$DIR/kflcap" read "$big" --kfl "$miss")
	read -r tw tc trss < <(best 2 tshark -n -r "$big" "$@" -Y "$tmiss")
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f× / %.1f× |\n' \
		"$name" "$pkts" "$msgs" "$kw" "$kc" \
		"$(echo "$msgs / $kc" | bc)" "$(echo "$pkts / $kc" | bc)" "$krss" \
		"$tw / $tc" "$(echo "$pkts / $tc" | bc)" \
		"$(echo "$tw / $kw" | bc -l)" "$(echo "$tc / $kc" | bc -l)"
	rm -f "$big"
}

echo "| protocol | packets | messages | kflcap wall (s) | kflcap CPU (s) | messages per CPU-s | packets per CPU-s | kflcap RSS (MiB) | tshark wall / CPU (s) | tshark packets per CPU-s | kflcap faster (wall / CPU) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
bench redis dissect/testdata/redis.pcap 1000 'redis' 'redis and request.command == "NOPE"' 'resp.error == "NOPE"'
bench http2 dissect/testdata/http2.pcap 1000 'http2' 'http2 and response.status == 599' 'http2.headers.status == 599' \
	-d tcp.port==8082,http2 -d tcp.port==8080,http
bench grpc dissect/testdata/grpc.pcap 4000 'grpc' 'grpc and response.status == 99' 'http2.header.value == "99"' \
	-d tcp.port==50051,http2
bench postgres dissect/testdata/postgres.pcap 1000 'postgres' 'postgres and response.sqlState == "XX999"' 'pgsql.code == "XX999"'
bench kafka dissect/testdata/kafka.pcap 4000 'kafka' 'kafka and request.apiKeyName == "Nope"' 'kafka.client_id == "nope"' \
	-d tcp.port==9092,kafka
bench amqp dissect/testdata/amqp.pcap 10000 'amqp' 'amqp and request.routingKey == "nope"' 'amqp.method.arguments.routing_key == "nope"'
