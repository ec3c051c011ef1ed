//! A cluster of real `raftkv` processes for fault tests.
//!
//! Every member runs as a child process on free 127.0.0.1 ports with its
//! own data directory, and advertises the address of its [`Proxy`], so every
//! peer link goes through the test's [`Net`]. The harness kills (SIGKILL),
//! stops (SIGTERM), restarts and wipes members, asks them for Status, and
//! waits for conditions with bounded waits that say what they waited for.
//! Each member's stderr goes to a log file outside its data directory (kept
//! across restarts and wipes), which `check_logs` searches for panics.
//! Dropping the cluster kills every child and stops every proxy, even on a
//! panic; after a panic the directory with the logs is kept and printed.
#![allow(dead_code)]

use super::free_port;
use super::proxy::{Net, Proxy};
use raftkv::api::framing::{encode_frame, Frame, FrameDecoder};
use raftkv::proto::etcdserverpb::{HashKvRequest, HashKvResponse, StatusRequest, StatusResponse};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use raftkv::proto::raftkvpb::{ClientRequest, ClientResponse};
use std::fmt::Display;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ client

/// Why a call got no answer.
#[derive(Debug, Clone)]
pub enum CallError {
    /// No connection, connection lost, or no answer in time: the outcome
    /// of a write is unknown.
    Lost(String),
    /// The server answered with an error.
    Server { code: i32, message: String },
}

impl Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Lost(why) => write!(f, "no answer: {why}"),
            CallError::Server { code, message } => write!(f, "error {code}: {message}"),
        }
    }
}

/// A client connection that never panics and never waits unboundedly.
/// Requests may be pipelined (`send` / `recv`).
pub struct Client {
    pub addr: SocketAddr,
    stream: TcpStream,
    decoder: FrameDecoder,
    next_id: u64,
}

impl Client {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, String> {
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        Ok(Client { addr, stream, decoder: FrameDecoder::new(64 << 20), next_id: 1 })
    }

    /// Sends a request; its id.
    pub fn send(&mut self, body: Req) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(&ClientRequest { request_id: id, auth_token: String::new(), body: Some(body) });
        self.stream.write_all(&frame).map_err(|e| format!("send to {}: {e}", self.addr))?;
        Ok(id)
    }

    /// Sends another request on an open stream: `id` is the request id of
    /// the request that opened it (a keep-alive stream's next keep-alive).
    pub fn send_on(&mut self, id: u64, body: Req) -> Result<(), String> {
        let frame = encode_frame(&ClientRequest { request_id: id, auth_token: String::new(), body: Some(body) });
        self.stream.write_all(&frame).map_err(|e| format!("send to {}: {e}", self.addr))
    }

    /// The next response, `Ok(None)` if none came by `deadline`, `Err` if
    /// the connection is gone.
    pub fn recv(&mut self, deadline: Instant) -> Result<Option<ClientResponse>, String> {
        use prost::Message as _;
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some(f) = self.decoder.next_frame() {
                return match f {
                    Frame::Message(m) => ClientResponse::decode(m)
                        .map(Some)
                        .map_err(|e| format!("undecodable response from {}: {e}", self.addr)),
                    Frame::TooLarge { len, .. } => Err(format!("response of {len} bytes from {}", self.addr)),
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let _ = self.stream.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(format!("{} closed the connection", self.addr)),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(format!("read from {}: {e}", self.addr)),
            }
        }
    }

    /// Sends a request and waits at most `timeout` for its answer.
    pub fn call(&mut self, body: Req, timeout: Duration) -> Result<Resp, CallError> {
        let deadline = Instant::now() + timeout;
        let id = self.send(body).map_err(CallError::Lost)?;
        loop {
            match self.recv(deadline) {
                Ok(Some(r)) if r.request_id == id => {
                    return match r.body {
                        Some(Resp::Error(e)) => Err(CallError::Server { code: e.code, message: e.message }),
                        Some(b) => Ok(b),
                        None => Err(CallError::Lost("an answer without a body".into())),
                    };
                }
                Ok(Some(_)) => continue, // a late answer to an earlier request
                Ok(None) => return Err(CallError::Lost(format!("no answer from {} within {timeout:?}", self.addr))),
                Err(e) => return Err(CallError::Lost(e)),
            }
        }
    }
}

