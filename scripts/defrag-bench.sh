#!/usr/bin/env bash
# Put latency while a member defragments a large keyspace, against without (issue 14: at most
# 2x the p99 without it; etcd's defrag holds every request for its whole length).
#
#   scripts/defrag-bench.sh [RESULTS_FILE]     # default: defrag-results.jsonl
#   MIB=256 scripts/defrag-bench.sh            # keyspace size (default 1024 MiB)
#   SETTLE=20                                  # seconds left to RocksDB before each load alone
#
# A fresh three-member cluster (config/node{1,2,3}.toml's settings, free ports, a temporary
# directory): MIB MiB of 64 KiB values put, then every key put again and the first versions
# compacted away, so MIB MiB are dead. Then on the leader: put load (10 clients, 256-byte
# values, PUTS requests) alone, and the same load started just after a defragmentation of the
# leader begins, then alone again; the defrag's duration is printed, and a note if the load
# outlasted it. Each load alone runs SETTLE seconds after the writes or the defrag before it,
# once RocksDB's own compactions are done. Every node is stopped by its pid, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
results="${1:-defrag-results.jsonl}"
mib="${MIB:-1024}"
puts="${PUTS:-20000}"
settle="${SETTLE:-20}"
source scripts/bench-cluster.sh
# Room for the dead half and the Raft log next to the live keyspace.
bench_cluster_start raftkv-defrag $((16 * 1024 * 1024 * 1024))

li=$(( ${leader##*:} - base ))
keys=$((mib * 16))
echo "defrag-bench: putting $mib MiB twice ($keys keys of 64 KiB)" >&2
for round in 1 2; do
  "$bin/raftkv-bench" --endpoints "$leader" --conns 4 --clients 16 --total "$keys" --key-space "$keys" \
    --sequential-keys --key-size 16 --val-size 65536 put >&2 || exit 1
done
rev=$("$bin/raftkvctl" --endpoints="$leader" get x -w json | python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])')
"$bin/raftkvctl" --endpoints="$leader" compaction --physical "$rev" >&2
echo "defrag-bench: $(du -sh "$work/n$li/db" | cut -f1) on disk per member before the defrag" >&2

load() {
  "$bin/raftkv-bench" --endpoints "$leader" --conns 2 --clients 10 --total "$puts" --key-space 10000 put
}
# Background compaction of the load settles first, so "alone" is a baseline.
sleep "$settle"
echo "defrag-bench: $(du -sh "$work/n$li/db" | cut -f1) on disk per member when the defrag starts" >&2
echo "defrag-bench: put load alone" >&2
load | sed 's/}$/,"defrag":false}/' | tee -a "$results"
started=$(date +%s.%N)
"$bin/raftkvctl" --endpoints="$leader" --command-timeout=600s defrag >"$work/defrag.out" 2>&1 &
defrag=$!
sleep 0.2
echo "defrag-bench: the same load during a defrag of the leader" >&2
load | sed 's/}$/,"defrag":true}/' | tee -a "$results"
load_done=$(date +%s.%N)
wait "$defrag"
ended=$(date +%s.%N)
cat "$work/defrag.out" >&2
sleep "$settle"
echo "defrag-bench: put load alone, again" >&2
load | sed 's/}$/,"defrag":false,"after":true}/' | tee -a "$results"
secs=$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.1f", b - a}')
echo "{\"defrag_secs\":$secs,\"mib\":$mib,\"disk_after\":\"$(du -sh "$work/n$li/db" | cut -f1)\"}" | tee -a "$results"
if awk -v l="$load_done" -v e="$ended" 'BEGIN {exit !(l > e)}'; then
  echo "defrag-bench: note: the load outlasted the defrag ($secs s): its p99 is diluted; lower PUTS" >&2
fi
