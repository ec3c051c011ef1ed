#!/usr/bin/env bash
# Captures the behaviour of real `etcdctl user|role|auth ...` and of requests made with auth on
# (etcd 3.4.23, Debian bookworm's etcd-server and etcd-client packages) into this directory. Not
# run by the tests: it needs the real etcd.
#
#   apt-get install -y etcd-server etcd-client
#   bash tests/captures/etcdctl/auth/capture.sh          # takes well under a minute
#
# It starts one single-member etcd a1 (client 127.0.0.1:22801, peer 127.0.0.1:22802,
# `--initial-cluster-token authcap`, data dir $WORK/a1.data), then runs the cases in order. Cases
# depend on the state earlier cases made (users, roles, auth on/off), so run the whole script,
# never a single case. The etcd is stopped by its pid (also on exit/interrupt, through the trap).
# See README.md.
#
# Every command runs with the working directory $WORK (/tmp/etcdctl-auth-capture, emptied at the
# start and removed at the end unless KEEP_WORK is set), so the paths in the captures are stable.
#
# Ports (all 127.0.0.1): 22801 client, 22802 peer, 22809 unused. Nothing else in 22800-22809.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
H=127.0.0.1
EP=$H:22801
PURL=http://$H:22802

export ETCDCTL_API=3
unset ETCDCTL_ENDPOINTS ETCDCTL_WRITE_OUT ETCDCTL_HEX ETCDCTL_USER ETCDCTL_PASSWORD

WORK=/tmp/etcdctl-auth-capture
rm -rf "$WORK"
mkdir -p "$WORK" || exit 1
declare -A PID=()

