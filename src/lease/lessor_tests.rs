//! The lessor stepped without threads: a fake proposer records proposals,
//! the test plays the apply thread (changing the table, completing the
//! outcome) and reads the answers from the connection's outbox.

use super::*;
use crate::lease::hub::LeaseCmd;
use crate::plumbing::doorbell::{self, Doorbell};
use crate::plumbing::outbox::{Notifier, Outbox};
use crate::proto::etcdserverpb::LeaseKeepAliveRequest;
use crossbeam_channel::Receiver;

type Proposed = Arc<Mutex<Vec<(internal_request::Body, Done)>>>;

struct FakeProposer(Proposed);

impl LeaseProposer for FakeProposer {
    fn propose(&self, body: internal_request::Body, done: Done) {
        self.0.lock().unwrap().push((body, done));
    }
}

struct Harness {
    lessor: Lessor,
    table: Arc<Mutex<LeaseTable>>,
    proposed: Proposed,
    outcomes: Receiver<(u64, Result<Body, ApiError>)>,
    primary: Arc<AtomicBool>,
    outbox: Arc<Outbox>,
    t0: Instant,
}

fn harness(cfg: LessorConfig) -> Harness {
    let table = Arc::new(Mutex::new(LeaseTable::new()));
    let proposed: Proposed = Arc::default();
    let (tx, outcomes) = doorbell::channel(64, &Doorbell::new());
    let primary = Arc::new(AtomicBool::new(false));
    let p = primary.clone();
    let lessor = Lessor::new(
        LessorParts {
            table: table.clone(),
            proposer: Box::new(FakeProposer(proposed.clone())),
            header: Box::new(|| ResponseHeader { revision: 42, ..Default::default() }),
            is_primary: Box::new(move || p.load(Ordering::SeqCst)),
            outcomes: tx,
            open_streams: Arc::new(AtomicUsize::new(0)),
        },
        cfg,
    );
    let outbox = Outbox::new(1, 1 << 20, Notifier::new(|| {}));
    Harness { lessor, table, proposed, outcomes, primary, outbox, t0: Instant::now() }
}

impl Harness {
    fn open(&mut self, stream: u64, id: i64) {
        let sender = StreamSender::new(self.outbox.clone(), stream * 10);
        let first = LeaseKeepAliveRequest { id };
        let ended = Arc::new(AtomicBool::new(false));
        self.lessor.on_cmd(LeaseCmd::Open { stream, sender, ended, first }, self.t0);
    }

    fn keep_alive(&mut self, stream: u64, id: i64) {
        self.lessor.on_cmd(LeaseCmd::KeepAlive { stream, req: LeaseKeepAliveRequest { id } }, self.t0);
    }

    fn grant(&self, id: i64, ttl: i64) {
        self.table.lock().unwrap().grant(id, ttl, ttl, 1, self.t0);
    }

    /// Plays the apply thread for every proposal so far: `apply` changes
    /// the table, then the outcome comes back to the lessor.
    fn apply_all(&mut self, result: impl Fn() -> Result<Body, ApiError>, apply: impl Fn(&internal_request::Body)) {
        let proposed: Vec<_> = self.proposed.lock().unwrap().drain(..).collect();
        for (body, done) in proposed {
            apply(&body);
            done(result());
        }
        while let Ok((token, r)) = self.outcomes.try_recv() {
            self.lessor.on_outcome(token, r, self.t0);
        }
    }

    /// (request id, lease id, TTL) of each keep-alive answer sent so far;
    /// errors as (request id, -1, code).
    fn answers(&self) -> Vec<(u64, i64, i64)> {
        self.outbox
            .drain()
            .into_iter()
            .map(|o| match o.response.body {
                Some(Body::LeaseKeepAlive(k)) => (o.response.request_id, k.id, k.ttl),
                Some(Body::Error(e)) => (o.response.request_id, -1, e.code as i64),
                other => panic!("unexpected answer {other:?}"),
            })
            .collect()
    }
}

fn ok() -> Result<Body, ApiError> {
    Ok(Body::LeaseKeepAlive(Default::default()))
}

