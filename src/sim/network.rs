//! The simulated network: messages in flight with random delay, loss and
//! duplication, and partitions that cut links in both directions.
//!
//! Owns only message delivery; every random choice comes from the caller's
//! seeded generator, so a run replays exactly.

use crate::proto::raftpb::{Message, MessageType};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, VecDeque};

/// How unreliable the network is.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is delayed at all.
    pub delay: f64,
    /// Maximum delay, in steps, of a delayed message.
    pub max_delay: u64,
}

impl Faults {
    pub const NONE: Faults = Faults { drop: 0.0, duplicate: 0.0, delay: 0.0, max_delay: 0 };
}

#[derive(Debug)]
struct InFlight {
    deliver_at: u64,
    /// Tie-breaker that keeps delivery order deterministic.
    seq: u64,
    msg: Message,
}

/// What happened to a snapshot message, for the sender's transport report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotOutcome {
    pub from: u64,
    pub to: u64,
    pub delivered: bool,
}

#[derive(Debug, Default)]
pub struct Network {
    in_flight: Vec<InFlight>,
    seq: u64,
    /// Cut links, as (lower id, higher id).
    cut: BTreeSet<(u64, u64)>,
    pub faults: Option<Faults>,
    /// Snapshot messages whose fate the sender has not been told yet.
    pub snapshot_outcomes: VecDeque<SnapshotOutcome>,
    /// Messages lost to a cut link, for `report_unreachable`.
    pub unreachable: VecDeque<(u64, u64)>,
    /// Nodes removed from the cluster: the transport refuses their
    /// connections (an unknown member is refused at the handshake).
    removed: BTreeSet<u64>,
}

fn link(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

impl Network {
    pub fn is_cut(&self, a: u64, b: u64) -> bool {
        self.cut.contains(&link(a, b))
    }

    /// Splits the nodes into two sides that cannot talk to each other.
    pub fn partition(&mut self, side: &BTreeSet<u64>, all: &BTreeSet<u64>) {
        for &a in side {
            for &b in all.difference(side) {
                self.cut.insert(link(a, b));
            }
        }
    }

    /// Cuts every link of one node.
    pub fn isolate(&mut self, id: u64, all: &BTreeSet<u64>) {
        for &b in all {
            if b != id {
                self.cut.insert(link(id, b));
            }
        }
    }

    /// Refuses every message from `id` from now on.
    pub fn refuse(&mut self, id: u64) {
        self.removed.insert(id);
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    pub fn partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Sends a message at step `now`, subject to faults.
    pub fn send(&mut self, msg: Message, now: u64, rng: &mut ChaCha8Rng) {
        let faults = self.faults.unwrap_or(Faults::NONE);
        let is_snap = msg.msg_type() == MessageType::MsgSnap;
        if self.removed.contains(&msg.from) {
            return;
        }
        if self.is_cut(msg.from, msg.to) {
            self.unreachable.push_back((msg.from, msg.to));
            if is_snap {
                self.snapshot_outcomes.push_back(SnapshotOutcome { from: msg.from, to: msg.to, delivered: false });
            }
            return;
        }
        if faults.drop > 0.0 && rng.random_bool(faults.drop) {
            if is_snap {
                self.snapshot_outcomes.push_back(SnapshotOutcome { from: msg.from, to: msg.to, delivered: false });
            }
            return;
        }
        if is_snap {
            self.snapshot_outcomes.push_back(SnapshotOutcome { from: msg.from, to: msg.to, delivered: true });
        }
        let copies = if faults.duplicate > 0.0 && rng.random_bool(faults.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = if faults.delay > 0.0 && rng.random_bool(faults.delay) {
                rng.random_range(1..=faults.max_delay.max(1))
            } else {
                0
            };
            self.seq += 1;
            self.in_flight.push(InFlight { deliver_at: now + delay, seq: self.seq, msg: msg.clone() });
        }
    }

    /// Takes every message due at `now`, in a deterministic order. Messages
    /// on links cut since they were sent are lost.
    pub fn take_due(&mut self, now: u64) -> Vec<Message> {
        let mut due: Vec<InFlight> = Vec::new();
        let mut keep = Vec::with_capacity(self.in_flight.len());
        for f in self.in_flight.drain(..) {
            if f.deliver_at <= now {
                due.push(f);
            } else {
                keep.push(f);
            }
        }
        self.in_flight = keep;
        due.sort_by_key(|f| (f.deliver_at, f.seq));
        due.into_iter().filter(|f| !self.cut.contains(&link(f.msg.from, f.msg.to))).map(|f| f.msg).collect()
    }

    /// Drops every message to or from `id` (a crashed node's sockets).
    pub fn drop_node(&mut self, id: u64) {
        self.in_flight.retain(|f| f.msg.to != id && f.msg.from != id);
    }
}
