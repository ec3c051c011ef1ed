//! Learners and membership changes: single-step add and remove, one change
//! at a time, joint consensus (ConfChangeV2: auto, implicit and explicit
//! leave), a leader crash in the middle of a joint change, removing the
//! leader.

use super::harness::*;
use raftkv::proto::raftpb::{ConfChangeTransition, ConfChangeType, ConfState, EntryType, MessageType};
use raftkv::raft::{DropReason, Error, MemStorage, StateRole};

/// Nodes starting from the same configuration `cs` (no log).
fn cluster_with_conf(cs: ConfState, ids: &[u64], f: impl Fn(&mut raftkv::raft::Config) + 'static) -> Cluster {
    let storages: Vec<(u64, MemStorage)> =
        ids.iter().map(|&id| (id, storage_with_log(cs.clone(), &[], 0, 0))).collect();
    Cluster::from_storages(storages, f)
}

fn is_vote_request(m: &raftkv::proto::raftpb::Message) -> bool {
    is(m, MessageType::MsgVote) || is(m, MessageType::MsgPreVote)
}

// ------------------------------------------------------------------ learners

#[test]
fn a_single_voter_commits_alone_while_learners_receive_and_apply_the_log() {
    let mut c = cluster_with_conf(voters_learners(&[1], &[2, 3]), &[1, 2, 3], |_| {});
    c.elect(1);
    c.isolate(2);
    c.isolate(3);
    c.propose(1, "a").unwrap();
    c.stabilize();
    assert_eq!(c.committed(1), c.last_index(1), "learners are not needed to commit");
    assert_eq!(c.applied_data(1), vec!["a"]);
    assert!(c.applied_data(2).is_empty());
    c.heal();
    c.tick(1);
    c.stabilize();
    for id in [2, 3] {
        assert_eq!(c.applied_data(id), vec!["a"], "learner {id} applies the log");
        assert_eq!(c.terms(id), c.terms(1));
    }
}

#[test]
fn learners_never_campaign_and_are_never_asked_to_vote() {
    let mut c = cluster_with_conf(voters_learners(&[1, 2], &[3, 4]), &[1, 2, 3, 4], |_| {});
    c.clear_trace();
    c.elect(1);
    assert!(c.count_sent(|m| m.from == 1 && m.to == 2 && is_vote_request(m)) > 0);
    assert_eq!(
        c.count_sent(|m| (m.to == 3 || m.to == 4) && is_vote_request(m)),
        0,
        "vote requests go to voters only: {:?}",
        c.sent(is_vote_request)
    );
    // Learners cut off from the leader for many election timeouts stay quiet.
    c.isolate(3);
    c.isolate(4);
    c.clear_trace();
    for _ in 0..100 {
        c.tick_all();
        c.stabilize();
    }
    c.campaign(3);
    for id in [3, 4] {
        assert_eq!(c.role(id), StateRole::Follower, "learner {id}");
        assert_eq!(c.term(id), c.term(1));
    }
    assert_eq!(c.count_sent(|m| (m.from == 3 || m.from == 4) && is_vote_request(m)), 0);
    assert_eq!(c.leaders(), vec![1]);
}

#[test]
fn a_learners_vote_does_not_count() {
    let cs = voters_learners(&[1, 2, 3], &[4]);
    let mut c = cluster_with_conf(cs, &[1, 2, 3, 4], |cfg| cfg.pre_vote = false);
    c.isolate(1);
    c.campaign(1);
    assert_eq!(c.role(1), StateRole::Candidate);
    let term = c.term(1);
    let grant = |from| msg(MessageType::MsgVoteResp, from, 1, term);
    c.step(1, grant(4)).unwrap();
    assert_eq!(c.role(1), StateRole::Candidate, "a learner's vote is not a voter's");
    c.step(1, grant(2)).unwrap();
    assert_eq!(c.role(1), StateRole::Leader, "a voter's is");
}

#[test]
fn learners_acknowledging_do_not_make_a_quorum() {
    let mut c = cluster_with_conf(voters_learners(&[1, 2], &[3, 4]), &[1, 2, 3, 4], |_| {});
    c.elect(1);
    let committed = c.committed(1);
    c.cut(1, 2);
    c.propose(1, "x").unwrap();
    c.stabilize();
    let last = c.last_index(1);
    assert_eq!(c.progress(1, 3).matched, last);
    assert_eq!(c.progress(1, 4).matched, last);
    assert_eq!(c.committed(1), committed, "two learners and the leader are not a quorum of voters {{1, 2}}");
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(1), last);
}

