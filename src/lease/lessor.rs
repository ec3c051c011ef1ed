//! The lessor: keep-alives and expiry, as a state machine the runner
//! thread (or a test) steps with the time.
//!
//! - **Keep-alives** (every member): each request on a keep-alive stream
//!   waits until its lease's renewal is committed; the renewals of every
//!   lease asked for meanwhile go into one `LeaseCheckpoint` entry (a few
//!   entries in flight at most), and the answers carry the granted TTL (0
//!   when, at that point of the log, the lease does not exist: a member that
//!   has not applied the grant yet never answers 0). A follower's renewal reaches the leader as a
//!   Raft proposal, so keep-alives work on any member and a deposed
//!   leader can answer none (its renewal never commits).
//! - **Expiry** (the primary only: the leader, once it applied an entry
//!   of its own term, so every earlier decision is in its table): leases
//!   past their deadline are revoked through the log in entries of up to
//!   `expiries_per_entry` leases, with `expiry_entries_in_flight` entries at
//!   most and `expiry_rate` leases a second at most, so a mass expiry never
//!   crowds out client writes. Each names the
//!   renewal count it was decided on; the applier ignores it if the lease
//!   was renewed since.
//!
//! Owns the open keep-alive streams and the keep-alives waiting for their
//! renewal; never blocks (answers are `try_send`), never changes the table
//! (only the applier does).

use super::hub::{LeaseCmd, StreamId};
use super::table::LeaseTable;
use crate::plumbing::doorbell::RingingSender;
use crate::plumbing::errors::ApiError;
use crate::plumbing::outbox::{Refused, StreamSender};
use crate::proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest, LeaseKeepAliveResponse, ResponseHeader};
use crate::proto::internalpb::{internal_request, LeaseExpireRequest, LeaseExpiry};
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where an outcome goes: called once, on the thread that completes the
/// proposal (it must not block).
pub type Done = Box<dyn FnOnce(Result<Body, ApiError>) + Send>;

/// How the lessor puts entries in the log (the server's proposer).
pub trait LeaseProposer: Send {
    fn propose(&self, body: internal_request::Body, done: Done);
}

#[derive(Debug, Clone)]
pub struct LessorConfig {
    /// Leases renewed by one entry at most.
    pub renewals_per_entry: usize,
    /// Renewal entries proposed and not applied yet, at most.
    pub renewal_entries_in_flight: usize,
    /// Leases revoked by one entry at most.
    pub expiries_per_entry: usize,
    /// Expiry entries proposed and not applied yet, at most.
    pub expiry_entries_in_flight: usize,
    /// Leases revoked for expiry per second at most: a mass expiry is
    /// spread out so client writes keep their latency (100,000 leases in
    /// 25 s at the default).
    pub expiry_rate: u32,
    /// A renewal entry not applied after this long is taken for lost (a
    /// leader change drops proposals) and its keep-alives proposed again.
    pub renewal_retry: Duration,
    /// A due lease still there this long after its revocation was proposed
    /// is proposed again.
    pub expiry_retry: Duration,
    /// A keep-alive whose renewal fails (no leader) is retried this long,
    /// then its stream ends with the error.
    pub keep_alive_timeout: Duration,
    /// Keep-alives waiting for a renewal, at most (past it a stream ends
    /// with "too many requests").
    pub max_waiting: usize,
}

impl Default for LessorConfig {
    fn default() -> Self {
        LessorConfig {
            renewals_per_entry: 10_000,
            renewal_entries_in_flight: 2,
            expiries_per_entry: 100,
            expiry_entries_in_flight: 1,
            expiry_rate: 4_000,
            renewal_retry: Duration::from_secs(1),
            expiry_retry: Duration::from_secs(2),
            keep_alive_timeout: Duration::from_secs(5),
            max_waiting: 1_000_000,
        }
    }
}

/// A keep-alive waiting for its renewal: which stream asked, and when.
#[derive(Debug, Clone, Copy)]
struct Asker {
    stream: StreamId,
    since: Instant,
}

struct Stream {
    sender: StreamSender,
    ended: Arc<AtomicBool>,
}

/// What a proposal in flight was for.
enum InFlight {
    /// The leases renewed and who asked, and when it was proposed.
    Renewal(Vec<(i64, Vec<Asker>)>, Instant),
    Expiry,
}

