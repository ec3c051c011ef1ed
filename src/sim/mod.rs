//! Deterministic simulation of whole Raft clusters.
//!
//! A seeded run drives 3 or 5 cores (plus members added later) through
//! random client writes and reads, crashes (also in the middle of handling a
//! `Ready`), restarts, partitions, lossy / duplicating / reordering links,
//! snapshots and log compaction, membership changes (single-step and joint)
//! and leadership transfers, checking the invariants of [`checker`] after
//! every event. Then every fault is healed and the run must converge: a
//! leader is elected and every acknowledged write is applied on every member
//! within a bounded number of ticks. The same seed always replays the same
//! run, step for step.
//!
//! Owns the simulated world; reused by later layers' tests.

pub mod checker;
pub mod network;
pub mod node;
pub mod state_machine;

use crate::proto::raftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use crate::raft::{Config, Error, MemStorage, ReadOnlyOption, SnapshotStatus, StateRole};
use checker::{Checker, Violation};
use network::{Faults, Network};
use node::SimNode;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Ticks the healed cluster gets to converge before liveness fails.
pub const LIVENESS_TICKS: u64 = 600;

/// Message delivery rounds within one step (zero-delay messages are
/// delivered in the same step, as on a fast network between ticks).
const ROUNDS_PER_STEP: usize = 30;

/// Members beyond the initial ones that may be added during a run.
const EXTRA_MEMBERS: u64 = 3;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub steps: u64,
    /// Initial voters: 3 or 5; 0 lets the seed choose.
    pub nodes: usize,
}

/// What a successful run did, for the summary.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub nodes: usize,
    pub terms_with_leader: usize,
    pub committed: u64,
    pub writes_acked: u64,
    pub reads_checked: u64,
    pub crashes: u64,
    pub snapshots_installed: u64,
    pub conf_changes_applied: u64,
    pub transfers: u64,
    pub convergence_ticks: u64,
}

/// A failed run: the violated invariant and where.
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub step: u64,
    pub reason: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {} failed at step {}: {}", self.seed, self.step, self.reason)
    }
}

/// The knobs a seed picks for its run.
#[derive(Debug, Clone)]
struct Params {
    faults: Faults,
    crash: f64,
    crash_mid_ready: f64,
    restart: f64,
    partition: f64,
    heal: f64,
    propose: f64,
    read: f64,
    conf_change: f64,
    transfer: f64,
    compact: f64,
}

struct World {
    rng: ChaCha8Rng,
    net: Network,
    checker: Checker,
    nodes: BTreeMap<u64, SimNode>,
    base: Config,
    next_op: u64,
    next_member: u64,
    max_member: u64,
    crashes: u64,
    transfers: u64,
    now: u64,
}

/// Runs one seed. `Err` names the first violated invariant.
pub fn run(cfg: &SimConfig) -> Result<SimReport, SimFailure> {
    let mut world = World::new(cfg).map_err(|reason| SimFailure { seed: cfg.seed, step: 0, reason })?;
    let params = world.pick_params();
    for step in 0..cfg.steps {
        world.now = step;
        world.step(&params).map_err(|reason| SimFailure { seed: cfg.seed, step, reason })?;
    }
    let convergence_ticks =
        world.converge().map_err(|reason| SimFailure { seed: cfg.seed, step: world.now, reason })?;
    Ok(SimReport {
        nodes: world.nodes.len(),
        terms_with_leader: world.checker.leader_count(),
        committed: world.checker.committed_len(),
        writes_acked: world.checker.writes_acked,
        reads_checked: world.checker.reads_checked,
        crashes: world.crashes,
        snapshots_installed: world.nodes.values().map(|n| n.snapshots_installed).sum(),
        conf_changes_applied: world.nodes.values().map(|n| n.conf_changes_applied).sum(),
        transfers: world.transfers,
        convergence_ticks,
    })
}

