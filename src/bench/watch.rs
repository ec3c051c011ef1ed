//! The watch workloads: watchers on some connections, puts on others, and
//! for every event that arrives the time from just before its put was sent.
//!
//! - `watch`: `--watchers` watchers over `--watch-conns` connections, each
//!   on one key of the key space (or, with `--prefix`, all on the key
//!   space's prefix), `--total` puts from `--clients` threads (optionally
//!   paced to `--rate` puts/s); `ops_per_sec` is events delivered per
//!   second. `--stalled-conns` adds connections whose watchers never read.
//! - `watch-latency`: `--clients` watchers on one key, `--total`
//!   sequential puts to it.
//!
//! Each put's value starts with its sequence number, so an event names the
//! put it came from. A run ends when every expected event arrived or, after
//! the last put, nothing arrived for `request-timeout-ms`; events that
//! never came count as errors. Owns only measuring; never checks the
//! server's answers beyond counting them.

use super::args::{BenchArgs, Op};
use super::report::{Latencies, Report};
use crate::client::{Client, ClientError, ClientOptions};
use crate::plumbing::framing::{encode_frame_into, Frame, FrameDecoder};
use crate::proto::etcdserverpb::{watch_request::RequestUnion, PutRequest, WatchCreateRequest, WatchRequest};
use crate::proto::raftkvpb::{client_request, client_response, ClientRequest, ClientResponse};
use bytes::BytesMut;
use prost::Message as _;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every key starts with this, so one prefix watch sees them all.
const KEY_PREFIX: &[u8] = b"wb/";
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The shape of a watch run, from the flags.
#[derive(Debug, Clone)]
pub struct Plan {
    pub watchers: usize,
    pub watch_conns: usize,
    pub stalled_conns: usize,
    pub prefix: bool,
    pub key_space: u64,
    pub put_clients: usize,
    pub put_conns: usize,
    pub total: u64,
    pub rate: u64,
    pub val_size: usize,
    /// Each put waits until every watcher has its event (watch-latency, as
    /// etcd's benchmark does).
    pub wait_each: bool,
}

impl Plan {
    pub fn of(args: &BenchArgs) -> Option<Plan> {
        let c = &args.common;
        match &args.op {
            Op::Watch { watchers, watch_conns, stalled_conns, prefix, rate } => Some(Plan {
                watchers: *watchers,
                watch_conns: (*watch_conns).max(1),
                stalled_conns: *stalled_conns,
                prefix: *prefix,
                key_space: c.key_space,
                put_clients: c.clients,
                put_conns: c.conns,
                total: c.total,
                rate: *rate,
                val_size: c.val_size,
                wait_each: false,
            }),
            Op::WatchLatency => Some(Plan {
                watchers: c.clients,
                watch_conns: c.conns.min(c.clients).max(1),
                stalled_conns: 0,
                prefix: false,
                key_space: 1,
                put_clients: 1,
                put_conns: 1,
                total: c.total,
                rate: 0,
                val_size: c.val_size,
                wait_each: true,
            }),
            _ => None,
        }
    }

    fn key(k: u64) -> Vec<u8> {
        let mut key = KEY_PREFIX.to_vec();
        key.extend_from_slice(format!("{k:08}").as_bytes());
        key
    }

    /// The key watcher `w` watches (without `--prefix`).
    fn watched_key(&self, w: usize) -> u64 {
        w as u64 % self.key_space
    }

    /// How many watchers see a put to key `k`.
    fn watchers_of(&self, k: u64) -> u64 {
        if self.prefix {
            return self.watchers as u64;
        }
        let base = self.watchers as u64 / self.key_space;
        base + u64::from(k < self.watchers as u64 % self.key_space)
    }
}

/// What every thread shares.
struct Shared {
    /// Nanoseconds since `epoch` just before put `i` was sent (0: not yet).
    sent_at: Vec<AtomicU64>,
    epoch: Instant,
    expected: AtomicU64,
    delivered: AtomicU64,
    puts_done: AtomicBool,
    stop: AtomicBool,
    last_event: Mutex<Instant>,
    /// Signalled when events arrive (for `wait_each`).
    arrived: std::sync::Condvar,
}

