#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time ($1, default 3s).
set -euo pipefail
t=${1:-3s}
fails=0
for pkg in $(go list ./...); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "fuzz $pkg $f ($t)"
		if ! go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >/tmp/fuzz.$$.log 2>&1; then
			cat /tmp/fuzz.$$.log; fails=$((fails+1))
		fi
	done
done
rm -f /tmp/fuzz.$$.log
if [ "$fails" -ne 0 ]; then echo "fuzz: $fails target(s) failed"; exit 1; fi
echo "fuzz: all targets passed"
