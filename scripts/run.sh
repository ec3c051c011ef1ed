#!/usr/bin/env bash
# The main job. Until the server lands, this builds raftkv and runs the
# deterministic simulation of the consensus core.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/simulate.sh --seeds "${SEEDS:-200}" --steps "${STEPS:-2000}" "$@"
