#!/usr/bin/env bash
# Randomized fault injection on real processes, in a loop:
#   scripts/chaos.sh --minutes N [--secs-per-run S] [--with-faults]
#   scripts/chaos.sh --seed SEED [--secs-per-run S]     replays one run
# Each run starts a three-member cluster behind test-controlled proxies and
# injects random faults for S seconds (default 60) with a fresh seed (the
# `chaos` test in tests/chaos.rs); --with-faults also runs the fixed fault
# scenarios (tests/faults.rs) once per loop. Prints
# "chaos: N runs, F failures" with the seed and log of every failure; exits
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=""
secs=60
with_faults=0
replay=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --secs-per-run) secs="$2"; shift 2 ;;
    --with-faults) with_faults=1; shift ;;
    --seed) replay="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "chaos: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$minutes" ] && [ -z "$replay" ]; then
  echo "usage: scripts/chaos.sh --minutes N [--secs-per-run S] [--with-faults] | --seed SEED" >&2
  exit 2
fi

source scripts/setup.sh
echo "chaos: building"
announce_first_build
cargo test --profile "$RAFTKV_PROFILE" --quiet --no-run --test chaos --test faults

if [ -n "$replay" ]; then
  RAFTKV_FAULT_SEED="$replay" RAFTKV_CHAOS_SECS="$secs" \
    cargo test --profile "$RAFTKV_PROFILE" --quiet --test chaos -- --exact chaos --nocapture
  exit $?
fi

logs=$(mktemp -d /tmp/raftkv-chaos-XXXXXX)
end=$(( $(date +%s) + minutes * 60 ))
runs=0
failures=0
failed=()
# One run of test binary $1 ("chaos" or "faults") with a fresh seed; the
# rest of the arguments go to the test binary.
one_run() {
  local kind="$1" seed log started
  shift
  runs=$((runs + 1))
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  log="$logs/run-$runs-$kind-$seed.log"
  started=$(date +%s)
  if RAFTKV_FAULT_SEED="$seed" RAFTKV_CHAOS_SECS="$secs" \
      cargo test --profile "$RAFTKV_PROFILE" --quiet --test "$kind" -- "$@" --nocapture >"$log" 2>&1; then
    echo "chaos: run $runs ($kind, seed $seed) passed in $(( $(date +%s) - started ))s"
    rm -f "$log"
  else
    failures=$((failures + 1))
    failed+=("$kind seed $seed: $log")
    echo "chaos: run $runs ($kind, seed $seed) FAILED in $(( $(date +%s) - started ))s; log in $log"
  fi
}

while [ "$(date +%s)" -lt "$end" ]; do
  one_run chaos --exact chaos
  if [ "$with_faults" = 1 ] && [ "$(date +%s)" -lt "$end" ]; then
    one_run faults
  fi
done

echo "chaos: $runs runs, $failures failures"
for f in "${failed[@]+"${failed[@]}"}"; do
  echo "  failed: $f"
done
[ "$failures" -eq 0 ] || exit 1
rmdir "$logs" 2>/dev/null || true
