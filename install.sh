#!/bin/sh
# skywire installer:  curl -fsSL https://…/install.sh | sh
# Downloads the release binary for this OS and CPU, checks its SHA-256
# against the release's SHA256SUMS, installs it and creates the role links.
#
# Settings (environment):
#   SKYWIRE_BASE_URL  where the release files are (default: the latest GitHub release)
#   SKYWIRE_BIN_DIR   install directory (default: /usr/local/bin for root, else ~/.local/bin)
set -eu

BASE_URL=${SKYWIRE_BASE_URL:-https://github.com/skywire-mesh/skywire/releases/latest/download}
if [ "$(id -u)" -eq 0 ]; then BIN_DIR=${SKYWIRE_BIN_DIR:-/usr/local/bin}; else BIN_DIR=${SKYWIRE_BIN_DIR:-$HOME/.local/bin}; fi

fail() { echo "install.sh: $*" >&2; exit 1; }

os=$(uname -s | tr '[:upper:]' '[:lower:]')
case "$os" in
	linux|darwin) ;;
	*) fail "unsupported OS: $os (releases exist for linux and darwin; on windows download the .exe)";;
esac
case "$(uname -m)" in
	x86_64|amd64) arch=amd64;;
	aarch64|arm64) arch=arm64;;
	armv7l|armv7*|armhf) arch=armv7;;
	mips|mipsel|mipsle) arch=mipsle;;
	*) fail "unsupported CPU: $(uname -m)";;
esac
name="skywire-$os-$arch"

fetch() { # url dest
	if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
	else fail "need curl or wget"; fi
}
sha256() {
	if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
	else fail "need sha256sum or shasum"; fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "downloading $name from $BASE_URL"
fetch "$BASE_URL/$name" "$tmp/$name" || fail "download of $BASE_URL/$name failed"
fetch "$BASE_URL/SHA256SUMS" "$tmp/SHA256SUMS" || fail "download of $BASE_URL/SHA256SUMS failed"
want=$(awk -v n="$name" '$2 == n || $2 == "*"n {print $1}' "$tmp/SHA256SUMS")
[ -n "$want" ] || fail "SHA256SUMS has no entry for $name"
got=$(sha256 "$tmp/$name")
[ "$got" = "$want" ] || fail "checksum mismatch for $name: got $got, want $want (not installed)"

mkdir -p "$BIN_DIR"
chmod 0755 "$tmp/$name"
mv -f "$tmp/$name" "$BIN_DIR/skywire"
"$BIN_DIR/skywire" links "$BIN_DIR" >/dev/null
echo "installed $BIN_DIR/skywire ($("$BIN_DIR/skywire" version | head -n1))"
case ":$PATH:" in *":$BIN_DIR:"*) ;; *) echo "note: $BIN_DIR is not on your PATH";; esac
echo "next: skywire config init && skywire viscript"
