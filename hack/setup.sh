#!/usr/bin/env bash
# Installs what Berth needs on a fresh Debian 12 machine (as root), builds the
# binaries, starts berthd and runs a real container from a busybox image made
# from Debian's busybox-static. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-deps.sh
# docker.io's package may start its own daemon; Berth's benchmarks start it
# on private roots instead.
if ! command -v go >/dev/null; then
	export PATH=$PATH:/usr/local/go/bin
fi

make build

BERTH_HOST=${BERTH_HOST:-unix:///run/berth/berth.sock}
export BERTH_HOST
sock=${BERTH_HOST#unix://}
if ! bin/berth version >/dev/null 2>&1; then
	mkdir -p /var/log
	nohup bin/berthd -H "$BERTH_HOST" >/var/log/berthd.log 2>&1 &
	for _ in $(seq 100); do [ -S "$sock" ] && bin/berth version >/dev/null 2>&1 && break; sleep 0.1; done
fi

if ! bin/berth image inspect busybox:latest >/dev/null 2>&1; then
	rootfs=$(mktemp -d)
	mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
	cp /usr/bin/busybox "$rootfs/bin/busybox"
	for applet in $(/usr/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
	tar -C "$rootfs" -c . | bin/berth import -c 'CMD ["sh"]' - busybox:latest
	rm -rf "$rootfs"
fi

bin/berth run --rm busybox sh -c 'echo "Hello from Berth: container $(hostname) sees pid 1 = $(cat /proc/1/comm), kernel $(uname -r)"'
echo "berthd is running on $BERTH_HOST (log: /var/log/berthd.log). Try: bin/berth run -it --rm busybox sh"