/// Polls `f` every 20 ms until it returns `Ok`, at most `within`; panics
/// naming `what` and the last state `f` reported otherwise.
pub fn wait_for<T>(within: Duration, what: impl Display, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last state: {state}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

// ------------------------------------------------------------------ cluster

#[derive(Debug, Clone)]
pub struct Opts {
    pub size: usize,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub request_timeout_ms: u64,
    pub snapshot_count: Option<u64>,
    pub snapshot_catchup_entries: Option<u64>,
    pub quota_bytes: Option<u64>,
    pub corrupt_check_ms: Option<u64>,
    pub auto_promote: bool,
    pub log_level: String,
    /// Seeds the proxies' randomness.
    pub seed: u64,
    /// Where the cluster's directory (data and logs) is made; the system's
    /// temporary directory if `None`.
    pub parent_dir: Option<PathBuf>,
    /// A snapshot file every member is restored from (`raftkvctl snapshot
    /// restore`, token `restored`) before its first start.
    pub restore_from: Option<PathBuf>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            size: 3,
            heartbeat_ms: 100,
            election_ms: 1000,
            request_timeout_ms: 3000,
            snapshot_count: None,
            snapshot_catchup_entries: None,
            quota_bytes: None,
            corrupt_check_ms: None,
            auto_promote: false,
            log_level: "info".into(),
            seed: 0,
            parent_dir: None,
            restore_from: None,
        }
    }
}

pub struct Member {
    pub name: String,
    pub id: u64,
    pub client: SocketAddr,
    pub listen_peer: SocketAddr,
    /// The proxy's address, which the member advertises.
    pub advertise: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// How many times the process was started.
    pub starts: usize,
    /// A member added at run time: its `--initial-cluster` (which names it
    /// and the members it joins) and `--initial-cluster-state existing`.
    pub joining: Option<String>,
}

impl Member {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
    pub net: Net,
    pub opts: Opts,
    initial: String,
    root: tempfile::TempDir,
}

impl Cluster {
    /// Starts the proxies and every member, and waits for a leader.
    pub fn start(opts: Opts) -> Cluster {
        let mut builder = tempfile::Builder::new();
        builder.prefix("raftkv-faults-");
        let root = match &opts.parent_dir {
            Some(dir) => builder.tempdir_in(dir),
            None => builder.tempdir(),
        }
        .expect("temp dir");
        std::fs::create_dir_all(root.path().join("logs")).expect("logs dir");
        let mut members = Vec::new();
        for i in 0..opts.size {
            let name = format!("n{}", i + 1);
            let port = || -> SocketAddr { format!("127.0.0.1:{}", free_port()).parse().expect("addr") };
            let (client, listen_peer, advertise) = (port(), port(), port());
            members.push(Member {
                id: raftkv::server::ids::member_id(&name, &advertise),
                data_dir: root.path().join(&name),
                log: root.path().join("logs").join(format!("{name}.log")),
                name,
                client,
                listen_peer,
                advertise,
                child: None,
                starts: 0,
                joining: None,
            });
        }
        let initial: Vec<String> = members.iter().map(|m| format!("{}={}", m.name, m.advertise)).collect();
        let proxies = members
            .iter()
            .enumerate()
            .map(|(i, m)| Proxy::start(&m.name, m.advertise, m.listen_peer, opts.seed ^ (0x9e37_79b9 * (i as u64 + 1))))
            .collect();
        let net = Net::new(proxies, members.iter().map(|m| m.id).collect());
        let mut c = Cluster { members, net, opts, initial: initial.join(","), root };
        if let Some(file) = c.opts.restore_from.clone() {
            for i in 0..c.members.len() {
                c.restore(i, &file);
            }
        }
        for i in 0..c.members.len() {
            c.spawn(i);
        }
        let all: Vec<usize> = (0..c.members.len()).collect();
        c.wait_leader(&all, Duration::from_secs(30));
        c
    }

