//! The lease workloads, over keep-alive streams of the client
//! (`Client::open_stream`, `Stream::send`, `Stream::recv_deadline`):
//!
//! - `lease-keepalive`: like etcd's: `--clients` clients (spread over
//!   `--conns` connections, one `Client` each, as etcd's tool does) each
//!   grant a lease, then renew it on a keep-alive stream of their own as
//!   fast as the answers come back, `--total` keep-alives in all.
//!   `--stream-per-keep-alive` opens a stream for every keep-alive, as
//!   etcd 3.4's tool does (it calls `KeepAliveOnce`).
//! - `lease-scale`: `--leases` leases granted by `--clients` threads, then
//!   kept alive for `--duration-secs`, each renewed every
//!   TTL/`--renewals-per-ttl`, the renewals spread evenly in time over
//!   `--streams` streams with at most `--window` unanswered on each.
//!   Reports the renewal latency, answers with TTL 0 (a lease lost), the
//!   longest time any lease went without a renewal, and how many of the
//!   leases the cluster still lists at the end.
//! - `lease-expiry`: `--leases` leases with one key each, all renewed once
//!   so that they expire together, then left alone: the time until their
//!   keys are gone (a count-only range polled every `--poll-ms`), and the
//!   latency of paced background puts before the first key went (the
//!   baseline) and while they went.
//!
//! Memory is bounded by the number of leases (their ids and grant times)
//! and a fixed number of histograms; nothing grows with the run's length.
//! Owns only measuring; never checks the server beyond counting answers.

use super::args::{BenchArgs, LeaseScaleArgs};
use super::report::{Latencies, Report};
use crate::client::conn::{CallError, Stream};
use crate::client::{prefix_end, Client, ClientError, ClientOptions};
use crate::plumbing::ApiError;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
};
use crate::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// The keys `lease-expiry` attaches to its leases.
const LEASED_PREFIX: &str = "lx/";
/// The background puts' keys (`PUT_KEYS` of them).
const PUT_PREFIX: &str = "lp/";
const PUT_KEYS: u64 = 1000;
/// Answers a keep-alive stream buffers beyond its window.
const STREAM_SLACK: usize = 64;
/// How long a stream loop waits for an answer before it looks at the clock.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// One `Client` per connection, connection `i` on endpoint `i` mod the
/// endpoints (etcd's tool spreads its connections the same way).
fn connect(args: &BenchArgs, conns: usize, max_in_flight: usize) -> Result<Vec<Client>, ClientError> {
    let c = &args.common;
    let endpoints: Vec<String> = c.endpoints.iter().filter(|e| !e.trim().is_empty()).cloned().collect();
    if endpoints.is_empty() {
        return Err(ClientError::InvalidEndpoint(String::new()));
    }
    let opts = ClientOptions {
        connections_per_endpoint: 1,
        request_timeout: Duration::from_millis(c.request_timeout_ms),
        dial_timeout: Duration::from_millis(c.dial_timeout_ms),
        max_in_flight_per_connection: max_in_flight,
        ..Default::default()
    };
    (0..conns.max(1)).map(|i| Client::connect(&[endpoints[i % endpoints.len()].clone()], opts.clone())).collect()
}

fn keep_alive(id: i64) -> Req {
    Req::LeaseKeepAlive(LeaseKeepAliveRequest { id })
}

/// What one receive on a keep-alive stream gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// A keep-alive's answer: the lease and its TTL (0: the lease is gone).
    Renewed { id: i64, ttl: i64 },
    /// Nothing before the deadline.
    Quiet,
    /// The stream is over (the server ended it, or the connection died).
    Ended(String),
}

fn answer(r: Result<Resp, CallError>) -> Answer {
    match r {
        Ok(Resp::LeaseKeepAlive(k)) => Answer::Renewed { id: k.id, ttl: k.ttl },
        Ok(Resp::Error(e)) => Answer::Ended(format!("stream ended by the server: {}", ApiError::from_proto(&e))),
        Ok(other) => Answer::Ended(format!("not a keep-alive answer: {other:?}")),
        Err(CallError::Timeout) => Answer::Quiet,
        Err(e) => Answer::Ended(format!("stream lost: {e:?}")),
    }
}

/// Errors of one thread: how many, and the first one's text.
#[derive(Default)]
struct Errors {
    count: u64,
    first: Option<String>,
}

