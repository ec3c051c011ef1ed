#!/usr/bin/env bash
# etcd-bench-tool.sh — build etcd 3.4's own `benchmark` tool (etcd's tools/benchmark:
# put, range, txn-put, watch, watch-latency, ...) on Debian 12 using ONLY apt.
#
# Usage: scripts/etcd-bench-tool.sh [OUTDIR]     (default OUTDIR: /var/tmp/etcd-bench/bin)
# On success, stdout has one line: the path of the benchmark binary.
# Everything else (progress, notes) goes to stderr.
#
# How it works:
#   * Debian's golang-etcd-server-dev ships etcd 3.4.23's library source (clientv3, pkg/report,
#     ...) under /usr/share/gocode/src, plus its Go dependencies as golang-*-dev packages. It
#     does NOT ship tools/benchmark.
#   * The upstream orig tarball of Debian's `etcd` source package (fetched with
#     `apt-get source --download-only`) does contain tools/benchmark, so we take only that
#     directory and build it in GOPATH mode (GO111MODULE=off) against /usr/share/gocode.
#     Nothing is fetched from the Go module proxy or anywhere else outside apt.
#   * Also built: OUTDIR/benchmark-wl-putstart. It is identical except for a small patch to
#     watch-latency (see step 5): its timer starts just BEFORE each Put, and the time is taken
#     when each watcher receives the event. The stock 3.4 tool starts the timer AFTER Put()
#     has returned, so it only measures how long the event takes to arrive after the put's
#     response (often ~0). Set BUILD_PUTSTART_VARIANT=0 to skip this binary.
#
# Environment knobs:
#   ETCD_BENCH_WORK   scratch dir (default /var/tmp/etcd-bench/build); wiped and recreated
#   BUILD_PUTSTART_VARIANT  1 (default) or 0
set -euo pipefail

OUTDIR="${1:-/var/tmp/etcd-bench/bin}"
WORK="${ETCD_BENCH_WORK:-/var/tmp/etcd-bench/build}"
BUILD_PUTSTART_VARIANT="${BUILD_PUTSTART_VARIANT:-1}"

log() { printf '[etcd-bench-tool] %s\n' "$*" >&2; }

