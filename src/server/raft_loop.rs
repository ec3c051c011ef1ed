//! The raft thread: owns the consensus core and its durable log.
//!
//! Each turn it waits, parked on its doorbell, for something to do (a tick,
//! a proposal, a read, a peer message, a control message), drains whatever
//! else is waiting (that batching is the group commit: many proposals, one
//! synced write), then carries out one `Ready`: send what may leave at once
//! (the leader's appends go out while it persists its own copy), hand the
//! committed entries already on disk to the apply thread, persist entries
//! and hard state in one write, send the responses that vouch for them,
//! hand the rest of the committed entries and the confirmed reads to the
//! apply thread in order, advance. It never applies anything and never
//! blocks on a client or a peer.

use super::cluster_view::{ClusterView, PeerProgress, ViewCell};
use super::members;
use super::msgs::{ApplyMsg, Control, Payload, Proposal, ReadJob};
use super::status::NodeStatus;
use crate::mvcc::KvStore;
use crate::plumbing::doorbell::{Doorbell, RingingSender};
use crate::plumbing::notice::{LeaderInfo, Notices};
use crate::plumbing::outbox::Responder;
use crate::plumbing::wait::WaitRegistry;
use crate::plumbing::ApiError;
use crate::proto::etcdserverpb::MoveLeaderResponse;
use crate::proto::internalpb::{internal_request, InternalRequest, MemberAttributes};
use crate::proto::raftkvpb::client_response::Body;
use crate::proto::raftkvpb::ErrorCode;
use crate::proto::raftpb::{ConfState, Entry, EntryType, Message, Snapshot};
use crate::raft::{DropReason, Error as RaftError, RawNode, StateRole, Storage as _};
use crate::storage::Db;
use crate::storage::RaftLogStorage;
use crate::transport::incarnation::Incarnations;
use crate::transport::members::Members;
use crate::transport::{PeerReport, Transport};
use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError, TrySendError};
use prost::Message as _;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Most proposals folded into one append.
const MAX_PROPOSALS_PER_TURN: usize = 4096;
/// Most peer messages stepped per turn before handling a Ready.
const MAX_PEER_MSGS_PER_TURN: usize = 4096;
/// Apply messages queued here (beyond the channel) before proposals are
/// held back.
const APPLY_BACKLOG_LIMIT: usize = 64;
/// Proposals and reads kept while no leader is known.
const MAX_STALLED: usize = 65_536;
/// A member counts as answering if the leader heard from it this recently.
const ACTIVE_WINDOW: Duration = Duration::from_secs(5);
/// How long a removed member keeps running after applying its removal, so
/// the answer to whoever removed it goes out.
const REMOVED_GRACE: Duration = Duration::from_secs(1);
/// Ticks after which an unanswered read-index request is asked again.
const READ_RETRY_TICKS: u64 = 4;

/// The raft thread's channels. Every sender to it is a `RingingSender` of
/// `bell`.
pub struct Channels {
    pub bell: Arc<Doorbell>,
    pub proposals: Receiver<Proposal>,
    pub reads: Receiver<ReadJob>,
    pub control: Receiver<Control>,
    /// What the transport learned about peers.
    pub peer_reports: Receiver<PeerReport>,
    pub peers: Receiver<Message>,
    pub stop: Receiver<()>,
    pub apply: RingingSender<ApplyMsg>,
    /// Raised while apply messages wait here for room in `apply`: the apply
    /// thread then rings `bell` when it takes one.
    pub apply_backlog: Arc<AtomicBool>,
}

/// A MoveLeader request in progress.
struct Transfer {
    to: u64,
    responder: Responder,
    deadline: Instant,
}

struct ReadBatch {
    jobs: Vec<ReadJob>,
    issued_tick: u64,
}

