#!/usr/bin/env bash
# Reproduces a fresh Debian machine and runs the README's two commands on it
# (issue 11). Builds a Debian bookworm root with mmdebstrap from Debian's own
# packages, holding what such an image has (a C/C++ toolchain, pkg-config,
# libssl-dev, llvm-14-dev, libclang-cpp14, git, curl, python3) but NOT
# libclang-dev / libclang1-14: scripts/setup.sh must install those itself.
# The host's Rust toolchain is bind-mounted in read-only, so nothing downloads
# a toolchain; crates come from crates.io into a registry inside the root.
# The repository is cloned into the root, and `scripts/run.sh` and
# `scripts/test.sh` run there, as root, with an empty target directory. It
# prints how long each took and how many times RocksDB's C++ was compiled
# (expected: once), and exits non-zero if anything failed.
#
# Layout under --root (default /var/tmp/raftkv-fresh-root):
#   base/          the pristine bootstrapped root, built once and reused
#                  (complete when base.ok exists; --fresh rebuilds it)
#   run/merged     what the commands see: an overlay of run/upper on base/, so
#                  what setup.sh installs and builds never reaches base/ and
#                  every run starts from a fresh machine (run/upper is kept
#                  until the next run, for inspection)
#
# Run as root on a Debian host (needs mount, chroot and apt-get), e.g.
#   nice -n 19 ionice -c3 scripts/fresh-machine.sh
# Only deb.debian.org/debian and crates.io are needed on the network.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/fresh-machine.sh [--root DIR] [--fresh] [--repo PATH_OR_URL] [--ref REV]
                                [--order run-first|test-first] [--timeout MINUTES] [--logs DIR]
  --root DIR        where the Debian root lives (default /var/tmp/raftkv-fresh-root)
  --fresh           rebuild the bootstrapped root even if a complete one exists
  --repo PATH|URL   the repository to clone (default: the one this script is in)
  --ref REV         the revision to check out (default HEAD; uncommitted changes are not cloned)
  --order ORDER     run-first (default: run.sh, then test.sh) or test-first
  --timeout MINUTES bound on each command (run.sh until the node answers, test.sh) (default 60)
  --logs DIR        where the logs go (default /var/tmp/raftkv-fresh-logs/<date-time>)
USAGE
}

say() { echo "fresh-machine: $*" >&2; }
die() {
  echo "fresh-machine: error: $*" >&2
  exit 2
}

# ------------------------------------------------------------------ arguments

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT=/var/tmp/raftkv-fresh-root
FRESH=0
REPO=""
REF=HEAD
ORDER=run-first
TIMEOUT_MIN=60
LOGS=""
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --repo) REPO=${2:?--repo needs a path or URL}; shift 2 ;;
    --ref) REF=${2:?--ref needs a revision}; shift 2 ;;
    --order) ORDER=${2:?--order needs run-first or test-first}; shift 2 ;;
    --timeout) TIMEOUT_MIN=${2:?--timeout needs minutes}; shift 2 ;;
    --logs) LOGS=${2:?--logs needs a directory}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$ORDER" in run-first | test-first) ;; *) usage >&2; die "--order is run-first or test-first" ;; esac
[[ "$TIMEOUT_MIN" =~ ^[1-9][0-9]*$ ]] || die "--timeout takes a whole number of minutes"
[ "$(id -u)" = 0 ] || die "run as root (it bootstraps a Debian root and mounts /proc, /sys, /dev in it)"
for tool in chroot mount umount unshare setsid git apt-get timeout python3; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool on this host"
done

# Everything below runs in a private mount namespace: the mounts made for the
# chroot are invisible to the rest of the host and disappear with this script
# even if it is killed before its exit trap runs.
if [ -z "${RAFTKV_FRESH_NS:-}" ]; then
  RAFTKV_FRESH_NS=1 exec unshare --mount --propagation private -- "$0" "${ARGS[@]}"
fi

mkdir -p "$ROOT"
ROOT="$(cd "$ROOT" && pwd -P)"
case "$ROOT" in / | /root | /home | /var | /var/tmp | /tmp | /usr | /etc) die "--root $ROOT is too broad; pick a dedicated directory" ;; esac
BASE="$ROOT/base"
RUN="$ROOT/run"
M="$RUN/merged" # the root the commands run in

