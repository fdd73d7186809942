#!/usr/bin/env bash
# Builds static release binaries into dist/ with SHA256SUMS.
# Linux targets must build; darwin and windows are built where they build.
set -euo pipefail
ldflags=$1
cd "$(dirname "$0")/.."
rm -rf dist && mkdir -p dist
build() { # os arch [GOARM|GOMIPS] name
	local os=$1 arch=$2 extra=$3 name=$4
	env CGO_ENABLED=0 GOOS=$os GOARCH=$arch $extra go build -trimpath -ldflags "$ldflags" -o "dist/$name" .
}
build linux amd64 "" skywire-linux-amd64
build linux arm64 "" skywire-linux-arm64
build linux arm GOARM=7 skywire-linux-armv7
build linux mipsle GOMIPS=softfloat skywire-linux-mipsle
for t in "darwin amd64" "darwin arm64" "windows amd64"; do
	set -- $t
	n=skywire-$1-$2; [ "$1" = windows ] && n=$n.exe
	build "$1" "$2" "" "$n" 2>/dev/null || echo "release: $1/$2 does not build; skipped"
done
(cd dist && sha256sum skywire-* > SHA256SUMS)
ls -l dist
