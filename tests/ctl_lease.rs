//! `raftkvctl lease ...` (and leased puts) against a real `raftkv` node,
//! compared with the captures of real etcdctl 3.4.23 against a real etcd
//! (`tests/captures/etcdctl/lease/`), plus the client's `KeepAlive`
//! keeping a real lease alive.
//!
//! The capture script (`capture.sh`) is replayed in its order on one fresh
//! node, with its writes, so revisions line up with etcd's and are compared
//! as they are. Lease ids are the server's choice, so the replay learns
//! which of its ids stands for which captured one (from each grant's
//! output, or from the captured command line that used the id) and puts
//! its own ids in the captured command lines and outputs; only cluster id,
//! member id and raft term are blanked. Background cases (continuous
//! keep-alive, watches) wait, bounded, for their output instead of the
//! script's fixed pauses. The gateway cases (`gw_*`) are replayed through
//! the client library, which speaks the same requests.

mod support;

use raftkv::client::{Client, ClientError, ClientOptions, KeepAliveEvent};
use raftkv::ctl::gofmt::lease_hex;
use raftkv::proto::etcdserverpb::PutRequest;
use serde_json::Value;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// How long a background case may take to show its output or exit.
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------- captures

struct Cap {
    code: i32,
    cmd: String,
    notes: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn lease_dir() -> PathBuf {
    captures_dir().join("lease")
}

fn cap(name: &str) -> Cap {
    let dir = lease_dir();
    let tsv = std::fs::read_to_string(dir.join("cases.tsv")).expect("lease cases.tsv");
    let line =
        tsv.lines().find(|l| l.split('\t').next() == Some(name)).unwrap_or_else(|| panic!("no lease capture {name}"));
    let cols: Vec<&str> = line.split('\t').collect();
    Cap {
        code: cols[1].parse().expect("exit code"),
        cmd: cols[2].to_string(),
        notes: cols.get(3).unwrap_or(&"").to_string(),
        stdout: std::fs::read(dir.join(format!("{name}.stdout"))).expect("stdout"),
        stderr: std::fs::read(dir.join(format!("{name}.stderr"))).expect("stderr"),
    }
}

fn is_hex_id(w: &str) -> bool {
    w.len() == 16 && w.chars().all(|c| c.is_ascii_hexdigit())
}

/// The lease id a captured command line names (`revoke ID`, `timetolive
/// ID`, `keep-alive [--once] ID`, `--lease=ID`), lower case.
fn id_in_cmd(name: &str) -> String {
    let c = cap(name);
    let words: Vec<&str> = c.cmd.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if let Some(v) = w.strip_prefix("--lease=") {
            return v.to_lowercase();
        }
        let after_verb = i > 0 && ["timetolive", "revoke", "keep-alive", "--once"].contains(&words[i - 1]);
        if after_verb && *w != "--once" {
            return w.to_lowercase();
        }
    }
    panic!("{name}: no lease id in {}", c.cmd)
}

/// The 16-digit hex ids in a capture's notes, in order.
fn ids_in_notes(name: &str) -> Vec<String> {
    cap(name).notes.split(|c: char| !c.is_ascii_hexdigit()).filter(|w| is_hex_id(w)).map(str::to_string).collect()
}

/// The id a grant printed: simple (`lease ID granted`), JSON (`"ID":N`) or
/// fields (`"ID" : N`).
fn granted_id(stdout: &[u8]) -> Option<i64> {
    let s = String::from_utf8_lossy(stdout);
    if let Some(rest) = s.strip_prefix("lease ") {
        return i64::from_str_radix(rest.split(' ').next()?, 16).ok();
    }
    for key in ["\"ID\":", "\"ID\" : "] {
        if let Some(i) = s.find(key) {
            let rest = &s[i + key.len()..];
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
            return rest[..end].parse().ok();
        }
    }
    None
}

/// `attached keys([b a])` with its keys sorted: etcd lists them in Go map
/// order.
fn sort_attached_keys(s: &str) -> String {
    let Some(i) = s.find("attached keys([") else { return s.to_string() };
    let start = i + "attached keys([".len();
    let Some(len) = s[start..].find("])") else { return s.to_string() };
    let mut keys: Vec<&str> = s[start..start + len].split(' ').collect();
    keys.sort();
    format!("{}{}{}", &s[..start], keys.join(" "), &s[start + len..])
}