impl Errors {
    fn add(&mut self, n: u64, what: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        self.count += n;
        if self.first.is_none() {
            self.first = Some(what());
        }
    }

    fn merge(&mut self, other: Errors) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    /// Says what went wrong on stderr (the JSON line only counts it).
    fn report(&self, what: &str) {
        if let Some(e) = &self.first {
            eprintln!("raftkv-bench: {} {what} failed; first error: {e}", self.count);
        }
    }
}

fn grant_once(client: &Client, ttl: i64) -> Result<i64, ClientError> {
    match client.call(Req::LeaseGrant(LeaseGrantRequest { ttl, id: 0 }))? {
        Resp::LeaseGrant(g) => Ok(g.id),
        other => Err(ClientError::Protocol(format!("not a grant answer: {other:?}"))),
    }
}

// ---------------------------------------------------------------------------
// lease-keepalive

/// Runs `lease-keepalive`.
pub fn keepalive(args: &BenchArgs, ttl: i64, once: bool) -> Result<Report, ClientError> {
    let c = &args.common;
    let conns = connect(args, c.conns, 1024)?;
    let timeout = Duration::from_millis(c.request_timeout_ms);
    // One lease per client, granted before the clock starts (etcd's tool
    // grants in each client before its loop; a hundred grants take
    // milliseconds either way).
    let ids =
        (0..c.clients).map(|i| grant_once(&conns[i % conns.len()], ttl)).collect::<Result<Vec<i64>, ClientError>>()?;
    let next = AtomicU64::new(0);
    let started = Instant::now();
    let outcomes: Vec<(Latencies, Errors)> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let (client, next) = (&conns[i % conns.len()], &next);
                std::thread::Builder::new()
                    .name(format!("bench-ka-{i}"))
                    .spawn_scoped(s, move || keepalive_client(client, id, once, next, c.total, timeout))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| failed_thread("a keep-alive client panicked")),
                Err(e) => failed_thread(&format!("could not start a keep-alive client: {e}")),
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut lat = Latencies::new();
    let mut errors = Errors::default();
    for (l, e) in outcomes {
        lat.merge(&l);
        errors.merge(e);
    }
    errors.report("keep-alives");
    for (i, &id) in ids.iter().enumerate() {
        let _ = conns[i % conns.len()].call(Req::LeaseRevoke(LeaseRevokeRequest { id }));
    }
    let op = args.op_name();
    Ok(Report::new(op, conns.len(), c.clients, c.total, elapsed, &lat, errors.count).with("ttl_s", ttl))
}

fn failed_thread(reason: &str) -> (Latencies, Errors) {
    let mut e = Errors::default();
    e.add(1, || reason.to_string());
    (Latencies::new(), e)
}

/// One client: takes keep-alives from `next` until `total`, each sent on
/// its stream (re-opened after a failure) and timed until its answer.
fn keepalive_client(
    client: &Client,
    id: i64,
    once: bool,
    next: &AtomicU64,
    total: u64,
    timeout: Duration,
) -> (Latencies, Errors) {
    let mut lat = Latencies::new();
    let mut errors = Errors::default();
    let req = keep_alive(id);
    let mut stream: Option<Stream> = None;
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let sent = Instant::now();
        let deadline = sent + timeout;
        let opened = match stream.take() {
            Some(s) => s.send(&req, deadline).map(|()| s).map_err(|e| format!("send: {e:?}")),
            None => client.open_stream(req.clone(), STREAM_SLACK).map_err(|e| format!("open: {e}")),
        };
        let s = match opened {
            Ok(s) => s,
            Err(e) => {
                errors.add(1, || e);
                continue;
            }
        };
        match answer(s.recv_deadline(deadline)) {
            Answer::Renewed { ttl, .. } if ttl > 0 => {
                lat.record(sent.elapsed());
                if !once {
                    stream = Some(s);
                }
            }
            Answer::Renewed { id, .. } => {
                errors.add(1, || format!("lease {id} is gone (TTL 0)"));
                if !once {
                    stream = Some(s);
                }
            }
            // The stream is dropped: an answer may still come on it.
            Answer::Quiet => errors.add(1, || "no answer within the request timeout".into()),
            Answer::Ended(e) => errors.add(1, || e),
        }
    }
    (lat, errors)
}

