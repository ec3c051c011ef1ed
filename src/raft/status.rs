//! A read-only summary of a node's consensus state, for operators and tests.

use super::progress::{Progress, ProgressState};
use super::raft_core::{Raft, SoftState, StateRole};
use super::storage::Storage;
use crate::proto::raftpb::{ConfState, HardState};
use std::collections::BTreeMap;

/// A follower's replication state as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressStatus {
    pub matched: u64,
    pub next: u64,
    pub state: ProgressState,
    pub is_learner: bool,
    pub recent_active: bool,
    pub paused: bool,
    pub inflight: usize,
}

impl From<&Progress> for ProgressStatus {
    fn from(p: &Progress) -> Self {
        ProgressStatus {
            matched: p.matched,
            next: p.next,
            state: p.state,
            is_learner: p.is_learner,
            recent_active: p.recent_active,
            paused: p.is_paused(),
            inflight: p.inflight_count(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub id: u64,
    pub hard_state: HardState,
    pub soft_state: SoftState,
    pub applied: u64,
    pub last_index: u64,
    pub conf_state: ConfState,
    pub lead_transferee: u64,
    /// Every member's progress; only on the leader.
    pub progress: Option<BTreeMap<u64, ProgressStatus>>,
}

impl Status {
    pub(crate) fn of<S: Storage>(r: &Raft<S>) -> Status {
        Status {
            id: r.id,
            hard_state: r.hard_state(),
            soft_state: r.soft_state(),
            applied: r.applied(),
            last_index: r.last_index(),
            conf_state: r.trk.conf_state(),
            lead_transferee: r.lead_transferee,
            progress: (r.role == StateRole::Leader)
                .then(|| r.trk.progress.iter().map(|(&id, p)| (id, ProgressStatus::from(p))).collect()),
        }
    }
}