/// Runs a watch workload.
pub fn run(args: &BenchArgs, plan: &Plan) -> Result<Report, ClientError> {
    let endpoints: Vec<String> = args.common.endpoints.iter().filter(|e| !e.trim().is_empty()).cloned().collect();
    let dial = Duration::from_millis(args.common.dial_timeout_ms);
    let timeout = Duration::from_millis(args.common.request_timeout_ms);
    let shared = Arc::new(Shared {
        sent_at: (0..plan.total).map(|_| AtomicU64::new(0)).collect(),
        epoch: Instant::now(),
        expected: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        puts_done: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        last_event: Mutex::new(Instant::now()),
        arrived: std::sync::Condvar::new(),
    });
    // Watchers first, each connection waiting for all its creates.
    let mut readers = Vec::new();
    for c in 0..plan.watch_conns {
        let ids: Vec<usize> = (0..plan.watchers).filter(|w| w % plan.watch_conns == c).collect();
        let socket = open_watchers(&endpoints[c % endpoints.len()], dial, plan, &ids, true, timeout)?;
        let sh = shared.clone();
        readers.push(std::thread::Builder::new().name(format!("watch-{c}")).spawn(move || read_events(socket, &sh)));
    }
    // Connections that watch the same keys and never read.
    let mut stalled = Vec::new();
    for c in 0..plan.stalled_conns {
        let ids: Vec<usize> = (0..plan.watchers.max(1)).collect();
        stalled.push(open_watchers(&endpoints[c % endpoints.len()], dial, plan, &ids, false, timeout)?);
    }
    let opts = ClientOptions {
        connections_per_endpoint: plan.put_conns.max(1),
        request_timeout: timeout,
        dial_timeout: dial,
        ..Default::default()
    };
    let client = Client::connect(&endpoints, opts)?;
    let next = AtomicU64::new(0);
    let put_errors = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..plan.put_clients.max(1) {
            s.spawn(|| put_loop(&client, plan, &shared, &next, &put_errors, started));
        }
    });
    shared.puts_done.store(true, Ordering::SeqCst);
    // Wait for the events still on their way.
    loop {
        if shared.delivered.load(Ordering::SeqCst) >= shared.expected.load(Ordering::SeqCst) {
            break;
        }
        let quiet = shared.last_event.lock().map(|t| t.elapsed()).unwrap_or_default();
        if quiet > timeout {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::SeqCst);
    let mut all = Latencies::new();
    for r in readers.into_iter().flatten() {
        if let Ok(lat) = r.join() {
            all.merge(&lat);
        }
    }
    drop(stalled);
    let missing = shared.expected.load(Ordering::SeqCst).saturating_sub(shared.delivered.load(Ordering::SeqCst));
    let errors = missing + put_errors.load(Ordering::SeqCst);
    let conns = plan.watch_conns + plan.stalled_conns;
    Ok(Report::new(args.op_name(), conns, plan.watchers, plan.total, elapsed, &all, errors))
}

/// One connection with a watch stream per watcher in `ids`, all created.
fn open_watchers(
    endpoint: &str,
    dial: Duration,
    plan: &Plan,
    ids: &[usize],
    wait_created: bool,
    timeout: Duration,
) -> Result<TcpStream, ClientError> {
    let mut socket = super::driver::dial(endpoint, dial)?;
    let closed = |e: std::io::Error| ClientError::Closed { reason: e.to_string() };
    let mut out = BytesMut::new();
    for &w in ids {
        let (key, range_end) = if plan.prefix {
            (KEY_PREFIX.to_vec(), crate::client::prefix_end(KEY_PREFIX))
        } else {
            (Plan::key(plan.watched_key(w)), Vec::new())
        };
        let create = WatchCreateRequest { key: key.into(), range_end: range_end.into(), ..Default::default() };
        let body =
            client_request::Body::Watch(WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) });
        encode_frame_into(
            &ClientRequest { request_id: w as u64 + 1, auth_token: String::new(), body: Some(body) },
            &mut out,
        );
    }
    socket.write_all(&out).map_err(closed)?;
    if !wait_created {
        return Ok(socket);
    }
    let mut created = 0;
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + timeout;
    while created < ids.len() {
        while let Some(f) = decoder.next_frame() {
            if let Some(client_response::Body::Watch(w)) = decode(f).and_then(|r| r.body) {
                if w.created && !w.canceled {
                    created += 1;
                } else if w.canceled {
                    return Err(ClientError::Protocol(format!("watch refused: {}", w.cancel_reason)));
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout);
        }
        match socket.read(&mut buf) {
            Ok(0) => return Err(ClientError::Closed { reason: "closed while creating watchers".into() }),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(closed(e)),
        }
    }
    Ok(socket)
}

