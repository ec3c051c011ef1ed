//! The leader's (and candidate's) view of the configuration: who votes, who
//! learns, each node's progress, and the votes of the current election.
//!
//! Owns membership bookkeeping and quorum questions over it. Ordered maps
//! keep every iteration deterministic, which the simulation relies on.

use super::progress::Progress;
use super::quorum::{JointConfig, VoteResult};
use crate::proto::raftpb::ConfState;
use std::collections::{BTreeMap, BTreeSet};

/// A configuration: voters (possibly joint), learners, and the outgoing
/// voters that become learners when the joint configuration is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    pub voters: JointConfig,
    pub learners: BTreeSet<u64>,
    pub learners_next: BTreeSet<u64>,
    pub auto_leave: bool,
}

impl TrackerConfig {
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.ids().collect(),
            learners: self.learners.iter().copied().collect(),
            voters_outgoing: self.voters.outgoing.ids().collect(),
            learners_next: self.learners_next.iter().copied().collect(),
            auto_leave: self.auto_leave,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProgressTracker {
    pub config: TrackerConfig,
    pub progress: BTreeMap<u64, Progress>,
    pub(crate) votes: BTreeMap<u64, bool>,
    pub(crate) max_inflight: usize,
    pub(crate) max_inflight_bytes: u64,
}

impl ProgressTracker {
    pub fn new(max_inflight: usize, max_inflight_bytes: u64) -> ProgressTracker {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            max_inflight,
            max_inflight_bytes,
        }
    }

    pub fn conf_state(&self) -> ConfState {
        self.config.to_conf_state()
    }

    /// A single voter and nothing else: it commits and reads alone.
    pub fn is_singleton(&self) -> bool {
        self.config.voters.incoming.len() == 1 && !self.config.voters.is_joint()
    }

    /// The largest index replicated on a quorum of voters.
    pub fn committed(&self) -> u64 {
        self.config.voters.committed_index(|id| self.progress.get(&id).map(|p| p.matched))
    }

    /// Whether a quorum of voters was recently active (this node counts
    /// itself as active).
    pub fn quorum_active(&self, self_id: u64) -> bool {
        let votes: BTreeMap<u64, bool> = self
            .progress
            .iter()
            .filter(|(_, p)| !p.is_learner)
            .map(|(&id, p)| (id, id == self_id || p.recent_active))
            .collect();
        self.config.voters.vote_result(&votes) == VoteResult::Won
    }

    pub fn voter_ids(&self) -> BTreeSet<u64> {
        self.config.voters.ids()
    }

    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records a vote; only the first vote of each node counts.
    pub fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// (granted, rejected, result) of the current election.
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let (mut granted, mut rejected) = (0, 0);
        for (id, p) in &self.progress {
            if p.is_learner {
                continue;
            }
            match self.votes.get(id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        (granted, rejected, self.config.voters.vote_result(&self.votes))
    }
}