#[test]
fn a_promoted_learner_votes_and_counts() {
    let mut c = cluster_with_conf(voters_learners(&[1, 2], &[3]), &[1, 2, 3], |_| {});
    c.elect(1);
    c.propose_conf_change(1, &add_node(3)).unwrap();
    c.stabilize();
    for id in 1..=3 {
        assert_eq!(conf_voters(&c.node(id).sm.conf_state), (vec![1, 2, 3], vec![], vec![]), "node {id}");
    }
    // Node 3 now counts towards a quorum ...
    c.cut(1, 2);
    c.propose(1, "x").unwrap();
    c.stabilize();
    assert_eq!(c.committed(1), c.last_index(1), "1 and 3 are a majority of {{1, 2, 3}}");
    // ... and may lead.
    c.heal();
    c.crash(1);
    c.elect(3);
    c.stabilize();
    assert_eq!(c.applied_data(2), vec!["x"]);
}

// ------------------------------------------------------------------ single-step changes

#[test]
fn adding_a_voter_it_catches_up_and_then_counts() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose(1, "before").unwrap();
    c.stabilize();
    c.add_empty_node(4);
    c.propose_conf_change(1, &add_node(4)).unwrap();
    c.stabilize();
    for id in 1..=4 {
        assert_eq!(conf_voters(&c.node(id).sm.conf_state).0, vec![1, 2, 3, 4], "node {id}");
    }
    assert_eq!(c.applied_data(4), vec!["before"], "the new node got the whole log");
    assert_eq!(c.terms(4), c.terms(1));
    // Four voters: 1 and 2 alone are no quorum any more.
    c.cut(1, 3);
    c.cut(1, 4);
    c.propose(1, "after").unwrap();
    c.stabilize();
    assert!(c.committed(1) < c.last_index(1), "2 of 4 voters do not commit");
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(1), c.last_index(1));
    assert_eq!(c.applied_data(4), vec!["before", "after"]);
}

#[test]
fn a_removed_voter_no_longer_counts_nor_receives_the_log() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose_conf_change(1, &remove_node(3)).unwrap();
    c.stabilize();
    for id in [1, 2] {
        assert_eq!(conf_voters(&c.node(id).sm.conf_state).0, vec![1, 2], "node {id}");
    }
    c.clear_trace();
    c.cut(1, 2);
    c.propose(1, "x").unwrap();
    for _ in 0..3 {
        c.tick(1);
        c.stabilize();
    }
    assert!(c.committed(1) < c.last_index(1), "3 no longer helps commit");
    assert_eq!(c.count_sent(|m| m.from == 1 && m.to == 3), 0, "nothing is sent to a removed node");
}

#[test]
fn only_one_conf_change_may_be_pending() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.add_empty_node(4);
    c.add_empty_node(5);
    c.propose_conf_change(1, &add_node(4)).unwrap();
    assert_eq!(c.propose_conf_change(1, &add_node(5)), Err(dropped(DropReason::ConfChangePending)));
    assert_eq!(
        c.propose_conf_change_v2(
            1,
            &cc_v2(ConfChangeTransition::Auto, vec![single(ConfChangeType::ConfChangeAddNode, 5)])
        ),
        Err(dropped(DropReason::ConfChangePending))
    );
    c.stabilize();
    assert_eq!(conf_voters(&c.node(1).sm.conf_state).0, vec![1, 2, 3, 4]);
    c.propose_conf_change(1, &add_node(5)).unwrap();
    c.stabilize();
    assert_eq!(conf_voters(&c.node(1).sm.conf_state).0, vec![1, 2, 3, 4, 5]);
    // Nothing else was refused on the way.
    assert!(c.refused.is_empty());
}

#[test]
fn a_committed_but_unapplied_conf_change_is_still_pending() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose_conf_change(1, &add_learner(4)).unwrap();
    // The leader sees the commit but its Ready is left unhandled.
    c.node_mut(1).manual_ready = true;
    c.stabilize();
    assert_eq!(c.committed(1), c.last_index(1));
    assert!(c.raw(1).raft.applied() < c.committed(1));
    assert_eq!(c.propose_conf_change(1, &add_learner(5)), Err(dropped(DropReason::ConfChangePending)));
    c.node_mut(1).manual_ready = false;
    c.handle_ready(1);
    c.propose_conf_change(1, &add_learner(5)).unwrap();
}

