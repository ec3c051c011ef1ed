//! The corruption check, on by default (etcd keeps it behind experimental
//! flags): at start-up every member, and then every
//! `corrupt-check-interval-ms` the leader, computes HashKV at its current
//! revision and asks every other member for HashKV at the same revision
//! (over the forwarding connections). Members whose hash differs
//! from the majority's at the same compaction revision are named in a
//! CORRUPT alarm, proposed through Raft, which stops writes cluster-wide
//! until an operator disarms it. A member that has not applied the revision
//! yet, or was compacted differently, is skipped until the next round.
//!
//! Owns the schedule and the comparison (a pure function, unit-tested);
//! never writes storage and never refuses a request itself.

use super::alarms::AlarmSet;
use super::proposer::Proposer;
use crate::mvcc::KvStore;
use crate::plumbing::errors::ApiError;
use crate::plumbing::notice::{LeaderInfo, Notices};
use crate::plumbing::wait::Completion;
use crate::proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType, HashKvRequest};
use crate::proto::internalpb::internal_request;
use crate::proto::raftkvpb::{client_request, client_response::Body};
use crate::transport::forward::Forwarder;
use crate::transport::members::Members;
use crossbeam_channel::{bounded, Receiver};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a member may take to answer its HashKV.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// Start-up rounds tried until a majority answers, and the pause before each
/// (the member catches up on what it missed while down first).
const START_UP_TRIES: usize = 10;
const START_UP_PAUSE: Duration = Duration::from_secs(1);

/// One member's answer: its hash and compaction revision at the revision asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub hash: u32,
    pub compact_revision: i64,
}

/// The members whose hash differs from the majority's among those that
/// compacted like `leader` did (the leader included, under its own id).
/// Empty when they all agree, or when no hash has a strict majority.
pub fn suspects(answers: &BTreeMap<u64, Seen>, leader: u64) -> Vec<u64> {
    let Some(mine) = answers.get(&leader) else { return Vec::new() };
    let comparable: Vec<(u64, u32)> = answers
        .iter()
        .filter(|(_, s)| s.compact_revision == mine.compact_revision)
        .map(|(&id, s)| (id, s.hash))
        .collect();
    let mut votes: BTreeMap<u32, usize> = BTreeMap::new();
    for &(_, h) in &comparable {
        *votes.entry(h).or_default() += 1;
    }
    if votes.len() < 2 {
        return Vec::new();
    }
    let Some((&majority, &n)) = votes.iter().max_by_key(|(_, &n)| n) else { return Vec::new() };
    if n * 2 <= comparable.len() {
        // No majority: name nobody rather than the wrong member; the
        // disagreement is logged.
        log::error!("corruption check: members disagree with no majority: {comparable:?}");
        return Vec::new();
    }
    comparable.into_iter().filter(|&(_, h)| h != majority).map(|(id, _)| id).collect()
}

pub struct CorruptCheck {
    pub member_id: u64,
    pub interval: Duration,
    pub kv: Arc<KvStore>,
    pub members: Arc<Members>,
    pub forwarder: Forwarder,
    pub proposer: Proposer,
    pub leader: Arc<Notices<LeaderInfo>>,
    pub alarms: Arc<AlarmSet>,
    pub stop: Arc<AtomicBool>,
}

