//! The Raft state machine: terms, roles, elections, ticks and the rules every
//! message goes through before the role-specific handlers in `leader.rs` and
//! `follower.rs`.
//!
//! Pure and deterministic: no clock (time is `tick`), no I/O (messages are
//! queued for the caller), randomness only from the injected seed. Invariant
//! violations panic with the name of the invariant; anything that comes from
//! outside is answered with an error or ignored.

use super::confchange::{self, Changer};
use super::config::{Config, ReadOnlyOption};
use super::errors::{Error, Result};
use super::progress::Progress;
use super::quorum::VoteResult;
use super::raft_log::RaftLog;
use super::read_only::{ReadOnly, ReadState};
use super::storage::Storage;
use super::tracker::{ProgressTracker, TrackerConfig};
use crate::proto::raftpb::{ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType};
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// "No node": the id 0 is never a member.
pub const NONE: u64 = 0;

/// The vote-request context that marks a campaign started by a leadership
/// transfer: voters grant it even while they still hear from a leader.
pub(crate) const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateRole {
    #[default]
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// State that is not persisted: who leads, and this node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftState {
    pub leader_id: u64,
    pub role: StateRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CampaignType {
    PreElection,
    Election,
    Transfer,
}

/// A message to `to` of type `t`, every other field zero.
pub(crate) fn new_message(to: u64, t: MessageType) -> Message {
    Message { to, msg_type: t as i32, ..Default::default() }
}

/// Sum of entry payload sizes: what flow control and the uncommitted bound
/// count.
pub(crate) fn payload_size(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.data.len() as u64).sum()
}

pub struct Raft<S: Storage> {
    pub id: u64,
    pub term: u64,
    pub vote: u64,
    pub role: StateRole,
    pub leader_id: u64,
    /// The node leadership is being transferred to, or NONE.
    pub lead_transferee: u64,
    pub(crate) raft_log: RaftLog<S>,
    pub(crate) trk: ProgressTracker,
    pub(crate) is_learner: bool,
    /// Messages that may be sent at once.
    pub(crate) msgs: Vec<Message>,
    /// Responses that attest to persisted state (append and vote responses,
    /// including this node's own acknowledgements): released only after the
    /// `Ready` that produced them has been persisted.
    pub(crate) msgs_after_append: Vec<Message>,
    /// Index of the latest configuration change proposed by this leader.
    /// Another may be proposed once it is applied.
    pub(crate) pending_conf_index: u64,
    /// Payload bytes of uncommitted entries appended by this leader.
    pub(crate) uncommitted_size: u64,
    pub(crate) read_only: ReadOnly,
    pub(crate) read_only_option: ReadOnlyOption,
    pub(crate) read_states: Vec<ReadState>,
    /// Read requests that arrived before this leader committed an entry of
    /// its term (until then its commit index may be stale).
    pub(crate) pending_read_index: Vec<Message>,
    pub(crate) election_elapsed: usize,
    heartbeat_elapsed: usize,
    /// Ticks since this node started: the clock of leader leases.
    pub(crate) ticks: u64,
    /// Whether this leader sent MsgTimeoutNow in this term. The target may
    /// win an election at any moment after that, so leases are void.
    pub(crate) timeout_now_sent: bool,
    /// Set at start-up until an election timeout passes or we campaign: a
    /// restarted node may have acknowledged a leader's heartbeat just before
    /// it crashed, so it must not help elect another leader within that
    /// leader's lease.
    recently_started: bool,
    /// Set when this member lost its persistent state (a wiped data
    /// directory, learned from a peer that knew it before): it may have
    /// forgotten entries it acknowledged and votes it cast, so it neither
    /// votes nor campaigns until a leader has brought its commit index to an
    /// entry of the leader's term (which covers everything committed before).
    pub(crate) lost_state: bool,
    pub(crate) check_quorum: bool,
    pub(crate) pre_vote: bool,
    heartbeat_timeout: usize,
    pub(crate) election_timeout: usize,
    randomized_election_timeout: usize,
    pub(crate) max_msg_size: u64,
    max_uncommitted_size: u64,
    pub(crate) disable_proposal_forwarding: bool,
    step_down_on_removal: bool,
    rng: ChaCha8Rng,
}