#[test]
fn a_conf_change_refused_for_the_uncommitted_limit_is_not_left_pending() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_uncommitted_entries_size = 100);
    c.elect(1);
    c.isolate(2);
    c.isolate(3);
    c.propose_bytes(1, vec![b'x'; 100].into()).unwrap();
    assert_eq!(c.propose_conf_change(1, &add_learner(4)), Err(dropped(DropReason::UncommittedLimit)));
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(1), c.last_index(1));
    assert_eq!(c.raw(1).raft.applied(), c.last_index(1));
    // Nothing is pending: the refused change never entered the log.
    assert_eq!(c.propose_conf_change(1, &add_learner(4)), Ok(()));
}

#[test]
fn invalid_conf_changes_are_refused_at_proposal() {
    let mut c = Cluster::new(&[1]);
    c.elect(1);
    let last = c.last_index(1);
    assert!(matches!(c.propose_conf_change(1, &remove_node(1)), Err(Error::InvalidConfChange(_))), "no voter left");
    assert_eq!(c.propose_conf_change_v2(1, &leave_joint()), Err(dropped(DropReason::NotJoint)));
    let bad_type = raftkv::proto::raftpb::ConfChange { change_type: 42, node_id: 2, ..Default::default() };
    assert!(matches!(c.propose_conf_change(1, &bad_type), Err(Error::InvalidConfChange(_))));
    assert_eq!(c.last_index(1), last, "nothing was appended");
    // A valid change still goes through afterwards.
    c.propose_conf_change(1, &add_learner(2)).unwrap();
    assert_eq!(c.last_index(1), last + 1);
}

// ------------------------------------------------------------------ joint consensus

fn joint_of(cs: &ConfState) -> bool {
    !cs.voters_outgoing.is_empty()
}

/// The configurations node `id` applied after the bootstrap ones.
fn history_after_bootstrap(c: &Cluster, id: u64, bootstrap: usize) -> Vec<ConfState> {
    c.node(id).sm.conf_history.iter().skip(bootstrap).cloned().collect()
}

#[test]
fn joint_auto_with_two_changes_enters_and_leaves_automatically() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.add_empty_node(4);
    let change = cc_v2(
        ConfChangeTransition::Auto,
        vec![single(ConfChangeType::ConfChangeAddNode, 4), single(ConfChangeType::ConfChangeRemoveNode, 3)],
    );
    c.propose_conf_change_v2(1, &change).unwrap();
    c.stabilize();
    for id in [1, 2, 4] {
        let h = history_after_bootstrap(&c, id, 3);
        let joint: Vec<_> = h.iter().filter(|cs| joint_of(cs)).collect();
        assert_eq!(joint.len(), 1, "node {id} went through one joint configuration: {h:?}");
        assert_eq!(conf_voters(joint[0]), (vec![1, 2, 4], vec![1, 2, 3], vec![]));
        assert!(joint[0].auto_leave, "two changes with Auto leave automatically");
        let last = h.last().unwrap();
        assert_eq!(conf_voters(last), (vec![1, 2, 4], vec![], vec![]), "node {id} left the joint configuration");
        assert!(!last.auto_leave);
    }
    // The leave entry is the empty V2 change, proposed by the leader itself.
    let leaves = c
        .stored_entries(1)
        .into_iter()
        .filter(|e| e.entry_type() == EntryType::EntryConfChangeV2 && e.data.is_empty())
        .count();
    assert_eq!(leaves, 1);
}

#[test]
fn joint_implicit_with_one_change_is_joint_and_leaves_automatically() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.add_empty_node(4);
    let change = cc_v2(ConfChangeTransition::JointImplicit, vec![single(ConfChangeType::ConfChangeAddNode, 4)]);
    c.propose_conf_change_v2(1, &change).unwrap();
    c.stabilize();
    let h = history_after_bootstrap(&c, 1, 3);
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(conf_voters(&h[0]), (vec![1, 2, 3, 4], vec![1, 2, 3], vec![]));
    assert!(h[0].auto_leave);
    assert_eq!(conf_voters(&h[1]), (vec![1, 2, 3, 4], vec![], vec![]));
}

