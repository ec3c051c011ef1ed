//! raftkvctl's output formats and client-side errors against the captured
//! outputs of real etcdctl 3.4.23 (`tests/captures/etcdctl/`). No server:
//! responses are rebuilt from etcdctl's own JSON output, and the binary is
//! run where the answer does not need a server (argument errors, txn
//! grammar errors, unreachable endpoints).

mod support;

use raftkv::ctl::print::{fields, json, simple, table, EpHealth, EpStatus, Format, Printer};
use raftkv::proto::etcdserverpb::{
    response_op, DeleteRangeResponse, PutResponse, RangeResponse, ResponseHeader, ResponseOp, TxnResponse,
};
use raftkv::proto::mvccpb::KeyValue;
use std::net::TcpListener;
use std::time::Duration;
use support::*;

fn manifest() -> Vec<Capture> {
    let text = std::fs::read_to_string(captures_dir().join("cases.tsv")).expect("cases.tsv");
    text.lines().skip(1).filter_map(|l| l.split('\t').next()).map(capture).collect()
}

/// The etcdctl subcommand of a single-invocation command line.
fn subcommand(cmd: &str) -> Option<String> {
    if cmd.matches("etcdctl").count() != 1 || cmd.contains(';') {
        return None;
    }
    let after = cmd.split("etcdctl").nth(1)?;
    let words: Vec<&str> = after.split_whitespace().filter(|w| !w.starts_with("--endpoints")).collect();
    match *words.first()? {
        "endpoint" | "member" => Some(format!("{} {}", words[0], words.get(1)?)),
        w => Some(w.to_string()),
    }
}

/// The JSON line of a capture's stdout (after txn -i prompts, if any).
fn json_line(stdout: &[u8]) -> &[u8] {
    let trimmed = stdout.strip_suffix(b"\n").unwrap_or(stdout);
    let start = trimmed.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    &stdout[start..]
}

#[test]
fn json_matches_every_captured_json_response() {
    let mut checked = 0;
    for c in manifest() {
        if c.code != 0 || !c.cmd.contains("-w json") || c.stdout.is_empty() {
            continue;
        }
        let Some(sub) = subcommand(&c.cmd) else { continue };
        // compaction ignores -w; the other commands are not served yet.
        if !["get", "put", "del", "txn", "endpoint status", "endpoint health", "member list"].contains(&sub.as_str()) {
            continue;
        }
        let line = json_line(&c.stdout);
        let v = json(line);
        let ours = match sub.as_str() {
            "get" => json::range(&range_of(&v)),
            "put" => json::put(&put_of(&v)),
            "del" => json::delete(&delete_of(&v)),
            "txn" => json::txn(&txn_of(&v)),
            "member list" => json::member_list(&member_list_of(&v)),
            "endpoint status" => json::endpoint_status(
                &v.as_array()
                    .expect("array")
                    .iter()
                    .map(|e| EpStatus {
                        ep: e["Endpoint"].as_str().expect("endpoint").to_string(),
                        resp: status_of(&e["Status"]),
                    })
                    .collect::<Vec<_>>(),
            ),
            "endpoint health" => json::endpoint_health(
                &v.as_array()
                    .expect("array")
                    .iter()
                    .map(|e| EpHealth {
                        ep: e["endpoint"].as_str().expect("endpoint").to_string(),
                        health: e["health"].as_bool().expect("health"),
                        took: e["took"].as_str().expect("took").to_string(),
                        error: e.get("error").and_then(|x| x.as_str()).unwrap_or("").to_string(),
                    })
                    .collect::<Vec<_>>(),
            ),
            _ => unreachable!("filtered above"),
        };
        assert_eq!(ours.as_bytes(), line, "{}: {}", c.name, c.cmd);
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} JSON captures checked");
}

fn printer(format: Format, hex: bool) -> Printer {
    Printer { format, hex }
}

