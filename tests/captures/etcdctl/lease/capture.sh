#!/usr/bin/env bash
# Captures the behaviour of real `etcdctl lease ...` and of real etcd's lease RPCs (etcd 3.4.23,
# Debian bookworm's etcd-server and etcd-client packages) into this directory. Not run by the
# tests: it needs the real etcd.
#
#   apt-get install -y etcd-server etcd-client
#   bash tests/captures/etcdctl/lease/capture.sh          # takes about 1 minute
#
# It starts its own single etcd member on a fresh data dir (client 127.0.0.1:22579, peer
# 127.0.0.1:22580, name lcap), runs every case in order against it (later cases depend on the
# leases, keys and revisions the earlier ones made, so run the whole script, never a single case),
# and stops etcd by its pid. See README.md for what each file holds.
set -u
set -m # job control: background jobs get their own process group and the default SIGINT action
# (without it bash starts background jobs with SIGINT ignored, and Go keeps it ignored)

OUT=${OUT:-$(cd "$(dirname "$0")" && pwd)}
CPORT=${CPORT:-22579}
PPORT=${PPORT:-22580}
EP=127.0.0.1:$CPORT

export ETCDCTL_API=3
unset ETCDCTL_ENDPOINTS ETCDCTL_WRITE_OUT ETCDCTL_HEX

WORK=$(mktemp -d /tmp/etcdctl-lease-capture.XXXXXX)
NICE="nice -n 10"

$NICE etcd --name lcap --data-dir "$WORK/data" \
	--listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
	--listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
	--initial-cluster "lcap=http://127.0.0.1:$PPORT" \
	>"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
trap 'kill $ETCD_PID 2>/dev/null; wait $ETCD_PID 2>/dev/null' EXIT
for _ in $(seq 100); do
	etcdctl --endpoints=$EP endpoint health >/dev/null 2>&1 && break
	sleep 0.1
done