impl World {
    fn new(cfg: &SimConfig) -> Result<World, Violation> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let n = match cfg.nodes {
            0 => {
                if rng.random_bool(0.5) {
                    3
                } else {
                    5
                }
            }
            n => n,
        } as u64;
        let mut base = Config::new(1);
        base.seed = cfg.seed;
        // Small limits so flow control, batching and the uncommitted bound
        // are exercised constantly.
        base.max_size_per_msg = 256;
        base.max_inflight_msgs = rng.random_range(1..=4);
        base.max_inflight_bytes = if rng.random_bool(0.5) { 0 } else { 1024 };
        base.max_uncommitted_entries_size = 2048;
        base.max_committed_size_per_ready = 512;
        base.check_quorum = rng.random_bool(0.8);
        base.pre_vote = rng.random_bool(0.8);
        base.read_only_option =
            if base.check_quorum && rng.random_bool(0.3) { ReadOnlyOption::LeaseBased } else { ReadOnlyOption::Safe };

        let voters: Vec<u64> = (1..=n).collect();
        let mut nodes = BTreeMap::new();
        for &id in &voters {
            let mut c = base.clone();
            c.id = id;
            nodes.insert(id, SimNode::new(c, MemStorage::bootstrap(&voters))?);
        }
        Ok(World {
            rng,
            net: Network::default(),
            checker: Checker::default(),
            nodes,
            base,
            next_op: 1,
            next_member: n + 1,
            max_member: n + EXTRA_MEMBERS,
            crashes: 0,
            transfers: 0,
            now: 0,
        })
    }

    fn pick_params(&mut self) -> Params {
        let rng = &mut self.rng;
        let faults = Faults {
            drop: *[0.0, 0.01, 0.05, 0.1].iter().choose(rng).unwrap_or(&0.0),
            duplicate: *[0.0, 0.01, 0.05].iter().choose(rng).unwrap_or(&0.0),
            delay: *[0.0, 0.1, 0.3].iter().choose(rng).unwrap_or(&0.0),
            max_delay: rng.random_range(1..=4),
        };
        self.net.faults = Some(faults);
        Params {
            faults,
            crash: rng.random_range(0.0..0.01),
            crash_mid_ready: rng.random_range(0.0..0.002),
            restart: 0.05,
            partition: rng.random_range(0.0..0.008),
            heal: 0.03,
            propose: rng.random_range(0.2..0.8),
            read: rng.random_range(0.1..0.5),
            conf_change: rng.random_range(0.0..0.01),
            transfer: rng.random_range(0.0..0.006),
            compact: rng.random_range(0.0..0.03),
        }
    }

    fn up_ids(&self) -> Vec<u64> {
        self.nodes.iter().filter(|(_, n)| n.is_up()).map(|(&id, _)| id).collect()
    }

    fn all_ids(&self) -> BTreeSet<u64> {
        self.nodes.keys().copied().collect()
    }

    fn leader(&self) -> Option<u64> {
        // The leader of the highest term, if several think they lead.
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_leader())
            .max_by_key(|(_, n)| n.raw().map_or(0, |r| r.raft.term))
            .map(|(&id, _)| id)
    }

    fn random_up(&mut self) -> Option<u64> {
        let ids = self.up_ids();
        ids.into_iter().choose(&mut self.rng)
    }

    /// One step: random faults and client operations, message delivery, one
    /// tick everywhere, invariant checks.
    fn step(&mut self, p: &Params) -> Result<(), Violation> {
        self.random_faults(p)?;
        self.random_operations(p)?;
        self.deliver(p.crash_mid_ready)?;
        self.tick_all()?;
        self.deliver(p.crash_mid_ready)?;
        let _ = p.faults;
        Ok(())
    }

    fn random_faults(&mut self, p: &Params) -> Result<(), Violation> {
        if self.rng.random_bool(p.crash) {
            if let Some(id) = self.random_up() {
                self.crash(id);
            }
        }
        let down: Vec<u64> = self.nodes.iter().filter(|(_, n)| !n.is_up() && !n.removed).map(|(&id, _)| id).collect();
        for id in down {
            if self.rng.random_bool(p.restart) {
                self.restart(id)?;
            }
        }
        if self.net.partitioned() {
            if self.rng.random_bool(p.heal) {
                self.net.heal();
            }
        } else if self.rng.random_bool(p.partition) {
            let all = self.all_ids();
            if self.rng.random_bool(0.5) {
                // Isolate the leader: the classic check-quorum / pre-vote case.
                if let Some(l) = self.leader() {
                    self.net.isolate(l, &all);
                }
            } else {
                let k = self.rng.random_range(1..=all.len() / 2);
                let side: BTreeSet<u64> = all.iter().copied().choose_multiple(&mut self.rng, k).into_iter().collect();
                self.net.partition(&side, &all);
            }
        }
        Ok(())
    }

    fn crash(&mut self, id: u64) {
        log::debug!("sim step {}: crash {id}", self.now);
        if let Some(n) = self.nodes.get_mut(&id) {
            n.crash();
            self.crashes += 1;
        }
    }

    fn restart(&mut self, id: u64) -> Result<(), Violation> {
        log::debug!("sim step {}: restart {id}", self.now);
        match self.nodes.get_mut(&id) {
            Some(n) => n.restart(),
            None => Ok(()),
        }
    }

    fn random_operations(&mut self, p: &Params) -> Result<(), Violation> {
        if self.rng.random_bool(p.propose) {
            // Mostly at the leader, sometimes forwarded by a follower.
            let target = match self.leader() {
                Some(l) if self.rng.random_bool(0.7) => Some(l),
                _ => self.random_up(),
            };
            if let Some(id) = target {
                let op = self.next_op;
                self.next_op += 1;
                let key = self.rng.random_range(0..3u8);
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.propose(op, key)?;
                }
            }
        }
        if self.rng.random_bool(p.read) {
            if let Some(id) = self.random_up() {
                let op = self.next_op;
                self.next_op += 1;
                let key = self.rng.random_range(0..3u8);
                let invoked = self.checker.tick_clock();
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.read(op, key, invoked)?;
                }
            }
        }
        if self.rng.random_bool(p.conf_change) {
            self.random_conf_change()?;
        }
        if self.rng.random_bool(p.transfer) {
            if let Some(l) = self.leader() {
                let voters = self.nodes.get(&l).and_then(|n| n.raw()).map(|r| r.status().conf_state.voters);
                if let Some(target) = voters.and_then(|v| v.into_iter().choose(&mut self.rng)) {
                    if let Some(raw) = self.nodes.get_mut(&l).and_then(|n| n.raw_mut()) {
                        raw.transfer_leader(target).map_err(|e| format!("transfer_leader: {e}"))?;
                        self.transfers += 1;
                    }
                }
            }
        }
        if self.rng.random_bool(p.compact) {
            if let Some(id) = self.random_up() {
                let keep = self.rng.random_range(0..8);
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.compact(keep)?;
                }
            }
        }
        Ok(())
    }

    /// Proposes a random membership change at the leader: add a learner,
    /// promote one, demote or remove a voter, a joint change, or leaving an
    /// explicit joint configuration.
    fn random_conf_change(&mut self) -> Result<(), Violation> {
        let Some(l) = self.leader() else { return Ok(()) };
        let Some(cs) = self.nodes.get(&l).and_then(|n| n.raw()).map(|r| r.status().conf_state) else {
            return Ok(());
        };
        let single = |t: ConfChangeType, id: u64| ConfChangeSingle { change_type: t as i32, node_id: id };
        let rng = &mut self.rng;
        let mut cc = ConfChangeV2::default();
        if !cs.voters_outgoing.is_empty() {
            if cs.auto_leave {
                return Ok(());
            }
        } else {
            let new_id = (self.next_member <= self.max_member).then_some(self.next_member);
            let learner = cs.learners.iter().copied().choose(rng);
            // Keep at least three voters so the healed cluster can make
            // progress with one member down.
            let removable = (cs.voters.len() > 3).then(|| cs.voters.iter().copied().choose(rng)).flatten();
            match rng.random_range(0..5) {
                0 => match new_id {
                    Some(id) => cc.changes.push(single(ConfChangeType::ConfChangeAddLearnerNode, id)),
                    None => return Ok(()),
                },
                1 => match learner {
                    Some(id) => cc.changes.push(single(ConfChangeType::ConfChangeAddNode, id)),
                    None => return Ok(()),
                },
                2 => match removable {
                    Some(id) if rng.random_bool(0.5) => {
                        cc.changes.push(single(ConfChangeType::ConfChangeRemoveNode, id))
                    }
                    Some(id) => cc.changes.push(single(ConfChangeType::ConfChangeAddLearnerNode, id)),
                    None => return Ok(()),
                },
                _ => {
                    // Joint: promote or add one, remove or demote another.
                    let add = match (learner, new_id) {
                        (Some(id), _) => id,
                        (None, Some(id)) => id,
                        (None, None) => return Ok(()),
                    };
                    let Some(out) = cs.voters.iter().copied().filter(|&v| v != add).choose(rng) else {
                        return Ok(());
                    };
                    cc.changes.push(single(ConfChangeType::ConfChangeAddNode, add));
                    let t = if rng.random_bool(0.5) {
                        ConfChangeType::ConfChangeRemoveNode
                    } else {
                        ConfChangeType::ConfChangeAddLearnerNode
                    };
                    cc.changes.push(single(t, out));
                    cc.transition = if rng.random_bool(0.5) {
                        ConfChangeTransition::Auto as i32
                    } else {
                        ConfChangeTransition::JointExplicit as i32
                    };
                }
            }
        }
        // Create brand-new members before they are contacted.
        for c in &cc.changes {
            if !self.nodes.contains_key(&c.node_id) && c.node_id == self.next_member {
                let mut config = self.base.clone();
                config.id = c.node_id;
                self.nodes.insert(c.node_id, SimNode::new(config, MemStorage::new())?);
                self.next_member += 1;
            }
        }
        let Some(raw) = self.nodes.get_mut(&l).and_then(|n| n.raw_mut()) else { return Ok(()) };
        match raw.propose_conf_change_v2(&cc) {
            Ok(()) | Err(Error::ProposalDropped(_)) | Err(Error::InvalidConfChange(_)) => Ok(()),
            Err(e) => Err(format!("propose_conf_change: {e}")),
        }
    }

    /// Delivers messages and handles Readies until the network is quiet for
    /// this step.
    fn deliver(&mut self, crash_mid_ready: f64) -> Result<(), Violation> {
        for _ in 0..ROUNDS_PER_STEP {
            self.handle_readies(crash_mid_ready)?;
            self.report_transport()?;
            let due = self.net.take_due(self.now);
            if due.is_empty() {
                break;
            }
            for m in due {
                log::trace!(
                    "sim step {}: deliver {:?} {}->{} term {} index {} log_term {} commit {} entries {} reject {} hint {}",
                    self.now,
                    m.msg_type(),
                    m.from,
                    m.to,
                    m.term,
                    m.index,
                    m.log_term,
                    m.commit,
                    m.entries.len(),
                    m.reject,
                    m.reject_hint
                );
                let Some(raw) = self.nodes.get_mut(&m.to).and_then(|n| n.raw_mut()) else { continue };
                match raw.step(m) {
                    Ok(()) | Err(Error::StepPeerNotFound) | Err(Error::ProposalDropped(_)) => {}
                    Err(e) => return Err(format!("step failed: {e}")),
                }
            }
        }
        self.handle_readies(crash_mid_ready)
    }

    fn handle_readies(&mut self, crash_mid_ready: f64) -> Result<(), Violation> {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            if let Some(n) = self.nodes.get_mut(&id) {
                let was_up = n.is_up();
                n.handle_ready(&mut self.net, &mut self.rng, &mut self.checker, self.now, crash_mid_ready)?;
                if was_up && !n.is_up() && !n.removed {
                    self.crashes += 1;
                }
                for removed in n.removed_ids.drain(..) {
                    self.net.refuse(removed);
                }
            }
        }
        Ok(())
    }

    /// Tells senders what the transport would: snapshot outcomes and
    /// unreachable peers.
    fn report_transport(&mut self) -> Result<(), Violation> {
        while let Some(o) = self.net.snapshot_outcomes.pop_front() {
            if let Some(raw) = self.nodes.get_mut(&o.from).and_then(|n| n.raw_mut()) {
                let status = if o.delivered { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
                raw.report_snapshot(o.to, status).map_err(|e| format!("report_snapshot: {e}"))?;
            }
        }
        let unreachable: BTreeSet<(u64, u64)> = self.net.unreachable.drain(..).collect();
        for (from, to) in unreachable {
            if let Some(raw) = self.nodes.get_mut(&from).and_then(|n| n.raw_mut()) {
                raw.report_unreachable(to).map_err(|e| format!("report_unreachable: {e}"))?;
            }
        }
        Ok(())
    }

    fn tick_all(&mut self) -> Result<(), Violation> {
        for n in self.nodes.values_mut() {
            if let Some(raw) = n.raw_mut() {
                raw.tick().map_err(|e| format!("tick failed: {e}"))?;
            }
        }
        Ok(())
    }

    /// Heals every fault and waits for a leader and for every member to
    /// apply every acknowledged write. Returns the ticks it took.
    fn converge(&mut self) -> Result<u64, Violation> {
        self.net.heal();
        self.net.faults = None;
        let down: Vec<u64> = self.nodes.iter().filter(|(_, n)| !n.is_up() && !n.removed).map(|(&id, _)| id).collect();
        for id in down {
            self.restart(id)?;
        }
        let start = self.now;
        for t in 0..LIVENESS_TICKS {
            self.now = start + 1 + t;
            self.deliver(0.0)?;
            self.tick_all()?;
            self.deliver(0.0)?;
            let Some(l) = self.leader() else { continue };
            let must_apply = self.checker.max_acked_index;
            let Some(cs) = self.nodes.get(&l).and_then(|n| n.raw()).map(|r| r.status().conf_state) else { continue };
            let members: BTreeSet<u64> = cs
                .voters
                .iter()
                .chain(&cs.learners)
                .chain(&cs.voters_outgoing)
                .chain(&cs.learners_next)
                .copied()
                .collect();
            let leader_term = self.nodes.get(&l).and_then(|n| n.raw()).map_or(0, |r| r.raft.term);
            let all_caught_up = members.iter().all(|id| {
                self.nodes.get(id).is_some_and(|n| {
                    n.is_up()
                        && n.sm.applied >= must_apply
                        && n.raw().is_some_and(|r| r.raft.term == leader_term && r.raft.leader_id == l)
                })
            });
            if all_caught_up && self.leader_unique(l, &members) {
                return Ok(t + 1);
            }
        }
        let states: Vec<String> = self
            .nodes
            .values()
            .map(|n| match n.raw() {
                Some(r) => format!(
                    "{}: {:?} term {} leader {} applied {} commit {} last {}",
                    n.id,
                    r.raft.role,
                    r.raft.term,
                    r.raft.leader_id,
                    n.sm.applied,
                    r.raft.committed(),
                    r.raft.last_index()
                ),
                None => format!("{}: down (removed: {})", n.id, n.removed),
            })
            .collect();
        Err(format!(
            "liveness: no convergence within {LIVENESS_TICKS} ticks after healing (max acked index {}); {}",
            self.checker.max_acked_index,
            states.join("; ")
        ))
    }

    /// No other member leads or campaigns. Removed members that never
    /// learned of it are ignored: the transport refuses them.
    fn leader_unique(&self, l: u64, members: &BTreeSet<u64>) -> bool {
        members
            .iter()
            .filter_map(|id| self.nodes.get(id))
            .filter_map(|n| n.raw())
            .all(|r| r.raft.id == l || (r.raft.role != StateRole::Leader && r.raft.role != StateRole::Candidate))
    }
}
