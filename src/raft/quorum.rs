//! Quorum arithmetic: which index a configuration has committed and how an
//! election stands, for simple majorities and joint configurations.
//!
//! Pure functions over sets of ids; knows nothing of messages or logs.

use std::collections::{BTreeMap, BTreeSet};

/// The state of an election (or of a quorum check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// Not decided yet: missing votes could still tip it either way.
    Pending,
    /// A quorum can no longer be reached.
    Lost,
    /// A quorum voted yes.
    Won,
}

/// A set of voters deciding by simple majority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    pub(crate) voters: BTreeSet<u64>,
}

impl MajorityConfig {
    pub fn new(voters: impl IntoIterator<Item = u64>) -> MajorityConfig {
        MajorityConfig { voters: voters.into_iter().collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.voters.len()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.voters.iter().copied()
    }

    /// The largest index acknowledged by a majority. `acked` gives each
    /// voter's acknowledged index (a voter without one counts as 0). An empty
    /// configuration has committed everything (`u64::MAX`), so that it never
    /// holds back the other half of a joint configuration.
    pub fn committed_index(&self, acked: impl Fn(u64) -> Option<u64>) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        let mut indexes: Vec<u64> = self.voters.iter().map(|&id| acked(id).unwrap_or(0)).collect();
        indexes.sort_unstable();
        let quorum = indexes.len() / 2 + 1;
        indexes[indexes.len() - quorum]
    }

    /// The result of an election given the votes cast so far. An empty
    /// configuration wins, for the same reason as in `committed_index`.
    pub fn vote_result(&self, votes: &BTreeMap<u64, bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for id in &self.voters {
            match votes.get(id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.voters.len() / 2 + 1;
        if yes >= quorum {
            VoteResult::Won
        } else if yes + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

/// Two majority configurations that must both agree: the incoming one, and
/// the outgoing one while a joint-consensus change is in progress (empty
/// otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JointConfig {
    pub incoming: MajorityConfig,
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// All voters of both halves, each once, in order.
    pub fn ids(&self) -> BTreeSet<u64> {
        self.incoming.voters.union(&self.outgoing.voters).copied().collect()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// The largest index committed by both halves.
    pub fn committed_index(&self, acked: impl Fn(u64) -> Option<u64>) -> u64 {
        let a = self.incoming.committed_index(&acked);
        let b = self.outgoing.committed_index(&acked);
        a.min(b)
    }

    /// Won only if both halves won; lost if either lost.
    pub fn vote_result(&self, votes: &BTreeMap<u64, bool>) -> VoteResult {
        let a = self.incoming.vote_result(votes);
        let b = self.outgoing.vote_result(votes);
        match (a, b) {
            (x, y) if x == y => x,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(pairs: &[(u64, u64)]) -> impl Fn(u64) -> Option<u64> + '_ {
        move |id| pairs.iter().find(|p| p.0 == id).map(|p| p.1)
    }

    #[test]
    fn majority_commits_the_median_of_acks() {
        let c = MajorityConfig::new([1, 2, 3]);
        assert_eq!(c.committed_index(acked(&[(1, 5), (2, 3), (3, 9)])), 5);
        assert_eq!(c.committed_index(acked(&[(1, 5)])), 0, "missing voters count as 0");
        let c = MajorityConfig::new([1, 2, 3, 4]);
        assert_eq!(c.committed_index(acked(&[(1, 5), (2, 3), (3, 9), (4, 1)])), 3);
        assert_eq!(MajorityConfig::default().committed_index(acked(&[])), u64::MAX);
    }

    #[test]
    fn joint_commits_the_minimum_of_both_halves() {
        let j = JointConfig { incoming: MajorityConfig::new([1, 2, 3]), outgoing: MajorityConfig::new([3, 4, 5]) };
        let a = [(1, 9), (2, 9), (3, 2), (4, 4), (5, 1)];
        assert_eq!(j.committed_index(acked(&a)), 2);
    }

    #[test]
    fn vote_results() {
        let c = MajorityConfig::new([1, 2, 3]);
        let mut v = BTreeMap::new();
        assert_eq!(c.vote_result(&v), VoteResult::Pending);
        v.insert(1, true);
        v.insert(2, false);
        assert_eq!(c.vote_result(&v), VoteResult::Pending);
        v.insert(3, true);
        assert_eq!(c.vote_result(&v), VoteResult::Won);
        v.insert(3, false);
        assert_eq!(c.vote_result(&v), VoteResult::Lost);

        let j = JointConfig { incoming: MajorityConfig::new([1, 2, 3]), outgoing: MajorityConfig::new([4, 5, 6]) };
        let v: BTreeMap<u64, bool> = [(1, true), (2, true), (4, false), (5, false)].into();
        assert_eq!(j.vote_result(&v), VoteResult::Lost, "a lost half loses");
        let v: BTreeMap<u64, bool> = [(1, true), (2, true), (4, true)].into();
        assert_eq!(j.vote_result(&v), VoteResult::Pending);
    }
}
