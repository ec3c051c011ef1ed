#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests
# (including the deterministic simulation), as CI runs it. Builds with the
# same profile and target directory as run.sh (scripts/setup.sh), so RocksDB
# is compiled once per machine whichever of the two runs first.
#   scripts/test.sh                 # everything that runs by default
#   scripts/test.sh -- NAME         # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

started=$(date +%s)
step() { echo "== $* ($(($(date +%s) - started))s)"; }
[ "${1:-}" = "--" ] && shift

step "cargo fmt --check"
cargo fmt --all -- --check
announce_first_build
step "cargo clippy --profile $RAFTKV_PROFILE --all-targets -- -D warnings"
cargo clippy --profile "$RAFTKV_PROFILE" --all-targets -- -D warnings
step "cargo test --profile $RAFTKV_PROFILE"
cargo test --profile "$RAFTKV_PROFILE" --all-targets --quiet "$@"
step "done"