#[test]
fn simple_get_matches_captures_of_the_same_state() {
    // (JSON capture, simple capture of the same data, --hex, --print-value-only)
    let pairs = [
        ("get_single_json", "get_single_simple", false, false),
        ("get_prefix_json", "get_prefix_simple", false, false),
        ("get_fromkey_json", "get_fromkey_simple", false, false),
        ("get_range_json", "get_range_simple", false, false),
        ("get_limit_json", "get_limit_simple", false, false),
        ("get_rev_hist_json", "get_rev_hist_simple", false, false),
        ("get_rev_hist_prefix_json", "get_rev_hist_prefix_simple", false, false),
        ("get_rev_current_json", "get_rev_current_simple", false, false),
        ("get_rev_negative_json", "get_rev_negative_simple", false, false),
        ("get_rev_before_create_json", "get_rev_before_create_simple", false, false),
        ("get_missing_json", "get_missing_simple", false, false),
        ("get_keysonly_json", "get_keysonly_simple", false, false),
        ("get_keysonly_json", "get_hex_keysonly", true, false),
        ("get_value_binary_json", "get_value_binary", false, false),
        ("get_value_binary_json", "get_value_binary_hex", true, false),
        ("get_value_newline_json", "get_value_newline", false, false),
        ("get_empty_value_json", "get_empty_value", false, false),
        ("get_key_nonutf8_json", "get_key_nonutf8", false, false),
        ("get_key_nonutf8_json", "get_key_nonutf8_hex", true, false),
        ("get_hex_prefix_json", "get_hex_prefix", true, false),
        ("get_prefix_json", "get_printvalueonly_simple", false, true),
        ("get_dataset_json", "get_sort_KEY_default", false, false),
        ("get_consistency_s", "get_single_simple", false, false),
        ("get_stdin", "get_stdin", false, false),
    ];
    for (j, s, hex, value_only) in pairs {
        let resp = range_of(&json(&capture(j).stdout));
        let expected = capture(s);
        let out = if s == j {
            // The JSON printer again, through the Printer.
            printer(Format::Json, hex).get(&resp, value_only).unwrap()
        } else {
            printer(Format::Simple, hex).get(&resp, value_only).unwrap()
        };
        assert_eq!(show(&out.stdout), show(&expected.stdout), "{j} -> {s}");
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn fields_match_the_captured_fields() {
    for (j, f) in [("get_dataset_json", "get_dataset_fields"), ("get_leased_key_json", "get_leased_key_fields")] {
        let resp = range_of(&json(&capture(j).stdout));
        assert_eq!(show(&fields::get(&resp)), show(&capture(f).stdout), "{f}");
    }
}

fn hdr(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue { key: k.as_bytes().to_vec().into(), value: v.as_bytes().to_vec().into(), ..Default::default() }
}

fn range(kvs: Vec<KeyValue>) -> ResponseOp {
    let count = kvs.len() as i64;
    ResponseOp {
        response: Some(response_op::Response::ResponseRange(RangeResponse { header: hdr(1), kvs, more: false, count })),
    }
}

fn put_op(prev: Option<KeyValue>) -> ResponseOp {
    ResponseOp { response: Some(response_op::Response::ResponsePut(PutResponse { header: hdr(1), prev_kv: prev })) }
}

fn del_op(deleted: i64, prev_kvs: Vec<KeyValue>) -> ResponseOp {
    ResponseOp {
        response: Some(response_op::Response::ResponseDeleteRange(DeleteRangeResponse {
            header: hdr(1),
            deleted,
            prev_kvs,
        })),
    }
}

fn txn(succeeded: bool, responses: Vec<ResponseOp>) -> TxnResponse {
    TxnResponse { header: hdr(1), succeeded, responses }
}

#[test]
fn simple_put_del_txn_match_captures() {
    let p = printer(Format::Simple, false);
    let check = |name: &str, out: Vec<u8>| assert_eq!(show(&out), show(&capture(name).stdout), "{name}");
    check("put_plain", p.put(&PutResponse::default()).unwrap().stdout);
    check("put_prevkv_new", p.put(&PutResponse::default()).unwrap().stdout);
    check("put_prevkv", p.put(&PutResponse { header: hdr(1), prev_kv: Some(kv("p4", "v1")) }).unwrap().stdout);
    check("del_single", p.del(&DeleteRangeResponse { deleted: 1, ..Default::default() }).unwrap().stdout);
    check("del_missing", p.del(&DeleteRangeResponse::default()).unwrap().stdout);
    check(
        "del_prefix_prevkv",
        p.del(&DeleteRangeResponse {
            deleted: 2,
            prev_kvs: vec![kv("dr/1", "v1"), kv("dr/2", "two\nlines")],
            ..Default::default()
        })
        .unwrap()
        .stdout,
    );
    check(
        "txn_success_simple",
        p.txn(&txn(true, vec![put_op(None), range(vec![kv("t1", "v1b")]), del_op(1, vec![])])).unwrap().stdout,
    );
    check(
        "txn_failure_simple",
        p.txn(&txn(false, vec![put_op(None), range(vec![kv("t1", "v1c")]), range(vec![])])).unwrap().stdout,
    );
    check("txn_empty_all", p.txn(&txn(true, vec![])).unwrap().stdout);
    check("txn_op_get_missing", p.txn(&txn(true, vec![range(vec![])])).unwrap().stdout);
    check("txn_op_get_prefix", p.txn(&txn(true, vec![range(vec![kv("tp/1", "a"), kv("tp/2", "b")])])).unwrap().stdout);
    check(
        "txn_op_get_prefix_keysonly",
        p.txn(&txn(true, vec![range(vec![kv("tp/1", ""), kv("tp/2", "")])])).unwrap().stdout,
    );
    check(
        "txn_op_del_prefix_prevkv",
        p.txn(&txn(true, vec![del_op(2, vec![kv("tp/1", "a"), kv("tp/2", "b")])])).unwrap().stdout,
    );
    check("txn_op_put_prevkv", p.txn(&txn(true, vec![put_op(Some(kv("tq", "hello world")))])).unwrap().stdout);
    check("txn_dup_del_del", p.txn(&txn(true, vec![del_op(0, vec![]), del_op(0, vec![])])).unwrap().stdout);
    check(
        "txn_get_then_put_same",
        p.txn(&txn(true, vec![range(vec![kv("td4", "new")]), put_op(None), range(vec![kv("td4", "newer")])]))
            .unwrap()
            .stdout,
    );
    check("txn_del_then_get_same", p.txn(&txn(true, vec![del_op(1, vec![]), range(vec![])])).unwrap().stdout);
}

#[test]
fn table_is_refused_where_etcdctl_has_none() {
    let t = printer(Format::Table, false);
    let msg = capture("get_single_table");
    assert_eq!(msg.code, 4);
    for err in [
        t.get(&RangeResponse::default(), false).unwrap_err(),
        t.put(&PutResponse::default()).unwrap_err(),
        t.del(&DeleteRangeResponse::default()).unwrap_err(),
        t.txn(&TxnResponse::default()).unwrap_err(),
    ] {
        assert_eq!(err.code, msg.code);
        assert_eq!(show(err.stderr_line().as_bytes()), show(&msg.stderr));
    }
}

fn statuses(name: &str) -> Vec<EpStatus> {
    json(&capture(name).stdout)
        .as_array()
        .expect("array")
        .iter()
        .map(|e| EpStatus { ep: e["Endpoint"].as_str().expect("ep").to_string(), resp: status_of(&e["Status"]) })
        .collect()
}

#[test]
fn endpoint_status_simple_and_table_match_captures() {
    for (j, s, t) in [
        ("endpoint_status_json", "endpoint_status_simple", "endpoint_status_table"),
        (
            "cluster_endpoint_status_cluster_json",
            "cluster_endpoint_status_cluster_simple",
            "cluster_endpoint_status_cluster_table",
        ),
    ] {
        let list = statuses(j);
        assert_eq!(show(&simple::endpoint_status(&list)), show(&capture(s).stdout), "{s}");
        assert_eq!(show(table::endpoint_status(&list).as_bytes()), show(&capture(t).stdout), "{t}");
    }
    // No endpoint answered: an empty table, and `[]`.
    assert_eq!(show(table::endpoint_status(&[]).as_bytes()), show(&capture("dead_endpoint_status_table").stdout));
    assert_eq!(show(json::endpoint_status(&[]).as_bytes()), show(&capture("dead_endpoint_status_json").stdout));
    // An error in the ERRORS column.
    let mut list = statuses("endpoint_status_json");
    list[0].ep = "127.0.0.1:22371".into();
    let r = &mut list[0].resp;
    if let Some(h) = r.header.as_mut() {
        h.member_id = 0x8d239885c6111604;
    }
    (r.leader, r.raft_term, r.raft_index, r.raft_applied_index, r.db_size) = (0, 4, 12, 12, 24576);
    r.errors = vec!["etcdserver: no leader".into()];
    assert_eq!(show(table::endpoint_status(&list).as_bytes()), show(&capture("cluster_noquorum_status_table").stdout));
}

#[test]
fn member_list_simple_and_table_match_captures() {
    let r = member_list_of(&json(&capture("member_list_json").stdout));
    assert_eq!(show(&simple::member_list(&r)), show(&capture("member_list_simple").stdout));
    assert_eq!(show(table::member_list(&r).as_bytes()), show(&capture("member_list_table").stdout));
    let three = member_list_of(&json(&capture("cluster_member_list_json").stdout));
    assert_eq!(three.members.len(), 3);
    let out = printer(Format::Fields, false).member_list(&three).unwrap().stdout;
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("\"ClusterID\" : 1005359026988465051\n"), "{text}");
    assert!(text.contains("\"Name\" : \"c2\"\n\"PeerURL\" : \"http://127.0.0.1:22382\"\n\"ClientURL\" : \"http://127.0.0.1:22372\"\n\"IsLearner\" : false\n\n"), "{text}");
}

fn health(ep: &str, took: &str, error: &str) -> EpHealth {
    EpHealth { ep: ep.into(), health: error.is_empty(), took: took.into(), error: error.into() }
}

#[test]
fn endpoint_health_formats_match_captures() {
    let p = |f| printer(f, false);
    let healthy = [health("127.0.0.1:22379", "1.517636ms", "")];
    let out = p(Format::Simple).endpoint_health(&healthy).unwrap();
    assert!(out.stdout.is_empty(), "simple health goes to stderr");
    assert_eq!(show(&out.stderr), show(&capture("endpoint_health_simple").stderr));
    let out = p(Format::Json).endpoint_health(&[health("127.0.0.1:22379", "1.380789ms", "")]).unwrap();
    assert_eq!(show(&out.stdout), show(&capture("endpoint_health_json").stdout));
    let out = p(Format::Table).endpoint_health(&[health("127.0.0.1:22379", "1.261425ms", "")]).unwrap();
    assert_eq!(show(&out.stdout), show(&capture("endpoint_health_table").stdout));
    let dead = "context deadline exceeded";
    let out = p(Format::Table).endpoint_health(&[health("127.0.0.1:22399", "5.000558929s", dead)]).unwrap();
    assert_eq!(show(&out.stdout), show(&capture("dead_endpoint_health_table").stdout));
    let out = p(Format::Table)
        .endpoint_health(&[health("127.0.0.1:22379", "2.740309ms", ""), health("127.0.0.1:22399", "5.00083125s", dead)])
        .unwrap();
    assert_eq!(show(&out.stdout), show(&capture("multi_ep_health_table").stdout));
    let out = p(Format::Simple)
        .endpoint_health(&[
            health("http://127.0.0.1:22372", "3.171577ms", ""),
            health("http://127.0.0.1:22371", "3.387642ms", ""),
            health("http://127.0.0.1:22373", "x", dead),
        ])
        .unwrap();
    let expected = strip_warn(&capture("cluster_1down_health_cluster").stderr);
    let expected = String::from_utf8_lossy(&expected).replace("Error: unhealthy cluster\n", "");
    assert_eq!(show(&out.stderr), show(expected.as_bytes()));
}

// ---------------------------------------------------------------- the binary

/// An address where nothing listens.
fn dead_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr").to_string();
    drop(l);
    a
}

