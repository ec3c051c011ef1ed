//! raftkvctl's `lease` output formats, help texts and client-side errors
//! against the captures of real etcdctl 3.4.23 (`tests/captures/etcdctl/
//! lease/`). No server: answers are rebuilt from etcdctl's own JSON output
//! of the same state, and the binary is run where no server is needed
//! (help, argument errors).

mod support;

use raftkv::ctl::print::{fields, json, simple, Format, Printer};
use raftkv::proto::etcdserverpb::{
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveResponse, ResponseHeader,
};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use support::*;

fn lease_dir() -> PathBuf {
    captures_dir().join("lease")
}

/// One lease capture: (exit code, command line, stdout, stderr).
struct Cap {
    code: i32,
    cmd: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn cap(name: &str) -> Cap {
    let dir = lease_dir();
    let tsv = std::fs::read_to_string(dir.join("cases.tsv")).expect("lease cases.tsv");
    let cols: Vec<String> = tsv
        .lines()
        .find(|l| l.split('\t').next() == Some(name))
        .unwrap_or_else(|| panic!("no lease capture {name}"))
        .split('\t')
        .map(str::to_string)
        .collect();
    Cap {
        code: cols[1].parse().expect("exit code"),
        cmd: cols[2].clone(),
        stdout: std::fs::read(dir.join(format!("{name}.stdout"))).expect("stdout"),
        stderr: std::fs::read(dir.join(format!("{name}.stderr"))).expect("stderr"),
    }
}

fn out(name: &str) -> String {
    String::from_utf8_lossy(&cap(name).stdout).into_owned()
}

// ---------------------------------------------------------------- answers from JSON

fn i64_at(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// clientv3's lease structs embed the header: its fields are top-level.
fn flat_header(v: &Value) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: v.get("cluster_id").and_then(Value::as_u64).unwrap_or(0),
        member_id: v.get("member_id").and_then(Value::as_u64).unwrap_or(0),
        revision: i64_at(v, "revision"),
        raft_term: v.get("raft_term").and_then(Value::as_u64).unwrap_or(0),
    })
}

fn grant_of(v: &Value) -> LeaseGrantResponse {
    LeaseGrantResponse {
        header: flat_header(v),
        id: i64_at(v, "ID"),
        ttl: i64_at(v, "TTL"),
        error: v["Error"].as_str().unwrap_or("").to_string(),
    }
}

fn keep_alive_of(v: &Value) -> LeaseKeepAliveResponse {
    LeaseKeepAliveResponse { header: flat_header(v), id: i64_at(v, "ID"), ttl: i64_at(v, "TTL") }
}

fn ttl_of(v: &Value) -> LeaseTimeToLiveResponse {
    use base64::Engine as _;
    let keys = v["keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|k| {
                    base64::engine::general_purpose::STANDARD.decode(k.as_str().expect("key")).expect("base64").into()
                })
                .collect()
        })
        .unwrap_or_default();
    LeaseTimeToLiveResponse {
        header: flat_header(v),
        id: i64_at(v, "id"),
        ttl: i64_at(v, "ttl"),
        granted_ttl: i64_at(v, "granted-ttl"),
        keys,
    }
}

fn leases_of(v: &Value) -> LeaseLeasesResponse {
    let leases = v["leases"].as_array().expect("leases").iter().map(|l| LeaseStatus { id: i64_at(l, "id") }).collect();
    LeaseLeasesResponse { header: flat_header(v), leases }
}

fn revoke_of(v: &Value) -> LeaseRevokeResponse {
    LeaseRevokeResponse { header: header_of(v) }
}

fn json_of(name: &str) -> Value {
    json(&cap(name).stdout)
}

