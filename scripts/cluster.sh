#!/usr/bin/env bash
# A three-node raftkv cluster from config/node{1,2,3}.toml, in the background.
#   scripts/cluster.sh start        build, start all three, wait for a leader, print the endpoints
#   scripts/cluster.sh stop         stop the nodes this script started (SIGTERM, by pid)
#   scripts/cluster.sh status       which nodes run, and the cluster's endpoint status
#   scripts/cluster.sh restart N    stop node N, start it again
#   scripts/cluster.sh kill N       SIGKILL node N (to test crash recovery)
#   scripts/cluster.sh add N        grow the cluster: node N (4 to 9) joins as a learner
#                                   (member add, then initial-cluster-state "existing") and
#                                   is promoted once it is in sync
#   scripts/cluster.sh remove N     shrink it: node N leaves (member remove) and stops; its
#                                   data directory is deleted (a removed member cannot rejoin)
# Logs and data live under run/cluster/ (nodeN.log, nodeN.pid, nodeN/); an added node's
# config is written to run/cluster/nodeN.toml.
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
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "raftkv --config $(config_of "$1")" || return 1
  echo "$pid"
}

# Node $1's config file: the repository's for nodes 1 to 3, the one `add` wrote otherwise.
config_of() {
  if [ "$1" -le 3 ]; then echo "config/node$1.toml"; else echo "$RUN/node$1.toml"; fi
}

# The client endpoints of the members that published them (the started ones).
current_endpoints() {
  "$BIN/raftkvctl" --endpoints "$ENDPOINTS" member list -w json |
    python3 -c 'import json, sys
print(",".join(u.replace("http://", "") for m in json.load(sys.stdin)["members"] for u in m.get("clientURLs", [])))'
}

# The hex member id of the member named $1.
member_id() {
  "$BIN/raftkvctl" --endpoints "$(current_endpoints)" member list -w json |
    python3 -c 'import json, sys
print(next(format(m["ID"], "x") for m in json.load(sys.stdin)["members"] if m.get("name") == sys.argv[1]))' "$1"
}

# Adds node $1 (4 to 9; client port 2N379, peer port 2N380) as a learner,
# starts it, and promotes it once it is in sync.
add_node() {
  local n=$1 eps initial peer added id
  case "$n" in [4-9]) ;; *) echo "add: N must be 4 to 9" >&2; exit 2 ;; esac
  peer="127.0.0.1:2${n}380"
  if pid_of "$n" >/dev/null; then echo "node$n already runs"; return; fi
  eps=$(current_endpoints)
  initial=$("$BIN/raftkvctl" --endpoints "$eps" member list -w json | python3 -c 'import json, sys
print(",".join(m["name"] + "=" + m["peerURLs"][0].replace("http://", "") for m in json.load(sys.stdin)["members"] if m.get("name")))')
  added=$("$BIN/raftkvctl" --endpoints "$eps" member add "node$n" --learner --peer-urls="http://$peer")
  echo "$added"
  id=$(echo "$added" | awk '/^Member/ { print $2; exit }')
  mkdir -p "$RUN"
  rm -rf "${RUN:?}/node$n"
  {
    echo "# Member $n, added at run time by scripts/cluster.sh add $n."
    echo "name = \"node$n\""
    echo "data-dir = \"$RUN/node$n\""
    echo "listen-client = \"127.0.0.1:2${n}379\""
    echo "listen-peer = \"$peer\""
    echo "initial-cluster = \"$initial,node$n=$peer\""
    echo "initial-cluster-state = \"existing\""
  } >"$RUN/node$n.toml"
  start_node "$n"
  for _ in $(seq 1 300); do
    if "$BIN/raftkvctl" --endpoints "$eps" member promote "$id" 2>/dev/null; then
      echo "node$n is a voter; endpoints: $(current_endpoints)"
      return 0
    fi
    sleep 0.2
  done
  echo "node$n was not promoted within 60 s (still catching up?); see $RUN/node$n.log" >&2
  return 1
}

# Removes node $1 from the cluster; it stops by itself, and its data
# directory is deleted (a removed member never rejoins from it).
remove_node() {
  local n=$1 id pid
  id=$(member_id "node$n") || { echo "node$n is not a member" >&2; exit 1; }
  pid=$(pid_of "$n" || true)
  "$BIN/raftkvctl" --endpoints "$(current_endpoints)" member remove "$id"
  if [ -n "$pid" ]; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  fi
  rm -f "$RUN/node$n.pid"
  rm -rf "${RUN:?}/node$n"
  echo "node$n removed (its data directory deleted)"
}

start_node() {
  local n=$1
  if pid_of "$n" >/dev/null; then echo "node$n already runs (pid $(pid_of "$n"))"; return; fi
  mkdir -p "$RUN"
  nohup "$BIN/raftkv" --config "$(config_of "$n")" >>"$RUN/node$n.log" 2>&1 &
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
    # Nodes added at run time.
    for f in "$RUN"/node[4-9].pid; do [ -e "$f" ] && { n=${f##*/node}; stop_node "${n%.pid}"; }; done
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
  add)
    [ -n "${2:-}" ] || { echo "usage: $0 add N" >&2; exit 2; }
    build
    add_node "$2"
    ;;
  remove)
    [ -n "${2:-}" ] || { echo "usage: $0 remove N" >&2; exit 2; }
    build
    remove_node "$2"
    ;;
  *)
    echo "usage: $0 start|stop|status|restart N|kill N|add N|remove N" >&2
    exit 2
    ;;
esac