// ---------------------------------------------------------------------------
// Granting many leases

/// Leases granted by `grant_all`, in the order of their numbers.
struct Granted {
    /// (lease id, when its grant was answered).
    leases: Vec<(i64, Instant)>,
    grant_lat: Latencies,
    put_lat: Latencies,
    secs: f64,
    errors: Errors,
}

/// Grants `n` leases of `ttl` from `threads` threads over `conns`; with
/// `key_value`, each then gets a key of its own (`lx/NNNNNNNN`).
fn grant_all(
    conns: &[Client],
    n: u64,
    ttl: i64,
    threads: usize,
    key_value: Option<&Bytes>,
) -> Result<Granted, ClientError> {
    let next = AtomicU64::new(0);
    let started = Instant::now();
    type Share = (Vec<(u64, i64, Instant)>, Latencies, Latencies, Errors);
    let shares: Vec<Share> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let (client, next) = (&conns[t % conns.len()], &next);
                std::thread::Builder::new().name(format!("bench-grant-{t}")).spawn_scoped(s, move || {
                    let mut share: Share = (Vec::new(), Latencies::new(), Latencies::new(), Errors::default());
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= n {
                            return share;
                        }
                        let sent = Instant::now();
                        let id = match grant_once(client, ttl) {
                            Ok(id) => id,
                            Err(e) => {
                                share.3.add(1, || format!("grant: {e}"));
                                continue;
                            }
                        };
                        let granted = Instant::now();
                        share.1.record(granted - sent);
                        if let Some(value) = key_value {
                            let put = PutRequest {
                                key: leased_key(k).into(),
                                value: value.clone(),
                                lease: id,
                                ..Default::default()
                            };
                            match client.call(Req::Put(put)) {
                                Ok(_) => share.2.record(granted.elapsed()),
                                Err(e) => share.3.add(1, || format!("put with a lease: {e}")),
                            }
                        }
                        share.0.push((k, id, granted));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    let mut e = Errors::default();
                    e.add(1, || "a grant thread panicked".into());
                    (Vec::new(), Latencies::new(), Latencies::new(), e)
                }),
                Err(e) => {
                    let mut errs = Errors::default();
                    errs.add(1, || format!("could not start a grant thread: {e}"));
                    (Vec::new(), Latencies::new(), Latencies::new(), errs)
                }
            })
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut all = Vec::with_capacity(n as usize);
    let (mut grant_lat, mut put_lat, mut errors) = (Latencies::new(), Latencies::new(), Errors::default());
    for (leases, g, p, e) in shares {
        all.extend(leases);
        grant_lat.merge(&g);
        put_lat.merge(&p);
        errors.merge(e);
    }
    all.sort_unstable_by_key(|(k, _, _)| *k);
    if all.is_empty() {
        return Err(ClientError::Protocol(format!(
            "no lease could be granted: {}",
            errors.first.unwrap_or_else(|| "no grant was tried".into())
        )));
    }
    let leases = all.into_iter().map(|(_, id, at)| (id, at)).collect();
    Ok(Granted { leases, grant_lat, put_lat, secs, errors })
}

fn leased_key(k: u64) -> Vec<u8> {
    format!("{LEASED_PREFIX}{k:08}").into_bytes()
}

fn grant_summary(g: &Granted) -> serde_json::Value {
    let mut v = Report::summary_ms(&g.grant_lat);
    v["secs"] = round3(g.secs).into();
    v["per_sec"] = (g.leases.len() as f64 / g.secs.max(1e-9)).round().into();
    v
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------
// Renewing many leases over a few streams

/// When each lease of a stream is renewed: lease `j` of `m` in round `r`
/// at `start + period * (r + j / m)`, until `rounds` rounds are done or
/// `end`, whichever is first.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    period: Duration,
    rounds: u64,
    end: Instant,
}

impl Schedule {
    fn due(&self, round: u64, j: usize, m: usize) -> Instant {
        self.start + self.period.mul_f64(round as f64 + j as f64 / m as f64)
    }
}

/// What one stream's renewals saw.
struct Renewals {
    lat: Latencies,
    sent: u64,
    /// Answers with TTL 0: the lease was gone.
    ttl0: u64,
    /// Renewals not sent because the lease's previous one was unanswered.
    skipped: u64,
    /// The longest time a lease went without a renewal being answered
    /// (from its grant on).
    max_gap: Duration,
    restarts: u64,
    errors: Errors,
    /// When the last answer arrived.
    last_answer: Option<Instant>,
}

