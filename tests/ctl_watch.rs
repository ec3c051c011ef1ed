//! `raftkvctl watch` against a real `raftkv` node, compared with the
//! captures of real etcdctl 3.4.23 watching a real etcd
//! (`tests/captures/etcdctl/watch/`).
//!
//! The capture session is replayed in its original order on one fresh
//! node, with the same ops (run with raftkvctl where the script ran
//! etcdctl), so every revision lines up with etcd's: each case first checks
//! that the store revision equals the captured "revision before", and
//! outputs are compared exactly, with only the cluster id, member id and
//! raft term blanked. Like the capture script, a case waits until its watch
//! is live before the ops run: a proxy in front of the node counts the
//! watches the server confirmed. Instead of the script's fixed pauses, a
//! case waits (bounded) until its output is the captured one, then sends
//! the captured signal. Deliberate differences are listed in `expectation`.

mod support;

use prost::Message as _;
use raftkv::proto::etcdserverpb::WatchResponse;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::watch_proxy::WatchProxy;
use support::{blank_ids, ctl_path, free_port, manifest_dir, show, RaftkvProcess};

/// How long a case may take to show its captured output.
const OUTPUT_WAIT: Duration = Duration::from_secs(15);
/// How long a watch may take to be set up.
const WATCH_WAIT: Duration = Duration::from_secs(10);
/// After the output matched, how long the case keeps watching for output
/// that should not come (an event outside the watched range, say).
const QUIET: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------- captures

/// One row of the watch `cases.tsv`, with its output files.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    code: i32,
    signal: String,
    cmd: String,
    ops: String,
    rev_before: i64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn watch_dir() -> std::path::PathBuf {
    manifest_dir().join("tests/captures/etcdctl/watch")
}

fn cases() -> Vec<Case> {
    let dir = watch_dir();
    let text = std::fs::read_to_string(dir.join("cases.tsv")).expect("watch cases.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 6, "short row: {l}");
            let name = cols[0].to_string();
            Case {
                code: cols[1].parse().expect("exit code"),
                signal: cols[2].to_string(),
                cmd: cols[3].to_string(),
                ops: cols[4].to_string(),
                rev_before: cols[5].parse().expect("revision before"),
                stdout: std::fs::read(dir.join(format!("{name}.stdout"))).expect("stdout"),
                stderr: std::fs::read(dir.join(format!("{name}.stderr"))).expect("stderr"),
                name,
            }
        })
        .collect()
}

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no watch capture {name}"))
}

// ---------------------------------------------------------------- the node

/// A running `raftkv` node; killed (and reaped) when dropped.
struct Node(RaftkvProcess);

impl std::ops::Deref for Node {
    type Target = RaftkvProcess;
    fn deref(&self) -> &RaftkvProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut RaftkvProcess {
        &mut self.0
    }
}

impl Node {
    /// A single-member node; `extra` is appended to its TOML config.
    fn start(extra: &str) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = std::fs::read_to_string(manifest_dir().join("config/single.toml")).expect("single.toml");
        let config = dir.path().join("node.toml");
        std::fs::write(&config, format!("{base}\n{extra}\n")).expect("config");
        Node(RaftkvProcess::start(&config, "wcap", dir))
    }

    /// Runs a bash snippet of the capture script's ops: `ctl ARGS` is
    /// raftkvctl against this node (output dropped), `$(currev)` the store
    /// revision.
    fn ops(&self, script: &str) {
        let r = bash(&format!("{}\n{script}", self.prelude()));
        assert!(r.status.success(), "ops {script:?} failed: {}", show(&r.stderr));
    }

    fn prelude(&self) -> String {
        let ctl = ctl_path();
        let ep = &self.endpoint;
        format!(
            "ctl() {{ {ctl} --endpoints={ep} \"$@\" >/dev/null 2>&1; }}\n\
             currev() {{ {ctl} --endpoints={ep} get nonexistent-key -w json | sed 's/.*\"revision\":\\([0-9]*\\).*/\\1/'; }}"
        )
    }

    /// What a shell word of the script means (`"watch --rev $(currev) foo"`).
    fn word(&self, word: &str) -> Vec<u8> {
        let r = bash(&format!("{}\nprintf '%s' {word}", self.prelude()));
        assert!(r.status.success(), "{word}: {}", show(&r.stderr));
        r.stdout
    }

    fn revision(&self) -> i64 {
        let out = Command::new(ctl_path())
            .args([&format!("--endpoints={}", self.endpoint), "get", "__rev_probe__", "-w", "json"])
            .output()
            .expect("raftkvctl get");
        assert!(out.status.success(), "{}", show(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("get JSON");
        v["header"]["revision"].as_i64().expect("revision")
    }
}

fn bash(script: &str) -> std::process::Output {
    Command::new("bash").arg("-c").arg(script).stdin(Stdio::null()).output().expect("bash")
}

// ---------------------------------------------------------------- the watcher

/// A running raftkvctl, its output collected as it comes.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    code: Option<i32>,
}

