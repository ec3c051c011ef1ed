#!/usr/bin/env bash
# Captures the behaviour of real `etcdctl snapshot save|status|restore` (etcd 3.4.23, Debian
# bookworm's etcd-server and etcd-client packages) into this directory. Not run by the tests: it
# needs the real etcd.
#
#   apt-get install -y etcd-server etcd-client
#   bash tests/captures/etcdctl/snapshot/capture.sh          # takes under a minute
#
# It starts a single-member etcd s1 (`--initial-cluster-token snaporig`), writes a small data set
# (10 puts, 2 overwrites, 1 delete: revision 14, 9 live keys), saves snapshots of it, damages
# copies of the file, runs `snapshot status` and `snapshot restore` on them, then starts the
# restored data dirs: one single member n1 (`--initial-cluster-token snaprestore`) and a
# 3-member cluster r1 r2 r3 (`--initial-cluster-token snap3`), and compares them with s1. Cases
# depend on the files earlier cases made, so run the whole script, never a single case. Every
# etcd it started is stopped by its pid (also on exit/interrupt, through the trap). See README.md.
#
# Every command runs with the working directory $WORK (/tmp/etcdctl-snapshot-capture, emptied at
# the start and removed at the end unless KEEP_WORK is set), so the paths in the captures are relative and stable.
#
# Ports (all 127.0.0.1):  member  client  peer
#                         s1      22701   22702   (the original, token snaporig)
#                         n1      22781   22780   (restored from snap.db, token snaprestore)
#                         r1      22711   22712   (3-member restore, token snap3)
#                         r2      22721   22722
#                         r3      22731   22732
#                         -       22798   -       (second endpoint of save_two_endpoints; never dialled)
#                         -       22799   -       (dead endpoint: nothing listens)
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
H=127.0.0.1
EP=$H:22701
PS1URL=http://$H:22702
N1C=$H:22781
N1P=http://$H:22780
R1C=$H:22711
R2C=$H:22721
R3C=$H:22731
R1P=http://$H:22712
R2P=http://$H:22722
R3P=http://$H:22732
DEAD=$H:22799

export ETCDCTL_API=3
unset ETCDCTL_ENDPOINTS ETCDCTL_WRITE_OUT ETCDCTL_HEX

WORK=/tmp/etcdctl-snapshot-capture
rm -rf "$WORK"
mkdir -p "$WORK" && cp "$HERE/boltdump.py" "$WORK/" || exit 1
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
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME DATADIR CLIENTPORT PEERPORT [EXTRA ETCD FLAGS...]: one etcd in the background, cwd $WORK
start() {
	local name=$1 dir=$2 c=http://$H:$3 p=http://$H:$4
	shift 4
	(cd "$WORK" && exec $NICE etcd --name "$name" --data-dir "$dir" \
		--listen-client-urls "$c" --advertise-client-urls "$c" \
		--listen-peer-urls "$p" "$@" >"$WORK/$name.log" 2>&1) &
	PID[$name]=$!
}
# stop NAME: SIGTERM to that etcd, wait for it
stop() {
	kill "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}" 2>/dev/null
	unset "PID[$1]"
}
# healthy EP: waits until `endpoint health` passes on EP (up to 100 tries, 0.2 s apart)
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
# ctl: an op on s1, its output kept in $WORK/ops.log (not part of the captures)
ctl() { etcdctl --endpoints=$EP "$@" >>"$WORK/ops.log" 2>&1; }

