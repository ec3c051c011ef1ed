//! What followers and candidates do: accept the leader's appends, heartbeats
//! and snapshots, forward proposals and reads to the leader, count votes.
//!
//! Never called on a leader: `Raft::step` dispatches here by role.

use super::confchange;
use super::errors::{DropReason, Error, Result};
use super::raft_core::{new_message, CampaignType, Raft, StateRole, NONE};
use super::read_only::ReadState;
use super::storage::Storage;
use crate::proto::raftpb::{Message, MessageType, Snapshot};

impl<S: Storage> Raft<S> {
    pub(crate) fn step_candidate(&mut self, m: Message) -> Result<()> {
        let own_resp =
            if self.role == StateRole::PreCandidate { MessageType::MsgPreVoteResp } else { MessageType::MsgVoteResp };
        match m.msg_type() {
            MessageType::MsgProp => Err(Error::ProposalDropped(DropReason::NoLeader)),
            MessageType::MsgReadIndex => self.drop_read_without_leader(&m),
            // A leader of our term exists (m.term == self.term here).
            MessageType::MsgApp => {
                self.become_follower(m.term, m.from);
                self.handle_append_entries(m)
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m)
            }
            MessageType::MsgSnap => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m)
            }
            t if t == own_resp => self.poll(m.from, !m.reject),
            _ => Ok(()),
        }
    }

    pub(crate) fn step_follower(&mut self, m: Message) -> Result<()> {
        match m.msg_type() {
            MessageType::MsgProp => {
                if self.leader_id == NONE {
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                if self.disable_proposal_forwarding {
                    return Err(Error::ProposalDropped(DropReason::ForwardingDisabled));
                }
                self.forward_to_leader(m);
                Ok(())
            }
            MessageType::MsgApp => {
                self.heard_from_leader(m.from);
                self.handle_append_entries(m)
            }
            MessageType::MsgHeartbeat => {
                self.heard_from_leader(m.from);
                self.handle_heartbeat(m)
            }
            MessageType::MsgSnap => {
                self.heard_from_leader(m.from);
                self.handle_snapshot(m)
            }
            MessageType::MsgTransferLeader => {
                if self.leader_id != NONE {
                    self.forward_to_leader(m);
                }
                Ok(())
            }
            MessageType::MsgTimeoutNow => {
                log::info!("raft {:x}: received MsgTimeoutNow from {:x}; campaigning at once", self.id, m.from);
                // Skip the pre-vote: the leader asked for this election.
                self.hup(CampaignType::Transfer)
            }
            MessageType::MsgReadIndex => {
                if self.leader_id == NONE {
                    return self.drop_read_without_leader(&m);
                }
                self.forward_to_leader(m);
                Ok(())
            }
            MessageType::MsgReadIndexResp => {
                if m.entries.len() != 1 {
                    return Err(Error::InvalidMessage(format!(
                        "MsgReadIndexResp from {:x} with {} contexts",
                        m.from,
                        m.entries.len()
                    )));
                }
                let ctx = m.entries[0].data.clone();
                self.read_states.push(ReadState { index: m.index, request_ctx: ctx });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Forwards a request (proposal, read, transfer) to the leader. Whatever
    /// term a peer put on it is dropped: `send` stamps the term of the
    /// messages that carry one and leaves proposals and reads without.
    fn forward_to_leader(&mut self, mut m: Message) {
        m.to = self.leader_id;
        m.term = 0;
        self.send(m);
    }

    /// A read request with no leader to ask: a local one fails so the caller
    /// can retry; a forwarded one is dropped (its sender times out).
    fn drop_read_without_leader(&self, m: &Message) -> Result<()> {
        if m.from == NONE || m.from == self.id {
            return Err(Error::ProposalDropped(DropReason::NoLeader));
        }
        Ok(())
    }

    fn heard_from_leader(&mut self, leader: u64) {
        self.reset_election_elapsed();
        self.leader_id = leader;
    }

    pub(crate) fn handle_append_entries(&mut self, m: Message) -> Result<()> {
        // The entries must follow the previous entry without gaps: the log
        // code indexes the message by position.
        for (i, e) in m.entries.iter().enumerate() {
            if m.index.checked_add(i as u64 + 1) != Some(e.index) {
                return Err(Error::InvalidMessage(format!(
                    "append from {:x} after index {} carries entry {} at position {i}",
                    m.from, m.index, e.index
                )));
            }
        }
        let committed = self.raft_log.committed;
        if m.index < committed {
            // Everything up to our commit index already matches.
            let mut resp = new_message(m.from, MessageType::MsgAppResp);
            resp.index = committed;
            self.send(resp);
            return Ok(());
        }
        if let Some(last_new) = self.raft_log.maybe_append(m.index, m.log_term, m.commit, &m.entries)? {
            let mut resp = new_message(m.from, MessageType::MsgAppResp);
            resp.index = last_new;
            self.send(resp);
            return Ok(());
        }
        // The logs differ at m.index. Hint the largest index whose term is
        // not newer than the leader's entry there, so the leader can skip
        // every entry of a divergent term at once.
        let hint = m.index.min(self.raft_log.last_index());
        let (hint_index, hint_term) = self.raft_log.find_conflict_by_term(hint, m.log_term)?;
        log::debug!(
            "raft {:x}: rejected append at (index {}, term {}) from {:x}; hint (index {hint_index}, term {hint_term})",
            self.id,
            m.index,
            m.log_term,
            m.from
        );
        let mut resp = new_message(m.from, MessageType::MsgAppResp);
        resp.index = m.index;
        resp.reject = true;
        resp.reject_hint = hint_index;
        resp.log_term = hint_term;
        self.send(resp);
        Ok(())
    }

    pub(crate) fn handle_heartbeat(&mut self, m: Message) -> Result<()> {
        let mut resp = new_message(m.from, MessageType::MsgHeartbeatResp);
        resp.context = m.context.clone();
        // Echo the leader's lease clock.
        resp.index = m.index;
        self.send(resp);
        // The leader never sends a commit index beyond what it knows we hold;
        // if it does, our log was lost: refuse to commit blindly.
        self.raft_log.commit_to(m.commit)
    }

    pub(crate) fn handle_snapshot(&mut self, m: Message) -> Result<()> {
        let snapshot = m.snapshot.unwrap_or_default();
        let (index, term) = snapshot.metadata.as_ref().map_or((0, 0), |md| (md.index, md.term));
        let mut resp = new_message(m.from, MessageType::MsgAppResp);
        if self.restore(snapshot)? {
            log::info!("raft {:x}: restored snapshot at index {index}, term {term}", self.id);
            resp.index = self.raft_log.last_index();
        } else {
            resp.index = self.raft_log.committed;
        }
        self.send(resp);
        Ok(())
    }

    /// Installs a snapshot from the leader unless it is stale or our log
    /// already contains its last entry. Returns whether it was installed.
    fn restore(&mut self, snapshot: Snapshot) -> Result<bool> {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        if meta.index <= self.raft_log.committed {
            return Ok(false);
        }
        if self.role != StateRole::Follower {
            log::warn!("raft {:x}: refused a snapshot while {:?}", self.id, self.role);
            return Ok(false);
        }
        let cs = meta.conf_state.clone().unwrap_or_default();
        let in_config = cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).any(|&id| id == self.id);
        if !in_config {
            log::warn!("raft {:x}: refused a snapshot whose configuration does not contain us", self.id);
            return Ok(false);
        }
        if self.raft_log.match_term(meta.index, meta.term)? {
            // We have the snapshot's last entry: just commit up to it.
            self.raft_log.commit_to(meta.index)?;
            return Ok(false);
        }
        // Check the configuration before changing anything.
        let (cfg, prs) = confchange::restore(&self.trk, &cs, meta.index)?;
        self.raft_log.restore(snapshot);
        self.switch_to_config(cfg, prs)?;
        Ok(true)
    }
}