pub struct Lessor {
    table: Arc<Mutex<LeaseTable>>,
    proposer: Box<dyn LeaseProposer>,
    /// A response header at the current revision.
    header: Box<dyn Fn() -> ResponseHeader + Send>,
    /// Whether this member may expire leases now (see the module doc).
    is_primary: Box<dyn Fn() -> bool + Send>,
    cfg: LessorConfig,
    /// Outcomes come back here, tagged with their proposal's token.
    outcomes: RingingSender<(u64, Result<Body, ApiError>)>,
    streams: HashMap<StreamId, Stream>,
    open_streams: Arc<AtomicUsize>,
    waiting: BTreeMap<i64, Vec<Asker>>,
    waiting_len: usize,
    in_flight: HashMap<u64, InFlight>,
    renewals_in_flight: usize,
    expiries_in_flight: usize,
    next_token: u64,
    last_sweep: Option<Instant>,
    /// Revocations allowed now (a token bucket refilled at `expiry_rate`).
    expiry_budget: f64,
    last_refill: Option<Instant>,
}

/// Lessor parts that come from the node.
pub struct LessorParts {
    pub table: Arc<Mutex<LeaseTable>>,
    pub proposer: Box<dyn LeaseProposer>,
    pub header: Box<dyn Fn() -> ResponseHeader + Send>,
    pub is_primary: Box<dyn Fn() -> bool + Send>,
    pub outcomes: RingingSender<(u64, Result<Body, ApiError>)>,
    pub open_streams: Arc<AtomicUsize>,
}

impl Lessor {
    pub fn new(parts: LessorParts, cfg: LessorConfig) -> Lessor {
        let expiry_budget = (f64::from(cfg.expiry_rate.max(1)) / 5.0).max(1.0);
        Lessor {
            table: parts.table,
            proposer: parts.proposer,
            header: parts.header,
            is_primary: parts.is_primary,
            cfg,
            outcomes: parts.outcomes,
            streams: HashMap::new(),
            open_streams: parts.open_streams,
            waiting: BTreeMap::new(),
            waiting_len: 0,
            in_flight: HashMap::new(),
            renewals_in_flight: 0,
            expiries_in_flight: 0,
            next_token: 1,
            last_sweep: None,
            expiry_budget,
            last_refill: None,
        }
    }

