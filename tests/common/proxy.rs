//! A TCP proxy for peer links, controlled by the test (no root needed).
//!
//! One [`Proxy`] per destination member: it listens on the member's
//! advertised peer address and forwards to its listen address. It reads the
//! `peerpb::Hello` that opens every peer connection to learn the source
//! member, so each directed link (from, to) has its own [`LinkPolicy`]:
//! pass, cut (the link's connections are closed and new ones refused),
//! delay (every frame held for a while, order kept) and drop (each whole
//! frame of a MESSAGES connection dropped with a probability; a frame is one
//! independent Raft message, so this is a valid network fault; a frame is
//! never cut in part). Snapshot connections are delayed and cut, never
//! thinned. Randomness is seeded.
//!
//! Threads: one acceptor per proxy, and per connection one handler (the
//! handshake, then client-to-member frames), one writer (delayed frames) and
//! one pump (member-to-client bytes). `Proxy::stop` (also on drop) closes
//! every socket and joins every thread.
//!
//! [`Net`] holds the proxies of a whole cluster and controls links by
//! member index.
#![allow(dead_code)]

use prost::Message as _;
use raftkv::proto::peerpb::{hello::Kind, Hello};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest frame the proxy forwards (the members' own limit is 16 MiB).
const MAX_FRAME: usize = 20 << 20;
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What happens to the frames of one directed link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkPolicy {
    /// Close the link's connections and refuse new ones.
    pub cut: bool,
    /// Hold every frame this long (order kept).
    pub delay: Duration,
    /// Drop each frame of a MESSAGES connection with this probability.
    pub drop: f64,
}

impl LinkPolicy {
    pub const PASS: LinkPolicy = LinkPolicy { cut: false, delay: Duration::ZERO, drop: 0.0 };
    pub const CUT: LinkPolicy = LinkPolicy { cut: true, delay: Duration::ZERO, drop: 0.0 };

    pub fn lossy(drop: f64, delay: Duration) -> LinkPolicy {
        LinkPolicy { cut: false, delay, drop }
    }
}

/// Counters of one proxy (all sources together).
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub frames: AtomicU64,
    pub dropped: AtomicU64,
    pub delayed: AtomicU64,
}

/// One live proxied connection, so a cut or a stop can close it.
struct Live {
    id: u64,
    from: u64,
    sockets: Vec<TcpStream>,
}

