#!/usr/bin/env bash
# Ship benchmark: push and pull of a 4-layer ~270 MB image (the Go toolchain
# in /usr/local/go) through a local registry (Debian's docker-registry on
# loopback), berthd vs Debian's dockerd, both driven by the same docker CLI.
# Medians of N runs; every push goes to a fresh registry, every pull starts
# from a daemon without the image's layers.
# Usage: bench/ship.sh [N]   (run as root; BERTH_BIN=dir to use other binaries)
set -euo pipefail
N=${1:-5}
source "$(dirname "$0")/lib.sh"
trap 'stop_registry; bench_cleanup' EXIT
BIN=${BERTH_BIN:-$REPO/bin}
REG_PID=
REG_PORT=${REG_PORT:-5099}
REG=127.0.0.1:$REG_PORT

start_registry() { # fresh storage each time
	stop_registry
	local dir=$BENCH_DIR/registry.$RANDOM
	mkdir -p "$dir"
	printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
		"$dir/data" "$REG" >"$dir/config.yml"
	if curl -fs "http://$REG/v2/" >/dev/null 2>&1; then echo "port of $REG is taken" >&2; return 1; fi
	/usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	REG_PID=$!
	for _ in $(seq 100); do curl -fs "http://$REG/v2/" >/dev/null && return; sleep 0.05; done
	echo "registry did not start" >&2; return 1
}
stop_registry() {
	if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; fi
	REG_PID=
}

start_berth() {
	mkdir -p "$BENCH_DIR/berth"
	"$BIN/berthd" --data-root "$BENCH_DIR/berth/data" --exec-root "$BENCH_DIR/berth/exec" \
		-H "unix://$BERTH_SOCK" --cgroup-parent berth-bench >"$BENCH_DIR/berthd.log" 2>&1 &
	BERTHD_PID=$!
	for _ in $(seq 100); do [ -S "$BERTH_SOCK" ] && break; sleep 0.05; done
}