#[test]
fn client_side_errors_match_etcdctl_exactly() {
    // These fail before any request is sent, so no server is needed: the
    // captured stdout, stderr and exit code must match byte for byte.
    let cases = [
        "put_no_args",
        "put_stdin_empty",
        "put_ignore_value_with_value",
        "put_lease_badhex",
        "get_no_args",
        "get_prefix_and_fromkey",
        "get_range_and_prefix",
        "get_consistency_bad",
        "get_sort_bad",
        "get_order_bad",
        "del_no_args",
        "del_prefix_fromkey_both",
        "compaction_no_args",
        "compaction_nonnumeric",
        "txn_args",
        "txn_eof_no_blank",
        "txn_eof_stdin_null",
        "txn_no_trailing_newline",
        "txn_cmp_no_spaces",
        "txn_cmp_space_in_parens",
        "txn_cmp_unquoted_key",
        "txn_cmp_unquoted_value",
        "txn_cmp_single_quotes",
        "txn_cmp_missing_paren",
        "txn_cmp_garbage",
        "txn_cmp_unknown_target",
        "txn_cmp_uppercase_target",
        "txn_cmp_version_nonnumeric",
        "txn_op_put_missing_value",
        "txn_op_unknown_op",
        "txn_op_get_no_key",
        "txn_op_op_single_word",
        "err_bad_write_out",
        "err_bad_write_out_put",
    ];
    let dead = dead_endpoint();
    for name in cases {
        let c = capture(name);
        let r = run_bash(&translate(&c.cmd, &dead), Duration::from_secs(20));
        assert_eq!(
            (r.code, show(&r.stdout), show(&r.stderr)),
            (c.code, show(&c.stdout), show(&c.stderr)),
            "{name}: {}",
            c.cmd
        );
    }
}

