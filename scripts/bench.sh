#!/usr/bin/env bash
# Benchmarks raftkv with raftkv-bench and appends one JSON line per run to a
# results file.
#
#   scripts/bench.sh [RESULTS_FILE]            # a fresh single node (default: bench-results.jsonl)
#   scripts/bench.sh --cluster [RESULTS_FILE]  # fresh 3-node clusters (3 of them: report medians)
#   scripts/bench.sh --watch [RESULTS_FILE]    # the watch matrix on fresh 3-node clusters
#   TOTAL=50000 scripts/bench.sh               # requests per run (default: per workload,
#                                              # a few seconds each on a 2-core machine)
#   RUNS=5 scripts/bench.sh --cluster          # fresh clusters to run the matrix on
#
# Every node gets a temporary data directory and free ports, and is stopped
# by its pid, also on failure or interruption. In cluster mode each
# member's peak RSS (VmHWM) is appended after each run as
# {"member","peak_rss_mb","run"}.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=single
matrix=kv
if [ "${1:-}" = "--cluster" ]; then
  mode=cluster
  shift
elif [ "${1:-}" = "--watch" ]; then
  mode=cluster
  matrix=watch
  shift
fi
results="${1:-bench-results.jsonl}"
if [ "$mode" = cluster ]; then runs="${RUNS:-3}"; members=3; else runs="${RUNS:-1}"; members=1; fi

source scripts/setup.sh
announce_first_build
cargo build --profile "$RAFTKV_PROFILE" --quiet --bin raftkv --bin raftkvctl --bin raftkv-bench
bin="$RAFTKV_BIN"

# Sets $port to a free TCP port on 127.0.0.1 (nothing answers there).
next_port=$((20000 + RANDOM % 20000))
take_port() {
  while (exec 3<>"/dev/tcp/127.0.0.1/$next_port") 2>/dev/null; do next_port=$((next_port + 1)); done
  port=$next_port
  next_port=$((next_port + 1))
}

work=""
pids=()
stop_nodes() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  [ -n "$work" ] && rm -rf "$work"
  work=""
}
trap stop_nodes EXIT
trap 'exit 130' INT TERM

member_name() { if [ "$mode" = cluster ]; then echo "node$1"; else echo "single"; fi; }
member_config() { if [ "$mode" = cluster ]; then echo "config/node$1.toml"; else echo "config/single.toml"; fi; }

# Starts $members fresh nodes from the config files; sets $endpoints.
start_nodes() {
  work="$(mktemp -d /tmp/raftkv-bench.XXXXXX)"
  local clients=() peers=() initial="" i
  for i in $(seq 1 "$members"); do
    take_port
    clients+=("127.0.0.1:$port")
    take_port
    peers+=("127.0.0.1:$port")
    initial+="${initial:+,}$(member_name "$i")=${peers[$((i - 1))]}"
  done
  for i in $(seq 1 "$members"); do
    # The config files' settings, on free ports and a temporary directory.
    "$bin/raftkv" --config "$(member_config "$i")" --name "$(member_name "$i")" --data-dir "$work/n$i" \
      --listen-client "${clients[$((i - 1))]}" --listen-peer "${peers[$((i - 1))]}" \
      --initial-cluster "$initial" --log-level warn >"$work/n$i.log" 2>&1 &
    pids+=($!)
  done
  endpoints=$(IFS=,; echo "${clients[*]}")
  for _ in $(seq 1 120); do
    for pid in "${pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "bench.sh: a raftkv node exited before it was ready:" >&2
        cat "$work"/*.log >&2
        exit 1
      fi
    done
    if "$bin/raftkvctl" --endpoints="$endpoints" --command-timeout=1s endpoint health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  echo "bench.sh: not ready after 30 s" >&2
  exit 1
}

# bench DEFAULT_TOTAL ARGS...: one run of raftkv-bench ($TOTAL overrides the
# request count). Runs last seconds, not fractions of one, so that they
# reach a steady state (group commit, log compaction every snapshot-count
# entries) and one scheduling hiccup does not decide the result.
bench() {
  local n="${TOTAL:-$1}"
  shift
  echo "bench.sh: raftkv-bench --total $n $*" >&2
  "$bin/raftkv-bench" --endpoints "$endpoints" --total "$n" "$@" | tee -a "$results"
}

# The member's resident memory in kB ($1: its pid; VmRSS or VmHWM).
mem_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# The watch matrix (issue figures): put-to-event latency with one watcher;
# 10,000 watchers on one member; a stalled client among 1,000 watchers
# (and the same without it); 100 prefix watchers under the put100 load.
watch_matrix() {
  local first="${endpoints%%,*}" before after
  bench 2000 --conns 1 --clients 1 watch-latency
  before=$(mem_kb "${pids[0]}" VmRSS)
  "$bin/raftkv-bench" --endpoints "$first" --total "${TOTAL:-10000}" --clients 10 --conns 2 --key-space 10000 \
    watch --watchers 10000 --watch-conns 100 --rate 1000 | tee -a "$results"
  after=$(mem_kb "${pids[0]}" VmHWM)
  echo "{\"watchers\":10000,\"rss_before_kb\":$before,\"peak_rss_kb\":$after,\"kb_per_watcher\":$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", (a - b) / 10000}'),\"run\":$run}" | tee -a "$results"
  bench 5000 --clients 10 --conns 2 --key-space 100 watch --watchers 1000 --watch-conns 10 --rate 1000
  bench 5000 --clients 10 --conns 2 --key-space 100 watch --watchers 1000 --watch-conns 10 --rate 1000 --stalled-conns 1
  bench 100000 --clients 100 --conns 10 --key-space 100000 watch --watchers 100 --watch-conns 10 --prefix
}

for run in $(seq 1 "$runs"); do
  start_nodes
  if [ "$matrix" = watch ]; then
    watch_matrix
    stop_nodes
    continue
  fi
  bench 10000 --conns 1 --clients 1 put
  bench 100000 --conns 10 --clients 100 put
  bench 100000 --conns 32 --clients 512 put
  bench 200000 --conns 10 --clients 100 range --consistency l
  bench 400000 --conns 10 --clients 100 range --consistency s
  bench 100000 --conns 10 --clients 100 txn-put
  if [ "$mode" = cluster ]; then
    i=1
    for pid in "${pids[@]}"; do
      kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      echo "{\"member\":\"node$i\",\"peak_rss_mb\":$((kb / 1024)),\"run\":$run}" | tee -a "$results"
      i=$((i + 1))
    done
  fi
  stop_nodes
done
echo "bench.sh: results appended to $results" >&2