# goimage.tar: docker-archive of /usr/local/go split into four layers.
make_image() {
	local d=$BENCH_DIR/goimage
	mkdir -p "$d"
	local g=usr/local/go
	tar -C / -cf "$d/l1.tar" $(cd / && ls -d $g/* | grep -v -e "^$g/pkg$" -e "^$g/src$" -e "^$g/test$")
	tar -C / -cf "$d/l2.tar" $g/pkg
	tar -C / -cf "$d/l3.tar" $g/src/cmd
	tar -C / -cf "$d/l4.tar" --exclude=$g/src/cmd $g/src $g/test
	python3 - "$d" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
layers = ["l1.tar", "l2.tar", "l3.tar", "l4.tar"]
diff = ["sha256:" + hashlib.sha256(open(os.path.join(d, l), "rb").read()).hexdigest() for l in layers]
cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
    "config": {"Env": ["PATH=/usr/local/go/bin:/usr/bin:/bin"], "Cmd": ["go", "version"]},
    "rootfs": {"type": "layers", "diff_ids": diff}}).encode()
name = hashlib.sha256(cfg).hexdigest() + ".json"
open(os.path.join(d, name), "wb").write(cfg)
json.dump([{"Config": name, "RepoTags": ["goimage:latest"], "Layers": layers}], open(os.path.join(d, "manifest.json"), "w"))
PY
	tar -C "$d" -cf "$BENCH_DIR/goimage.tar" manifest.json $(cd "$d" && ls *.json | grep -v manifest) l1.tar l2.tar l3.tar l4.tar
	rm -rf "$d"
}

ms_since() { echo $((($(now_ns) - $1) / 1000000)); }

# push_once host tag file: appends the ms of a push of goimage to a fresh
# registry to file (not a $(...) subshell: the registry's pid must survive).
push_once() {
	start_registry
	"$DOCKER_CLI" -H "$1" tag goimage "$REG/bench/go:$2" >/dev/null
	sync
	local t0; t0=$(now_ns)
	"$DOCKER_CLI" -H "$1" push -q "$REG/bench/go:$2" >/dev/null
	ms_since "$t0" >>"$3"
	"$DOCKER_CLI" -H "$1" rmi "$REG/bench/go:$2" >/dev/null
}

# pull_once host file: appends the ms of a pull of the image, none of its layers present
pull_once() {
	"$DOCKER_CLI" -H "$1" rmi -f "$REG/bench/go:src" >/dev/null 2>&1 || true
	"$DOCKER_CLI" -H "$1" image prune -af >/dev/null 2>&1 || true
	sync # the previous run's dirty pages are not this run's cost
	local t0; t0=$(now_ns)
	"$DOCKER_CLI" -H "$1" pull -q "$REG/bench/go:src" >/dev/null
	ms_since "$t0" >>"$2"
}

busybox_tar
make_image
start_berth
have_docker=1
start_dockerd || have_docker=0
B=unix://$BERTH_SOCK D=unix://$DOCKER_SOCK
"$DOCKER_CLI" -H "$B" load -q -i "$BENCH_DIR/goimage.tar" >/dev/null
[ $have_docker = 1 ] && "$DOCKER_CLI" -H "$D" load -q -i "$BENCH_DIR/goimage.tar" >/dev/null

# The machine is shared: berth and docker runs alternate so both see the same load.
# Push: the first berth push gzips the layers (remembered afterwards); docker gzips every time.
push_once "$B" cold "$BENCH_DIR/push.cold"
berth_push_cold=$(cat "$BENCH_DIR/push.cold")
: >"$BENCH_DIR/push.berth"; : >"$BENCH_DIR/push.docker"
for i in $(seq "$N"); do
	push_once "$B" "b$i" "$BENCH_DIR/push.berth"
	[ $have_docker = 1 ] && push_once "$D" "d$i" "$BENCH_DIR/push.docker"
done
berth_push=$(median <"$BENCH_DIR/push.berth")
[ $have_docker = 1 ] && docker_push=$(median <"$BENCH_DIR/push.docker")

# Pull: the image is pushed once by berth, then each daemon, without the
# image's layers, pulls it N times.
start_registry
"$DOCKER_CLI" -H "$B" tag goimage "$REG/bench/go:src" >/dev/null
"$DOCKER_CLI" -H "$B" push -q "$REG/bench/go:src" >/dev/null
"$DOCKER_CLI" -H "$B" rmi goimage >/dev/null
[ $have_docker = 1 ] && "$DOCKER_CLI" -H "$D" rmi goimage >/dev/null
: >"$BENCH_DIR/pull.berth"; : >"$BENCH_DIR/pull.docker"
for i in $(seq "$N"); do
	pull_once "$B" "$BENCH_DIR/pull.berth"
	[ $have_docker = 1 ] && pull_once "$D" "$BENCH_DIR/pull.docker"
done
berth_pull=$(median <"$BENCH_DIR/pull.berth")
[ $have_docker = 1 ] && docker_pull=$(median <"$BENCH_DIR/pull.docker")
size=$(du -b "$BENCH_DIR/goimage.tar" | cut -f1)

for f in push.berth push.docker pull.berth pull.docker; do echo "runs $f (ms): $(tr '\n' ' ' <"$BENCH_DIR/$f")"; done
echo "image: 4 layers, $((size / 1000000)) MB uncompressed; median of $N runs; loopback registry (distribution 2.8)"
echo "| measure | berth | docker 20.10 | docker / berth |"
echo "|---|---|---|---|"
if [ $have_docker = 1 ]; then
	printf '| pull (ms) | %s | %s | %.1fx |\n' "$berth_pull" "$docker_pull" "$(echo "$docker_pull / $berth_pull" | bc -l)"
	printf '| push, layers already gzipped (ms) | %s | %s | %.1fx |\n' "$berth_push" "$docker_push" "$(echo "$docker_push / $berth_push" | bc -l)"
	printf '| first push, gzip included (ms) | %s | %s | %.1fx |\n' "$berth_push_cold" "$docker_push" "$(echo "$docker_push / $berth_push_cold" | bc -l)"
else
	echo "| pull (ms) | $berth_pull | - | - |"
	echo "| push (ms) | $berth_push | - | - |"
	echo "| first push (ms) | $berth_push_cold | - | - |"
fi