/// Renews `leases` on one stream of `client` by `plan`, with at most
/// `window` renewals unanswered. A stream that fails is re-opened (its
/// unanswered renewals count as errors; their leases come again next
/// round).
fn renew(client: &Client, leases: &[(i64, Instant)], plan: Schedule, window: usize, timeout: Duration) -> Renewals {
    let m = leases.len();
    let mut out = Renewals {
        lat: Latencies::new(),
        sent: 0,
        ttl0: 0,
        skipped: 0,
        max_gap: Duration::ZERO,
        restarts: 0,
        errors: Errors::default(),
        last_answer: None,
    };
    if m == 0 {
        return out;
    }
    let slot: HashMap<i64, usize> = leases.iter().enumerate().map(|(j, (id, _))| (*id, j)).collect();
    let mut last_ok: Vec<Instant> = leases.iter().map(|(_, at)| *at).collect();
    // Lease id -> when its renewal was sent.
    let mut waiting: HashMap<i64, Instant> = HashMap::with_capacity(window);
    let mut stream: Option<Stream> = None;
    let (mut j, mut round) = (0usize, 0u64);
    let mut stopped_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let sending = now < plan.end && round < plan.rounds;
        if !sending {
            // The last answers get one request timeout.
            let stopped = *stopped_at.get_or_insert(now);
            if waiting.is_empty() || now >= stopped + timeout {
                break;
            }
        }
        // Send what is due.
        while sending && waiting.len() < window && round < plan.rounds && plan.due(round, j, m) <= now {
            let id = leases[j].0;
            // One renewal of a lease unanswered at a time.
            let unanswered = waiting.contains_key(&id);
            if !unanswered {
                let req = keep_alive(id);
                let sent = match &stream {
                    Some(s) => s.send(&req, now + timeout).map_err(|e| format!("send: {e:?}")),
                    None => client
                        .open_stream(req, window + STREAM_SLACK)
                        .map(|s| stream = Some(s))
                        .map_err(|e| format!("open: {e}")),
                };
                if let Err(e) = sent {
                    // The stream goes, and with it the answers still due on
                    // it. Give the connection a moment; this lease is tried
                    // again.
                    out.errors.add(1 + waiting.len() as u64, || e);
                    waiting.clear();
                    stream = None;
                    out.restarts += 1;
                    std::thread::sleep(IDLE_WAIT);
                    break;
                }
                waiting.insert(id, now);
                out.sent += 1;
            } else {
                out.skipped += 1;
            }
            j += 1;
            if j == m {
                j = 0;
                round += 1;
            }
        }
        let Some(s) = &stream else {
            if !sending {
                break;
            }
            std::thread::sleep(IDLE_WAIT.min(plan.due(round, j, m).saturating_duration_since(now)));
            continue;
        };
        let mut wait = now + IDLE_WAIT;
        if sending && waiting.len() < window {
            wait = wait.min(plan.due(round, j, m));
        }
        match answer(s.recv_deadline(wait)) {
            Answer::Renewed { id, ttl } => {
                let Some(sent) = waiting.remove(&id) else { continue };
                let at = Instant::now();
                out.lat.record(at - sent);
                out.last_answer = Some(at);
                if ttl <= 0 {
                    out.ttl0 += 1;
                } else if let Some(&k) = slot.get(&id) {
                    out.max_gap = out.max_gap.max(at - last_ok[k]);
                    last_ok[k] = at;
                }
            }
            Answer::Quiet => {
                let before = waiting.len();
                let now = Instant::now();
                waiting.retain(|_, sent| now.duration_since(*sent) < timeout);
                out.errors
                    .add((before - waiting.len()) as u64, || "a renewal unanswered within the request timeout".into());
            }
            Answer::Ended(e) => {
                out.errors.add(waiting.len().max(1) as u64, || e);
                waiting.clear();
                stream = None;
                out.restarts += 1;
            }
        }
    }
    out.errors.add(waiting.len() as u64, || "renewals unanswered at the end".into());
    // A lease whose last renewal is older than the gap so far counts too.
    let end = Instant::now().min(plan.end);
    for at in &last_ok {
        out.max_gap = out.max_gap.max(end.saturating_duration_since(*at));
    }
    out
}

