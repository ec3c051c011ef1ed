#!/usr/bin/env bash
# Captures the behaviour of real `etcdctl watch` (etcd 3.4.23, Debian bookworm's etcd-server and
# etcd-client packages) into this directory. Not run by the tests: it needs the real etcd.
#
#   apt-get install -y etcd-server etcd-client
#   bash tests/captures/etcdctl/watch/capture.sh          # takes about 3 minutes
#
# It starts its own single etcd member on a fresh data dir (client 127.0.0.1:22479, peer
# 127.0.0.1:22480), runs every case in order against it (later cases depend on the revisions the
# earlier ones made, so run the whole script, never a single case), and stops etcd by its pid.
# See README.md for what each file holds.
set -u
set -m # job control: background jobs get their own process group and the default SIGINT action
# (without it bash starts background jobs with SIGINT ignored, and Go keeps it ignored)

OUT=${OUT:-$(cd "$(dirname "$0")" && pwd)}
CPORT=${CPORT:-22479}
PPORT=${PPORT:-22480}
DEADPORT=${DEADPORT:-22499} # nothing listens here
EP=127.0.0.1:$CPORT
SETTLE=${SETTLE:-0.8} # seconds to let events arrive after the last op before the signal

export ETCDCTL_API=3
unset ETCDCTL_ENDPOINTS ETCDCTL_WATCH_KEY ETCDCTL_WATCH_RANGE_END ETCDCTL_WRITE_OUT ETCDCTL_HEX

WORK=$(mktemp -d /tmp/etcdctl-watch-capture.XXXXXX)
NICE="nice -n 10"

$NICE etcd --name wcap --data-dir "$WORK/data" \
	--listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
	--listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
	--initial-cluster "wcap=http://127.0.0.1:$PPORT" \
	--experimental-watch-progress-notify-interval=2s \
	>"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
trap 'kill $ETCD_PID 2>/dev/null; wait $ETCD_PID 2>/dev/null' EXIT
for _ in $(seq 100); do
	etcdctl --endpoints=$EP endpoint health >/dev/null 2>&1 && break
	sleep 0.1
done