fn collect(mut from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

impl Running {
    /// Starts a captured command line (`[VAR=x ...] etcdctl ARGS`) with
    /// raftkvctl and `endpoint` in place of etcdctl and the captured one.
    fn start(cmd: &str, endpoint: &str, piped_stdin: bool) -> Running {
        let cmd = cmd.trim_end_matches(" <<stdin");
        let at = cmd.find("etcdctl").unwrap_or_else(|| panic!("no etcdctl in {cmd}"));
        let rest = cmd[at + "etcdctl".len()..].replace("127.0.0.1:22479", endpoint);
        // `exec env`: the signal goes to raftkvctl itself, as bash's exec
        // made it go to etcdctl.
        let line = format!("exec env {}{}{rest}", &cmd[..at], ctl_path());
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(line)
            .env_remove("ETCDCTL_ENDPOINTS")
            .env_remove("ETCDCTL_WRITE_OUT")
            .env_remove("ETCDCTL_HEX")
            .env_remove("ETCDCTL_WATCH_KEY")
            .env_remove("ETCDCTL_WATCH_RANGE_END")
            .stdin(if piped_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn raftkvctl");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        let stdin = child.stdin.take();
        Running { child, stdin, stdout, stderr, code: None }
    }

    fn out(&self) -> Vec<u8> {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn err(&self) -> Vec<u8> {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The exit code (128 + N when killed by signal N), once exited.
    fn exited(&mut self) -> Option<i32> {
        if self.code.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.code = Some(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
            }
        }
        self.code
    }

    fn write_line(&mut self, line: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            // The process may have exited already (as etcdctl did).
            let _ = stdin.write_all(line).and_then(|_| stdin.write_all(b"\n")).and_then(|_| stdin.flush());
        }
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn signal(&mut self, sig: i32) {
        if self.exited().is_none() {
            // Only the process this test started, by its pid.
            unsafe {
                libc::kill(self.child.id() as i32, sig);
            }
        }
    }

    /// Waits (bounded) for the exit; its code, with the output complete.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(code) = self.exited() {
                // The pipes close with the process; let the collectors
                // take the rest.
                let until = Instant::now() + Duration::from_secs(5);
                while Arc::strong_count(&self.stdout) + Arc::strong_count(&self.stderr) > 2 && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Some(code);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// Waits until `f(stdout, stderr)` holds, the process exits, or
    /// `within` passes; whether it held.
    fn wait_output(&mut self, within: Duration, f: impl Fn(&[u8], &[u8]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if f(&self.out(), &self.err()) {
                return true;
            }
            if self.exited().is_some() || Instant::now() >= deadline {
                return f(&self.out(), &self.err());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------- comparing

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn blank_pb(b: &[u8]) -> String {
    match WatchResponse::decode(b) {
        Ok(mut r) => {
            if let Some(h) = r.header.as_mut() {
                h.cluster_id = 0;
                h.member_id = 0;
                h.raft_term = 0;
            }
            format!("{r:?}")
        }
        Err(e) => format!("undecodable ({e}): {}", show(b)),
    }
}

/// What raftkvctl must show for a case.
enum Expect {
    /// The captured stdout, stderr and exit code.
    Same,
    /// The same lines in any order (see `expectation`).
    SameLinesAnyOrder,
    /// The same protobuf message, ids blanked.
    SameProtobuf,
    /// etcdctl also dumps its usage on stdout and repeats the error: the
    /// exit code and the first stderr line are compared.
    FirstLine,
    /// Exactly this exit code, stdout and stderr.
    Exactly(i32, &'static str, &'static str),
    /// This exit code, nothing on stderr, and on stdout only `progress
    /// notify: N` lines (none, or one if the node's 2 s progress interval
    /// ticked while the case ran).
    ProgressOnly(i32),
}

fn expectation(name: &str) -> Expect {
    match name {
        // Two watches matched one event: their order differs from run to
        // run with etcdctl too.
        "interactive_json" | "interactive_flags" => Expect::SameLinesAnyOrder,
        // Each raftkvctl watch has a stream of its own (etcdctl shares
        // one), and the server may hand two close revisions to two streams
        // in either order; raftkvctl shows responses that arrive together
        // in revision order, but cannot wait for a slower stream.
        "interactive" => Expect::SameLinesAnyOrder,
        "protobuf" => Expect::SameProtobuf,
        "unknown_flag" | "unknown_shorthand" | "rev_nonnumeric" | "prevkv_bad_value" => Expect::FirstLine,
        // etcd 3.5's flag, which raftkvctl has: a plain watch of foo.
        "progress_notify_flag" => Expect::ProgressOnly(130),
        // etcdctl 3.4 cuts single-quoted words at a wrong length (`'foo'`
        // watched the empty key, then `f`); raftkvctl takes them whole, as
        // the txn lines do, so `watch 'foo'` is a second watch of foo ...
        "interactive_quotes" => Expect::Exactly(130, "PUT\nfoo\nq1\nPUT\nfoo\nq1\n", ""),
        // ... and `watch --prev-kv 'foo'` sees foo's put (prev value q1),
        // not f's.
        "interactive_single_quote" => Expect::Exactly(130, "PUT\nfoo\nq1\nfoo\nsq1\n", ""),
        _ => Expect::Same,
    }
}

/// Whether the output so far is the expected one (`None` when only the
/// exit tells, as with `FirstLine`).
fn output_matches(c: &Case, out: &[u8], err: &[u8]) -> bool {
    match expectation(&c.name) {
        Expect::Same => blank_ids(out) == blank_ids(&c.stdout) && blank_ids(err) == blank_ids(&c.stderr),
        Expect::SameLinesAnyOrder => {
            sorted_lines(&blank_ids(out)) == sorted_lines(&blank_ids(&c.stdout)) && err == c.stderr.as_slice()
        }
        Expect::SameProtobuf => blank_pb(out) == blank_pb(&c.stdout) && err == c.stderr.as_slice(),
        Expect::FirstLine => first_line(err) == first_line(&c.stderr),
        Expect::Exactly(_, o, e) => out == o.as_bytes() && err == e.as_bytes(),
        Expect::ProgressOnly(_) => {
            err.is_empty()
                && String::from_utf8_lossy(out)
                    .lines()
                    .all(|l| l.strip_prefix("progress notify: ").is_some_and(|n| n.parse::<i64>().is_ok()))
        }
    }
}

fn first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b).lines().next().unwrap_or("").to_string()
}

fn expected_code(c: &Case) -> i32 {
    match expectation(&c.name) {
        Expect::Exactly(code, _, _) | Expect::ProgressOnly(code) => code,
        _ => c.code,
    }
}

fn check(c: &Case, code: Option<i32>, out: &[u8], err: &[u8]) {
    let ctx = format!(
        "{}: {}\n  ops: {}\n  ours:     {code:?} {} {}\n  etcdctl:  {} {} {}",
        c.name,
        c.cmd,
        c.ops,
        show(out),
        show(err),
        c.code,
        show(&c.stdout),
        show(&c.stderr)
    );
    assert_eq!(code, Some(expected_code(c)), "exit code\n{ctx}");
    assert!(output_matches(c, out, err), "output\n{ctx}");
}

// ---------------------------------------------------------------- running a case

/// Splits a script at `; ` outside quotes (the TSV shows the script's
/// newlines as `; `).
fn split_ops(s: &str) -> Vec<String> {
    let (mut parts, mut cur) = (Vec::new(), String::new());
    let (mut single, mut double, mut escaped) = (false, false, false);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if escaped {
            escaped = false;
        } else if ch == '\\' && !single {
            escaped = true;
        } else if ch == '\'' && !double {
            single = !single;
        } else if ch == '"' && !single {
            double = !double;
        } else if ch == ';' && !single && !double && chars.get(i + 1) == Some(&' ') {
            parts.push(std::mem::take(&mut cur));
            i += 2;
            continue;
        }
        cur.push(ch);
        i += 1;
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts.into_iter().map(|p| p.trim().to_string()).collect()
}

fn signal_of(name: &str) -> Option<i32> {
    match name {
        "SIGINT" => Some(libc::SIGINT),
        "SIGTERM" => Some(libc::SIGTERM),
        "SIGHUP" => Some(libc::SIGHUP),
        _ => None,
    }
}

/// Runs one captured case on `node` (watching through `proxy`) and
/// compares with etcdctl.
fn run_case(node: &mut Node, proxy: &WatchProxy, c: &Case) {
    let now = node.revision();
    assert_eq!(now, c.rev_before, "{}: the replay is out of step (revision {now}, captured {})", c.name, c.rev_before);
    let interactive = c.cmd.ends_with("<<stdin");
    let before = proxy.created();
    let mut w = Running::start(&c.cmd, proxy.addr(), interactive);
    if !interactive {
        // As the script: until the server has the watch, or the process
        // is gone (argument errors, cancels), or 5 s (none here).
        proxy.wait_created(before, WATCH_WAIT, || w.exited().is_some());
    }
    if interactive {
        for step in split_ops(&c.ops) {
            if let Some(arg) = step.strip_prefix("wline ") {
                let n = proxy.created();
                w.write_line(&node.word(arg));
                let live = proxy.wait_created(n, WATCH_WAIT, || w.exited().is_some());
                assert!(live || w.exited().is_some(), "{}: {step}: no watch after {WATCH_WAIT:?}", c.name);
            } else if let Some(arg) = step.strip_prefix("line ") {
                // Until the line shows an effect (most print something),
                // briefly otherwise (`progress` without watches).
                let (out, err) = (w.out().len(), w.err().len());
                w.write_line(&node.word(arg));
                w.wait_output(Duration::from_millis(500), |o, e| o.len() > out || e.len() > err);
            } else {
                node.ops(&step);
            }
        }
    } else if c.ops.contains("kill $ETCD_PID") {
        node.ops(&split_ops(&c.ops)[0]);
        w.wait_output(OUTPUT_WAIT, |o, e| output_matches(c, o, e));
        node.kill();
        // Nothing more, and no exit, with the server gone (etcdctl got
        // 10 s; resumes are tried every 100 ms).
        let before = (w.out(), w.err());
        let changed = w.wait_output(Duration::from_secs(2), |o, e| (o.to_vec(), e.to_vec()) != before);
        assert!(!changed && w.exited().is_none(), "{}: {} {}", c.name, show(&w.out()), show(&w.err()));
    } else if !c.ops.is_empty() {
        node.ops(&c.ops);
    }
    // A case raftkvctl ends differently (by signal) says so in its code.
    let signal = signal_of(&c.signal).or(match expectation(&c.name) {
        Expect::Exactly(code, _, _) | Expect::ProgressOnly(code) if code > 128 => Some(code - 128),
        _ => None,
    });
    let code = match signal {
        Some(sig) => {
            if w.wait_output(OUTPUT_WAIT, |o, e| output_matches(c, o, e)) && w.exited().is_none() {
                // Nothing more may come.
                std::thread::sleep(QUIET);
            }
            w.signal(sig);
            w.wait_exit(Duration::from_secs(10))
        }
        None => {
            if c.signal.contains("stdin closed") {
                w.close_stdin();
            }
            w.wait_exit(OUTPUT_WAIT)
        }
    };
    check(c, code, &w.out(), &w.err());
}

/// Cases not replayed on the node: help texts (cobra's, not clap's), the
/// gateway's raw JSON (`gw_*`: only their writes are replayed), and the
/// unreachable endpoint (`dead_endpoints_hang_silently`).
fn replayed(c: &Case) -> bool {
    !(c.name.starts_with("help") || c.name.starts_with("gw_") || c.name.starts_with("dead_endpoint"))
}

#[test]
fn the_etcdctl_watch_session_replays_identically() {
    // The captures' etcd notified progress every 2 s (it matters only to
    // gw_progress_notify, which is not replayed).
    let mut node = Node::start("watch-progress-notify-interval-ms = 2000");
    let proxy = WatchProxy::start(&node.endpoint);
    let mut checked = 0;
    for c in cases() {
        if c.name.starts_with("gw_") {
            // The gateway's writes, so the revisions stay in step.
            for step in split_ops(&c.ops) {
                if step.starts_with("ctl ") || step.starts_with("printf ") {
                    node.ops(&step);
                }
            }
            continue;
        }
        if !replayed(&c) {
            continue;
        }
        if c.name == "rev_nonnumeric" {
            run_case(&mut node, &proxy, &c);
            // The script's compaction, between the `rev_*` cases and the
            // `compacted*` ones.
            node.ops("ctl put cmp c1; ctl put cmp c2; ctl put cmp c3; ctl compaction $(currev)");
            checked += 1;
            continue;
        }
        run_case(&mut node, &proxy, &c);
        checked += 1;
    }
    assert_eq!(checked, 113 - 16, "every case but the 16 left out is replayed");
}

/// The captures the replay leaves out are exactly these: the help texts
/// (clap's, not cobra's), the gateway's raw JSON (only the writes of the
/// `gw_*` cases are replayed) and the unreachable endpoints (checked by
/// `dead_endpoints_hang_silently`). A new capture is replayed by default.
#[test]
fn only_known_captures_are_left_out_of_the_replay() {
    let all = cases();
    assert_eq!(all.len(), 113, "cases.tsv changed");
    let mut left_out: Vec<String> = all.iter().filter(|c| !replayed(c)).map(|c| c.name.clone()).collect();
    left_out.sort();
    let mut want: Vec<&str> = vec![
        "help",
        "help_short",
        "dead_endpoint",
        "dead_endpoint_timeouts",
        "dead_endpoint_json",
        "dead_endpoint_no_key",
        "dead_endpoint_interactive_eof",
        "gw_basic",
        "gw_prevkv",
        "gw_two_watches",
        "gw_txn_prefix",
        "gw_history",
        "gw_compacted",
        "gw_progress_request",
        "gw_progress_notify",
        "gw_filter_nodelete",
    ];
    want.sort();
    assert_eq!(left_out, want);
}

// ---------------------------------------------------------------- no server

/// An address nothing listens on.
fn dead_endpoint() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn dead_endpoints_hang_silently() {
    let ep = dead_endpoint();
    // Watches that can never be set up: no output, no exit, until killed.
    let mut hanging: Vec<(Case, Running)> = ["dead_endpoint", "dead_endpoint_timeouts", "dead_endpoint_json"]
        .iter()
        .map(|n| {
            let c = case(n);
            let r = Running::start(&c.cmd.replace("127.0.0.1:22499", &ep), &ep, false);
            (c, r)
        })
        .collect();
    // The other two end at once.
    for name in ["dead_endpoint_no_key", "dead_endpoint_interactive_eof"] {
        let c = case(name);
        let mut r = Running::start(&c.cmd.replace("127.0.0.1:22499", &ep), &ep, false);
        let code = r.wait_exit(Duration::from_secs(10));
        check(&c, code, &r.out(), &r.err());
    }
    // Several 1 s dial and command timeouts pass while they are watched.
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        for (c, r) in hanging.iter_mut() {
            assert_eq!(r.exited(), None, "{} exited: {} {}", c.name, show(&r.out()), show(&r.err()));
            assert!(r.out().is_empty() && r.err().is_empty(), "{}: {} {}", c.name, show(&r.out()), show(&r.err()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (c, r) in hanging.iter_mut() {
        r.signal(libc::SIGINT);
        let code = r.wait_exit(Duration::from_secs(10));
        check(c, code, &r.out(), &r.err());
    }
}

// ---------------------------------------------------------------- --progress-notify

/// raftkvctl's one addition: etcd 3.5's `--progress-notify`, with 3.5's
/// `progress notify: <revision>` lines (plus the response in JSON), on
/// the command line and in interactive lines.
#[test]
fn progress_notify_prints_the_revision_periodically() {
    let node = Node::start("watch-progress-notify-interval-ms = 100");
    node.ops("ctl put other x; ctl put other y");
    let rev = node.revision();
    let ep = &node.endpoint;
    let line = format!("progress notify: {rev}\n");
    let twice = line.repeat(2);

    let mut w = Running::start(&format!("etcdctl --endpoints={ep} watch --progress-notify foo"), ep, false);
    let ok = w.wait_output(OUTPUT_WAIT, |o, _| o.starts_with(twice.as_bytes()));
    assert!(ok, "no periodic progress lines: {} {}", show(&w.out()), show(&w.err()));
    // Only whole progress lines, nothing on stderr.
    assert!(String::from_utf8_lossy(&w.out()).lines().all(|l| l == line.trim_end()), "{}", show(&w.out()));
    assert!(w.err().is_empty(), "{}", show(&w.err()));

    let mut j = Running::start(&format!("etcdctl --endpoints={ep} watch --progress-notify foo -w json"), ep, false);
    let header = format!("\"revision\":{rev},");
    let ok = j.wait_output(OUTPUT_WAIT, |o, _| {
        let text = String::from_utf8_lossy(o);
        let lines: Vec<&str> = text.lines().collect();
        lines.len() >= 2
            && lines[0] == line.trim_end()
            && lines[1].contains(&header)
            && lines[1].ends_with("\"Events\":[],\"CompactRevision\":0,\"Canceled\":false,\"Created\":false}")
    });
    assert!(ok, "no JSON progress: {} {}", show(&j.out()), show(&j.err()));

    // In an interactive line too; a plain watch line gets none.
    let mut i = Running::start(&format!("etcdctl --endpoints={ep} watch -i"), ep, true);
    i.write_line(b"watch foo");
    i.write_line(b"watch --progress-notify bar");
    let ok = i.wait_output(OUTPUT_WAIT, |o, _| o.starts_with(twice.as_bytes()));
    assert!(ok, "no interactive progress: {} {}", show(&i.out()), show(&i.err()));
    // A write to foo shows once (the first watch) between progress lines.
    node.ops("ctl put foo v");
    let ok = i.wait_output(OUTPUT_WAIT, |o, _| String::from_utf8_lossy(o).contains("PUT\nfoo\nv\n"));
    assert!(ok, "no event: {}", show(&i.out()));
    assert_eq!(String::from_utf8_lossy(&i.out()).matches("PUT\nfoo\nv\n").count(), 1);
    assert!(i.err().is_empty(), "{}", show(&i.err()));
    for r in [&mut w, &mut j, &mut i] {
        r.signal(libc::SIGINT);
        assert_eq!(r.wait_exit(Duration::from_secs(10)), Some(130));
    }
}

#[test]
fn ops_split_like_the_script() {
    assert_eq!(
        split_ops("wline \"watch foo -- sh -c \\\"env | sort; echo\\\"\"; ctl put foo x; line 'a; b'"),
        vec!["wline \"watch foo -- sh -c \\\"env | sort; echo\\\"\"", "ctl put foo x", "line 'a; b'"]
    );
}