#[test]
fn joint_explicit_stays_joint_until_the_empty_change_is_proposed() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.add_empty_node(4);
    c.add_empty_node(5);
    let change = cc_v2(
        ConfChangeTransition::JointExplicit,
        vec![single(ConfChangeType::ConfChangeAddNode, 4), single(ConfChangeType::ConfChangeRemoveNode, 3)],
    );
    c.propose_conf_change_v2(1, &change).unwrap();
    for _ in 0..5 {
        c.tick_all();
        c.stabilize();
    }
    let cs = c.node(1).sm.conf_state.clone();
    assert_eq!(conf_voters(&cs), (vec![1, 2, 4], vec![1, 2, 3], vec![]));
    assert!(!cs.auto_leave);
    assert_eq!(c.propose_conf_change(1, &add_node(5)), Err(dropped(DropReason::MustLeaveJoint)));
    c.propose_conf_change_v2(1, &leave_joint()).unwrap();
    c.stabilize();
    for id in [1, 2, 4] {
        assert_eq!(conf_voters(&c.node(id).sm.conf_state), (vec![1, 2, 4], vec![], vec![]), "node {id}");
    }
    c.propose_conf_change(1, &add_node(5)).unwrap();
}

/// From voters {1, 2, 3} into the joint configuration {1, 4, 5} x {1, 2, 3}
/// (explicit: it stays joint), nodes 4 and 5 caught up.
fn replace_two_voters_explicitly() -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.add_empty_node(4);
    c.add_empty_node(5);
    let change = cc_v2(
        ConfChangeTransition::JointExplicit,
        vec![
            single(ConfChangeType::ConfChangeAddNode, 4),
            single(ConfChangeType::ConfChangeAddNode, 5),
            single(ConfChangeType::ConfChangeRemoveNode, 2),
            single(ConfChangeType::ConfChangeRemoveNode, 3),
        ],
    );
    c.propose_conf_change_v2(1, &change).unwrap();
    c.tick(1);
    c.stabilize();
    for id in 1..=5 {
        assert_eq!(conf_voters(&c.node(id).sm.conf_state), (vec![1, 4, 5], vec![1, 2, 3], vec![]), "node {id}");
    }
    c
}

#[test]
fn while_joint_a_commit_needs_a_majority_of_both_configurations() {
    let mut c = replace_two_voters_explicitly();
    let base = c.committed(1);
    // Only the incoming configuration {1, 4, 5} acknowledges x.
    c.cut(1, 2);
    c.cut(1, 3);
    c.propose(1, "x").unwrap();
    c.stabilize();
    let x = c.last_index(1);
    assert_eq!((c.progress(1, 4).matched, c.progress(1, 5).matched), (x, x));
    assert_eq!(c.committed(1), base, "a majority of the incoming configuration alone does not commit");
    // Only the outgoing configuration {1, 2, 3} acknowledges x and y.
    c.heal();
    c.cut(1, 4);
    c.cut(1, 5);
    c.propose(1, "y").unwrap();
    c.tick(1);
    c.stabilize();
    let y = c.last_index(1);
    assert_eq!((c.progress(1, 2).matched, c.progress(1, 3).matched), (y, y));
    assert_eq!(c.committed(1), x, "x has both majorities now, y only the outgoing one");
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(1), y);
    assert_eq!(c.applied_data(4), vec!["x", "y"]);
}

