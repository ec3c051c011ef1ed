//! What a leader does: accept proposals, replicate with per-follower flow
//! control, commit, answer read-index requests, transfer leadership.
//!
//! Never called on a non-leader: `Raft::step` dispatches here by role.

use super::confchange::{self, Changer};
use super::config::ReadOnlyOption;
use super::errors::{DropReason, Error, Result, StorageError};
use super::progress::ProgressState;
use super::raft_core::{new_message, payload_size, Raft, NONE};
use super::read_only::{ReadIndexRequest, ReadState};
use super::storage::Storage;
use crate::proto::raftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, MessageType};
use prost::Message as _;

/// Ticks subtracted from a lease to absorb the skew between when a follower
/// ticks and when the leader does within the same instant.
const LEASE_MARGIN_TICKS: u64 = 2;

impl<S: Storage> Raft<S> {
    pub(crate) fn step_leader(&mut self, mut m: Message) -> Result<()> {
        match m.msg_type() {
            MessageType::MsgBeat => return self.bcast_heartbeat(),
            MessageType::MsgCheckQuorum => {
                if !self.trk.quorum_active(self.id) {
                    log::warn!("raft {:x}: stepped down: quorum not active for an election timeout", self.id);
                    self.become_follower(self.term, NONE);
                }
                // Every follower must prove itself again before the next check.
                let me = self.id;
                for (&id, pr) in self.trk.progress.iter_mut() {
                    if id != me {
                        pr.recent_active = false;
                    }
                }
                return Ok(());
            }
            MessageType::MsgProp => return self.handle_proposal(&mut m),
            MessageType::MsgReadIndex => return self.handle_read_index(m),
            _ => {}
        }
        if !self.trk.progress.contains_key(&m.from) {
            return Ok(());
        }
        match m.msg_type() {
            MessageType::MsgAppResp => self.handle_append_response(&m),
            MessageType::MsgHeartbeatResp => self.handle_heartbeat_response(&m),
            MessageType::MsgSnapStatus => {
                let Some(pr) = self.trk.progress.get_mut(&m.from) else { return Ok(()) };
                if pr.state != ProgressState::Snapshot {
                    return Ok(());
                }
                if m.reject {
                    // The snapshot failed: forget it and probe again.
                    pr.pending_snapshot = 0;
                }
                pr.become_probe();
                // Wait for a heartbeat response before the next probe, so a
                // failing follower is not flooded.
                pr.msg_app_flow_paused = true;
                Ok(())
            }
            MessageType::MsgUnreachable => {
                if let Some(pr) = self.trk.progress.get_mut(&m.from) {
                    // Optimistic streaming is pointless to an unreachable peer.
                    if pr.state == ProgressState::Replicate {
                        pr.become_probe();
                    }
                }
                Ok(())
            }
            MessageType::MsgTransferLeader => self.handle_transfer_leader(m.from),
            _ => Ok(()),
        }
    }

    fn handle_proposal(&mut self, m: &mut Message) -> Result<()> {
        if m.entries.is_empty() {
            return Err(Error::InvalidMessage("empty proposal".into()));
        }
        if !self.trk.progress.contains_key(&self.id) {
            return Err(Error::ProposalDropped(DropReason::NotInConfig));
        }
        if self.lead_transferee != NONE {
            return Err(Error::ProposalDropped(DropReason::TransferInProgress));
        }
        let last = self.raft_log.last_index();
        // The index of the configuration change in this proposal, recorded
        // as pending only once the proposal is actually appended: a refused
        // proposal must not block the next change.
        let mut pending_conf_index = None;
        for (i, e) in m.entries.iter().enumerate() {
            if let Some(cc) = decode_conf_change(e)? {
                if pending_conf_index.is_some() {
                    return Err(Error::ProposalDropped(DropReason::ConfChangePending));
                }
                self.check_conf_change(&cc)?;
                pending_conf_index = Some(last + i as u64 + 1);
            }
        }
        if !self.append_entry(&mut m.entries)? {
            return Err(Error::ProposalDropped(DropReason::UncommittedLimit));
        }
        if let Some(index) = pending_conf_index {
            self.pending_conf_index = index;
        }
        self.bcast_append()
    }

