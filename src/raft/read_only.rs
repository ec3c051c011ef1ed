//! Read-index requests waiting for the leader to confirm its leadership.
//!
//! Requests get increasing sequence numbers; every heartbeat carries the
//! newest one. A follower's heartbeat response acknowledges every request up
//! to the sequence it carries, so one quorum round confirms a whole batch of
//! reads. Owns only that bookkeeping; sending is the leader's business.

use super::quorum::JointConfig;
use crate::proto::raftpb::Message;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// A confirmed read: once the state machine has applied `index`, a read
/// issued with `request_ctx` may be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadState {
    pub index: u64,
    pub request_ctx: Bytes,
}

#[derive(Debug)]
pub(crate) struct ReadIndexRequest {
    /// The MsgReadIndex, local (`from` 0 or self) or from a follower.
    pub(crate) req: Message,
    /// The commit index when the request arrived.
    pub(crate) index: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    /// Highest sequence each voter acknowledged.
    acks: BTreeMap<u64, u64>,
    /// Unconfirmed requests; the first has sequence `confirmed + 1`.
    unconfirmed: VecDeque<ReadIndexRequest>,
    confirmed: u64,
}

impl ReadOnly {
    pub(crate) fn add_request(&mut self, index: u64, req: Message) {
        self.unconfirmed.push_back(ReadIndexRequest { req, index });
    }

    fn last_sequence(&self) -> u64 {
        self.confirmed + self.unconfirmed.len() as u64
    }

    /// The context for the next heartbeat: the newest sequence, or empty when
    /// nothing waits.
    pub(crate) fn heartbeat_ctx(&self) -> Bytes {
        if self.unconfirmed.is_empty() {
            return Bytes::new();
        }
        Bytes::copy_from_slice(&self.last_sequence().to_be_bytes())
    }

    /// Records an acknowledgement carried by a heartbeat response (or the
    /// leader's own). Contexts that are not 8 bytes are ignored.
    pub(crate) fn recv_ack(&mut self, from: u64, ctx: &[u8]) {
        let Ok(raw) = <[u8; 8]>::try_from(ctx) else { return };
        let seq = u64::from_be_bytes(raw);
        let entry = self.acks.entry(from).or_insert(0);
        *entry = (*entry).max(seq);
    }

    /// The leader acknowledges every request it holds.
    pub(crate) fn self_ack(&mut self, id: u64) {
        let seq = self.last_sequence();
        self.acks.insert(id, seq);
    }

    /// Requests confirmed by a quorum of acknowledgements, in order.
    pub(crate) fn maybe_advance(&mut self, voters: &JointConfig) -> Vec<ReadIndexRequest> {
        let quorum_seq = voters.committed_index(|id| self.acks.get(&id).copied());
        let upto = quorum_seq.min(self.last_sequence());
        if upto <= self.confirmed {
            return Vec::new();
        }
        let n = (upto - self.confirmed) as usize;
        self.confirmed = upto;
        self.unconfirmed.drain(..n).collect()
    }

    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.unconfirmed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::quorum::MajorityConfig;

    fn voters() -> JointConfig {
        JointConfig { incoming: MajorityConfig::new([1, 2, 3]), outgoing: MajorityConfig::default() }
    }

    #[test]
    fn one_quorum_round_confirms_a_batch() {
        let mut ro = ReadOnly::default();
        for i in 0..3 {
            ro.add_request(10 + i, Message::default());
        }
        ro.self_ack(1);
        let ctx = ro.heartbeat_ctx();
        assert!(ro.maybe_advance(&voters()).is_empty(), "leader alone is not a quorum");
        ro.recv_ack(2, &ctx);
        let done = ro.maybe_advance(&voters());
        assert_eq!(done.iter().map(|r| r.index).collect::<Vec<_>>(), vec![10, 11, 12]);
        assert_eq!(ro.pending(), 0);
        assert!(ro.heartbeat_ctx().is_empty());
    }

    #[test]
    fn acks_only_confirm_requests_they_saw() {
        let mut ro = ReadOnly::default();
        ro.add_request(5, Message::default());
        ro.self_ack(1);
        let old_ctx = ro.heartbeat_ctx();
        ro.add_request(6, Message::default());
        ro.self_ack(1);
        ro.recv_ack(2, &old_ctx);
        let done = ro.maybe_advance(&voters());
        assert_eq!(done.len(), 1, "the second request came after the heartbeat");
        assert_eq!(ro.pending(), 1);
        ro.recv_ack(3, b"garbage");
        assert!(ro.maybe_advance(&voters()).is_empty());
    }
}