/// Renews `leases` over `streams` streams (lease `i` on stream
/// `i % streams`, stream `s` on connection `s % conns`), one thread each.
fn renew_all(
    conns: &[Client],
    leases: &[(i64, Instant)],
    streams: usize,
    plan: Schedule,
    window: usize,
    timeout: Duration,
) -> Renewals {
    let shares: Vec<Vec<(i64, Instant)>> =
        (0..streams).map(|s| leases.iter().skip(s).step_by(streams).copied().collect()).collect();
    let outcomes: Vec<Renewals> = std::thread::scope(|sc| {
        let handles: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(s, share)| {
                let client = &conns[s % conns.len()];
                std::thread::Builder::new()
                    .name(format!("bench-renew-{s}"))
                    .spawn_scoped(sc, move || renew(client, share, plan, window, timeout))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.ok().and_then(|h| h.join().ok())).collect()
    });
    let mut all = Renewals {
        lat: Latencies::new(),
        sent: 0,
        ttl0: 0,
        skipped: 0,
        max_gap: Duration::ZERO,
        restarts: 0,
        errors: Errors::default(),
        last_answer: None,
    };
    if outcomes.len() < streams {
        all.errors.add((streams - outcomes.len()) as u64, || "a renewal thread failed".into());
    }
    for o in outcomes {
        all.lat.merge(&o.lat);
        all.sent += o.sent;
        all.ttl0 += o.ttl0;
        all.skipped += o.skipped;
        all.max_gap = all.max_gap.max(o.max_gap);
        all.restarts += o.restarts;
        all.errors.merge(o.errors);
        all.last_answer = all.last_answer.max(o.last_answer);
    }
    all
}

/// How many of `leases` the cluster lists.
fn still_listed(client: &Client, leases: &[(i64, Instant)]) -> Result<u64, ClientError> {
    let listed: HashSet<i64> = match client.call(Req::LeaseLeases(LeaseLeasesRequest {}))? {
        Resp::LeaseLeases(l) => l.leases.iter().map(|l| l.id).collect(),
        other => return Err(ClientError::Protocol(format!("not a lease list: {other:?}"))),
    };
    Ok(leases.iter().filter(|(id, _)| listed.contains(id)).count() as u64)
}

// ---------------------------------------------------------------------------
// lease-scale

/// Runs `lease-scale`.
pub fn scale(
    args: &BenchArgs,
    sc: &LeaseScaleArgs,
    duration: Duration,
    renewals_per_ttl: u32,
) -> Result<Report, ClientError> {
    let c = &args.common;
    let timeout = Duration::from_millis(c.request_timeout_ms);
    let conns = connect(args, c.conns, 4096)?;
    let g = grant_all(&conns, sc.leases, sc.ttl, c.clients, None)?;
    g.errors.report("grants");
    let start = Instant::now();
    let period = Duration::from_secs_f64(sc.ttl as f64 / f64::from(renewals_per_ttl));
    let plan = Schedule { start, period, rounds: u64::MAX, end: start + duration };
    let r = renew_all(&conns, &g.leases, sc.streams, plan, sc.window, timeout);
    let elapsed = start.elapsed();
    r.errors.report("renewals");
    let granted = g.leases.len() as u64;
    let alive = still_listed(&conns[0], &g.leases)?;
    let lost = granted - alive;
    let errors = g.errors.count + r.errors.count + r.ttl0 + lost;
    let report = Report::new(args.op_name(), conns.len(), sc.streams, r.sent, elapsed, &r.lat, errors)
        .with("leases", granted)
        .with("ttl_s", sc.ttl)
        .with("renewals_per_ttl", renewals_per_ttl)
        .with("grant", grant_summary(&g))
        .with("ttl0_answers", r.ttl0)
        .with("skipped", r.skipped)
        .with("stream_restarts", r.restarts)
        .with("max_gap_ms", round3(r.max_gap.as_secs_f64() * 1000.0))
        .with("alive_at_end", alive)
        .with("lost", lost);
    Ok(report)
}

// ---------------------------------------------------------------------------
// lease-expiry

const BASELINE: u8 = 0;
const EXPIRING: u8 = 1;
const AFTER: u8 = 2;