[ -n "$REPO" ] || REPO="$(git -C "$here" rev-parse --show-toplevel)"
[ -n "$LOGS" ] || LOGS="/var/tmp/raftkv-fresh-logs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$LOGS"
LOGS="$(cd "$LOGS" && pwd -P)"
say "logs in $LOGS"

# What the image holds. libclang-dev, libclang1-14 and clang are deliberately
# absent: installing them is scripts/setup.sh's job, and that is the check.
PACKAGES=(build-essential pkg-config libssl-dev llvm-14-dev libclang-cpp14 git curl ca-certificates
  python3 procps less)
FORBIDDEN=(libclang-dev libclang-14-dev libclang1-14 libclang-common-14-dev clang clang-14)
MIRROR=http://deb.debian.org/debian

# Inside the chroot: root's login environment on a machine whose Rust
# toolchain is in /root/.rustup and /root/.cargo/bin (where rustup puts it).
# The toolchain is mounted read-only, so a download of another toolchain fails
# instead of happening; RUSTUP_AUTO_INSTALL=0 says so up front.
TARGET_IN=/root/.cache/raftkv-target # the scripts' default $CARGO_TARGET_DIR for root
CLONE_IN=/root/raftkv
CHROOT_ENV=(HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8
  PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo RUSTUP_AUTO_INSTALL=0)
in_root() { chroot "$M" /usr/bin/env -i "${CHROOT_ENV[@]}" "$@"; }
# raftkvctl as built in the root, bounded in time.
ctl() { timeout 20 chroot "$M" /usr/bin/env -i "${CHROOT_ENV[@]}" "$TARGET_IN/release/raftkvctl" "$@"; }

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# ---------------------------------------------------------- mounts and cleanup

MOUNTS=() # mounted by this script, innermost last
CHILD=""  # the process group of the command running in the root, if any

mount_and_record() { # mount_and_record MOUNTPOINT MOUNT-ARGS...
  local at=$1
  shift
  mount "$@" "$at" || return
  MOUNTS+=("$at")
}

# Stops the command running in the root: SIGTERM to its process group, then
# SIGKILL after a grace period.
stop_child() {
  local pid=$CHILD i
  [ -n "$pid" ] || return 0
  CHILD=""
  kill -TERM -- "-$pid" 2>/dev/null || true
  for i in $(seq 1 30); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    say "process group $pid still running 30 s after SIGTERM: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

unmount_all() {
  local i at
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    at=${MOUNTS[$i]}
    umount -R "$at" 2>/dev/null || umount -R -l "$at" 2>/dev/null || say "could not unmount $at"
  done
  MOUNTS=()
}

cleanup() {
  stop_child
  unmount_all
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# True if anything is mounted at or below $1 (in this namespace).
has_mounts_under() {
  local dir=$1
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# Removes a directory this script made under $ROOT, never through a mount.
remove_tree() {
  local dir=$1
  case "$dir" in "$ROOT"/?*) ;; *) die "refusing to remove $dir (not under $ROOT)" ;; esac
  [ -e "$dir" ] || return 0
  has_mounts_under "$dir" && die "something is still mounted under $dir; unmount it first"
  rm -rf --one-file-system -- "$dir"
}

# ------------------------------------------------------------ the Debian root

# A root is ours if it holds the marker written when it was first made; a
# non-empty directory without it is never touched.
OWN_MARK="$ROOT/.raftkv-fresh-machine"
if [ ! -e "$OWN_MARK" ]; then
  [ -z "$(ls -A "$ROOT")" ] || die "$ROOT is not empty and was not made by this script; pick another --root"
  echo "made by scripts/fresh-machine.sh (raftkv); safe to delete" >"$OWN_MARK"
fi

BASE_OK="$ROOT/base.ok" # written last; holds the package list the root was built with
want_ok="packages: ${PACKAGES[*]}"
if [ "$FRESH" = 1 ]; then
  say "--fresh: rebuilding the Debian root"
  rm -f "$BASE_OK"
elif [ -e "$BASE_OK" ] && [ "$(cat "$BASE_OK")" != "$want_ok" ]; then
  say "the Debian root was built with other packages: rebuilding it"
  rm -f "$BASE_OK"
fi

if [ -e "$BASE_OK" ] && [ -d "$BASE" ]; then
  say "reusing the Debian root in $BASE (--fresh rebuilds it)"
else
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    say "installing mmdebstrap on this host (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends mmdebstrap >"$LOGS/host-apt.log" 2>&1 || {
      apt-get update -qq >>"$LOGS/host-apt.log" 2>&1 || true
      apt-get install -y -qq --no-install-recommends mmdebstrap >>"$LOGS/host-apt.log" 2>&1 ||
        die "could not install mmdebstrap on this host (see $LOGS/host-apt.log)"
    }
  fi
  remove_tree "$RUN"
  remove_tree "$BASE"
  remove_tree "$BASE.partial"
  say "building a Debian bookworm root in $BASE from $MIRROR (a few minutes; log: $LOGS/bootstrap.log)"
  started=$(date +%s)
  # minbase plus the image's packages; mmdebstrap installs no Recommends and
  # leaves apt's configuration at Debian's defaults.
  pkgs="${PACKAGES[*]}"
  mmdebstrap --mode=root --variant=minbase --include="${pkgs// /,}" \
    bookworm "$BASE.partial" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    >"$LOGS/bootstrap.log" 2>&1 || die "mmdebstrap failed (see $LOGS/bootstrap.log)"
  mv "$BASE.partial" "$BASE"
  echo "$want_ok" >"$BASE_OK"
  say "Debian root built in $(fmt_secs $(($(date +%s) - started))) ($(du -sh -x "$BASE" | cut -f1))"