/// What the raft thread shares with the rest of the node.
pub struct Shared {
    pub status: Arc<NodeStatus>,
    pub wait: Arc<WaitRegistry>,
    pub kv: Arc<KvStore>,
    pub db: Arc<Db>,
    pub members: Arc<Members>,
    /// Whether this member lost its data directory (learned from peers).
    pub incarnations: Arc<Incarnations>,
    /// Read workers hold it shared; a snapshot install holds it alone.
    pub gate: Arc<RwLock<()>>,
    /// Where received snapshot images are staged.
    pub snap_dir: PathBuf,
    /// This member's attributes, published through Raft until stored.
    pub attributes: MemberAttributes,
    /// Where leader changes are announced.
    pub leader: Arc<Notices<LeaderInfo>>,
    /// Where the replication view for membership checks is published.
    pub view: Arc<ViewCell>,
}

pub struct RaftLoop {
    raw: RawNode<RaftLogStorage>,
    ch: Channels,
    transport: Box<dyn Transport>,
    status: Arc<NodeStatus>,
    wait: Arc<WaitRegistry>,
    kv: Arc<KvStore>,
    db: Arc<Db>,
    members: Arc<Members>,
    incarnations: Arc<Incarnations>,
    /// The core was told this member lost its state; the persisted flag
    /// comes down once the core says it caught up.
    marked_lost_state: bool,
    gate: Arc<RwLock<()>>,
    snap_dir: PathBuf,
    attributes: MemberAttributes,
    attributes_published: bool,
    leader_notices: Arc<Notices<LeaderInfo>>,
    view: Arc<ViewCell>,
    /// When the leader last saw each member answer (for the membership
    /// checks' view).
    last_heard: std::collections::HashMap<u64, Instant>,
    /// Leadership transfers waiting for their transferee to lead.
    transfers: Vec<Transfer>,
    /// When this member applied its own removal: it stops a little later,
    /// once the apply thread answered whoever asked for it.
    removed_at: Option<Instant>,
    heartbeat: Duration,
    snapshot_catchup_entries: u64,
    apply_backlog: VecDeque<ApplyMsg>,
    /// Proposals waiting for a leader.
    stalled: VecDeque<Proposal>,
    /// Reads not yet given to the core.
    pending_reads: Vec<ReadJob>,
    /// Reads given to the core, by context sequence.
    read_batches: BTreeMap<u64, ReadBatch>,
    next_read_seq: u64,
    ticks: u64,
    leader: u64,
}

impl RaftLoop {
    pub fn new(
        raw: RawNode<RaftLogStorage>,
        ch: Channels,
        transport: Box<dyn Transport>,
        shared: Shared,
        heartbeat: Duration,
        snapshot_catchup_entries: u64,
    ) -> RaftLoop {
        RaftLoop {
            raw,
            ch,
            transport,
            status: shared.status,
            wait: shared.wait,
            kv: shared.kv,
            db: shared.db,
            members: shared.members,
            incarnations: shared.incarnations,
            marked_lost_state: false,
            gate: shared.gate,
            snap_dir: shared.snap_dir,
            attributes: shared.attributes,
            attributes_published: false,
            leader_notices: shared.leader,
            view: shared.view,
            removed_at: None,
            transfers: Vec::new(),
            last_heard: std::collections::HashMap::new(),
            heartbeat,
            snapshot_catchup_entries,
            apply_backlog: VecDeque::new(),
            stalled: VecDeque::new(),
            pending_reads: Vec::new(),
            read_batches: BTreeMap::new(),
            next_read_seq: 1,
            ticks: 0,
            leader: 0,
        }
    }