# apt needs root; use sudo only when we are not root already.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- 1. Debian packages: Go toolchain + etcd library source + its Go deps ---------------------
# golang-etcd-server-dev Depends on every library the benchmark imports (cobra, pflag,
# go-humanize, speakeasy, cheggaaa/pb.v1, x/time, grpc, zap, ...). They are listed here too
# so that a missing one is obvious.
PKGS=(
  golang-go
  golang-etcd-server-dev
  golang-github-spf13-cobra-dev
  golang-github-spf13-pflag-dev
  golang-github-dustin-go-humanize-dev
  golang-github-bgentry-speakeasy-dev
  golang-gopkg-cheggaaa-pb.v1-dev
  golang-golang-x-time-dev
  golang-google-grpc-dev
  golang-go.uber-zap-dev
  patch
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
APT_UPDATED=0
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  $SUDO apt-get update -qq >&2
  APT_UPDATED=1
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- 2. Make sure apt can fetch *source* packages (deb-src) --------------------------------------
# The default Debian 12 image only has "Types: deb". Add a deb-src entry for the same release
# on Debian's own mirror. This only adds where apt fetches source packages from.
if [ -z "$(apt-cache showsrc etcd 2>/dev/null | head -1)" ]; then
  . /etc/os-release
  SRCLIST=/etc/apt/sources.list.d/etcd-bench-deb-src.sources
  log "adding deb-src for ${VERSION_CODENAME} in ${SRCLIST}"
  $SUDO tee "$SRCLIST" >/dev/null <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $SUDO apt-get update -qq >&2
  APT_UPDATED=1
fi

# --- 3. Fetch the etcd source package matching the installed library source ------------------
# Pin to the version of golang-etcd-server-dev, so the benchmark matches the libraries it is
# compiled against. apt checks the files against the signed Sources index.
SRCVER="$(dpkg-query -W -f='${source:Version}' golang-etcd-server-dev)"   # e.g. 3.4.23-4
UPVER="${SRCVER%-*}"                                                         # e.g. 3.4.23
rm -rf "$WORK"
mkdir -p "$WORK/dl" "$OUTDIR"
# As root, let apt's sandbox user write the download dir (avoids the "unsandboxed" warning).
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$WORK/dl"; fi
log "fetching Debian source package etcd=${SRCVER} via apt"
( cd "$WORK/dl" && apt-get source --download-only -qq "etcd=${SRCVER}" >&2 2>&1 ) || {
  [ "$APT_UPDATED" = 1 ] || { $SUDO apt-get update -qq >&2; }
  ( cd "$WORK/dl" && apt-get source --download-only -qq "etcd=${SRCVER}" >&2 2>&1 )
}
ORIG="$(ls "$WORK"/dl/etcd_"${UPVER}".orig.tar.* | head -1)"

# --- 4. Lay out a scratch GOPATH holding only tools/benchmark -------------------------------------
# GOPATH=$WORK/gopath:/usr/share/gocode: go.etcd.io/etcd/tools/benchmark/... resolves to the
# scratch copy. Every other import (go.etcd.io/etcd/clientv3, github.com/spf13/cobra, ...)
# resolves to Debian's /usr/share/gocode.
GP="$WORK/gopath"
mkdir -p "$GP/src/go.etcd.io/etcd/tools"
tar -xf "$ORIG" -C "$WORK" "etcd-${UPVER}/tools/benchmark"
cp -r "$WORK/etcd-${UPVER}/tools/benchmark" "$GP/src/go.etcd.io/etcd/tools/"

export GO111MODULE=off            # GOPATH mode: no go.mod, no module proxy
export GOPROXY=off GOFLAGS= GOSUMDB=off
export GOPATH="$GP:/usr/share/gocode"
export GOCACHE="${GOCACHE:-/var/tmp/etcd-bench/gocache}"   # kept between runs to speed up rebuilds
export CGO_ENABLED=0              # static binary, no C toolchain needed

# -trimpath and an empty build id make the binary byte-for-byte reproducible for a given set of
# Debian package versions.
build() {  # build <output-binary>
  nice -n 19 go build -trimpath -ldflags='-buildid=' -o "$1" go.etcd.io/etcd/tools/benchmark
}

log "building benchmark (go $(go env GOVERSION), etcd tools/benchmark ${UPVER})"
build "$OUTDIR/benchmark"
"$OUTDIR/benchmark" --help >/dev/null   # check that the binary runs

# --- 5. Optional variant: watch-latency measured from just before the Put ---------------------
# Stock 3.4.23 code: every watcher goroutine waits on barrierc, Put() runs, then
# `st = time.Now()` and close(barrierc). So latency = (event received) - (Put returned).
# Patched: st is taken just before Put(), and each watcher stamps its event's arrival time
# BEFORE it waits on the barrier, so an event that arrives before the Put response is not
# stamped late. st is only read after close(barrierc), which happens after st is written,
# so there is no data race. Latency = (event received at this watcher) - (just before Put).
if [ "$BUILD_PUTSTART_VARIANT" = 1 ]; then
  log "patching watch_latency.go (timer starts before Put)"
  patch --fuzz=0 --no-backup-if-mismatch -p1 -d "$GP/src/go.etcd.io/etcd" >&2 <<'EOF'
--- a/tools/benchmark/cmd/watch_latency.go
+++ b/tools/benchmark/cmd/watch_latency.go
@@ -87,19 +87,20 @@
 		for _, wch := range wchs {
 			ch := wch
 			go func() {
-				<-barrierc
 				<-ch
-				r.Results() <- report.Result{Start: st, End: time.Now()}
+				end := time.Now()
+				<-barrierc
+				r.Results() <- report.Result{Start: st, End: end}
 				wg.Done()
 			}()
 		}
 
+		st = time.Now()
 		if _, err := putClient.Put(context.TODO(), key, value); err != nil {
 			fmt.Fprintf(os.Stderr, "Failed to Put for watch latency benchmark: %v\n", err)
 			os.Exit(1)
 		}
 
-		st = time.Now()
 		close(barrierc)
 		wg.Wait()
 		bar.Increment()
EOF
  log "building benchmark-wl-putstart"
  build "$OUTDIR/benchmark-wl-putstart"
  "$OUTDIR/benchmark-wl-putstart" --help >/dev/null
fi

echo "$OUTDIR/benchmark"
