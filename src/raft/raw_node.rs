//! The application's handle on the consensus core: inputs (`tick`, `step`,
//! `propose`, ...) and the `Ready` / `advance` contract for outputs.
//!
//! The contract, once per turn:
//! 1. `ready()` hands out what to do. Send `messages` at once (they include
//!    the leader's appends, sent while it persists its own copy).
//! 2. Persist `snapshot`, `entries` and `hard_state`, in one synced write
//!    when `must_sync`.
//! 3. Send `persisted_messages` (responses that vouch for what was just
//!    persisted).
//! 4. Apply `snapshot` and `committed_entries` to the state machine in order;
//!    call `apply_conf_change` for configuration-change entries.
//! 5. `advance()`.
//!
//! Never does I/O itself, and never panics on input from outside.

use super::config::Config;
use super::errors::{Error, Result};
use super::leader::decode_conf_change;
use super::raft_core::{new_message, Raft, SoftState, StateRole, NONE};
use super::read_only::ReadState;
use super::status::Status;
use super::storage::Storage;
use crate::proto::raftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot,
};
use bytes::Bytes;
use prost::Message as _;

/// What the application must do next; see the module documentation.
#[derive(Debug, Default, PartialEq)]
pub struct Ready {
    /// Leader and role, when they changed.
    pub soft_state: Option<SoftState>,
    /// Term, vote and commit index to persist, when they changed.
    pub hard_state: Option<HardState>,
    /// Confirmed read-index requests.
    pub read_states: Vec<ReadState>,
    /// Entries to persist (append, truncating any conflicting suffix).
    pub entries: Vec<Entry>,
    /// A snapshot from the leader to persist and apply.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply, in order.
    pub committed_entries: Vec<Entry>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Messages to send only after this Ready was persisted.
    pub persisted_messages: Vec<Message>,
    /// Whether the write must be synced: new entries, or a new term or vote.
    /// A changed commit index alone may be written lazily.
    pub must_sync: bool,
}

impl Ready {
    /// Whether anything must be persisted.
    pub fn needs_persisting(&self) -> bool {
        !self.entries.is_empty() || self.hard_state.is_some() || self.snapshot.is_some()
    }
}

/// The outcome of sending a snapshot, reported by the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStatus {
    Finish,
    Failure,
}

/// What the last `ready()` handed out, confirmed by `advance()`.
#[derive(Debug, Default)]
struct Handed {
    last_entry: Option<(u64, u64)>,
    snapshot_index: Option<u64>,
    last_committed: Option<u64>,
}

pub struct RawNode<S: Storage> {
    pub raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
    /// This node's own acknowledgements, stepped once persisted.
    steps_on_advance: Vec<Message>,
    handed: Option<Handed>,
}

impl<S: Storage> RawNode<S> {
    pub fn new(config: &Config, store: S) -> Result<RawNode<S>> {
        let raft = Raft::new(config, store)?;
        let prev_soft_state = raft.soft_state();
        let prev_hard_state = raft.hard_state();
        Ok(RawNode { raft, prev_soft_state, prev_hard_state, steps_on_advance: Vec::new(), handed: None })
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) -> Result<()> {
        self.raft.tick()
    }