    /// Makes member `i`'s data directory from a snapshot file.
    fn restore(&self, i: usize, file: &std::path::Path) {
        let m = &self.members[i];
        let out = Command::new(env!("CARGO_BIN_EXE_raftkvctl"))
            .args(["snapshot", "restore"])
            .arg(file)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--name", &m.name, "--initial-cluster-token", "restored"])
            .args(["--initial-cluster", &self.initial.replace('=', "=http://")])
            .args(["--initial-advertise-peer-urls", &format!("http://{}", m.advertise)])
            .output()
            .expect("run raftkvctl snapshot restore");
        assert!(
            out.status.success(),
            "restoring {} failed ({}): {}",
            m.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes room for a member to be added at run time (not started, no id
    /// until `member add` gives it one; its peers reach it directly, with
    /// no proxy). Returns its index.
    pub fn new_member_slot(&mut self) -> usize {
        let name = format!("n{}", self.members.len() + 1);
        let port = || -> SocketAddr { format!("127.0.0.1:{}", free_port()).parse().expect("addr") };
        let (client, peer) = (port(), port());
        let joining = format!("{},{name}={peer}", self.initial);
        self.members.push(Member {
            id: 0,
            data_dir: self.root.path().join(&name),
            log: self.root.path().join("logs").join(format!("{name}.log")),
            name,
            client,
            listen_peer: peer,
            advertise: peer,
            child: None,
            starts: 0,
            joining: Some(joining),
        });
        self.members.len() - 1
    }

    /// Waits for member `i`'s process to exit on its own; its status.
    pub fn wait_exit(&mut self, i: usize, within: Duration) -> ExitStatus {
        let m = &mut self.members[i];
        let name = m.name.clone();
        let mut child = m.child.take().unwrap_or_else(|| panic!("wait_exit: {name} is not running"));
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not exit on its own within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every member's index.
    pub fn all(&self) -> Vec<usize> {
        (0..self.len()).collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn endpoints(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.client).collect()
    }

    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// Starts member `i`'s process (it must not be running).
    pub fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "{} is already running", m.name);
        m.starts += 1;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&m.log).expect("open member log");
        let _ = writeln!(log, "=== raftkv test harness: start #{} of {} ===", m.starts, m.name);
        let o = &self.opts;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raftkv"));
        cmd.args(["--name", &m.name, "--data-dir"])
            .arg(&m.data_dir)
            .args(["--listen-client", &m.client.to_string()])
            .args(["--listen-peer", &m.listen_peer.to_string()])
            .args(["--advertise-peer", &m.advertise.to_string()])
            .args(["--initial-cluster", m.joining.as_deref().unwrap_or(&self.initial)])
            .args(["--heartbeat-ms", &o.heartbeat_ms.to_string()])
            .args(["--election-ms", &o.election_ms.to_string()])
            .args(["--request-timeout-ms", &o.request_timeout_ms.to_string()])
            .args(["--log-level", &o.log_level]);
        if m.joining.is_some() {
            cmd.args(["--initial-cluster-state", "existing"]);
        }
        if let Some(n) = o.snapshot_count {
            cmd.args(["--snapshot-count", &n.to_string()]);
        }
        if let Some(n) = o.snapshot_catchup_entries {
            cmd.args(["--snapshot-catchup-entries", &n.to_string()]);
        }
        if let Some(n) = o.quota_bytes {
            cmd.args(["--quota-bytes", &n.to_string()]);
        }
        if o.auto_promote {
            cmd.args(["--auto-promote-learners", "true"]);
        }
        if let Some(n) = o.corrupt_check_ms {
            cmd.args(["--corrupt-check-interval-ms", &n.to_string()]);
        }
        match std::env::var("RAFTKV_FAULT_LOG") {
            Ok(filter) => cmd.env("RUST_LOG", filter),
            Err(_) => cmd.env_remove("RUST_LOG"),
        };
        cmd.env("RUST_BACKTRACE", "1");
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log)).spawn().expect("spawn raftkv");
        m.child = Some(child);
    }

    /// Panics if member `i`'s process exited on its own.
    fn check_not_exited(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(child) = m.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let name = m.name.clone();
                m.child = None;
                panic!("{name} exited on its own with {status}; log tail:\n{}", self.log_tail(i, 40));
            }
        }
    }

    /// Every member that should be running still is.
    pub fn check_running(&mut self) {
        for i in 0..self.len() {
            self.check_not_exited(i);
        }
    }

    /// SIGKILL: the member must have been running; returns once reaped.
    pub fn kill9(&mut self, i: usize) {
        self.check_not_exited(i);
        let m = &mut self.members[i];
        let mut child = m.child.take().unwrap_or_else(|| panic!("kill9: {} is not running", m.name));
        let _ = child.kill();
        let status = child.wait().expect("wait for killed child");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{} after SIGKILL: {status}", m.name);
    }

    /// Sends signal `sig` (SIGSTOP, SIGCONT, ...) to member `i`'s process,
    /// which must be running. A stopped member is still killed on drop
    /// (SIGKILL ends a stopped process too).
    pub fn signal(&self, i: usize, sig: i32) {
        let m = &self.members[i];
        let child = m.child.as_ref().unwrap_or_else(|| panic!("signal {sig}: {} is not running", m.name));
        // SAFETY: signalling our own child by pid; it has not been reaped.
        let rc = unsafe { libc::kill(child.id() as i32, sig) };
        assert_eq!(rc, 0, "signal {sig} to {}: {}", m.name, std::io::Error::last_os_error());
    }

    /// Waits until member `i`'s process answers Status.
    pub fn wait_serving(&mut self, i: usize, within: Duration) {
        let addr = self.members[i].client;
        let name = self.members[i].name.clone();
        wait_for(within, format!("{name} to answer Status"), || {
            self.check_not_exited(i);
            status_at(addr).map(|_| ())
        });
    }

    /// SIGTERM: the member must exit 0 within 10 s. It is sent once the
    /// member serves: before its handler is installed, SIGTERM's default
    /// action ends a process that just started, as any other.
    pub fn sigterm(&mut self, i: usize) -> ExitStatus {
        self.wait_serving(i, Duration::from_secs(20));
        let m = &mut self.members[i];
        let mut child = m.child.take().unwrap_or_else(|| panic!("sigterm: {} is not running", m.name));
        // SAFETY: signalling our own child by pid; it has not been reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within 10 s of SIGTERM", m.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "{} exit status after SIGTERM: {status}", m.name);
        status
    }

    /// Starts a stopped member again and waits until it answers Status.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_serving(i, Duration::from_secs(20));
    }

    /// Deletes a stopped member's data directory.
    pub fn wipe(&mut self, i: usize) {
        let m = &self.members[i];
        assert!(m.child.is_none(), "wipe: {} is running", m.name);
        std::fs::remove_dir_all(&m.data_dir).unwrap_or_else(|e| panic!("wipe {}: {e}", m.data_dir.display()));
    }

    pub fn status(&self, i: usize) -> Result<StatusResponse, String> {
        status_at(self.members[i].client).map_err(|e| format!("{}: {e}", self.members[i].name))
    }

    pub fn hash_kv(&self, i: usize, revision: i64) -> Result<HashKvResponse, String> {
        let mut c = Client::connect(self.members[i].client, Duration::from_secs(1))?;
        match c.call(Req::HashKv(HashKvRequest { revision }), Duration::from_secs(10)) {
            Ok(Resp::HashKv(h)) => Ok(h),
            Ok(other) => Err(format!("unexpected answer to HashKV: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The leader if every member of `among` is up and names the same
    /// leader, itself one of `among`.
    pub fn leader_among(&self, among: &[usize]) -> Result<usize, String> {
        let mut seen = Vec::new();
        for &i in among {
            seen.push((i, self.status(i)?.leader));
        }
        let l = seen[0].1;
        if l == 0 || seen.iter().any(|&(_, x)| x != l) {
            return Err(format!("leaders seen: {}", self.describe(&seen)));
        }
        match self.index_of(l) {
            Some(li) if among.contains(&li) => Ok(li),
            _ => Err(format!("leader {l:x} is not among {among:?}")),
        }
    }

    pub fn wait_leader(&self, among: &[usize], within: Duration) -> usize {
        wait_for(within, format!("members {among:?} to agree on a leader among them"), || self.leader_among(among))
    }

    fn describe(&self, seen: &[(usize, u64)]) -> String {
        seen.iter()
            .map(|&(i, l)| {
                let l = self.index_of(l).map_or(format!("{l:x}"), |li| self.members[li].name.clone());
                format!("{}->{}", self.members[i].name, l)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Waits until every running member names the same leader and has
    /// applied the same index, at least what the leader had when asked.
    pub fn wait_converged(&self, within: Duration) {
        let running: Vec<usize> = (0..self.len()).filter(|&i| self.members[i].is_running()).collect();
        let mut target = None;
        wait_for(within, "the running members to converge (one leader, equal applied indexes)", || {
            let l = self.leader_among(&running)?;
            let t = match target {
                Some(t) => t,
                None => {
                    let t = self.status(l)?.raft_index;
                    target = Some(t);
                    t
                }
            };
            let applied: Vec<u64> =
                running.iter().map(|&i| self.status(i).map(|s| s.raft_applied_index)).collect::<Result<_, _>>()?;
            if applied.iter().all(|&a| a == applied[0] && a >= t) {
                Ok(())
            } else {
                Err(format!("applied indexes {applied:?}, wanted equal and at least {t}"))
            }
        })
    }

    /// Every running member has the same HashKV at a revision all of them
    /// have; returns that revision and hash.
    pub fn assert_same_hash_kv(&self) -> (i64, u32) {
        let running: Vec<usize> = (0..self.len()).filter(|&i| self.members[i].is_running()).collect();
        let revs: Vec<i64> = running
            .iter()
            .map(|&i| self.status(i).map(|s| s.header.map_or(0, |h| h.revision)))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("status for HashKV: {e}"));
        let rev = *revs.iter().min().expect("a running member");
        let hashes: Vec<(String, HashKvResponse)> = running
            .iter()
            .map(|&i| (self.members[i].name.clone(), self.hash_kv(i, rev).unwrap_or_else(|e| panic!("HashKV: {e}"))))
            .collect();
        let first = &hashes[0].1;
        for (name, h) in &hashes {
            assert_eq!(
                (h.hash, h.hash_revision),
                (first.hash, first.hash_revision),
                "HashKV at revision {rev} differs: {name} has {h:?}, {} has {first:?}",
                hashes[0].0
            );
        }
        (rev, first.hash)
    }

    /// No member's log mentions a panic.
    pub fn check_logs(&self) {
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            if let Some(pos) = text.find("panicked") {
                let start = text[..pos].rfind("===").unwrap_or(0);
                let end = (pos + 3000).min(text.len());
                panic!("{} panicked; its log:\n{}", m.name, &text[start..end]);
            }
        }
    }

    /// Lines of member `i`'s log containing `needle`.
    pub fn log_lines(&self, i: usize, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
    }

    /// Member `i`'s log since its latest start.
    pub fn log_since_start(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let from = text.rfind("=== raftkv test harness: start #").unwrap_or(0);
        text[from..].to_string()
    }

    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.net.stop();
        if std::thread::panicking() {
            self.root.disable_cleanup(true);
            eprintln!("cluster directory (data and logs) kept in {}", self.root.path().display());
        }
    }
}

/// Status of the member serving clients at `addr`.
pub fn status_at(addr: SocketAddr) -> Result<StatusResponse, String> {
    let mut c = Client::connect(addr, Duration::from_millis(500))?;
    match c.call(Req::Status(StatusRequest {}), Duration::from_secs(2)) {
        Ok(Resp::Status(s)) => Ok(s),
        Ok(other) => Err(format!("unexpected answer to Status: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