E="etcdctl --endpoints=$EP"
# ctl: an op, its output kept in $WORK/ops.log (not part of the captures)
ctl() { etcdctl --endpoints=$EP "$@" >>"$WORK/ops.log" 2>&1; }
metric() { curl -s "http://$EP/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
watchers() { metric etcd_debugging_mvcc_watcher_total; }
currev() { etcdctl --endpoints=$EP get nonexistent-key -w json | sed 's/.*"revision":\([0-9]*\).*/\1/'; }
# grant TTL: grants a lease, prints its hex id (as etcdctl prints it)
grant() { etcdctl --endpoints=$EP lease grant "$1" | awk '{ print $2 }'; }
revoke_all() {
	local id
	for id in $(etcdctl --endpoints=$EP lease list | tail -n +2); do
		ctl lease revoke "$id"
	done
}
dec() { echo $((16#$1)); } # hex lease id -> decimal (for the gateway)

# tsv FIELDS...: one row of cases.tsv; newlines in a field become "; "
tsv() {
	local f out=()
	for f in "$@"; do
		f=${f#$'\n'}
		out+=("${f//$'\n'/; }")
	done
	printf '%s\t%s\t%s\t%s\n' "${out[@]}" >>"$OUT/cases.tsv"
}
printf '# case\texit code\tcommand (bash -c)\tnotes\n' >"$OUT/cases.tsv"

# run NAME COMMAND [NOTES]: runs COMMAND with bash -c, stdin /dev/null, and records it
run() {
	local name=$1 cmd=$2 notes=${3:-}
	bash -c "$cmd" </dev/null >"$OUT/$name.stdout" 2>"$OUT/$name.stderr"
	local rc=$?
	tsv "$name" "$rc" "$cmd" "$notes"
	echo "$name rc=$rc" >&2
}

# run_bg NAME COMMAND OPS MAXWAIT [NOTES]: starts COMMAND in the background (stdin /dev/null),
# sleeps 1 s, runs OPS, then lets it exit by itself for up to MAXWAIT seconds, else sends SIGINT.
# The exit code column is bash's status (128+n when killed by signal n).
run_bg() {
	local name=$1 cmd=$2 ops=$3 maxwait=$4 notes=${5:-} pid i used=none t0 rc
	t0=$(date +%s.%N)
	bash -c "$cmd" </dev/null >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
	pid=$!
	sleep 1
	eval "$ops"
	for ((i = 0; i < maxwait * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -INT "$pid"
		used=SIGINT
	fi
	wait "$pid"
	rc=$?
	local secs
	secs=$(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f')
	tsv "$name" "$rc" "$cmd" "ops after 1 s: ${ops:-none}; signal: $used; ran ${secs} s. $notes"
	echo "$name rc=$rc signal=$used" >&2
}

# gw NAME PATH JSON [NOTES]: one request to etcd's gRPC-JSON gateway
gw() {
	run "$1" "curl -s --max-time 5 -X POST http://$EP$2 -d '$3'" "${4:-}"
}

### help ##########################################################################################
run help_lease "$E lease --help"
run help_lease_nosub "$E lease" "no subcommand"
run help_lease_unknown_sub "$E lease bogus" "unknown subcommand"
run help_grant "$E lease grant --help"
run help_revoke "$E lease revoke --help"
run help_timetolive "$E lease timetolive --help"
run help_list "$E lease list --help"
run help_keepalive "$E lease keep-alive --help"

### lease list, 0 leases ###########################################################################
run list_empty "$E lease list"
run list_empty_json "$E lease list -w json"
run list_empty_fields "$E lease list -w fields"
run list_empty_table "$E lease list -w table"

### lease grant ####################################################################################
run grant_60 "$E lease grant 60"
run list_one "$E lease list" "one lease (grant_60's)"
run list_one_json "$E lease list -w json"
run grant_60_json "$E lease grant 60 -w json"
run grant_60_fields "$E lease grant 60 -w fields"
run grant_60_table "$E lease grant 60 -w table" "the lease IS granted; only the printing fails"
run grant_60_protobuf "$E lease grant 60 -w protobuf" "the lease IS granted; only the printing fails"
run grant_1 "$E lease grant 1" "below the minimum TTL (ceil(1.5 x 1 s election timeout) = 2 s)"
ID1=$(sed -n 's/^lease \([0-9a-f]*\) granted.*/\1/p' "$OUT/grant_1.stdout")
run grant_1_timetolive "$E lease timetolive $ID1" "right after grant_1"
run grant_1_timetolive_json "$E lease timetolive $ID1 -w json" "right after grant_1"
run grant_0 "$E lease grant 0"
run grant_0_json "$E lease grant 0 -w json"
run grant_neg5 "$E lease grant -5" "cobra takes -5 for a shorthand flag"
run grant_neg5_dashdash "$E lease grant -- -5"
run grant_max "$E lease grant 9000000000" "MaxLeaseTTL"
run grant_max_json "$E lease grant 9000000000 -w json"
run grant_max_plus1 "$E lease grant 9000000001"
run grant_max_plus1_json "$E lease grant 9000000001 -w json"
run grant_int64_overflow "$E lease grant 9223372036854775808"
run grant_abc "$E lease grant abc"
run grant_hex "$E lease grant 0x10" "TTL is parsed as decimal"
run grant_noarg "$E lease grant"
run grant_extra_arg "$E lease grant 10 20"

### lease timetolive ###############################################################################
T=$(grant 60)
run ttl_0keys "$E lease timetolive $T" "lease $T: TTL 60, no keys"
run ttl_0keys_keys "$E lease timetolive $T --keys"
run ttl_0keys_keys_json "$E lease timetolive $T --keys -w json"
run ttl_0keys_json "$E lease timetolive $T -w json"
run ttl_0keys_fields "$E lease timetolive $T -w fields"
run ttl_0keys_table "$E lease timetolive $T -w table"
ctl put foo1 v1 --lease=$T
run ttl_1key "$E lease timetolive $T --keys" "after put foo1 v1 --lease=$T"
run ttl_1key_json "$E lease timetolive $T --keys -w json"
run ttl_1key_fields "$E lease timetolive $T --keys -w fields"
ctl put foo2 v2 --lease=$T
run ttl_2keys "$E lease timetolive $T --keys" "after put foo2 v2 --lease=$T; the key order comes from a Go map (random)"
run ttl_2keys_json "$E lease timetolive $T --keys -w json"
run ttl_2keys_fields "$E lease timetolive $T --keys -w fields"
run ttl_2keys_nokeysflag "$E lease timetolive $T" "same lease, without --keys"
run ttl_2keys_nokeysflag_json "$E lease timetolive $T -w json" "same lease, without --keys"
ctl del foo1
run ttl_after_del_key "$E lease timetolive $T --keys" "after del foo1: a deleted key is detached"
ctl put foo2 v2b
run ttl_after_put_nolease "$E lease timetolive $T --keys" "after put foo2 v2b (no --lease): the key is detached"
ctl del foo2
run ttl_unknown "$E lease timetolive 1234abcd" "never granted"
run ttl_unknown_json "$E lease timetolive 1234abcd -w json"
run ttl_unknown_fields "$E lease timetolive 1234abcd -w fields"
run ttl_unknown_keys "$E lease timetolive 1234abcd --keys"
run ttl_unknown_keys_json "$E lease timetolive 1234abcd --keys -w json"
R=$(grant 60)
ctl lease revoke $R
run ttl_revoked "$E lease timetolive $R" "lease $R granted then revoked"
run ttl_revoked_json "$E lease timetolive $R -w json"
run ttl_zero_id "$E lease timetolive 0"
run ttl_bad_id "$E lease timetolive zz"
run ttl_0x_id "$E lease timetolive 0x$T" "0x prefix"
run ttl_upper_id "$E lease timetolive ${T^^}" "upper-case hex"
run ttl_no_id "$E lease timetolive"
run ttl_extra_arg "$E lease timetolive $T $T"

### lease list with 3 leases #######################################################################
revoke_all
L300=$(grant 300)
L100=$(grant 100)
L200=$(grant 200)
run list_three "$E lease list" "granted in this order: $L300 (TTL 300), $L100 (TTL 100), $L200 (TTL 200)"
run list_three_json "$E lease list -w json"
run list_three_fields "$E lease list -w fields"
run list_extra_arg "$E lease list foo" "an extra argument"
revoke_all

### lease revoke ###################################################################################
R1=$(grant 60)
R2=$(grant 60)
run revoke "$E lease revoke $R1"
run revoke_json "$E lease revoke $R2 -w json"
run revoke_again "$E lease revoke $R1" "second revoke of the same lease"
run revoke_again_json "$E lease revoke $R2 -w json" "second revoke of the same lease"
run revoke_unknown "$E lease revoke 1234abcd"
run revoke_bad_id "$E lease revoke zz"
run revoke_no_id "$E lease revoke"
run revoke_extra_arg "$E lease revoke 1 2"
R3=$(grant 60)
run revoke_fields "$E lease revoke $R3 -w fields"
R4=$(grant 60)
run revoke_table "$E lease revoke $R4 -w table" "the lease IS revoked; only the printing fails"

### lease keep-alive ###############################################################################
K=$(grant 60)
run keepalive_once "$E lease keep-alive --once $K" "lease $K: TTL 60"
run keepalive_once_json "$E lease keep-alive --once $K -w json"
run keepalive_once_fields "$E lease keep-alive --once $K -w fields"
run keepalive_once_table "$E lease keep-alive --once $K -w table"
run keepalive_once_unknown "$E lease keep-alive --once 1234abcd"
run keepalive_once_unknown_json "$E lease keep-alive --once 1234abcd -w json"
run keepalive_once_bad_id "$E lease keep-alive --once zz"
run keepalive_no_id "$E lease keep-alive"
run_bg keepalive_continuous "$E lease keep-alive $K" "sleep 2" 0 "TTL 60: the client renews every TTL/3 = 20 s"
K3=$(grant 3)
run_bg keepalive_continuous_ttl3 "$E lease keep-alive $K3" "sleep 2.5" 0 "lease $K3 with TTL 3: renewed every TTL/3 = 1 s"
run_bg keepalive_continuous_ttl3_json "$E lease keep-alive $K3 -w json" "sleep 2.5" 0 "same lease"
KR=$(grant 3)
run_bg keepalive_revoked "$E lease keep-alive $KR" "ctl lease revoke $KR" 5 "lease $KR TTL 3, revoked by another etcdctl while it runs"
KR=$(grant 3)
run_bg keepalive_revoked_json "$E lease keep-alive $KR -w json" "ctl lease revoke $KR" 5 "lease $KR TTL 3, revoked by another etcdctl while it runs"
KR=$(grant 60)
run_bg keepalive_revoked_ttl60 "$E lease keep-alive $KR" "ctl lease revoke $KR" 5 "lease $KR TTL 60, revoked while it runs: the next renewal is not due for 20 s"
run_bg keepalive_unknown "$E lease keep-alive 1234abcd" "" 5 "never granted"
run_bg keepalive_unknown_json "$E lease keep-alive 1234abcd -w json" "" 5 "never granted"
KE=$(grant 2)
sleep 3.5
run keepalive_once_expired "$E lease keep-alive --once $KE" "lease $KE TTL 2, 3.5 s after its grant (expired and revoked)"

### put / get with leases ##########################################################################
ctl del --prefix foo
P=$(grant 60)
run put_lease "$E put foo bar --lease=$P" "lease $P"
run put_lease_json "$E put foo bar --lease=$P -w json"
run get_leased "$E get foo"
run get_leased_json "$E get foo -w json"
run get_leased_fields "$E get foo -w fields"
run put_lease_upper "$E put foo bar --lease=${P^^}" "upper-case hex lease id"
run put_lease_unknown "$E put foo bar --lease=1234abcd"
run put_lease_unknown_json "$E put foo bar --lease=1234abcd -w json"
run put_lease_badhex "$E put foo bar --lease=zz"
run put_lease_zero "$E put foo0 bar --lease=0" "lease 0 means no lease"
run put_lease_zero_get_json "$E get foo0 -w json"
run put_ignore_lease_novalue "$E put foo --ignore-lease" "foo has lease $P; no value argument, stdin is /dev/null"
run put_ignore_lease_novalue_get_json "$E get foo -w json"
run put_ignore_lease "$E put foo baz --ignore-lease" "foo has lease $P"
run put_ignore_lease_get_json "$E get foo -w json"
run put_ignore_lease_with_lease "$E put foo qux --ignore-lease --lease=$P"
run put_ignore_lease_missing_key "$E put nokey v --ignore-lease"
run put_ignore_lease_value_both "$E put foo --ignore-lease --ignore-value" "keeps value and lease"
run put_ignore_lease_value_both_get_json "$E get foo -w json"
run put_ignore_lease_unleased_key "$E put foo0 v --ignore-lease" "foo0 has no lease"
run put_ignore_lease_unleased_key_get_json "$E get foo0 -w json"
ctl lease revoke $P
ctl del foo0

### revoke with 2 attached keys: one revision? ####################################################
V=$(grant 60)
ctl put foo1 v1 --lease=$V
ctl put foo2 v2 --lease=$V
ctl put foo3 v3
run revoke_keys_rev_before "$E get x -w json" "revision before the revoke; lease $V has foo1 and foo2, foo3 has no lease"
run revoke_keys_ttl_before "$E lease timetolive $V --keys"
W0=$(watchers)
$E watch --prefix foo </dev/null >"$OUT/revoke_keys_watch.stdout" 2>"$OUT/revoke_keys_watch.stderr" &
WP1=$!
$E watch --prefix foo -w json </dev/null >"$OUT/revoke_keys_watch_json.stdout" 2>"$OUT/revoke_keys_watch_json.stderr" &
WP2=$!
for _ in $(seq 50); do
	[ "$(watchers)" -ge $((W0 + 2)) ] 2>/dev/null && break
	sleep 0.1
done
sleep 0.2
run revoke_keys "$E lease revoke $V -w json" "the revoke itself (json: its header revision)"
sleep 0.8
kill -INT $WP1 $WP2
wait $WP1
tsv revoke_keys_watch $? "$E watch --prefix foo" "running during revoke_keys, then SIGINT"
wait $WP2
tsv revoke_keys_watch_json $? "$E watch --prefix foo -w json" "running during revoke_keys, then SIGINT"
run revoke_keys_rev_after "$E get x -w json" "revision after the revoke"
run revoke_keys_get_prefix "$E get --prefix foo" "after the revoke"
run revoke_keys_get_prefix_json "$E get --prefix foo -w json" "after the revoke"
V=$(grant 60)
run revoke_nokeys_rev_before "$E get x -w json" "lease $V has no keys"
run revoke_nokeys "$E lease revoke $V -w json"
run revoke_nokeys_rev_after "$E get x -w json" "does a revoke without keys make a revision?"
ctl del foo3

### expiry #########################################################################################
X=$(grant 3)
T0=$(date +%s.%N)
ctl put exp1 x --lease=$X
run expiry_ttl_start "$E lease timetolive $X --keys" "lease $X TTL 3 with key exp1, just after the put"
run expiry_ttl_start_json "$E lease timetolive $X --keys -w json"
# poll every 100 ms (plus the time the two etcdctl runs take): seconds since the grant, timetolive
# (simple), and the "Count" of get exp1
: >"$OUT/expiry_poll.stdout"
: >"$OUT/expiry_poll.stderr"
for _ in $(seq 80); do
	t=$(echo "$(date +%s.%N) - $T0" | bc | xargs printf '%.2f')
	ttl=$($E lease timetolive $X 2>>"$OUT/expiry_poll.stderr")
	n=$($E get exp1 -w fields 2>>"$OUT/expiry_poll.stderr" | sed -n 's/^"Count" : //p')
	printf '%s\t%s\tcount(exp1)=%s\n' "$t" "$ttl" "$n" >>"$OUT/expiry_poll.stdout"
	[ "$n" = 0 ] && [ "$ttl" = "lease $X already expired" ] && break
	sleep 0.1
done
tsv expiry_poll 0 "(loop) $E lease timetolive $X; $E get exp1 -w fields" "every 100 ms from the grant of lease $X (TTL 3); columns: seconds since grant, timetolive output, count of exp1"
run expiry_ttl_after "$E lease timetolive $X --keys" "after the expiry"
run expiry_ttl_after_json "$E lease timetolive $X --keys -w json" "after the expiry"
run expiry_get_after "$E get exp1 -w json"
run expiry_list_after "$E lease list"
run expiry_keepalive_once_after "$E lease keep-alive --once $X"
run expiry_revoke_after "$E lease revoke $X"
X=$(grant 2)
sleep 5
run expiry_ttl_min_after "$E lease timetolive $X" "lease $X granted with TTL 2, 5 s earlier"

### client-chosen ids, through the gRPC-JSON gateway ##############################################
gw gw_grant_1234 /v3/lease/grant '{"TTL":30,"ID":1234}' "1234 = 0x4d2"
gw gw_grant_1234_dup /v3/lease/grant '{"TTL":30,"ID":1234}' "the same id again"
gw gw_grant_1234_dup_ttl /v3/lease/grant '{"TTL":60,"ID":1234}' "the same id, another TTL"
run gw_ctl_ttl_1234 "$E lease timetolive 4d2 -w json"
gw gw_grant_negative /v3/lease/grant '{"TTL":30,"ID":-5}'
run gw_ctl_list_negative "$E lease list" "with leases 1234 and -5 (ids from gw_grant_*)"
run gw_ctl_list_negative_json "$E lease list -w json"
run gw_ctl_ttl_negative "$E lease timetolive -- -5"
run gw_ctl_ttl_negative_hex "$E lease timetolive -- -000000000000005" "the id as etcdctl lists it"
gw gw_grant_id0 /v3/lease/grant '{"TTL":30,"ID":0}' "ID 0: the server picks one"
gw gw_grant_noid /v3/lease/grant '{"TTL":30}'
gw gw_grant_ttl0 /v3/lease/grant '{"TTL":0,"ID":77}'
gw gw_grant_ttl_negative /v3/lease/grant '{"TTL":-10,"ID":78}'
gw gw_grant_ttl_too_large /v3/lease/grant '{"TTL":9000000001,"ID":79}'
gw gw_grant_ttl_too_large_dup /v3/lease/grant '{"TTL":9000000001,"ID":1234}' "which check first: exists or TTL?"
gw gw_grant_ttl_string /v3/lease/grant '{"TTL":"30","ID":"80"}' "int64s given as JSON strings"
gw gw_grant_bad_json /v3/lease/grant '{"TTL":' "malformed body"
gw gw_grant_max_id /v3/lease/grant '{"TTL":30,"ID":9223372036854775807}'
ctl put gwk1 a --lease=4d2
ctl put gwk2 b --lease=4d2
gw gw_timetolive_1234 /v3/lease/timetolive '{"ID":1234,"keys":true}' "lease 1234 with gwk1 and gwk2"
gw gw_timetolive_1234_nokeys /v3/lease/timetolive '{"ID":1234}'
gw gw_timetolive_kv_path /v3/kv/lease/timetolive '{"ID":1234}' "the alias path"
gw gw_timetolive_unknown /v3/lease/timetolive '{"ID":999999,"keys":true}'
gw gw_leases /v3/lease/leases '{}'
gw gw_leases_kv_path /v3/kv/lease/leases '{}'
gw gw_keepalive_1234 /v3/lease/keepalive '{"ID":1234}'
gw gw_keepalive_unknown /v3/lease/keepalive '{"ID":999999}'
gw gw_revoke_1234 /v3/lease/revoke '{"ID":1234}' "revokes gwk1 and gwk2"
gw gw_revoke_1234_again /v3/lease/revoke '{"ID":1234}'
gw gw_revoke_unknown /v3/lease/revoke '{"ID":999999}'
gw gw_revoke_kv_path /v3/kv/lease/revoke '{"ID":-5}' "the alias path, negative id"
gw gw_revoke_zero /v3/lease/revoke '{"ID":0}'
gw gw_put_unknown_lease /v3/kv/put '{"key":"Z3drMw==","value":"eA==","lease":999999}'
gw gw_put_ignore_lease_with_lease /v3/kv/put '{"key":"Z3drMw==","ignore_lease":true,"lease":5}'

echo "final revision $(currev)" >&2
kill $ETCD_PID
wait $ETCD_PID 2>/dev/null
trap - EXIT
rm -rf "$WORK"
