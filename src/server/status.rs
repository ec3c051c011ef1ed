//! The node's live status, published by the raft and apply threads and read
//! by anyone (Status requests, response headers, tests): lock-free atomics.

use crate::proto::etcdserverpb::ResponseHeader;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct NodeStatus {
    pub cluster_id: u64,
    pub member_id: u64,
    leader: AtomicU64,
    term: AtomicU64,
    raft_index: AtomicU64,
    committed: AtomicU64,
    applied: AtomicU64,
    is_learner: AtomicBool,
    stopping: AtomicBool,
}

impl NodeStatus {
    pub fn new(cluster_id: u64, member_id: u64) -> NodeStatus {
        NodeStatus { cluster_id, member_id, ..Default::default() }
    }

    pub fn set_raft(&self, leader: u64, term: u64, raft_index: u64, committed: u64) {
        self.leader.store(leader, Ordering::Release);
        self.term.store(term, Ordering::Release);
        self.raft_index.store(raft_index, Ordering::Release);
        self.committed.store(committed, Ordering::Release);
    }

    pub fn set_applied(&self, index: u64) {
        self.applied.store(index, Ordering::Release);
    }

    pub fn set_learner(&self, learner: bool) {
        self.is_learner.store(learner, Ordering::Release);
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Acquire)
    }

    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    pub fn raft_index(&self) -> u64 {
        self.raft_index.load(Ordering::Acquire)
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn is_learner(&self) -> bool {
        self.is_learner.load(Ordering::Acquire)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// A response header at store revision `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader { cluster_id: self.cluster_id, member_id: self.member_id, revision, raft_term: self.term() }
    }
}
