#!/usr/bin/env bash
# Network benchmark: `run --rm busybox true` latency on the default bridge vs
# --network none (berthd), and HTTP throughput through a published port on
# 127.0.0.1, berthd (nftables DNAT, route_localnet) vs Debian's dockerd 20.10
# (docker-proxy, its path for 127.0.0.1). Both daemons get private bridges
# and subnets; nothing but loopback and those bridges carries traffic.
# Usage: bench/network.sh [N]   (as root; BERTH_BIN=dir skips make build)
set -euo pipefail
N=${1:-10}
source "$(dirname "$0")/lib.sh"
BIN=${BERTH_BIN:-$REPO/bin}
SUF=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
BBR=bnb$SUF DBR=bnd$SUF
free_net() { # first 10.250-254.x.0/24 with no route
	for a in 250 251 252 253 254; do for b in $(seq 0 255); do
		ip -4 route | grep -q "^10\.$a\.$b\." || { [ "$a.$b" = "${1:-}" ] || { echo "$a.$b"; return; }; }
	done; done
}
BNET=$(free_net) DNET=$(free_net "$BNET")
net_cleanup() {
	bench_cleanup
	nft delete table ip "berth_$BBR" 2>/dev/null || true
	ip link del "$BBR" 2>/dev/null || true
	ip link del "$DBR" 2>/dev/null || true
}
trap net_cleanup EXIT
busybox_tar

[ -n "${BERTH_BIN:-}" ] || make -C "$REPO" -s build >/dev/null
mkdir -p "$BENCH_DIR/berth"
"$BIN/berthd" --data-root "$BENCH_DIR/berth/data" --exec-root "$BENCH_DIR/berth/exec" -H "unix://$BERTH_SOCK" \
	--cgroup-parent berth-bench --log-level debug --bridge "$BBR" --bip "10.$BNET.1/24" >"$BENCH_DIR/berthd.log" 2>&1 &
BERTHD_PID=$!
for _ in $(seq 100); do [ -S "$BERTH_SOCK" ] && break; sleep 0.05; done
"$BIN/berth" -H "unix://$BERTH_SOCK" import -c 'CMD ["sh"]' "$BENCH_DIR/busybox.tar" busybox:latest >/dev/null

have_docker=0
if command -v dockerd >/dev/null; then
	ip link add "$DBR" type bridge && ip addr add "10.$DNET.1/24" dev "$DBR" && ip link set "$DBR" up
	mkdir -p "$BENCH_DIR/docker"
	# --iptables=false: no host-wide FORWARD policy change on a shared
	# machine; 127.0.0.1 goes through docker-proxy, as it does with iptables.
	dockerd --data-root "$BENCH_DIR/docker/data" --exec-root "$BENCH_DIR/docker/exec" -H "unix://$DOCKER_SOCK" \
		--pidfile "$BENCH_DIR/docker/dockerd.pid" --bridge "$DBR" --iptables=false --ip6tables=false \
		>"$BENCH_DIR/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	for _ in $(seq 200); do "$DOCKER_CLI" -H "unix://$DOCKER_SOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
	"$DOCKER_CLI" -H "unix://$DOCKER_SOCK" import -c 'CMD ["sh"]' "$BENCH_DIR/busybox.tar" busybox:latest >/dev/null && have_docker=1
fi

run_pair() { # host -> "bridge_ms none_ms": medians of N alternating `run --rm busybox true`
	local host=$1
	"$DOCKER_CLI" -H "$host" run --rm busybox true >/dev/null
	for _ in $(seq "$N"); do
		for net in bridge none; do
			local t0; t0=$(now_ns)
			"$DOCKER_CLI" -H "$host" run --rm --network "$net" busybox true >/dev/null
			echo "$net $((($(now_ns) - t0) / 1000))"
		done
	done >"$BENCH_DIR/pair"
	for net in bridge none; do
		awk -v n="$net" '$1==n {print $2}' "$BENCH_DIR/pair" | median | awk '{printf "%.1f ", $1/1000}'
	done
}

start_web() { # host -> published port of a busybox httpd serving a 256 MiB file
	local host=$1 port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	"$DOCKER_CLI" -H "$host" run -d --name web -p "$port:80" busybox sh -c \
		'mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count=256 2>/dev/null && exec httpd -f -p 80 -h /www' >/dev/null
	for _ in $(seq 200); do curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$port/big" && break; sleep 0.1; done
	echo "$port"
}

B="unix://$BERTH_SOCK" D="unix://$DOCKER_SOCK"
read -r bb bn <<<"$(run_pair "$B")"
if [ $have_docker = 1 ]; then read -r db dn <<<"$(run_pair "$D")"; else db=- dn=-; fi
# berthd's own time for the bridge: netns + veth + IPAM + rules (attach) and
# their teardown (detach), from its debug log
daemon_ms() { grep "msg=\"network $1\"" "$BENCH_DIR/berthd.log" | sed 's/.*took=//' |
	awk '{v=$1; if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /µs$/) {sub(/µs/,"",v); v=v/1000} else {sub(/s$/,"",v); v=v*1000}; print v}' |
	median | awk '{printf "%.2f", $1}'; }
echo "| measure | berth | docker 20.10 |"
echo "|---|---|---|"
echo "| run --rm true, bridge (median of $N, alternating) | $bb ms | $db ms |"
echo "| run --rm true, --network none | $bn ms | $dn ms |"
echo "| difference of the medians | $(awk -v a="$bb" -v b="$bn" 'BEGIN{printf "%.1f", a-b}') ms | $( [ $have_docker = 1 ] && awk -v a="$db" -v b="$dn" 'BEGIN{printf "%.1f", a-b}' || echo -) ms |"
echo "| berthd network attach / detach (median, debug log) | $(daemon_ms attached) / $(daemon_ms detached) ms | |"
# throughput: rounds alternate between the daemons so load drifts hit both
bp=$(start_web "$B") dp=
[ $have_docker = 1 ] && dp=$(start_web "$D")
for _ in 1 2 3 4 5; do
	echo "b $(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$bp/big")"
	[ -n "$dp" ] && echo "d $(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$dp/big")"
done >"$BENCH_DIR/tput"
mbs() { awk -v k="$1" '$1==k {print $2}' "$BENCH_DIR/tput" | median | awk '{printf "%.0f", $1/1048576}'; }
bt=$(mbs b) dt=-
[ -n "$dp" ] && dt=$(mbs d)
echo "| GET 256 MiB via 127.0.0.1 published port (median of 5, alternating) | $bt MB/s | $dt MB/s |"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
