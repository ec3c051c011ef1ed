//! The apply thread: applies committed entries to the state machine, in
//! order, one RocksDB batch per run of entries with the consistent index in
//! the same batch (an entry at or below the stored consistent index was
//! applied before a crash and is skipped). Each entry is decoded once and
//! routed to the applier of its domain (`router.rs`: kv, lease,
//! membership, maintenance); after the batch commits, the waiters of this
//! member's proposals are completed and the appliers publish what they
//! produced (events to the watch dispatcher). It also releases
//! linearizable reads once their read index is applied, and asks for log
//! compaction every `snapshot_count` entries.
//!
//! Never blocks on a client or a watcher, never talks to peers.

pub mod alarm;
pub mod kv;
pub mod lease;
pub mod membership;
pub mod router;

use super::msgs::{ApplyMsg, Control, ReadJob, ReadKind};
use super::status::NodeStatus;
use crate::mvcc::KvStore;
use crate::plumbing::doorbell::{Doorbell, RingingSender};
use crate::plumbing::errors::ApiError;
use crate::plumbing::wait::{Completion, WaitRegistry};
use crate::proto::internalpb::InternalRequest;
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::proto::raftpb::{ConfState, Entry, EntryType};
use crate::storage::Db;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use prost::Message as _;
use router::{Outcome, Router};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The longest sleep without a message (a ring ends it at once).
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Entries folded into one RocksDB batch at most.
const MAX_ENTRIES_PER_BATCH: usize = 4096;

pub struct ApplyLoop {
    pub kv: Arc<KvStore>,
    pub db: Arc<Db>,
    pub router: Router,
    pub rx: Receiver<ApplyMsg>,
    /// Rung by the raft thread's `RingingSender` of `rx`.
    pub bell: Arc<Doorbell>,
    /// The raft thread's, rung when it holds messages back for want of
    /// room (`raft_backlog`) and this thread takes one.
    pub raft_bell: Arc<Doorbell>,
    pub raft_backlog: Arc<AtomicBool>,
    pub wait: Arc<WaitRegistry>,
    pub status: Arc<NodeStatus>,
    /// To the read workers.
    pub reads: Sender<ReadJob>,
    /// To the raft thread.
    pub control: RingingSender<Control>,
    pub member_id: u64,
    pub snapshot_count: u64,
}

impl ApplyLoop {
    /// Runs until the raft thread hangs up. An error means the state machine
    /// could not be written: the node must stop.
    pub fn run(mut self) -> Result<(), String> {
        self.bell.claim();
        let mut parked: BTreeMap<u64, Vec<ReadJob>> = BTreeMap::new();
        let mut last_compaction_trigger = self.kv.consistent_index();
        let mut pending: Option<ApplyMsg> = None;
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => match self.next_message() {
                    Some(m) => m,
                    None => break,
                },
            };
            match msg {
                ApplyMsg::Entries { mut entries, mut conf_states } => {
                    // Fold the following runs of entries into the same batch.
                    while entries.len() < MAX_ENTRIES_PER_BATCH {
                        match self.try_next_message() {
                            Ok(ApplyMsg::Entries { entries: more, conf_states: cs }) => {
                                entries.extend(more);
                                conf_states.extend(cs);
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.apply_entries(&entries, conf_states)?;
                }
                ApplyMsg::Reads { index, jobs } => parked.entry(index).or_default().extend(jobs),
                ApplyMsg::Barrier(done) => {
                    let _ = done.send(());
                }
                ApplyMsg::Reloaded => self.router.reload()?,
            }
            self.release_reads(&mut parked);
            let applied = self.kv.consistent_index();
            if applied >= last_compaction_trigger + self.snapshot_count {
                // Compaction removes the only other copy of these entries:
                // make their effects durable first.
                self.db.sync_wal().map_err(|e| format!("syncing the state machine: {e}"))?;
                last_compaction_trigger = applied;
                let _ = self.control.send(Control::Compact(applied));
            }
        }
        // Reads that can no longer be served.
        for (_, jobs) in parked {
            for j in jobs {
                j.responder.fail(ApiError::of(ErrorCode::Stopped));
            }
        }
        self.db.sync_wal().map_err(|e| format!("syncing the state machine: {e}"))?;
        Ok(())
    }

    /// The next message, asleep on the doorbell while there is none; `None`
    /// once the raft thread is gone.
    fn next_message(&self) -> Option<ApplyMsg> {
        loop {
            match self.try_next_message() {
                Ok(m) => return Some(m),
                Err(TryRecvError::Disconnected) => return None,
                // Only a ring ends the wait early; the timeout bounds the
                // damage of a ring that never comes.
                Err(TryRecvError::Empty) => self.bell.wait_timeout(IDLE_WAIT),
            }
        }
    }

    fn try_next_message(&self) -> Result<ApplyMsg, TryRecvError> {
        let m = self.rx.try_recv()?;
        if self.raft_backlog.load(Ordering::SeqCst) {
            self.raft_bell.ring();
        }
        Ok(m)
    }

    fn release_reads(&self, parked: &mut BTreeMap<u64, Vec<ReadJob>>) {
        let applied = self.kv.consistent_index();
        while let Some(entry) = parked.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for job in entry.remove() {
                if let Err(e) = self.reads.send(job) {
                    e.0.responder.fail(ApiError::of(ErrorCode::Stopped));
                }
            }
        }
    }

