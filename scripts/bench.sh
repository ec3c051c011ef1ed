#!/usr/bin/env bash
# Benchmarks raftkv with raftkv-bench and appends one JSON line per run to a
# results file.
#
#   scripts/bench.sh [RESULTS_FILE]            # a fresh single node (default: bench-results.jsonl)
#   scripts/bench.sh --cluster [RESULTS_FILE]  # fresh 3-node clusters (3 of them: report medians)
#   scripts/bench.sh --watch [RESULTS_FILE]    # the watch matrix on fresh 3-node clusters, and
#                                              # on 3-member etcd 3.4 clusters side by side
#   scripts/bench.sh --lease [RESULTS_FILE]    # leases on fresh 3-node clusters, and on
#                                              # 3-member etcd 3.4 clusters side by side
#   TOTAL=50000 scripts/bench.sh               # requests per run (default: per workload,
#                                              # a few seconds each on a 2-core machine)
#   RUNS=5 scripts/bench.sh --cluster          # fresh clusters to run the matrix on
#
# Every node gets a temporary data directory and free ports, and is stopped
# by its pid, also on failure or interruption. In cluster mode each
# member's peak RSS (VmHWM) is appended after each run as
# {"member","peak_rss_mb","run"}.
#
# --lease: keep-alives/s with 100 clients on raftkv and etcd (RUNS rounds,
# each on a fresh raftkv cluster then a fresh etcd cluster), then once each
# on fresh clusters: LEASES (100,000) leases kept alive for SCALE_SECS (150)
# with a 60 s TTL, and the mass expiry of LEASES leases with one key each
# (EXPIRY_TTL, 180 s: etcd takes 70 s or more to grant them, put their
# keys and renew them all once) under 1,000 background puts/s, on raftkv
# and on etcd.
# etcd's side uses etcd's own `benchmark` (ETCD_BENCH, default
# /var/tmp/etcd-bench/bin/benchmark, from scripts/etcd-bench-tool.sh) and,
# for the 100,000-lease runs, a Go program written out below that does
# what raftkv-bench does on clientv3; ETCD=0 skips etcd, and it is skipped
# with a note if etcd or the tool is missing. etcd's lines say
# "server":"etcd".
set -euo pipefail
cd "$(dirname "$0")/.."

mode=single
matrix=kv
if [ "${1:-}" = "--cluster" ]; then
  mode=cluster
  shift
elif [ "${1:-}" = "--watch" ]; then
  mode=cluster
  matrix=watch
  shift
elif [ "${1:-}" = "--lease" ]; then
  mode=cluster
  matrix=lease
  shift
fi
results="${1:-bench-results.jsonl}"
if [ "$mode" = cluster ]; then runs="${RUNS:-3}"; members=3; else runs="${RUNS:-1}"; members=1; fi

source scripts/setup.sh
announce_first_build
cargo build --profile "$RAFTKV_PROFILE" --quiet --bin raftkv --bin raftkvctl --bin raftkv-bench
bin="$RAFTKV_BIN"

# Sets $port to a free TCP port on 127.0.0.1 (nothing answers there).
next_port=$((20000 + RANDOM % 20000))
take_port() {
  while (exec 3<>"/dev/tcp/127.0.0.1/$next_port") 2>/dev/null; do next_port=$((next_port + 1)); done
  port=$next_port
  next_port=$((next_port + 1))
}

work=""
pids=()
stop_nodes() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  [ -n "$work" ] && rm -rf "$work"
  work=""
}
trap stop_nodes EXIT
trap 'exit 130' INT TERM

member_name() { if [ "$mode" = cluster ]; then echo "node$1"; else echo "single"; fi; }
member_config() { if [ "$mode" = cluster ]; then echo "config/node$1.toml"; else echo "config/single.toml"; fi; }

