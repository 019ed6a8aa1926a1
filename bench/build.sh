#!/usr/bin/env bash
# Build benchmark: a cold build and a fully cached rebuild of a Dockerfile
# whose context is the Go toolchain (/usr/local/go, ~270 MB, ~16k files),
# berthd vs Debian's dockerd 20.10 classic builder (DOCKER_BUILDKIT=0), same
# docker CLI for both, plus the berth CLI; medians of N runs and their ratios.
# Usage: bench/build.sh [N]   (run as root)
set -euo pipefail
N=${1:-5}
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
busybox_tar
# berthd on its own bridge so the benchmark does not depend on a free pool.
start_berthd_build() {
	make -C "$REPO" -s build >/dev/null
	mkdir -p "$BENCH_DIR/berth"
	"$REPO/bin/berthd" --data-root "$BENCH_DIR/berth/data" --exec-root "$BENCH_DIR/berth/exec" \
		-H "unix://$BERTH_SOCK" --cgroup-parent berth-bench --bridge bbench0 --bip 10.214.0.1/24 \
		--iptables=false >"$BENCH_DIR/berthd.log" 2>&1 &
	BERTHD_PID=$!
	for _ in $(seq 100); do [ -S "$BERTH_SOCK" ] && break; sleep 0.05; done
	"$REPO/bin/berth" -H "unix://$BERTH_SOCK" import -c 'CMD ["sh"]' "$BENCH_DIR/busybox.tar" busybox:latest >/dev/null
}
start_berthd_build
trap 'bench_cleanup; ip link del bbench0 2>/dev/null || true' EXIT
have_docker=1
start_dockerd || have_docker=0

CTX=$BENCH_DIR/ctx
mkdir -p "$CTX"
cp -a /usr/local/go "$CTX/go"
cat >"$CTX/Dockerfile" <<'DF'
FROM busybox
COPY go /usr/local/go
RUN ls /usr/local/go/bin > /go-bins
ENV PATH=/usr/local/go/bin:$PATH
CMD ["cat", "/go-bins"]
DF
ctx_mb=$(du -sm "$CTX" | cut -f1)

export DOCKER_BUILDKIT=0 DOCKER_CLI_HINTS=false
time_build() { # host cli extra-args... -> median ms of N builds
	local host=$1 cli=$2; shift 2
	for _ in $(seq "$N"); do
		local t0; t0=$(now_ns)
		"$cli" -H "$host" build -q "$@" -t bench:latest "$CTX" >/dev/null
		echo $((($(now_ns) - t0) / 1000))
	done | median | awk '{printf "%.0f", $1/1000}'
}

B=unix://$BERTH_SOCK D=unix://$DOCKER_SOCK
"$REPO/bin/berth" -H "$B" build -q -t bench:latest "$CTX" >/dev/null # fill the cache
berth_cold=$(time_build "$B" "$REPO/bin/berth" --no-cache)
berth_cached=$(time_build "$B" "$REPO/bin/berth")
berthd_dockercli_cold=$(time_build "$B" "$DOCKER_CLI" --no-cache)
berthd_dockercli_cached=$(time_build "$B" "$DOCKER_CLI")
if [ $have_docker = 1 ]; then
	"$DOCKER_CLI" -H "$D" build -q -t bench:latest "$CTX" >/dev/null
	docker_cold=$(time_build "$D" "$DOCKER_CLI" --no-cache)
	docker_cached=$(time_build "$D" "$DOCKER_CLI")
fi
ratio() { awk "BEGIN{printf \"%.1fx\", $1/$2}"; }
echo "| build, context ${ctx_mb} MB (median of $N) | berth | docker 20.10 classic | ratio |"
echo "|---|---|---|---|"
if [ $have_docker = 1 ]; then
	echo "| cached rebuild, berth CLI | ${berth_cached} ms | ${docker_cached} ms | $(ratio "$docker_cached" "$berth_cached") |"
	echo "| cached rebuild, docker CLI | ${berthd_dockercli_cached} ms | ${docker_cached} ms | $(ratio "$docker_cached" "$berthd_dockercli_cached") |"
	echo "| cold build (--no-cache), berth CLI | ${berth_cold} ms | ${docker_cold} ms | $(ratio "$docker_cold" "$berth_cold") |"
	echo "| cold build (--no-cache), docker CLI | ${berthd_dockercli_cold} ms | ${docker_cold} ms | $(ratio "$docker_cold" "$berthd_dockercli_cold") |"
else
	echo "| cached rebuild, berth CLI | ${berth_cached} ms | n/a | |"
	echo "| cold build, berth CLI | ${berth_cold} ms | n/a | |"
fi
