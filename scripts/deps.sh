#!/usr/bin/env bash
# Installs the Debian packages the tests and `make run` need, if missing.
# Needs root (or sudo) only when something is missing.
#   required: curl (install.sh test), iproute2 (VPN tests: ip netns, veth)
#   optional: iperf3 (VPN throughput), chromium + chromium-driver (messenger
#             browser test), nftables (VPN exit masquerade); tests that need
#             them skip, saying so, when they cannot be installed;
#             iputils-ping (VPN test), time (make fuzz-long's memory check).
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
need=() want=()
have curl || need+=(curl)
have ip || need+=(iproute2)
have iperf3 || want+=(iperf3)
have chromium || want+=(chromium)
have chromedriver || want+=(chromium-driver)
have nft || want+=(nftables)
have ping || want+=(iputils-ping)
[ -x /usr/bin/time ] || want+=(time)
if [ ${#need[@]} -eq 0 ] && [ ${#want[@]} -eq 0 ]; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if have sudo; then sudo="sudo"; else
		if [ ${#need[@]} -ne 0 ]; then
			echo "deps: missing ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
			exit 1
		fi
		echo "deps: optional packages missing (${want[*]}); their tests will skip" >&2
		exit 0
	fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "deps: installing ${need[*]} ${want[*]}"
$sudo apt-get update -qq || true
if [ ${#need[@]} -ne 0 ]; then
	$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ ${#want[@]} -ne 0 ]; then
	$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" ||
		echo "deps: could not install ${want[*]}; the tests that need them will skip" >&2
fi