    /// Refuses a configuration change that may not be proposed now: another
    /// one pending, the joint rules, or a change that cannot apply to the
    /// current configuration.
    fn check_conf_change(&self, cc: &ConfChangeV2) -> Result<()> {
        if self.pending_conf_index > self.raft_log.applied {
            return Err(Error::ProposalDropped(DropReason::ConfChangePending));
        }
        let joint = self.trk.config.voters.is_joint();
        let leave = confchange::is_leave_joint(cc);
        if joint && !leave {
            return Err(Error::ProposalDropped(DropReason::MustLeaveJoint));
        }
        if !joint && leave {
            return Err(Error::ProposalDropped(DropReason::NotJoint));
        }
        // Nothing is pending, so the configuration at apply time is the
        // current one: a dry run now tells whether it will apply.
        let changer = Changer { tracker: &self.trk, last_index: self.raft_log.last_index() };
        changer.apply_v2(cc).map(|_| ())
    }

    fn handle_read_index(&mut self, m: Message) -> Result<()> {
        if m.entries.len() != 1 {
            return Err(Error::InvalidMessage(format!("read index with {} contexts", m.entries.len())));
        }
        if self.trk.is_singleton() {
            // Nobody else can be leader: the commit index is current.
            let committed = self.raft_log.committed;
            self.respond_to_read_index(m, committed);
            return Ok(());
        }
        if !self.committed_entry_in_current_term()? {
            // Our commit index may lag the previous leader's until an entry
            // of our term commits (§6.4 of the thesis): answer then.
            self.pending_read_index.push(m);
            return Ok(());
        }
        self.send_read_index_response(m)
    }

    fn send_read_index_response(&mut self, m: Message) -> Result<()> {
        match self.read_only_option {
            ReadOnlyOption::Safe => {
                self.read_only.add_request(self.raft_log.committed, m);
                self.read_only.self_ack(self.id);
                self.bcast_heartbeat()
            }
            ReadOnlyOption::LeaseBased if self.lease_valid() => {
                let committed = self.raft_log.committed;
                self.respond_to_read_index(m, committed);
                Ok(())
            }
            ReadOnlyOption::LeaseBased => {
                // No valid lease: confirm leadership the safe way.
                self.read_only.add_request(self.raft_log.committed, m);
                self.read_only.self_ack(self.id);
                self.bcast_heartbeat()
            }
        }
    }

    /// Whether no other leader can exist now. Heartbeats carry our tick and
    /// responses echo it; a quorum acknowledged a heartbeat sent at tick
    /// `acked`, and each of those followers refuses votes for an election
    /// timeout after receiving it. Assumes clocks tick at the same rate, with
    /// a margin of `LEASE_MARGIN_TICKS`.
    pub(crate) fn lease_valid(&self) -> bool {
        if self.timeout_now_sent || self.lead_transferee != NONE {
            return false;
        }
        let acked = self.trk.config.voters.committed_index(|id| {
            if id == self.id {
                Some(self.ticks)
            } else {
                self.trk.progress.get(&id).map(|p| p.lease_ack)
            }
        });
        acked != 0 && acked + self.election_timeout as u64 > self.ticks + LEASE_MARGIN_TICKS
    }

    pub(crate) fn release_pending_read_index(&mut self) -> Result<()> {
        if self.pending_read_index.is_empty() || !self.committed_entry_in_current_term()? {
            return Ok(());
        }
        for m in std::mem::take(&mut self.pending_read_index) {
            self.send_read_index_response(m)?;
        }
        Ok(())
    }

    fn respond_to_read_index(&mut self, req: Message, index: u64) {
        let ctx = req.entries.first().map(|e| e.data.clone()).unwrap_or_default();
        if req.from == NONE || req.from == self.id {
            self.read_states.push(ReadState { index, request_ctx: ctx });
        } else {
            let mut resp = new_message(req.from, MessageType::MsgReadIndexResp);
            resp.index = index;
            resp.entries = req.entries;
            self.send(resp);
        }
    }