#[test]
fn keep_alives_are_answered_only_after_their_renewal_is_applied() {
    let mut h = harness(LessorConfig::default());
    h.grant(7, 30);
    h.open(1, 7);
    h.open(2, 7);
    h.keep_alive(1, 7);
    assert!(h.answers().is_empty(), "nothing before the renewal");
    h.lessor.step(h.t0);
    let proposed = h.proposed.lock().unwrap().len();
    assert_eq!(proposed, 1, "one entry renews the lease for every asker");
    assert!(h.answers().is_empty(), "nothing before it is applied");
    h.apply_all(ok, |_| {});
    let mut a = h.answers();
    a.sort();
    assert_eq!(a, vec![(10, 7, 30), (10, 7, 30), (20, 7, 30)]);
}

#[test]
fn unknown_and_revoked_leases_are_answered_with_ttl_zero_after_the_log_says_so() {
    let mut h = harness(LessorConfig::default());
    h.open(1, 99);
    h.lessor.step(h.t0);
    assert!(h.answers().is_empty(), "not known here yet is not gone: the log decides");
    // The grant was ahead of the renewal in the log: applied first.
    let table = h.table.clone();
    let t0 = h.t0;
    h.apply_all(ok, move |_| {
        table.lock().unwrap().grant(99, 20, 20, 1, t0);
    });
    assert_eq!(h.answers(), vec![(10, 99, 20)], "a lease granted before the keep-alive is renewed");
    h.keep_alive(1, 98);
    h.lessor.step(h.t0);
    h.apply_all(ok, |_| {});
    assert_eq!(h.answers(), vec![(10, 98, 0)], "unknown at that point of the log: TTL 0, as etcd");
    h.grant(7, 30);
    h.keep_alive(1, 7);
    h.lessor.step(h.t0);
    // Revoked while its renewal was in flight.
    let table = h.table.clone();
    h.apply_all(ok, move |_| {
        table.lock().unwrap().revoke(7);
    });
    assert_eq!(h.answers(), vec![(10, 7, 0)]);
}

#[test]
fn renewals_are_batched_and_bounded_in_flight() {
    let cfg = LessorConfig { renewals_per_entry: 3, renewal_entries_in_flight: 2, ..LessorConfig::default() };
    let mut h = harness(cfg);
    for id in 1..=10 {
        h.grant(id, 30);
    }
    h.open(1, 1);
    for id in 2..=10 {
        h.keep_alive(1, id);
    }
    h.lessor.step(h.t0);
    {
        let p = h.proposed.lock().unwrap();
        assert_eq!(p.len(), 2, "two entries in flight at most");
        for (body, _) in p.iter() {
            let internal_request::Body::LeaseCheckpoint(c) = body else { panic!("{body:?}") };
            assert_eq!(c.checkpoints.len(), 3);
            assert!(c.checkpoints.iter().all(|cp| cp.remaining_ttl == 0), "renewed to the granted TTL");
        }
    }
    assert_eq!(h.lessor.waiting(), 4);
    h.apply_all(ok, |_| {});
    h.lessor.step(h.t0);
    h.apply_all(ok, |_| {});
    h.lessor.step(h.t0);
    h.apply_all(ok, |_| {});
    assert_eq!(h.answers().len(), 10);
}

#[test]
fn a_failed_renewal_is_retried_then_ends_the_stream() {
    let cfg = LessorConfig { keep_alive_timeout: Duration::from_secs(5), ..LessorConfig::default() };
    let mut h = harness(cfg);
    h.grant(7, 30);
    h.open(1, 7);
    h.lessor.step(h.t0);
    h.apply_all(|| Err(ApiError::of(ErrorCode::NoLeader)), |_| {});
    assert!(h.answers().is_empty());
    assert_eq!(h.lessor.waiting(), 1, "retried");
    h.lessor.step(h.t0);
    assert_eq!(h.proposed.lock().unwrap().len(), 1);
    // Past the timeout: the stream ends with the error.
    let (token_result, later) = (|| Err(ApiError::of(ErrorCode::NoLeader)), h.t0 + Duration::from_secs(6));
    let proposed: Vec<_> = h.proposed.lock().unwrap().drain(..).collect();
    for (_, done) in proposed {
        done(token_result());
    }
    while let Ok((token, r)) = h.outcomes.try_recv() {
        h.lessor.on_outcome(token, r, later);
    }
    assert_eq!(h.answers(), vec![(10, -1, ErrorCode::NoLeader as i64)]);
    assert_eq!(h.lessor.open_streams(), 0);
}

