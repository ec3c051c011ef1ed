//! A member whose data directory was wiped comes back with the bootstrap
//! log and no memory of what it acknowledged or whom it voted for. Told so
//! (`mark_lost_state`), it must not vote until a leader has caught it up,
//! or it could elect a leader that lacks entries it helped commit; and the
//! leader, told so (`forget_follower_progress`), must stop trusting the
//! match index it had for it.

use super::harness::*;
use raftkv::proto::raftpb::{Message, MessageType};
use raftkv::raft::{MemStorage, ProgressState, StateRole};

/// 1 leads; 3 is cut off; "w" is committed by 1 and 2; 2 loses its disk
/// and restarts on a fresh bootstrap log; 1 goes down.
fn wiped_after_commit(mark: bool) -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "w").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(2), vec!["w".to_string()]);
    c.crash(2);
    c.replace_disk(2, MemStorage::bootstrap(&[1, 2, 3]));
    c.restart(2);
    if mark {
        c.raw_mut(2).mark_lost_state();
    }
    c.crash(1);
    c.heal();
    c.expire_leases(&[2, 3]);
    c.clear_trace();
    c
}

/// A vote request from 3 (which lacks "w") at a term above everyone's.
fn vote_request_from_3(c: &Cluster) -> Message {
    Message {
        msg_type: MessageType::MsgVote as i32,
        from: 3,
        to: 2,
        term: c.term(3).max(c.term(2)) + 1,
        index: c.last_index(3),
        log_term: c.log(3).last().map_or(0, |e| e.1),
        ..Default::default()
    }
}

fn vote_answers_from_2(c: &Cluster) -> Vec<bool> {
    c.sent_between(2, 3, MessageType::MsgVoteResp).iter().map(|m| !m.reject).collect()
}

#[test]
fn a_wiped_member_not_told_would_elect_a_leader_without_a_committed_entry() {
    // The danger the lost-state rule exists for.
    let mut c = wiped_after_commit(false);
    let vote = vote_request_from_3(&c);
    c.step(2, vote).unwrap();
    assert_eq!(vote_answers_from_2(&c), vec![true], "the wiped member grants its vote to a log without \"w\"");
}

#[test]
fn a_member_that_lost_its_state_refuses_votes_and_does_not_campaign() {
    let mut c = wiped_after_commit(true);
    assert!(c.raw(2).has_lost_state());
    let vote = vote_request_from_3(&c);
    c.step(2, vote).unwrap();
    assert_eq!(vote_answers_from_2(&c), vec![false], "a member with lost state refuses its vote");
    // Neither survivor becomes leader, however long they wait.
    for _ in 0..10 {
        c.tick_all();
        c.stabilize();
    }
    assert!(c.count_sent(|m| m.from == 2 && is(m, MessageType::MsgPreVote)) == 0, "2 never campaigns");
    assert_ne!(c.role(2), StateRole::Leader);
    assert_ne!(c.role(3), StateRole::Leader, "3 was elected without \"w\":{}", c.describe());
}

#[test]
fn a_member_that_lost_its_state_votes_again_once_a_leader_caught_it_up() {
    let mut c = wiped_after_commit(true);
    c.restart(1);
    c.elect(1);
    c.propose(1, "after").unwrap();
    c.stabilize();
    assert!(!c.raw(2).has_lost_state(), "caught up to an entry of the leader's term:{}", c.describe());
    assert_eq!(c.log(2), c.log(1), "2 holds the leader's log again, \"w\" included");
    assert_eq!(c.applied_data(2), vec!["w".to_string(), "after".to_string()]);
    // And it votes again: 1 goes away, 2 can elect 3 (which has everything).
    c.crash(1);
    c.expire_leases(&[2, 3]);
    assert!(c.try_elect(3), "3 elected with 2's vote:{}", c.describe());
}

#[test]
fn the_leader_restarts_the_progress_of_a_follower_that_lost_its_state() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    for i in 0..5 {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    c.stabilize();
    let matched = c.progress(1, 2).matched;
    assert_eq!(matched, c.last_index(1));
    c.crash(2);
    c.replace_disk(2, MemStorage::bootstrap(&[1, 2, 3]));
    c.restart(2);
    c.raw_mut(1).forget_follower_progress(2).unwrap();
    c.handle_ready(1);
    assert_eq!(c.progress(1, 2).matched, 0, "the old match index is forgotten");
    assert_eq!(c.progress_state(1, 2), ProgressState::Probe);
    c.stabilize();
    c.propose(1, "after").unwrap();
    c.stabilize();
    assert_eq!(c.log(2), c.log(1), "2 caught up from the leader's log:{}", c.describe());
    assert_eq!(c.progress_state(1, 2), ProgressState::Replicate);
    assert_eq!(c.applied_data(2).len(), 6);
}