# Starts $members fresh nodes from the config files; sets $endpoints.
start_nodes() {
  work="$(mktemp -d /tmp/raftkv-bench.XXXXXX)"
  local clients=() peers=() initial="" i
  for i in $(seq 1 "$members"); do
    take_port
    clients+=("127.0.0.1:$port")
    take_port
    peers+=("127.0.0.1:$port")
    initial+="${initial:+,}$(member_name "$i")=${peers[$((i - 1))]}"
  done
  for i in $(seq 1 "$members"); do
    # The config files' settings, on free ports and a temporary directory.
    "$bin/raftkv" --config "$(member_config "$i")" --name "$(member_name "$i")" --data-dir "$work/n$i" \
      --listen-client "${clients[$((i - 1))]}" --listen-peer "${peers[$((i - 1))]}" \
      --initial-cluster "$initial" --log-level warn >"$work/n$i.log" 2>&1 &
    pids+=($!)
  done
  endpoints=$(IFS=,; echo "${clients[*]}")
  for _ in $(seq 1 120); do
    for pid in "${pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "bench.sh: a raftkv node exited before it was ready:" >&2
        cat "$work"/*.log >&2
        exit 1
      fi
    done
    if "$bin/raftkvctl" --endpoints="$endpoints" --command-timeout=1s endpoint health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  echo "bench.sh: not ready after 30 s" >&2
  exit 1
}

# bench DEFAULT_TOTAL ARGS...: one run of raftkv-bench ($TOTAL overrides the
# request count). Runs last seconds, not fractions of one, so that they
# reach a steady state (group commit, log compaction every snapshot-count
# entries) and one scheduling hiccup does not decide the result.
bench() {
  local n="${TOTAL:-$1}"
  shift
  echo "bench.sh: raftkv-bench --total $n $*" >&2
  "$bin/raftkv-bench" --endpoints "$endpoints" --total "$n" "$@" | tee -a "$results"
}

# The member's resident memory in kB ($1: its pid; VmRSS or VmHWM).
mem_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# The endpoint of the leader, from `endpoint status -w json` of every
# member ($1: raftkvctl or etcdctl; both print etcd's JSON).
leader_endpoint() {
  ETCDCTL_API=3 "$1" --endpoints="$endpoints" --command-timeout=2s endpoint status -w json |
    python3 -c 'import json, sys
print(next(s["Endpoint"] for s in json.load(sys.stdin) if s["Status"]["header"]["member_id"] == s["Status"]["leader"]))'
}

# The pid of the member serving endpoint $1 (members were started in the
# order of $endpoints).
pid_of() {
  local i=0 e
  IFS=, read -ra eps <<<"$endpoints"
  for e in "${eps[@]}"; do
    [ "$e" = "$1" ] && echo "${pids[$i]}" && return 0
    i=$((i + 1))
  done
  return 1
}

# {"watchers","rss_before_kb","peak_rss_kb","kb_per_watcher","run"} ($1
# server, $2 watchers, $3 RSS before, $4 peak RSS after).
rss_line() {
  echo "{\"server\":\"$1\",\"watchers\":$2,\"rss_before_kb\":$3,\"peak_rss_kb\":$4,\"kb_per_watcher\":$(awk -v a="$4" -v b="$3" -v n="$2" 'BEGIN {printf "%.2f", (a - b) / n}'),\"run\":$run}" | tee -a "$results"
}

# The watch matrix (issue figures): put-to-event latency with one watcher;
# 10,000 watchers on one member; a stalled client among 1,000 watchers
# (and the same without it); 100 prefix watchers under the put100 load.
# Watchers and puts go to the leader, as etcd's side does (a follower adds
# a forwarding hop to each put and a commit round to each event).
watch_matrix() {
  local leader pid before
  leader=$(leader_endpoint "$bin/raftkvctl")
  pid=$(pid_of "$leader")
  "$bin/raftkv-bench" --endpoints "$leader" --total "${TOTAL:-2000}" --conns 1 --clients 1 watch-latency | tee -a "$results"
  before=$(mem_kb "$pid" VmRSS)
  "$bin/raftkv-bench" --endpoints "$leader" --total "${TOTAL:-10000}" --clients 10 --conns 2 --key-space 10000 \
    watch --watchers 10000 --watch-conns 100 --rate 1000 | tee -a "$results"
  rss_line raftkv 10000 "$before" "$(mem_kb "$pid" VmHWM)"
  for stalled in 0 1; do
    "$bin/raftkv-bench" --endpoints "$leader" --total "${TOTAL:-5000}" --clients 10 --conns 2 --key-space 100 \
      watch --watchers 1000 --watch-conns 10 --rate 1000 --stalled-conns "$stalled" | tee -a "$results"
  done
  bench 100000 --clients 100 --conns 10 --key-space 100000 watch --watchers 100 --watch-conns 10 --prefix
}

# The same on etcd 3.4: its own tool (timed from just before each put,
# scripts/etcd-bench-tool.sh) for the latency, scripts/etcd-watch.go for
# the rest. The prefix run under put100 has no etcd counterpart here.
etcd_watch=""
build_etcd_watch() {
  local dir=/var/tmp/etcd-bench/etcd-watch
  [ -n "$etcd_watch" ] && return 0
  command -v go >/dev/null 2>&1 && [ -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ] || return 1
  mkdir -p "$dir"
  cp scripts/etcd-watch.go "$dir/main.go"
  go_build "$dir" etcd-watch || return 1
  etcd_watch="$dir/etcd-watch"
}

etcd_watch_matrix() {
  local leader pid before n="${TOTAL:-2000}"
  leader=$(leader_endpoint etcdctl)
  pid=$(pid_of "$leader")
  echo "bench.sh: etcd benchmark-wl-putstart watch-latency --total $n (leader)" >&2
  "${etcd_bench}-wl-putstart" --endpoints "$leader" --conns 1 --clients 1 watch-latency --total "$n" --val-size 32 2>/dev/null |
    etcd_json watch-latency 1 1 "$n" | tee -a "$results"
  before=$(mem_kb "$pid" VmRSS)
  "$etcd_watch" --endpoints "$leader" --total "${TOTAL:-10000}" --clients 10 --conns 2 --key-space 10000 \
    --watchers 10000 --watch-conns 100 --rate 1000 | tee -a "$results"
  rss_line etcd 10000 "$before" "$(mem_kb "$pid" VmHWM)"
  for stalled in 0 1; do
    "$etcd_watch" --endpoints "$leader" --total "${TOTAL:-5000}" --clients 10 --conns 2 --key-space 100 \
      --watchers 1000 --watch-conns 10 --rate 1000 --stalled-conns "$stalled" | tee -a "$results"
  done
}

# --- etcd 3.4 side by side (--lease) -----------------------------------------
etcd_bench="${ETCD_BENCH:-/var/tmp/etcd-bench/bin/benchmark}"
etcd_ok() {
  [ "${ETCD:-1}" != 0 ] && command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1 && [ -x "$etcd_bench" ]
}

# Starts a fresh 3-member etcd cluster (default timings: heartbeat 100 ms,
# election 1 s, as raftkv's config files); sets $endpoints.
start_etcd() {
  work="$(mktemp -d /tmp/raftkv-bench-etcd.XXXXXX)"
  local clients=() peers=() initial="" token="bench-$$-$RANDOM" i
  for i in 1 2 3; do
    take_port
    clients+=("127.0.0.1:$port")
    take_port
    peers+=("127.0.0.1:$port")
    initial+="${initial:+,}e$i=http://${peers[$((i - 1))]}"
  done
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$work/e$i" \
      --listen-client-urls "http://${clients[$((i - 1))]}" --advertise-client-urls "http://${clients[$((i - 1))]}" \
      --listen-peer-urls "http://${peers[$((i - 1))]}" --initial-advertise-peer-urls "http://${peers[$((i - 1))]}" \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "$token" \
      --logger zap --log-level warn >"$work/e$i.log" 2>&1 &
    pids+=($!)
  done
  endpoints=$(IFS=,; echo "${clients[*]}")
  for _ in $(seq 1 120); do
    if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --command-timeout=1s endpoint health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  echo "bench.sh: etcd not ready after 30 s:" >&2
  cat "$work"/*.log >&2
  exit 1
}

# etcd's benchmark report (stdin) as one line of raftkv-bench's fields
# ($1 op, $2 conns, $3 clients, $4 total).
etcd_json() {
  awk -v op="$1" -v conns="$2" -v clients="$3" -v total="$4" '
    $1 == "Total:" { secs = $2 }
    $1 == "Slowest:" { max = $2 * 1000 }
    $1 == "Requests/sec:" { rps = $2 }
    $2 == "in" && $1 ~ /%$/ { p = $1; sub("%", "", p); v = $3 * 1000
      if (p == "50") p50 = v; if (p == "90") p90 = v; if (p == "99") p99 = v; if (p == "99.9") p999 = v }
    $1 ~ /^\[[0-9]+\]$/ { e = $1; gsub(/[][]/, "", e); errors += e }
    END { printf "{\"op\":\"%s\",\"conns\":%d,\"clients\":%d,\"total\":%d,\"secs\":%.3f,\"ops_per_sec\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,\"errors\":%d,\"server\":\"etcd\"}\n",
      op, conns, clients, total, secs, rps, p50, p90, p99, p999, max, errors }'
}

# Each member's peak RSS ($1: what ran), as {"member","peak_rss_mb","run"}.
peak_rss() {
  local i=1 pid
  for pid in "${pids[@]}"; do
    echo "{\"member\":\"$1-$i\",\"peak_rss_mb\":$(($(mem_kb "$pid" VmHWM) / 1024)),\"run\":\"$1\"}" | tee -a "$results"
    i=$((i + 1))
  done
}

# Builds $1/main.go into $1/$2 in GOPATH mode against Debian's
# golang-etcd-server-dev, as scripts/etcd-bench-tool.sh builds etcd's tool
# (nothing fetched).
go_build() {
  (cd "$1" && GO111MODULE=off GOPROXY=off GOFLAGS= GOSUMDB=off GOPATH=/usr/share/gocode \
    GOCACHE="${GOCACHE:-/var/tmp/etcd-bench/gocache}" CGO_ENABLED=0 nice -n 19 go build -o "$2" main.go) >&2
}

# The etcd side of lease-scale and lease-expiry: a small Go program on
# clientv3 and etcd's gRPC keep-alive stream doing what raftkv-bench does
# (the same schedule, window and streams; etcd's own `benchmark put --rate`
# for the background puts), built in GOPATH mode against Debian's
# golang-etcd-server-dev as scripts/etcd-bench-tool.sh builds etcd's tool
# (nothing fetched). Sets $etcd_lease, or returns 1 if it cannot be built.
etcd_lease=""
build_etcd_lease() {
  local dir=/var/tmp/etcd-bench/etcd-lease
  [ -n "$etcd_lease" ] && return 0
  command -v go >/dev/null 2>&1 && [ -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ] || return 1
  mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
// etcd-lease: the lease-scale and lease-expiry workloads of raftkv-bench,
// against etcd 3.4 (clientv3 and its gRPC lease stream), for figures side
// by side. Prints one JSON line with raftkv-bench's field names.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

var (
	endpoints = flag.String("endpoints", "127.0.0.1:2379", "endpoints, comma-separated")
	mode      = flag.String("mode", "scale", "scale or expiry")
	leases    = flag.Int("leases", 100000, "leases in all")
	ttl       = flag.Int64("ttl", 60, "TTL of every lease, seconds")
	conns     = flag.Int("conns", 4, "connections")
	workers   = flag.Int("clients", 64, "goroutines that grant (and put)")
	streams   = flag.Int("streams", 4, "keep-alive streams")
	window    = flag.Int("window", 1000, "unanswered keep-alives per stream, at most")
	duration  = flag.Duration("duration", 150*time.Second, "scale: how long to keep the leases alive")
	perTTL    = flag.Int("renewals-per-ttl", 3, "scale: renewals of each lease per TTL")
	putRate   = flag.Int("put-rate", 1000, "expiry: background puts per second")
	bench     = flag.String("bench", "/var/tmp/etcd-bench/bin/benchmark", "expiry: etcd's benchmark tool")
)

func die(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "etcd-lease: "+f+"\n", a...)
	os.Exit(1)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// summary: count and percentiles of lat (sorted in place).
func summary(lat []time.Duration) map[string]interface{} {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return ms(lat[int(q*float64(len(lat)-1))])
	}
	return map[string]interface{}{"count": len(lat), "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1)}
}

// parallel runs f(worker, k) for k in [0, n) on `workers` goroutines.
func parallel(n int, f func(w, k int)) {
	var next int64 = -1
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				k := int(atomic.AddInt64(&next, 1))
				if k >= n {
					return
				}
				f(w, k)
			}
		}(w)
	}
	wg.Wait()
}

type renewals struct {
	mu      sync.Mutex
	lat     []time.Duration
	sent    int64
	ttl0    int64
	errors  int64
	lastOK  []time.Time
	maxGap  time.Duration
	restart int64
}

// renew renews ids[s], ids[s+S], ... on one stream: lease j of m in round r at
// start + period*(r + j/m), at most `window` unanswered, until `rounds` or end.
func renew(c *clientv3.Client, ids []clientv3.LeaseID, granted []time.Time, s int, start time.Time, period time.Duration, rounds int, end time.Time, out *renewals) {
	var mine []int
	for k := s; k < len(ids); k += *streams {
		mine = append(mine, k)
	}
	m := len(mine)
	if m == 0 {
		return
	}
	lc := pb.NewLeaseClient(c.ActiveConnection())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := lc.LeaseKeepAlive(ctx)
	if err != nil {
		die("keep-alive stream: %v", err)
	}
	slot := make(map[int64]int, m)
	for _, k := range mine {
		slot[int64(ids[k])] = k
	}
	var mu sync.Mutex
	waiting := make(map[int64]time.Time, *window)
	room := make(chan struct{}, *window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			now := time.Now()
			mu.Lock()
			sent, ok := waiting[r.ID]
			delete(waiting, r.ID)
			left := len(waiting)
			mu.Unlock()
			if !ok {
				continue
			}
			<-room
			out.mu.Lock()
			out.lat = append(out.lat, now.Sub(sent))
			if r.TTL <= 0 {
				out.ttl0++
			} else if k, ok := slot[r.ID]; ok {
				if g := now.Sub(out.lastOK[k]); g > out.maxGap {
					out.maxGap = g
				}
				out.lastOK[k] = now
			}
			out.mu.Unlock()
			if left == 0 && !time.Now().Before(end) {
				return
			}
		}
	}()
	for r := 0; r < rounds; r++ {
		for j, k := range mine {
			due := start.Add(time.Duration((float64(r) + float64(j)/float64(m)) * float64(period)))
			if due.After(end) {
				r = rounds
				break
			}
			time.Sleep(time.Until(due))
			id := int64(ids[k])
			mu.Lock()
			_, busy := waiting[id]
			mu.Unlock()
			if busy {
				continue
			}
			room <- struct{}{}
			mu.Lock()
			waiting[id] = time.Now()
			mu.Unlock()
			if err := st.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
				atomic.AddInt64(&out.errors, 1)
				continue
			}
			atomic.AddInt64(&out.sent, 1)
		}
	}
	// The last answers get 10 s.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		left := len(waiting)
		mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	atomic.AddInt64(&out.errors, int64(len(waiting)))
	mu.Unlock()
	st.CloseSend()
	cancel()
}

func renewAll(cs []*clientv3.Client, ids []clientv3.LeaseID, granted []time.Time, period time.Duration, rounds int, end time.Time) *renewals {
	out := &renewals{lastOK: append([]time.Time(nil), granted...)}
	start := time.Now()
	var wg sync.WaitGroup
	for s := 0; s < *streams; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			renew(cs[s%len(cs)], ids, granted, s, start, period, rounds, end, out)
		}(s)
	}
	wg.Wait()
	return out
}

func grantAll(cs []*clientv3.Client, withKeys bool) ([]clientv3.LeaseID, []time.Time, time.Duration, int64) {
	ids := make([]clientv3.LeaseID, *leases)
	at := make([]time.Time, *leases)
	var errs int64
	value := strings.Repeat("v", 256)
	t0 := time.Now()
	parallel(*leases, func(w, k int) {
		c := cs[w%len(cs)]
		r, err := c.Grant(context.Background(), *ttl)
		if err != nil {
			atomic.AddInt64(&errs, 1)
			return
		}
		ids[k], at[k] = r.ID, time.Now()
		if withKeys {
			if _, err := c.Put(context.Background(), fmt.Sprintf("lx/%08d", k), value, clientv3.WithLease(r.ID)); err != nil {
				atomic.AddInt64(&errs, 1)
			}
		}
	})
	return ids, at, time.Since(t0), errs
}

var pct = regexp.MustCompile(`(?m)^\s*([0-9.]+)% in ([0-9.]+) secs`)

// putRun starts etcd's `benchmark put --rate` for secs seconds.
func putRun(secs int) (*exec.Cmd, *strings.Builder) {
	var out strings.Builder
	cmd := exec.Command(*bench, "--endpoints", *endpoints, "--conns", "10", "--clients", "10", "put", "--rate", strconv.Itoa(*putRate),
		"--total", strconv.Itoa(*putRate*secs), "--key-space-size", "1000", "--val-size", "256")
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		die("benchmark put: %v", err)
	}
	return cmd, &out
}

func putSummary(cmd *exec.Cmd, out *strings.Builder) map[string]interface{} {
	res := map[string]interface{}{}
	if cmd == nil {
		return res
	}
	cmd.Wait()
	for _, m := range pct.FindAllStringSubmatch(out.String(), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[1] {
		case "50":
			res["p50_ms"] = v * 1000
		case "99":
			res["p99_ms"] = v * 1000
		}
	}
	if m := regexp.MustCompile(`Slowest:\s+([0-9.]+)`).FindStringSubmatch(out.String()); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		res["max_ms"] = v * 1000
	}
	if m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindStringSubmatch(out.String()); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		res["ops_per_sec"] = v
	}
	return res
}

func r3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func main() {
	flag.Parse()
	eps := strings.Split(*endpoints, ",")
	cs := make([]*clientv3.Client, *conns)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{eps[i%len(eps)]}, DialTimeout: 5 * time.Second})
		if err != nil {
			die("connect: %v", err)
		}
		cs[i] = c
	}
	line := map[string]interface{}{"server": "etcd", "conns": *conns, "ttl_s": *ttl}
	switch *mode {
	case "scale":
		ids, at, took, errs := grantAll(cs, false)
		start := time.Now()
		period := time.Duration(float64(*ttl) * float64(time.Second) / float64(*perTTL))
		r := renewAll(cs, ids, at, period, 1<<30, start.Add(*duration))
		secs := time.Since(start).Seconds()
		listed := map[clientv3.LeaseID]bool{}
		ls, err := cs[0].Leases(context.Background())
		if err != nil {
			die("leases: %v", err)
		}
		for _, l := range ls.Leases {
			listed[l.ID] = true
		}
		alive := 0
		for _, id := range ids {
			if listed[id] {
				alive++
			}
		}
		for _, k := range r.lastOK {
			if g := time.Since(k); g > r.maxGap && !k.IsZero() {
				r.maxGap = g
			}
		}
		s := summary(r.lat)
		line["op"], line["clients"], line["total"], line["secs"] = "lease-scale", *streams, r.sent, r3(secs)
		line["ops_per_sec"] = r3(float64(len(r.lat)) / secs)
		for _, f := range []string{"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"} {
			line[f] = s[f]
		}
		line["errors"] = errs + r.errors + r.ttl0 + int64(*leases-alive)
		line["leases"], line["ttl0_answers"], line["alive_at_end"], line["lost"] = *leases, r.ttl0, alive, *leases-alive
		line["max_gap_ms"] = ms(r.maxGap)
		line["grant"] = map[string]interface{}{"secs": r3(took.Seconds()), "per_sec": int(float64(*leases) / took.Seconds())}
	case "expiry":
		ids, at, took, errs := grantAll(cs, true)
		fmt.Fprintf(os.Stderr, "etcd-lease: %d leases and keys in %.1f s (%d errors)\n", *leases, took.Seconds(), errs)
		a0 := time.Now()
		r := renewAll(cs, ids, at, 0, 1, a0.Add(time.Hour))
		aligned := time.Now()
		fmt.Fprintf(os.Stderr, "etcd-lease: renewed in %.1f s\n", aligned.Sub(a0).Seconds())
		baseSecs := int(*ttl) - 10
		if baseSecs > 10 {
			baseSecs = 10
		}
		if baseSecs < 1 {
			baseSecs = 1
		}
		bcmd, bout := putRun(baseSecs)
		var dcmd *exec.Cmd
		var dout *strings.Builder
		var first, last time.Time
		left := int64(*leases)
		giveUp := aligned.Add(time.Duration(*ttl)*time.Second + 300*time.Second)
		for time.Now().Before(giveUp) {
			now := time.Now()
			g, err := cs[0].Get(context.Background(), "lx/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err == nil {
				left = g.Count
				if left < int64(*leases) && first.IsZero() {
					first = now
					dcmd, dout = putRun(20)
				}
				if left == 0 {
					last = now
					break
				}
			}
			time.Sleep(100*time.Millisecond - time.Since(now))
		}
		firstDeadline := a0.Add(time.Duration(*ttl) * time.Second)
		end := last
		if end.IsZero() {
			end = time.Now()
		}
		drain := end.Sub(firstDeadline).Seconds()
		line["op"], line["clients"], line["total"], line["secs"] = "lease-expiry", 10, *leases, r3(drain)
		line["ops_per_sec"] = r3(float64(*leases) / drain)
		line["errors"] = errs + r.errors + r.ttl0 + left
		line["grant_and_put"] = map[string]interface{}{"secs": r3(took.Seconds()), "per_sec": int(float64(*leases) / took.Seconds())}
		line["align_secs"] = r3(aligned.Sub(a0).Seconds())
		if !first.IsZero() {
			line["first_gone_after_s"] = r3(first.Sub(aligned).Seconds())
		}
		if !last.IsZero() {
			line["all_gone_after_s"] = r3(last.Sub(aligned).Seconds())
			line["past_last_deadline_s"] = r3(last.Sub(aligned).Seconds() - float64(*ttl))
		}
		line["keys_left"], line["put_rate"] = left, *putRate
		line["puts_baseline"] = putSummary(bcmd, bout)
		line["puts_during"] = putSummary(dcmd, dout)
	default:
		die("unknown mode %q", *mode)
	}
	b, _ := json.Marshal(line)
	fmt.Println(string(b))
}
GO
  go_build "$dir" etcd-lease || return 1
  etcd_lease="$dir/etcd-lease"
}

lease_matrix() {
  local n="${LEASES:-100000}" ka="${TOTAL:-100000}" etcd=1
  if ! etcd_ok; then
    etcd=0
    echo "bench.sh: etcd skipped (ETCD=0, or etcd, etcdctl or $etcd_bench missing: scripts/etcd-bench-tool.sh builds the tool)" >&2
  fi
  for run in $(seq 1 "$runs"); do
    start_nodes
    bench "$ka" --conns 10 --clients 100 lease-keepalive
    bench "$ka" --conns 10 --clients 100 lease-keepalive --stream-per-keep-alive
    stop_nodes
    if [ "$etcd" = 1 ]; then
      start_etcd
      echo "bench.sh: etcd benchmark --conns 10 --clients 100 lease-keepalive --total $ka" >&2
      "$etcd_bench" --endpoints "$endpoints" --conns 10 --clients 100 lease-keepalive --total "$ka" 2>/dev/null |
        etcd_json lease-keepalive-once 10 100 "$ka" | tee -a "$results"
      stop_nodes
    fi
  done
  run=scale
  local ettl="${EXPIRY_TTL:-180}" scale_secs="${SCALE_SECS:-150}" go_ok=0
  if [ "$etcd" = 1 ]; then
    if build_etcd_lease; then go_ok=1; else echo "bench.sh: etcd's lease-scale and lease-expiry skipped (no go or golang-etcd-server-dev: scripts/etcd-bench-tool.sh installs them)" >&2; fi
  fi
  start_nodes
  bench 0 --conns 4 --clients 64 lease-scale --leases "$n" --ttl 60 --duration-secs "$scale_secs" --streams 4
  peak_rss raftkv-lease-scale
  stop_nodes
  if [ "$go_ok" = 1 ]; then
    start_etcd
    echo "bench.sh: etcd lease-scale of $n leases" >&2
    "$etcd_lease" --endpoints "$endpoints" --mode scale --conns 4 --clients 64 --leases "$n" --ttl 60 \
      --duration "${scale_secs}s" --streams 4 | tee -a "$results"
    peak_rss etcd-lease-scale
    stop_nodes
  fi
  start_nodes
  bench 0 --conns 4 --clients 64 lease-expiry --leases "$n" --ttl "$ettl" --put-rate 1000 --put-clients 10
  peak_rss raftkv-lease-expiry
  stop_nodes
  if [ "$go_ok" = 1 ]; then
    start_etcd
    echo "bench.sh: etcd lease-expiry of $n leases (TTL $ettl s)" >&2
    "$etcd_lease" --endpoints "$endpoints" --mode expiry --conns 4 --clients 64 --leases "$n" --ttl "$ettl" \
      --streams 4 --put-rate 1000 --bench "$etcd_bench" | tee -a "$results"
    peak_rss etcd-lease-expiry
    stop_nodes
  fi
}

if [ "$matrix" = lease ]; then
  lease_matrix
  echo "bench.sh: results appended to $results" >&2
  exit 0
fi

for run in $(seq 1 "$runs"); do
  start_nodes
  if [ "$matrix" = watch ]; then
    watch_matrix
    stop_nodes
    if [ "$run" = 1 ] && etcd_ok && ! build_etcd_watch; then
      echo "bench.sh: etcd skipped (no go or golang-etcd-server-dev: scripts/etcd-bench-tool.sh installs them)" >&2
    fi
    if etcd_ok && [ -n "$etcd_watch" ]; then
      start_etcd
      etcd_watch_matrix
      stop_nodes
    fi
    continue
  fi
  bench 10000 --conns 1 --clients 1 put
  bench 100000 --conns 10 --clients 100 put
  bench 100000 --conns 32 --clients 512 put
  bench 200000 --conns 10 --clients 100 range --consistency l
  bench 400000 --conns 10 --clients 100 range --consistency s
  bench 100000 --conns 10 --clients 100 txn-put
  if [ "$mode" = cluster ]; then
    i=1
    for pid in "${pids[@]}"; do
      kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      echo "{\"member\":\"node$i\",\"peak_rss_mb\":$((kb / 1024)),\"run\":$run}" | tee -a "$results"
      i=$((i + 1))
    done
  fi
  stop_nodes
done
echo "bench.sh: results appended to $results" >&2