    fn handle_append_response(&mut self, m: &Message) -> Result<()> {
        let from = m.from;
        let first_index = self.raft_log.first_index();
        if let Some(pr) = self.trk.progress.get_mut(&from) {
            pr.recent_active = true;
        }
        if m.reject {
            // The follower's hint names the last index where its term is not
            // newer than ours; find where our log agrees with that term, so
            // a whole divergent term is skipped in one round trip.
            let mut next_probe = m.reject_hint;
            if m.log_term > 0 {
                next_probe = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)?.0;
            }
            let Some(pr) = self.trk.progress.get_mut(&from) else { return Ok(()) };
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from)?;
            }
            return Ok(());
        }

        let Some(pr) = self.trk.progress.get_mut(&from) else { return Ok(()) };
        let updated = pr.maybe_update(m.index);
        if !(updated || (pr.matched == m.index && pr.state == ProgressState::Probe)) {
            return Ok(());
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched + 1 >= first_index => {
                // The follower caught up past the snapshot (or from the log).
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Replicate => pr.inflights.free_le(m.index),
            ProgressState::Snapshot => {}
        }
        let matched = pr.matched;
        if self.maybe_commit()? {
            self.release_pending_read_index()?;
            self.bcast_append()?;
        } else if from != self.id {
            let committed = self.raft_log.committed;
            if self.trk.progress.get(&from).is_some_and(|p| p.can_bump_commit(committed)) {
                self.send_append(from)?;
            }
        }
        if from != self.id {
            // Fill the window as far as flow control allows.
            while self.maybe_send_append(from, false)? {}
        }
        if from == self.lead_transferee && matched == self.raft_log.last_index() {
            log::info!("raft {:x}: {:x} caught up; sending MsgTimeoutNow", self.id, from);
            self.send_timeout_now(from);
        }
        Ok(())
    }

    fn handle_heartbeat_response(&mut self, m: &Message) -> Result<()> {
        let last = self.raft_log.last_index();
        let Some(pr) = self.trk.progress.get_mut(&m.from) else { return Ok(()) };
        pr.recent_active = true;
        pr.msg_app_flow_paused = false;
        pr.lease_ack = pr.lease_ack.max(m.index);
        if pr.matched < last || pr.state == ProgressState::Probe {
            self.send_append(m.from)?;
        }
        // Acknowledgements confirm reads in either mode: lease-based reads
        // without a valid lease wait on the same quorum round.
        if m.context.is_empty() {
            return Ok(());
        }
        self.read_only.recv_ack(m.from, &m.context);
        let confirmed: Vec<ReadIndexRequest> = self.read_only.maybe_advance(&self.trk.config.voters);
        for r in confirmed {
            self.respond_to_read_index(r.req, r.index);
        }
        Ok(())
    }

    fn handle_transfer_leader(&mut self, transferee: u64) -> Result<()> {
        let Some(pr) = self.trk.progress.get(&transferee) else { return Ok(()) };
        if pr.is_learner {
            log::info!("raft {:x}: ignored leadership transfer to learner {:x}", self.id, transferee);
            return Ok(());
        }
        let matched = pr.matched;
        if self.lead_transferee != NONE {
            if self.lead_transferee == transferee {
                return Ok(());
            }
            self.abort_leader_transfer();
        }
        if transferee == self.id {
            return Ok(());
        }
        log::info!("raft {:x}: transferring leadership to {:x} at term {}", self.id, transferee, self.term);
        // The transfer must finish within an election timeout (see tick).
        self.reset_election_elapsed();
        self.lead_transferee = transferee;
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(transferee);
        } else {
            self.send_append(transferee)?;
        }
        Ok(())
    }

    fn send_timeout_now(&mut self, to: u64) {
        self.timeout_now_sent = true;
        self.send(new_message(to, MessageType::MsgTimeoutNow));
    }

    // ------------------------------------------------------------ replication

    pub(crate) fn send_append(&mut self, to: u64) -> Result<()> {
        self.maybe_send_append(to, true).map(|_| ())
    }

    /// Sends `to` the entries it needs next, if flow control allows. An empty
    /// append is sent only when `send_if_empty` (it still carries the commit
    /// index and probes the follower). Returns whether anything was sent.
    pub(crate) fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> Result<bool> {
        let Some(pr) = self.trk.progress.get(&to) else { return Ok(false) };
        if pr.is_paused() {
            return Ok(false);
        }
        let prev_index = pr.next - 1;
        let window_full = pr.state == ProgressState::Replicate && pr.inflights.full();
        let prev_term = match self.raft_log.term(prev_index) {
            Ok(t) => t,
            Err(StorageError::Compacted | StorageError::Unavailable) => return self.maybe_send_snapshot(to),
            Err(e) => return Err(Error::Storage(e)),
        };
        let entries = if window_full {
            Vec::new()
        } else {
            match self.raft_log.entries(prev_index + 1, self.max_msg_size) {
                Ok(e) => e,
                Err(Error::Storage(StorageError::Compacted)) => return self.maybe_send_snapshot(to),
                Err(e) => return Err(e),
            }
        };
        if entries.is_empty() && !send_if_empty {
            return Ok(false);
        }
        let committed = self.raft_log.committed;
        let (count, bytes) = (entries.len(), payload_size(&entries));
        let mut m = new_message(to, MessageType::MsgApp);
        m.index = prev_index;
        m.log_term = prev_term;
        m.entries = entries;
        m.commit = committed;
        self.send(m);
        if let Some(pr) = self.trk.progress.get_mut(&to) {
            pr.sent_entries(count, bytes);
            pr.sent_commit(committed);
        }
        Ok(true)
    }

    fn maybe_send_snapshot(&mut self, to: u64) -> Result<bool> {
        let Some(pr) = self.trk.progress.get(&to) else { return Ok(false) };
        if !pr.recent_active {
            // Do not build and ship a snapshot to a node that may be down.
            return Ok(false);
        }
        let snapshot = match self.raft_log.snapshot(pr.next - 1, to) {
            Ok(s) => s,
            Err(StorageError::SnapshotTemporarilyUnavailable) => return Ok(false),
            Err(e) => return Err(Error::Storage(e)),
        };
        let meta = snapshot.metadata.clone().unwrap_or_default();
        let index = meta.index;
        if index == 0 {
            return Err(Error::Storage(StorageError::Other(format!(
                "entries needed by {to:x} were compacted but storage has no snapshot"
            ))));
        }
        let cs = meta.conf_state.unwrap_or_default();
        if !cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).any(|&id| id == to) {
            // The snapshot predates `to` joining: it would refuse it. The
            // storage was told whom it is for and should offer a newer one.
            log::debug!(
                "raft {:x}: snapshot at {index} predates {to:x}'s membership; waiting for a newer one",
                self.id
            );
            return Ok(false);
        }
        log::debug!("raft {:x}: sending snapshot at index {index} to {to:x}", self.id);
        if let Some(pr) = self.trk.progress.get_mut(&to) {
            pr.become_snapshot(index);
        }
        let mut m = new_message(to, MessageType::MsgSnap);
        m.snapshot = Some(snapshot);
        self.send(m);
        Ok(true)
    }

    pub(crate) fn bcast_append(&mut self) -> Result<()> {
        let ids: Vec<u64> = self.trk.progress.keys().copied().filter(|&id| id != self.id).collect();
        for id in ids {
            self.send_append(id)?;
        }
        Ok(())
    }

    pub(crate) fn bcast_heartbeat(&mut self) -> Result<()> {
        let ctx = self.read_only.heartbeat_ctx();
        let committed = self.raft_log.committed;
        let ids: Vec<u64> = self.trk.progress.keys().copied().filter(|&id| id != self.id).collect();
        for id in ids {
            let Some(pr) = self.trk.progress.get_mut(&id) else { continue };
            // Never tell a follower to commit beyond what it is known to
            // hold: its log past `matched` may still differ from ours.
            let commit = pr.matched.min(committed);
            pr.sent_commit(commit);
            let mut m = new_message(id, MessageType::MsgHeartbeat);
            m.commit = commit;
            m.context = ctx.clone();
            // Echoed by the follower: the lease clock (see `lease_valid`).
            m.index = self.ticks;
            self.send(m);
        }
        Ok(())
    }
}

/// The configuration change carried by an entry, if it is one.
pub(crate) fn decode_conf_change(e: &Entry) -> Result<Option<ConfChangeV2>> {
    match EntryType::try_from(e.entry_type) {
        Ok(EntryType::EntryNormal) => Ok(None),
        Ok(EntryType::EntryConfChange) => ConfChange::decode(e.data.clone())
            .map(|cc| Some(confchange::conf_change_to_v2(&cc)))
            .map_err(|err| Error::InvalidConfChange(format!("undecodable ConfChange: {err}"))),
        Ok(EntryType::EntryConfChangeV2) => ConfChangeV2::decode(e.data.clone())
            .map(Some)
            .map_err(|err| Error::InvalidConfChange(format!("undecodable ConfChangeV2: {err}"))),
        Err(_) => Err(Error::InvalidMessage(format!("unknown entry type {}", e.entry_type))),
    }
}