# tsv FIELDS...: one row of cases.tsv; newlines in a field become "; "
tsv() {
	local f out=()
	for f in "$@"; do
		f=${f#$'\n'}
		out+=("${f//$'\n'/; }")
	done
	printf '%s\t%s\t%s\t%s\n' "${out[@]}" >>"$OUT/cases.tsv"
}

# run NAME COMMAND [NOTES]: runs COMMAND with bash -c in $WORK, stdin /dev/null, and records it.
# With TIMED=1 in the environment, the notes get "(took N.Ns)".
run() {
	local name=$1 cmd=$2 notes=${3:-} t0 took
	t0=$(date +%s.%N)
	(cd "$WORK" && bash -c "$cmd") </dev/null >"$OUT/$name.stdout" 2>"$OUT/$name.stderr"
	local rc=$?
	took=$(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f')
	[ "${TIMED:-0}" = 1 ] && notes="${notes:+$notes; }(took ${took}s)"
	tsv "$name" "$rc" "$cmd" "$notes"
	echo "$name rc=$rc ${took}s" >&2
	return $rc
}

# flip FILE OFFSET: XORs the byte at OFFSET (negative: from the end) with 0xff, in place
flip() {
	python3 -c 'import sys
p, i = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
b[i] ^= 0xff
open(p, "wb").write(b)' "$1" "$2"
}

rm -f "$OUT"/*.stdout "$OUT"/*.stderr
printf '# case\texit code\tcommand (bash -c, cwd %s)\tnotes\n' "$WORK" >"$OUT/cases.tsv"

### the original: s1 and its data #################################################################
start s1 s1.data 22701 22702 --initial-advertise-peer-urls $PS1URL \
	--initial-cluster s1=$PS1URL --initial-cluster-state new --initial-cluster-token snaporig
healthy $EP || exit 1
for i in 0 1 2 3 4 5 6 7 8 9; do ctl put k$i v$i; done # revisions 2..11
ctl put k1 v1b # 12
ctl put k2 v2b # 13
ctl del k3     # 14
DS="s1: k0..k9 put (rev 2-11), k1 and k2 overwritten (12, 13), k3 deleted (14); 9 live keys, revision 14"

### help ##########################################################################################
run help_snapshot "etcdctl snapshot --help"
run help_snapshot_nosub "etcdctl snapshot" "no subcommand"
run help_snapshot_unknown_sub "etcdctl snapshot bogus" "unknown subcommand"
run help_save "etcdctl snapshot save --help"
run help_status "etcdctl snapshot status --help"
run help_restore "etcdctl snapshot restore --help"

### the original's state ##########################################################################
run orig_get_all "$E get --prefix ''" "$DS"
run orig_endpoint_status_json "$E endpoint status -w json" "$DS"
run orig_member_list_json "$E member list -w json" "$DS"
run orig_hashkv_json "$E endpoint hashkv --rev=14 -w json" "$DS"
run orig_hashkv_table "$E endpoint hashkv --rev=14 -w table" "$DS"

### snapshot save #################################################################################
run save_ok "$E snapshot save snap.db" "$DS"
run save_file_info "wc -c <snap.db; echo \$(( \$(wc -c <snap.db) % 512 ))" "size of snap.db, and size % 512 (32 = has the sha256 trailer)"
run save_trailer_check "tail -c 32 snap.db | xxd -p -c 32; head -c -32 snap.db | sha256sum | cut -d' ' -f1" "last 32 bytes of snap.db, then the sha256 of everything before them"
run save_again "$E snapshot save snap2.db" "no write since save_ok"
run save_again_cmp "cmp snap.db snap2.db && echo identical" "are two saves with no write in between byte-identical?"
run save_overwrite "$E snapshot save snap2.db" "snap2.db exists already"
run save_missing_dir "$E snapshot save nodir/snap.db" "directory nodir does not exist"
run save_missing_dir_ls "ls -A nodir 2>&1; ls -A | grep -c part || true" "after save_missing_dir: nothing left behind?"
run save_no_args "$E snapshot save"
run save_two_args "$E snapshot save a.db b.db"
# Without --command-timeout, save has no deadline at all, and a dead endpoint makes it wait forever:
# `timeout 10` stops it (exit 124 is timeout's).
TIMED=1 run save_dead_endpoint "timeout 10 etcdctl --endpoints=$DEAD snapshot save dead.db" "nothing listens on $DEAD; default --dial-timeout 2s, no --command-timeout: etcdctl hangs until timeout(1) kills it after 10 s"
run save_dead_endpoint_ls "ls -A | grep dead" "after save_dead_endpoint: files named dead*"
rm -f "$WORK"/dead.db*
TIMED=1 run save_dead_endpoint_cmd3s "etcdctl --endpoints=$DEAD --command-timeout=3s snapshot save dead.db" "nothing listens on $DEAD; --command-timeout=3s"
run save_dead_endpoint_cmd3s_ls "ls -A | grep dead" "after save_dead_endpoint_cmd3s: files named dead*"
TIMED=1 run save_dead_endpoint_dial1s "timeout 5 etcdctl --endpoints=$DEAD --dial-timeout=1s snapshot save dead.db" "nothing listens on $DEAD; --dial-timeout=1s alone: still hangs"
rm -f "$WORK"/dead.db*
run save_two_endpoints "etcdctl --endpoints=$EP,$H:22798 snapshot save two.db" "two --endpoints"
run save_env_endpoints "ETCDCTL_ENDPOINTS=$EP etcdctl snapshot save env.db" "endpoint from ETCDCTL_ENDPOINTS"
run save_json "$E snapshot save json.db -w json" "-w json: does save's output change?"

### snapshot status ###############################################################################
S="snap.db from save_ok ($DS)"
run status_simple "etcdctl snapshot status snap.db" "$S"
run status_json "etcdctl snapshot status snap.db -w json" "$S"
run status_table "etcdctl snapshot status snap.db -w table" "$S"
run status_fields "etcdctl snapshot status snap.db -w fields" "$S"
run status_protobuf "etcdctl snapshot status snap.db -w protobuf" "$S"
run status_bad_format "etcdctl snapshot status snap.db -w bogus" "$S"
run status_hex "etcdctl snapshot status snap.db --hex" "$S; --hex"
run status_snap2 "etcdctl snapshot status snap2.db" "snap2.db from save_overwrite"
run status_dead_endpoint "etcdctl --endpoints=$DEAD snapshot status snap.db" "status does not talk to the server"
run status_missing "etcdctl snapshot status missing.db" "no such file"
run status_no_args "etcdctl snapshot status"
run status_two_args "etcdctl snapshot status snap.db snap2.db"
# damaged copies
SIZE=$(wc -c <"$WORK/snap.db")
head -c $((SIZE / 2)) "$WORK/snap.db" >"$WORK/trunc.db"
cp "$WORK/snap.db" "$WORK/flipmid.db" && flip "$WORK/flipmid.db" $((SIZE / 2))
cp "$WORK/snap.db" "$WORK/fliptrailer.db" && flip "$WORK/fliptrailer.db" -1
: >"$WORK/empty.db"
printf 'not a bolt db\n' >"$WORK/text.db"
head -c 8192 /dev/zero >"$WORK/zero8k.db"
# every "v5" (the value of k5, in the live page and in stale copies) becomes "\x895"
python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(d.replace(b"v5", b"\x895"))' \
	"$WORK/snap.db" "$WORK/flipval.db"
ROOT=$(python3 "$HERE/boltdump.py" "$WORK/snap.db" --root-page)
cp "$WORK/snap.db" "$WORK/fliproot.db" && flip "$WORK/fliproot.db" $((ROOT * 4096 + 8))
run status_truncated "etcdctl snapshot status trunc.db" "trunc.db: the first $((SIZE / 2)) of the $SIZE bytes of snap.db"
run status_flip_mid "etcdctl snapshot status flipmid.db" "flipmid.db: snap.db with the byte at offset $((SIZE / 2)) XORed with 0xff"
run status_flip_trailer "etcdctl snapshot status fliptrailer.db" "fliptrailer.db: snap.db with its last byte (in the sha256 trailer) XORed with 0xff"
run status_flip_value "etcdctl snapshot status flipval.db" "flipval.db: snap.db with every 'v5' (k5's value) changed to '\\x895'"
run status_flip_root "etcdctl snapshot status fliproot.db" "fliproot.db: snap.db with the page-type byte of the live root page ($ROOT, at offset $((ROOT * 4096 + 8))) XORed with 0xff"
run status_empty "etcdctl snapshot status empty.db" "empty file"
run status_text "etcdctl snapshot status text.db" "text.db: the 14 bytes 'not a bolt db\\n'"
run status_zero8k "etcdctl snapshot status zero8k.db" "8192 zero bytes"
run status_etc_hostname "etcdctl snapshot status /etc/hostname" "a non-db file (its content is the machine's host name)"
run status_directory "etcdctl snapshot status ." "a directory"

### our own reader (not etcdctl): what status counts #############################################
run boltdump_snap "python3 boltdump.py snap.db --layout" "NOT etcdctl: our boltdump.py on snap.db; its last line recomputes status_simple"
### snapshot restore: success #####################################################################
RF="--name n1 --initial-cluster n1=$N1P --initial-advertise-peer-urls $N1P --initial-cluster-token snaprestore"
run restore_ok "etcdctl snapshot restore snap.db --data-dir n1.data $RF" "$S"
run restore_ok_tree "cd n1.data && find . | sort && find . -type d -exec stat -c '%a %n' {} + | sort -k2" "the data dir restore_ok made, then the modes of its directories"
run restore_ok_db_status "etcdctl snapshot status n1.data/member/snap/db" "status of the db restore_ok wrote (before etcd starts on it)"
run boltdump_restored_db "python3 boltdump.py n1.data/member/snap/db" "NOT etcdctl: our boltdump.py on the db restore_ok wrote"
run restore_ok_again "etcdctl snapshot restore snap.db --data-dir n1.data $RF" "n1.data exists now (from restore_ok)"

### the restored single member n1 #################################################################
start n1 n1.data 22781 22780
healthy $N1C || exit 1
E1="etcdctl --endpoints=$N1C"
RS="n1, started on the data dir of restore_ok"
run restored_get_all "$E1 get --prefix ''" "$RS"
run restored_endpoint_status_json "$E1 endpoint status -w json" "$RS"
run restored_member_list_json "$E1 member list -w json" "$RS"
run restored_hashkv_json "$E1 endpoint hashkv --rev=14 -w json" "$RS; compare orig_hashkv_json"
run restored_hashkv_table "$E1 endpoint hashkv --rev=14 -w table" "$RS"
run restored_hashkv_all_json "$E1 endpoint hashkv -w json" "$RS; no --rev"
run orig_hashkv_all_json "$E endpoint hashkv -w json" "s1, no --rev; compare restored_hashkv_all_json"
run restored_get_k3_rev13 "$E1 get k3 --rev=13" "$RS; history before the delete is kept"
run restored_get_k1_rev3 "$E1 get k1 --rev=3" "$RS; the first version of k1 (put at revision 3)"
run restored_put_json "$E1 put knew vnew -w json" "$RS; the first write after the restore"
run restored_snapshot_status_resave "$E1 snapshot save n1-resave.db && etcdctl snapshot status n1-resave.db -w json" "$RS; after restored_put_json"
stop n1

### snapshot restore: errors ######################################################################
mkdir -p "$WORK/emptydir" "$WORK/fulldir" && echo x >"$WORK/fulldir/file"
run restore_existing_nonempty "etcdctl snapshot restore snap.db --data-dir fulldir $RF" "fulldir holds one file"
run restore_existing_empty "etcdctl snapshot restore snap.db --data-dir emptydir $RF" "emptydir exists, is empty"
run restore_waldir_exists "etcdctl snapshot restore snap.db --data-dir w.data --wal-dir emptydir $RF" "--wal-dir names an existing empty dir"
run restore_truncated "etcdctl snapshot restore trunc.db --data-dir trunc.data $RF" "trunc.db ($((SIZE / 2)) bytes)"
run restore_truncated_tree "find trunc.data | sort" "after restore_truncated: what is left"
run restore_truncated_skip "etcdctl snapshot restore trunc.db --data-dir trunc-skip.data $RF --skip-hash-check" "trunc.db, --skip-hash-check"
run restore_flip_mid "etcdctl snapshot restore flipmid.db --data-dir flipmid.data $RF" "flipmid.db"
run restore_flip_mid_tree "find flipmid.data | sort" "after restore_flip_mid: what is left"
run restore_flip_mid_skip "etcdctl snapshot restore flipmid.db --data-dir flipmid-skip.data $RF --skip-hash-check" "flipmid.db, --skip-hash-check"
run restore_flip_trailer "etcdctl snapshot restore fliptrailer.db --data-dir fliptrailer.data $RF" "fliptrailer.db"
run restore_flip_trailer_skip "etcdctl snapshot restore fliptrailer.db --data-dir fliptrailer-skip.data $RF --skip-hash-check" "fliptrailer.db, --skip-hash-check"
run restore_flip_value "etcdctl snapshot restore flipval.db --data-dir flipval.data $RF" "flipval.db"
run restore_flip_value_skip "etcdctl snapshot restore flipval.db --data-dir flipval-skip.data $RF --skip-hash-check" "flipval.db, --skip-hash-check"
run restore_flip_root "etcdctl snapshot restore fliproot.db --data-dir fliproot.data $RF" "fliproot.db"
run restore_flip_root_skip "etcdctl snapshot restore fliproot.db --data-dir fliproot-skip.data $RF --skip-hash-check" "fliproot.db, --skip-hash-check"
start n1 flipval-skip.data 22781 22780
healthy $N1C || exit 1
run flipval_started_get "$E1 get k5 --hex" "n1 started on the data dir of restore_flip_value_skip"
run flipval_started_hashkv "$E1 endpoint hashkv --rev=14 -w json" "n1 started on the data dir of restore_flip_value_skip; compare orig_hashkv_json"
stop n1
run restore_missing "etcdctl snapshot restore missing.db --data-dir missing.data $RF" "no such file"
run restore_missing_tree "ls -d missing.data 2>&1" "after restore_missing"
run restore_empty "etcdctl snapshot restore empty.db --data-dir empty.data $RF" "empty file"
run restore_text "etcdctl snapshot restore text.db --data-dir text.data $RF" "text.db (14 bytes)"
run restore_no_args "etcdctl snapshot restore --data-dir x.data $RF"
run restore_two_args "etcdctl snapshot restore snap.db snap2.db --data-dir x.data $RF"
run restore_name_not_in_cluster "etcdctl snapshot restore snap.db --data-dir x.data --name nx --initial-cluster n1=$N1P --initial-advertise-peer-urls $N1P --initial-cluster-token snaprestore" "--name nx, cluster has only n1"
run restore_cluster_garbage "etcdctl snapshot restore snap.db --data-dir x.data --name n1 --initial-cluster garbage --initial-advertise-peer-urls $N1P" "--initial-cluster garbage"
run restore_cluster_no_scheme "etcdctl snapshot restore snap.db --data-dir x.data --name n1 --initial-cluster n1=$H:22780 --initial-advertise-peer-urls $N1P" "--initial-cluster URL without scheme"
run restore_cluster_empty "etcdctl snapshot restore snap.db --data-dir x.data --name n1 --initial-cluster '' --initial-advertise-peer-urls $N1P" "--initial-cluster ''"
run restore_peer_url_mismatch "etcdctl snapshot restore snap.db --data-dir x.data --name n1 --initial-cluster n1=$N1P --initial-advertise-peer-urls http://$H:22790" "advertise URL differs from n1's URL in --initial-cluster"
run restore_peer_url_bad "etcdctl snapshot restore snap.db --data-dir x.data --name n1 --initial-cluster n1=$N1P --initial-advertise-peer-urls nohost" "--initial-advertise-peer-urls nohost"
run restore_cluster_dup_url "etcdctl snapshot restore snap.db --data-dir x.data --name n1 --initial-cluster n1=$N1P,n2=$N1P --initial-advertise-peer-urls $N1P" "two members with the same URL"
run restore_x_tree "ls -d x.data 2>&1" "after the flag-error cases: was x.data made?"

### data-dir / db copied from a data dir (no sha256 trailer) ######################################
cp "$WORK/n1.data/member/snap/db" "$WORK/fromdir.db" # n1 is stopped: a consistent copy
run status_fromdir "etcdctl snapshot status fromdir.db" "fromdir.db: member/snap/db of n1.data, copied after n1 stopped (after restored_put_json)"
run boltdump_fromdir "python3 boltdump.py fromdir.db" "NOT etcdctl: our boltdump.py on fromdir.db (explains status_fromdir)"
run restore_fromdir "etcdctl snapshot restore fromdir.db --data-dir fromdir.data $RF" "fromdir.db, no trailer"
run restore_fromdir_skip "etcdctl snapshot restore fromdir.db --data-dir fromdir-skip.data $RF --skip-hash-check" "fromdir.db, --skip-hash-check"

### default data dir ##############################################################################
mkdir -p "$WORK/cwd1" "$WORK/cwd2"
run restore_default_datadir "cd cwd1 && etcdctl snapshot restore ../snap.db $RF" "no --data-dir, in an empty dir cwd1"
run restore_default_datadir_ls "cd cwd1 && find . -maxdepth 3 | sort" "after restore_default_datadir"
run restore_all_defaults "cd cwd2 && etcdctl snapshot restore ../snap.db" "no flags at all, in an empty dir cwd2"
run restore_all_defaults_ls "cd cwd2 && find . -maxdepth 3 | sort" "after restore_all_defaults"

### 3-member restore ##############################################################################
IC3="r1=$R1P,r2=$R2P,r3=$R3P"
run restore3_r1 "etcdctl snapshot restore snap.db --data-dir r1.data --name r1 --initial-cluster $IC3 --initial-advertise-peer-urls $R1P --initial-cluster-token snap3" "$S"
run restore3_r2 "etcdctl snapshot restore snap.db --data-dir r2.data --name r2 --initial-cluster $IC3 --initial-advertise-peer-urls $R2P --initial-cluster-token snap3" "$S"
run restore3_r3 "etcdctl snapshot restore snap.db --data-dir r3.data --name r3 --initial-cluster $IC3 --initial-advertise-peer-urls $R3P --initial-cluster-token snap3" "$S"
start r1 r1.data 22711 22712
start r2 r2.data 22721 22722
start r3 r3.data 22731 22732
healthy $R1C && healthy $R2C && healthy $R3C || exit 1
R3EPS=$R1C,$R2C,$R3C
R3S="r1 r2 r3 started on the restore3_* data dirs"
run restored3_member_list_json "etcdctl --endpoints=$R1C member list -w json" "$R3S"
run restored3_member_list "etcdctl --endpoints=$R1C member list" "$R3S"
run restored3_endpoint_status_json "etcdctl --endpoints=$R3EPS endpoint status -w json" "$R3S"
run restored3_endpoint_status_table "etcdctl --endpoints=$R3EPS endpoint status -w table" "$R3S"
run restored3_get_all_r1 "etcdctl --endpoints=$R1C get --prefix ''" "$R3S"
run restored3_get_all_r3 "etcdctl --endpoints=$R3C get --prefix '' --consistency=s" "$R3S; serializable, from r3"
run restored3_hashkv_table "etcdctl --endpoints=$R3EPS endpoint hashkv --rev=14 -w table" "$R3S; compare orig_hashkv_table"
run restored3_put_json "etcdctl --endpoints=$R2C put knew vnew -w json" "$R3S"
run restored3_health "etcdctl --endpoints=$R3EPS endpoint health" "$R3S"
stop r1
stop r2
stop r3
stop s1
echo "done" >&2
