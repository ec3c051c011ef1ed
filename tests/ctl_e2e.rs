//! raftkvctl against a real `raftkv` node (a child process on free ports
//! with a temporary data directory), compared with the captured outputs of
//! real etcdctl 3.4.23 against a real etcd.
//!
//! The capture session is replayed in its original order, with the writes
//! it made between captures, so the store revisions line up with etcd's
//! (every case first checks that the revision equals the captured "revision
//! before"). Only what must differ is normalised: cluster and member ids,
//! the raft term, Status figures and timings. Deliberate differences from
//! etcdctl are listed in `differs`; requests the server does not serve yet
//! in `SERVER_GAPS`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

// ---------------------------------------------------------------- the node

/// A running `raftkv` node; killed (and reaped) when dropped.
struct Node {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("127.0.0.1:{client}");
        let log = std::fs::File::create(dir.path().join("raftkv.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("--config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/single.toml"))
            .args(["--name", "single", "--log-level", "warn"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client", &endpoint])
            .args(["--listen-peer", &format!("127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("single=127.0.0.1:{peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start raftkv");
        let mut node = Node { child, endpoint, dir };
        node.wait_ready();
        node
    }

    /// Bounded wait until `endpoint health` succeeds.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("raftkv exited with {status} before it was ready:\n{}", self.log());
            }
            let r = run_bash(
                &format!("{} --endpoints={} --command-timeout=1s endpoint health", ctl_path(), self.endpoint),
                Duration::from_secs(30),
            );
            if r.code == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "raftkv not ready after 60s:\n{}", self.log());
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("raftkv.log")).unwrap_or_default()
    }

    /// Runs a command line with `etcdctl` meaning raftkvctl against this node.
    fn sh(&self, cmd: &str) -> Run {
        run_bash(&translate(cmd, &self.endpoint), Duration::from_secs(60))
    }

    /// The store's current revision.
    fn revision(&self) -> i64 {
        let r = self.sh("etcdctl --endpoints=127.0.0.1:22379 get __rev_probe__ -w json");
        assert_eq!(r.code, 0, "{}", show(&r.stderr));
        json(&r.stdout)["header"]["revision"].as_i64().expect("revision")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- normalising

/// Replaces the number after each `"key":` (JSON) or `"Key" : ` (fields)
/// with `N`: values that differ between two clusters.
fn blank_numbers(s: &str, keys: &[&str]) -> String {
    let mut s = s.to_string();
    for key in keys {
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(i) = rest.find(key) {
            let end = i + key.len();
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits > 0 {
                out.push('N');
            }
            rest = &rest[digits..];
        }
        out.push_str(rest);
        s = out;
    }
    s
}

fn normalize(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    blank_numbers(
        &s,
        &[
            "\"cluster_id\":",
            "\"member_id\":",
            "\"raft_term\":",
            "\"ClusterID\" : ",
            "\"MemberID\" : ",
            "\"RaftTerm\" : ",
        ],
    )
}

/// What raftkvctl does instead of etcdctl in a few cases, on purpose.
enum Differs {
    /// etcdctl also dumps its usage and repeats the error: only the first
    /// stderr line and the exit code are compared.
    FirstLine,
    /// Exactly this exit code, stdout and stderr.
    Exactly(i32, &'static str, &'static str),
    /// This exit code, and stderr containing this text.
    Contains(i32, &'static str),
    /// The first stdout line is not etcdctl's (a `grep -c` whose count
    /// depends on the locale): compared without it.
    SkipFirstStdoutLine,
}

fn differs(name: &str) -> Option<Differs> {
    Some(match name {
        "put_dash_value_noescape" | "err_unknown_flag" | "err_unknown_command" => Differs::FirstLine,
        // etcdctl 3.4 has no --count-only; 3.5 accepts it with -w fields only.
        "get_fromkey_empty_countonly" => {
            Differs::Exactly(128, "", "Error: --count-only is only for `--write-out=fields`\n")
        }
        // etcdctl 3.4 panics on every lease compare; raftkvctl reads the
        // lease ID in hex, as etcd 3.5 does (t1 has no lease: 0 matches).
        "txn_cmp_lease_eq_panic" => Differs::Exactly(0, "SUCCESS\n", ""),
        "txn_cmp_lease_bad_panic" => {
            Differs::Exactly(3, "", "Error: invalid txn compare request: lease(\"t1\") = \"zz\"\n")
        }
        // etcdctl panics on an unknown operator.
        "txn_cmp_op_eqeq_panic" | "txn_cmp_op_ge_panic" => Differs::Contains(3, "(unknown operator "),
        "del_range_prevkv" => Differs::SkipFirstStdoutLine,
        _ => return None,
    })
}

/// Requests the server answers differently from etcd today, left out so
/// the replay stays aligned: puts naming a lease that does not exist
/// succeed (leases are not served yet) where etcd says `requested lease not
/// found` (and a write that etcd refused would shift every later revision).
const SERVER_GAPS: &[&str] = &["put_lease_nonexistent", "put_lease_nonexistent_json", "txn_op_put_with_bad_lease"];

fn first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b).lines().next().unwrap_or("").replace("etcdctl", "raftkvctl")
}

fn skip_first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b).split_once('\n').map(|(_, rest)| rest.to_string()).unwrap_or_default()
}

/// Runs one capture's command line on `node` and compares with etcdctl.
fn check_case(node: &Node, name: &str, files: &Path) {
    let c = capture(name);
    let now = node.revision();
    assert_eq!(now, c.rev_before, "{name}: the replay is out of step (revision {now}, captured {})", c.rev_before);
    let r = node.sh(&c.cmd.replace("/tmp/etcdref", &files.to_string_lossy()));
    let expected_err = strip_warn(&c.stderr);
    let ctx = || format!("{name}: {}\n  ours: {} {} {}", c.cmd, r.code, show(&r.stdout), show(&r.stderr));
    match differs(name) {
        None => {
            assert_eq!(r.code, c.code, "{}", ctx());
            assert_eq!(normalize(&r.stdout), normalize(&c.stdout), "{}", ctx());
            assert_eq!(normalize(&r.stderr), normalize(&expected_err), "{}", ctx());
        }
        Some(Differs::FirstLine) => {
            assert_eq!(r.code, c.code, "{}", ctx());
            assert_eq!(first_line(&r.stderr), first_line(&c.stderr), "{}", ctx());
        }
        Some(Differs::Exactly(code, out, err)) => {
            assert_eq!(
                (r.code, show(&r.stdout), show(&r.stderr)),
                (code, show(out.as_bytes()), show(err.as_bytes())),
                "{}",
                ctx()
            );
        }
        Some(Differs::Contains(code, text)) => {
            assert_eq!(r.code, code, "{}", ctx());
            assert!(String::from_utf8_lossy(&r.stderr).contains(text), "{}", ctx());
            assert!(!String::from_utf8_lossy(&r.stderr).contains("panic"), "{}", ctx());
        }
        Some(Differs::SkipFirstStdoutLine) => {
            assert_eq!(r.code, c.code, "{}", ctx());
            assert_eq!(skip_first_line(&r.stdout), skip_first_line(&c.stdout), "{}", ctx());
        }
    }
}

/// One step of the replayed session.
enum Step {
    /// A captured case.
    Case(&'static str),
    /// A write the session made between captures (not captured itself).
    Setup(&'static str),
}

use Step::{Case, Setup};

fn replay(node: &Node, steps: &[Step], files: &Path) {
    for step in steps {
        match step {
            Case(name) if SERVER_GAPS.contains(name) => {}
            Case(name) => check_case(node, name, files),
            Setup(cmd) => {
                let r = node.sh(&format!("etcdctl --endpoints=127.0.0.1:22379 {cmd}"));
                assert_eq!(r.code, 0, "setup {cmd}: {}", show(&r.stderr));
            }
        }
    }
}

/// The input files the session read (`/tmp/etcdref/...`), rebuilt.
fn session_files(dir: &Path) -> PathBuf {
    let d = dir.join("etcdref");
    std::fs::create_dir_all(&d).expect("mkdir");
    let lines = |f: &dyn Fn(usize) -> String, n: usize| (1..=n).map(|i| f(i) + "\n").collect::<String>();
    std::fs::write(d.join("ops128.txt"), lines(&|i| format!("put tm/{i} v"), 128)).expect("write");
    std::fs::write(d.join("ops129.txt"), lines(&|i| format!("put tm/{i} v"), 129)).expect("write");
    std::fs::write(d.join("gets129.txt"), lines(&|i| format!("get tm/{i}"), 129)).expect("write");
    std::fs::write(d.join("cmps129.txt"), lines(&|i| format!("version(\"tm/{i}\") > \"0\""), 129)).expect("write");
    for (name, size) in [("v2m", 2 * 1024 * 1024), ("v15m", 1572864), ("v15m_minus64", 1572800), ("v14m", 1_400_000)] {
        std::fs::write(d.join(name), vec![b'x'; size]).expect("write");
    }
    d
}

#[test]
fn the_etcdctl_session_replays_identically() {
    let node = Node::start();
    let files = session_files(node.dir.path());
    let steps = [
        // §1 put
        Case("put_plain"),
        Case("put_plain_json"),
        Case("put_plain_table"),
        Case("put_prevkv_new"),
        Case("put_prevkv"),
        Case("put_prevkv_json"),
        Case("put_prevkv_table"),
        Case("put_prevkv_new_json"),
        Case("put_ignore_value"),
        Case("put_ignore_value_json"),
        Case("put_ignore_value_missing"),
        Case("put_ignore_value_with_value"),
        Case("put_ignore_lease"),
        Case("put_ignore_lease_missing"),
        Case("put_ignore_lease_missing_json"),
        Case("put_ignore_both"),
        Case("get_p4_after"),
        Case("put_empty_key"),
        Case("put_empty_key_json"),
        Case("put_ignore_lease_with_lease"),
        Case("put_lease_nonexistent"),
        Case("put_lease_nonexistent_json"),
        Case("put_lease_badhex"),
        Case("put_no_args"),
        Case("put_too_many_args"),
        Case("put_value_spaces"),
        Case("get_value_spaces"),
        Case("put_value_newline"),
        Case("get_value_newline"),
        Case("get_value_newline_json"),
        Case("put_value_binary"),
        Case("get_after_put_too_many_args"),
        Case("get_value_binary"),
        Case("get_value_binary_hex"),
        Case("get_value_binary_json"),
        Case("put_stdin"),
        Case("get_stdin"),
        Case("put_stdin_multiline"),
        Case("get_stdin_empty"),
        Case("put_stdin_empty"),
        Case("put_dash_value"),
        Case("put_dash_value_noescape"),
        Case("put_empty_value"),
        Case("get_empty_value"),
        Case("get_empty_value_json"),
        Case("get_fromkey_empty"),
        Case("get_prefix_empty"),
        Case("get_empty_key_noflags"),
        Case("get_no_args"),
        Case("get_fromkey_empty_countonly"),
        // §2 get, on the dataset
        Case("del_cleanup_all"),
        Setup("put a 3"),
        Setup("put c 1"),
        Setup("put b 2"),
        Setup("put d 1"),
        Setup("put a 3"),
        Setup("put c 1"),
        Setup("put c 2"),
        Setup("put ab x"),
        Setup("put e 0"),
        Case("get_dataset_json"),
        Case("get_dataset_fields"),
        Case("get_single_simple"),
        Case("get_single_json"),
        Case("get_single_table"),
        Case("get_prefix_simple"),
        Case("get_prefix_json"),
        Case("get_prefix_table"),
        Case("get_fromkey_simple"),
        Case("get_fromkey_json"),
        Case("get_fromkey_table"),
        Case("get_range_simple"),
        Case("get_range_json"),
        Case("get_range_table"),
        Case("get_missing_simple"),
        Case("get_missing_json"),
        Case("get_missing_table"),
        Case("get_limit_simple"),
        Case("get_limit_json"),
        Case("get_limit_table"),
        Case("get_rev_hist_simple"),
        Case("get_rev_hist_json"),
        Case("get_rev_hist_prefix_simple"),
        Case("get_rev_hist_prefix_json"),
        Case("get_rev_before_create_simple"),
        Case("get_rev_before_create_json"),
        Case("get_rev_current_simple"),
        Case("get_rev_current_json"),
        Case("get_rev_future_simple"),
        Case("get_rev_future_json"),
        Case("get_rev_negative_simple"),
        Case("get_rev_negative_json"),
        Case("get_keysonly_simple"),
        Case("get_keysonly_json"),
        Case("get_printvalueonly_simple"),
        Case("get_printvalueonly_json"),
        Case("get_sort_KEY_default"),
        Case("get_sort_KEY_ASCEND"),
        Case("get_sort_KEY_DESCEND"),
        Case("get_sort_VERSION_default"),
        Case("get_sort_VERSION_ASCEND"),
        Case("get_sort_VERSION_DESCEND"),
        Case("get_sort_CREATE_default"),
        Case("get_sort_CREATE_ASCEND"),
        Case("get_sort_CREATE_DESCEND"),
        Case("get_sort_MODIFY_default"),
        Case("get_sort_MODIFY_ASCEND"),
        Case("get_sort_MODIFY_DESCEND"),
        Case("get_sort_VALUE_default"),
        Case("get_sort_VALUE_ASCEND"),
        Case("get_sort_VALUE_DESCEND"),
        Case("get_order_only_ASCEND"),
        Case("get_order_only_DESCEND"),
        Case("get_order_only_DESCEND_limit_json"),
        Case("get_sort_lowercase"),
        Case("get_sort_bad"),
        Case("get_order_bad"),
        Case("get_sort_limit_json"),
        Case("get_sort_single_key_descend"),
        Case("get_consistency_l"),
        Case("get_consistency_s"),
        Case("get_consistency_bad"),
        Case("get_hex_prefix"),
        Case("get_hex_prefix_json"),
        Case("get_hex_keysonly"),
        Case("put_key_nonutf8"),
        Case("get_key_nonutf8"),
        Case("get_key_nonutf8_json"),
        Case("get_key_nonutf8_hex"),
        Case("put_key_spaces"),
        Case("get_key_spaces"),
        Case("put_key_newline"),
        Case("get_key_newline"),
        Case("get_key_range_inverted"),
        Case("get_limit_negative"),
        Case("get_prefix_and_fromkey"),
        Case("get_range_and_prefix"),
        Case("get_prefix_allff"),
        Case("get_limit_keysonly"),
        // §3 del
        Setup("put x1 v"),
        Setup("put x2 v"),
        Setup("put x3 v"),
        Case("del_single"),
        Case("del_single_json"),
        Case("del_single_table"),
        Case("del_after_table"),
        Case("del_missing"),
        Case("del_missing_json"),
        Case("del_empty_key"),
        Case("del_no_args"),
        Setup("put dp/1 v"),
        Setup("put dp/2 v"),
        Setup("put dp/3 v"),
        Case("del_prefix"),
        Setup("put dq/1 v"),
        Setup("put dq/2 v"),
        Case("del_prefix_json"),
        Case("del_prefix_prevkv"),
        Case("del_prefix_prevkv_json"),
        Case("del_prevkv_missing"),
        Case("del_prevkv_missing_json"),
        Case("del_range_prevkv"),
        Case("del_range_after"),
        Case("del_fromkey"),
        Case("del_fromkey_after"),
        Case("del_single_prevkv"),
        Case("del_range_inverted"),
        Case("del_prefix_fromkey_both"),
        // §4 txn
        Setup("put t1 v1"),
        Setup("put t2 v2"),
        Case("txn_success_simple"),
        Case("txn_failure_simple"),
        Case("txn_success_json"),
        Case("txn_failure_json"),
        Case("txn_success_table"),
        Case("txn_interactive"),
        Case("txn_interactive_json"),
        Case("txn_empty_all"),
        Case("txn_empty_all_json"),
        Case("txn_eof_no_blank"),
        Case("txn_eof_stdin_null"),
        Case("txn_no_trailing_newline"),
        Case("txn_args"),
        Case("txn_cmp_value_eq"),
        Case("txn_cmp_value_ne"),
        Case("txn_cmp_value_gt"),
        Case("txn_cmp_value_lt"),
        Case("txn_cmp_version_eq"),
        Case("txn_cmp_ver_short"),
        Case("txn_cmp_create_eq"),
        Case("txn_cmp_c_short"),
        Case("txn_cmp_create_lt"),
        Case("txn_cmp_mod_eq"),
        Case("txn_cmp_m_short_ne"),
        Case("txn_cmp_val_short"),
        Case("txn_cmp_leading_trailing_ws"),
        Case("txn_cmp_trailing_extra"),
        Case("txn_cmp_go_escape_in_key"),
        Case("txn_cmp_backtick_quotes"),
        Case("txn_cmp_version_negative"),
        Case("txn_cmp_lease_eq_panic"),
        Case("txn_cmp_lease_bad_panic"),
        Case("txn_cmp_op_eqeq_panic"),
        Case("txn_cmp_op_ge_panic"),
        Case("txn_cmp_no_spaces"),
        Case("txn_cmp_space_in_parens"),
        Case("txn_cmp_unquoted_key"),
        Case("txn_cmp_unquoted_value"),
        Case("txn_cmp_single_quotes"),
        Case("txn_cmp_missing_paren"),
        Case("txn_cmp_garbage"),
        Case("txn_cmp_unknown_target"),
        Case("txn_cmp_uppercase_target"),
        Case("txn_cmp_version_nonnumeric"),
        Setup("put tp/1 a"),
        Setup("put tp/2 b"),
        Case("txn_op_get_prefix"),
        Case("txn_op_get_prefix_keysonly"),
        Case("txn_op_get_missing"),
        Case("txn_op_del_prefix_prevkv"),
        Case("txn_op_put_quoted_space"),
        Case("txn_op_put_single_quoted"),
        Case("txn_op_put_prevkv"),
        Case("txn_op_put_missing_value"),
        Case("txn_op_unknown_op"),
        Case("txn_op_get_no_key"),
        Case("txn_op_op_single_word"),
        Case("txn_op_put_with_bad_lease"),
        Case("txn_op_get_count"),
        Case("txn_ops_128"),
        Case("txn_ops_129"),
        Case("txn_ops_129_in_failure"),
        Case("txn_cmps_129"),
        Case("txn_ops_100_plus_100"),
        Case("txn_gets_129"),
        Case("txn_dup_put_put"),
        Case("txn_dup_put_del"),
        Case("txn_dup_put_delprefix"),
        Case("txn_dup_del_del"),
        Case("txn_dup_put_get"),
        Case("txn_dup_across_branches"),
        Case("txn_put_then_get_same"),
        Case("txn_get_then_put_same"),
        Case("txn_del_then_get_same"),
        Case("txn_missing_version_eq0"),
        Case("txn_missing_create_eq0"),
        Case("txn_missing_mod_eq0"),
        Case("txn_missing_value_eq_empty"),
        Case("txn_missing_value_ne_empty"),
        Case("txn_missing_value_gt_empty"),
        Case("txn_missing_value_lt_x"),
        Case("txn_missing_version_lt1"),
        Case("txn_missing_version_gt_neg"),
        // §5 compaction
        Setup("put tev ''"),
        Case("txn_existing_empty_value_eq_empty"),
        Case("txn_multi_cmp_one_false"),
        Case("compaction_plain"),
        Case("compaction_json"),
        Case("compaction_table"),
        Case("compaction_physical"),
        Case("compaction_same_again"),
        Case("compaction_below"),
        Case("compaction_future"),
        Case("compaction_zero"),
        Case("compaction_negative"),
        Case("compaction_nonnumeric"),
        Case("compaction_no_args"),
        Case("get_rev_at_compacted"),
        Case("get_rev_below_compacted"),
        Case("get_rev_below_compacted_json"),
        Case("get_prefix_rev_below_compacted"),
        Case("compaction_current"),
        Case("get_after_compact_current"),
        Case("get_after_compact_current_rev0"),
        Case("put_after_compact_current"),
        // §10 request sizes
        Case("txn_get_rev_compacted"),
        Case("put_2mib"),
        Case("put_1_5mib_exact"),
        Case("put_1_5mib_minus64"),
        Case("put_1_4mb"),
    ];
    replay(&node, &steps, &files);
}
