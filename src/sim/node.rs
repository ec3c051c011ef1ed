//! One simulated node: a `RawNode` over in-memory storage that survives
//! crashes, the register state machine, and the client operations waiting on
//! it. `handle_ready` carries out the Ready/advance contract exactly as a
//! real node must, and reports every step to the checker.

use super::checker::{Checker, Violation};
use super::network::Network;
use super::state_machine::{Put, Registers};
use crate::proto::raftpb::{ConfState, EntryType};
use crate::raft::{Config, Error, MemStorage, RawNode, StateRole, Storage};
use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// A read waiting for its read index, then for the state machine.
#[derive(Debug, Clone, Copy)]
struct PendingRead {
    key: u8,
    invoked: u64,
    index: Option<u64>,
}

pub struct SimNode {
    pub id: u64,
    raw: Option<RawNode<MemStorage>>,
    /// The persisted storage while the node is down.
    disk: Option<MemStorage>,
    pub sm: Registers,
    /// The configuration as of `sm.applied`.
    pub conf_state: ConfState,
    /// Whether a configuration applied here ever contained this node.
    member: bool,
    /// Removed from the configuration: stopped for good.
    pub removed: bool,
    config: Config,
    /// Client writes proposed here: op -> key.
    proposals: BTreeMap<u64, u8>,
    reads: BTreeMap<u64, PendingRead>,
    pub snapshots_installed: u64,
    pub conf_changes_applied: u64,
    /// Ids this node saw leave the configuration (committed, so for good).
    pub removed_ids: Vec<u64>,
}

fn in_conf(cs: &ConfState, id: u64) -> bool {
    cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).chain(&cs.learners_next).any(|&x| x == id)
}

/// Appends to `out` the members of `cur` missing from `next`.
fn note_removals(cur: &ConfState, next: &ConfState, out: &mut Vec<u64>) {
    for &id in cur.voters.iter().chain(&cur.learners).chain(&cur.voters_outgoing).chain(&cur.learners_next) {
        if !in_conf(next, id) {
            out.push(id);
        }
    }
}

