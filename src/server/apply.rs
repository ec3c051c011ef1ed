//! The apply thread: applies committed entries to the state machine, in
//! order, one RocksDB batch per run of entries with the consistent index in
//! the same batch (an entry at or below the stored consistent index was
//! applied before a crash and is skipped). It answers the clients of this
//! member's proposals, releases linearizable reads once their read index is
//! applied, and asks for log compaction every `snapshot_count` entries.
//!
//! Never blocks on a client, never talks to peers.

use super::msgs::{ApplyMsg, Control, ReadJob, ReadKind};
use super::respond::Responder;
use super::status::NodeStatus;
use super::wait::WaitRegistry;
use crate::api::ApiError;
use crate::mvcc::{ApplyBatch, KvStore, MvccError};

/// A request's error as the client's answer, or (storage failures) as a
/// reason to stop the node: replicas must never diverge.
fn mvcc_error(e: MvccError) -> Result<ApiError, MvccError> {
    if e.code() == ErrorCode::Internal {
        Err(e)
    } else {
        Ok(ApiError::new(e.code(), e.to_string()))
    }
}
use super::doorbell::{Doorbell, RingingSender};
use crate::proto::internalpb::{internal_request, InternalRequest};
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::proto::raftpb::{ConfState, Entry, EntryType};
use crate::storage::raft_log::put_applied_conf_state;
use crate::storage::Db;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use prost::Message as _;
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

/// The outcome of one request, for the client waiting on this member.
struct Outcome {
    id: u64,
    result: Result<Body, ApiError>,
    /// A compaction with `physical: true` is answered only once the old
    /// revisions are gone.
    wait_physical: Option<i64>,
}

impl ApplyLoop {
    /// Runs until the raft thread hangs up. An error means the state machine
    /// could not be written: the node must stop.
    pub fn run(self) -> Result<(), String> {
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

    fn apply_entries(&self, entries: &[Entry], conf_states: Vec<(u64, ConfState)>) -> Result<(), String> {
        let conf_states: HashMap<u64, ConfState> = conf_states.into_iter().collect();
        let mut batch = self.kv.begin();
        // No lease exists until the lessor lands: a put naming one is
        // refused as etcd refuses an unknown lease.
        batch.set_lease_check(|_| false);
        let mut last: Option<(u64, u64)> = None;
        let mut outcomes = Vec::new();
        for e in entries {
            if self.kv.already_applied(e.index) {
                continue;
            }
            last = Some((e.index, e.term));
            match e.entry_type() {
                EntryType::EntryNormal => {
                    if e.data.is_empty() {
                        continue; // a new leader's empty entry
                    }
                    match InternalRequest::decode(e.data.clone()) {
                        Ok(req) => {
                            let outcome = self.apply_request(&mut batch, &req)?;
                            if let Some(o) = outcome.filter(|_| req.member_id == self.member_id) {
                                outcomes.push(o);
                            }
                        }
                        // Every member skips it alike: the state stays equal.
                        Err(err) => log::error!("entry {} does not decode ({err}); skipped", e.index),
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    if let Some(cs) = conf_states.get(&e.index) {
                        put_applied_conf_state(&self.db, batch.write_batch(), cs);
                        super::membership::record(&self.db, batch.write_batch(), e, cs);
                    }
                }
            }
        }
        let Some((index, term)) = last else { return Ok(()) };
        batch.commit(index, term).map_err(|e| format!("committing applied entries up to {index}: {e}"))?;
        self.status.set_applied(index);
        for o in outcomes {
            let Some(responder) = self.wait.take(o.id) else { continue };
            match (o.result, o.wait_physical) {
                (Ok(body), Some(rev)) => self.answer_after_physical_compaction(responder, body, rev),
                (result, _) => responder.answer(result),
            }
        }
        Ok(())
    }

    /// Applies one request. Request errors (compacted, key not found...)
    /// are the client's answer; storage failures stop the node. `None` for
    /// the member's own bookkeeping, which no client waits for.
    fn apply_request(&self, batch: &mut ApplyBatch<'_>, req: &InternalRequest) -> Result<Option<Outcome>, String> {
        let status = &self.status;
        let mut wait_physical = None;
        let result = match &req.body {
            Some(internal_request::Body::Put(p)) => batch.put(p).map(|(mut r, _)| {
                r.header = Some(status.header(r.header.map_or(0, |h| h.revision)));
                Body::Put(r)
            }),
            Some(internal_request::Body::DeleteRange(d)) => batch.delete_range(d).map(|(mut r, _)| {
                r.header = Some(status.header(r.header.map_or(0, |h| h.revision)));
                Body::DeleteRange(r)
            }),
            Some(internal_request::Body::Txn(t)) => batch.txn(t).map(|(mut r, _)| {
                r.header = Some(status.header(r.header.map_or(0, |h| h.revision)));
                Body::Txn(r)
            }),
            Some(internal_request::Body::Compaction(c)) => batch.compact(c).map(|mut r| {
                r.header = Some(status.header(r.header.map_or(0, |h| h.revision)));
                if c.physical {
                    wait_physical = Some(c.revision);
                }
                Body::Compact(r)
            }),
            Some(internal_request::Body::MemberAttributes(a)) => {
                super::membership::set_attributes(&self.db, batch.write_batch(), a);
                return Ok(None);
            }
            // Every member answers alike, so the state stays equal.
            Some(_) | None => {
                let e = ApiError::new(ErrorCode::NotImplemented, "raftkv: request kind not implemented yet");
                return Ok(Some(Outcome { id: req.id, result: Err(e), wait_physical: None }));
            }
        };
        let result = match result {
            Ok(b) => Ok(b),
            Err(e) => Err(mvcc_error(e).map_err(|fatal| format!("applying request {:x}: {fatal}", req.id))?),
        };
        Ok(Some(Outcome { id: req.id, result, wait_physical }))
    }

    /// Answers a physical compaction from a read worker, which waits for the
    /// background removal to finish.
    fn answer_after_physical_compaction(&self, responder: Responder, body: Body, revision: i64) {
        let Body::Compact(response) = body else { return responder.respond(body) };
        let job = ReadJob { kind: ReadKind::PhysicalCompaction { revision, response }, responder };
        if let Err(e) = self.reads.send(job) {
            e.0.responder.fail(ApiError::of(ErrorCode::Stopped));
        }
    }
}