/// Each line of a capture's stdout as JSON (continuous keep-alive).
fn json_lines(name: &str) -> Vec<Value> {
    out(name).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn printer(format: Format) -> Printer {
    Printer { format, hex: false }
}

// ---------------------------------------------------------------- formats

#[test]
fn json_matches_every_captured_lease_json() {
    let mut checked = 0;
    let tsv = std::fs::read_to_string(lease_dir().join("cases.tsv")).expect("cases.tsv");
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, code, cmd) = (cols[0], cols[1], cols[2]);
        if code != "0" || !cmd.contains("-w json") || !cmd.contains(" lease ") {
            continue;
        }
        for text in out(name).lines() {
            let v: Value = serde_json::from_str(text).expect("JSON");
            let ours = if cmd.contains(" lease grant ") {
                json::lease_grant(&grant_of(&v))
            } else if cmd.contains(" lease revoke ") {
                json::lease_revoke(&revoke_of(&v))
            } else if cmd.contains(" lease timetolive ") {
                json::lease_time_to_live(&ttl_of(&v))
            } else if cmd.contains(" lease list") {
                json::lease_leases(&leases_of(&v))
            } else if cmd.contains(" lease keep-alive ") {
                json::lease_keep_alive(&keep_alive_of(&v))
            } else {
                panic!("{name}: unexpected command {cmd}");
            };
            assert_eq!(ours, format!("{text}\n"), "{name}: {cmd}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} JSON lines checked");
}

#[test]
fn list_in_every_format() {
    let p = |f| printer(f);
    for (j, s, f) in [
        ("list_empty_json", "list_empty", Some("list_empty_fields")),
        ("list_one_json", "list_one", None),
        ("list_three_json", "list_three", Some("list_three_fields")),
        ("gw_ctl_list_negative_json", "gw_ctl_list_negative", None),
    ] {
        let r = leases_of(&json_of(j));
        assert_eq!(show(&p(Format::Simple).lease_leases(&r).unwrap().stdout), show(&cap(s).stdout), "{s}");
        if let Some(f) = f {
            assert_eq!(show(&p(Format::Fields).lease_leases(&r).unwrap().stdout), show(&cap(f).stdout), "{f}");
        }
    }
}

#[test]
fn time_to_live_in_every_format() {
    // (JSON capture, simple capture of the same state, --keys, fields
    // capture of the same state)
    for (j, s, keys, f) in [
        ("grant_1_timetolive_json", Some("grant_1_timetolive"), false, None),
        ("ttl_0keys_json", Some("ttl_0keys"), false, Some("ttl_0keys_fields")),
        ("ttl_0keys_keys_json", Some("ttl_0keys_keys"), true, None),
        ("ttl_1key_json", Some("ttl_1key"), true, Some("ttl_1key_fields")),
        ("ttl_2keys_json", None, true, Some("ttl_2keys_fields")),
        ("ttl_2keys_nokeysflag_json", Some("ttl_2keys_nokeysflag"), false, None),
        ("ttl_unknown_json", Some("ttl_unknown"), false, Some("ttl_unknown_fields")),
        ("ttl_unknown_keys_json", Some("ttl_unknown_keys"), true, None),
        ("ttl_revoked_json", Some("ttl_revoked"), false, None),
        ("expiry_ttl_start_json", Some("expiry_ttl_start"), true, None),
        ("expiry_ttl_after_json", Some("expiry_ttl_after"), true, None),
    ] {
        let r = ttl_of(&json_of(j));
        if let Some(s) = s {
            let ours = printer(Format::Simple).lease_time_to_live(&r, keys).unwrap().stdout;
            assert_eq!(show(&ours), show(&cap(s).stdout), "{s}");
        }
        if let Some(f) = f {
            let ours = printer(Format::Fields).lease_time_to_live(&r, keys).unwrap().stdout;
            assert_eq!(show(&ours), show(&cap(f).stdout), "{f}");
        }
    }
    // etcd listed the two keys in Go map order; raftkvctl prints them in
    // the order of the answer.
    let mut r = ttl_of(&json_of("ttl_2keys_json"));
    r.keys.reverse();
    assert_eq!(show(&simple::lease_time_to_live(&r, true)), show(&cap("ttl_2keys").stdout));
    // A negative id (granted through the gateway) as Go's %016x.
    let neg = LeaseTimeToLiveResponse { id: -5, ttl: 29, granted_ttl: 30, ..Default::default() };
    assert_eq!(show(&simple::lease_time_to_live(&neg, false)), show(&cap("gw_ctl_ttl_negative").stdout));
    assert_eq!(cap("gw_ctl_ttl_negative").stdout, cap("gw_ctl_ttl_negative_hex").stdout);
}

#[test]
fn grant_in_every_format() {
    // list_one lists the lease grant_60 made.
    let id = i64::from_str_radix(out("list_one").lines().nth(1).expect("id line"), 16).expect("hex id");
    let r = LeaseGrantResponse { id, ttl: 60, ..Default::default() };
    assert_eq!(show(&printer(Format::Simple).lease_grant(&r).unwrap().stdout), show(&cap("grant_60").stdout));
    // The fields capture is another grant of the same state: its header is
    // grant_60_json's, its id its own.
    let mut r = grant_of(&json_of("grant_60_json"));
    let fields_out = out("grant_60_fields");
    r.id = fields_out.lines().find_map(|l| l.strip_prefix("\"ID\" : ")).expect("ID").parse().expect("id");
    assert_eq!(show(&fields::lease_grant(&r)), show(fields_out.as_bytes()));
    // protobuf: only the embedded header is marshalled.
    let pb = printer(Format::Protobuf).lease_grant(&grant_of(&json_of("grant_60_json"))).unwrap().stdout;
    assert_eq!(pb, cap("grant_60_protobuf").stdout);
    // Below the minimum TTL the answer's TTL is the server's.
    for name in ["grant_1", "grant_0", "grant_neg5_dashdash"] {
        let text = out(name);
        let id = i64::from_str_radix(text.split(' ').nth(1).expect("id"), 16).expect("hex");
        let r = LeaseGrantResponse { id, ttl: 2, ..Default::default() };
        assert_eq!(show(&simple::lease_grant(&r)), show(text.as_bytes()), "{name}");
    }
}

#[test]
fn revoke_in_every_format() {
    let c = cap("revoke");
    let id = i64::from_str_radix(c.cmd.rsplit(' ').next().expect("id"), 16).expect("hex id");
    let r = revoke_of(&json_of("revoke_json"));
    assert_eq!(show(&printer(Format::Simple).lease_revoke(id, &r).unwrap().stdout), show(&c.stdout));
    // Same revision and ids as revoke_json.
    assert_eq!(show(&printer(Format::Fields).lease_revoke(id, &r).unwrap().stdout), show(&cap("revoke_fields").stdout));
}

#[test]
fn keep_alive_in_every_format() {
    let once = keep_alive_of(&json_of("keepalive_once_json"));
    for (f, name) in [(Format::Simple, "keepalive_once"), (Format::Fields, "keepalive_once_fields")] {
        assert_eq!(show(&printer(f).lease_keep_alive(&once).unwrap()), show(&cap(name).stdout), "{name}");
    }
    // Continuous: one line per renewal.
    let lines: Vec<u8> = json_lines("keepalive_continuous_ttl3_json")
        .iter()
        .flat_map(|v| printer(Format::Simple).lease_keep_alive(&keep_alive_of(v)).unwrap())
        .collect();
    assert_eq!(show(&lines), show(&cap("keepalive_continuous_ttl3").stdout));
    // The end of a lease, in the simple format only.
    assert_eq!(show(&simple::lease_keep_alive_lost(0x1234abcd)), show(&cap("keepalive_unknown").stdout));
    assert!(cap("keepalive_unknown_json").stdout.is_empty());
    let revoked = out("keepalive_revoked");
    let id = i64::from_str_radix(revoked.split(' ').nth(1).expect("id"), 16).expect("hex");
    let mut expected = simple::lease_keep_alive(&LeaseKeepAliveResponse { id, ttl: 3, ..Default::default() });
    expected.extend(simple::lease_keep_alive_lost(id));
    assert_eq!(show(&expected), show(revoked.as_bytes()));
}

#[test]
fn table_is_refused_after_the_request_as_etcdctl_does() {
    let t = printer(Format::Table);
    let errors = [
        ("list_empty_table", t.lease_leases(&LeaseLeasesResponse::default()).unwrap_err()),
        ("grant_60_table", t.lease_grant(&LeaseGrantResponse::default()).unwrap_err()),
        ("ttl_0keys_table", t.lease_time_to_live(&LeaseTimeToLiveResponse::default(), false).unwrap_err()),
        ("revoke_table", t.lease_revoke(1, &LeaseRevokeResponse::default()).unwrap_err()),
        ("keepalive_once_table", t.lease_keep_alive(&LeaseKeepAliveResponse::default()).unwrap_err()),
    ];
    for (name, err) in errors {
        let c = cap(name);
        assert_eq!((err.code, show(err.stderr_line().as_bytes())), (c.code, show(&c.stderr)), "{name}");
    }
}

#[test]
fn leased_keys_show_their_lease_in_get_output() {
    let r = range_of(&json_of("get_leased_json"));
    assert_eq!(r.kvs[0].lease, 1624852036184215648);
    assert_eq!(json::range(&r).into_bytes(), cap("get_leased_json").stdout);
    assert_eq!(show(&fields::get(&r)), show(&cap("get_leased_fields").stdout));
    assert_eq!(show(&simple::get(&r, false, false)), show(&cap("get_leased").stdout));
}

// ---------------------------------------------------------------- the binary

fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr").to_string();
    drop(l);
    a
}

