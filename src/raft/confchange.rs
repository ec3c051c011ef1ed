//! Computes the configuration that results from a configuration change, and
//! the configuration described by a persisted `ConfState`.
//!
//! Owns the rules of membership change: a simple change alters at most one
//! voter; anything more goes through a joint configuration (§6 of the Raft
//! thesis) that is entered, then left. It works on copies and never touches
//! the live tracker: the caller switches to the result.

use super::errors::{Error, Result};
use super::progress::Progress;
use super::quorum::{JointConfig, MajorityConfig};
use super::tracker::{ProgressTracker, TrackerConfig};
use crate::proto::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};
use std::collections::BTreeMap;

type Changed = (TrackerConfig, BTreeMap<u64, Progress>);

fn invalid<T>(why: impl Into<String>) -> Result<T> {
    Err(Error::InvalidConfChange(why.into()))
}

/// Converts a single-change `ConfChange` to the general form.
pub fn conf_change_to_v2(cc: &ConfChange) -> ConfChangeV2 {
    ConfChangeV2 {
        transition: ConfChangeTransition::Auto as i32,
        changes: vec![ConfChangeSingle { change_type: cc.change_type, node_id: cc.node_id }],
        context: cc.context.clone(),
    }
}

/// Whether `cc` asks to leave a joint configuration (the empty change).
pub fn is_leave_joint(cc: &ConfChangeV2) -> bool {
    cc.transition() == ConfChangeTransition::Auto && cc.changes.is_empty()
}

/// `Some(auto_leave)` if `cc` must go through a joint configuration: asked
/// for explicitly, or more than one change at once.
pub fn enters_joint(cc: &ConfChangeV2) -> Option<bool> {
    let transition = cc.transition();
    if transition != ConfChangeTransition::Auto || cc.changes.len() > 1 {
        Some(transition != ConfChangeTransition::JointExplicit)
    } else {
        None
    }
}

/// Applies changes to copies of a tracker's configuration and progress.
pub(crate) struct Changer<'a> {
    pub(crate) tracker: &'a ProgressTracker,
    /// The leader's last index: new nodes start probing from there.
    pub(crate) last_index: u64,
}