#[test]
fn cobra_style_errors_keep_etcdctl_first_line_and_exit_code() {
    // etcdctl also prints its usage on stdout and the error twice; raftkvctl
    // prints the error once.
    let dead = dead_endpoint();
    for name in ["put_dash_value_noescape", "err_unknown_flag", "err_unknown_command"] {
        let c = capture(name);
        let r = run_bash(&translate(&c.cmd, &dead), Duration::from_secs(20));
        let first = |b: &[u8]| String::from_utf8_lossy(b).lines().next().unwrap_or("").replace("etcdctl", "raftkvctl");
        assert_eq!(r.code, c.code, "{name}");
        assert_eq!(first(&r.stderr), first(&c.stderr), "{name}");
        assert!(r.stdout.is_empty(), "{name}: no usage dump");
    }
}

#[test]
fn where_etcdctl_panics_raftkvctl_gives_an_error_and_exit_code_3() {
    let dead = dead_endpoint();
    for name in ["txn_cmp_op_eqeq_panic", "txn_cmp_op_ge_panic"] {
        let c = capture(name);
        assert_eq!(c.code, 2, "etcdctl panicked");
        let r = run_bash(&translate(&c.cmd, &dead), Duration::from_secs(20));
        assert_eq!(r.code, 3, "{name}: {}", show(&r.stderr));
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.starts_with("Error: malformed comparison: value(\"t1\") ") && err.contains("unknown operator"),
            "{err}"
        );
        assert!(!err.contains("panic"), "{err}");
    }
}

