#!/usr/bin/env bash
# The main job: set up what is missing, build, and run a single raftkv node
# from config/single.toml in the foreground (data in run/single; Ctrl-C or
# SIGTERM stops it cleanly). Extra arguments are passed to raftkv, e.g.
#   scripts/run.sh --listen-client 127.0.0.1:12379
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
announce_first_build
cargo build --profile "$RAFTKV_PROFILE" --bins
BIN="$RAFTKV_BIN"
cat <<MSG
raftkv: starting a single node from config/single.toml (clients on 127.0.0.1:2379, data in run/single)
Try, in another terminal:
  $BIN/raftkvctl put greeting hello
  $BIN/raftkvctl get greeting
  $BIN/raftkvctl endpoint status -w table
MSG
exec "$BIN/raftkv" --config config/single.toml "$@"
