//! Shared by the raftkvctl tests: the vendored etcdctl captures, running
//! their command lines with raftkvctl in place of etcdctl, normalising what
//! must differ, and reading etcdctl's JSON back into responses.
//!
//! Owns test plumbing only; never talks to a server itself.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

#[path = "../common/ports.rs"]
mod ports;
pub mod watch_proxy;
pub use ports::free_port;

use base64::Engine as _;
use raftkv::proto::etcdserverpb::{
    response_op, DeleteRangeResponse, Member, MemberListResponse, PutResponse, RangeResponse, ResponseHeader,
    ResponseOp, StatusResponse, TxnResponse,
};
use raftkv::proto::mvccpb::KeyValue;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One vendored etcdctl capture.
#[derive(Debug, Clone)]
pub struct Capture {
    pub name: String,
    pub code: i32,
    pub rev_before: i64,
    /// The command line as run through `bash -c`.
    pub cmd: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A `raftkv` child process: member `name` of its own one-member cluster,
/// started from `config` on fresh ports, its data and log in `dir`, and
/// ready (`endpoint health` answers). Killed and reaped when dropped.
pub struct RaftkvProcess {
    pub child: std::process::Child,
    pub endpoint: String,
    pub peer: String,
    pub dir: tempfile::TempDir,
}

impl RaftkvProcess {
    pub fn start(config: &std::path::Path, name: &str, dir: tempfile::TempDir) -> RaftkvProcess {
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("127.0.0.1:{client}");
        let peer = format!("127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("raftkv.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("--config")
            .arg(config)
            .args(["--name", name, "--log-level", "warn"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client", &endpoint])
            .args(["--listen-peer", &peer])
            .args(["--initial-cluster", &format!("{name}={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start raftkv");
        let mut p = RaftkvProcess { child, endpoint, peer, dir };
        p.wait_ready();
        p
    }

    /// Bounded wait until `endpoint health` succeeds.
    fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("raftkv exited with {status} before it was ready:\n{}", self.log());
            }
            let ok = Command::new(ctl_path())
                .args([&format!("--endpoints={}", self.endpoint), "--command-timeout=1s", "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "raftkv not ready after 60s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("raftkv.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RaftkvProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Replaces the number after each of `keys` with `N` (values that differ
/// between two clusters or runs: ids, terms, revisions).
pub fn blank_numbers(s: &str, keys: &[&str]) -> String {
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

/// etcdctl's output with the values that differ between two clusters
/// (cluster and member ids, the raft term) blanked.
pub fn blank_ids(b: &[u8]) -> String {
    let keys = [
        "\"cluster_id\":",
        "\"member_id\":",
        "\"raft_term\":",
        "\"ClusterID\" : ",
        "\"MemberID\" : ",
        "\"RaftTerm\" : ",
    ];
    blank_numbers(&String::from_utf8_lossy(b), &keys)
}

pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

pub fn captures_dir() -> PathBuf {
    manifest_dir().join("tests/captures/etcdctl")
}

/// Loads one capture by name.
pub fn capture(name: &str) -> Capture {
    let dir = captures_dir();
    let manifest = std::fs::read_to_string(dir.join("cases.tsv")).expect("cases.tsv");
    let line = manifest
        .lines()
        .find(|l| l.split('\t').next() == Some(name))
        .unwrap_or_else(|| panic!("no capture named {name}"));
    let cols: Vec<&str> = line.splitn(4, '\t').collect();
    Capture {
        name: name.to_string(),
        code: cols[1].parse().expect("exit code"),
        rev_before: cols[2].parse().expect("revision"),
        cmd: cols[3].to_string(),
        stdout: std::fs::read(dir.join(format!("{name}.stdout"))).expect("stdout"),
        stderr: std::fs::read(dir.join(format!("{name}.stderr"))).expect("stderr"),
    }
}

/// etcdctl's stderr without the zap `warn` log lines it adds before server
/// errors (raftkvctl prints no log lines).
pub fn strip_warn(stderr: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in stderr.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"{\"level\":\"warn\"") {
            out.extend_from_slice(line);
        }
    }
    out
}

pub fn ctl_path() -> &'static str {
    env!("CARGO_BIN_EXE_raftkvctl")
}

/// The capture's command line with raftkvctl in place of etcdctl and
/// `endpoint` in place of the captured one (127.0.0.1:22379).
pub fn translate(cmd: &str, endpoint: &str) -> String {
    let mut out = String::new();
    let mut rest = cmd;
    while let Some(i) = rest.find("etcdctl") {
        let before = rest[..i].chars().last();
        let after = rest[i + 7..].chars().next();
        let standalone =
            before.map_or(true, |c| c == ' ' || c == '|' || c == ';' || c == '(') && after.map_or(true, |c| c == ' ');
        out.push_str(&rest[..i]);
        out.push_str(if standalone { ctl_path() } else { "etcdctl" });
        rest = &rest[i + 7..];
    }
    out.push_str(rest);
    out.replace("127.0.0.1:22379", endpoint)
}

/// The outcome of one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs a command line through `bash -c` with stdin from /dev/null, as the
/// captures were taken, killed if it runs over `limit`.
pub fn run_bash(cmd: &str, limit: Duration) -> Run {
    let child = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bash");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(out)) => Run { code: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: out.stderr },
        Ok(Err(e)) => panic!("running {cmd}: {e}"),
        Err(_) => {
            // Only the shell we started (its children die with the pipe).
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("{cmd} ran over {limit:?}");
        }
    }
}

/// Byte strings shown readably in assertion messages.
pub fn show(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

// ---------------------------------------------------------------- JSON

fn b64(v: &Value) -> Vec<u8> {
    v.as_str().map(|s| base64::engine::general_purpose::STANDARD.decode(s).expect("base64")).unwrap_or_default()
}

fn i64_of(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn u64_of(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn bool_of(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

pub fn header_of(v: &Value) -> Option<ResponseHeader> {
    let h = v.get("header")?;
    Some(ResponseHeader {
        cluster_id: u64_of(h, "cluster_id"),
        member_id: u64_of(h, "member_id"),
        revision: i64_of(h, "revision"),
        raft_term: u64_of(h, "raft_term"),
    })
}

pub fn kv_of(v: &Value) -> KeyValue {
    KeyValue {
        key: b64(&v["key"]).into(),
        create_revision: i64_of(v, "create_revision"),
        mod_revision: i64_of(v, "mod_revision"),
        version: i64_of(v, "version"),
        value: b64(&v["value"]).into(),
        lease: i64_of(v, "lease"),
    }
}

fn kvs_of(v: &Value, k: &str) -> Vec<KeyValue> {
    v.get(k).and_then(Value::as_array).map(|a| a.iter().map(kv_of).collect()).unwrap_or_default()
}

pub fn range_of(v: &Value) -> RangeResponse {
    RangeResponse { header: header_of(v), kvs: kvs_of(v, "kvs"), more: bool_of(v, "more"), count: i64_of(v, "count") }
}

pub fn put_of(v: &Value) -> PutResponse {
    PutResponse { header: header_of(v), prev_kv: v.get("prev_kv").map(kv_of) }
}

pub fn delete_of(v: &Value) -> DeleteRangeResponse {
    DeleteRangeResponse { header: header_of(v), deleted: i64_of(v, "deleted"), prev_kvs: kvs_of(v, "prev_kvs") }
}

pub fn txn_of(v: &Value) -> TxnResponse {
    let responses = v
        .get("responses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|op| {
                    let r = &op["Response"];
                    let response = if let Some(x) = r.get("ResponseRange") {
                        Some(response_op::Response::ResponseRange(range_of(x)))
                    } else if let Some(x) = r.get("ResponsePut") {
                        Some(response_op::Response::ResponsePut(put_of(x)))
                    } else if let Some(x) = r.get("ResponseDeleteRange") {
                        Some(response_op::Response::ResponseDeleteRange(delete_of(x)))
                    } else {
                        r.get("ResponseTxn").map(|x| response_op::Response::ResponseTxn(txn_of(x)))
                    };
                    ResponseOp { response }
                })
                .collect()
        })
        .unwrap_or_default();
    TxnResponse { header: header_of(v), succeeded: bool_of(v, "succeeded"), responses }
}

pub fn status_of(v: &Value) -> StatusResponse {
    StatusResponse {
        header: header_of(v),
        version: v.get("version").and_then(Value::as_str).unwrap_or("").to_string(),
        db_size: i64_of(v, "dbSize"),
        leader: u64_of(v, "leader"),
        raft_index: u64_of(v, "raftIndex"),
        raft_term: u64_of(v, "raftTerm"),
        raft_applied_index: u64_of(v, "raftAppliedIndex"),
        errors: v
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        db_size_in_use: i64_of(v, "dbSizeInUse"),
        is_learner: bool_of(v, "isLearner"),
    }
}

fn strings_of(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub fn member_list_of(v: &Value) -> MemberListResponse {
    let members = v
        .get("members")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|m| Member {
                    id: u64_of(m, "ID"),
                    name: m.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                    peer_ur_ls: strings_of(m, "peerURLs"),
                    client_ur_ls: strings_of(m, "clientURLs"),
                    is_learner: bool_of(m, "isLearner"),
                })
                .collect()
        })
        .unwrap_or_default();
    MemberListResponse { header: header_of(v), members }
}

/// Parses a capture's JSON stdout (one line).
pub fn json(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).expect("captured JSON")
}