fi

# The root must not already hold what setup.sh has to install.
check_no_libclang() { # check_no_libclang ROOT
  local r=$1 p found=()
  for p in "${FORBIDDEN[@]}"; do
    if chroot "$r" dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
      found+=("$p")
    fi
  done
  while IFS= read -r p; do found+=("$p"); done < <(
    find "$r/usr/lib" "$r/usr/local/lib" \( -name 'libclang.so*' -o -name 'libclang-[0-9]*.so*' \) 2>/dev/null)
  if [ ${#found[@]} -gt 0 ]; then
    echo "fresh-machine: error: the root already holds libclang: ${found[*]}" >&2
    return 1
  fi
}
check_no_libclang "$BASE" || die "the root is not a fresh machine for this check; rebuild it with --fresh"

# -------------------------------------------------------------- this run's root

# A fresh upper layer for every run: setup.sh's installs, the crates registry
# and the target directory of the last run are gone.
remove_tree "$RUN"
mkdir -p "$RUN/upper" "$RUN/work" "$M"
if ! mount_and_record "$M" -t overlay overlay \
  -o "lowerdir=$BASE,upperdir=$RUN/upper,workdir=$RUN/work" 2>/dev/null; then
  say "overlayfs unavailable: copying the root instead"
  cp -a --reflink=auto "$BASE/." "$M/"
fi

# The host's Rust toolchain, read-only, where rustup installs it for root.
[ -d /root/.rustup ] && [ -x /root/.cargo/bin/cargo ] ||
  die "no Rust toolchain on this host in /root/.rustup and /root/.cargo/bin"
mkdir -p "$M/root/.rustup" "$M/root/.cargo/bin"
mount_and_record "$M/root/.rustup" --bind /root/.rustup
mount -o remount,bind,ro "$M/root/.rustup"
mount_and_record "$M/root/.cargo/bin" --bind /root/.cargo/bin
mount -o remount,bind,ro "$M/root/.cargo/bin"

# What a running machine has: /proc, /sys, /dev (with /dev/pts), DNS.
mount_and_record "$M/proc" -t proc proc
mount_and_record "$M/sys" --rbind /sys
mount_and_record "$M/dev" --rbind /dev # brings /dev/pts and /dev/shm along
cp -L /etc/resolv.conf "$M/etc/resolv.conf"

# A machine on this network trusts what this host trusts: where HTTPS goes
# through a TLS-inspecting proxy, the host's bundle holds the proxy's CA, and
# without it cargo cannot reach crates.io. Certificates in the host's bundle
# that Debian's ca-certificates lacks are added to the root the Debian way
# (/usr/local/share/ca-certificates + update-ca-certificates), in this run's
# layer only.
extra_cas="$(python3 - /etc/ssl/certs/ca-certificates.crt "$M/etc/ssl/certs/ca-certificates.crt" \
  "$M/usr/local/share/ca-certificates" <<'PY'
import re, sys, os
pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
def certs(path):
    try:
        with open(path) as f:
            return pem.findall(f.read())
    except OSError:
        return []
have = {"".join(c.split()) for c in certs(sys.argv[2])}
extra = [c for c in certs(sys.argv[1]) if "".join(c.split()) not in have]
os.makedirs(sys.argv[3], exist_ok=True)
for i, c in enumerate(extra):
    with open(os.path.join(sys.argv[3], f"host-ca-{i}.crt"), "w") as f:
        f.write(c + "\n")
print(len(extra))
PY
)" || die "could not compare the host's CA certificates with the root's"
if [ "$extra_cas" != 0 ]; then
  in_root update-ca-certificates >"$LOGS/ca-certificates.log" 2>&1 ||
    die "update-ca-certificates failed in the root (see $LOGS/ca-certificates.log)"
  say "the root trusts the host's $extra_cas extra CA certificate(s) (a TLS-inspecting proxy's)"
fi
in_root curl -sSf -o /dev/null --max-time 30 https://index.crates.io/config.json >"$LOGS/network.log" 2>&1 ||
  die "crates.io is not reachable from the root (see $LOGS/network.log)"

in_root cargo --version >"$LOGS/toolchain.log" 2>&1 || die "cargo does not run in the root (see $LOGS/toolchain.log)"
say "toolchain in the root: $(head -n1 "$LOGS/toolchain.log")"

# The repository at the revision asked for, cloned as a user would.
commit="$(git -C "$REPO" rev-parse --verify "$REF^{commit}" 2>/dev/null)" || die "no revision $REF in $REPO"
git clone --quiet --no-hardlinks "$REPO" "$M$CLONE_IN" >"$LOGS/clone.log" 2>&1 || die "git clone $REPO failed (see $LOGS/clone.log)"
git -C "$M$CLONE_IN" -c advice.detachedHead=false checkout --quiet --detach "$commit" >>"$LOGS/clone.log" 2>&1 ||
  die "git checkout $commit failed (see $LOGS/clone.log)"
say "cloned $REPO at $(git -C "$M$CLONE_IN" log -1 --format='%h %s' | cut -c1-80) (uncommitted changes are not in the clone)"

# An empty target directory where the scripts put it by default.
rm -rf --one-file-system -- "${M:?}$TARGET_IN"
[ ! -e "$M$TARGET_IN" ] || die "could not empty $M$TARGET_IN"
dpkg_before="$(chroot "$M" dpkg-query -W -f='${binary:Package}\n' | sort)"

# -------------------------------------------------------------- the commands

# Every librocksdb.a seen, as "path mtime": a new directory or a rewritten
# archive is one more compilation of RocksDB's C++.
ROCKSDB_SEEN=()
note_rocksdb() {
  local a line
  for a in "$M$TARGET_IN"/*/build/librocksdb-sys-*/out/librocksdb.a; do
    [ -e "$a" ] || continue
    line="${a#"$M"} $(stat -c %Y "$a")"
    printf '%s\n' "${ROCKSDB_SEEN[@]}" | grep -qxF -- "$line" || ROCKSDB_SEEN+=("$line")
  done
}

# Starts a command in the root in its own session (so it can be stopped with
# everything it started), with its output in a log.
start_in_root() { # start_in_root LOG COMMAND...
  local log=$1
  shift
  setsid chroot "$M" /usr/bin/env -i "${CHROOT_ENV[@]}" "$@" >"$log" 2>&1 &
  CHILD=$!
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

RUN_SECS="" RUN_NOTE="not run" RUN_OK=0
run_phase() {
  local log="$LOGS/run.log" ctl_log="$LOGS/raftkvctl.log" started deadline pid out rc i
  # The root shares the host's network: a node already on config/single.toml's
  # ports would answer in place of the one being checked.
  for port in 2379 2380; do
    if port_in_use "$port"; then
      RUN_NOTE="not run: 127.0.0.1:$port is already in use on this host"
      say "$RUN_NOTE"
      return
    fi
  done
  say "scripts/run.sh in the root (log: $log)"
  started=$(date +%s)
  deadline=$((started + TIMEOUT_MIN * 60))
  start_in_root "$log" /bin/bash -c "cd $CLONE_IN && exec scripts/run.sh"
  pid=$CHILD
  : >"$ctl_log"
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rc=0
      wait "$pid" || rc=$?
      CHILD=""
      RUN_SECS=$(($(date +%s) - started))
      RUN_NOTE="failed: exited with $rc before the node answered"
      say "run.sh $RUN_NOTE; the end of its log:"
      tail -n 30 "$log" >&2
      return
    fi
    # The node is up once run.sh has printed its banner and a put succeeds.
    if grep -q '^raftkv: starting' "$log" && [ -x "$M$TARGET_IN/release/raftkvctl" ] &&
      ctl put greeting hello >>"$ctl_log" 2>&1; then
      break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      RUN_SECS=$(($(date +%s) - started))
      RUN_NOTE="failed: the node did not answer within $TIMEOUT_MIN minutes"
      say "run.sh $RUN_NOTE"
      stop_child
      return
    fi
    sleep 5
  done
  RUN_SECS=$(($(date +%s) - started))
  out="$(ctl get greeting 2>>"$ctl_log")" || true
  printf 'get greeting:\n%s\n' "$out" >>"$ctl_log"
  if [ "$out" = $'greeting\nhello' ]; then
    RUN_OK=1
    RUN_NOTE="node answered"
  else
    RUN_NOTE="failed: put worked but get greeting printed '${out//$'\n'/\\n}'"
  fi
  say "run.sh: $RUN_NOTE after $(fmt_secs "$RUN_SECS"); stopping the node (pid $pid)"
  # SIGTERM to the node only (it stops cleanly), then its group if need be.
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "the node is still running 30 s after SIGTERM: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rc=0
  wait "$pid" || rc=$?
  CHILD=""
  [ "$rc" = 0 ] || say "note: the node exited with $rc after SIGTERM"
}

TEST_SECS="" TEST_RC="" TEST_NOTE="not run"
test_phase() {
  local log="$LOGS/test.log" started deadline pid
  say "scripts/test.sh in the root (log: $log)"
  started=$(date +%s)
  deadline=$((started + TIMEOUT_MIN * 60))
  start_in_root "$log" /bin/bash -c "cd $CLONE_IN && exec scripts/test.sh"
  pid=$CHILD
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      TEST_SECS=$(($(date +%s) - started))
      TEST_RC=124
      TEST_NOTE="timed out after $TIMEOUT_MIN minutes"
      say "test.sh $TEST_NOTE"
      stop_child
      return
    fi
    sleep 5
  done
  TEST_RC=0
  wait "$pid" || TEST_RC=$?
  CHILD=""
  TEST_SECS=$(($(date +%s) - started))
  TEST_NOTE="exit $TEST_RC"
  say "test.sh: exit $TEST_RC after $(fmt_secs "$TEST_SECS")"
  [ "$TEST_RC" = 0 ] || { say "the end of its log:"; tail -n 30 "$log" >&2; }
}

if [ "$ORDER" = run-first ]; then
  run_phase
  note_rocksdb
  test_phase
  note_rocksdb
else
  test_phase
  note_rocksdb
  run_phase
  note_rocksdb
fi

# ------------------------------------------------------------------- summary

printf '%s\n' "${ROCKSDB_SEEN[@]}" >"$LOGS/rocksdb.txt"
{
  echo "packages installed in the root by the scripts:"
  comm -13 <(printf '%s\n' "$dpkg_before") <(chroot "$M" dpkg-query -W -f='${binary:Package}\n' | sort) | sed 's/^/  /'
} >"$LOGS/packages-added.txt"
added="$(sed 1d "$LOGS/packages-added.txt" | tr -d ' ' | grep -E '^lib(clang|clang1)' | tr '\n' ' ' || true)"
[ -z "$added" ] || say "setup.sh installed: $added"
compiled=${#ROCKSDB_SEEN[@]}

show_run="run.sh $([ -n "$RUN_SECS" ] && fmt_secs "$RUN_SECS" || echo -) ($RUN_NOTE)"
show_test="test.sh $([ -n "$TEST_SECS" ] && fmt_secs "$TEST_SECS" || echo -) ($TEST_NOTE)"
if [ "$ORDER" = run-first ]; then shown="$show_run, $show_test"; else shown="$show_test, $show_run"; fi
say "root: base $(du -sh -x "$BASE" | cut -f1), this run's layer $(du -sh -x "$RUN" | cut -f1); logs in $LOGS"
echo "fresh-machine: $shown, RocksDB compiled $compiled time(s)"

if [ "$RUN_OK" = 1 ] && [ "$TEST_RC" = 0 ] && [ "$compiled" = 1 ]; then exit 0; fi
exit 1