    fn table(&self) -> MutexGuard<'_, LeaseTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    pub fn waiting(&self) -> usize {
        self.waiting_len
    }

    /// A command from client I/O.
    pub fn on_cmd(&mut self, cmd: LeaseCmd, now: Instant) {
        match cmd {
            LeaseCmd::Open { stream, sender, ended, first } => {
                self.streams.insert(stream, Stream { sender, ended });
                self.keep_alive(stream, first.id, now);
            }
            LeaseCmd::KeepAlive { stream, req } => {
                if self.streams.contains_key(&stream) {
                    self.keep_alive(stream, req.id, now);
                }
            }
            LeaseCmd::End { stream } => self.forget(stream),
        }
    }

    /// Every keep-alive goes through the log, even for a lease this member
    /// does not know: it may not have applied the grant yet. Once the
    /// renewal is applied here, everything before it in the log is too, so
    /// the table then says whether the lease exists (TTL 0 if not, as etcd).
    fn keep_alive(&mut self, stream: StreamId, id: i64, now: Instant) {
        if self.waiting_len >= self.cfg.max_waiting {
            return self.end(stream, ApiError::of(ErrorCode::TooManyRequests));
        }
        self.waiting.entry(id).or_default().push(Asker { stream, since: now });
        self.waiting_len += 1;
    }

    /// A proposal's outcome (`token` from `propose`).
    pub fn on_outcome(&mut self, token: u64, result: Result<Body, ApiError>, now: Instant) {
        match self.in_flight.remove(&token) {
            Some(InFlight::Renewal(leases, _)) => {
                self.renewals_in_flight -= 1;
                match result {
                    Ok(_) => {
                        let ttls: Vec<i64> = {
                            let t = self.table();
                            leases.iter().map(|(id, _)| t.get(*id).map_or(0, |l| l.ttl)).collect()
                        };
                        for ((id, askers), ttl) in leases.into_iter().zip(ttls) {
                            for a in askers {
                                self.answer(a.stream, id, ttl);
                            }
                        }
                    }
                    Err(e) => self.retry_or_fail(leases, e, now),
                }
            }
            Some(InFlight::Expiry) => self.expiries_in_flight -= 1,
            None => {}
        }
    }

    /// A failed renewal (no leader, timed out) is asked again until the
    /// keep-alive is `keep_alive_timeout` old; then its stream ends.
    fn retry_or_fail(&mut self, leases: Vec<(i64, Vec<Asker>)>, e: ApiError, now: Instant) {
        for (id, askers) in leases {
            for a in askers {
                let fatal = e.code == ErrorCode::Stopped;
                if fatal || now.duration_since(a.since) >= self.cfg.keep_alive_timeout {
                    self.end(a.stream, e.clone());
                } else {
                    self.waiting.entry(id).or_default().push(a);
                    self.waiting_len += 1;
                }
            }
        }
    }

    /// Proposes what is due: renewals for waiting keep-alives, and (on the
    /// primary) revocations of expired leases.
    pub fn step(&mut self, now: Instant) {
        self.requeue_lost_renewals(now);
        while !self.waiting.is_empty() && self.renewals_in_flight < self.cfg.renewal_entries_in_flight {
            self.propose_renewals(now);
        }
        let rate = f64::from(self.cfg.expiry_rate.max(1));
        let elapsed = self.last_refill.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        self.last_refill = Some(now);
        // A burst of at most one entry, or a fifth of a second's worth.
        let burst = (rate / 5.0).max(1.0);
        self.expiry_budget = (self.expiry_budget + elapsed * rate).min(burst);
        if (self.is_primary)() {
            while self.expiries_in_flight < self.cfg.expiry_entries_in_flight && self.expiry_budget >= 1.0 {
                let max = self.cfg.expiries_per_entry.min(self.expiry_budget as usize);
                let due = self.table().due(now, max, self.cfg.expiry_retry);
                if due.is_empty() {
                    break;
                }
                self.expiry_budget -= due.len() as f64;
                let leases = due.iter().map(|d| LeaseExpiry { id: d.id, renewals: d.renewals }).collect();
                self.expiries_in_flight += 1;
                self.propose(internal_request::Body::LeaseExpire(LeaseExpireRequest { leases }), InFlight::Expiry);
            }
        }
        if self.last_sweep.map_or(true, |t| now.duration_since(t) >= Duration::from_secs(1)) {
            self.last_sweep = Some(now);
            self.sweep_ended();
        }
    }

    /// Renewal entries not applied after `renewal_retry` (dropped by a
    /// leader change, say): their keep-alives are asked for again, so a
    /// lost proposal stalls keep-alives for a second, not a request
    /// timeout. A late outcome of the old entry is ignored.
    fn requeue_lost_renewals(&mut self, now: Instant) {
        let lost: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| matches!(f, InFlight::Renewal(_, at) if now.duration_since(*at) >= self.cfg.renewal_retry))
            .map(|(&t, _)| t)
            .collect();
        for token in lost {
            if let Some(InFlight::Renewal(leases, _)) = self.in_flight.remove(&token) {
                self.renewals_in_flight -= 1;
                for (id, askers) in leases {
                    self.waiting_len += askers.len();
                    self.waiting.entry(id).or_default().extend(askers);
                }
            }
        }
    }

    fn propose_renewals(&mut self, now: Instant) {
        let mut leases = Vec::new();
        while leases.len() < self.cfg.renewals_per_entry {
            let Some((id, askers)) = self.waiting.pop_first() else { break };
            self.waiting_len -= askers.len();
            leases.push((id, askers));
        }
        // Remaining TTL 0: renewed to its granted TTL, whatever the applier
        // finds it to be.
        let checkpoints = leases.iter().map(|(id, _)| LeaseCheckpoint { id: *id, remaining_ttl: 0 }).collect();
        if leases.is_empty() {
            return;
        }
        self.renewals_in_flight += 1;
        let body = internal_request::Body::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints });
        self.propose(body, InFlight::Renewal(leases, now));
    }

    fn propose(&mut self, body: internal_request::Body, what: InFlight) {
        let token = self.next_token;
        self.next_token += 1;
        self.in_flight.insert(token, what);
        let outcomes = self.outcomes.clone();
        self.proposer.propose(
            body,
            Box::new(move |r| {
                let _ = outcomes.try_send((token, r));
            }),
        );
    }

    fn answer(&mut self, stream: StreamId, id: i64, ttl: i64) {
        let Some(s) = self.streams.get(&stream) else { return };
        let resp = LeaseKeepAliveResponse { header: Some((self.header)()), id, ttl };
        // A client that does not read its answers loses some; it asks again.
        if let Err(Refused::Closed) = s.sender.try_send(Body::LeaseKeepAlive(resp)) {
            self.forget(stream);
        }
    }

    /// Ends a stream from this side, with the reason.
    fn end(&mut self, stream: StreamId, e: ApiError) {
        if let Some(s) = self.streams.get(&stream) {
            s.ended.store(true, Ordering::SeqCst);
            s.sender.finish(Body::Error(e.to_proto()));
        }
        self.forget(stream);
    }

    fn forget(&mut self, stream: StreamId) {
        if self.streams.remove(&stream).is_some() {
            self.open_streams.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Streams whose end was not heard (a full queue): found by their flag.
    fn sweep_ended(&mut self) {
        let ended: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.ended.load(Ordering::SeqCst) || s.sender.is_closed())
            .map(|(&id, _)| id)
            .collect();
        for s in ended {
            self.forget(s);
        }
    }
}

#[cfg(test)]
#[path = "lessor_tests.rs"]
mod tests;
