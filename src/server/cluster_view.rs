//! What the raft thread knows of every member's replication, published for
//! the membership checks that need it (strict reconfiguration, promoting a
//! learner only once it is in sync). Only a leader's view says anything
//! about the others; a follower publishes `is_leader: false` and no progress.
//!
//! Owns the snapshot and its hand-over; never computes a decision.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One member as the leader tracks it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerProgress {
    /// The highest log index known to be on its disk.
    pub matched: u64,
    /// Whether it answered within the last election timeout.
    pub active: bool,
    pub is_learner: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub member_id: u64,
    pub is_leader: bool,
    /// This member's last log index.
    pub last_index: u64,
    /// Every member of the configuration (this one included) and, on a
    /// leader, its progress.
    pub progress: BTreeMap<u64, PeerProgress>,
}

impl ClusterView {
    /// Whether `id` answered lately (this member always has).
    pub fn is_active(&self, id: u64) -> bool {
        id == self.member_id || self.progress.get(&id).is_some_and(|p| p.active)
    }
}

/// Where the raft thread publishes its view and the checks read it.
#[derive(Default)]
pub struct ViewCell(Mutex<Arc<ClusterView>>);

impl ViewCell {
    pub fn publish(&self, view: ClusterView) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
    }

    pub fn get(&self) -> Arc<ClusterView> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
