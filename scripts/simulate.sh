#!/usr/bin/env bash
# Runs the deterministic Raft simulation over a range of seeds:
#   scripts/simulate.sh --seeds N --steps M [--seed-base S] [--nodes 3|5]
#   scripts/simulate.sh --seed S --steps M      replays one seed exactly
# Prints "simulation: N seeds, M steps each, F failures"; exits non-zero on
# any failure. RUST_LOG=debug (or trace) with --seed shows every event.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
announce_first_build
cargo build --profile "$RAFTKV_PROFILE" --quiet --bin raftkv-sim
exec "$RAFTKV_BIN/raftkv-sim" "$@"
