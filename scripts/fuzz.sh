#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time ($1, default 3s).
#
# A real finding writes its input to testdata/fuzz/ ("Failing input written
# to") and fails at once. Go before 1.27 also fails a target with a bare
# "context deadline exceeded" when -fuzztime ends while a worker is still
# busy (golang/go#75804, a race in the fuzz coordinator, frequent on a
# loaded 2-core machine); such a run is repeated once, and fails if it
# happens again.
#
# FUZZ_PKGS limits the packages (default ./...); FUZZ_TARGETS (an extended
# regexp) limits the targets by name, e.g. 'FuzzOpen|FuzzFinish'.
# $1 may also be an execution count ("1000000x", make fuzz-long). With
# FUZZ_MAX_RSS_MB set, a target whose largest process (the fuzz workers
# included) held more than that many MiB fails: a decoder that allocates by
# what its input claims shows up here long before it crashes anything.
set -euo pipefail
t=${1:-3s}
max_rss_mb=${FUZZ_MAX_RSS_MB:-}
log=$(mktemp)
rss=$(mktemp)
trap 'rm -f "$log" "$rss"' EXIT
timed=()
if [ -n "$max_rss_mb" ]; then
	[ -x /usr/bin/time ] || { echo "fuzz: FUZZ_MAX_RSS_MB needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
	# ru_maxrss of the children: the largest of go test, the test binary
	# and its fuzz workers; and their CPU seconds (user, system), which
	# unlike the wall time do not depend on what else the machine runs.
	timed=(/usr/bin/time -o "$rss" -f '%M %U %S')
fi
fails=0
ran=0
deadline_only() {
	grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log"
}
for pkg in $(go list ${FUZZ_PKGS:-./...}); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' | grep -E "${FUZZ_TARGETS:-.}" || true); do
		echo "fuzz $pkg $f ($t)"
		ran=$((ran + 1))
		for try in 1 2; do
			start=$SECONDS
			if "${timed[@]}" go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >"$log" 2>&1; then
				if [ -n "$max_rss_mb" ]; then
					read -r kb user sys < <(tail -n 1 "$rss")
					echo "  $(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 || true) in $((SECONDS - start)) s (CPU ${user} s user, ${sys} s system), largest process $((kb / 1024)) MiB"
					if [ "$((kb / 1024))" -gt "$max_rss_mb" ]; then
						echo "  $f: a process held $((kb / 1024)) MiB, over FUZZ_MAX_RSS_MB=$max_rss_mb"
						fails=$((fails + 1))
					fi
				fi
				break
			fi
			if [ "$try" = 1 ] && deadline_only; then
				echo "  fuzz engine deadline race (golang/go#75804), no failing input: running $f again"
				continue
			fi
			cat "$log"
			fails=$((fails + 1))
			break
		done
	done
done
if [ "$ran" -eq 0 ]; then
	echo "fuzz: no fuzz target in FUZZ_PKGS=${FUZZ_PKGS:-./...} matches FUZZ_TARGETS=${FUZZ_TARGETS:-}" >&2
	exit 1
fi
if [ "$fails" -ne 0 ]; then
	echo "fuzz: $fails target(s) failed"
	exit 1
fi
echo "fuzz: all targets passed"