/// The background puts: `rate` puts/s from `threads` threads, each timed
/// from just before it is sent (as etcd's `benchmark put --rate` does: a
/// stall shows in the puts it holds, not in those it delays), recorded by
/// the phase it was sent in.
struct PutLoad<'a> {
    clients: &'a [Client],
    rate: u64,
    threads: usize,
    value: Bytes,
    phase: &'a AtomicU8,
    stop: &'a AtomicBool,
}

/// Latencies per phase, and errors.
type PutOutcome = ([Latencies; 3], Errors);

impl PutLoad<'_> {
    fn run(&self, t: usize, start: Instant) -> PutOutcome {
        let mut lat = [Latencies::new(), Latencies::new(), Latencies::new()];
        let mut errors = Errors::default();
        let client = &self.clients[t % self.clients.len()];
        let mut i = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let n = i * self.threads as u64 + t as u64;
            i += 1;
            let due = start + Duration::from_secs_f64(n as f64 / self.rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let phase = self.phase.load(Ordering::SeqCst).min(AFTER);
            let put = PutRequest {
                key: format!("{PUT_PREFIX}{:04}", n % PUT_KEYS).into_bytes().into(),
                value: self.value.clone(),
                ..Default::default()
            };
            let sent = Instant::now();
            match client.call(Req::Put(put)) {
                Ok(_) => lat[phase as usize].record(sent.elapsed()),
                Err(e) => errors.add(1, || format!("background put: {e}")),
            }
        }
        (lat, errors)
    }
}

fn count_leased(client: &Client) -> Result<i64, ClientError> {
    let prefix = LEASED_PREFIX.as_bytes();
    let range = RangeRequest {
        key: prefix.to_vec().into(),
        range_end: prefix_end(prefix).into(),
        count_only: true,
        ..Default::default()
    };
    match client.call(Req::Range(range))? {
        Resp::Range(r) => Ok(r.count),
        other => Err(ClientError::Protocol(format!("not a range answer: {other:?}"))),
    }
}