impl Changer<'_> {
    /// Applies `cc` as a whole: leave joint, enter joint, or simple.
    pub(crate) fn apply_v2(&self, cc: &ConfChangeV2) -> Result<Changed> {
        if is_leave_joint(cc) {
            self.leave_joint()
        } else if let Some(auto_leave) = enters_joint(cc) {
            self.enter_joint(auto_leave, &cc.changes)
        } else {
            self.simple(&cc.changes)
        }
    }

    /// Enters a joint configuration: the current voters become the outgoing
    /// half, the changes are applied to the incoming half.
    pub(crate) fn enter_joint(&self, auto_leave: bool, changes: &[ConfChangeSingle]) -> Result<Changed> {
        let (mut cfg, mut prs) = self.copy()?;
        if cfg.voters.is_joint() {
            return invalid("config is already joint");
        }
        if cfg.voters.incoming.is_empty() {
            return invalid("can't make a zero-voter config joint");
        }
        cfg.voters.outgoing = cfg.voters.incoming.clone();
        self.apply(&mut cfg, &mut prs, changes)?;
        cfg.auto_leave = auto_leave;
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// Leaves the joint configuration: the incoming half is the new
    /// configuration; outgoing voters not in it become learners (if they were
    /// demoted) or are removed.
    pub(crate) fn leave_joint(&self) -> Result<Changed> {
        let (mut cfg, mut prs) = self.copy()?;
        if !cfg.voters.is_joint() {
            return invalid("can't leave a non-joint config");
        }
        for id in std::mem::take(&mut cfg.learners_next) {
            cfg.learners.insert(id);
            if let Some(p) = prs.get_mut(&id) {
                p.is_learner = true;
            }
        }
        for id in cfg.voters.outgoing.ids() {
            if !cfg.voters.incoming.contains(id) && !cfg.learners.contains(&id) {
                prs.remove(&id);
            }
        }
        cfg.voters.outgoing = MajorityConfig::default();
        cfg.auto_leave = false;
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// A change of at most one voter, outside a joint configuration.
    pub(crate) fn simple(&self, changes: &[ConfChangeSingle]) -> Result<Changed> {
        let (mut cfg, mut prs) = self.copy()?;
        if cfg.voters.is_joint() {
            return invalid("can't apply simple config change in joint config");
        }
        self.apply(&mut cfg, &mut prs, changes)?;
        let before = &self.tracker.config.voters.incoming.voters;
        let after = &cfg.voters.incoming.voters;
        if before.symmetric_difference(after).count() > 1 {
            return invalid("more than one voter changed without entering joint config");
        }
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    fn copy(&self) -> Result<Changed> {
        let cfg = self.tracker.config.clone();
        let prs = self.tracker.progress.clone();
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    fn apply(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut BTreeMap<u64, Progress>,
        changes: &[ConfChangeSingle],
    ) -> Result<()> {
        for cc in changes {
            if cc.node_id == 0 {
                // etcd replaces refused changes with node 0; they do nothing.
                continue;
            }
            match ConfChangeType::try_from(cc.change_type) {
                Ok(ConfChangeType::ConfChangeAddNode) => self.make_voter(cfg, prs, cc.node_id),
                Ok(ConfChangeType::ConfChangeAddLearnerNode) => self.make_learner(cfg, prs, cc.node_id),
                Ok(ConfChangeType::ConfChangeRemoveNode) => remove(cfg, prs, cc.node_id),
                Ok(ConfChangeType::ConfChangeUpdateNode) => {}
                Err(_) => return invalid(format!("unexpected conf change type {}", cc.change_type)),
            }
        }
        if cfg.voters.incoming.is_empty() {
            return invalid("removed all voters");
        }
        Ok(())
    }

    fn new_progress(&self, is_learner: bool) -> Progress {
        // Start probing at the leader's last index; the follower's answer
        // moves `next` to where the logs agree.
        let mut p = Progress::new(self.last_index.max(1), self.tracker.max_inflight, self.tracker.max_inflight_bytes);
        p.is_learner = is_learner;
        // A new node gets a full election timeout to respond before
        // check-quorum counts it as inactive.
        p.recent_active = true;
        p
    }

    fn make_voter(&self, cfg: &mut TrackerConfig, prs: &mut BTreeMap<u64, Progress>, id: u64) {
        match prs.get_mut(&id) {
            None => {
                prs.insert(id, self.new_progress(false));
            }
            Some(p) => {
                p.is_learner = false;
                cfg.learners.remove(&id);
                cfg.learners_next.remove(&id);
            }
        }
        cfg.voters.incoming.voters.insert(id);
    }

    fn make_learner(&self, cfg: &mut TrackerConfig, prs: &mut BTreeMap<u64, Progress>, id: u64) {
        let Some(existing) = prs.get(&id).cloned() else {
            prs.insert(id, self.new_progress(true));
            cfg.learners.insert(id);
            return;
        };
        if existing.is_learner {
            return;
        }
        // Demoting a voter: remove it, then add it back as a learner, keeping
        // its progress. While it is still an outgoing voter it becomes a
        // learner only when the joint configuration is left.
        remove(cfg, prs, id);
        let mut p = existing;
        if cfg.voters.outgoing.contains(id) {
            cfg.learners_next.insert(id);
        } else {
            p.is_learner = true;
            cfg.learners.insert(id);
        }
        prs.insert(id, p);
    }
}

fn remove(cfg: &mut TrackerConfig, prs: &mut BTreeMap<u64, Progress>, id: u64) {
    if !prs.contains_key(&id) {
        return;
    }
    cfg.voters.incoming.voters.remove(&id);
    cfg.learners.remove(&id);
    cfg.learners_next.remove(&id);
    // An outgoing voter keeps its progress until the joint config is left.
    if !cfg.voters.outgoing.contains(id) {
        prs.remove(&id);
    }
}

fn check_invariants(cfg: &TrackerConfig, prs: &BTreeMap<u64, Progress>) -> Result<()> {
    for id in cfg.voters.ids().iter().chain(&cfg.learners).chain(&cfg.learners_next) {
        if !prs.contains_key(id) {
            return invalid(format!("no progress for {id}"));
        }
    }
    for id in &cfg.learners_next {
        if !cfg.voters.outgoing.contains(*id) {
            return invalid(format!("{id} is in learners_next but not an outgoing voter"));
        }
        if prs[id].is_learner {
            return invalid(format!("{id} is in learners_next but already marked as learner"));
        }
    }
    for id in &cfg.learners {
        if cfg.voters.contains(*id) {
            return invalid(format!("{id} is both a learner and a voter"));
        }
        if !prs[id].is_learner {
            return invalid(format!("{id} is a learner but not marked as learner"));
        }
    }
    if !cfg.voters.is_joint() {
        if !cfg.learners_next.is_empty() {
            return invalid("learners_next must be empty when not joint");
        }
        if cfg.auto_leave {
            return invalid("auto_leave must be false when not joint");
        }
    }
    Ok(())
}

/// The configuration and fresh progress described by a persisted
/// `ConfState` (at start-up, or from a snapshot).
pub(crate) fn restore(tracker: &ProgressTracker, cs: &ConfState, last_index: u64) -> Result<Changed> {
    let cfg = TrackerConfig {
        voters: JointConfig {
            incoming: MajorityConfig::new(cs.voters.iter().copied()),
            outgoing: MajorityConfig::new(cs.voters_outgoing.iter().copied()),
        },
        learners: cs.learners.iter().copied().collect(),
        learners_next: cs.learners_next.iter().copied().collect(),
        auto_leave: cs.auto_leave && !cs.voters_outgoing.is_empty(),
    };
    let mut prs = BTreeMap::new();
    for id in cfg.voters.ids().into_iter().chain(cfg.learners.iter().copied()).chain(cfg.learners_next.iter().copied())
    {
        let mut p = Progress::new(last_index + 1, tracker.max_inflight, tracker.max_inflight_bytes);
        p.is_learner = cfg.learners.contains(&id);
        p.recent_active = true;
        prs.insert(id, p);
    }
    if cs.auto_leave && cs.voters_outgoing.is_empty() {
        return invalid("auto_leave set in a non-joint conf state");
    }
    check_invariants(&cfg, &prs)?;
    Ok((cfg, prs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(voters: &[u64], learners: &[u64]) -> ProgressTracker {
        let mut t = ProgressTracker::new(10, 0);
        let cs = ConfState { voters: voters.to_vec(), learners: learners.to_vec(), ..Default::default() };
        let (cfg, prs) = restore(&t, &cs, 5).unwrap();
        t.config = cfg;
        t.progress = prs;
        t
    }

    fn single(t: ConfChangeType, id: u64) -> ConfChangeSingle {
        ConfChangeSingle { change_type: t as i32, node_id: id }
    }

    use ConfChangeType::*;

    #[test]
    fn simple_allows_one_voter_change() {
        let t = tracker(&[1, 2, 3], &[]);
        let c = Changer { tracker: &t, last_index: 10 };
        let (cfg, prs) = c.simple(&[single(ConfChangeAddNode, 4)]).unwrap();
        assert_eq!(cfg.voters.incoming.ids().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(prs[&4].next, 10);
        assert!(c.simple(&[single(ConfChangeAddNode, 4), single(ConfChangeAddNode, 5)]).is_err());
        assert!(c.simple(&[single(ConfChangeRemoveNode, 1), single(ConfChangeAddNode, 5)]).is_err());
        // Adding learners does not change voters.
        let (cfg, _) = c.simple(&[single(ConfChangeAddLearnerNode, 7), single(ConfChangeAddLearnerNode, 8)]).unwrap();
        assert_eq!(cfg.learners.len(), 2);
    }

    #[test]
    fn removing_all_voters_is_refused() {
        let t = tracker(&[1], &[]);
        let c = Changer { tracker: &t, last_index: 1 };
        assert!(c.simple(&[single(ConfChangeRemoveNode, 1)]).is_err());
    }

    #[test]
    fn joint_enter_and_leave_with_demotion() {
        let t = tracker(&[1, 2, 3], &[]);
        let c = Changer { tracker: &t, last_index: 10 };
        let (cfg, prs) = c
            .enter_joint(
                true,
                &[single(ConfChangeAddLearnerNode, 3), single(ConfChangeAddNode, 4), single(ConfChangeRemoveNode, 2)],
            )
            .unwrap();
        assert!(cfg.voters.is_joint());
        assert_eq!(cfg.voters.outgoing.ids().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(cfg.voters.incoming.ids().collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(cfg.learners_next.iter().copied().collect::<Vec<_>>(), vec![3]);
        assert!(prs.contains_key(&2), "outgoing voter keeps its progress while joint");

        let mut joint = t.clone();
        joint.config = cfg;
        joint.progress = prs;
        let c = Changer { tracker: &joint, last_index: 10 };
        assert!(c.enter_joint(true, &[]).is_err(), "already joint");
        assert!(c.simple(&[single(ConfChangeAddNode, 9)]).is_err(), "simple while joint");
        let (cfg, prs) = c.leave_joint().unwrap();
        assert!(!cfg.voters.is_joint());
        assert_eq!(cfg.learners.iter().copied().collect::<Vec<_>>(), vec![3]);
        assert!(prs[&3].is_learner);
        assert!(!prs.contains_key(&2), "removed voter is gone after leaving");
    }

    #[test]
    fn conf_change_v2_classification() {
        let mut cc = ConfChangeV2::default();
        assert!(is_leave_joint(&cc));
        cc.changes.push(single(ConfChangeAddNode, 2));
        assert_eq!(enters_joint(&cc), None);
        cc.changes.push(single(ConfChangeAddNode, 3));
        assert_eq!(enters_joint(&cc), Some(true));
        cc.changes.truncate(1);
        cc.transition = ConfChangeTransition::JointExplicit as i32;
        assert_eq!(enters_joint(&cc), Some(false));
    }

    #[test]
    fn restore_rejects_inconsistent_conf_states() {
        let t = ProgressTracker::new(10, 0);
        let bad = ConfState { voters: vec![1, 2], learners: vec![2], ..Default::default() };
        assert!(restore(&t, &bad, 0).is_err());
        let bad = ConfState { voters: vec![1], auto_leave: true, ..Default::default() };
        assert!(restore(&t, &bad, 0).is_err());
    }
}