/// A capture's command against an unreachable endpoint, with a 1 s command
/// timeout to keep the test short (etcdctl's captures used 5 s).
fn run_dead(name: &str, dead: &str) -> (Capture, Run) {
    let c = capture(name);
    let mut cmd = c.cmd.replace("127.0.0.1:22399", dead);
    if !cmd.contains("--command-timeout") {
        cmd = cmd.replacen(" --endpoints=", " --command-timeout=1s --endpoints=", 1);
    }
    let r = run_bash(&translate(&cmd, dead), Duration::from_secs(30));
    // Our endpoint back to the captured one, for comparison.
    let fix = |b: &[u8]| String::from_utf8_lossy(b).replace(dead, "127.0.0.1:22399").into_bytes();
    let r = Run { code: r.code, stdout: fix(&r.stdout), stderr: fix(&r.stderr) };
    (c, r)
}

/// `"took":"..."` and `took = ...` values blanked.
fn blank_took(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b).to_string();
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("\"took\":\"") {
        out.push_str(&rest[..i + 8]);
        rest = &rest[i + 8..];
        let end = rest.find('"').unwrap_or(0);
        out.push('T');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn unreachable_endpoints_fail_like_etcdctl() {
    let dead = dead_endpoint();
    let exact = [
        "dead_get",
        "dead_put",
        "dead_get_json",
        "dead_get_cmd1s",
        "dead_endpoint_status",
        "dead_endpoint_status_json",
        "dead_endpoint_status_table",
        "dead_endpoint_health",
    ];
    std::thread::scope(|s| {
        for name in exact {
            let dead = dead.clone();
            s.spawn(move || {
                let (c, r) = run_dead(name, &dead);
                assert_eq!(
                    (r.code, show(&r.stdout), show(&r.stderr)),
                    (c.code, show(&c.stdout), show(&strip_warn(&c.stderr))),
                    "{name}"
                );
            });
        }
        let dead = dead.clone();
        s.spawn(move || {
            let (c, r) = run_dead("dead_endpoint_health_json", &dead);
            assert_eq!(r.code, c.code);
            assert_eq!(blank_took(&r.stdout), blank_took(&c.stdout));
            assert_eq!(show(&r.stderr), show(&strip_warn(&c.stderr)));
        });
    });
}

#[test]
fn a_listener_that_never_answers_times_out_like_etcdctl() {
    // blackhole_get: TCP accepted, nothing ever said.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let ep = l.local_addr().expect("addr").to_string();
    let c = capture("blackhole_get");
    let cmd = c.cmd.replace("127.0.0.1:22398", &ep).replace("--command-timeout=3s", "--command-timeout=1s");
    let started = std::time::Instant::now();
    let r = run_bash(&translate(&cmd, &ep), Duration::from_secs(30));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!((r.code, show(&r.stdout), show(&r.stderr)), (c.code, show(&c.stdout), show(&strip_warn(&c.stderr))));
    drop(l);
}

#[test]
fn a_malformed_endpoint_is_refused_at_once() {
    // etcdctl takes "127.0.0.1:22399 127.0.0.1:22379" as one target and
    // times out after --command-timeout; raftkvctl says what is wrong.
    let c = capture("endpoints_space_sep");
    assert_eq!(c.code, 1);
    let started = std::time::Instant::now();
    let r = run_bash(&translate(&c.cmd, "127.0.0.1:22379"), Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(2), "no waiting for a timeout");
    assert_eq!(r.code, 2);
    assert_eq!(
        show(&r.stderr),
        show(b"Error: invalid endpoint \"127.0.0.1:22399 127.0.0.1:22379\": expected HOST:PORT\n")
    );
}

// ---------------------------------------------------------------- watch

/// A watch capture's stdout (`tests/captures/etcdctl/watch/`).
fn watch_capture(name: &str) -> Vec<u8> {
    std::fs::read(captures_dir().join(format!("watch/{name}.stdout"))).expect("watch capture")
}

/// etcdctl's JSON of a `clientv3.WatchResponse`, read back.
fn watch_of(v: &serde_json::Value) -> raftkv::proto::etcdserverpb::WatchResponse {
    use raftkv::proto::mvccpb::Event;
    let h = &v["Header"];
    let n = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
    let u = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    raftkv::proto::etcdserverpb::WatchResponse {
        header: Some(ResponseHeader {
            cluster_id: u(h, "cluster_id"),
            member_id: u(h, "member_id"),
            revision: n(h, "revision"),
            raft_term: u(h, "raft_term"),
        }),
        events: v["Events"]
            .as_array()
            .expect("Events")
            .iter()
            .map(|e| Event {
                r#type: n(e, "type") as i32,
                kv: e.get("kv").map(kv_of),
                prev_kv: e.get("prev_kv").map(kv_of),
            })
            .collect(),
        compact_revision: n(v, "CompactRevision"),
        canceled: v["Canceled"].as_bool().expect("Canceled"),
        created: v["Created"].as_bool().expect("Created"),
        ..Default::default()
    }
}

/// The JSON lines of a watch capture, as responses.
fn watch_json(name: &str) -> Vec<(String, raftkv::proto::etcdserverpb::WatchResponse)> {
    // Other lines (simple output, exec output) may be binary.
    String::from_utf8_lossy(&watch_capture(name))
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| (l.to_string(), watch_of(&serde_json::from_str(l).expect("JSON line"))))
        .collect()
}