    fn apply_entries(&mut self, entries: &[Entry], conf_states: Vec<(u64, ConfState)>) -> Result<(), String> {
        let conf_states: HashMap<u64, ConfState> = conf_states.into_iter().collect();
        let kv = self.kv.clone();
        let mut batch = kv.begin();
        self.router.begin(&mut batch);
        let mut last: Option<(u64, u64)> = None;
        let mut outcomes = Vec::new();
        for e in entries {
            if kv.already_applied(e.index) {
                continue;
            }
            last = Some((e.index, e.term));
            let applied = match e.entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => continue, // a new leader's empty entry
                EntryType::EntryNormal => match InternalRequest::decode(e.data.clone()) {
                    Ok(req) => {
                        let mine = req.member_id == self.member_id;
                        self.router.apply_request(&mut batch, &req).map(|o| o.filter(|_| mine))
                    }
                    // Every member skips it alike: the state stays equal.
                    Err(err) => {
                        log::error!("entry {} does not decode ({err}); skipped", e.index);
                        continue;
                    }
                },
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => match conf_states.get(&e.index) {
                    Some(cs) => self.router.apply_conf_change(&mut batch, e, cs),
                    None => continue,
                },
            };
            match applied {
                Ok(Some(o)) => outcomes.push(o),
                Ok(None) => {}
                Err(fatal) => {
                    self.router.aborted();
                    return Err(fatal);
                }
            }
        }
        let Some((index, term)) = last else { return Ok(()) };
        if let Err(e) = batch.commit(index, term) {
            self.router.aborted();
            return Err(format!("committing applied entries up to {index}: {e}"));
        }
        self.status.set_applied(index);
        self.router.committed();
        for o in outcomes {
            self.complete(o);
        }
        Ok(())
    }

    fn complete(&self, o: Outcome) {
        let Some(completion) = self.wait.take(o.id) else { return };
        match (o.result, o.wait_physical, completion) {
            (Ok(body), Some(rev), Completion::Reply(responder)) => {
                self.answer_after_physical_compaction(responder, body, rev)
            }
            (result, _, completion) => completion.complete(result),
        }
    }

    /// Answers a physical compaction from a read worker, which waits for the
    /// background removal to finish.
    fn answer_after_physical_compaction(
        &self,
        responder: crate::plumbing::outbox::Responder,
        body: Body,
        revision: i64,
    ) {
        let Body::Compact(response) = body else { return responder.respond(body) };
        let job = ReadJob { kind: ReadKind::PhysicalCompaction { revision, response }, responder };
        if let Err(e) = self.reads.send(job) {
            e.0.responder.fail(ApiError::of(ErrorCode::Stopped));
        }
    }
}

#[cfg(test)]
mod tests;