    /// Starts an election now (if this node may campaign).
    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(new_message(NONE, MessageType::MsgHup))
    }

    /// Proposes one entry.
    pub fn propose(&mut self, data: Bytes) -> Result<()> {
        self.propose_batch(vec![data])
    }

    /// Proposes several entries as one append: one log write and one message
    /// per follower for the whole batch.
    pub fn propose_batch(&mut self, data: Vec<Bytes>) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut m = new_message(NONE, MessageType::MsgProp);
        m.from = self.raft.id;
        m.entries = data.into_iter().map(|data| Entry { data, ..Default::default() }).collect();
        self.raft.step(m)
    }

    /// Proposes a single-node configuration change.
    pub fn propose_conf_change(&mut self, cc: &ConfChange) -> Result<()> {
        self.propose_conf_entry(EntryType::EntryConfChange, cc.encode_to_vec().into())
    }

    /// Proposes a configuration change of any kind (joint consensus when it
    /// changes more than one voter, or when asked).
    pub fn propose_conf_change_v2(&mut self, cc: &ConfChangeV2) -> Result<()> {
        self.propose_conf_entry(EntryType::EntryConfChangeV2, cc.encode_to_vec().into())
    }

    fn propose_conf_entry(&mut self, t: EntryType, data: Bytes) -> Result<()> {
        let mut m = new_message(NONE, MessageType::MsgProp);
        m.from = self.raft.id;
        m.entries = vec![Entry { entry_type: t as i32, data, ..Default::default() }];
        self.raft.step(m)
    }

    /// Applies a committed configuration-change entry; returns the new
    /// configuration, to be persisted with the entry's effects. A change that
    /// cannot apply (which a leader never proposes) is an error and changes
    /// nothing.
    pub fn apply_conf_change(&mut self, entry: &Entry) -> Result<ConfState> {
        match decode_conf_change(entry)? {
            Some(cc) => self.raft.apply_conf_change(&cc),
            None => Err(Error::InvalidConfChange("entry is not a configuration change".into())),
        }
    }

    /// Asks for a read index: a `ReadState` carrying `ctx` appears in a later
    /// `Ready` once this node (leader or not) knows an index that reflects
    /// every write acknowledged before the request.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<()> {
        let mut m = new_message(NONE, MessageType::MsgReadIndex);
        m.entries = vec![Entry { data: ctx, ..Default::default() }];
        self.raft.step(m)
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: u64) -> Result<()> {
        let mut m = new_message(NONE, MessageType::MsgTransferLeader);
        m.from = transferee;
        self.raft.step(m)
    }

    /// Feeds a message received from a peer. Local-only message types and
    /// unknown types are refused, as are responses from non-members.
    pub fn step(&mut self, m: Message) -> Result<()> {
        let t = MessageType::try_from(m.msg_type)
            .map_err(|_| Error::InvalidMessage(format!("unknown message type {}", m.msg_type)))?;
        if matches!(
            t,
            MessageType::MsgHup
                | MessageType::MsgBeat
                | MessageType::MsgUnreachable
                | MessageType::MsgSnapStatus
                | MessageType::MsgCheckQuorum
        ) {
            return Err(Error::StepLocalMsg);
        }
        if m.from == NONE {
            return Err(Error::InvalidMessage(format!("{t:?} without a sender")));
        }
        // Requests (proposals, reads, transfers) may come back to the node
        // that made them; anything else from our own id would be answered
        // to ourselves.
        let is_request = matches!(t, MessageType::MsgProp | MessageType::MsgReadIndex | MessageType::MsgTransferLeader);
        if !is_request && m.from == self.raft.id {
            return Err(Error::InvalidMessage(format!("{t:?} from this node's own id")));
        }
        // Only requests travel without a term; anything else without one
        // would bypass every term check in Raft::step.
        if !is_request && m.term == 0 {
            return Err(Error::InvalidMessage(format!("{t:?} from {:x} without a term", m.from)));
        }
        // No entry can have index u64::MAX: nothing could follow it, and the
        // log arithmetic (next index, snapshot offset) would overflow.
        let snapshot_index = m.snapshot.as_ref().and_then(|s| s.metadata.as_ref()).map_or(0, |md| md.index);
        if [m.index, m.commit, m.reject_hint, snapshot_index].contains(&u64::MAX) {
            return Err(Error::InvalidMessage(format!("{t:?} from {:x} with an index out of range", m.from)));
        }
        let is_response = matches!(
            t,
            MessageType::MsgAppResp
                | MessageType::MsgVoteResp
                | MessageType::MsgHeartbeatResp
                | MessageType::MsgPreVoteResp
        );
        if is_response && !self.raft.trk.progress.contains_key(&m.from) {
            return Err(Error::StepPeerNotFound);
        }
        self.raft.step(m)
    }

    /// The transport could not reach `id`.
    pub fn report_unreachable(&mut self, id: u64) -> Result<()> {
        let mut m = new_message(NONE, MessageType::MsgUnreachable);
        m.from = id;
        self.raft.step(m)
    }

    /// A snapshot sent to `id` finished or failed.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) -> Result<()> {
        let mut m = new_message(NONE, MessageType::MsgSnapStatus);
        m.from = id;
        m.reject = status == SnapshotStatus::Failure;
        self.raft.step(m)
    }

    /// Whether `ready()` would hand out anything.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_soft_state
            || r.hard_state() != self.prev_hard_state
            || r.raft_log.next_unstable_snapshot().is_some()
            || r.raft_log.has_next_unstable_entries()
            || r.raft_log.has_next_committed_entries()
            || !r.msgs.is_empty()
            || !r.msgs_after_append.is_empty()
            || !r.read_states.is_empty()
    }

    /// What to do next; see the module documentation. Call `advance` once
    /// it is done.
    pub fn ready(&mut self) -> Result<Ready> {
        let committed_entries = self.raft.raft_log.next_committed_entries()?;
        let r = &mut self.raft;
        let mut rd = Ready {
            entries: r.raft_log.next_unstable_entries().to_vec(),
            snapshot: r.raft_log.next_unstable_snapshot().cloned(),
            committed_entries,
            messages: std::mem::take(&mut r.msgs),
            read_states: std::mem::take(&mut r.read_states),
            ..Default::default()
        };
        for m in std::mem::take(&mut r.msgs_after_append) {
            if m.to == r.id {
                self.steps_on_advance.push(m);
            } else {
                rd.persisted_messages.push(m);
            }
        }
        let soft = r.soft_state();
        if soft != self.prev_soft_state {
            rd.soft_state = Some(soft);
            self.prev_soft_state = soft;
        }
        let hard = r.hard_state();
        if hard != self.prev_hard_state {
            rd.must_sync = hard.term != self.prev_hard_state.term || hard.vote != self.prev_hard_state.vote;
            rd.hard_state = Some(hard);
            self.prev_hard_state = hard;
        }
        rd.must_sync |= !rd.entries.is_empty() || rd.snapshot.is_some();

        // Accept: what was handed out is not handed out again.
        r.raft_log.unstable.accept_in_progress();
        let last_committed = rd.committed_entries.last().map(|e| e.index);
        if let Some(index) = last_committed {
            r.raft_log.accept_applying(index);
            r.reduce_uncommitted_size(&rd.committed_entries);
        }
        self.handed = Some(Handed {
            last_entry: rd.entries.last().map(|e| (e.index, e.term)),
            snapshot_index: rd.snapshot.as_ref().and_then(|s| s.metadata.as_ref()).map(|m| m.index),
            last_committed,
        });
        Ok(rd)
    }

    /// The last `Ready` was persisted and applied.
    pub fn advance(&mut self) -> Result<()> {
        let handed = self.handed.take().unwrap_or_default();
        if let Some((index, term)) = handed.last_entry {
            self.raft.raft_log.stable_to(index, term);
        }
        if let Some(index) = handed.snapshot_index {
            self.raft.raft_log.stable_snap_to(index);
            self.raft.applied_to(index)?;
        }
        if let Some(index) = handed.last_committed {
            self.raft.applied_to(index)?;
        }
        for m in std::mem::take(&mut self.steps_on_advance) {
            self.raft.step(m)?;
        }
        Ok(())
    }

    /// This member lost its persistent state (a wiped data directory): it
    /// neither votes nor campaigns until a leader has caught it up.
    pub fn mark_lost_state(&mut self) {
        self.raft.mark_lost_state();
    }

    /// Whether this member is still catching up after losing its state.
    pub fn has_lost_state(&self) -> bool {
        self.raft.has_lost_state()
    }

    /// On the leader: follower `id` lost its persistent state, so its
    /// progress starts over. Ignored elsewhere.
    pub fn forget_follower_progress(&mut self, id: u64) -> Result<()> {
        self.raft.forget_follower_progress(id)
    }

    /// A summary of this node's state.
    pub fn status(&self) -> Status {
        Status::of(&self.raft)
    }

    pub fn is_leader(&self) -> bool {
        self.raft.role == StateRole::Leader
    }

    pub fn store(&self) -> &S {
        self.raft.store()
    }

    pub fn store_mut(&mut self) -> &mut S {
        self.raft.store_mut()
    }

    /// Gives the storage back, dropping every unpersisted state: what a
    /// crash leaves behind.
    pub fn into_store(self) -> S {
        self.raft.raft_log.store
    }
}
