//! Input from outside never panics the core: it is refused with an error (or
//! ignored) and changes nothing.

use super::harness::*;
use bytes::Bytes;
use raftkv::proto::raftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, MessageType};
use raftkv::raft::{DropReason, Error, StateRole};

/// A three-node cluster with node 1 leading and a few entries committed.
fn running() -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose(1, "a").unwrap();
    c.stabilize();
    c
}

/// Everything about a node that bad input must not change.
fn snapshot_of(c: &Cluster, id: u64) -> (StateRole, u64, u64, u64, u64, Vec<(u64, u64)>) {
    (c.role(id), c.term(id), c.vote(id), c.leader_of(id), c.committed(id), c.log(id))
}

fn invalid_message(r: Result<(), Error>) -> bool {
    matches!(r, Err(Error::InvalidMessage(_)))
}

#[test]
fn unknown_message_types_are_refused() {
    let mut c = running();
    let before = snapshot_of(&c, 1);
    for t in [19, 42, -1, i32::MAX] {
        let m = Message { msg_type: t, ..msg(MessageType::MsgApp, 2, 1, c.term(1)) };
        assert!(invalid_message(c.step(1, m)), "type {t}");
    }
    assert_eq!(snapshot_of(&c, 1), before);
}

#[test]
fn local_only_message_types_from_a_peer_are_refused() {
    let mut c = running();
    let term = c.term(1);
    for id in [1, 2] {
        let before = snapshot_of(&c, id);
        for t in [
            MessageType::MsgHup,
            MessageType::MsgBeat,
            MessageType::MsgUnreachable,
            MessageType::MsgSnapStatus,
            MessageType::MsgCheckQuorum,
        ] {
            let from = if id == 1 { 2 } else { 1 };
            assert_eq!(c.step(id, msg(t, from, id, term)), Err(Error::StepLocalMsg), "{t:?} to node {id}");
            assert_eq!(c.step(id, msg(t, from, id, 0)), Err(Error::StepLocalMsg), "{t:?} without a term");
        }
        assert_eq!(snapshot_of(&c, id), before, "node {id}: no campaign, no step-down");
    }
    assert_eq!(c.progress_state(1, 2), raftkv::raft::ProgressState::Replicate, "no MsgUnreachable effect");
}

#[test]
fn responses_from_non_members_are_refused() {
    let mut c = running();
    let term = c.term(1);
    let before = snapshot_of(&c, 1);
    for t in
        [MessageType::MsgAppResp, MessageType::MsgVoteResp, MessageType::MsgHeartbeatResp, MessageType::MsgPreVoteResp]
    {
        // Even one from a later term (it would otherwise depose the leader).
        for m_term in [term, term + 5] {
            let m = Message { index: 100, reject: true, ..msg(t, 9, 1, m_term) };
            assert_eq!(c.step(1, m), Err(Error::StepPeerNotFound), "{t:?} at term {m_term}");
        }
    }
    assert_eq!(snapshot_of(&c, 1), before);
}

#[test]
fn messages_without_a_sender_are_refused() {
    let mut c = running();
    let before = snapshot_of(&c, 2);
    let m = append(0, 2, c.term(2) + 1, 0, 0, vec![], 0);
    assert!(invalid_message(c.step(2, m)));
    assert_eq!(snapshot_of(&c, 2), before);
}

#[test]
fn a_heartbeat_committing_beyond_the_log_is_an_error() {
    let mut c = running();
    let (term, last) = (c.term(2), c.last_index(2));
    let before = snapshot_of(&c, 2);
    let hb = Message { commit: last + 10, ..msg(MessageType::MsgHeartbeat, 1, 2, term) };
    assert!(invalid_message(c.step(2, hb)));
    assert_eq!(c.committed(2), before.4, "the commit index did not move");
    assert_eq!(c.log(2), before.5);
    // The node keeps working.
    c.propose(1, "b").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(2), vec!["a", "b"]);
}

#[test]
fn an_append_conflicting_with_committed_entries_changes_nothing() {
    let mut c = running();
    let (term, committed) = (c.term(2), c.committed(2));
    let before = snapshot_of(&c, 2);
    // A well-formed append that would rewrite the committed entry at
    // `committed` with another term: it starts below the commit index, so
    // it is answered with the commit index and nothing else happens.
    let prev = committed - 1;
    let prev_term = c.raw(2).raft.log_term(prev).unwrap();
    c.clear_trace();
    let m = append(1, 2, term, prev, prev_term, vec![ent(committed, term + 1)], committed);
    assert_eq!(c.step(2, m), Ok(()));
    assert_eq!(snapshot_of(&c, 2), before, "the committed entry is untouched");
    let resp = c.sent_between(2, 1, MessageType::MsgAppResp);
    assert!(resp.len() == 1 && !resp[0].reject && resp[0].index == committed, "{resp:?}");
    // A malformed one whose entry claims an index at or below the commit
    // index after a matching previous entry is an error.
    let prev_term = c.raw(2).raft.log_term(committed).unwrap();
    let m = append(1, 2, term, committed, prev_term, vec![ent(committed, term + 1)], committed);
    assert!(invalid_message(c.step(2, m)));
    assert_eq!(snapshot_of(&c, 2), before);
    c.propose(1, "b").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(2), vec!["a", "b"]);
}