impl CorruptCheck {
    /// Runs until `stop` is raised (checked every 100 ms).
    pub fn run(self) {
        self.start_up_round();
        let mut next = Instant::now() + self.interval;
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100).min(self.interval));
            if Instant::now() < next {
                continue;
            }
            next = Instant::now() + self.interval;
            if self.leader.current().is_self && !self.alarms.has(AlarmType::Corrupt) {
                self.check();
            }
        }
    }

    /// The start-up check, on every member (etcd's initial corruption
    /// check): once a leader is known, this member compares itself with the
    /// others, so a member whose data changed while it was down is named at
    /// once instead of at the leader's next round. Tried until enough
    /// members answered to name one, at most `START_UP_TRIES` times.
    fn start_up_round(&self) {
        for _ in 0..START_UP_TRIES {
            let deadline = Instant::now() + START_UP_PAUSE;
            while Instant::now() < deadline {
                if self.stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.leader.current().leader == 0 || self.alarms.has(AlarmType::Corrupt) {
                continue;
            }
            let members = self.members.ids().len().max(1);
            let answered = self.check();
            // Enough answers for a majority to name a changed member: all
            // of them, or at least three and more than half.
            if answered >= members || (answered >= 3 && answered * 2 > members) {
                return;
            }
        }
        log::warn!(
            "corruption check: too few members answered at start-up; the leader's rounds will check this member"
        );
    }

    /// One round at this member's current revision; returns how many
    /// members (this one included) answered.
    fn check(&self) -> usize {
        let revision = self.kv.current_revision();
        let mine = match self.kv.hash_kv(revision) {
            Ok(h) => Seen { hash: h.hash, compact_revision: h.compact_revision },
            Err(e) => {
                log::debug!("corruption check: local HashKV at {revision}: {e}");
                return 0;
            }
        };
        let mut answers = BTreeMap::from([(self.member_id, mine)]);
        for (id, answer) in self.ask_all(revision) {
            match answer {
                Ok(seen) => {
                    answers.insert(id, seen);
                }
                // Behind, compacted past it, or down: next round.
                Err(e) => log::debug!("corruption check: member {id:x} at {revision}: {e}"),
            }
        }
        for id in suspects(&answers, self.member_id) {
            log::error!(
                "corruption check: member {id:x} has hash {:?} at revision {revision}, unlike the majority; raising CORRUPT",
                answers.get(&id)
            );
            self.raise(id);
        }
        answers.len()
    }

    /// Every other member's HashKV at `revision`, asked at once.
    fn ask_all(&self, revision: i64) -> Vec<(u64, Result<Seen, ApiError>)> {
        let others: Vec<u64> = self.members.ids().into_iter().filter(|&id| id != self.member_id).collect();
        let mut waiting: Vec<(u64, Receiver<Result<Body, ApiError>>)> = Vec::new();
        for id in others {
            let (tx, rx) = bounded(1);
            let body = client_request::Body::HashKv(HashKvRequest { revision });
            let done = move |r: Result<Body, ApiError>| {
                let _ = tx.try_send(r);
            };
            self.forwarder.forward(id, body, Instant::now() + ASK_TIMEOUT, Box::new(done));
            waiting.push((id, rx));
        }
        let deadline = Instant::now() + ASK_TIMEOUT + Duration::from_secs(1);
        waiting
            .into_iter()
            .map(|(id, rx)| {
                let got = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(Ok(Body::HashKv(h))) => Ok(Seen { hash: h.hash, compact_revision: h.compact_revision }),
                    Ok(Ok(other)) => Err(ApiError::internal(format!("unexpected answer to HashKV: {other:?}"))),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(ApiError::internal("no answer")),
                };
                (id, got)
            })
            .collect()
    }

    fn raise(&self, member_id: u64) {
        let alarm = AlarmRequest { action: AlarmAction::Activate as i32, member_id, alarm: AlarmType::Corrupt as i32 };
        let logged = |r: Result<Body, ApiError>| {
            if let Err(e) = r {
                log::warn!("raising the CORRUPT alarm failed: {e}");
            }
        };
        self.proposer.propose(internal_request::Body::Alarm(alarm), Completion::Call(Box::new(logged)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(hash: u32, compact_revision: i64) -> Seen {
        Seen { hash, compact_revision }
    }

    #[test]
    fn the_member_unlike_the_majority_is_named() {
        let agree = BTreeMap::from([(1, seen(7, 0)), (2, seen(7, 0)), (3, seen(7, 0))]);
        assert!(suspects(&agree, 1).is_empty());
        let one_off = BTreeMap::from([(1, seen(7, 0)), (2, seen(9, 0)), (3, seen(7, 0))]);
        assert_eq!(suspects(&one_off, 1), vec![2]);
        // The leader itself can be the odd one.
        let leader_off = BTreeMap::from([(1, seen(9, 0)), (2, seen(7, 0)), (3, seen(7, 0))]);
        assert_eq!(suspects(&leader_off, 1), vec![1]);
    }

    #[test]
    fn members_compacted_differently_or_without_a_majority_are_not_named() {
        let compacted = BTreeMap::from([(1, seen(7, 5)), (2, seen(9, 3)), (3, seen(7, 5))]);
        assert!(suspects(&compacted, 1).is_empty());
        let split = BTreeMap::from([(1, seen(7, 0)), (2, seen(9, 0))]);
        assert!(suspects(&split, 1).is_empty());
    }
}