fn norm(b: &[u8]) -> String {
    sort_attached_keys(&blank_ids(b))
}

// ---------------------------------------------------------------- a running command

/// A raftkvctl started in the background, its output collected.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&buf[..n]);
        }
    })
}

impl Running {
    fn start(args: &[String]) -> Running {
        let mut child = Command::new(ctl_path())
            .args(args)
            .env_remove("ETCDCTL_ENDPOINTS")
            .env_remove("ETCDCTL_WRITE_OUT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn raftkvctl");
        let (stdout, stderr) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Running { child, stdout, stderr, readers }
    }

    fn out(&self) -> Vec<u8> {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lines(&self) -> usize {
        self.out().iter().filter(|&&b| b == b'\n').count()
    }

    /// Waits (bounded) until stdout has `n` lines; whether it got there.
    fn wait_lines(&mut self, n: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        while self.lines() < n && Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) && self.lines() < n {
                // Exited: the readers may still be draining the pipe.
                std::thread::sleep(Duration::from_millis(20));
                return self.lines() >= n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.lines() >= n
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn interrupt(&mut self) {
        if self.running() {
            // Only the process this test started, by its pid.
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGINT);
            }
        }
    }

    /// Waits (bounded) for the exit: (code, 128 + N for signal N; stdout;
    /// stderr), with the output complete.
    fn finish(mut self) -> (i32, Vec<u8>, Vec<u8>) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s;
            }
            assert!(Instant::now() < deadline, "raftkvctl did not exit within {WAIT:?}: {}", show(&self.out()));
            std::thread::sleep(Duration::from_millis(5));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let err = self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (code, self.out(), err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------- the replay

struct Replay {
    node: RaftkvProcess,
    /// (captured hex id, our id).
    ids: Vec<(String, i64)>,
}

impl Replay {
    fn start() -> Replay {
        let dir = tempfile::tempdir().expect("temp dir");
        Replay { node: RaftkvProcess::start(&manifest_dir().join("config/single.toml"), "lcap", dir), ids: Vec::new() }
    }

    fn learn(&mut self, captured: &str, ours: i64) {
        assert!(is_hex_id(captured), "{captured}");
        self.ids.push((captured.to_lowercase(), ours));
    }

    fn ours(&self, captured: &str) -> i64 {
        self.ids.iter().find(|(c, _)| c == captured).map(|(_, o)| *o).unwrap_or_else(|| panic!("unknown id {captured}"))
    }

    /// A captured command line, run by bash, with raftkvctl, our endpoint
    /// and our lease ids.
    fn command(&self, cmd: &str) -> String {
        let mut cmd = translate(&cmd.replace("127.0.0.1:22579", "127.0.0.1:22379"), &self.node.endpoint);
        for (captured, ours) in &self.ids {
            cmd = cmd
                .replace(captured, &lease_hex(*ours))
                .replace(&captured.to_uppercase(), &lease_hex(*ours).to_uppercase());
        }
        cmd
    }

    /// A captured output with our lease ids in it (hex and decimal).
    fn expected(&self, b: &[u8]) -> Vec<u8> {
        let mut s = String::from_utf8_lossy(b).into_owned();
        for (captured, ours) in &self.ids {
            let dec = i64::from_str_radix(captured, 16).expect("hex id").to_string();
            s = s.replace(captured, &lease_hex(*ours)).replace(&dec, &ours.to_string());
        }
        s.into_bytes()
    }

    fn run(&self, cmd: &str) -> Run {
        run_bash(&self.command(cmd), Duration::from_secs(60))
    }

    /// An op of the script (`ctl ARGS`), which must succeed.
    fn op(&self, args: &str) -> Run {
        let r = self.run(&format!("etcdctl --endpoints=127.0.0.1:22579 {args}"));
        assert_eq!(r.code, 0, "op {args}: {}", show(&r.stderr));
        r
    }

    /// The script's `grant TTL` helper, for the lease the capture knew as
    /// `captured`.
    fn grant(&mut self, ttl: i64, captured: &str) -> i64 {
        let r = self.op(&format!("lease grant {ttl}"));
        let id = granted_id(&r.stdout).unwrap_or_else(|| panic!("grant printed {}", show(&r.stdout)));
        self.learn(captured, id);
        id
    }

    fn compare(&self, name: &str, c: &Cap, code: i32, out: &[u8], err: &[u8]) {
        let ctx = format!("{name}: {}\n  ours: {code} {} {}", self.command(&c.cmd), show(out), show(err));
        assert_eq!(code, c.code, "{ctx}");
        assert_eq!(norm(out), norm(&self.expected(&c.stdout)), "{ctx}");
        assert_eq!(norm(err), norm(&self.expected(&strip_warn(&c.stderr))), "{ctx}");
    }

    /// Runs one captured case and compares it.
    fn case(&self, name: &str) -> Run {
        let c = cap(name);
        let r = self.run(&c.cmd);
        self.compare(name, &c, r.code, &r.stdout, &r.stderr);
        r
    }

    /// A captured grant: learns which of our leases stands for the
    /// captured one, then compares.
    fn case_grant(&mut self, name: &str) {
        let c = cap(name);
        let r = self.run(&c.cmd);
        if let (Some(theirs), Some(ours)) = (granted_id(&c.stdout), granted_id(&r.stdout)) {
            self.learn(&format!("{theirs:016x}"), ours);
        }
        self.compare(name, &c, r.code, &r.stdout, &r.stderr);
    }

    /// Starts a captured background command (`bash -c` would exec it).
    fn start_bg(&self, name: &str, extra: &[&str]) -> Running {
        let cmd = self.command(&cap(name).cmd);
        let mut words: Vec<String> = cmd.split_whitespace().skip(1).map(str::to_string).collect();
        words.extend(extra.iter().map(|s| s.to_string()));
        Running::start(&words)
    }

    fn revision(&self) -> i64 {
        let r = self.op("get __rev_probe__ -w json");
        json(&r.stdout)["header"]["revision"].as_i64().expect("revision")
    }

    /// Waits (bounded) until `lease timetolive` says the lease is gone.
    fn wait_expired(&self, id: i64) -> Duration {
        let t0 = Instant::now();
        let gone = format!("lease {} already expired\n", lease_hex(id));
        loop {
            let r = self.run(&format!("etcdctl --endpoints=127.0.0.1:22579 lease timetolive {}", lease_hex(id)));
            if r.stdout == gone.as_bytes() {
                return t0.elapsed();
            }
            assert!(t0.elapsed() < WAIT, "lease {id:x} still alive after {WAIT:?}: {}", show(&r.stdout));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client(&self) -> Client {
        Client::connect(std::slice::from_ref(&self.node.endpoint), ClientOptions::default()).expect("connect")
    }
}

// ---------------------------------------------------------------- the session

#[test]
fn the_etcdctl_lease_session_replays_identically() {
    let mut s = Replay::start();
    // Help texts and argument errors need no server: ctl_lease_format.
    for name in ["list_empty", "list_empty_json", "list_empty_fields", "list_empty_table"] {
        s.case(name);
    }
    grants(&mut s);
    time_to_live(&mut s);
    list_and_revoke(&mut s);
    keep_alive(&mut s);
    leased_puts(&mut s);
    revoke_with_keys(&mut s);
    expiry(&mut s);
    chosen_ids(&mut s);
}

fn grants(s: &mut Replay) {
    s.case_grant("grant_60");
    s.case("list_one");
    s.case("list_one_json");
    s.case_grant("grant_60_json");
    s.case_grant("grant_60_fields");
    s.case("grant_60_table");
    // protobuf: only the header, whose ids differ: compare its revision.
    let c = cap("grant_60_protobuf");
    let r = s.run(&c.cmd);
    use prost::Message as _;
    let ours = raftkv::proto::etcdserverpb::ResponseHeader::decode(&r.stdout[..]).expect("a marshalled header");
    let theirs = raftkv::proto::etcdserverpb::ResponseHeader::decode(&c.stdout[..]).expect("captured header");
    assert_eq!((r.code, ours.revision), (c.code, theirs.revision), "grant_60_protobuf");
    assert!(ours.cluster_id != 0 && ours.member_id != 0, "{ours:?}");
    s.case_grant("grant_1");
    s.case("grant_1_timetolive");
    s.case("grant_1_timetolive_json");
    s.case_grant("grant_0");
    s.case_grant("grant_0_json");
    // cobra's flag error: etcdctl adds its usage; the first line and the
    // exit code are the same.
    let c = cap("grant_neg5");
    let r = s.run(&c.cmd);
    let first = |b: &[u8]| String::from_utf8_lossy(b).lines().next().unwrap_or("").to_string();
    assert_eq!((r.code, first(&r.stderr)), (c.code, first(&c.stderr)), "grant_neg5");
    for name in ["grant_neg5_dashdash", "grant_max", "grant_max_json"] {
        s.case_grant(name);
    }
    for name in ["grant_max_plus1", "grant_max_plus1_json", "grant_int64_overflow", "grant_abc", "grant_hex"] {
        s.case(name);
    }
    s.case("grant_noarg");
    s.case("grant_extra_arg");
}

fn time_to_live(s: &mut Replay) {
    let t = id_in_cmd("ttl_0keys");
    s.grant(60, &t);
    for name in
        ["ttl_0keys", "ttl_0keys_keys", "ttl_0keys_keys_json", "ttl_0keys_json", "ttl_0keys_fields", "ttl_0keys_table"]
    {
        s.case(name);
    }
    s.op(&format!("put foo1 v1 --lease={t}"));
    for name in ["ttl_1key", "ttl_1key_json", "ttl_1key_fields"] {
        s.case(name);
    }
    s.op(&format!("put foo2 v2 --lease={t}"));
    for name in ["ttl_2keys", "ttl_2keys_json", "ttl_2keys_fields", "ttl_2keys_nokeysflag", "ttl_2keys_nokeysflag_json"]
    {
        s.case(name);
    }
    s.op("del foo1");
    s.case("ttl_after_del_key");
    s.op("put foo2 v2b");
    s.case("ttl_after_put_nolease");
    s.op("del foo2");
    for name in ["ttl_unknown", "ttl_unknown_json", "ttl_unknown_fields", "ttl_unknown_keys", "ttl_unknown_keys_json"] {
        s.case(name);
    }
    let r = id_in_cmd("ttl_revoked");
    s.grant(60, &r);
    s.op(&format!("lease revoke {r}"));
    for name in ["ttl_revoked", "ttl_revoked_json", "ttl_zero_id", "ttl_bad_id", "ttl_0x_id", "ttl_upper_id"] {
        s.case(name);
    }
    s.case("ttl_no_id");
    s.case("ttl_extra_arg");
}

fn revoke_all(s: &Replay) {
    let r = s.op("lease list");
    for id in String::from_utf8_lossy(&r.stdout).lines().skip(1) {
        s.op(&format!("lease revoke {id}"));
    }
}

fn list_and_revoke(s: &mut Replay) {
    revoke_all(s);
    // Listed by remaining time, soonest first, not by id or grant order.
    let [l300, l100, l200] = <[String; 3]>::try_from(ids_in_notes("list_three")).expect("three ids in the notes");
    s.grant(300, &l300);
    s.grant(100, &l100);
    s.grant(200, &l200);
    for name in ["list_three", "list_three_json", "list_three_fields", "list_extra_arg"] {
        s.case(name);
    }
    revoke_all(s);
    s.grant(60, &id_in_cmd("revoke"));
    s.grant(60, &id_in_cmd("revoke_json"));
    for name in ["revoke", "revoke_json", "revoke_again", "revoke_again_json", "revoke_unknown", "revoke_bad_id"] {
        s.case(name);
    }
    s.case("revoke_no_id");
    s.case("revoke_extra_arg");
    s.grant(60, &id_in_cmd("revoke_fields"));
    s.case("revoke_fields");
    let r4 = id_in_cmd("revoke_table");
    s.grant(60, &r4);
    s.case("revoke_table");
    // The table printer failed after the revoke was done.
    let r = s.op(&format!("lease timetolive {r4}"));
    assert_eq!(r.stdout, format!("lease {} already expired\n", lease_hex(s.ours(&r4))).into_bytes());
}

fn keep_alive(s: &mut Replay) {
    s.grant(60, &id_in_cmd("keepalive_once"));
    for name in [
        "keepalive_once",
        "keepalive_once_json",
        "keepalive_once_fields",
        "keepalive_once_table",
        "keepalive_once_unknown",
        "keepalive_once_unknown_json",
        "keepalive_once_bad_id",
        "keepalive_no_id",
    ] {
        s.case(name);
    }
    // TTL 60: one renewal at once, the next not before 20 s; killed by
    // SIGINT (no handler: 130, nothing more printed).
    let mut ka = s.start_bg("keepalive_continuous", &[]);
    assert!(ka.wait_lines(1), "no renewal printed");
    ka.interrupt();
    let (code, out, err) = ka.finish();
    s.compare("keepalive_continuous", &cap("keepalive_continuous"), code, &out, &err);
    // TTL 3: a renewal every second.
    s.grant(3, &id_in_cmd("keepalive_continuous_ttl3"));
    for name in ["keepalive_continuous_ttl3", "keepalive_continuous_ttl3_json"] {
        let t0 = Instant::now();
        let mut ka = s.start_bg(name, &[]);
        assert!(ka.wait_lines(3), "{name}: {}", show(&ka.out()));
        let took = t0.elapsed();
        ka.interrupt();
        let (code, out, err) = ka.finish();
        s.compare(name, &cap(name), code, &out, &err);
        assert!(took >= Duration::from_millis(1800), "{name}: 3 renewals in {took:?}, not one per TTL/3");
    }
    // Revoked while kept alive: the next renewal finds out, the command
    // says so (simple format only) and exits 0.
    for (name, ttl, ends) in
        [("keepalive_revoked", 3, true), ("keepalive_revoked_json", 3, true), ("keepalive_revoked_ttl60", 60, false)]
    {
        let kr = id_in_cmd(name);
        s.grant(ttl, &kr);
        let mut ka = s.start_bg(name, &[]);
        assert!(ka.wait_lines(1), "{name}: no renewal printed");
        s.op(&format!("lease revoke {kr}"));
        if !ends {
            // TTL 60: the next renewal is 20 s away; still running.
            assert!(ka.running(), "{name} ended early: {}", show(&ka.out()));
            ka.interrupt();
        }
        let (code, out, err) = ka.finish();
        s.compare(name, &cap(name), code, &out, &err);
    }
    for name in ["keepalive_unknown", "keepalive_unknown_json"] {
        let ka = s.start_bg(name, &[]);
        let (code, out, err) = ka.finish();
        s.compare(name, &cap(name), code, &out, &err);
    }
    let ke = id_in_cmd("keepalive_once_expired");
    let id = s.grant(2, &ke);
    s.wait_expired(id);
    s.case("keepalive_once_expired");
}

fn leased_puts(s: &mut Replay) {
    s.op("del --prefix foo");
    s.grant(60, &id_in_cmd("put_lease"));
    for name in [
        "put_lease",
        "put_lease_json",
        "get_leased",
        "get_leased_json",
        "get_leased_fields",
        "put_lease_upper",
        "put_lease_unknown",
        "put_lease_unknown_json",
        "put_lease_badhex",
        "put_lease_zero",
        "put_lease_zero_get_json",
        "put_ignore_lease_novalue",
        "put_ignore_lease_novalue_get_json",
        "put_ignore_lease",
        "put_ignore_lease_get_json",
        "put_ignore_lease_with_lease",
        "put_ignore_lease_missing_key",
        "put_ignore_lease_value_both",
        "put_ignore_lease_value_both_get_json",
        "put_ignore_lease_unleased_key",
        "put_ignore_lease_unleased_key_get_json",
    ] {
        s.case(name);
    }
    s.op(&format!("lease revoke {}", id_in_cmd("put_lease")));
    s.op("del foo0");
}

fn revoke_with_keys(s: &mut Replay) {
    let v = id_in_cmd("revoke_keys_ttl_before");
    s.grant(60, &v);
    s.op(&format!("put foo1 v1 --lease={v}"));
    s.op(&format!("put foo2 v2 --lease={v}"));
    s.op("put foo3 v3");
    s.case("revoke_keys_rev_before");
    s.case("revoke_keys_ttl_before");
    // The watches start at the next revision, so they see the revoke
    // however late they are set up.
    let from = format!("--rev={}", s.revision() + 1);
    let watches = [s.start_bg("revoke_keys_watch", &[&from]), s.start_bg("revoke_keys_watch_json", &[&from])];
    s.case("revoke_keys");
    for (name, mut w) in ["revoke_keys_watch", "revoke_keys_watch_json"].into_iter().zip(watches) {
        let lines = cap(name).stdout.iter().filter(|&&b| b == b'\n').count();
        assert!(w.wait_lines(lines), "{name}: {}", show(&w.out()));
        w.interrupt();
        let (code, out, err) = w.finish();
        s.compare(name, &cap(name), code, &out, &err);
    }
    for name in ["revoke_keys_rev_after", "revoke_keys_get_prefix", "revoke_keys_get_prefix_json"] {
        s.case(name);
    }
    s.grant(60, &id_in_cmd("revoke_nokeys"));
    for name in ["revoke_nokeys_rev_before", "revoke_nokeys", "revoke_nokeys_rev_after"] {
        s.case(name);
    }
    s.op("del foo3");
}

fn expiry(s: &mut Replay) {
    let x = id_in_cmd("expiry_ttl_start");
    let granted = Instant::now();
    let id = s.grant(3, &x);
    s.op(&format!("put exp1 x --lease={x}"));
    s.case("expiry_ttl_start");
    s.case("expiry_ttl_start_json");
    s.wait_expired(id);
    // Not before its TTL, and its key went with it.
    let took = granted.elapsed();
    assert!(took >= Duration::from_millis(2900), "a TTL 3 lease expired after {took:?}");
    let r = s.op("get exp1 -w fields");
    assert!(String::from_utf8_lossy(&r.stdout).contains("\"Count\" : 0\n"), "{}", show(&r.stdout));
    for name in [
        "expiry_ttl_after",
        "expiry_ttl_after_json",
        "expiry_get_after",
        "expiry_list_after",
        "expiry_keepalive_once_after",
        "expiry_revoke_after",
    ] {
        s.case(name);
    }
    let id = s.grant(2, &id_in_cmd("expiry_ttl_min_after"));
    s.wait_expired(id);
    s.case("expiry_ttl_min_after");
}

/// A gateway capture's JSON.
fn gw(name: &str) -> Value {
    json(&cap(name).stdout)
}

/// The `error` text of a gateway capture.
fn gw_error(name: &str) -> String {
    gw(name)["error"].as_str().unwrap_or_else(|| panic!("{name} has no error")).to_string()
}

fn api_message(r: Result<impl std::fmt::Debug, ClientError>) -> String {
    match r {
        Err(ClientError::Api(e)) => e.message,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// The gateway cases, through the client (which sends the same
/// requests), and the etcdctl cases on the leases they made.
fn chosen_ids(s: &mut Replay) {
    let c = s.client();
    assert_eq!(c.lease_grant(30, 1234).expect("grant 1234").id, 1234, "gw_grant_1234");
    assert_eq!(api_message(c.lease_grant(30, 1234)), gw_error("gw_grant_1234_dup"));
    assert_eq!(api_message(c.lease_grant(60, 1234)), gw_error("gw_grant_1234_dup_ttl"));
    s.case("gw_ctl_ttl_1234");
    assert_eq!(c.lease_grant(30, -5).expect("grant -5").id, -5, "gw_grant_negative");
    // Listed soonest expiry first: lease K's remaining time depends on
    // this replay's pace, so the order is compared for 1234 and -5 only.
    for name in ["gw_ctl_list_negative", "gw_ctl_list_negative_json"] {
        let k = cap(name);
        let r = s.run(&k.cmd);
        let sorted = |b: &[u8]| -> String {
            if let Ok(mut v) = serde_json::from_slice::<Value>(b) {
                if let Some(a) = v.get_mut("leases").and_then(Value::as_array_mut) {
                    a.sort_by_key(|l| l["id"].as_i64());
                }
                return norm(v.to_string().as_bytes());
            }
            let text = norm(b);
            let mut lines: Vec<&str> = text.lines().collect();
            lines[1..].sort();
            lines.join("\n")
        };
        assert_eq!((r.code, sorted(&r.stdout)), (k.code, sorted(&s.expected(&k.stdout))), "{name}");
        let text = String::from_utf8_lossy(&r.stdout).into_owned();
        let (a, b) = if name.ends_with("json") {
            ("{\"id\":1234}", "{\"id\":-5}")
        } else {
            ("00000000000004d2", "-000000000000005")
        };
        assert!(text.find(a) < text.find(b), "{name}: {text}");
    }
    s.case("gw_ctl_ttl_negative");
    s.case("gw_ctl_ttl_negative_hex");
    assert_ne!(c.lease_grant(30, 0).expect("gw_grant_id0").id, 0, "the server picks an id");
    // Below the minimum TTL: raised to it (etcd: 2 s).
    let min = gw("gw_grant_ttl0")["TTL"].as_str().expect("TTL").parse::<i64>().expect("TTL");
    assert_eq!(c.lease_grant(0, 77).expect("gw_grant_ttl0").ttl, min);
    assert_eq!(c.lease_grant(-10, 78).expect("gw_grant_ttl_negative").ttl, min);
    assert_eq!(api_message(c.lease_grant(9_000_000_001, 79)), gw_error("gw_grant_ttl_too_large"));
    assert_eq!(api_message(c.lease_grant(9_000_000_001, 1234)), gw_error("gw_grant_ttl_too_large_dup"));
    assert_eq!(c.lease_grant(30, i64::MAX).expect("gw_grant_max_id").id, i64::MAX);
    s.op("put gwk1 a --lease=4d2");
    s.op("put gwk2 b --lease=4d2");
    let t = c.lease_time_to_live(1234, true).expect("gw_timetolive_1234");
    let mut keys: Vec<Vec<u8>> = t.keys.iter().map(|k| k.to_vec()).collect();
    keys.sort();
    assert_eq!((t.id, t.granted_ttl, keys), (1234, 30, vec![b"gwk1".to_vec(), b"gwk2".to_vec()]));
    let unknown = c.lease_time_to_live(999_999, true).expect("gw_timetolive_unknown");
    assert_eq!((unknown.id, unknown.ttl, unknown.granted_ttl), (999_999, -1, 0));
    assert_eq!(c.lease_keep_alive_once(1234).expect("gw_keepalive_1234").ttl, 30);
    assert_eq!(api_message(c.lease_keep_alive_once(999_999)), "etcdserver: requested lease not found");
    c.lease_revoke(1234).expect("gw_revoke_1234");
    assert!(c.get("gwk1").expect("get").is_none(), "the revoke deleted the lease's keys");
    assert_eq!(api_message(c.lease_revoke(1234)), gw_error("gw_revoke_1234_again"));
    assert_eq!(api_message(c.lease_revoke(999_999)), gw_error("gw_revoke_unknown"));
    c.lease_revoke(-5).expect("gw_revoke_kv_path");
    assert_eq!(api_message(c.lease_revoke(0)), gw_error("gw_revoke_zero"));
    let put = |lease, ignore_lease| {
        c.put(PutRequest { key: "gwk3".into(), value: "x".into(), lease, ignore_lease, ..Default::default() })
    };
    assert_eq!(api_message(put(999_999, false)), gw_error("gw_put_unknown_lease"));
    assert_eq!(api_message(put(5, true)), gw_error("gw_put_ignore_lease_with_lease"));
}

// ---------------------------------------------------------------- KeepAlive

#[test]
fn the_client_keeps_a_real_lease_alive_until_dropped() {
    let s = Replay::start();
    let c = s.client();
    // The minimum TTL: without renewals it would be gone in about 2 s.
    let kept = c.lease_grant(2, 0).expect("grant");
    let unkept = c.lease_grant(2, 0).expect("grant");
    let ka = c.keep_alive(kept.id).expect("keep_alive");
    let t0 = Instant::now();
    let mut renewals = 0;
    // Renewed every TTL/3 until the unkept lease has expired and then
    // some: longer than the TTL.
    while t0.elapsed() < Duration::from_secs(4) || renewals < 6 {
        match ka.recv_timeout(WAIT) {
            Ok(KeepAliveEvent::Renewed(r)) => {
                assert_eq!((r.id, r.ttl), (kept.id, kept.ttl));
                renewals += 1;
            }
            other => panic!("after {renewals} renewals: {other:?}"),
        }
    }
    assert_eq!(c.lease_time_to_live(unkept.id, false).expect("ttl").ttl, -1, "the lease not kept alive expired");
    assert!(c.lease_time_to_live(kept.id, false).expect("ttl").ttl >= 0, "the kept lease is alive");
    // Dropped: no more renewals, so it expires.
    drop(ka);
    s.wait_expired(kept.id);
    // A lease revoked under a keep-alive is reported lost.
    let l = c.lease_grant(3, 0).expect("grant");
    let ka = c.keep_alive(l.id).expect("keep_alive");
    assert!(matches!(ka.recv_timeout(WAIT), Ok(KeepAliveEvent::Renewed(_))));
    c.lease_revoke(l.id).expect("revoke");
    loop {
        match ka.recv_timeout(WAIT) {
            Ok(KeepAliveEvent::Renewed(_)) => {}
            Ok(KeepAliveEvent::Lost(why)) => {
                assert_eq!(why, "lease expired or revoked");
                break;
            }
            Err(e) => panic!("no loss reported: {e:?}"),
        }
    }
}
