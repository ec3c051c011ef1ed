//! Leadership transfer (§3.10 of the thesis): the target is caught up, then
//! told to campaign at once; proposals wait meanwhile; a transfer that does
//! not finish within an election timeout is abandoned.

use super::harness::*;
use raftkv::proto::raftpb::MessageType;
use raftkv::raft::{DropReason, StateRole};

fn position(c: &Cluster, pred: impl Fn(&raftkv::proto::raftpb::Message) -> bool) -> Option<usize> {
    c.trace.iter().position(pred)
}

#[test]
fn a_lagging_target_is_caught_up_first_then_wins_at_once() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let term = c.term(1);
    // Node 3 misses three entries.
    c.add_filter(|m| m.from == 1 && m.to == 3 && carries_entries(m));
    for i in 0..3 {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    c.stabilize();
    let last = c.last_index(1);
    assert!(c.last_index(3) < last);
    c.clear_filters();

    c.clear_trace();
    c.transfer_leader(1, 3);
    assert_eq!(c.raw(1).raft.lead_transferee, 3);
    assert!(c.sent(|m| is(m, MessageType::MsgTimeoutNow)).is_empty(), "not before 3 caught up");
    assert_eq!(c.propose(1, "during"), Err(dropped(DropReason::TransferInProgress)));
    // The probe to 3 waits for its next heartbeat response.
    c.stabilize();
    c.tick(1);
    c.stabilize();

    assert_eq!(c.leaders(), vec![3], "{}", c.describe());
    assert_eq!(c.term(3), term + 1, "the target campaigns at once, at the next term");
    assert_eq!(c.applied_data(3), vec!["e0", "e1", "e2"]);
    let caught_up = position(&c, |m| m.from == 3 && is(m, MessageType::MsgAppResp) && !m.reject && m.index == last)
        .expect("3 acknowledged the last entry");
    let timeout_now = position(&c, |m| is(m, MessageType::MsgTimeoutNow)).expect("MsgTimeoutNow was sent");
    assert!(caught_up < timeout_now, "MsgTimeoutNow only after the target caught up");
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgTimeoutNow)), 1);
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgPreVote)), 0, "no pre-vote for a transfer");
    // The new leader serves proposals.
    c.propose(3, "after").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(1), vec!["e0", "e1", "e2", "after"]);
}

#[test]
fn an_up_to_date_target_gets_timeout_now_immediately() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.clear_trace();
    c.transfer_leader(1, 2);
    let sent: Vec<_> = c.trace.iter().map(|m| (m.msg_type(), m.to)).collect();
    assert_eq!(sent, vec![(MessageType::MsgTimeoutNow, 2)]);
    c.stabilize();
    assert_eq!(c.leaders(), vec![2]);
}

#[test]
fn a_transfer_to_an_unreachable_target_is_abandoned_after_an_election_timeout() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "x").unwrap();
    c.stabilize();
    c.transfer_leader(1, 3);
    for t in 1..10 {
        c.tick(1);
        c.tick(2);
        c.stabilize();
        assert_eq!(c.raw(1).raft.lead_transferee, 3, "tick {t}");
        assert_eq!(c.propose(1, "y"), Err(dropped(DropReason::TransferInProgress)), "tick {t}");
    }
    // Forwarded proposals are refused as well.
    c.propose(2, "forwarded").unwrap();
    c.stabilize();
    assert!(c.refused.iter().any(|(m, e)| m.from == 2 && *e == dropped(DropReason::TransferInProgress)));
    c.tick(1);
    assert_eq!(c.raw(1).raft.lead_transferee, 0, "abandoned after an election timeout");
    assert_eq!(c.role(1), StateRole::Leader);
    c.propose(1, "y").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(2), vec!["x", "y"]);
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgTimeoutNow)), 0);
}

#[test]
fn a_transfer_to_a_learner_to_itself_or_to_a_stranger_is_ignored() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.add_empty_node(4);
    c.propose_conf_change(1, &add_learner(4)).unwrap();
    c.stabilize();
    c.clear_trace();
    for target in [4, 1, 9] {
        c.transfer_leader(1, target);
        assert_eq!(c.raw(1).raft.lead_transferee, 0, "transfer to {target}");
        c.propose(1, &format!("after {target}")).unwrap();
        c.stabilize();
    }
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgTimeoutNow)), 0);
    assert_eq!(c.leaders(), vec![1]);
    // A learner that receives MsgTimeoutNow anyway does not campaign.
    let term = c.term(4);
    c.step(4, msg(MessageType::MsgTimeoutNow, 1, 4, term)).unwrap();
    assert_eq!(c.role(4), StateRole::Follower);
    assert_eq!(c.term(4), term);
}

#[test]
fn a_transfer_requested_on_a_follower_is_forwarded_to_the_leader() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.clear_trace();
    c.transfer_leader(2, 3);
    assert_eq!(c.sent(|m| is(m, MessageType::MsgTransferLeader)).len(), 1);
    c.stabilize();
    assert_eq!(c.leaders(), vec![3]);
}

#[test]
fn a_second_transfer_to_another_target_replaces_the_first() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.isolate(3);
    c.propose(1, "x").unwrap();
    c.stabilize();
    c.transfer_leader(1, 3);
    assert_eq!(c.raw(1).raft.lead_transferee, 3);
    // Asking again for the same target changes nothing.
    c.transfer_leader(1, 3);
    assert_eq!(c.raw(1).raft.lead_transferee, 3);
    c.transfer_leader(1, 2);
    c.stabilize();
    assert_eq!(c.leaders(), vec![2], "{}", c.describe());
}