fn decode(f: Frame) -> Option<ClientResponse> {
    match f {
        Frame::Message(m) => ClientResponse::decode(m).ok(),
        Frame::TooLarge { .. } => None,
    }
}

/// Reads a watcher connection until told to stop, timing every event.
fn read_events(mut socket: TcpStream, sh: &Shared) -> Latencies {
    let mut lat = Latencies::new();
    let mut decoder = FrameDecoder::new(MAX_FRAME);
    let mut buf = vec![0u8; 256 * 1024];
    while !sh.stop.load(Ordering::SeqCst) {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue
            }
            Err(_) => break,
        }
        let now = sh.epoch.elapsed().as_nanos() as u64;
        let mut got = 0;
        while let Some(f) = decoder.next_frame() {
            let Some(client_response::Body::Watch(w)) = decode(f).and_then(|r| r.body) else { continue };
            for ev in &w.events {
                let Some(kv) = &ev.kv else { continue };
                let Some(seq) = kv.value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes)
                else {
                    continue;
                };
                let sent = sh.sent_at.get(seq as usize).map_or(0, |t| t.load(Ordering::SeqCst));
                if sent != 0 {
                    lat.record(Duration::from_nanos(now.saturating_sub(sent)));
                }
                got += 1;
            }
        }
        if got > 0 {
            sh.delivered.fetch_add(got, Ordering::SeqCst);
            if let Ok(mut t) = sh.last_event.lock() {
                *t = Instant::now();
            }
            sh.arrived.notify_all();
        }
    }
    lat
}

/// One put client: takes sequence numbers until `total`, paced to the
/// client's share of `rate`.
fn put_loop(client: &Client, plan: &Plan, sh: &Shared, next: &AtomicU64, errors: &AtomicU64, started: Instant) {
    let mut rng = rand::rng();
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= plan.total {
            return;
        }
        if plan.rate > 0 {
            let due = started + Duration::from_secs_f64(i as f64 / plan.rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let k = if plan.key_space == 1 { 0 } else { rand::Rng::random_range(&mut rng, 0..plan.key_space) };
        let mut value = i.to_be_bytes().to_vec();
        value.resize(plan.val_size.max(8), b'v');
        sh.expected.fetch_add(plan.watchers_of(k), Ordering::SeqCst);
        sh.sent_at[i as usize].store(sh.epoch.elapsed().as_nanos().max(1) as u64, Ordering::SeqCst);
        let put = PutRequest { key: Plan::key(k).into(), value: value.into(), ..Default::default() };
        if client.put(put).is_err() {
            errors.fetch_add(1, Ordering::SeqCst);
            sh.expected.fetch_sub(plan.watchers_of(k), Ordering::SeqCst);
        } else if plan.wait_each {
            // The next put only once every watcher has this one's event
            // (bounded: a lost event shows as a missing one at the end).
            // Asleep, not spinning: a spinning client would take a core
            // from the members it measures.
            let deadline = Instant::now() + Duration::from_secs(5);
            let Ok(mut guard) = sh.last_event.lock() else { continue };
            while sh.delivered.load(Ordering::SeqCst) < sh.expected.load(Ordering::SeqCst) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match sh.arrived.wait_timeout(guard, left) {
                    Ok((g, _)) => guard = g,
                    Err(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(watchers: usize, key_space: u64, prefix: bool) -> Plan {
        Plan {
            watchers,
            watch_conns: 1,
            stalled_conns: 0,
            prefix,
            key_space,
            put_clients: 1,
            put_conns: 1,
            total: 0,
            rate: 0,
            val_size: 8,
            wait_each: false,
        }
    }

    #[test]
    fn every_watcher_is_counted_once_per_put() {
        let p = plan(10, 4, false);
        let total: u64 = (0..4).map(|k| p.watchers_of(k)).sum();
        assert_eq!(total, 10);
        assert_eq!((0..10).filter(|&w| p.watched_key(w) == 1).count() as u64, p.watchers_of(1));
        assert_eq!(plan(10, 4, true).watchers_of(3), 10);
    }
}