    /// Runs until told to stop. An error means the node cannot go on (its
    /// storage failed): the caller shuts the node down.
    pub fn run(mut self) -> Result<(), String> {
        // Before the first look at the channels: no ring may be missed.
        self.ch.bell.claim();
        self.notice_lost_state();
        self.publish_status();
        let mut next_tick = Instant::now() + self.heartbeat;
        loop {
            match self.ch.stop.try_recv() {
                Ok(()) | Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= next_tick {
                self.on_tick()?;
                // A late turn does not catch up on missed ticks: they pace
                // elections and heartbeats, and a burst of them would not.
                next_tick += self.heartbeat;
                if next_tick <= now {
                    next_tick = now + self.heartbeat;
                }
            }
            // Hold proposals back while the apply thread is behind.
            let take_proposals = self.apply_backlog.len() < APPLY_BACKLOG_LIMIT;
            let received = self.drain(take_proposals)?;
            self.propose_stalled()?;
            self.issue_reads()?;
            // One Ready can lead to another (this node's own votes and
            // acknowledgements are delivered at advance): handle them all
            // before waiting again.
            while self.raw.has_ready() {
                self.handle_ready()?;
            }
            if self.marked_lost_state && !self.raw.has_lost_state() {
                // Caught up, and what it stepped is persisted by now.
                self.marked_lost_state = false;
                self.incarnations.clear_lost_state()?;
            }
            self.flush_apply_backlog();
            if !received {
                // Every sender rings after a message, and the apply thread
                // rings when it makes room for a held-back backlog.
                self.ch.bell.wait_timeout(next_tick.saturating_duration_since(Instant::now()));
            }
        }
        self.shutdown();
        Ok(())
    }

    /// Takes whatever is waiting, without blocking. Whether anything was.
    fn drain(&mut self, take_proposals: bool) -> Result<bool, String> {
        let mut received = false;
        if take_proposals {
            while self.stalled.len() < MAX_PROPOSALS_PER_TURN {
                match self.ch.proposals.try_recv() {
                    Ok(p) => self.stalled.push_back(p),
                    Err(_) => break,
                }
                received = true;
            }
        }
        while self.pending_reads.len() < MAX_STALLED {
            match self.ch.reads.try_recv() {
                Ok(r) => self.pending_reads.push(r),
                Err(_) => break,
            }
            received = true;
        }
        for _ in 0..MAX_PEER_MSGS_PER_TURN {
            match self.ch.peers.try_recv() {
                Ok(m) => self.step_peer(m)?,
                Err(_) => break,
            }
            received = true;
        }
        while let Ok(c) = self.ch.control.try_recv() {
            self.on_control(c)?;
            received = true;
        }
        while let Ok(r) = self.ch.peer_reports.try_recv() {
            self.on_peer_report(r)?;
            received = true;
        }
        Ok(received)
    }

    /// Raised at start-up if the flag is on disk, or by the handshake that
    /// preceded a peer message, if it told us our data directory was lost:
    /// no vote may go out before the core knows.
    fn notice_lost_state(&mut self) {
        if self.incarnations.take_lost_state_notice() {
            self.raw.mark_lost_state();
            self.marked_lost_state = true;
        }
    }

    fn step_peer(&mut self, m: Message) -> Result<(), String> {
        self.notice_lost_state();
        match self.raw.step(m) {
            Ok(()) => Ok(()),
            Err(RaftError::Storage(e)) => Err(format!("raft storage failed: {e}")),
            Err(e) => {
                // Bad or stale input from a peer: logged, never fatal.
                log::debug!("dropped a peer message: {e}");
                Ok(())
            }
        }
    }

    fn on_control(&mut self, c: Control) -> Result<(), String> {
        match c {
            Control::TransferLeader { to, responder, deadline } => self.transfer_leader(to, responder, deadline),
            Control::Compact(applied) => {
                let to = applied.saturating_sub(self.snapshot_catchup_entries);
                if to >= self.raw.raft.first_index() {
                    self.raw.store_mut().compact(to).map_err(|e| format!("compacting the raft log: {e}"))?;
                    log::info!("compacted the raft log up to {to} (applied {applied})");
                }
            }
        }
        Ok(())
    }

    /// Starts a leadership transfer (the leader only, to a voter) and keeps
    /// the request until the transferee leads or its deadline passes.
    fn transfer_leader(&mut self, to: u64, responder: Responder, deadline: Instant) {
        let r = &self.raw.raft;
        if r.role != StateRole::Leader {
            return responder.fail(ApiError::of(ErrorCode::NotLeader));
        }
        if !r.tracker().progress.get(&to).is_some_and(|p| !p.is_learner) {
            return responder.fail(ApiError::of(ErrorCode::BadLeaderTransferee));
        }
        if to == r.id {
            return responder.answer(Ok(self.moved_leader()));
        }
        if let Err(e) = self.raw.transfer_leader(to) {
            return responder.fail(ApiError::internal(format!("transferring leadership: {e}")));
        }
        self.transfers.push(Transfer { to, responder, deadline });
    }

    /// etcd answers a MoveLeader without a header.
    fn moved_leader(&self) -> Body {
        Body::MoveLeader(MoveLeaderResponse { header: None })
    }

    /// Answers the transfers that ended: their transferee leads, or their
    /// time is up.
    fn settle_transfers(&mut self, now: Instant) {
        if self.transfers.is_empty() {
            return;
        }
        let leader = self.raw.raft.leader_id;
        let answer = self.moved_leader();
        for t in std::mem::take(&mut self.transfers) {
            if leader == t.to {
                t.responder.answer(Ok(answer.clone()));
            } else if now >= t.deadline {
                t.responder.fail(ApiError::new(
                    ErrorCode::Timeout,
                    "etcdserver: request timed out, leader transfer took too long",
                ));
            } else {
                self.transfers.push(t);
            }
        }
    }

    fn on_peer_report(&mut self, r: PeerReport) -> Result<(), String> {
        match r {
            PeerReport::Unreachable(id) => {
                let _ = self.raw.report_unreachable(id);
            }
            PeerReport::Snapshot(id, status) => {
                let _ = self.raw.report_snapshot(id, status);
            }
            PeerReport::LostState(id) => {
                self.raw.forget_follower_progress(id).map_err(|e| format!("restarting a progress: {e}"))?;
            }
            // It knows this member was removed: the entry that removed it
            // never reaches it, as it is no longer replicated to.
            PeerReport::RemovedByPeer(by) => {
                log::warn!("member {by:x} says this member was removed from the cluster");
                self.removed(self.raw.raft.last_index());
            }
        }
        Ok(())
    }

    fn on_tick(&mut self) -> Result<(), String> {
        self.ticks += 1;
        self.raw.tick().map_err(|e| format!("raft tick failed: {e}"))?;
        // The only voter of its cluster cannot lose an election: hold it now
        // instead of after a randomized election timeout.
        let r = &self.raw.raft;
        let cfg = &r.tracker().config.voters;
        let alone = !cfg.is_joint() && cfg.incoming.len() == 1 && cfg.incoming.contains(r.id);
        if alone && r.leader_id == 0 && r.role == StateRole::Follower {
            self.raw.campaign().map_err(|e| format!("raft campaign failed: {e}"))?;
        }
        // Waiters whose proposal was lost (a leader change, a forwarded
        // proposal dropped) are answered here.
        let now = Instant::now();
        let error = if self.raw.raft.leader_id == 0 { ErrorCode::NoLeader } else { ErrorCode::Timeout };
        self.wait.expire(now, &ApiError::of(error));
        // Proposals whose waiter gave up are not worth proposing.
        let wait = &self.wait;
        self.stalled.retain(|p| wait.contains(p.id));
        self.retry_reads();
        self.settle_transfers(now);
        self.publish_view();
        if let Some(at) = self.removed_at {
            if at.elapsed() >= REMOVED_GRACE {
                return Err(format!(
                    "member {:x} was removed from the cluster: it stops (its data directory cannot rejoin; \
                     add the member again with an empty one)",
                    self.status.member_id
                ));
            }
        }
        self.publish_attributes()
    }

    /// Publishes what the membership checks need: the configuration and,
    /// on the leader, every member's progress.
    fn publish_view(&mut self) {
        let r = &self.raw.raft;
        let is_leader = r.role == StateRole::Leader;
        let now = Instant::now();
        // The core clears its `recent_active` flags every election timeout
        // (check-quorum) and sets them again as answers come: a peer counts
        // as answering if it did so within the last `ACTIVE_WINDOW`, as
        // etcd asks its transport about the last 5 s.
        // (The core marks a member just added as recently active before it
        // ever answered: one that never acknowledged an entry is not heard.)
        for (&id, p) in &r.tracker().progress {
            if p.recent_active && p.matched > 0 && is_leader {
                self.last_heard.insert(id, now);
            }
        }
        self.last_heard.retain(|id, _| r.tracker().progress.contains_key(id));
        let heard = &self.last_heard;
        let progress = r
            .tracker()
            .progress
            .iter()
            .map(|(&id, p)| {
                let active = heard.get(&id).is_some_and(|&t| now.duration_since(t) < ACTIVE_WINDOW);
                let seen = PeerProgress { matched: p.matched, active, is_learner: p.is_learner };
                (id, if is_leader { seen } else { PeerProgress { is_learner: p.is_learner, ..Default::default() } })
            })
            .collect();
        self.view.publish(ClusterView { member_id: r.id, is_leader, last_index: r.last_index(), progress });
    }

    /// Proposes this member's attributes (its client URL) until they are
    /// stored, retrying every few election timeouts.
    fn publish_attributes(&mut self) -> Result<(), String> {
        const EVERY_TICKS: u64 = 50;
        if self.attributes_published || self.raw.raft.leader_id == 0 || self.ticks % EVERY_TICKS != 1 {
            return Ok(());
        }
        if members::has_attributes(&self.db, &self.attributes) {
            self.attributes_published = true;
            return Ok(());
        }
        let req = InternalRequest {
            id: 0,
            member_id: self.status.member_id,
            body: Some(internal_request::Body::MemberAttributes(self.attributes.clone())),
        };
        match self.raw.propose(req.encode_to_vec().into()) {
            Ok(()) | Err(RaftError::ProposalDropped(_)) => Ok(()),
            Err(e) => Err(format!("publishing member attributes: {e}")),
        }
    }

    /// Proposes everything waiting, as one batch, if a leader is known.
    fn propose_stalled(&mut self) -> Result<(), String> {
        if self.stalled.is_empty() || self.raw.raft.leader_id == 0 {
            if self.stalled.len() > MAX_STALLED {
                let excess = self.stalled.len() - MAX_STALLED;
                for p in self.stalled.drain(..excess) {
                    if let Some(r) = self.wait.take(p.id) {
                        r.fail(ApiError::of(ErrorCode::TooManyRequests));
                    }
                }
            }
            return Ok(());
        }
        // A membership change goes alone; normal entries up to the next one
        // go as one batch.
        if let Some(Payload::ConfChange(_)) = self.stalled.front().map(|p| &p.payload) {
            let Some(p) = self.stalled.pop_front() else { return Ok(()) };
            let Payload::ConfChange(cc) = &p.payload else { return Ok(()) };
            let r = self.raw.propose_conf_change_v2(cc);
            return self.proposed(vec![p], r);
        }
        let n = self
            .stalled
            .iter()
            .take(MAX_PROPOSALS_PER_TURN)
            .take_while(|p| matches!(p.payload, Payload::Request(_)))
            .count();
        let batch: Vec<Proposal> = self.stalled.drain(..n).collect();
        let data: Vec<Bytes> = batch
            .iter()
            .filter_map(|p| if let Payload::Request(d) = &p.payload { Some(d.clone()) } else { None })
            .collect();
        let r = self.raw.propose_batch(data);
        self.proposed(batch, r)
    }

    /// Deals with the core's verdict on proposals: dropped for want of a
    /// leader, they wait for the next one; refused, their waiters are told.
    fn proposed(&mut self, batch: Vec<Proposal>, r: Result<(), RaftError>) -> Result<(), String> {
        match r {
            Ok(()) => Ok(()),
            Err(RaftError::ProposalDropped(reason)) => {
                match reason {
                    // Wait for the next leader (or the transfer to end).
                    DropReason::NoLeader | DropReason::TransferInProgress => {
                        for p in batch.into_iter().rev() {
                            self.stalled.push_front(p);
                        }
                    }
                    other => {
                        let code = match other {
                            DropReason::UncommittedLimit => ErrorCode::TooManyRequests,
                            DropReason::NotInConfig => ErrorCode::Stopped,
                            _ => ErrorCode::Internal,
                        };
                        for p in batch {
                            if let Some(r) = self.wait.take(p.id) {
                                r.fail(ApiError::new(code, format!("{}", ApiError::of(code))));
                            }
                        }
                    }
                }
                Ok(())
            }
            Err(RaftError::Storage(e)) => Err(format!("raft storage failed: {e}")),
            Err(e) => {
                for p in batch {
                    if let Some(r) = self.wait.take(p.id) {
                        r.fail(ApiError::internal(e.to_string()));
                    }
                }
                Ok(())
            }
        }
    }

    /// Asks the core for one read index covering every read waiting.
    fn issue_reads(&mut self) -> Result<(), String> {
        if self.pending_reads.is_empty() || self.raw.raft.leader_id == 0 {
            return Ok(());
        }
        let seq = self.next_read_seq;
        match self.raw.read_index(Bytes::copy_from_slice(&seq.to_be_bytes())) {
            Ok(()) => {
                self.next_read_seq += 1;
                let jobs = std::mem::take(&mut self.pending_reads);
                self.read_batches.insert(seq, ReadBatch { jobs, issued_tick: self.ticks });
                Ok(())
            }
            // No leader after all: keep them for the next attempt.
            Err(RaftError::ProposalDropped(_)) => Ok(()),
            Err(RaftError::Storage(e)) => Err(format!("raft storage failed: {e}")),
            Err(e) => {
                for j in self.pending_reads.drain(..) {
                    j.responder.fail(ApiError::internal(e.to_string()));
                }
                Ok(())
            }
        }
    }

    /// Read-index requests can be lost with a leader change: ask again.
    fn retry_reads(&mut self) {
        let ticks = self.ticks;
        let stale: Vec<u64> = self
            .read_batches
            .iter()
            .filter(|(_, b)| ticks.saturating_sub(b.issued_tick) >= READ_RETRY_TICKS)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in stale {
            if let Some(b) = self.read_batches.remove(&seq) {
                self.pending_reads.extend(b.jobs);
            }
        }
    }

    fn handle_ready(&mut self) -> Result<(), String> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let rd = self.raw.ready().map_err(|e| format!("raft ready failed: {e}"))?;
        if let Some(ss) = rd.soft_state {
            if ss.leader_id != self.leader {
                log::info!(
                    "member {:x}: leader is now {:x} (term {}, role {:?})",
                    self.status.member_id,
                    ss.leader_id,
                    self.raw.raft.term,
                    ss.role
                );
                self.leader = ss.leader_id;
                self.leader_notices.publish(LeaderInfo {
                    leader: ss.leader_id,
                    term: self.raw.raft.term,
                    is_self: ss.role == StateRole::Leader,
                });
                self.settle_transfers(Instant::now());
                // Reads asked of the old leader may never be answered.
                let batches = std::mem::take(&mut self.read_batches);
                for (_, b) in batches {
                    self.pending_reads.extend(b.jobs);
                }
            }
        }
        self.transport.send(rd.messages);
        // Committed entries already on this member's disk need not wait for
        // this Ready's write: the apply thread starts on them while it is
        // synced. Only a follower that learns of entries and of their commit
        // in one message has committed entries that are not (they go after
        // the write). Applying ahead of the write can leave the applied
        // index beyond the persisted commit index after a crash; the node
        // starts from the lower of the two. (A Ready with a snapshot carries
        // no committed entries: they follow once it is installed.)
        let mut committed = rd.committed_entries;
        let on_disk = self.raw.store().last_index();
        let after_write = committed.split_off(committed.partition_point(|e| e.index <= on_disk));
        self.hand_to_apply(committed);
        self.flush_apply_backlog();
        if let Some(snap) = &rd.snapshot {
            self.install_snapshot(snap)?;
        }
        if !rd.entries.is_empty() || rd.hard_state.is_some() {
            self.raw
                .store_mut()
                .persist(&rd.entries, rd.hard_state, rd.must_sync)
                .map_err(|e| format!("persisting the raft log: {e}"))?;
        }
        self.transport.send(rd.persisted_messages);
        self.hand_to_apply(after_write);
        for rs in rd.read_states {
            let Ok(raw) = <[u8; 8]>::try_from(rs.request_ctx.as_ref()) else { continue };
            if let Some(b) = self.read_batches.remove(&u64::from_be_bytes(raw)) {
                self.apply_backlog.push_back(ApplyMsg::Reads { index: rs.index, jobs: b.jobs });
            }
        }
        self.raw.advance().map_err(|e| format!("raft advance failed: {e}"))?;
        self.publish_status();
        Ok(())
    }

