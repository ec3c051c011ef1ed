#!/usr/bin/env bash
# A three-node raftkv cluster from config/node{1,2,3}.toml, in the background.
#   scripts/cluster.sh start        build, start all three, wait for a leader, print the endpoints
#   scripts/cluster.sh stop         stop the nodes this script started (SIGTERM, by pid)
#   scripts/cluster.sh status       which nodes run, and the cluster's endpoint status
#   scripts/cluster.sh restart N    stop node N, start it again
#   scripts/cluster.sh kill N       SIGKILL node N (to test crash recovery)
# Logs and data live under run/cluster/ (nodeN.log, nodeN.pid, nodeN/).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=run/cluster
NODES=(1 2 3)
ENDPOINTS="127.0.0.1:21379,127.0.0.1:22379,127.0.0.1:23379"

build() {
  source scripts/setup.sh
  announce_first_build
  cargo build --profile "$RAFTKV_PROFILE" --quiet --bin raftkv --bin raftkvctl
  BIN="$RAFTKV_BIN"
}

# The pid of node $1 if it is running and is the raftkv we started.
pid_of() {
  local f="$RUN/node$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "raftkv --config config/node$1.toml" || return 1
  echo "$pid"
}

start_node() {
  local n=$1
  if pid_of "$n" >/dev/null; then echo "node$n already runs (pid $(pid_of "$n"))"; return; fi
  mkdir -p "$RUN"
  nohup "$BIN/raftkv" --config "config/node$n.toml" >>"$RUN/node$n.log" 2>&1 &
  echo $! >"$RUN/node$n.pid"
  echo "node$n started (pid $!, log $RUN/node$n.log)"
}

stop_node() {
  local n=$1 pid
  pid=$(pid_of "$n") || { rm -f "$RUN/node$n.pid"; echo "node$n is not running"; return; }
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "node$n did not stop in 10 s; killing it"; kill -KILL "$pid"; fi
  rm -f "$RUN/node$n.pid"
  echo "node$n stopped"
}

wait_healthy() {
  for _ in $(seq 1 150); do
    if "$BIN/raftkvctl" --endpoints "$ENDPOINTS" --command-timeout 2s endpoint health >/dev/null 2>&1; then
      echo "cluster is healthy; endpoints: $ENDPOINTS"
      return 0
    fi
    sleep 0.2
  done
  echo "cluster not healthy after 30 s; see $RUN/node*.log" >&2
  return 1
}

case "${1:-}" in
  start)
    build
    for n in "${NODES[@]}"; do start_node "$n"; done
    wait_healthy
    echo "try: $BIN/raftkvctl --endpoints $ENDPOINTS endpoint status --cluster -w table"
    ;;
  stop)
    for n in "${NODES[@]}"; do stop_node "$n"; done
    ;;
  status)
    build
    for n in "${NODES[@]}"; do
      if pid=$(pid_of "$n"); then echo "node$n runs (pid $pid)"; else echo "node$n is down"; fi
    done
    "$BIN/raftkvctl" --endpoints "$ENDPOINTS" endpoint status --cluster -w table || true
    ;;
  restart)
    [ -n "${2:-}" ] || { echo "usage: $0 restart N" >&2; exit 2; }
    build
    stop_node "$2"
    start_node "$2"
    wait_healthy
    ;;
  kill)
    [ -n "${2:-}" ] || { echo "usage: $0 kill N" >&2; exit 2; }
    if pid=$(pid_of "$2"); then kill -KILL "$pid"; rm -f "$RUN/node$2.pid"; echo "node$2 killed (pid $pid)"; else echo "node$2 is not running"; fi
    ;;
  *)
    echo "usage: $0 start|stop|status|restart N|kill N" >&2
    exit 2
    ;;
esac