impl SimNode {
    /// A node starting from `storage` (bootstrapped, or empty for a node
    /// that joins later).
    pub fn new(config: Config, storage: MemStorage) -> Result<SimNode, Violation> {
        let mut n = SimNode {
            id: config.id,
            raw: None,
            disk: Some(storage),
            sm: Registers::default(),
            conf_state: ConfState::default(),
            member: false,
            removed: false,
            config,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            snapshots_installed: 0,
            conf_changes_applied: 0,
            removed_ids: Vec::new(),
        };
        n.restart()?;
        Ok(n)
    }

    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }

    pub fn raw(&self) -> Option<&RawNode<MemStorage>> {
        self.raw.as_ref()
    }

    pub fn raw_mut(&mut self) -> Option<&mut RawNode<MemStorage>> {
        self.raw.as_mut()
    }

    pub fn is_leader(&self) -> bool {
        self.raw.as_ref().is_some_and(|r| r.is_leader())
    }

    /// Loses everything not persisted.
    pub fn crash(&mut self) {
        if let Some(raw) = self.raw.take() {
            self.disk = Some(raw.into_store());
        }
        // Client operations in flight here become indeterminate.
        self.proposals.clear();
        self.reads.clear();
    }

    /// Starts again from the persisted state.
    pub fn restart(&mut self) -> Result<(), Violation> {
        let Some(storage) = self.disk.take() else { return Ok(()) };
        let snap = storage.snapshot(0, 0).map_err(|e| format!("node {}: no snapshot: {e}", self.id))?;
        let meta = snap.metadata.clone().unwrap_or_default();
        self.sm = Registers::restore(&snap.data).ok_or_else(|| format!("node {}: undecodable snapshot", self.id))?;
        if self.sm.applied != meta.index {
            return Err(format!(
                "node {}: snapshot state at {} but metadata at {}",
                self.id, self.sm.applied, meta.index
            ));
        }
        self.conf_state = meta.conf_state.unwrap_or_default();
        self.member = in_conf(&self.conf_state, self.id);
        let mut config = self.config.clone();
        config.applied = meta.index;
        let raw = RawNode::new(&config, storage).map_err(|e| format!("node {}: restart failed: {e}", self.id))?;
        self.raw = Some(raw);
        Ok(())
    }

    /// Stops a removed node for good.
    fn stop_removed(&mut self) {
        self.crash();
        self.removed = true;
    }

    /// Proposes a client write. Returns whether the core accepted it.
    pub fn propose(&mut self, op: u64, key: u8) -> Result<bool, Violation> {
        let Some(raw) = self.raw.as_mut() else { return Ok(false) };
        match raw.propose(Put { op, key }.encode()) {
            Ok(()) => {
                self.proposals.insert(op, key);
                Ok(true)
            }
            Err(Error::ProposalDropped(_)) => Ok(false),
            Err(e) => Err(format!("node {}: propose failed: {e}", self.id)),
        }
    }

    /// Starts a linearizable read. Returns whether the core accepted it.
    pub fn read(&mut self, op: u64, key: u8, invoked: u64) -> Result<bool, Violation> {
        let Some(raw) = self.raw.as_mut() else { return Ok(false) };
        match raw.read_index(Bytes::copy_from_slice(&op.to_be_bytes())) {
            Ok(()) => {
                self.reads.insert(op, PendingRead { key, invoked, index: None });
                Ok(true)
            }
            Err(Error::ProposalDropped(_)) => Ok(false),
            Err(e) => Err(format!("node {}: read_index failed: {e}", self.id)),
        }
    }

    /// Makes a snapshot of the applied state and compacts the log before it,
    /// keeping `keep` entries.
    pub fn compact(&mut self, keep: u64) -> Result<bool, Violation> {
        let applied = self.sm.applied;
        let Some(raw) = self.raw.as_mut() else { return Ok(false) };
        let snap_index = raw.store().snapshot(0, 0).ok().and_then(|s| s.metadata).map_or(0, |m| m.index);
        if applied <= snap_index + 5 {
            return Ok(false);
        }
        self.snapshot_now()?;
        let Some(raw) = self.raw.as_mut() else { return Ok(false) };
        let store = raw.store_mut();
        let to = applied.saturating_sub(keep);
        if to > store.first_index() {
            store.compact(to).map_err(|e| format!("node {}: compact: {e}", self.id))?;
        }
        Ok(true)
    }

    /// Makes a snapshot of the applied state (the log is kept).
    fn snapshot_now(&mut self) -> Result<(), Violation> {
        let (applied, data, cs) = (self.sm.applied, self.sm.snapshot(), self.conf_state.clone());
        let Some(raw) = self.raw.as_mut() else { return Ok(()) };
        let store = raw.store_mut();
        let snap_index = store.snapshot(0, 0).ok().and_then(|s| s.metadata).map_or(0, |m| m.index);
        if applied > snap_index {
            store.create_snapshot(applied, Some(cs), data).map_err(|e| format!("node {}: snapshot: {e}", self.id))?;
        }
        Ok(())
    }

    /// Carries out every pending Ready. `crash_mid_ready` is the chance of
    /// crashing after sending the immediate messages but before persisting.
    pub fn handle_ready(
        &mut self,
        net: &mut Network,
        rng: &mut ChaCha8Rng,
        checker: &mut Checker,
        now: u64,
        crash_mid_ready: f64,
    ) -> Result<(), Violation> {
        loop {
            let id = self.id;
            let Some(raw) = self.raw.as_mut() else { return Ok(()) };
            if !raw.has_ready() {
                break;
            }
            let rd = raw.ready().map_err(|e| format!("node {id}: ready failed: {e}"))?;
            if let Some(ss) = rd.soft_state {
                if ss.role == StateRole::Leader {
                    let term = raw.raft.term;
                    checker.observe_leader(term, id)?;
                    let first = raw.raft.first_index();
                    checker.check_leader_completeness(id, first, |i| raw.raft.log_term(i))?;
                }
            }
            for m in rd.messages {
                net.send(m, now, rng);
            }
            if crash_mid_ready > 0.0 && rng.random_bool(crash_mid_ready) {
                self.crash();
                return Ok(());
            }

            // Persist: snapshot, entries, hard state.
            let store = raw.store_mut();
            if let Some(snap) = &rd.snapshot {
                store.apply_snapshot(snap.clone()).map_err(|e| format!("node {id}: apply snapshot: {e}"))?;
                let meta = snap.metadata.clone().unwrap_or_default();
                self.sm = Registers::restore(&snap.data).ok_or_else(|| format!("node {id}: undecodable snapshot"))?;
                checker.observe_applied(id, self.sm.applied, self.sm.hash)?;
                let cs = meta.conf_state.unwrap_or_default();
                note_removals(&self.conf_state, &cs, &mut self.removed_ids);
                self.conf_state = cs;
                self.member |= in_conf(&self.conf_state, id);
                self.snapshots_installed += 1;
            }
            if let Some(first) = rd.entries.first() {
                let prev_term = store
                    .term(first.index - 1)
                    .map_err(|e| format!("node {id}: term of {} before append: {e}", first.index - 1))?;
                checker.observe_append(id, prev_term, &rd.entries)?;
                store.append(&rd.entries).map_err(|e| format!("node {id}: append: {e}"))?;
            }
            if let Some(hs) = &rd.hard_state {
                store.set_hard_state(*hs);
                checker.observe_persisted_commit(id, hs.commit)?;
            }
            for m in rd.persisted_messages {
                net.send(m, now, rng);
            }

            // Apply.
            let mut removed = false;
            for e in &rd.committed_entries {
                checker.observe_committed(id, e)?;
                if e.entry_type() == EntryType::EntryNormal {
                    if let Some(put) = self.sm.apply(e.index, e.term, &e.data) {
                        if self.proposals.remove(&put.op).is_some() {
                            checker.write_acked(put.key, e.index);
                        }
                    }
                } else {
                    let cs = raw.apply_conf_change(e).map_err(|err| {
                        format!("node {id}: committed conf change at {} failed to apply: {err}", e.index)
                    })?;
                    self.sm.skip(e.index, e.term, &e.data);
                    self.conf_changes_applied += 1;
                    let now_member = in_conf(&cs, id);
                    removed |= self.member && !now_member;
                    self.member |= now_member;
                    note_removals(&self.conf_state, &cs, &mut self.removed_ids);
                    self.conf_state = cs;
                }
                checker.observe_applied(id, self.sm.applied, self.sm.hash)?;
            }
            for rs in rd.read_states {
                let Ok(raw_op) = <[u8; 8]>::try_from(rs.request_ctx.as_ref()) else {
                    return Err(format!("node {id}: read state with a foreign context"));
                };
                if let Some(r) = self.reads.get_mut(&u64::from_be_bytes(raw_op)) {
                    r.index = Some(rs.index);
                }
            }
            raw.advance().map_err(|e| format!("node {id}: advance failed: {e}"))?;
            if removed {
                self.stop_removed();
                return Ok(());
            }
            if raw.store().take_snapshot_request() {
                self.snapshot_now()?;
            }
        }
        self.serve_reads(checker)
    }

    /// Serves the reads whose read index has been applied.
    fn serve_reads(&mut self, checker: &mut Checker) -> Result<(), Violation> {
        let applied = self.sm.applied;
        let ready: Vec<u64> =
            self.reads.iter().filter(|(_, r)| r.index.is_some_and(|i| i <= applied)).map(|(&op, _)| op).collect();
        for op in ready {
            if let Some(r) = self.reads.remove(&op) {
                let value = self.sm.values.get(&r.key).copied().unwrap_or_default();
                checker.read_completed(self.id, r.key, r.invoked, value)?;
            }
        }
        Ok(())
    }
}