#[test]
fn undecodable_or_inapplicable_conf_changes_are_refused() {
    let mut c = running();
    let last = c.last_index(1);
    let prop = |t: EntryType, data: &'static [u8]| Message {
        entries: vec![Entry { entry_type: t as i32, data: Bytes::from_static(data), ..Default::default() }],
        ..msg(MessageType::MsgProp, 2, 1, 0)
    };
    let garbage: &'static [u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(c.step(1, prop(EntryType::EntryConfChange, garbage)), Err(Error::InvalidConfChange(_))));
    assert!(matches!(c.step(1, prop(EntryType::EntryConfChangeV2, garbage)), Err(Error::InvalidConfChange(_))));
    let unknown_entry_type = Message {
        entries: vec![Entry { entry_type: 7, data: Bytes::from_static(b"x"), ..Default::default() }],
        ..msg(MessageType::MsgProp, 2, 1, 0)
    };
    assert!(invalid_message(c.step(1, unknown_entry_type)));
    assert!(invalid_message(c.step(1, msg(MessageType::MsgProp, 2, 1, 0))), "empty proposal");
    assert_eq!(c.last_index(1), last, "nothing appended");

    // Applying something that is not a valid change fails and changes nothing.
    let conf = c.raw(1).status().conf_state;
    let normal = Entry { index: 99, term: 1, data: Bytes::from_static(b"x"), ..Default::default() };
    assert!(matches!(c.raw_mut(1).apply_conf_change(&normal), Err(Error::InvalidConfChange(_))));
    let bad = Entry { entry_type: EntryType::EntryConfChange as i32, data: Bytes::from_static(garbage), ..normal };
    assert!(matches!(c.raw_mut(1).apply_conf_change(&bad), Err(Error::InvalidConfChange(_))));
    let remove_all = ConfChangeV2 {
        changes: vec![
            single(raftkv::proto::raftpb::ConfChangeType::ConfChangeRemoveNode, 1),
            single(raftkv::proto::raftpb::ConfChangeType::ConfChangeRemoveNode, 2),
            single(raftkv::proto::raftpb::ConfChangeType::ConfChangeRemoveNode, 3),
        ],
        ..Default::default()
    };
    let e = Entry {
        entry_type: EntryType::EntryConfChangeV2 as i32,
        data: prost::Message::encode_to_vec(&remove_all).into(),
        index: 99,
        term: 1,
    };
    assert!(matches!(c.raw_mut(1).apply_conf_change(&e), Err(Error::InvalidConfChange(_))));
    assert_eq!(c.raw(1).status().conf_state, conf);
    // Still a working leader.
    c.propose(1, "b").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(3), vec!["a", "b"]);
}

#[test]
fn two_conf_changes_in_one_proposal_are_refused_and_leave_nothing_pending() {
    let mut c = running();
    let last = c.last_index(1);
    let conf_entry = |cc: ConfChange| Entry {
        entry_type: EntryType::EntryConfChange as i32,
        data: prost::Message::encode_to_vec(&cc).into(),
        ..Default::default()
    };
    let m = Message {
        entries: vec![conf_entry(add_learner(4)), conf_entry(add_learner(5))],
        ..msg(MessageType::MsgProp, 2, 1, 0)
    };
    assert_eq!(c.step(1, m), Err(dropped(DropReason::ConfChangePending)));
    assert_eq!(c.last_index(1), last);
    c.propose_conf_change(1, &add_learner(4)).unwrap();
}

#[test]
fn read_requests_with_a_wrong_number_of_contexts_are_refused() {
    let mut c = running();
    let term = c.term(1);
    assert!(invalid_message(c.step(1, msg(MessageType::MsgReadIndex, 2, 1, 0))));
    let two = Message { entries: vec![Entry::default(), Entry::default()], ..msg(MessageType::MsgReadIndex, 2, 1, 0) };
    assert!(invalid_message(c.step(1, two)));
    assert!(invalid_message(c.step(2, msg(MessageType::MsgReadIndexResp, 1, 2, term))));
    assert!(c.take_read_states(2).is_empty());
}

#[test]
fn forwarded_requests_carrying_a_term_do_not_panic_the_follower() {
    // Proposals, reads and transfer requests travel without a term; a peer
    // that sets one anyway must not trip the follower that forwards them.
    for t in [MessageType::MsgProp, MessageType::MsgReadIndex, MessageType::MsgTransferLeader] {
        let mut c = running();
        let term = c.term(2);
        let m = Message {
            entries: vec![Entry { data: Bytes::from_static(b"f"), ..Default::default() }],
            ..msg(t, 3, 2, term)
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.step(2, m)));
        assert!(r.is_ok(), "{t:?} with term {term} from a peer panicked the follower");
        c.stabilize();
        assert_eq!(c.leaders().len(), 1, "{t:?}");
    }
}

#[test]
fn an_append_whose_entries_do_not_follow_its_previous_index_is_refused() {
    for entries in [
        vec![ent(3, 9)],            // behind the previous index
        vec![ent(20, 9)],           // far ahead of it
        vec![ent(6, 9), ent(8, 9)], // a gap between entries
    ] {
        let mut c = running();
        let term = c.term(2);
        let before = snapshot_of(&c, 2);
        let prev = c.last_index(2);
        let prev_term = c.raw(2).raft.log_term(prev).unwrap();
        let m = append(1, 2, term, prev, prev_term, entries.clone(), 0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.step(2, m)));
        let indexes: Vec<u64> = entries.iter().map(|e| e.index).collect();
        let r =
            r.unwrap_or_else(|_| panic!("an append after {prev} carrying entries {indexes:?} panicked the follower"));
        assert!(matches!(r, Err(Error::InvalidMessage(_))), "entries {indexes:?} after {prev}: {r:?}");
        assert_eq!(c.log(2), before.5);
    }
}