#[test]
fn only_the_primary_expires_leases_in_bounded_batches() {
    let cfg = LessorConfig { expiries_per_entry: 4, expiry_entries_in_flight: 2, ..LessorConfig::default() };
    let mut h = harness(cfg);
    for id in 1..=10 {
        h.grant(id, 5);
    }
    let later = h.t0 + Duration::from_secs(6);
    h.lessor.step(later);
    assert!(h.proposed.lock().unwrap().is_empty(), "a follower never expires");
    h.primary.store(true, Ordering::SeqCst);
    h.lessor.step(later);
    let expired: Vec<LeaseExpiry> = h
        .proposed
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(body, _)| match body {
            internal_request::Body::LeaseExpire(x) => x.leases.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(expired.len(), 8, "two entries of four");
    assert!(expired.iter().all(|e| e.renewals == 1));
    let table = h.table.clone();
    h.apply_all(ok, move |body| {
        if let internal_request::Body::LeaseExpire(x) = body {
            for e in &x.leases {
                table.lock().unwrap().revoke(e.id);
            }
        }
    });
    h.lessor.step(later);
    let n = h.proposed.lock().unwrap().len();
    assert_eq!(n, 1, "the last two leases");
}

#[test]
fn a_closed_connection_forgets_its_streams() {
    let mut h = harness(LessorConfig::default());
    h.grant(7, 30);
    h.open(1, 7);
    h.outbox.close();
    h.lessor.step(h.t0);
    h.apply_all(ok, |_| {});
    assert_eq!(h.lessor.open_streams(), 0);
}

#[test]
fn expiry_is_rate_limited() {
    let cfg = LessorConfig {
        expiries_per_entry: 100,
        expiry_entries_in_flight: 100,
        expiry_rate: 10,
        ..LessorConfig::default()
    };
    let mut h = harness(cfg);
    for id in 1..=50 {
        h.grant(id, 1);
    }
    h.primary.store(true, Ordering::SeqCst);
    let expired = |h: &Harness| -> usize {
        h.proposed
            .lock()
            .unwrap()
            .iter()
            .map(|(b, _)| match b {
                internal_request::Body::LeaseExpire(x) => x.leases.len(),
                _ => 0,
            })
            .sum()
    };
    let t = h.t0 + Duration::from_secs(2);
    h.lessor.step(t);
    assert_eq!(expired(&h), 2, "a burst of a fifth of a second's worth");
    h.lessor.step(t + Duration::from_millis(100));
    assert_eq!(expired(&h), 3, "then ten a second");
    h.lessor.step(t + Duration::from_secs(10));
    assert_eq!(expired(&h), 5, "the bucket holds at most the burst");
}

#[test]
fn a_lost_renewal_is_proposed_again_after_the_retry_interval() {
    let cfg = LessorConfig { renewal_retry: Duration::from_secs(1), ..LessorConfig::default() };
    let mut h = harness(cfg);
    h.grant(7, 30);
    h.open(1, 7);
    h.lessor.step(h.t0);
    let lost: Vec<_> = h.proposed.lock().unwrap().drain(..).collect();
    assert_eq!(lost.len(), 1);
    h.lessor.step(h.t0 + Duration::from_millis(500));
    assert!(h.proposed.lock().unwrap().is_empty(), "not before the retry interval");
    h.lessor.step(h.t0 + Duration::from_secs(1));
    assert_eq!(h.proposed.lock().unwrap().len(), 1, "proposed again");
    h.apply_all(ok, |_| {});
    // The lost entry's outcome arriving late answers nobody twice.
    for (_, done) in lost {
        done(ok());
    }
    while let Ok((token, r)) = h.outcomes.try_recv() {
        h.lessor.on_outcome(token, r, h.t0);
    }
    assert_eq!(h.answers(), vec![(10, 7, 30)]);
}