impl Live {
    fn close(&self) {
        for s in &self.sockets {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

struct Inner {
    /// For messages: the destination's name.
    name: String,
    target: SocketAddr,
    stop: AtomicBool,
    /// Policy per source member id (absent: pass). Held while a
    /// connection registers, so a cut never misses one.
    policies: Mutex<HashMap<u64, LinkPolicy>>,
    live: Mutex<Vec<Live>>,
    next_conn: AtomicU64,
    rng: Mutex<ChaCha8Rng>,
    stats: Stats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn policy(&self, from: u64) -> LinkPolicy {
        lock(&self.policies).get(&from).copied().unwrap_or_default()
    }

    fn unregister(&self, id: u64) {
        lock(&self.live).retain(|l| l.id != id);
    }
}

pub struct Proxy {
    /// The address members dial (the member's advertised peer address).
    pub listen: SocketAddr,
    /// The member's own peer listener.
    pub target: SocketAddr,
    inner: Arc<Inner>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on `listen` that forwards to `target`.
    pub fn start(name: &str, listen: SocketAddr, target: SocketAddr, seed: u64) -> Proxy {
        let listener = TcpListener::bind(listen).unwrap_or_else(|e| panic!("proxy for {name}: bind {listen}: {e}"));
        let inner = Arc::new(Inner {
            name: name.to_string(),
            target,
            stop: AtomicBool::new(false),
            policies: Mutex::new(HashMap::new()),
            live: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(1),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            stats: Stats::default(),
        });
        let acc_inner = inner.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-{name}"))
            .spawn(move || accept_loop(listener, acc_inner))
            .expect("spawn proxy acceptor");
        Proxy { listen, target, inner, acceptor: Some(acceptor) }
    }

    /// Sets the policy of the link from member `from` (by id) to this one.
    /// A cut closes the link's live connections at once.
    pub fn set(&self, from: u64, p: LinkPolicy) {
        let mut policies = lock(&self.inner.policies);
        policies.insert(from, p);
        if p.cut {
            let live = lock(&self.inner.live);
            for l in live.iter().filter(|l| l.from == from) {
                l.close();
            }
        }
    }

    pub fn policy(&self, from: u64) -> LinkPolicy {
        self.inner.policy(from)
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Number of live proxied connections from `from`.
    pub fn live_from(&self, from: u64) -> usize {
        lock(&self.inner.live).iter().filter(|l| l.from == from).count()
    }

    /// Closes every connection and joins every thread.
    pub fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else { return };
        {
            // Under the policy lock: a connection registers either before
            // this sweep or after it sees the flag.
            let _policies = lock(&self.inner.policies);
            self.inner.stop.store(true, Ordering::SeqCst);
            for l in lock(&self.inner.live).iter() {
                l.close();
            }
        }
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.listen, Duration::from_secs(1));
        let _ = acceptor.join();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if inner.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            // EMFILE and the like: do not spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        handlers.retain(|h| !h.is_finished());
        let inner = inner.clone();
        match std::thread::Builder::new().name("proxy-conn".into()).spawn(move || handle(stream, inner)) {
            Ok(h) => handlers.push(h),
            Err(e) => eprintln!("proxy: cannot spawn a connection handler: {e}"),
        }
    }
    drop(listener);
    // Connections registered after the stop's sweep close themselves (the
    // stop flag is checked at registration), so these joins end.
    for h in handlers {
        let _ = h.join();
    }
}

/// Reads one frame (4-byte big-endian length, then the payload), returning
/// the whole frame with its prefix.
fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix)?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("frame of {len} bytes")));
    }
    let mut frame = vec![0u8; 4 + len];
    frame[..4].copy_from_slice(&prefix);
    s.read_exact(&mut frame[4..])?;
    Ok(frame)
}

