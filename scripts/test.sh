#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests
# (including the deterministic simulation), as CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

started=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - started ))s)"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
step "cargo test"
cargo test --all-targets --quiet
step "done"
