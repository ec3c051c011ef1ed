#!/usr/bin/env bash
# The TTL error after a leader kill, raftkv and etcd 3.4 side by side: a three-member cluster,
# a 60 s lease granted at t=0 and never renewed, the leader SIGKILLed at t=10 s, then the
# lease's remaining TTL as the new leader reports it. The truth is 60 - t.
#   scripts/lease-failover.sh            # both (etcd from `apt-get install etcd-server etcd-client`)
#   scripts/lease-failover.sh raftkv     # or etcd
# Ports 3437x/3438x (raftkv) and 3337x/3338x (etcd); everything started is stopped by pid.
set -u
cd "$(dirname "$0")/.."
. scripts/setup.sh
set +e -u +o pipefail # setup.sh sets -e; a failed step here is reported, not fatal
WHICH=${1:-both}

run() { # run NAME CTL START_FN
	local name=$1 ctl=$2 start=$3 work pids eps id t0 before leader idx others after t1 t2
	work=$(mktemp -d "/tmp/lease-failover-$name.XXXXXX")
	pids=()
	for i in 0 1 2; do
		$start "$i" "$work" &
		pids[i]=$!
	done
	eps=$EPS
	for _ in $(seq 150); do $ctl --endpoints="$eps" endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
	id=$($ctl --endpoints="$eps" lease grant 60 | awk '{print $2}')
	t0=$(date +%s.%N)
	sleep 10
	before=$($ctl --endpoints="$eps" lease timetolive "$id")
	leader=$($ctl --endpoints="$eps" endpoint status -w json | python3 -c 'import json,sys
d=json.load(sys.stdin)
print([x["Endpoint"] for x in d if x["Status"]["header"]["member_id"]==x["Status"]["leader"]][0])')
	idx=${leader: -1}
	kill -9 "${pids[idx]}"
	t1=$(date +%s.%N)
	others=$(echo "$eps" | tr ',' '\n' | grep -v "$leader" | paste -sd,)
	for _ in $(seq 200); do $ctl --endpoints="$others" lease timetolive "$id" >/dev/null 2>&1 && break; sleep 0.1; done
	after=$($ctl --endpoints="$others" lease timetolive "$id")
	t2=$(date +%s.%N)
	printf '%s: leader killed at t=%.1f s; before: %s\n' "$name" "$(echo "$t1-$t0" | bc)" "$before"
	printf '%s: new leader at t=%.1f s (truth: remaining %.1f s): %s\n' "$name" "$(echo "$t2-$t0" | bc)" \
		"$(echo "60-($t2-$t0)" | bc)" "$after"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}

start_raftkv() {
	RUST_LOG=warn exec nice -n 10 "$RAFTKV_BIN/raftkv" --name "n$1" --data-dir "$2/n$1" \
		--listen-client "127.0.0.1:3437$1" --listen-peer "127.0.0.1:3438$1" \
		--initial-cluster "n0=127.0.0.1:34380,n1=127.0.0.1:34381,n2=127.0.0.1:34382" >"$2/n$1.log" 2>&1
}

start_etcd() {
	exec nice -n 10 etcd --name "e$1" --data-dir "$2/e$1" \
		--listen-client-urls "http://127.0.0.1:3337$1" --advertise-client-urls "http://127.0.0.1:3337$1" \
		--listen-peer-urls "http://127.0.0.1:3338$1" --initial-advertise-peer-urls "http://127.0.0.1:3338$1" \
		--initial-cluster "e0=http://127.0.0.1:33380,e1=http://127.0.0.1:33381,e2=http://127.0.0.1:33382" \
		>"$2/e$1.log" 2>&1
}

if [ "$WHICH" != etcd ]; then
	cargo build --profile "$RAFTKV_PROFILE" --bins
	EPS=127.0.0.1:34370,127.0.0.1:34371,127.0.0.1:34372 run raftkv "$RAFTKV_BIN/raftkvctl" start_raftkv
fi
if [ "$WHICH" != raftkv ]; then
	EPS=127.0.0.1:33370,127.0.0.1:33371,127.0.0.1:33372 ETCDCTL_API=3 run etcd etcdctl start_etcd
fi