cleanup() {
	local n
	for n in "${!PID[@]}"; do
		kill "${PID[$n]}" 2>/dev/null
	done
	for n in "${!PID[@]}"; do
		wait "${PID[$n]}" 2>/dev/null
	done
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME DATADIR CLIENTPORT PEERPORT [EXTRA ETCD FLAGS...]: one etcd in the background, cwd $WORK
start() {
	local name=$1 dir=$2 c=http://$H:$3 p=http://$H:$4
	shift 4
	(cd "$WORK" && exec etcd --name "$name" --data-dir "$dir" \
		--listen-client-urls "$c" --advertise-client-urls "$c" \
		--listen-peer-urls "$p" "$@" >"$WORK/$name.log" 2>&1) &
	PID[$name]=$!
}
stop() {
	kill "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}" 2>/dev/null
	unset "PID[$1]"
}
healthy() {
	local i
	for ((i = 0; i < 100; i++)); do
		etcdctl --endpoints="$1" --dial-timeout=1s --command-timeout=1s endpoint health >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "endpoint $1 not healthy" >&2
	return 1
}

E="etcdctl --endpoints=$EP"
ER="$E --user root:rootpw"
EU="$E --user u1:pw"
ctl() { etcdctl --endpoints=$EP "$@" >>"$WORK/ops.log" 2>&1; }

tsv() {
	local f out=()
	for f in "$@"; do
		f=${f#$'\n'}
		out+=("${f//$'\n'/; }")
	done
	printf '%s\t%s\t%s\t%s\n' "${out[@]}" >>"$OUT/cases.tsv"
}

# run NAME COMMAND [NOTES]: runs COMMAND with bash -c in $WORK, stdin /dev/null, and records it.
run() {
	local name=$1 cmd=$2 notes=${3:-}
	(cd "$WORK" && bash -c "$cmd") </dev/null >"$OUT/$name.stdout" 2>"$OUT/$name.stderr"
	local rc=$?
	tsv "$name" "$rc" "$cmd" "$notes"
	echo "$name rc=$rc" >&2
	return $rc
}

rm -f "$OUT"/*.stdout "$OUT"/*.stderr
printf '# case\texit code\tcommand (bash -c, cwd %s)\tnotes\n' "$WORK" >"$OUT/cases.tsv"

start a1 a1.data 22801 22802 --initial-advertise-peer-urls $PURL \
	--initial-cluster a1=$PURL --initial-cluster-state new --initial-cluster-token authcap
healthy $EP || exit 1
ctl put k1 v1
ctl put k3 v3
ctl put k5 v5
ctl put k9 v9
ctl put z1 zv

### help ##########################################################################################
run help_user "etcdctl user --help"
run help_user_add "etcdctl user add --help"
run help_role_grant "etcdctl role grant-permission --help"
run help_auth "etcdctl auth --help"

### users (auth off) ##############################################################################
run user_add_root_prompt "printf 'rootpw\nrootpw\n' | $E user add root" "password on a piped stdin, interactive mode (default): speakeasy needs a terminal?"
run user_add_root_stdin "printf 'rootpw\n' | $E user add root --interactive=false" "--interactive=false: password read from stdin with Scanf(%s)"
run user_add_root_dup "$E user add root --new-user-password=x" "root exists"
run user_add_flag_pw "$E user add u0 --new-user-password=pw0" "--new-user-password"
run user_add_colon "$E user add u1:pw" "name:password form"
run user_add_colon_json "$E user add u3:pw -w json" "-w json"
run user_add_colon_table "$E user add u4:pw -w table" "-w table"
run user_add_nopw "$E user add --no-password u2" "--no-password"
run user_add_dup "$E user add u1:pw" "u1 exists"
run user_add_dup_json "$E user add u1:pw -w json" "u1 exists, -w json"
run user_add_empty_colon "$E user add :pw" "empty name"
run user_add_empty_pw_stdin "$E user add u5 --interactive=false" "stdin empty: empty password"
run user_add_no_args "$E user add"
run user_get_root "$E user get root"
run user_get_root_json "$E user get root -w json"
run user_get_root_table "$E user get root -w table"
run user_get_u1_detail "$E user get u1 --detail" "u1 has no roles yet"
run user_get_missing "$E user get nouser"
run user_get_missing_json "$E user get nouser -w json"
run user_get_no_args "$E user get"
run user_list "$E user list"
run user_list_json "$E user list -w json"
run user_list_table "$E user list -w table"
run user_passwd_u1 "printf 'pw2\n' | $E user passwd u1 --interactive=false" "u1's password becomes pw2"
run user_passwd_u1_back "printf 'pw\n' | $E user passwd u1 --interactive=false -w json" "back to pw, -w json"
run user_passwd_prompt "printf 'pw\npw\n' | $E user passwd u1" "interactive mode with piped stdin"
run user_passwd_missing "printf 'pw\n' | $E user passwd nouser --interactive=false"
run user_delete_u4 "$E user delete u4"
run user_delete_u3_json "$E user delete u3 -w json"
run user_delete_missing "$E user delete nouser"
run user_delete_no_args "$E user delete"

### roles (auth off) ##############################################################################
run role_add_r1 "$E role add r1"
run role_add_r2_json "$E role add r2 -w json"
run role_add_r3_table "$E role add r3 -w table"
run role_add_dup "$E role add r1" "r1 exists"
run role_add_empty "$E role add ''" "empty name"
run role_add_no_args "$E role add"
run role_get_r1_empty "$E role get r1" "no permissions yet"
run role_get_missing "$E role get norole"
run role_list "$E role list"
run role_list_json "$E role list -w json"
run role_list_table "$E role list -w table"
run role_grant_read_k1 "$E role grant-permission r1 read k1"
run role_grant_rw_range "$E role grant-permission r1 readwrite k1 k5" "[k1, k5)"
run role_grant_write_prefix "$E role grant-permission r1 write w --prefix" "prefix w"
run role_grant_read_fromkey "$E role grant-permission r1 read x --from-key" "[x, end)"
run role_grant_read_json "$E role grant-permission r2 read k9 -w json"
run role_grant_write_only "$E role grant-permission r2 write k7" "r2: write-only k7"
run role_grant_r2_adjacent "$E role grant-permission r2 read k5 k7" "r2: read [k5, k7), adjacent to r1's [k1, k5)"
run role_grant_bad_type "$E role grant-permission r1 bogus k1"
run role_grant_uppercase "$E role grant-permission r1 READ k1"
run role_grant_missing_role "$E role grant-permission norole read k1"
run role_grant_prefix_and_range "$E role grant-permission r1 read a b --prefix"
run role_grant_too_few "$E role grant-permission r1 read"
run role_grant_all_keys_fromkey "$E role grant-permission r3 read '' --from-key" "r3: every key (from the empty key)"
run role_get_r1 "$E role get r1"
run role_get_r1_json "$E role get r1 -w json"
run role_get_r1_table "$E role get r1 -w table"
run role_get_r3 "$E role get r3"
run role_revoke_k1 "$E role revoke-permission r1 k1" "read k1 was granted"
run role_revoke_k1_again "$E role revoke-permission r1 k1" "already revoked"
run role_revoke_range_json "$E role revoke-permission r3 '' --from-key -w json"
run role_revoke_missing_role "$E role revoke-permission norole k1"
run role_revoke_prefix "$E role revoke-permission r1 w --prefix"
run role_get_r1_after_revoke "$E role get r1"
run role_delete_r3 "$E role delete r3"
run role_delete_missing "$E role delete norole"

### grant / revoke roles ##########################################################################
run user_grant_r1 "$E user grant-role u1 r1"
run user_grant_r2_json "$E user grant-role u1 r2 -w json"
run user_grant_dup "$E user grant-role u1 r1" "already granted"
run user_grant_missing_role "$E user grant-role u1 norole"
run user_grant_missing_user "$E user grant-role nouser r1"
run user_grant_no_args "$E user grant-role u1"
run user_get_u1_detail_roles "$E user get u1 --detail" "u1 has r1 r2"
run user_get_u1_detail_json "$E user get u1 --detail -w json"
run user_get_u1_roles "$E user get u1"
run user_get_u1_json "$E user get u1 -w json"
run user_get_u1_table "$E user get u1 -w table"
run user_grant_r2_u0 "$E user grant-role u0 r2"
run user_revoke_r2_u0 "$E user revoke-role u0 r2"
run user_revoke_not_granted "$E user revoke-role u0 r2" "not granted"
run user_revoke_missing_user "$E user revoke-role nouser r1"
run user_revoke_missing_role "$E user revoke-role u1 norole"

### auth enable / status / disable ################################################################
run auth_status_off "$E auth status" "3.4 has no auth status subcommand: prints the auth help"
run auth_status_off_json "$E auth status -w json" "3.4 has no auth status subcommand: prints the auth help"
ctl user delete root
run auth_enable_no_root "$E auth enable" "root deleted first"
ctl user add root:rootpw
run auth_enable_root_no_role "$E auth enable" "root exists again, without the root role: etcdctl grants it"
run user_get_root_after_enable "$ER user get root" "auth on"
run auth_enable_again "$ER auth enable" "already on"
run auth_status_on "$ER auth status" "3.4 has no auth status subcommand: prints the auth help"
run auth_status_on_json "$ER auth status -w json" "3.4 has no auth status subcommand: prints the auth help"
run auth_status_on_nouser "$E auth status" "no credentials; 3.4 has no auth status subcommand: prints the auth help"
run auth_disable_nouser "$E auth disable" "no credentials"
run auth_disable_u1 "$EU auth disable" "non-root"
run auth_disable_root "$ER auth disable"
run auth_disable_again "$E auth disable" "already off"
run auth_status_after_disable "$E auth status" "3.4 has no auth status subcommand: prints the auth help"
run auth_enable_root_again "$E auth enable" "root has the root role now"
run role_get_root "$ER role get root"
run user_get_root_detail "$ER user get root --detail"

### with auth on ##################################################################################
run get_nouser "$E get k1" "no credentials"
run get_nouser_json "$E get k1 -w json" "no credentials"
run put_nouser "$E put k1 x" "no credentials"
run get_u1_ok "$EU get k1" "r1: readwrite [k1,k5)"
run get_u1_ok_range "$EU get k1 k5" "exactly the granted range"
run get_u1_subrange "$EU get k2 k4" "inside [k1,k5)"
run get_u1_forbidden "$EU get k8" "k8 not granted"
run get_u1_forbidden_range "$EU get k0 k3" "starts before k1"
run get_u1_prefix_k "$EU get k --prefix" "prefix k: wider"
run get_u1_from_key_x "$EU get x --from-key" "r1: read [x, end)"
run get_u1_from_key_y "$EU get y --from-key" "inside [x, end)"
run get_u1_from_key_w "$EU get w --from-key" "wider than [x,end)"
run get_u1_k9 "$EU get k9" "r2: read k9"
run get_u1_merged "$EU get k1 k7" "[k1,k5) from r1 + [k5,k7) from r2: merged across roles"
run get_u1_merged_too_wide "$EU get k1 k8" "[k1,k8) not covered by the merged [k1,k7)"
run get_u1_wrong_pw "$E --user u1:bad get k1" "wrong password"
run get_nouser_missing "$E --user nouser:pw get k1" "no such user"
run get_u2_nopw "$E --user u2: get k1" "u2 was made with --no-password"
run get_u1_no_colon "printf 'pw\n' | $E --user u1 get k1" "--user without :password: prompt"
run get_u1_password_flag "$E --user u1 --password pw get k1" "--password flag"
run put_u1_ok "$EU put k2 v2" "readwrite"
run put_u1_forbidden "$EU put k9 x" "read-only k9"
run put_u1_forbidden_json "$EU put k9 x -w json" "read-only k9"
run put_u1_k7_writeonly "$EU put k7 v7" "r2: write-only k7"
run get_u1_k7_writeonly "$EU get k7" "write-only k7"
run del_u1_prevkv_writeonly "$EU del k7 --prev-kv" "write-only k7: --prev-kv needs read"
run del_u1_writeonly "$EU del k7" "write-only k7, no --prev-kv"
run del_u1_forbidden "$EU del k9" "read-only k9"
run put_u1_prevkv_writeonly "$EU put k7 v7 --prev-kv" "write-only k7, --prev-kv"
run txn_u1_else_forbidden "printf 'value(\"k1\") = \"v1\"\n\nput k2 ok\n\nput z1 bad\n\n' | $EU txn" "compare true (then: put k2, permitted); the else branch writes z1 (r1 has only read on [x, end)): the whole txn is refused"
run txn_u1_ok "printf 'value(\"k1\") = \"v1\"\n\nput k2 ok\n\nget k3\n\n' | $EU txn" "all ops permitted"
run txn_u1_cmp_forbidden "printf 'mod(\"a\") = \"0\"\n\nput k2 ok\n\n\n' | $EU txn" "compare on key a (no permission at all); compare is true (a missing)"
run watch_u1_forbidden "timeout 3 $EU watch a" "key a: no permission at all; timeout 3"
run watch_u1_readable_z1 "timeout 3 $EU watch z1" "z1 is inside r1's read [x, end); timeout 3 (no events)"
run watch_u1_ok "timeout 3 $EU watch k1" "permitted; timeout 3 (no events)"
run watch_u1_forbidden_prefix "timeout 3 $EU watch k --prefix" "prefix k is wider than the grants; timeout 3"
run watch_nouser "timeout 3 $E watch k1" "no credentials; timeout 3"
run lease_grant_u1 "$EU lease grant 60" "non-root"
run member_list_u1 "$EU member list" "non-root"
run member_list_nouser "$E member list" "no credentials"
run endpoint_status_u1 "$EU endpoint status" "non-root"
run endpoint_health_u1 "$EU endpoint health" "non-root"
run endpoint_hashkv_u1 "$EU endpoint hashkv" "non-root"
run compaction_u1 "$EU compaction 2" "non-root"
run defrag_u1 "$EU defrag" "non-root"
run alarm_list_u1 "$EU alarm list" "non-root"
run snapshot_save_u1 "$EU snapshot save u1.db" "non-root"
run user_list_u1 "$EU user list" "non-root"
run user_get_u1_self "$EU user get u1" "non-root, own user"
run role_get_u1_own "$EU role get r1" "non-root, own role"
run role_list_u1 "$EU role list" "non-root"
run user_add_u1 "$EU user add u9:pw" "non-root"
run member_list_root "$ER member list" "root"
run endpoint_status_root "$ER endpoint status -w json" "root"
run compaction_root "$ER compaction 2" "root"
run defrag_root "$ER defrag" "root"
run alarm_list_root "$ER alarm list" "root"
run snapshot_save_root "$ER snapshot save root.db" "root"
run get_root_any "$ER get '' --prefix --keys-only" "root reads everything"
run put_root "$ER put z2 zv2" "root"
run user_delete_u0_auth "$ER user delete u0" "auth on, as root"
run role_revoke_r1_range "$ER role revoke-permission r1 k1 k5" "take [k1,k5) away from r1"
run get_u1_after_revoke "$EU get k1" "after role_revoke_r1_range"
run user_revoke_root_role "$ER user revoke-role root root" "revoke the root role from root while auth on"
run role_delete_root "$ER role delete root" "delete the root role while auth on"
run user_delete_root "$ER user delete root" "delete root while auth on"
run auth_disable_root_final "$ER auth disable"
stop a1
echo "done" >&2
