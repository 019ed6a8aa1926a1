# Shared helpers for Berth's benchmarks: start berthd and Debian's dockerd on
# private roots and sockets, make the busybox image, time commands.
# Source it; call bench_cleanup on exit.

BENCH_DIR=$(mktemp -d /tmp/berth-bench.XXXXXX)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERTH_SOCK=$BENCH_DIR/berth/exec/berth.sock
DOCKER_SOCK=$BENCH_DIR/docker/docker.sock
DOCKER_CLI=${DOCKER_CLI:-$(command -v docker)}
BERTHD_PID= DOCKERD_PID=

now_ns() { date +%s%N; }

# median of numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

busybox_tar() {
	local root=$BENCH_DIR/bbroot
	mkdir -p "$root/bin" "$root/etc" "$root/tmp"
	cp /usr/bin/busybox "$root/bin/busybox"
	for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	tar -C "$root" -cf "$BENCH_DIR/busybox.tar" .
}

start_berthd() {
	make -C "$REPO" -s build >/dev/null
	mkdir -p "$BENCH_DIR/berth"
	"$REPO/bin/berthd" --data-root "$BENCH_DIR/berth/data" --exec-root "$BENCH_DIR/berth/exec" \
		-H "unix://$BERTH_SOCK" --cgroup-parent berth-bench >"$BENCH_DIR/berthd.log" 2>&1 &
	BERTHD_PID=$!
	for _ in $(seq 100); do [ -S "$BERTH_SOCK" ] && break; sleep 0.05; done
	"$REPO/bin/berth" -H "unix://$BERTH_SOCK" import -c 'CMD ["sh"]' "$BENCH_DIR/busybox.tar" busybox:latest >/dev/null
}

start_dockerd() {
	command -v dockerd >/dev/null || { echo "dockerd (docker.io) not installed" >&2; return 1; }
	mkdir -p "$BENCH_DIR/docker"
	dockerd --data-root "$BENCH_DIR/docker/data" --exec-root "$BENCH_DIR/docker/exec" \
		-H "unix://$DOCKER_SOCK" --pidfile "$BENCH_DIR/docker/dockerd.pid" --bridge none --iptables=false \
		--ip6tables=false >"$BENCH_DIR/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	for _ in $(seq 200); do [ -S "$DOCKER_SOCK" ] && "$DOCKER_CLI" -H "unix://$DOCKER_SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
	"$DOCKER_CLI" -H "unix://$DOCKER_SOCK" import -c 'CMD ["sh"]' "$BENCH_DIR/busybox.tar" busybox:latest >/dev/null
}

vmrss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

bench_cleanup() {
	set +e
	for sock in "$BERTH_SOCK" "$DOCKER_SOCK"; do
		[ -S "$sock" ] || continue
		ids=$("$DOCKER_CLI" -H "unix://$sock" ps -aq 2>/dev/null)
		[ -n "$ids" ] && "$DOCKER_CLI" -H "unix://$sock" rm -f $ids >/dev/null 2>&1
	done
	[ -n "$BERTHD_PID" ] && kill "$BERTHD_PID" 2>/dev/null && wait "$BERTHD_PID" 2>/dev/null
	[ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
	pkill -9 -f "$BENCH_DIR" 2>/dev/null
	grep -o " $BENCH_DIR[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$BENCH_DIR"
}