impl<S: Storage> Raft<S> {
    /// A node restarting from what `store` holds (or starting fresh with the
    /// configuration `store` was bootstrapped with).
    pub fn new(config: &Config, store: S) -> Result<Raft<S>> {
        config.validate()?;
        let initial = store.initial_state()?;
        let raft_log = RaftLog::new(store, config.max_committed_size_per_ready);
        // Seed mixed with the id: nodes configured alike still time out apart.
        let seed = config.seed ^ config.id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut r = Raft {
            id: config.id,
            term: 0,
            vote: NONE,
            role: StateRole::Follower,
            leader_id: NONE,
            lead_transferee: NONE,
            raft_log,
            trk: ProgressTracker::new(config.max_inflight_msgs, config.max_inflight_bytes),
            is_learner: false,
            msgs: Vec::new(),
            msgs_after_append: Vec::new(),
            pending_conf_index: 0,
            uncommitted_size: 0,
            read_only: ReadOnly::default(),
            read_only_option: config.read_only_option,
            read_states: Vec::new(),
            pending_read_index: Vec::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            ticks: 0,
            timeout_now_sent: false,
            recently_started: true,
            lost_state: false,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            heartbeat_timeout: config.heartbeat_tick,
            election_timeout: config.election_tick,
            randomized_election_timeout: config.election_tick,
            max_msg_size: config.max_size_per_msg,
            max_uncommitted_size: config.max_uncommitted_entries_size,
            disable_proposal_forwarding: config.disable_proposal_forwarding,
            step_down_on_removal: config.step_down_on_removal,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let last = r.raft_log.last_index();
        let (cfg, prs) = confchange::restore(&r.trk, &initial.conf_state, last)?;
        r.switch_to_config(cfg, prs)?;

        let hs = initial.hard_state;
        if hs != HardState::default() {
            if hs.commit < r.raft_log.committed || hs.commit > last {
                return Err(Error::Storage(super::errors::StorageError::Other(format!(
                    "persisted commit index {} is out of range [{}, {}]",
                    hs.commit, r.raft_log.committed, last
                ))));
            }
            r.raft_log.committed = hs.commit;
            r.term = hs.term;
            r.vote = hs.vote;
        }
        if config.applied > 0 {
            if config.applied > r.raft_log.committed {
                return Err(Error::InvalidConfig(format!(
                    "applied index {} is beyond the commit index {}",
                    config.applied, r.raft_log.committed
                )));
            }
            r.raft_log.applied_to(config.applied);
        }
        r.become_follower(r.term, NONE);
        log::info!(
            "raft {:x}: started [voters: {:?}, term: {}, commit: {}, applied: {}, last index: {}]",
            r.id,
            r.trk.config.voters.ids(),
            r.term,
            r.raft_log.committed,
            r.raft_log.applied,
            last
        );
        Ok(r)
    }

    pub fn soft_state(&self) -> SoftState {
        SoftState { leader_id: self.leader_id, role: self.role }
    }

    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.raft_log.committed }
    }

    pub fn committed(&self) -> u64 {
        self.raft_log.committed
    }

    pub fn applied(&self) -> u64 {
        self.raft_log.applied
    }

    pub fn last_index(&self) -> u64 {
        self.raft_log.last_index()
    }

    pub fn first_index(&self) -> u64 {
        self.raft_log.first_index()
    }

    /// The term of the entry at `index` in this node's log (persisted or
    /// not), or `None` when it is compacted, beyond the log, or unreadable.
    pub fn log_term(&self, index: u64) -> Option<u64> {
        self.raft_log.term(index).ok()
    }

    /// The storage the core reads from.
    pub fn store(&self) -> &S {
        &self.raft_log.store
    }

    /// The storage, for the application to write what a `Ready` asks.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.raft_log.store
    }

    pub fn tracker(&self) -> &ProgressTracker {
        &self.trk
    }

    /// Queues a message. Append and vote responses wait until the state they
    /// vouch for is persisted; everything else may leave at once.
    pub(crate) fn send(&mut self, mut m: Message) {
        if m.from == NONE {
            m.from = self.id;
        }
        let t = m.msg_type();
        let is_vote = matches!(
            t,
            MessageType::MsgVote | MessageType::MsgVoteResp | MessageType::MsgPreVote | MessageType::MsgPreVoteResp
        );
        if is_vote {
            assert!(m.term != 0, "invariant: {t:?} is sent with its term set");
        } else {
            assert!(m.term == 0, "invariant: {t:?} is sent without a term (the sender sets it)");
            // Proposals and read requests forwarded to the leader keep term 0:
            // they are not bound to a term.
            if t != MessageType::MsgProp && t != MessageType::MsgReadIndex {
                m.term = self.term;
            }
        }
        if matches!(t, MessageType::MsgAppResp | MessageType::MsgVoteResp | MessageType::MsgPreVoteResp) {
            self.msgs_after_append.push(m);
        } else {
            assert!(m.to != self.id, "invariant: {t:?} is not addressed to the sender");
            self.msgs.push(m);
        }
    }

    // ------------------------------------------------------------ roles

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = NONE;
        }
        self.leader_id = NONE;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.abort_leader_transfer();
        self.trk.reset_votes();
        let last = self.raft_log.last_index();
        let stable = self.raft_log.stable_last_index();
        let (max_inflight, max_bytes) = (self.trk.max_inflight, self.trk.max_inflight_bytes);
        for (&id, pr) in self.trk.progress.iter_mut() {
            let is_learner = pr.is_learner;
            *pr = Progress::new(last + 1, max_inflight, max_bytes);
            pr.is_learner = is_learner;
            if id == self.id {
                // Only what is persisted counts towards a quorum.
                pr.matched = stable;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.timeout_now_sent = false;
        self.read_only = ReadOnly::default();
        self.pending_read_index.clear();
    }

    pub(crate) fn become_follower(&mut self, term: u64, leader_id: u64) {
        self.reset(term);
        self.leader_id = leader_id;
        self.role = StateRole::Follower;
        log::debug!("raft {:x}: became follower at term {}", self.id, self.term);
    }

    fn become_candidate(&mut self) {
        assert!(self.role != StateRole::Leader, "invariant: no transition from leader to candidate");
        self.recently_started = false;
        self.reset(self.term + 1);
        self.vote = self.id;
        self.role = StateRole::Candidate;
        log::debug!("raft {:x}: became candidate at term {}", self.id, self.term);
    }

    fn become_pre_candidate(&mut self) {
        assert!(self.role != StateRole::Leader, "invariant: no transition from leader to pre-candidate");
        // A pre-election changes neither the term nor the vote.
        self.recently_started = false;
        self.trk.reset_votes();
        self.leader_id = NONE;
        self.role = StateRole::PreCandidate;
        log::debug!("raft {:x}: became pre-candidate at term {}", self.id, self.term);
    }

    pub(crate) fn become_leader(&mut self) -> Result<()> {
        assert!(self.role != StateRole::Follower, "invariant: no transition from follower to leader");
        self.reset(self.term);
        self.leader_id = self.id;
        self.role = StateRole::Leader;
        if let Some(pr) = self.trk.progress.get_mut(&self.id) {
            pr.become_replicate();
            pr.recent_active = true;
        }
        // Conservatively treat any unapplied entry as a pending configuration
        // change: the next change waits until everything up to here applied.
        self.pending_conf_index = self.raft_log.last_index();
        // An empty entry of the new term: committing it commits every earlier
        // entry, and confirms the commit index for reads.
        let mut noop = vec![Entry::default()];
        assert!(self.append_entry(&mut noop)?, "invariant: the leader's empty entry is never dropped");
        log::info!("raft {:x}: became leader at term {}", self.id, self.term);
        Ok(())
    }

    /// Whether this node may campaign.
    pub(crate) fn promotable(&self) -> bool {
        self.trk.progress.get(&self.id).is_some_and(|p| !p.is_learner)
            && !self.raft_log.has_pending_snapshot()
            && !self.lost_state
    }

    /// This member lost its persistent state: stop voting and campaigning
    /// until a leader has caught it up (see `lost_state`).
    pub fn mark_lost_state(&mut self) {
        if self.lost_state {
            return;
        }
        log::warn!("raft {:x}: lost its persistent state; not voting until a leader catches it up", self.id);
        self.lost_state = true;
        if self.role != StateRole::Follower {
            self.become_follower(self.term, NONE);
        }
    }

    /// Whether this member is still catching up after losing its state.
    pub fn has_lost_state(&self) -> bool {
        self.lost_state
    }

    /// Ends the lost-state period once the commit index reaches an entry of
    /// the current leader's term: by leader completeness the log then holds
    /// every entry committed before that term, hence every committed entry
    /// this member acknowledged before it lost its state.
    pub(crate) fn maybe_end_lost_state(&mut self) {
        if self.lost_state && self.leader_id != NONE && self.log_term(self.raft_log.committed) == Some(self.term) {
            log::info!(
                "raft {:x}: caught up to index {} of leader {:x}'s term {}; voting again",
                self.id,
                self.raft_log.committed,
                self.leader_id,
                self.term
            );
            self.lost_state = false;
        }
    }

    /// A follower lost its persistent state: what the leader knew it to have
    /// is gone, so its progress starts over with a probe after the leader's
    /// last entry (its rejection then says where its log really ends).
    pub fn forget_follower_progress(&mut self, id: u64) -> Result<()> {
        if self.role != StateRole::Leader || id == self.id {
            return Ok(());
        }
        let last = self.raft_log.last_index();
        let Some(pr) = self.trk.progress.get_mut(&id) else { return Ok(()) };
        log::warn!("raft {:x}: member {id:x} lost its state; its progress ({pr}) starts over", self.id);
        pr.matched = 0;
        pr.become_probe();
        pr.next = last + 1;
        self.send_append(id)
    }

    fn reset_randomized_election_timeout(&mut self) {
        self.randomized_election_timeout = self.election_timeout + self.rng.random_range(0..self.election_timeout);
    }

    pub(crate) fn reset_election_elapsed(&mut self) {
        self.election_elapsed = 0;
    }

    pub(crate) fn abort_leader_transfer(&mut self) {
        self.lead_transferee = NONE;
    }

    // ------------------------------------------------------------ time

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) -> Result<()> {
        self.ticks += 1;
        if self.role == StateRole::Leader {
            self.tick_heartbeat()
        } else {
            self.tick_election()
        }
    }

    fn tick_election(&mut self) -> Result<()> {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.recently_started = false;
        }
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.step(new_message(NONE, MessageType::MsgHup))?;
        }
        Ok(())
    }

    fn tick_heartbeat(&mut self) -> Result<()> {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                self.step(new_message(NONE, MessageType::MsgCheckQuorum))?;
            }
            // A transfer that did not finish within an election timeout is
            // abandoned so proposals flow again.
            if self.role == StateRole::Leader && self.lead_transferee != NONE {
                log::info!("raft {:x}: leadership transfer to {:x} timed out", self.id, self.lead_transferee);
                self.abort_leader_transfer();
            }
        }
        if self.role != StateRole::Leader {
            return Ok(());
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            self.step(new_message(NONE, MessageType::MsgBeat))?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ step

    /// Feeds one message to the state machine.
    pub fn step(&mut self, m: Message) -> Result<()> {
        let t = m.msg_type();
        if m.term == 0 {
            // Local message, or a proposal / read request forwarded without
            // a term.
        } else if m.term > self.term {
            if matches!(t, MessageType::MsgVote | MessageType::MsgPreVote) {
                let force = m.context.as_ref() == CAMPAIGN_TRANSFER;
                let in_lease = self.check_quorum
                    && (self.leader_id != NONE || self.recently_started)
                    && self.election_elapsed < self.election_timeout;
                if !force && in_lease {
                    // We heard from a leader within the election timeout: a
                    // vote now could only disrupt it (§6 of the thesis).
                    log::debug!(
                        "raft {:x}: ignored {t:?} from {:x} at term {}: lease with leader {:x} not expired",
                        self.id,
                        m.from,
                        m.term,
                        self.leader_id
                    );
                    return Ok(());
                }
            }
            match t {
                // A pre-vote never changes our term.
                MessageType::MsgPreVote => {}
                // A granted pre-vote carries the term the candidate will use.
                MessageType::MsgPreVoteResp if !m.reject => {}
                _ => {
                    let leader = if matches!(t, MessageType::MsgApp | MessageType::MsgHeartbeat | MessageType::MsgSnap)
                    {
                        m.from
                    } else {
                        NONE
                    };
                    self.become_follower(m.term, leader);
                }
            }
        } else if m.term < self.term {
            if (self.check_quorum || self.pre_vote) && matches!(t, MessageType::MsgHeartbeat | MessageType::MsgApp) {
                // A stale leader: tell it our term so it steps down. Without
                // this, a node partitioned with check-quorum or pre-vote
                // could never learn it lost leadership.
                self.send(new_message(m.from, MessageType::MsgAppResp));
            } else if t == MessageType::MsgPreVote {
                let mut resp = new_message(m.from, MessageType::MsgPreVoteResp);
                resp.term = self.term;
                resp.reject = true;
                self.send(resp);
            }
            return Ok(());
        }

        match t {
            MessageType::MsgHup => {
                let kind = if self.pre_vote { CampaignType::PreElection } else { CampaignType::Election };
                self.hup(kind)
            }
            MessageType::MsgVote | MessageType::MsgPreVote => self.handle_vote_request(m),
            _ => {
                match self.role {
                    StateRole::Leader => self.step_leader(m)?,
                    StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(m)?,
                    StateRole::Follower => self.step_follower(m)?,
                }
                // An append, heartbeat or snapshot may have caught us up.
                self.maybe_end_lost_state();
                Ok(())
            }
        }
    }

    fn handle_vote_request(&mut self, m: Message) -> Result<()> {
        let t = m.msg_type();
        // We can vote if we already voted for this candidate (a repeated
        // request), have not voted and know no leader, or it is a pre-vote
        // for a future term.
        let can_vote = !self.lost_state
            && (self.vote == m.from
                || (self.vote == NONE && self.leader_id == NONE)
                || (t == MessageType::MsgPreVote && m.term > self.term));
        let resp_type = if t == MessageType::MsgVote { MessageType::MsgVoteResp } else { MessageType::MsgPreVoteResp };
        if can_vote && self.raft_log.is_up_to_date(m.index, m.log_term)? {
            let mut resp = new_message(m.from, resp_type);
            // The response carries the request's term: for a pre-vote, that
            // is the future term the candidate will campaign at.
            resp.term = m.term;
            self.send(resp);
            if t == MessageType::MsgVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            let mut resp = new_message(m.from, resp_type);
            resp.term = self.term;
            resp.reject = true;
            self.send(resp);
        }
        Ok(())
    }

    // ------------------------------------------------------------ elections

    pub(crate) fn hup(&mut self, kind: CampaignType) -> Result<()> {
        if self.role == StateRole::Leader {
            return Ok(());
        }
        if !self.promotable() {
            log::warn!("raft {:x}: is not promotable and cannot campaign", self.id);
            return Ok(());
        }
        if self.raft_log.has_unapplied_conf_changes()? {
            // Campaigning before applying them could use a stale
            // configuration to count votes.
            log::warn!(
                "raft {:x}: cannot campaign at term {}: configuration changes not yet applied",
                self.id,
                self.term
            );
            return Ok(());
        }
        log::info!("raft {:x}: starting a new election at term {}", self.id, self.term);
        self.campaign(kind)
    }

    fn campaign(&mut self, kind: CampaignType) -> Result<()> {
        let (vote_type, term) = if kind == CampaignType::PreElection {
            self.become_pre_candidate();
            (MessageType::MsgPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::MsgVote, self.term)
        };
        let resp_type =
            if vote_type == MessageType::MsgVote { MessageType::MsgVoteResp } else { MessageType::MsgPreVoteResp };
        let last_index = self.raft_log.last_index();
        let last_term = self.raft_log.last_term()?;
        for id in self.trk.voter_ids() {
            if id == self.id {
                // Our own vote counts once our term and vote are persisted.
                let mut own = new_message(id, resp_type);
                own.term = term;
                self.send(own);
                continue;
            }
            let mut m = new_message(id, vote_type);
            m.term = term;
            m.index = last_index;
            m.log_term = last_term;
            if kind == CampaignType::Transfer {
                m.context = Bytes::from_static(CAMPAIGN_TRANSFER);
            }
            self.send(m);
        }
        Ok(())
    }

    /// Records a vote and acts on the election's result.
    pub(crate) fn poll(&mut self, from: u64, granted: bool) -> Result<()> {
        self.trk.record_vote(from, granted);
        let (yes, no, result) = self.trk.tally_votes();
        log::debug!("raft {:x}: {yes} votes granted, {no} rejected at term {}", self.id, self.term);
        match result {
            VoteResult::Won => {
                if self.role == StateRole::PreCandidate {
                    self.campaign(CampaignType::Election)?;
                } else {
                    self.become_leader()?;
                    self.bcast_append()?;
                }
            }
            VoteResult::Lost => self.become_follower(self.term, NONE),
            VoteResult::Pending => {}
        }
        Ok(())
    }

    // ------------------------------------------------------------ log

    /// Appends entries as leader, stamping term and index. Returns false (and
    /// appends nothing) when the uncommitted bound would be exceeded.
    pub(crate) fn append_entry(&mut self, entries: &mut [Entry]) -> Result<bool> {
        let last = self.raft_log.last_index();
        for (i, e) in entries.iter_mut().enumerate() {
            e.term = self.term;
            e.index = last + 1 + i as u64;
        }
        if !self.increase_uncommitted_size(entries) {
            log::warn!("raft {:x}: uncommitted entries exceed the limit; dropping proposal", self.id);
            return Ok(false);
        }
        let last = self.raft_log.append(entries)?;
        // The leader acknowledges its own entries once they are persisted.
        let mut ack = new_message(self.id, MessageType::MsgAppResp);
        ack.index = last;
        self.send(ack);
        Ok(true)
    }

    fn increase_uncommitted_size(&mut self, entries: &[Entry]) -> bool {
        let size = payload_size(entries);
        // A single proposal larger than the bound is still accepted when
        // nothing else is uncommitted, so it cannot be starved forever.
        if self.uncommitted_size > 0 && size > 0 && self.uncommitted_size + size > self.max_uncommitted_size {
            return false;
        }
        self.uncommitted_size += size;
        true
    }

    pub(crate) fn reduce_uncommitted_size(&mut self, entries: &[Entry]) {
        self.uncommitted_size = self.uncommitted_size.saturating_sub(payload_size(entries));
    }

    /// Commits what a quorum has replicated (entries of the current term
    /// only, §5.4.2). Returns whether the commit index moved.
    pub(crate) fn maybe_commit(&mut self) -> Result<bool> {
        let index = self.trk.committed();
        self.raft_log.maybe_commit(index, self.term)
    }

    pub(crate) fn committed_entry_in_current_term(&self) -> Result<bool> {
        Ok(self.raft_log.term_or_zero(self.raft_log.committed)? == self.term)
    }

    /// The application applied everything up to `index`.
    pub(crate) fn applied_to(&mut self, index: u64) -> Result<()> {
        let new_applied = index.max(self.raft_log.applied);
        self.raft_log.applied_to(new_applied);
        if self.trk.config.auto_leave && new_applied >= self.pending_conf_index && self.role == StateRole::Leader {
            // The joint configuration was entered with auto-leave: propose
            // the empty change that leaves it.
            let mut m = new_message(NONE, MessageType::MsgProp);
            m.from = self.id;
            m.entries = vec![Entry { entry_type: EntryType::EntryConfChangeV2 as i32, ..Default::default() }];
            match self.step(m) {
                Ok(()) => log::info!("raft {:x}: leaving joint configuration automatically", self.id),
                Err(Error::ProposalDropped(why)) => {
                    log::debug!("raft {:x}: not leaving joint configuration yet: {why}", self.id)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ membership

    /// Applies a committed configuration change and returns the new
    /// configuration.
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        let changer = Changer { tracker: &self.trk, last_index: self.raft_log.last_index() };
        let (cfg, prs) = changer.apply_v2(cc)?;
        self.switch_to_config(cfg, prs)
    }

    pub(crate) fn switch_to_config(&mut self, cfg: TrackerConfig, prs: BTreeMap<u64, Progress>) -> Result<ConfState> {
        self.trk.config = cfg;
        self.trk.progress = prs;
        log::info!(
            "raft {:x}: switched to configuration voters={:?} outgoing={:?} learners={:?}",
            self.id,
            self.trk.config.voters.incoming.ids().collect::<Vec<_>>(),
            self.trk.config.voters.outgoing.ids().collect::<Vec<_>>(),
            self.trk.config.learners
        );
        let cs = self.trk.conf_state();
        let me = self.trk.progress.get(&self.id);
        self.is_learner = me.is_some_and(|p| p.is_learner);
        if (me.is_none() || self.is_learner) && self.role == StateRole::Leader {
            // A leader removed or demoted cannot count itself any more.
            if self.step_down_on_removal {
                self.become_follower(self.term, NONE);
            }
            return Ok(cs);
        }
        if self.role != StateRole::Leader || cs.voters.is_empty() {
            return Ok(cs);
        }
        // The quorum changed: the commit index may move, and new nodes need
        // their first appends.
        if self.maybe_commit()? {
            self.bcast_append()?;
        } else {
            let ids: Vec<u64> = self.trk.progress.keys().copied().filter(|&id| id != self.id).collect();
            for id in ids {
                self.maybe_send_append(id, false)?;
            }
        }
        if self.lead_transferee != NONE && !self.trk.config.voters.contains(self.lead_transferee) {
            self.abort_leader_transfer();
        }
        Ok(cs)
    }
}