/// Runs `lease-expiry`. The line: `total` leases, `secs` from the first
/// lease's deadline until the last key was gone, `ops_per_sec` leases gone
/// per second, the percentiles of the puts during the expiry.
pub fn expiry(
    args: &BenchArgs,
    sc: &LeaseScaleArgs,
    put_rate: u64,
    put_clients: usize,
    poll: Duration,
    max_wait: Duration,
) -> Result<Report, ClientError> {
    let c = &args.common;
    let timeout = Duration::from_millis(c.request_timeout_ms);
    let conns = connect(args, c.conns, 4096)?;
    let value: Bytes = vec![b'v'; c.val_size].into();
    // Leases and their keys, then one renewal of each so that they all
    // expire within the renewals' spread.
    let g = grant_all(&conns, sc.leases, sc.ttl, c.clients, Some(&value))?;
    g.errors.report("grants and puts");
    let align_start = Instant::now();
    let once = Schedule { start: align_start, period: Duration::ZERO, rounds: 1, end: align_start + timeout * 10 };
    let r = renew_all(&conns, &g.leases, sc.streams, once, sc.window, timeout);
    r.errors.report("renewals");
    let aligned = Instant::now();
    let ttl = Duration::from_secs(sc.ttl as u64);
    let granted = g.leases.len() as i64;
    let phase = AtomicU8::new(BASELINE);
    let stop = AtomicBool::new(false);
    let load = PutLoad { clients: &conns, rate: put_rate, threads: put_clients, value, phase: &phase, stop: &stop };
    let poller = &conns[0];
    let mut first_gone = None;
    let mut all_gone = None;
    let mut left = granted;
    let mut poll_errors = Errors::default();
    let outcomes: Vec<PutOutcome> = std::thread::scope(|s| {
        let load = &load;
        let handles: Vec<_> = (0..if put_rate > 0 { put_clients } else { 0 })
            .map(|t| {
                std::thread::Builder::new().name(format!("bench-put-{t}")).spawn_scoped(s, move || load.run(t, aligned))
            })
            .collect();
        let give_up = aligned + ttl + max_wait;
        loop {
            let now = Instant::now();
            match count_leased(poller) {
                Ok(n) => {
                    left = n;
                    if n < granted && first_gone.is_none() {
                        first_gone = Some(now);
                        phase.store(EXPIRING, Ordering::SeqCst);
                    }
                    if n == 0 {
                        all_gone = Some(now);
                        break;
                    }
                }
                Err(e) => poll_errors.add(1, || format!("count: {e}")),
            }
            if now >= give_up {
                break;
            }
            std::thread::sleep(poll.saturating_sub(now.elapsed()));
        }
        // Deleting the keys may weigh on the puts a little longer (their
        // compaction, say): the expiry's window ends a second later.
        if all_gone.is_some() {
            std::thread::sleep(Duration::from_secs(1));
        }
        phase.store(AFTER, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        handles.into_iter().filter_map(|h| h.ok().and_then(|h| h.join().ok())).collect()
    });
    poll_errors.report("counts");
    let mut phases = [Latencies::new(), Latencies::new(), Latencies::new()];
    let mut put_errors = Errors::default();
    for (lat, e) in outcomes {
        for (all, l) in phases.iter_mut().zip(lat.iter()) {
            all.merge(l);
        }
        put_errors.merge(e);
    }
    put_errors.report("background puts");
    let secs_since = |t: Option<Instant>| t.map(|t| round3(t.duration_since(aligned).as_secs_f64()));
    // From the first lease's deadline (its renewal was sent at
    // `align_start`) until the last key was gone.
    let first_deadline = align_start + ttl;
    let drain = all_gone.unwrap_or_else(Instant::now).saturating_duration_since(first_deadline);
    let errors = g.errors.count + r.errors.count + r.ttl0 + put_errors.count + left.max(0) as u64;
    let mut report = Report::new(
        args.op_name(),
        conns.len(),
        put_clients,
        granted as u64,
        drain,
        &phases[EXPIRING as usize],
        errors,
    )
    .with("ttl_s", sc.ttl)
    .with("grant_and_put", grant_summary(&g))
    .with("leased_puts", Report::summary_ms(&g.put_lat))
    .with("align_secs", round3(aligned.duration_since(align_start).as_secs_f64()))
    .with("first_gone_after_s", secs_since(first_gone))
    .with("all_gone_after_s", secs_since(all_gone))
    .with("past_last_deadline_s", all_gone.map(|t| round3(t.duration_since(aligned).as_secs_f64() - ttl.as_secs_f64())))
    .with("keys_left", left)
    .with("put_rate", put_rate)
    .with("puts_baseline", Report::summary_ms(&phases[BASELINE as usize]))
    .with("puts_during", Report::summary_ms(&phases[EXPIRING as usize]));
    // The line's rate is of leases gone (its percentiles are the puts').
    let gone = (granted - left.max(0)) as f64;
    report.ops_per_sec = if drain.is_zero() { 0.0 } else { (gone / drain.as_secs_f64() * 10.0).round() / 10.0 };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_spreads_each_round_evenly() {
        let start = Instant::now();
        let plan = Schedule { start, period: Duration::from_secs(20), rounds: u64::MAX, end: start };
        assert_eq!(plan.due(0, 0, 4), start);
        assert_eq!(plan.due(0, 2, 4), start + Duration::from_secs(10));
        assert_eq!(plan.due(1, 1, 4), start + Duration::from_secs(25));
        let at_once = Schedule { period: Duration::ZERO, ..plan };
        assert_eq!(at_once.due(0, 3, 4), start);
    }

    #[test]
    fn answers_are_told_apart() {
        use crate::proto::etcdserverpb::LeaseKeepAliveResponse;
        let ka = Resp::LeaseKeepAlive(LeaseKeepAliveResponse { header: None, id: 7, ttl: 60 });
        assert_eq!(answer(Ok(ka)), Answer::Renewed { id: 7, ttl: 60 });
        assert_eq!(answer(Err(CallError::Timeout)), Answer::Quiet);
        assert!(matches!(answer(Err(CallError::Lost("x".into()))), Answer::Ended(_)));
        let err = ApiError::of(crate::proto::raftkvpb::ErrorCode::TooManyRequests).to_proto();
        assert!(matches!(answer(Ok(Resp::Error(err))), Answer::Ended(_)));
    }

    #[test]
    fn errors_keep_the_first_reason() {
        let mut e = Errors::default();
        e.add(0, || "not counted".into());
        e.add(2, || "first".into());
        e.add(1, || "second".into());
        assert_eq!((e.count, e.first.as_deref()), (3, Some("first")));
    }
}
