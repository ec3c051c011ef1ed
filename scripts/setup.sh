#!/usr/bin/env bash
# Installs what building and testing raftkv needs on a fresh Debian machine
# (run as root), and nothing that is already there. Sourced by the other
# scripts (run.sh, test.sh, bench.sh, cluster.sh, chaos.sh, simulate.sh);
# safe to run again, and a run that was interrupted half way is repaired by
# the next one.
#
# Every check names what it looks for, and looks for what the build really
# loads, not for a package that happens to share a prefix with it.
#
# Exports CARGO_TARGET_DIR (one target directory outside the clone) and
# RAFTKV_PROFILE (the one cargo profile every script builds with), so
# RocksDB's C++ is compiled once per machine.
set -euo pipefail

setup_say() { echo "setup: $*" >&2; }
setup_fail() {
  echo "setup: error: $*" >&2
  exit 1
}

# bindgen (RocksDB's bindings) loads libclang at build time, by clang-sys's
# rules: libclang.so, libclang-<N>.so, libclang.so.<N> or libclang-<N>.so.<N>,
# in LIBCLANG_PATH, `llvm-config --libdir`, /usr/lib/llvm-*/lib or the
# multiarch library directory. libclang-cpp.so.<N> (the C++ interface, which
# llvm-14-dev pulls in) is a different library and does not count.
have_libclang() {
  local dirs=() d f
  [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
  command -v llvm-config >/dev/null 2>&1 && dirs+=("$(llvm-config --libdir 2>/dev/null)")
  dirs+=(/usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib64 /usr/lib /usr/local/lib)
  for d in "${dirs[@]}"; do
    [ -d "$d" ] || continue
    for f in "$d"/libclang.so "$d"/libclang.so.* "$d"/libclang-[0-9]*.so "$d"/libclang-[0-9]*.so.*; do
      [ -e "$f" ] && return 0
    done
  done
  return 1
}

# A previous apt-get killed half way leaves dpkg with unconfigured packages;
# finish that first, or every later install fails.
repair_dpkg() {
  if [ -n "$(dpkg --audit 2>/dev/null)" ]; then
    setup_say "finishing an interrupted package installation (dpkg --configure -a)"
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a ||
      setup_fail "dpkg --configure -a failed; fix the package state by hand and run again"
  fi
}

apt_install() {
  [ "$(id -u)" = 0 ] || setup_fail "missing $*: run as root once, or install them (apt-get install $*)"
  command -v apt-get >/dev/null 2>&1 || setup_fail "missing $*, and this is not a Debian machine (no apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  repair_dpkg
  # Another apt-get (unattended upgrades, a second terminal) holds the lock:
  # wait for it a while rather than failing at once.
  local lock=(-o DPkg::Lock::Timeout=300)
  setup_say "installing $* (apt-get)"
  apt-get "${lock[@]}" update -qq ||
    setup_fail "apt-get update failed (is the Debian mirror reachable? is apt locked?); nothing was installed, run again"
  apt-get "${lock[@]}" install -y -qq --no-install-recommends "$@" >/dev/null ||
    setup_fail "apt-get install $* failed; run again (an interrupted install is repaired first)"
}

need_apt=()
check() { # check DESCRIPTION PACKAGE TEST...
  local what=$1 pkg=$2
  shift 2
  if "$@" >/dev/null 2>&1; then return 0; fi
  setup_say "missing $what -> package $pkg"
  need_apt+=("$pkg")
}
check "a C compiler (cc)" gcc command -v cc
check "a C++ compiler (c++), RocksDB is C++" g++ command -v c++
check "make" make command -v make
check "pkg-config" pkg-config command -v pkg-config
check "libclang.so or libclang-<N>.so* (bindgen, for RocksDB's bindings)" libclang-dev have_libclang
# libclang-dev brings clang's own headers (stddef.h ...) that bindgen parses;
# a libclang found without them needs the clang package.
if have_libclang; then
  check "clang's builtin headers (stddef.h, parsed by bindgen)" clang bash -c 'ls /usr/lib/llvm-*/lib/clang/*/include/stddef.h'
fi
check "git" git command -v git
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  check "curl (to install the Rust toolchain)" curl command -v curl
  check "CA certificates (to install the Rust toolchain)" ca-certificates test -s /etc/ssl/certs/ca-certificates.crt
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  apt_install "${need_apt[@]}"
  have_libclang || setup_fail "libclang-dev is installed but no libclang.so was found"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  setup_say "missing cargo -> installing the Rust toolchain with rustup"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy >/dev/null ||
    setup_fail "the Rust toolchain could not be installed with rustup"
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || {
      setup_say "missing $c -> rustup component add $c"
      rustup component add "$c" >/dev/null || setup_fail "rustup component add $c failed"
    }
  done
fi
# protoc: not needed on the machine; build.rs uses the copy vendored by the
# protoc-bin-vendored crate.

# One target directory outside the clone and one profile for every script, so
# RocksDB's C++ (the longest part of any build) is compiled once per machine.
# The cost: tests are built with optimisations too (docs/architecture.md).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/raftkv-target}"
export RAFTKV_PROFILE=release
mkdir -p "$CARGO_TARGET_DIR"
RAFTKV_BIN="$CARGO_TARGET_DIR/$RAFTKV_PROFILE"
export RAFTKV_BIN

# Says, before a build that will compile RocksDB, that it will take a while.
announce_first_build() {
  if ! ls "$CARGO_TARGET_DIR"/"$RAFTKV_PROFILE"/build/librocksdb-sys-*/out/librocksdb.a >/dev/null 2>&1; then
    setup_say "first build on this machine: it compiles RocksDB's C++ (about 15 minutes on 2 cores, longer on a busy machine; once per machine, later builds take seconds to a few minutes). cargo's progress follows."
  fi
}
