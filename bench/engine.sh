#!/usr/bin/env bash
# Engine core benchmark: `run --rm busybox true` latency and 20 x `run -d`,
# berthd vs Debian's dockerd on the same machine (both driven by the same
# docker CLI, plus the berth CLI), medians of N runs, both with --network none
# (bench/network.sh measures the bridge); idle RSS of berthd and
# RSS per shim. Usage: bench/engine.sh [N]   (run as root)
set -euo pipefail
N=${1:-20}
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
busybox_tar
start_berthd
have_docker=1
start_dockerd || have_docker=0

time_runs() { # host cli... -> median ms of `run --rm busybox true`
	local host=$1; shift
	"$@" -H "$host" run --rm --network none busybox true >/dev/null # warm up
	for _ in $(seq "$N"); do
		local t0; t0=$(now_ns)
		"$@" -H "$host" run --rm --network none busybox true >/dev/null
		echo $((($(now_ns) - t0) / 1000))
	done | median | awk '{printf "%.1f", $1/1000}'
}

time_detached() { # host cli... -> median ms of 20 x run -d (then rm -f)
	local host=$1; shift
	for _ in $(seq 5); do
		local t0; t0=$(now_ns)
		for _ in $(seq 20); do "$@" -H "$host" run -d --network none busybox sleep 600 >/dev/null; done
		echo $((($(now_ns) - t0) / 1000))
		"$@" -H "$host" rm -f $("$@" -H "$host" ps -aq) >/dev/null
	done | median | awk '{printf "%.1f", $1/1000}'
}

B=unix://$BERTH_SOCK D=unix://$DOCKER_SOCK
berth_cli=$(time_runs "$B" "$REPO/bin/berth")
berthd_dockercli=$(time_runs "$B" "$DOCKER_CLI")
berth_20=$(time_detached "$B" "$REPO/bin/berth")
idle_rss=$(vmrss_kb "$BERTHD_PID")
"$REPO/bin/berth" -H "$B" run -d --name rss busybox sleep 600 >/dev/null
shim_pid=$(pgrep -f "berth-shim.*$(basename "$BENCH_DIR")" | head -1 || true)
shim_rss=${shim_pid:+$(vmrss_kb "$shim_pid")}
"$REPO/bin/berth" -H "$B" rm -f rss >/dev/null
if [ $have_docker = 1 ]; then
	docker_rm=$(time_runs "$D" "$DOCKER_CLI")
	docker_20=$(time_detached "$D" "$DOCKER_CLI")
fi
echo "| measure (median of $N) | berth | docker 20.10 | ratio |"
echo "|---|---|---|---|"
if [ $have_docker = 1 ]; then
	echo "| run --rm busybox true, docker CLI | ${berthd_dockercli} ms | ${docker_rm} ms | $(awk "BEGIN{printf \"%.1fx\", $docker_rm/$berthd_dockercli}") |"
	echo "| run --rm busybox true, berth CLI | ${berth_cli} ms | ${docker_rm} ms | $(awk "BEGIN{printf \"%.1fx\", $docker_rm/$berth_cli}") |"
	echo "| 20 x run -d (median of 5) | ${berth_20} ms | ${docker_20} ms | $(awk "BEGIN{printf \"%.1fx\", $docker_20/$berth_20}") |"
else
	echo "| run --rm busybox true | ${berth_cli} ms | n/a | |"
	echo "| 20 x run -d | ${berth_20} ms | n/a | |"
fi
echo "| berthd idle RSS | $((idle_rss / 1024)) MB | | |"
echo "| shim RSS | ${shim_rss:-?} kB | | |"