# ctl: an op, its output kept in $WORK/ops.log (not part of the captures)
ctl() { etcdctl --endpoints=$EP "$@" >>"$WORK/ops.log" 2>&1; }
metric() { curl -s "http://$EP/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
watchers() { metric etcd_debugging_mvcc_watcher_total; }
currev() { etcdctl --endpoints=$EP get nonexistent-key -w json | sed 's/.*"revision":\([0-9]*\).*/\1/'; }

# wait_watchers TARGET PID: until the server counts TARGET watchers, PID has exited, or 5s passed
wait_watchers() {
	for _ in $(seq 50); do
		if [ "$(watchers)" -ge "$1" ] 2>/dev/null; then
			sleep 0.2
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# finish PID SIG MAXWAIT: let PID exit by itself for up to MAXWAIT seconds, else send SIG.
# Sets RC (bash's status: 128+n when killed by signal n) and USED (signal sent, or "none").
finish() {
	local pid=$1 sig=$2 maxwait=$3 i
	USED=none
	for ((i = 0; i < maxwait * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -"$sig" "$pid"
		USED=SIG$sig
	fi
	wait "$pid"
	RC=$?
}

# tsv FIELDS...: one row of cases.tsv; newlines in a field become "; "
tsv() {
	local f out=()
	for f in "$@"; do
		f=${f#$'\n'}
		out+=("${f//$'\n'/; }")
	done
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${out[@]}" >>"$OUT/cases.tsv"
}
printf '# case\texit code\tsignal used\tcommand (bash -c)\tops performed while it ran\trevision before\tseconds from start to exit\n' >"$OUT/cases.tsv"

# run_case NAME SIG COMMAND OPS [MAXWAIT]
#   Starts COMMAND (stdin /dev/null), waits until the server has one more watcher (or it exited),
#   runs OPS, waits SETTLE, then lets it exit by itself for MAXWAIT (default 0) seconds, else sends
#   SIG. ENV (if set) is a VAR=value prefix for the command.
run_case() {
	local name=$1 sig=$2 cmd=$3 ops=$4 maxwait=${5:-0}
	local rev0 w0 t0 pid
	rev0=$(currev)
	w0=$(watchers)
	t0=$(date +%s.%N)
	bash -c "$cmd" </dev/null >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
	pid=$!
	wait_watchers $((w0 + 1)) $pid
	eval "$ops"
	sleep "$SETTLE"
	finish $pid "$sig" "$maxwait"
	tsv "$name" "$RC" "$USED" "$cmd" "$ops" "$rev0" "$(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f')"
	echo "$name rc=$RC signal=$USED" >&2
}

# run_icase NAME SIG COMMAND SCRIPT [MAXWAIT]
#   Like run_case, but stdin is a fifo. SCRIPT is bash code using `line TEXT` (send one line),
#   `wline TEXT` (send a line that starts a watch and wait until the server has it) and `ctl ...`.
#   SIG=EOF closes stdin instead of signalling (and waits up to MAXWAIT, default 5s, then SIGINT).
run_icase() {
	local name=$1 sig=$2 cmd=$3 script=$4 maxwait=${5:-}
	local rev0 t0 pid fifo=$WORK/stdin.$1
	rev0=$(currev)
	IW=$(watchers)
	t0=$(date +%s.%N)
	mkfifo "$fifo"
	bash -c "$cmd" <"$fifo" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
	pid=$!
	IPID=$pid
	exec 3>"$fifo"
	eval "$script"
	sleep "$SETTLE"
	if [ "$sig" = EOF ]; then
		exec 3>&-
		finish $pid INT "${maxwait:-5}"
		[ "$USED" = none ] && USED="none (stdin closed)"
	else
		finish $pid "$sig" "${maxwait:-0}"
		exec 3>&-
	fi
	tsv "$name" "$RC" "$USED" "$cmd <<stdin" "$script" "$rev0" "$(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f')"
	echo "$name rc=$RC signal=$USED" >&2
}
line() { (printf '%s\n' "$1" >&3) 2>/dev/null; sleep 0.3; }
wline() {
	local w
	w=$(watchers)
	(printf '%s\n' "$1" >&3) 2>/dev/null
	wait_watchers $((w + 1)) $IPID
}

# run_gw NAME SCRIPT: the raw server side, through etcd's gRPC-JSON gateway (POST /v3/watch on
# the client port; one JSON WatchRequest per line, one JSON WatchResponse per line back).
# SCRIPT uses `req JSON` (send a request), `wreq JSON` (send a create_request and wait until the
# server has the watcher) and `ctl ...`. Keys/values are base64, int64s are strings, and fields
# with default values (watch_id 0, type PUT, created false...) are left out by the gateway.
run_gw() {
	local name=$1 script=$2 rev0 pid fifo=$WORK/gw.$1
	rev0=$(currev)
	IW=$(watchers)
	mkfifo "$fifo"
	curl -sN -X POST -T - "http://$EP/v3/watch" <"$fifo" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
	pid=$!
	IPID=$pid
	exec 4>"$fifo"
	eval "$script"
	sleep "$SETTLE"
	exec 4>&-
	sleep 1.5 # curl (HTTP/1.1) writes the responses out only once its upload has ended
	kill -INT $pid
	wait $pid
	RC=$?
	tsv "$name" "$RC" "SIGINT (to curl)" "curl -sN -X POST -T - http://$EP/v3/watch <<stdin" "$script" "$rev0" "-"
	echo "$name rc=$RC" >&2
}
req() { printf '%s\n' "$1" >&4; sleep 0.3; }
wreq() {
	local w
	w=$(watchers)
	printf '%s\n' "$1" >&4
	wait_watchers $((w + 1)) $IPID
}

E="etcdctl --endpoints=$EP"
DEAD="etcdctl --endpoints=127.0.0.1:$DEADPORT"
SH_ENV="sh -c 'env | grep ^ETCD_WATCH_ | sort; echo ---'"

etcdctl --endpoints=$EP watch --help >"$OUT/help.stdout" 2>"$OUT/help.stderr"
tsv help $? none "$E watch --help" "" "$(currev)" "-"
etcdctl watch -h >"$OUT/help_short.stdout" 2>"$OUT/help_short.stderr"
tsv help_short $? none "etcdctl watch -h" "" "$(currev)" "-"

### simple / output formats ###################################################################
OPS_BASIC='ctl put foo bar; ctl put foo baz; ctl del foo'
run_case simple INT "$E watch foo" "$OPS_BASIC"
run_case simple_sigterm TERM "$E watch foo" "$OPS_BASIC"
run_case simple_sighup HUP "$E watch foo" "ctl put foo bar"
run_case json INT "$E watch foo -w json" "$OPS_BASIC"
run_case json_sigterm TERM "$E watch foo -w json" "ctl put foo bar"
run_case fields INT "$E watch foo -w fields" "$OPS_BASIC"
run_case table INT "$E watch foo -w table" "ctl put foo bar"
run_case table_no_event INT "$E watch foo -w table" "" 2
run_case protobuf INT "$E watch foo -w protobuf" "ctl put foo bar"
run_case hex INT "$E watch --hex foo" "ctl put foo bar; ctl del foo"
run_case no_events INT "$E watch foo" "ctl put other x"
run_case flags_after_key INT "$E watch foo --prev-kv -w json" "ctl put foo p1; ctl put foo p2"
run_case value_special INT "$E watch foo" "ctl put foo 'two words'; ctl put foo \$'line1\\nline2'; ctl put foo ''"
run_case value_special_json INT "$E watch foo -w json" "ctl put foo 'two words'; ctl put foo \$'line1\\nline2'; ctl put foo ''"

### ranges ####################################################################################
OPS_PREFIX='ctl put foo a; ctl put fop b; ctl put fa c; ctl put fo d; ctl del foo'
run_case prefix INT "$E watch --prefix fo" "$OPS_PREFIX"
run_case prefix_json INT "$E watch --prefix fo -w json" "$OPS_PREFIX"
OPS_RANGE='ctl put foo 1; ctl put foo1 2; ctl put fop 3; ctl put fon 4; ctl put fo 5'
run_case range INT "$E watch foo fop" "$OPS_RANGE"
run_case range_json INT "$E watch foo fop -w json" "$OPS_RANGE"
run_case prefix_empty INT "$E watch --prefix ''" "ctl put zz 1; ctl put aa 2"
run_case three_args INT "$E watch foo fop fzz" "ctl put foo 1; ctl put fon 2; ctl put fop 3"
run_case del_prefix_one_rev INT "$E watch --prefix dp -w json" "ctl put dp/a 1; ctl put dp/b 2; ctl del --prefix dp"
run_case del_prefix_one_rev_simple INT "$E watch --prefix dp" "ctl put dp/a 1; ctl put dp/b 2; ctl del --prefix dp"

### prev-kv ###################################################################################
OPS_PREV='ctl del pk; ctl put pk v1; ctl put pk v2; ctl del pk'
run_case prevkv INT "$E watch --prev-kv pk" "$OPS_PREV"
run_case prevkv_json INT "$E watch --prev-kv pk -w json" "$OPS_PREV"
run_case prevkv_fields INT "$E watch --prev-kv pk -w fields" "ctl put pk v1; ctl put pk v2"

### txn: several events in one revision #######################################################
OPS_TXN="printf '\\nput tx/a 1\\nput tx/b 2\\n\\n\\n' | ctl txn"
run_case txn_prefix INT "$E watch --prefix tx" "$OPS_TXN"
run_case txn_prefix_json INT "$E watch --prefix tx -w json" "$OPS_TXN"
run_case txn_put_del_json INT "$E watch --prefix tx -w json" "printf '\\nput tx/c 3\\ndel tx/a\\n\\n\\n' | ctl txn"

### history: --rev ############################################################################
run_case rev1_history INT "$E watch --rev 1 foo" "ctl put foo after-start"
run_case rev1_history_json INT "$E watch --rev 1 foo -w json" ""
run_case rev1_history_prefix_json INT "$E watch --rev 1 --prefix tx -w json" ""
run_case rev1_history_prevkv INT "$E watch --rev 1 --prev-kv pk" ""
REV=$(currev)
run_case rev_future INT "$E watch --rev $((REV + 2)) foo -w json" "ctl put foo f1; ctl put foo f2; ctl put foo f3"
run_case rev_zero INT "$E watch --rev 0 foo" "ctl put foo z"
run_case rev_negative INT "$E watch --rev -1 foo" "ctl put foo n1" 3
run_case rev_negative_json INT "$E watch --rev -5 foo -w json" "ctl put foo n2" 3
run_case rev_nonnumeric INT "$E watch --rev abc foo" "" 3

### compaction ################################################################################
ctl put cmp c1
ctl put cmp c2
ctl put cmp c3
COMPACT=$(currev)
ctl compaction "$COMPACT"
echo "compacted at $COMPACT" >&2
run_case compacted INT "$E watch --rev 2 foo" "" 5
run_case compacted_json INT "$E watch --rev 2 foo -w json" "" 5
run_case compacted_fields INT "$E watch --rev 2 foo -w fields" "" 5
run_case compacted_rev_minus1 INT "$E watch --rev $((COMPACT - 1)) cmp" "" 5
run_case compacted_rev_equal INT "$E watch --rev $COMPACT cmp" "ctl put cmp c4" 3
run_case compacted_rev_equal_json INT "$E watch --rev $COMPACT cmp -w json" "" 3
run_case compacted_rev_negative1 INT "$E watch --rev -1 foo" "" 5
run_case compacted_rev_negative1_json INT "$E watch --rev -1 foo -w json" "" 5
run_case compacted_exec INT "$E watch --rev 2 foo -- echo hi" "" 5
run_case compacted_later INT "$E watch cmp -w json" "ctl put cmp c5; ctl compaction \$(currev)" 3

### progress notify ###########################################################################
run_case progress_notify_flag INT "$E watch --progress-notify foo" "" 3

### exec form #################################################################################
run_case exec_echo INT "$E watch foo -- echo hello" "ctl put foo bar; ctl del foo"
run_case exec_env INT "$E watch foo -- $SH_ENV" "ctl put foo bar; ctl put foo 'a \"q\" b'; ctl del foo"
run_case exec_env_prevkv INT "$E watch --prev-kv foo -- $SH_ENV" "ctl put foo x1; ctl put foo x2"
run_case exec_env_txn INT "$E watch --prefix tx -- $SH_ENV" "$OPS_TXN"
run_case exec_env_json INT "$E watch foo -w json -- $SH_ENV" "ctl put foo j"
run_case exec_env_hex INT "$E watch --hex foo -- $SH_ENV" "ctl put foo h"
run_case exec_env_binary INT "$E watch foo -- $SH_ENV" "ctl put foo \$'\\x01\\xff\\tz'"
run_case exec_flags_after INT "$E watch foo --prev-kv -- echo hi" "ctl put foo y1; ctl put foo y2"
run_case exec_range INT "$E watch foo fop -- echo hi" "ctl put foo r"
run_case exec_false INT "$E watch foo -- false" "ctl put foo e1; ctl put foo e2" 3
run_case exec_notfound INT "$E watch foo -- /nonexistent/cmd" "ctl put foo e3" 3
run_case exec_arg_equals_key INT "$E watch foo -- echo foo" "ctl put foo k"
run_case sep_no_cmd INT "$E watch foo --" "" 3
run_case sep_no_key INT "$E watch -- echo hi" "" 3
run_case key_dashdash_only INT "$E watch --" "" 3

### ETCDCTL_WATCH_KEY / ETCDCTL_WATCH_RANGE_END ################################################
run_case env_key INT "ETCDCTL_WATCH_KEY=foo $E watch" "ctl put foo ek"
run_case env_key_range INT "ETCDCTL_WATCH_KEY=foo ETCDCTL_WATCH_RANGE_END=fop $E watch" "ctl put foo1 er; ctl put fop no"
run_case env_key_exec INT "ETCDCTL_WATCH_KEY=foo $E watch -- echo hi" "ctl put foo ex"
run_case env_key_conflict INT "ETCDCTL_WATCH_KEY=foo $E watch foo" "" 3
run_case env_key_conflict_exec INT "ETCDCTL_WATCH_KEY=foo $E watch foo -- echo hi" "" 3
run_case env_range_no_key INT "ETCDCTL_WATCH_RANGE_END=fop $E watch foo" "" 3

### bad input #################################################################################
run_case no_key INT "$E watch" "" 3
run_case no_key_json INT "$E watch -w json" "" 3
run_case prefix_and_range INT "$E watch --prefix foo bar" "" 3
run_case unknown_flag INT "$E watch --bogus foo" "" 3
run_case unknown_shorthand INT "$E watch -x foo" "" 3
run_case bad_write_out INT "$E watch foo -w yaml" "ctl put foo w" 3
run_case prevkv_bad_value INT "$E watch --prev-kv=maybe foo" "" 3

### dead endpoint #############################################################################
run_case dead_endpoint INT "$DEAD watch foo" "" 15
run_case dead_endpoint_timeouts INT "$DEAD --dial-timeout=1s --command-timeout=1s watch foo" "" 15
run_case dead_endpoint_json INT "$DEAD watch foo -w json" "" 15
run_case dead_endpoint_no_key INT "$DEAD watch" "" 5
run_case dead_endpoint_interactive_eof INT "$DEAD watch -i" "" 10

### interactive ###############################################################################
run_icase interactive INT "$E watch -i" '
wline "watch foo"
ctl put foo i1
wline "watch --prefix bar"
ctl put bar/x i2; ctl put foo i3
line progress
line cancel
line ""
line "watch"
line "watch --prefix foo bar"
line hello
line "   "
ctl put foo i4'
run_icase interactive_eof EOF "$E watch -i" '
wline "watch foo"
ctl put foo e1' 5
run_icase interactive_json INT "$E watch -i -w json" '
wline "watch foo"
wline "watch --prev-kv foo"
ctl put foo j1
line progress'
run_icase interactive_progress_only INT "$E watch -i" '
line progress
line progress'
run_icase interactive_progress_json INT "$E watch -i -w json" '
wline "watch foo"
line progress'
run_icase interactive_flags INT "$E watch -i" '
ctl put foo f0
wline "watch --rev $(currev) foo"
wline "watch foo fop"
wline "watch --prev-kv --prefix fo"
ctl put foo f1'
run_icase interactive_exec INT "$E watch -i" '
wline "watch foo -- sh -c \"env | grep ^ETCD_WATCH_ | sort\""
ctl put foo x'
run_icase interactive_exec_echo INT "$E watch -i" '
wline "watch foo -- echo hi there"
ctl put foo x'
run_icase interactive_compacted INT "$E watch -i" "
line 'watch --rev 2 foo'
wline 'watch foo'
ctl put foo after"
run_icase interactive_bad_flag INT "$E watch -i" '
wline "watch foo"
line "watch --bogus foo"
ctl put foo never' 3
run_icase interactive_sep_no_cmd INT "$E watch -i" '
line "watch foo --"' 3
run_icase interactive_not_watch_first INT "$E watch -i" '
line "put foo bar"
line "WATCH foo"' 3
run_icase interactive_quotes INT "$E watch -i" "
wline 'watch \"foo\"'
wline \"watch 'foo'\"
ctl put foo q1"
run_icase interactive_single_quote INT "$E watch -i" "
wline \"watch --prev-kv 'foo'\"
ctl put foo sq1; ctl put f sq2"
run_icase interactive_cli_key INT "$E watch -i foo" '
ctl put foo ignored
wline "watch bar"
ctl put bar b1'
run_icase interactive_cli_prefix INT "$E watch -i --prefix" '
wline "watch fo"
ctl put foo p1'
run_icase interactive_env_key INT "ETCDCTL_WATCH_KEY=foo $E watch -i" '
wline "watch"
ctl put foo ek1'
run_icase interactive_idle INT "$E watch -i" ''
run_case interactive_devnull INT "$E watch -i" "" 5
run_icase interactive_empty_stdin EOF "$E watch -i" '' 5

### raw server responses (gRPC-JSON gateway) ##################################################
# base64: foo=Zm9v fop=Zm9w bar=YmFy tx=dHg= tx0=dHgw (prefix end of tx) cmp=Y21w
run_gw gw_basic '
wreq "{\"create_request\":{\"key\":\"Zm9v\"}}"
ctl put foo bar; ctl put foo baz; ctl del foo'
run_gw gw_prevkv '
wreq "{\"create_request\":{\"key\":\"Zm9v\",\"prev_kv\":true}}"
ctl put foo bar; ctl put foo baz; ctl del foo'
run_gw gw_two_watches '
wreq "{\"create_request\":{\"key\":\"Zm9v\"}}"
wreq "{\"create_request\":{\"key\":\"YmFy\"}}"
wreq "{\"create_request\":{\"key\":\"Zm9v\"}}"
ctl put foo 1; ctl put bar 2
req "{\"cancel_request\":{\"watch_id\":\"1\"}}"
ctl put bar 3; ctl put foo 4
req "{\"cancel_request\":{\"watch_id\":\"7\"}}"'
run_gw gw_txn_prefix "
wreq '{\"create_request\":{\"key\":\"dHg=\",\"range_end\":\"dHgw\"}}'
$OPS_TXN"
run_gw gw_history '
ctl put cmp h1; ctl put cmp h2
wreq "{\"create_request\":{\"key\":\"Y21w\",\"start_revision\":\"$(($(currev) - 1))\"}}"'
run_gw gw_compacted '
req "{\"create_request\":{\"key\":\"Zm9v\",\"start_revision\":\"2\"}}"
ctl put foo after'
run_gw gw_progress_request '
wreq "{\"create_request\":{\"key\":\"Zm9v\"}}"
wreq "{\"create_request\":{\"key\":\"YmFy\"}}"
req "{\"progress_request\":{}}"
ctl put other x
req "{\"progress_request\":{}}"'
run_gw gw_progress_notify '
wreq "{\"create_request\":{\"key\":\"Zm9v\",\"progress_notify\":true}}"
ctl put other y
sleep 5'
run_gw gw_filter_nodelete '
wreq "{\"create_request\":{\"key\":\"Zm9v\",\"filters\":[\"NODELETE\"]}}"
ctl put foo a; ctl del foo'

### the server goes away under a running watch (last: it stops etcd) ###########################
echo "final revision $(currev)" >&2
run_case server_stops INT "$E watch foo" "ctl put foo before-stop; kill \$ETCD_PID; wait \$ETCD_PID" 10
trap - EXIT
rm -rf "$WORK"