    /// Queues committed entries for the apply thread, in order, applying
    /// configuration changes to the core on the way.
    fn hand_to_apply(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let mut conf_states = Vec::new();
        for e in &entries {
            if e.entry_type() != EntryType::EntryNormal {
                let me = self.status.member_id;
                let before: Vec<u64> = self.raw.raft.tracker().progress.keys().copied().collect();
                let was_member = before.contains(&me);
                match self.raw.apply_conf_change(e) {
                    Ok(cs) => {
                        self.update_members(e, &cs, &before);
                        if was_member && !in_conf(&cs, me) {
                            self.removed(e.index);
                        }
                        conf_states.push((e.index, cs));
                    }
                    Err(err) => log::error!("configuration change at {} did not apply: {err}", e.index),
                }
            }
        }
        self.apply_backlog.push_back(ApplyMsg::Entries { entries, conf_states });
    }

    /// This member was removed (at `index`, or learned from a peer): it
    /// records that, and stops once its answers had time to go out.
    fn removed(&mut self, index: u64) {
        if self.removed_at.is_some() {
            return;
        }
        if let Err(err) = super::bootstrap::mark_removed(&self.db) {
            log::error!("recording this member's removal failed: {err}");
        }
        log::warn!(
            "member {:x}: removed from the cluster (index {index}); stopping in {REMOVED_GRACE:?}",
            self.status.member_id
        );
        self.removed_at = Some(Instant::now());
        // A removed leader hands over at once rather than leaving the
        // others to notice its silence after an election timeout.
        let r = &self.raw.raft;
        if r.role == StateRole::Leader {
            let heir = r
                .tracker()
                .progress
                .iter()
                .filter(|(&id, p)| id != r.id && !p.is_learner)
                .max_by_key(|(_, p)| p.matched)
                .map(|(&id, _)| id);
            if let Some(heir) = heir {
                if let Err(e) = self.raw.transfer_leader(heir) {
                    log::warn!("handing leadership to {heir:x} failed: {e}");
                }
            }
        }
    }