fn run_capture(name: &str, endpoint: &str) -> (Cap, Run) {
    let c = cap(name);
    let r =
        run_bash(&translate(&c.cmd.replace("127.0.0.1:22579", "127.0.0.1:22379"), endpoint), Duration::from_secs(20));
    (c, r)
}

/// Whitespace runs as one space (tab padding depends on the other rows).
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn help_texts_match_etcdctl_up_to_the_global_options() {
    let dead = dead_endpoint();
    for name in [
        "help_lease",
        "help_lease_nosub",
        "help_lease_unknown_sub",
        "help_grant",
        "help_revoke",
        "help_timetolive",
        "help_list",
        "help_keepalive",
    ] {
        let (c, r) = run_capture(name, &dead);
        assert_eq!((r.code, show(&r.stderr)), (c.code, show(&c.stderr)), "{name}");
        let theirs = String::from_utf8_lossy(&c.stdout).replace("etcdctl", "raftkvctl");
        let ours = String::from_utf8_lossy(&r.stdout).into_owned();
        let split = |s: &str| {
            let i = s.find("GLOBAL OPTIONS:\n").expect("a GLOBAL OPTIONS section") + "GLOBAL OPTIONS:\n".len();
            (s[..i].to_string(), s[i..].to_string())
        };
        let ((their_head, their_globals), (our_head, our_globals)) = (split(&theirs), split(&ours));
        assert_eq!(our_head, their_head, "{name}");
        // raftkvctl lists only the global flags it has, in etcdctl's words.
        let known: Vec<String> = their_globals.lines().map(squeeze).collect();
        for line in our_globals.lines().filter(|l| !l.is_empty()) {
            assert!(known.contains(&squeeze(line)), "{name}: {line:?} is not one of etcdctl's");
        }
        assert!(our_globals.contains("--endpoints=[127.0.0.1:2379]"), "{name}");
        assert!(our_globals.ends_with("table)\n\n"), "{name}: {our_globals:?}");
    }
}

