# Sourced by the benchmark scripts that need a three-member cluster of their own at size
# (defrag-bench.sh, maintenance-bench.sh): builds the binaries, makes a temporary directory,
# starts node1..node3 from config/node{1,2,3}.toml on free ports, and stops every process in
# `pids` by its pid on exit (also on failure or interrupt).
#
#   bench_cluster_start PREFIX QUOTA_BYTES    # sets bin, work, base, initial, eps, leader
#
# Not a script to run on its own.

source scripts/setup.sh
set +e
announce_first_build
cargo build --profile "$RAFTKV_PROFILE" --quiet --bin raftkv --bin raftkvctl --bin raftkv-bench || exit 1
bin="$RAFTKV_BIN"

pids=()
work=""
bench_cluster_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [ -n "$work" ] && rm -rf "$work"
}
trap bench_cluster_cleanup EXIT
trap 'exit 130' INT TERM

bench_cluster_start() { # PREFIX QUOTA_BYTES
  work="$(mktemp -d "/tmp/$1.XXXXXX")"
  base=$((30000 + RANDOM % 20000))
  initial="node1=127.0.0.1:$((base + 11)),node2=127.0.0.1:$((base + 12)),node3=127.0.0.1:$((base + 13))"
  local i
  for i in 1 2 3; do
    "$bin/raftkv" --config "config/node$i.toml" --name "node$i" --data-dir "$work/n$i" \
      --listen-client "127.0.0.1:$((base + i))" --listen-peer "127.0.0.1:$((base + 10 + i))" \
      --initial-cluster "$initial" --quota-bytes "$2" --log-level warn >"$work/n$i.log" 2>&1 &
    pids+=($!)
  done
  eps="127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
  for _ in $(seq 1 120); do "$bin/raftkvctl" --endpoints="$eps" endpoint health >/dev/null 2>&1 && break; sleep 0.25; done
  leader=$("$bin/raftkvctl" --endpoints="$eps" endpoint status -w json | python3 -c 'import json, sys
print(next(s["Endpoint"] for s in json.load(sys.stdin) if s["Status"]["header"]["member_id"] == s["Status"]["leader"]))')
}