    /// Keeps the transport's member list in step with the configuration.
    /// `before`: the members of the configuration before this change (a
    /// member in it and not in `cs` was removed; one in neither was not
    /// added yet, as during the bootstrap entries).
    fn update_members(&mut self, e: &crate::proto::raftpb::Entry, cs: &ConfState, before: &[u64]) {
        if let Some(m) = members::member_of(e) {
            if let Some(addr) = members::peer_addr(&m) {
                if in_conf(cs, m.id) {
                    self.members.set(m.id, addr);
                }
            }
        }
        for id in self.members.ids() {
            if id != self.status.member_id && !in_conf(cs, id) {
                self.members.remove(id);
            }
        }
        for &id in before {
            if id != self.status.member_id && !in_conf(cs, id) {
                self.members.mark_removed(id);
                if let Err(err) = super::bootstrap::record_removed_peer(&self.db, id) {
                    log::error!("recording the removal of member {id:x} failed: {err}");
                }
            }
        }
        self.publish_view();
    }

    /// Replaces the state machine with a snapshot image received from the
    /// leader: waits until the apply thread applied everything before it,
    /// pauses reads, installs the image (which also resets the log to the
    /// snapshot's point), and reloads the keyspace.
    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), String> {
        let path = PathBuf::from(
            String::from_utf8(snap.data.to_vec()).map_err(|_| "snapshot data is not a path".to_string())?,
        );
        // Only images this member staged itself: anything else is a bug.
        let staged = path.canonicalize().ok().zip(self.snap_dir.canonicalize().ok());
        if !staged.is_some_and(|(p, dir)| p.starts_with(dir)) {
            return Err(format!(
                "refusing to install a snapshot from outside {}: {}",
                self.snap_dir.display(),
                path.display()
            ));
        }
        while let Some(m) = self.apply_backlog.pop_front() {
            self.ch.apply.send(m).map_err(|_| "the apply thread is gone".to_string())?;
        }
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        self.ch.apply.send(ApplyMsg::Barrier(done_tx)).map_err(|_| "the apply thread is gone".to_string())?;
        done_rx.recv().map_err(|_| "the apply thread is gone".to_string())?;
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        // The compaction worker must not delete with the old index while the
        // column families are replaced.
        let paused = self.kv.pause_compaction();
        let meta = self.raw.store_mut().install_image(&path).map_err(|e| format!("installing the snapshot: {e}"))?;
        paused.reload().map_err(|e| format!("reloading the keyspace after a snapshot: {e}"))?;
        self.status.set_applied(meta.index);
        members::refresh_transport(&self.db, &self.members);
        // Appliers reload what they keep in memory before the next entry.
        self.apply_backlog.push_back(ApplyMsg::Reloaded);
        log::info!(
            "member {:x}: installed a snapshot at index {} (term {})",
            self.status.member_id,
            meta.index,
            meta.term
        );
        Ok(())
    }

    /// Moves queued apply messages into the channel without blocking.
    fn flush_apply_backlog(&mut self) {
        while let Some(m) = self.apply_backlog.pop_front() {
            match self.ch.apply.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.apply_backlog.push_front(m);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.apply_backlog.clear();
                    break;
                }
            }
        }
        // Raised before the apply thread could take the next message and
        // look; lowered only here.
        self.ch.apply_backlog.store(!self.apply_backlog.is_empty(), Ordering::SeqCst);
        if !self.apply_backlog.is_empty() && !self.ch.apply.is_full() {
            // Room appeared between the try_send and raising the flag.
            self.ch.bell.ring();
        }
    }

    fn publish_status(&self) {
        let r = &self.raw.raft;
        self.status.set_raft(r.leader_id, r.term, r.last_index(), r.committed());
        self.status.set_learner(r.tracker().progress.get(&r.id).is_some_and(|p| p.is_learner));
    }

    /// Hands what is left to the apply thread (so acknowledged writes are
    /// applied) and fails what can no longer be served.
    fn shutdown(mut self) {
        // Committed entries must still reach the apply thread.
        while let Some(m) = self.apply_backlog.pop_front() {
            if self.ch.apply.send(m).is_err() {
                break;
            }
        }
        for p in self.stalled.drain(..) {
            if let Some(r) = self.wait.take(p.id) {
                r.fail(ApiError::of(ErrorCode::Stopped));
            }
        }
        for j in self.pending_reads.drain(..) {
            j.responder.fail(ApiError::of(ErrorCode::Stopped));
        }
        for (_, b) in std::mem::take(&mut self.read_batches) {
            for j in b.jobs {
                j.responder.fail(ApiError::of(ErrorCode::Stopped));
            }
        }
    }
}

/// Whether `id` is in the configuration (as a voter or a learner, in
/// either half of a joint one).
fn in_conf(cs: &ConfState, id: u64) -> bool {
    cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).chain(&cs.learners_next).any(|&x| x == id)
}