#[test]
fn argument_errors_match_etcdctl_exactly() {
    // These fail before any request, so no server is needed.
    let dead = dead_endpoint();
    let tsv = std::fs::read_to_string(lease_dir().join("cases.tsv")).expect("cases.tsv");
    let names: Vec<String> = tsv
        .lines()
        .filter(|l| l.split('\t').nth(1) == Some("128"))
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
        let (c, r) = run_capture(name, &dead);
        assert_eq!(
            (r.code, show(&r.stdout), show(&r.stderr)),
            (c.code, show(&c.stdout), show(&c.stderr)),
            "{name}: {}",
            c.cmd
        );
    }
    // cobra's flag error: etcdctl also prints its usage and the error twice;
    // raftkvctl the error once, with the same exit code.
    let (c, r) = run_capture("grant_neg5", &dead);
    let first = |b: &[u8]| String::from_utf8_lossy(b).lines().next().unwrap_or("").to_string();
    assert_eq!((r.code, first(&r.stderr)), (c.code, first(&c.stderr)));
}

#[test]
fn request_failures_are_worded_per_command() {
    // An unreachable cluster: each command's wrapping and exit code
    // (grant and revoke: exit 1 and "failed to ..."; the others exit 2).
    let dead = dead_endpoint();
    let run = |args: &str| {
        run_bash(&format!("{} --endpoints={dead} --command-timeout=300ms {args}", ctl_path()), Duration::from_secs(20))
    };
    let cases = [
        ("lease grant 10", 1, "Error: failed to grant lease (context deadline exceeded)\n"),
        ("lease revoke 1", 1, "Error: failed to revoke lease (context deadline exceeded)\n"),
        ("lease timetolive 1", 2, "Error: context deadline exceeded\n"),
        ("lease list", 2, "Error: context deadline exceeded\n"),
        ("lease keep-alive --once 1", 2, "Error: context deadline exceeded\n"),
    ];
    for (args, code, err) in cases {
        let r = run(args);
        assert_eq!((r.code, show(&r.stdout), show(&r.stderr)), (code, show(b""), show(err.as_bytes())), "{args}");
    }
    // An unknown output format is refused before any request.
    let r = run("lease list -w bogus");
    assert_eq!((r.code, show(&r.stderr)), (4, show(b"Error: unsupported output format\n")));
}
