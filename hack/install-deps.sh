#!/usr/bin/env bash
# Installs the Debian packages Berth builds, runs and tests with (idempotent).
set -euo pipefail
need=()
for pkg in runc busybox-static tini iproute2 nftables skopeo docker.io docker-registry make git procps ca-certificates; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
	echo "install-deps: Go 1.26 is required (expected at /usr/local/go)" >&2
	exit 1
fi
