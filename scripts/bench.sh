#!/usr/bin/env bash
# make bench: runs the benchmarks and measures the binary, then prints one
# table. Figures go into docs/PERFORMANCE.md by hand, with the date.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-1s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

pkgs=$(go list ./... | grep -v /tests/)
echo "running benchmarks (benchtime $BENCHTIME) …" >&2
go test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" $pkgs 2>&1 | tee "$out" >&2 || true

echo
echo "| benchmark | ns/op | other figures |"
echo "|---|---:|---|"
awk '/^pkg: /{pkg=$2; sub(".*/skywire/","",pkg)}
/^Benchmark/ {
	name=$1; sub(/-[0-9]+$/,"",name)
	ns=""; rest=""
	for (i=3; i<NF; i+=2) {
		if ($(i+1)=="ns/op") ns=$i; else rest=rest $i " " $(i+1) "; "
	}
	printf "| %s %s | %s | %s |\n", pkg, name, ns, rest
}' "$out"

# The binary: stripped size, and RSS of an idle `viscript --serve`.
bin=bin/skywire
size=$(stat -c %s "$bin")
state=$(mktemp -d)
SKYWIRE_STATE_DIR=$state "$bin" --config /dev/null viscript --serve 2>/dev/null &
pid=$!
sleep 2
rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$state"
echo "| binary size (stripped, static) | | $((size/1024/1024)).$(( (size%(1024*1024))*10/1024/1024 )) MB |"
echo "| idle viscript --serve RSS | | $((rss/1024)) MB |"
