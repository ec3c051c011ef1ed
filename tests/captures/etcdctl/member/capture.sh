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
#                         m4      -       22642   (voter, added, never started)
#                         m5      -       22652   (learner, added, never started)
#                         m6      22661   22662   (learner, started, promoted, removed)
#                         m7      22671   22672   (learner, started, promoted with -w json, removed)
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
# healthy EP [TRIES]: waits until `endpoint health` passes on EP (tries x 0.2 s)
healthy() {
	local i
	for ((i = 0; i < ${2:-100}; i++)); do
		etcdctl --endpoints="$1" endpoint health >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "endpoint $1 not healthy" >&2
	return 1
}

E="etcdctl --endpoints=$EP1"
# ctl: an op, its output kept in $WORK/ops.log (not part of the captures)
ctl() { etcdctl --endpoints=$EP1 "$@" >>"$WORK/ops.log" 2>&1; }
# id_of NAME / id_of_peer PEERURL: hex member id from `member list` (simple)
id_of() { etcdctl --endpoints=$EP1 member list | awk -F', ' -v n="$1" '$3 == n { print $1 }'; }
id_of_peer() { etcdctl --endpoints=$EP1 member list | awk -F', ' -v u="$1" '$4 == u { print $1 }'; }
# leader_field N: field N of the `endpoint status` (simple) line of the leader among m1..m3
# (1 = endpoint, 2 = hex id)
leader_field() { etcdctl --endpoints=$EPS endpoint status | awk -F', ' -v f="$1" '$5 == "true" { print $f }'; }
# follower_field N: same, for the first follower
follower_field() { etcdctl --endpoints=$EPS endpoint status | awk -F', ' -v f="$1" '$5 == "false" { print $f; exit }'; }
# rm_peer PEERURL: removes the member with that peer URL, if any
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
	local name=$1 cmd=$2 notes=${3:-}
	bash -c "$cmd" </dev/null >"$OUT/$name.stdout" 2>"$OUT/$name.stderr"
	local rc=$?
	tsv "$name" "$rc" "$cmd" "$notes"
	echo "$name rc=$rc" >&2
	return $rc
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
run add_voter_simple "$E member add m4 --peer-urls=$P4" "$N3"
M4=$(id_of_peer $P4)
run list_unstarted_voter_simple "$E member list" "after add_voter_simple: m4 ($M4) added, never started"
run list_unstarted_voter_json "$E member list -w json" "m4 unstarted"
run list_unstarted_voter_table "$E member list -w table" "m4 unstarted"
run status_cluster_unstarted_voter_table "$E endpoint status --cluster -w table" "m4 unstarted: has no client URL"
run add_voter_second_unstarted "$E member add m4b --peer-urls=http://$H:22643" "m4 (voter) unstarted: strict reconfig check"
run add_learner_with_unstarted_voter "$E member add m5 --learner --peer-urls=$P5" "m4 (voter) unstarted"
rm_peer http://$H:22643
rm_peer $P5
run remove_simple "$E member remove $M4" "m4 ($M4), never started"
run list_after_remove "$E member list" "after remove_simple"
run remove_again "$E member remove $M4" "m4 again (already removed)"
run add_voter_json "$E member add m4 --peer-urls=$P4 -w json" "$N3"
M4=$(id_of_peer $P4)
run remove_json "$E member remove $M4 -w json" "m4 ($M4), never started"
run add_voter_table "$E member add m4 --peer-urls=$P4 -w table" "$N3"
M4=$(id_of_peer $P4)
run remove_table "$E member remove $M4 -w table" "m4 ($M4), never started"
run add_voter_fields "$E member add m4 --peer-urls=$P4 -w fields" "$N3"
M4=$(id_of_peer $P4)
run remove_fields "$E member remove $M4 -w fields" "m4 ($M4), never started"
run add_voter_two_urls "$E member add m4 --peer-urls=$P4,http://$H:22644" "two peer URLs"
rm_peer $P4
run add_dup_name "$E member add m1 --peer-urls=$P4" "the name of an existing member (m1), a new URL"
M4=$(id_of_peer $P4)
run list_dup_name "$E member list" "after add_dup_name"
ctl member remove "$M4"
run add_empty_name "$E member add '' --peer-urls=$P4" "empty name"
rm_peer $P4
run add_voter_via_follower "etcdctl --endpoints=$(follower_field 1) member add m4 --peer-urls=$P4" "endpoint is a follower"
rm_peer $P4

### member add errors #############################################################################
run add_clash_peer "$E member add mx --peer-urls=$P2" "m2's peer URL"
run add_clash_peer_json "$E member add mx --peer-urls=$P2 -w json" "m2's peer URL"
run add_clash_one_of_two "$E member add mx --peer-urls=$P4,$P2" "a new URL and m2's"
run add_nohost "$E member add mx --peer-urls=nohost"
run add_http_nohost "$E member add mx --peer-urls=http://nohost" "scheme and host name, no port"
rm_peer http://nohost
run add_url_path "$E member add mx --peer-urls=http://$H:22645/path" "URL with a path"
rm_peer http://$H:22645/path
run add_url_noport "$E member add mx --peer-urls=http://$H" "no port"
rm_peer http://$H
run add_url_empty_item "$E member add mx --peer-urls=$P4," "trailing comma"
rm_peer $P4
run add_no_peer_urls "$E member add mx" "no --peer-urls"
run add_empty_peer_urls "$E member add mx --peer-urls=" "--peer-urls="
run add_no_name "$E member add --peer-urls=$P4" "no name"
rm_peer $P4
run add_two_names "$E member add mx my --peer-urls=$P4" "two names"
rm_peer $P4
run add_no_args "$E member add"

