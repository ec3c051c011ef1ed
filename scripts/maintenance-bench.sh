#!/usr/bin/env bash
# Snapshots and joining at size (issue 14's figures): on a fresh three-member cluster holding MIB
# MiB, how long `raftkvctl snapshot save` (from the leader), `snapshot status` and `snapshot
# restore` take, how long the restored member takes to serve, and how long a new member takes to
# join as a learner, catch up (Raft sends it a snapshot: the log is compacted every 10,000
# entries) and become promotable (`member promote` accepted).
#
#   scripts/maintenance-bench.sh [RESULTS_FILE]     # default: maintenance-results.jsonl
#   MIB=256 scripts/maintenance-bench.sh            # keyspace size (default 1024 MiB)
#
# Free ports, a temporary directory; every node is stopped by its pid, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
results="${1:-maintenance-results.jsonl}"
mib="${MIB:-1024}"
source scripts/bench-cluster.sh

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }
wait_healthy() { # ENDPOINTS SECONDS
  local deadline=$(($(date +%s) + $2))
  until "$bin/raftkvctl" --endpoints="$1" endpoint health >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "maintenance-bench: $1 not healthy within $2 s" >&2; exit 1; }
    sleep 0.1
  done
}

bench_cluster_start raftkv-maint $((8 * 1024 * 1024 * 1024))

keys=$((mib * 16))
echo "maintenance-bench: putting $mib MiB ($keys keys of 64 KiB)" >&2
"$bin/raftkv-bench" --endpoints "$leader" --conns 4 --clients 16 --total "$keys" --key-space "$keys" \
  --sequential-keys --key-size 16 --val-size 65536 put >&2 || exit 1
db_size=$(du -sb "$work/n1/db" | cut -f1)

echo "maintenance-bench: snapshot save from the leader" >&2
t=$(now)
"$bin/raftkvctl" --endpoints="$leader" --command-timeout=60s snapshot save "$work/snap.db" >&2 || exit 1
save_secs=$(since "$t")
snap_bytes=$(stat -c %s "$work/snap.db")
t=$(now)
"$bin/raftkvctl" snapshot status "$work/snap.db" -w table >&2 || exit 1
status_secs=$(since "$t")

echo "maintenance-bench: snapshot restore, and the restored member until it serves" >&2
rp=$((base + 40))
t=$(now)
"$bin/raftkvctl" snapshot restore "$work/snap.db" --data-dir "$work/restored" --name r1 \
  --initial-cluster "r1=http://127.0.0.1:$rp" --initial-advertise-peer-urls "http://127.0.0.1:$rp" || exit 1
restore_secs=$(since "$t")
t=$(now)
"$bin/raftkv" --name r1 --data-dir "$work/restored" --listen-client "127.0.0.1:$((base + 41))" \
  --listen-peer "127.0.0.1:$rp" --log-level warn >"$work/r1.log" 2>&1 &
pids+=($!)
wait_healthy "127.0.0.1:$((base + 41))" 120
restored_serving_secs=$(since "$t")

echo "maintenance-bench: a learner joins, catches up and is promoted" >&2
p4=$((base + 14))
t=$(now)
id=$("$bin/raftkvctl" --endpoints="$leader" member add node4 --learner --peer-urls="http://127.0.0.1:$p4" -w json |
  python3 -c 'import json, sys; print("%x" % json.load(sys.stdin)["member"]["ID"])') || exit 1
"$bin/raftkv" --config config/node1.toml --name node4 --data-dir "$work/n4" \
  --listen-client "127.0.0.1:$((base + 4))" --listen-peer "127.0.0.1:$p4" \
  --initial-cluster "$initial,node4=127.0.0.1:$p4" --initial-cluster-state existing \
  --quota-bytes $((8 * 1024 * 1024 * 1024)) --log-level warn >"$work/n4.log" 2>&1 &
pids+=($!)
deadline=$(($(date +%s) + 600))
until "$bin/raftkvctl" --endpoints="$leader" member promote "$id" >/dev/null 2>"$work/promote.err"; do
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$work/promote.err" >&2; exit 1; }
  sleep 0.2
done
promoted_secs=$(since "$t")

mb() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.0f", b / 1000000 / s}'; }
echo "{\"mib\":$mib,\"db_bytes\":$db_size,\"snapshot_bytes\":$snap_bytes,\"save_secs\":$save_secs,\"save_mb_s\":$(mb "$snap_bytes" "$save_secs"),\"status_secs\":$status_secs,\"restore_secs\":$restore_secs,\"restore_mb_s\":$(mb "$snap_bytes" "$restore_secs"),\"restored_serving_secs\":$restored_serving_secs,\"join_to_promoted_secs\":$promoted_secs}" |
  tee -a "$results"
