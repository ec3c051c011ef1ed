#!/usr/bin/env bash
# Benchmarks a fresh single raftkv node with raftkv-bench and appends one
# JSON line per run to a results file.
#
#   scripts/bench.sh [RESULTS_FILE]          # default: bench-results.jsonl
#   scripts/bench.sh --cluster [RESULTS]     # 3-node cluster: not yet
#   TOTAL=20000 scripts/bench.sh             # requests per run (default 10000)
#   PROFILE=dev scripts/bench.sh             # debug build (quick checks of the script)
#
# Builds the release binaries, starts `raftkv --config config/single.toml`
# with a temporary data directory on free ports, waits (bounded) until
# `raftkvctl endpoint health` succeeds, runs the fixed matrix, and stops the
# node by its pid, also on failure or interruption.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=single
if [ "${1:-}" = "--cluster" ]; then
  mode=cluster
  shift
fi
results="${1:-bench-results.jsonl}"
total="${TOTAL:-10000}"

if [ "$mode" = cluster ]; then
  echo "bench.sh: --cluster: not yet (the 3-node cluster lands later)" >&2
  exit 2
fi

source scripts/setup.sh
profile="${PROFILE:-release}"
cargo build --profile "$profile" --quiet --bin raftkv --bin raftkvctl --bin raftkv-bench
if [ "$profile" = dev ]; then bin="$CARGO_TARGET_DIR/debug"; else bin="$CARGO_TARGET_DIR/$profile"; fi

# A free TCP port on 127.0.0.1 (bound and released; the node binds it next).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

work="$(mktemp -d /tmp/raftkv-bench.XXXXXX)"
client_port="$(free_port)"
peer_port="$(free_port)"
endpoint="127.0.0.1:$client_port"
node_pid=""

stop_node() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill "$node_pid" 2>/dev/null || true
    # Bounded wait for a clean stop, then force it.
    for _ in $(seq 1 100); do
      kill -0 "$node_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  node_pid=""
  rm -rf "$work"
}
trap stop_node EXIT
trap 'exit 130' INT TERM

node_args=(--name single --data-dir "$work/data" --listen-client "$endpoint"
  --listen-peer "127.0.0.1:$peer_port" --initial-cluster "single=127.0.0.1:$peer_port" --log-level warn)
if [ -f config/single.toml ]; then
  node_args=(--config config/single.toml "${node_args[@]}")
fi
"$bin/raftkv" "${node_args[@]}" >"$work/raftkv.log" 2>&1 &
node_pid=$!

ready=0
for _ in $(seq 1 120); do
  if ! kill -0 "$node_pid" 2>/dev/null; then
    echo "bench.sh: raftkv exited before it was ready:" >&2
    cat "$work/raftkv.log" >&2
    exit 1
  fi
  if "$bin/raftkvctl" --endpoints="$endpoint" --command-timeout=1s endpoint health >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.25
done
if [ "$ready" != 1 ]; then
  echo "bench.sh: raftkv not ready after 30s" >&2
  exit 1
fi

bench() {
  echo "bench.sh: raftkv-bench $*" >&2
  "$bin/raftkv-bench" --endpoints "$endpoint" --total "$total" "$@" | tee -a "$results"
}

# The fixed matrix.
bench --conns 1 --clients 1 put
bench --conns 10 --clients 100 put
bench --conns 32 --clients 512 put
bench --conns 10 --clients 100 range --consistency l
bench --conns 10 --clients 100 range --consistency s
bench --conns 10 --clients 100 txn-put

echo "bench.sh: results appended to $results" >&2