### learner (never started) #######################################################################
run add_learner_simple "$E member add m5 --learner --peer-urls=$P5" "$N3"
M5=$(id_of_peer $P5)
run list_learner_simple "$E member list" "m5 ($M5): learner, never started"
run list_learner_json "$E member list -w json" "m5 learner unstarted"
run list_learner_table "$E member list -w table" "m5 learner unstarted"
run add_learner_second "$E member add m5b --learner --peer-urls=http://$H:22653" "m5 is a learner already"
rm_peer http://$H:22653
run add_voter_with_unstarted_learner "$E member add m4 --peer-urls=$P4" "m5 (learner) unstarted: does it block a voter add?"
rm_peer $P4
run promote_learner_not_started "$E member promote $M5" "m5 ($M5) never started"
run promote_learner_not_started_json "$E member promote $M5 -w json" "m5 never started"
run update_learner "$E member update $M5 --peer-urls=http://$H:22653" "m5 (unstarted learner) to a new URL"
run list_after_update_learner "$E member list" "after update_learner"
run remove_learner "$E member remove $M5" "m5 ($M5)"
run add_learner_json "$E member add m5 --learner --peer-urls=$P5 -w json" "$N3"
M5=$(id_of_peer $P5)
ctl member remove "$M5"
run add_learner_table "$E member add m5 --learner --peer-urls=$P5 -w table" "$N3"
rm_peer $P5

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
healthy $H:22661 || exit 1
sleep 1
run list_started_learner_simple "$E member list" "m6 started, still a learner"
run list_started_learner_json "$E member list -w json" "m6 started, still a learner"
run list_started_learner_table "$E member list -w table" "m6 started, still a learner"
run list_via_learner "etcdctl --endpoints=$H:22661 member list" "asked of the learner m6"
run add_via_learner "etcdctl --endpoints=$H:22661 member add m4 --peer-urls=$P4" "asked of the learner m6"
rm_peer $P4
run status_cluster_learner_simple "$E endpoint status --cluster" "m6 started learner"
run status_cluster_learner_json "$E endpoint status --cluster -w json" "m6 started learner"
run status_cluster_learner_table "$E endpoint status --cluster -w table" "m6 started learner"
run move_leader_to_learner "etcdctl --endpoints=$(leader_field 1) move-leader $M6" "target is the learner m6 ($M6)"
sleep 1
# promote until it succeeds; every attempt's output goes to promote_m6_poll.*
: >"$OUT/promote_m6_poll.stdout"
: >"$OUT/promote_m6_poll.stderr"
T0=$(date +%s.%N)
for i in $(seq 100); do
	t=$(echo "$(date +%s.%N) - $T0" | bc | xargs printf '%.2f')
	echo "--- attempt $i at ${t}s" >>"$OUT/promote_m6_poll.stdout"
	echo "--- attempt $i at ${t}s" >>"$OUT/promote_m6_poll.stderr"
	if $E member promote "$M6" >"$WORK/p.out" 2>"$WORK/p.err" </dev/null; then
		rc=0
	else
		rc=$?
	fi
	cat "$WORK/p.out" >>"$OUT/promote_m6_poll.stdout"
	cat "$WORK/p.err" >>"$OUT/promote_m6_poll.stderr"
	echo "--- exit $rc" >>"$OUT/promote_m6_poll.stdout"
	if [ $rc = 0 ]; then
		cp "$WORK/p.out" "$OUT/promote_m6.stdout"
		cp "$WORK/p.err" "$OUT/promote_m6.stderr"
		tsv promote_m6 0 "$E member promote $M6" "the first successful attempt of promote_m6_poll (attempt $i, ${t}s after the poll started)"
		break
	fi
	sleep 0.2
done
tsv promote_m6_poll - "(loop) $E member promote $M6" "every ~200 ms until it succeeds; each attempt's exit code is in the .stdout file"
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

### a second real learner: m7, promoted with -w json ##############################################
sleep 6 # strict reconfig check after the removal
ctl member add m7 --learner --peer-urls=http://$H:22672
M7=$(id_of_peer http://$H:22672)
start m7 22671 22672 existing "$IC,m7=http://$H:22672"
healthy $H:22671 || exit 1
for i in $(seq 100); do
	if $E member promote "$M7" -w json >"$OUT/promote_m7_json.stdout" 2>"$OUT/promote_m7_json.stderr" </dev/null; then
		tsv promote_m7_json 0 "$E member promote $M7 -w json" "m7 ($M7), a started learner; attempt $i (the earlier ones were refused)"
		break
	fi
	sleep 0.2
done
sleep 5
run remove_started_m7_json "$E member remove $M7 -w json" "m7 ($M7): a started voter"
for _ in $(seq 100); do
	kill -0 "${PID[m7]}" 2>/dev/null || break
	sleep 0.1
done
stop m7

run list_final "$E member list" "at the end"
echo "done" >&2
