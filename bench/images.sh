#!/usr/bin/env bash
# Image benchmark: `load -i`, `save -o` and `commit`, berthd vs Debian's
# dockerd 20.10, both driven by the same docker CLI, medians of N rounds.
# The image is the Go toolchain (/usr/local/go, ~270 MB, ~16k files) cut by
# bench/mkimage into 4 uncompressed layers of similar size. Commit times the
# commit of a stopped busybox container that wrote 100 files of 1 MiB from
# /dev/urandom (written anew each round, outside the timing).
# Each round runs every measure on both daemons, alternating which goes
# first; a `sync` precedes every timed command so no daemon pays for the
# other's writeback.
# Usage: bench/images.sh [N]   (run as root; BERTH_BIN=dir to use other binaries)
set -euo pipefail
N=${1:-5}
source "$(dirname "$0")/lib.sh"
BIN=${BERTH_BIN:-$REPO/bin}
IMG_BRIDGE=bimgbench0
trap 'bench_cleanup; ip link del $IMG_BRIDGE 2>/dev/null || true' EXIT

# berthd on a bridge of its own, so the benchmark does not depend on a free
# address pool or on another berthd's bridge.
start_berth() {
	[ -n "${BERTH_BIN:-}" ] || make -C "$REPO" -s build >/dev/null
	mkdir -p "$BENCH_DIR/berth"
	"$BIN/berthd" --data-root "$BENCH_DIR/berth/data" --exec-root "$BENCH_DIR/berth/exec" \
		-H "unix://$BERTH_SOCK" --cgroup-parent berth-bench --bridge $IMG_BRIDGE --bip 10.215.0.1/24 \
		--iptables=false >"$BENCH_DIR/berthd.log" 2>&1 &
	BERTHD_PID=$!
	for _ in $(seq 100); do [ -S "$BERTH_SOCK" ] && break; sleep 0.05; done
	"$BIN/berth" -H "unix://$BERTH_SOCK" import -c 'CMD ["sh"]' "$BENCH_DIR/busybox.tar" busybox:latest >/dev/null
}

make_image() {
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$BENCH_DIR/mkimage" ./bench/mkimage)
	"$BENCH_DIR/mkimage" -o "$BENCH_DIR/goimage.tar" -tag goimage:latest -C / -split 4 \
		-env PATH=/usr/local/go/bin:/usr/bin:/bin -cmd '["go","version"]' usr/local/go 2>"$BENCH_DIR/mkimage.log"
}

dk() { local host=$1; shift; "$DOCKER_CLI" -H "$host" "$@"; }

# timed host args... -> ms of `docker -H host args...` after a sync
timed() {
	local host=$1; shift
	sync
	local t0; t0=$(now_ns)
	dk "$host" "$@" >/dev/null
	echo $((($(now_ns) - t0) / 1000000))
}

# one_round host round -> appends one sample per measure to $BENCH_DIR/<name>.<measure>
one_round() {
	local host=$1 i=$2 name
	[ "$host" = "$B" ] && name=berth || name=docker
	dk "$host" rmi goimage >/dev/null
	timed "$host" load -q -i "$BENCH_DIR/goimage.tar" >>"$BENCH_DIR/$name.load"
	timed "$host" save -o "$BENCH_DIR/saved.tar" goimage >>"$BENCH_DIR/$name.save"
	rm -f "$BENCH_DIR/saved.tar"
	dk "$host" run --network none --name "cw$i" busybox sh -c \
		'mkdir /data && i=0 && while [ $i -lt 100 ]; do head -c 1048576 /dev/urandom >/data/f$i; i=$((i+1)); done' >/dev/null
	timed "$host" commit "cw$i" "committed:$i" >>"$BENCH_DIR/$name.commit"
	dk "$host" rm "cw$i" >/dev/null
	dk "$host" rmi "committed:$i" >/dev/null
}

busybox_tar
make_image
start_berth
have_docker=1
start_dockerd || have_docker=0
B=unix://$BERTH_SOCK D=unix://$DOCKER_SOCK
hosts=("$B")
[ $have_docker = 1 ] && hosts+=("$D")
# A first load into each daemon, untimed (and a check that the image runs).
for h in "${hosts[@]}"; do
	dk "$h" load -q -i "$BENCH_DIR/goimage.tar" >/dev/null
	dk "$h" run --rm --network none goimage go version >/dev/null
done
for i in $(seq "$N"); do
	if [ $((i % 2)) = 1 ]; then order=("${hosts[@]}"); else order=($(printf '%s\n' "${hosts[@]}" | tac)); fi
	for h in "${order[@]}"; do one_round "$h" "$i"; done
done

size=$(du -b "$BENCH_DIR/goimage.tar" | cut -f1)
echo "image: 4 layers, $((size / 1000000)) MB uncompressed archive; commit: 100 x 1 MiB files; median of $N rounds (ms)"
echo "| measure | berth | docker 20.10 | docker / berth |"
echo "|---|---|---|---|"
for m in load save commit; do
	b=$(median <"$BENCH_DIR/berth.$m")
	label="$m"
	case $m in
	load) label='load -i (after rmi)' ;;
	save) label='save -o' ;;
	commit) label='commit (100 MB written)' ;;
	esac
	if [ $have_docker = 1 ]; then
		d=$(median <"$BENCH_DIR/docker.$m")
		printf '| %s | %s | %s | %.2fx |\n' "$label" "$b" "$d" "$(echo "$d / $b" | bc -l)"
	else
		printf '| %s | %s | - | - |\n' "$label" "$b"
	fi
done
echo
echo "samples (ms, in round order):"
for m in load save commit; do
	for n in berth docker; do
		[ -f "$BENCH_DIR/$n.$m" ] && echo "  $n $m: $(tr '\n' ' ' <"$BENCH_DIR/$n.$m")"
	done
done
true
