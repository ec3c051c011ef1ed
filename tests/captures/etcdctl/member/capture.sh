#!/usr/bin/env bash
# Captures the behaviour of real `etcdctl member ...`, `etcdctl move-leader` and
# `etcdctl endpoint status --cluster` (etcd 3.4.23, Debian bookworm's etcd-server and etcd-client
# packages) into this directory. Not run by the tests: it needs the real etcd.
#
#   apt-get install -y etcd-server etcd-client
#   bash tests/captures/etcdctl/member/capture.sh          # takes about 1-2 minutes
#
# It starts its own 3-member cluster (names m1 m2 m3, `--initial-cluster-state new`,
# `--initial-cluster-token mcap`) on fresh data dirs, later adds real learners m6 and m7
# (`--initial-cluster-state existing`), runs every case in order (later cases depend on the
# membership the earlier ones left, so run the whole script, never a single case), and stops
# every etcd it started by its pid (also on exit/interrupt, through the trap). See README.md.
#
# Ports (all 127.0.0.1):  member  client  peer
#                         m1      22601   22602
#                         m2      22611   22612
#                         m3      22621   22622
#                         m4      -       22642   (voter, added, never started; other
#                                         22630-22649 are one-off URLs of other voter adds)
#                         m5      -       22652   (learner, added, never started; 22650-22656
#                                         are one-off URLs of other learner adds)
#                         m6      22661   22662   (learner, started, promoted, removed)
#                         m7      22671   22672   (learner, started, promoted with -w json, removed)
#                         m8      22681   22682   (same with -w table)
#                         m9      22691   22692   (same with -w fields)
set -u

OUT=${OUT:-$(cd "$(dirname "$0")" && pwd)}
H=127.0.0.1
EP1=$H:22601
EP2=$H:22611
EP3=$H:22621
P1=http://$H:22602
P2=http://$H:22612
P3=http://$H:22622
P4=http://$H:22642
P5=http://$H:22652
EPS=$EP1,$EP2,$EP3

export ETCDCTL_API=3
unset ETCDCTL_ENDPOINTS ETCDCTL_WRITE_OUT ETCDCTL_HEX

WORK=$(mktemp -d /tmp/etcdctl-member-capture.XXXXXX)
NICE="nice -n 10"
declare -A PID=()