#[test]
fn a_leader_crash_while_joint_the_new_leader_needs_both_majorities_and_finishes_the_change() {
    // One entry per append, so everything but the leave entry gets through.
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_size_per_msg = 1);
    c.elect(1);
    c.add_empty_node(4);
    c.add_empty_node(5);
    // The leave entry never leaves the leader: it crashes while joint.
    c.add_filter(|m| {
        is(m, MessageType::MsgApp)
            && m.entries.iter().any(|e| e.entry_type() == EntryType::EntryConfChangeV2 && e.data.is_empty())
    });
    let change = cc_v2(
        ConfChangeTransition::Auto,
        vec![
            single(ConfChangeType::ConfChangeAddNode, 4),
            single(ConfChangeType::ConfChangeAddNode, 5),
            single(ConfChangeType::ConfChangeRemoveNode, 2),
            single(ConfChangeType::ConfChangeRemoveNode, 3),
        ],
    );
    c.propose_conf_change_v2(1, &change).unwrap();
    c.stabilize();
    c.tick(1);
    c.stabilize();
    for id in 1..=5 {
        let cs = &c.node(id).sm.conf_state;
        assert_eq!(conf_voters(cs), (vec![1, 4, 5], vec![1, 2, 3], vec![]), "node {id} is joint");
        assert!(cs.auto_leave);
    }
    c.crash(1);
    c.clear_filters();

    // Node 2 is in the outgoing configuration only. Votes from 2, 3 and 4
    // are a majority of {1, 2, 3} but not of {1, 4, 5}.
    c.isolate(5);
    assert!(!c.try_elect(2), "a majority of one configuration is not enough:{}", c.describe());
    // Likewise node 4 with 4, 5, 3: a majority of {1, 4, 5} only.
    c.heal();
    c.isolate(2);
    assert!(!c.try_elect(4), "a majority of one configuration is not enough:{}", c.describe());
    // With both majorities, 2 wins, commits the joint entry's successors
    // and leaves the joint configuration by itself.
    c.heal();
    c.try_elect(2);
    assert_eq!(c.leader_of_term(c.term(2)), Some(2), "{}", c.describe());
    for id in [2, 3, 4, 5] {
        let cs = &c.node(id).sm.conf_state;
        assert_eq!(conf_voters(cs), (vec![1, 4, 5], vec![], vec![]), "node {id} left the joint configuration");
    }
    // Node 2 is not in the new configuration: it stepped down.
    assert_eq!(c.role(2), StateRole::Follower);
    assert!(c.leaders().is_empty());
    // The new configuration elects one of its own.
    for _ in 0..60 {
        c.tick_all();
        c.stabilize();
    }
    let leaders = c.leaders();
    assert_eq!(leaders.len(), 1, "{}", c.describe());
    assert!([4, 5].contains(&leaders[0]));
    c.propose(leaders[0], "after").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(4), vec!["after"]);
    assert_eq!(c.applied_data(5), vec!["after"]);
}

#[test]
fn removing_the_leader_makes_it_step_down() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose_conf_change(1, &remove_node(1)).unwrap();
    c.stabilize();
    assert_eq!(conf_voters(&c.node(1).sm.conf_state).0, vec![2, 3]);
    assert_eq!(c.role(1), StateRole::Follower, "a removed leader steps down");
    assert_eq!(c.propose(1, "x"), Err(dropped(DropReason::NoLeader)));
    for _ in 0..60 {
        c.tick_all();
        c.stabilize();
    }
    let leaders = c.leaders();
    assert_eq!(leaders.len(), 1, "{}", c.describe());
    assert_ne!(leaders[0], 1, "the removed node never leads again");
    c.propose(leaders[0], "y").unwrap();
    c.stabilize();
    for id in [2, 3] {
        assert_eq!(conf_voters(&c.node(id).sm.conf_state).0, vec![2, 3]);
        assert_eq!(c.applied_data(id), vec!["y"]);
    }
}

#[test]
fn demoting_a_voter_through_a_joint_configuration_makes_it_a_learner_on_leaving() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let change = cc_v2(ConfChangeTransition::JointImplicit, vec![single(ConfChangeType::ConfChangeAddLearnerNode, 3)]);
    c.propose_conf_change_v2(1, &change).unwrap();
    c.stabilize();
    let h = history_after_bootstrap(&c, 1, 3);
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(conf_voters(&h[0]), (vec![1, 2], vec![1, 2, 3], vec![]), "3 still votes in the outgoing half");
    assert_eq!(h[0].learners_next, vec![3]);
    assert_eq!(conf_voters(&h[1]), (vec![1, 2], vec![], vec![3]), "a learner once the joint configuration is left");
    assert!(h[1].learners_next.is_empty());
    for id in [2, 3] {
        assert_eq!(c.node(id).sm.conf_state, h[1], "node {id}");
    }
    // As a learner it still receives the log but no longer counts.
    c.cut(1, 2);
    c.propose(1, "x").unwrap();
    c.stabilize();
    assert_eq!(c.progress(1, 3).matched, c.last_index(1));
    assert!(c.committed(1) < c.last_index(1), "a learner's acknowledgement does not commit");
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.applied_data(3), vec!["x"]);
}

#[test]
fn a_simple_demotion_makes_a_voter_a_learner_at_once() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose_conf_change(1, &add_learner(3)).unwrap();
    c.stabilize();
    let h = history_after_bootstrap(&c, 1, 3);
    assert_eq!(h.len(), 1, "no joint configuration for a single change: {h:?}");
    assert_eq!(conf_voters(&h[0]), (vec![1, 2], vec![], vec![3]));
    c.isolate(1);
    c.isolate(2);
    for _ in 0..40 {
        c.tick(3);
    }
    assert_eq!(c.role(3), StateRole::Follower, "a learner never campaigns");
}