#[test]
fn watch_json_matches_every_captured_line() {
    let text = std::fs::read_to_string(captures_dir().join("watch/cases.tsv")).expect("cases.tsv");
    let mut checked = 0;
    for name in text.lines().skip(1).filter_map(|l| l.split('\t').next()) {
        if name.starts_with("gw_") {
            continue; // the gateway's JSON, not etcdctl's
        }
        for (line, resp) in watch_json(name) {
            assert_eq!(json::watch(&resp), format!("{line}\n"), "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} watch JSON lines checked");
}

#[test]
fn watch_simple_matches_captures_of_the_same_events() {
    // (JSON capture, simple capture of the same events)
    let pairs = [
        ("json", "simple"),
        ("json_sigterm", "simple_sighup"),
        ("prefix_json", "prefix"),
        ("range_json", "range"),
        ("del_prefix_one_rev", "del_prefix_one_rev_simple"),
        ("prevkv_json", "prevkv"),
        ("txn_prefix_json", "txn_prefix"),
        ("value_special_json", "value_special"),
        ("rev1_history_json", "rev1_history"),
        ("compacted_json", "compacted"),
        ("compacted_rev_negative1_json", "compacted_rev_negative1"),
        ("compacted_rev_equal_json", "compacted_rev_equal"),
    ];
    let p = printer(Format::Simple, false);
    for (j, s) in pairs {
        let mut ours = Vec::new();
        for (_, r) in watch_json(j) {
            ours.extend(p.watch(&r).expect("simple"));
        }
        assert_eq!(show(&ours), show(&watch_capture(s)), "{j} -> {s}");
    }
    // --hex: `hex` saw a put of foo=bar and its delete.
    let mut ours = Vec::new();
    let (put, del) = (&watch_json("json")[0].1, &watch_json("json")[2].1);
    for r in [put, del] {
        ours.extend(printer(Format::Simple, true).watch(r).expect("hex"));
    }
    assert_eq!(show(&ours), show(&watch_capture("hex")));
}

fn watch_kv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec().into(),
        create_revision: create,
        mod_revision: modr,
        version,
        value: value.as_bytes().to_vec().into(),
        lease: 0,
    }
}