cleanup() {
	local n
	for n in "${!PID[@]}"; do
		kill "${PID[$n]}" 2>/dev/null
	done
	for n in "${!PID[@]}"; do
		wait "${PID[$n]}" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CLIENTPORT PEERPORT STATE INITIAL_CLUSTER: one etcd member in the background
start() {
	local name=$1 c=$H:$2 p=http://$H:$3
	$NICE etcd --name "$name" --data-dir "$WORK/$name.data" \
		--listen-client-urls "http://$c" --advertise-client-urls "http://$c" \
		--listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
		--initial-cluster "$5" --initial-cluster-state "$4" --initial-cluster-token mcap \
		>"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
}
# stop NAME: SIGTERM to that etcd, wait for it
stop() {
	kill "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}" 2>/dev/null
	unset "PID[$1]"
}
# healthy EP [TRIES]: waits until `endpoint health` passes on EP (up to TRIES tries, 0.2 s apart)
healthy() {
	local i
	for ((i = 0; i < ${2:-100}; i++)); do
		etcdctl --endpoints="$1" --dial-timeout=1s --command-timeout=1s endpoint health >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "endpoint $1 not healthy" >&2
	return 1
}
# up EP: same with `endpoint status`, for a learner (its `endpoint health` fails: a learner
# refuses the linearizable get that health does)
up() {
	local i
	for ((i = 0; i < 100; i++)); do
		etcdctl --endpoints="$1" --dial-timeout=1s --command-timeout=1s endpoint status >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "endpoint $1 not up" >&2
	return 1
}

E="etcdctl --endpoints=$EP1"
# ctl: an op, its output kept in $WORK/ops.log (not part of the captures)
ctl() { etcdctl --endpoints=$EP1 "$@" >>"$WORK/ops.log" 2>&1; }
# id_of NAME / id_of_peer PEERURL: hex member id from `member list` (simple)
id_of() { etcdctl --endpoints=$EP1 member list | awk -F', ' -v n="$1" '$3 == n { print $1 }'; }
# (a member with several peer URLs has them comma-joined in one field)
id_of_peer() { etcdctl --endpoints=$EP1 member list | awk -F', ' -v u="$1" '{ n = split($4, a, ","); for (i = 1; i <= n; i++) if (a[i] == u) print $1 }'; }
# leader_field N: field N of the `endpoint status` (simple) line of the leader among m1..m3
# (1 = endpoint, 2 = hex id)
leader_field() { etcdctl --endpoints=$EPS endpoint status | awk -F', ' -v f="$1" '$5 == "true" { print $f }'; }
# follower_field N: same, for the first follower
follower_field() { etcdctl --endpoints=$EPS endpoint status | awk -F', ' -v f="$1" '$5 == "false" { print $f; exit }'; }
# rm_peer PEERURL: removes the member with that peer URL, if any (cleanup after a case that might
# have added one)
rm_peer() {
	local id
	id=$(id_of_peer "$1")
	[ -n "$id" ] && ctl member remove "$id"
	return 0
}

# tsv FIELDS...: one row of cases.tsv; newlines in a field become "; "
tsv() {
	local f out=()
	for f in "$@"; do
		f=${f#$'\n'}
		out+=("${f//$'\n'/; }")
	done
	printf '%s\t%s\t%s\t%s\n' "${out[@]}" >>"$OUT/cases.tsv"
}

# run NAME COMMAND [NOTES]: runs COMMAND with bash -c, stdin /dev/null, and records it
run() {
	local name=$1 cmd=$2 notes=${3:-} t0
	t0=$(date +%s.%N)
	bash -c "$cmd" </dev/null >"$OUT/$name.stdout" 2>"$OUT/$name.stderr"
	local rc=$?
	tsv "$name" "$rc" "$cmd" "$notes"
	echo "$name rc=$rc $(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f')s" >&2
	return $rc
}

# promote_poll NAME ID NOTES [FLAGS...]: runs `member promote ID FLAGS` every ~200 ms until it
# stops answering "not in sync". Every attempt goes to NAME_poll.stdout/.stderr (with "--- attempt"
# and "--- exit" marker lines); the last attempt is also kept as NAME.stdout/.stderr.
promote_poll() {
	local name=$1 id=$2 notes=$3 i t t0 rc
	shift 3
	: >"$OUT/${name}_poll.stdout"
	: >"$OUT/${name}_poll.stderr"
	t0=$(date +%s.%N)
	for i in $(seq 100); do
		t=$(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.2f')
		echo "--- attempt $i at ${t}s" >>"$OUT/${name}_poll.stdout"
		echo "--- attempt $i at ${t}s" >>"$OUT/${name}_poll.stderr"
		$E member promote "$id" "$@" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" </dev/null
		rc=$?
		cat "$OUT/$name.stdout" >>"$OUT/${name}_poll.stdout"
		cat "$OUT/$name.stderr" >>"$OUT/${name}_poll.stderr"
		echo "--- exit $rc" >>"$OUT/${name}_poll.stdout"
		grep -q 'in sync with leader' "$OUT/$name.stderr" || break
		sleep 0.2
	done
	tsv "${name}_poll" - "(loop) $E member promote $id $*" "$notes; every ~200 ms until the answer is not \"not in sync\"; each attempt's exit code is in the .stdout file"
	tsv "$name" "$rc" "$E member promote $id $*" "$notes; the last attempt of ${name}_poll (attempt $i, ${t}s after the first)"
	echo "$name rc=$rc attempts=$i" >&2
}

rm -f "$OUT"/*.stdout "$OUT"/*.stderr
printf '# case\texit code\tcommand (bash -c)\tnotes\n' >"$OUT/cases.tsv"

### the cluster ###################################################################################
IC="m1=$P1,m2=$P2,m3=$P3"
start m1 22601 22602 new "$IC"
start m2 22611 22612 new "$IC"
start m3 22621 22622 new "$IC"
healthy $EP1 && healthy $EP2 && healthy $EP3 || exit 1
# strict reconfig check: a member add needs every voter connected for the last 5 s
sleep 6
M1=$(id_of m1)
M2=$(id_of m2)
M3=$(id_of m3)
echo "m1=$M1 m2=$M2 m3=$M3 leader=$(leader_field 2)" >&2

### help ##########################################################################################
run help_member "$E member --help"
run help_member_nosub "$E member" "no subcommand"
run help_member_unknown_sub "$E member bogus" "unknown subcommand"
run help_list "$E member list --help"
run help_add "$E member add --help"
run help_remove "$E member remove --help"
run help_update "$E member update --help"
run help_promote "$E member promote --help"
run help_move_leader "$E move-leader --help"

### member list, 3 voters #########################################################################
N3="3 started voters m1=$M1 m2=$M2 m3=$M3"
run list_simple "$E member list" "$N3"
run list_json "$E member list -w json" "$N3"
run list_table "$E member list -w table" "$N3"
run list_fields "$E member list -w fields" "$N3"
run list_hex_simple "$E member list --hex" "$N3; --hex is a global flag"
run list_hex_json "$E member list --hex -w json" "$N3"
run list_hex_table "$E member list --hex -w table" "$N3"
run list_extra_arg "$E member list foo" "an extra argument"
run list_all_endpoints "etcdctl --endpoints=$EPS member list" "3 endpoints: one answer"

### endpoint status --cluster, 3 voters ###########################################################
run status_cluster_simple "$E endpoint status --cluster" "$N3"
run status_cluster_json "$E endpoint status --cluster -w json" "$N3"
run status_cluster_table "$E endpoint status --cluster -w table" "$N3"

### member add (voter) ############################################################################
# Every add uses a peer URL not used before in this run: etcd 3.4 makes a new member's id from its
# peer URLs, the cluster token and the current Unix second, so re-adding a removed member's URL
# within the same second gives the removed id (see add_readd_same_second).
run add_voter_simple "$E member add m4 --peer-urls=$P4" "$N3"
M4=$(id_of_peer $P4)
run list_unstarted_voter_simple "$E member list" "after add_voter_simple: m4 ($M4) added, never started"
run list_unstarted_voter_json "$E member list -w json" "m4 unstarted"
run list_unstarted_voter_table "$E member list -w table" "m4 unstarted"
run status_cluster_unstarted_voter_table "$E endpoint status --cluster -w table" "m4 unstarted: has no client URL"
run add_voter_second_unstarted "$E member add m4b --peer-urls=http://$H:22643" "m4 (voter) unstarted: strict reconfig check"
rm_peer http://$H:22643
run add_learner_with_unstarted_voter "$E member add m5 --learner --peer-urls=http://$H:22650" "m4 (voter) unstarted"
rm_peer http://$H:22650
run remove_simple "$E member remove $M4" "m4 ($M4), never started"
run list_after_remove "$E member list" "after remove_simple"
run remove_again "$E member remove $M4" "m4 again (already removed)"
run add_voter_json "$E member add m4 --peer-urls=http://$H:22644 -w json" "$N3"
M4=$(id_of_peer http://$H:22644)
run remove_json "$E member remove $M4 -w json" "m4 ($M4), never started"
run add_voter_table "$E member add m4 --peer-urls=http://$H:22645 -w table" "$N3; the member IS added, only the printing fails"
M4=$(id_of_peer http://$H:22645)
run remove_table "$E member remove $M4 -w table" "m4 ($M4), never started; the member IS removed"
run add_voter_fields "$E member add m4 --peer-urls=http://$H:22646 -w fields" "$N3"
M4=$(id_of_peer http://$H:22646)
run remove_fields "$E member remove $M4 -w fields" "m4 ($M4), never started"
run add_voter_two_urls "$E member add m4 --peer-urls=http://$H:22647,http://$H:22648" "two peer URLs"
run list_two_urls "$E member list" "after add_voter_two_urls"
run list_two_urls_table "$E member list -w table" "after add_voter_two_urls"
rm_peer http://$H:22647
run add_dup_name "$E member add m1 --peer-urls=http://$H:22649" "the name of an existing member (m1), a new URL"
run list_dup_name "$E member list" "after add_dup_name"
rm_peer http://$H:22649
run add_empty_name "$E member add '' --peer-urls=http://$H:22631" "empty name"
rm_peer http://$H:22631
run add_voter_via_follower "etcdctl --endpoints=$(follower_field 1) member add m4 --peer-urls=http://$H:22632" "endpoint is a follower"
rm_peer http://$H:22632
# re-add a removed member's peer URL within the same Unix second as its first add
while [ "$(date +%N | cut -c1)" != 0 ]; do sleep 0.01; done
ctl member add m4 --peer-urls=http://$H:22633
ctl member remove "$(id_of_peer http://$H:22633)"
run add_readd_same_second "$E member add m4 --peer-urls=http://$H:22633" "http://$H:22633 was added and removed just before, in the same second (if the file says otherwise, the second changed in between)"
rm_peer http://$H:22633
sleep 1
run add_readd_next_second "$E member add m4 --peer-urls=http://$H:22633" "the same URL, at least 1 s later"
rm_peer http://$H:22633

### member add errors #############################################################################
run add_clash_peer "$E member add mx --peer-urls=$P2" "m2's peer URL"
run add_clash_peer_json "$E member add mx --peer-urls=$P2 -w json" "m2's peer URL"
run add_clash_one_of_two "$E member add mx --peer-urls=http://$H:22634,$P2" "a new URL and m2's"
rm_peer http://$H:22634
run add_nohost "$E member add mx --peer-urls=nohost"
rm_peer nohost
run add_http_nohost "$E member add mx --peer-urls=http://nohost" "scheme and host name, no port"
rm_peer http://nohost
run add_url_path "$E member add mx --peer-urls=http://$H:22635/path" "URL with a path"
rm_peer http://$H:22635/path
run add_url_noport "$E member add mx --peer-urls=http://$H" "no port"
rm_peer http://$H
run add_url_empty_item "$E member add mx --peer-urls=http://$H:22636," "trailing comma"
rm_peer http://$H:22636
run add_no_peer_urls "$E member add mx" "no --peer-urls"
run add_empty_peer_urls "$E member add mx --peer-urls=" "--peer-urls="
run add_no_name "$E member add --peer-urls=http://$H:22637" "no name"
rm_peer http://$H:22637
run add_two_names "$E member add mx my --peer-urls=http://$H:22638" "two names"
rm_peer http://$H:22638
run add_no_args "$E member add"

### learner (never started) #######################################################################
run add_learner_simple "$E member add m5 --learner --peer-urls=$P5" "$N3"
M5=$(id_of_peer $P5)
run list_learner_simple "$E member list" "m5 ($M5): learner, never started"
run list_learner_json "$E member list -w json" "m5 learner unstarted"
run list_learner_table "$E member list -w table" "m5 learner unstarted"
run add_learner_second "$E member add m5b --learner --peer-urls=http://$H:22653" "m5 is a learner already"
rm_peer http://$H:22653
run add_voter_with_unstarted_learner "$E member add m4 --peer-urls=http://$H:22639" "m5 (learner) unstarted: does it block a voter add?"
rm_peer http://$H:22639
run promote_learner_not_started "$E member promote $M5" "m5 ($M5) never started"
run promote_learner_not_started_json "$E member promote $M5 -w json" "m5 never started"
run update_learner "$E member update $M5 --peer-urls=http://$H:22654" "m5 (unstarted learner) to a new URL"
run list_after_update_learner "$E member list" "after update_learner"
run remove_learner "$E member remove $M5" "m5 ($M5)"
run add_learner_json "$E member add m5 --learner --peer-urls=http://$H:22655 -w json" "$N3"
rm_peer http://$H:22655
run add_learner_table "$E member add m5 --learner --peer-urls=http://$H:22656 -w table" "$N3"
rm_peer http://$H:22656

### member remove errors ##########################################################################
run remove_unknown "$E member remove 1234abcd"
run remove_unknown_json "$E member remove 1234abcd -w json"
run remove_bad_id "$E member remove zz"
run remove_0x_unknown "$E member remove 0x1234abcd" "0x prefix"
run remove_upper_unknown "$E member remove 1234ABCD" "upper-case hex"
run remove_no_id "$E member remove"
run remove_two_ids "$E member remove 1234abcd 5678"
run remove_zero "$E member remove 0"

### member promote errors #########################################################################
run promote_voter "$E member promote $M2" "m2 ($M2) is a voter"
run promote_voter_json "$E member promote $M2 -w json"
run promote_unknown "$E member promote 1234abcd"
run promote_bad_id "$E member promote zz"
run promote_no_id "$E member promote"
run promote_two_ids "$E member promote $M2 $M3"

### member update #################################################################################
run update_unknown "$E member update 1234abcd --peer-urls=http://$H:22699"
run update_clash "$E member update $M3 --peer-urls=$P2" "m3 ($M3) to m2's peer URL"
run update_same_url_simple "$E member update $M3 --peer-urls=$P3" "m3 to its own peer URL"
run update_same_url_json "$E member update $M3 --peer-urls=$P3 -w json" "m3 to its own peer URL"
run update_same_url_table "$E member update $M3 --peer-urls=$P3 -w table" "m3 to its own peer URL"
run update_upper_id "$E member update ${M3^^} --peer-urls=$P3" "m3's id in upper case"
run update_0x_id "$E member update 0x$M3 --peer-urls=$P3" "m3's id with 0x prefix"
run update_no_peer_urls "$E member update $M3"
run update_nohost "$E member update $M3 --peer-urls=nohost"
run update_bad_id "$E member update zz --peer-urls=$P3"
run update_no_id "$E member update --peer-urls=$P3"
run update_no_args "$E member update"
run list_after_updates "$E member list" "after the update cases"

### move-leader ###################################################################################
L_EP=$(leader_field 1)
L_ID=$(leader_field 2)
F_EP=$(follower_field 1)
F_ID=$(follower_field 2)
run move_leader_simple "etcdctl --endpoints=$L_EP move-leader $F_ID" "from the leader $L_ID to the follower $F_ID"
sleep 1
run status_after_move_table "etcdctl --endpoints=$EPS endpoint status -w table" "after move_leader_simple"
L_EP=$(leader_field 1)
L_ID=$(leader_field 2)
F_EP=$(follower_field 1)
F_ID=$(follower_field 2)
run move_leader_json "etcdctl --endpoints=$L_EP move-leader $F_ID -w json" "from the leader $L_ID to $F_ID"
sleep 1
L_EP=$(leader_field 1)
L_ID=$(leader_field 2)
F_EP=$(follower_field 1)
F_ID=$(follower_field 2)
run move_leader_table "etcdctl --endpoints=$L_EP move-leader $F_ID -w table" "from the leader $L_ID to $F_ID"
sleep 1
L_EP=$(leader_field 1)
L_ID=$(leader_field 2)
F_EP=$(follower_field 1)
F_ID=$(follower_field 2)
run move_leader_via_follower "etcdctl --endpoints=$F_EP move-leader $F_ID" "endpoint $F_EP is a follower ($F_ID), the leader is $L_ID"
run move_leader_via_follower_json "etcdctl --endpoints=$F_EP move-leader $F_ID -w json" "endpoint is a follower"
run move_leader_all_endpoints "etcdctl --endpoints=$EPS move-leader $F_ID" "all 3 endpoints given; leader $L_ID, target $F_ID"
sleep 1
L_EP=$(leader_field 1)
L_ID=$(leader_field 2)
run move_leader_self "etcdctl --endpoints=$L_EP move-leader $L_ID" "target is the leader itself ($L_ID)"
run move_leader_unknown "etcdctl --endpoints=$L_EP move-leader 1234abcd" "leader $L_ID"
run move_leader_bad_id "etcdctl --endpoints=$L_EP move-leader zz"
run move_leader_no_arg "etcdctl --endpoints=$L_EP move-leader"
run move_leader_two_args "etcdctl --endpoints=$L_EP move-leader 1 2"
run move_leader_dead_endpoint "etcdctl --endpoints=$H:22699 move-leader $M2" "nothing listens there"

### a real learner: m6 ############################################################################
run add_learner_m6 "$E member add m6 --learner --peer-urls=http://$H:22662" "m6 will be started"
M6=$(id_of_peer http://$H:22662)
IC6=$(sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' "$OUT/add_learner_m6.stdout")
start m6 22661 22662 existing "$IC6"
run promote_m6_first "$E member promote $M6" "m6 ($M6) right after its etcd process was started (initial cluster $IC6)"
up $H:22661 || exit 1
sleep 1
run health_learner "etcdctl --endpoints=$H:22661 endpoint health" "m6, a started learner"
run health_cluster_learner "$E endpoint health --cluster" "m6 started learner"
run list_started_learner_simple "$E member list" "m6 started, still a learner"
run list_started_learner_json "$E member list -w json" "m6 started, still a learner"
run list_started_learner_table "$E member list -w table" "m6 started, still a learner"
run list_via_learner "etcdctl --endpoints=$H:22661 member list" "asked of the learner m6"
run add_via_learner "etcdctl --endpoints=$H:22661 member add m4 --peer-urls=http://$H:22630" "asked of the learner m6"
rm_peer http://$H:22630
run status_cluster_learner_simple "$E endpoint status --cluster" "m6 started learner"
run status_cluster_learner_json "$E endpoint status --cluster -w json" "m6 started learner"
run status_cluster_learner_table "$E endpoint status --cluster -w table" "m6 started learner"
run move_leader_to_learner "etcdctl --endpoints=$(leader_field 1) move-leader $M6" "target is the learner m6 ($M6)"
sleep 1
promote_poll promote_m6 "$M6" "m6 ($M6), a started learner"
run promote_m6_again "$E member promote $M6" "m6 was just promoted"
sleep 1
run list_after_promote_simple "$E member list" "m6 promoted: 4 voters"
run list_after_promote_json "$E member list -w json" "m6 promoted: 4 voters"
run status_cluster_4_voters_table "$E endpoint status --cluster -w table" "m6 promoted: 4 voters"
sleep 5
run remove_started_m6 "$E member remove $M6" "m6 ($M6): a started voter; its etcd then stops by itself"
for _ in $(seq 100); do
	kill -0 "${PID[m6]}" 2>/dev/null || break
	sleep 0.1
done
kill -0 "${PID[m6]}" 2>/dev/null && echo "m6 still running after its removal" >&2
stop m6

### more real learners, promoted with -w json / table / fields ###################################
# learner NAME CLIENTPORT PEERPORT FORMAT: adds NAME as a learner, starts it, promotes it with
# -w FORMAT (promote_NAME_FORMAT, promote_NAME_FORMAT_poll), checks that it is a voter
# (list_after_promote_NAME_FORMAT), removes it with -w FORMAT (remove_started_NAME_FORMAT)
learner() {
	local name=$1 c=$2 p=$3 fmt=$4 id
	ctl member add "$name" --learner --peer-urls=http://$H:$p
	id=$(id_of_peer http://$H:$p)
	start "$name" "$c" "$p" existing "$IC,$name=http://$H:$p"
	up $H:$c || exit 1
	promote_poll "promote_${name}_$fmt" "$id" "$name ($id), a started learner" -w "$fmt"
	run "list_after_promote_${name}_$fmt" "$E member list" "after promote_${name}_$fmt"
	sleep 1
	run "remove_started_${name}_$fmt" "$E member remove $id -w $fmt" "$name ($id): a started voter"
	for _ in $(seq 100); do
		kill -0 "${PID[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	stop "$name"
}
learner m7 22671 22672 json
learner m8 22681 22682 table
learner m9 22691 22692 fields

run list_final "$E member list" "at the end"
echo "done" >&2