/// One proxied connection: the handshake, then client-to-member frames
/// under the link's policy until either side closes or the link is cut.
fn handle(mut client: TcpStream, inner: Arc<Inner>) {
    let _ = client.set_nodelay(true);
    let _ = client.set_read_timeout(Some(HELLO_TIMEOUT));
    let Ok(hello_frame) = read_frame(&mut client) else { return };
    let Ok(hello) = Hello::decode(&hello_frame[4..]) else { return };
    let _ = client.set_read_timeout(None);
    let from = hello.from;
    let snapshot = hello.kind() == Kind::Snapshot;
    inner.stats.connections.fetch_add(1, Ordering::Relaxed);
    if inner.policy(from).cut {
        inner.stats.refused.fetch_add(1, Ordering::Relaxed);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut upstream) = TcpStream::connect_timeout(&inner.target, CONNECT_TIMEOUT) else {
        // The member is down: the dialler sees the link close.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = upstream.set_nodelay(true);
    // Register under the policy lock: a cut decided meanwhile is seen here,
    // and a cut decided later finds this connection.
    let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    {
        let policies = lock(&inner.policies);
        let cut = policies.get(&from).is_some_and(|p| p.cut);
        let clones = (client.try_clone(), upstream.try_clone());
        let (Ok(c2), Ok(u2)) = clones else { return };
        if cut || inner.stop.load(Ordering::SeqCst) {
            inner.stats.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        lock(&inner.live).push(Live { id, from, sockets: vec![c2, u2] });
    }
    if upstream.write_all(&hello_frame).is_err() {
        close_both(&client, &upstream);
        inner.unregister(id);
        return;
    }
    // Member to client: raw bytes (HelloReply, SnapshotDone).
    let pump = {
        let (Ok(mut from_up), Ok(mut to_client)) = (upstream.try_clone(), client.try_clone()) else {
            close_both(&client, &upstream);
            inner.unregister(id);
            return;
        };
        std::thread::Builder::new().name("proxy-pump".into()).spawn(move || {
            let _ = std::io::copy(&mut from_up, &mut to_client);
            let _ = from_up.shutdown(Shutdown::Both);
            let _ = to_client.shutdown(Shutdown::Both);
        })
    };
    // Client to member: frames, through a writer that holds each until due.
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = {
        let Ok(mut up) = upstream.try_clone() else {
            close_both(&client, &upstream);
            inner.unregister(id);
            return;
        };
        let c = client.try_clone().ok();
        std::thread::Builder::new().name("proxy-writer".into()).spawn(move || {
            for (due, frame) in rx {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if up.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = up.shutdown(Shutdown::Both);
            if let Some(c) = c {
                let _ = c.shutdown(Shutdown::Both);
            }
        })
    };
    while let Ok(frame) = read_frame(&mut client) {
        let p = inner.policy(from);
        if p.cut {
            break;
        }
        inner.stats.frames.fetch_add(1, Ordering::Relaxed);
        if !snapshot && p.drop > 0.0 && lock(&inner.rng).random_bool(p.drop.min(1.0)) {
            inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if !p.delay.is_zero() {
            inner.stats.delayed.fetch_add(1, Ordering::Relaxed);
        }
        if tx.send((Instant::now() + p.delay, frame)).is_err() {
            break;
        }
    }
    drop(tx);
    close_both(&client, &upstream);
    if let Ok(h) = writer {
        let _ = h.join();
    }
    if let Ok(h) = pump {
        let _ = h.join();
    }
    inner.unregister(id);
}

fn close_both(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// The proxies of a cluster, one per member, addressed by member index.
pub struct Net {
    pub proxies: Vec<Proxy>,
    /// Member ids by index (what the proxies see in the handshake).
    pub ids: Vec<u64>,
}

impl Net {
    pub fn new(proxies: Vec<Proxy>, ids: Vec<u64>) -> Net {
        assert_eq!(proxies.len(), ids.len());
        Net { proxies, ids }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Sets the link from member `from` to member `to`.
    pub fn set(&self, from: usize, to: usize, p: LinkPolicy) {
        assert_ne!(from, to, "no link from a member to itself");
        self.proxies[to].set(self.ids[from], p);
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_both(&self, a: usize, b: usize, p: LinkPolicy) {
        self.set(a, b, p);
        self.set(b, a, p);
    }

    /// Sets every link.
    pub fn set_all(&self, p: LinkPolicy) {
        for from in 0..self.len() {
            for to in 0..self.len() {
                if from != to {
                    self.set(from, to, p);
                }
            }
        }
    }

    /// Cuts `i` off from every other member, both ways.
    pub fn isolate(&self, i: usize) {
        for j in 0..self.len() {
            if j != i {
                self.set_both(i, j, LinkPolicy::CUT);
            }
        }
    }

    /// Cuts every link between different groups; links inside a group pass.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for from in 0..self.len() {
            for to in 0..self.len() {
                if from != to {
                    let same = group_of(from).is_some() && group_of(from) == group_of(to);
                    self.set(from, to, if same { LinkPolicy::PASS } else { LinkPolicy::CUT });
                }
            }
        }
    }

    /// Every link passes again.
    pub fn heal(&self) {
        self.set_all(LinkPolicy::PASS);
    }

    /// Frames dropped by all proxies so far.
    pub fn dropped(&self) -> u64 {
        self.proxies.iter().map(|p| p.stats().dropped.load(Ordering::Relaxed)).sum()
    }

    /// Frames forwarded or dropped by all proxies so far.
    pub fn frames(&self) -> u64 {
        self.proxies.iter().map(|p| p.stats().frames.load(Ordering::Relaxed)).sum()
    }

    pub fn stop(&mut self) {
        for p in &mut self.proxies {
            p.stop();
        }
    }
}