fn watch_resp(revision: i64, events: Vec<raftkv::proto::mvccpb::Event>) -> raftkv::proto::etcdserverpb::WatchResponse {
    raftkv::proto::etcdserverpb::WatchResponse {
        header: Some(ResponseHeader {
            cluster_id: 1655555989984167666,
            member_id: 8634260996663806492,
            revision,
            raft_term: 2,
        }),
        events,
        ..Default::default()
    }
}

fn ev(t: i32, kv: KeyValue, prev: Option<KeyValue>) -> raftkv::proto::mvccpb::Event {
    raftkv::proto::mvccpb::Event { r#type: t, kv: Some(kv), prev_kv: prev }
}

#[test]
fn watch_fields_and_protobuf_match_captures() {
    let p = printer(Format::Fields, false);
    // `fields`: put foo bar, put foo baz, del foo.
    let del = KeyValue { key: b"foo".to_vec().into(), mod_revision: 15, ..Default::default() };
    let mut ours = Vec::new();
    for r in [
        watch_resp(13, vec![ev(0, watch_kv("foo", "bar", 12, 13, 2), None)]),
        watch_resp(14, vec![ev(0, watch_kv("foo", "baz", 12, 14, 3), None)]),
        watch_resp(15, vec![ev(1, del, None)]),
    ] {
        ours.extend(p.watch(&r).expect("fields"));
    }
    assert_eq!(show(&ours), show(&watch_capture("fields")));
    // `prevkv_fields`: the prev kv first, prefixed.
    let mut ours = Vec::new();
    for r in [
        watch_resp(66, vec![ev(0, watch_kv("pk", "v1", 66, 66, 1), None)]),
        watch_resp(67, vec![ev(0, watch_kv("pk", "v2", 66, 67, 2), Some(watch_kv("pk", "v1", 66, 66, 1)))]),
    ] {
        ours.extend(p.watch(&r).expect("fields"));
    }
    assert_eq!(show(&ours), show(&watch_capture("prevkv_fields")));
    // `compacted_fields`: the cancel response's header, revision 0.
    let (_, cancel) = &watch_json("compacted_json")[0];
    assert_eq!(show(&p.watch(cancel).expect("fields")), show(&watch_capture("compacted_fields")));
    // `protobuf`: a put of foo=bar, without watch id.
    let r = watch_resp(17, vec![ev(0, watch_kv("foo", "bar", 16, 17, 2), None)]);
    let mut with_id = r.clone();
    with_id.watch_id = 3;
    assert_eq!(printer(Format::Protobuf, false).watch(&with_id).expect("protobuf"), watch_capture("protobuf"));
    // `table`: refused when the first response comes.
    let e = printer(Format::Table, false).watch(&r).expect_err("table");
    assert_eq!((e.code, e.stderr_line()), (4, "Error: table not supported as output format\n".to_string()));
}
