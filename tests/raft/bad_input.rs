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

fn no_panic(c: &mut Cluster, id: u64, m: Message) -> Result<(), Error> {
    let desc = format!("{m:?}");
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.step(id, m)))
        .unwrap_or_else(|_| panic!("node {id} panicked on {desc}"))
}

#[test]
fn a_message_claiming_to_come_from_the_node_itself_is_refused() {
    let mut c = running();
    let term = c.term(2);
    let before = snapshot_of(&c, 2);
    for t in [MessageType::MsgHeartbeat, MessageType::MsgApp, MessageType::MsgVote, MessageType::MsgPreVote] {
        let m = Message { index: c.last_index(2), log_term: term, ..msg(t, 2, 2, term + 1) };
        assert!(invalid_message(no_panic(&mut c, 2, m)), "{t:?} from itself");
    }
    assert_eq!(snapshot_of(&c, 2), before);
    // A node's own proposal or read may come back to it (forwarded to a
    // leader that has stepped down, which forwards it on): still served.
    let own = |t| Message {
        entries: vec![Entry { data: Bytes::from_static(b"own"), ..Default::default() }],
        ..msg(t, 1, 1, 0)
    };
    no_panic(&mut c, 1, own(MessageType::MsgProp)).unwrap();
    no_panic(&mut c, 1, own(MessageType::MsgReadIndex)).unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(3), vec!["a", "own"]);
    assert_eq!(c.take_read_states(1).len(), 1);
}

#[test]
fn messages_without_a_term_are_refused_unless_they_are_requests() {
    let mut c = running();
    let term = c.term(2);
    let last = c.last_index(2);
    let before = snapshot_of(&c, 2);
    for t in [MessageType::MsgVote, MessageType::MsgPreVote] {
        let m = Message { index: last + 5, log_term: term + 5, ..msg(t, 3, 2, 0) };
        assert!(invalid_message(no_panic(&mut c, 2, m)), "{t:?} without a term");
        // Also on a node that has neither voted nor heard of a leader, which
        // would grant it (and answer with term 0).
        let mut fresh = Cluster::new(&[1, 2, 3]);
        let m = Message { index: 100, log_term: 100, ..msg(t, 3, 2, 0) };
        assert!(invalid_message(no_panic(&mut fresh, 2, m)), "{t:?} without a term to a fresh node");
        assert_eq!(fresh.vote(2), 0);
    }
    // An append without a term would skip every term check: refused, and
    // its sender is not taken for the leader.
    let m = append(3, 2, 0, last, c.raw(2).raft.log_term(last).unwrap(), vec![ent(last + 1, term)], 0);
    assert!(invalid_message(no_panic(&mut c, 2, m)));
    let hb = msg(MessageType::MsgHeartbeat, 3, 2, 0);
    assert!(invalid_message(no_panic(&mut c, 2, hb)));
    assert_eq!(snapshot_of(&c, 2), before);
}

#[test]
fn an_index_that_leaves_no_room_for_a_next_entry_is_refused() {
    let mut c = running();
    let term = c.term(1);
    let before = (snapshot_of(&c, 1), snapshot_of(&c, 2));
    let snap = raftkv::proto::raftpb::Snapshot {
        data: Bytes::new(),
        metadata: Some(raftkv::proto::raftpb::SnapshotMetadata {
            conf_state: Some(voters(&[1, 2, 3])),
            index: u64::MAX,
            term,
        }),
    };
    let m = Message { snapshot: Some(snap), ..msg(MessageType::MsgSnap, 1, 2, term) };
    assert!(invalid_message(no_panic(&mut c, 2, m)), "a snapshot ending at u64::MAX");
    let m = Message { index: u64::MAX, ..msg(MessageType::MsgAppResp, 2, 1, term) };
    assert!(invalid_message(no_panic(&mut c, 1, m)), "an acknowledgement of index u64::MAX");
    assert_eq!((snapshot_of(&c, 1), snapshot_of(&c, 2)), before);
    c.propose(1, "b").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(2), vec!["a", "b"]);
}

// ------------------------------------------------------------------ fuzz

mod fuzz {
    use super::super::harness::*;
    use bytes::Bytes;
    use prost::Message as _;
    use raftkv::proto::raftpb::{ConfChange, ConfState, Entry, EntryType, Message, Snapshot, SnapshotMetadata};
    use raftkv::raft::{MemStorage, RawNode};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
        xs[rng.random_range(0..xs.len())]
    }

    fn number(rng: &mut ChaCha8Rng, around: u64) -> u64 {
        match rng.random_range(0..6) {
            0 => 0,
            1 => u64::MAX,
            2 => rng.random(),
            _ => (around + rng.random_range(0..6)).saturating_sub(3),
        }
    }

    fn entry(rng: &mut ChaCha8Rng, index: u64, term: u64) -> Entry {
        let entry_type = rng.random_range(0..4);
        let data: Bytes = match rng.random_range(0..3) {
            0 => Bytes::new(),
            1 => ConfChange {
                change_type: rng.random_range(0..5),
                node_id: rng.random_range(0..6),
                ..Default::default()
            }
            .encode_to_vec()
            .into(),
            _ => (0..rng.random_range(0..8)).map(|_| rng.random::<u8>()).collect::<Vec<u8>>().into(),
        };
        Entry { entry_type, index, term, data }
    }

    /// A message with every field drawn at random, but close enough to the
    /// node's state to get past the first checks now and then. `malformed`
    /// also allows entries that do not follow the previous index.
    fn random_message(rng: &mut ChaCha8Rng, to: u64, term: u64, last: u64, malformed: bool) -> Message {
        let msg_type = if rng.random_range(0..20) == 0 { rng.random_range(19..25) } else { rng.random_range(0..19) };
        let m_term = match rng.random_range(0..5) {
            0 => 0,
            1 => term.saturating_sub(1),
            2 => term + 1,
            _ => term,
        };
        let index = number(rng, last);
        let n = rng.random_range(0..4);
        let entries = (0..n)
            .map(|i| {
                let idx = if malformed && rng.random_range(0..3) == 0 {
                    number(rng, last)
                } else {
                    index.wrapping_add(1 + i)
                };
                let t = number(rng, term);
                entry(rng, idx, t)
            })
            .collect();
        let snapshot = (rng.random_range(0..4) == 0).then(|| Snapshot {
            data: Bytes::new(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: (1..=rng.random_range(0..4)).collect(),
                    learners: if rng.random() { vec![4] } else { vec![] },
                    ..Default::default()
                }),
                index: number(rng, last),
                term: number(rng, term),
            }),
        });
        let context = match rng.random_range(0..3) {
            0 => Bytes::new(),
            1 => Bytes::copy_from_slice(&rng.random::<u64>().to_be_bytes()),
            _ => Bytes::from_static(b"CampaignTransfer"),
        };
        Message {
            msg_type,
            to,
            from: pick(rng, &[0, 1, 2, 3, 4, 9]),
            term: m_term,
            log_term: number(rng, term),
            index,
            entries,
            commit: number(rng, last),
            snapshot,
            reject: rng.random(),
            reject_hint: number(rng, last),
            context,
            vote: 0,
        }
    }

    /// Carries out a node's Readies, tolerating every error (a node that
    /// gets one must stop: it is reported as `false`).
    fn drive(raw: &mut RawNode<MemStorage>) -> (Vec<Message>, bool) {
        let mut out = Vec::new();
        while raw.has_ready() {
            let Ok(rd) = raw.ready() else { return (out, false) };
            out.extend(rd.messages);
            let store = raw.store_mut();
            if let Some(s) = rd.snapshot.clone() {
                let _ = store.apply_snapshot(s);
            }
            let _ = store.append(&rd.entries);
            if let Some(hs) = rd.hard_state {
                store.set_hard_state(hs);
            }
            out.extend(rd.persisted_messages);
            for e in &rd.committed_entries {
                if e.entry_type() != EntryType::EntryNormal {
                    let _ = raw.apply_conf_change(e);
                }
            }
            if raw.advance().is_err() {
                return (out, false);
            }
        }
        (out, true)
    }

    fn run(seed: u64, malformed: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut c = Cluster::new(&[1, 2, 3]);
        c.elect(1);
        c.propose(1, "a").unwrap();
        c.stabilize();
        c.add_empty_node(4);
        c.propose_conf_change(1, &add_learner(4)).unwrap();
        c.stabilize();
        for id in 1..=4 {
            c.node_mut(id).manual_ready = true;
        }
        let mut stopped = std::collections::BTreeSet::new();
        let mut inbox: Vec<Message> = Vec::new();
        for step in 0..400 {
            let live: Vec<u64> = (1..=4).filter(|id| !stopped.contains(id)).collect();
            if live.is_empty() {
                return;
            }
            let to = pick(&mut rng, &live);
            let (term, last) = (c.term(to), c.last_index(to));
            let action = rng.random_range(0..10);
            let m = match action {
                0 => None,
                1..=3 if !inbox.is_empty() => {
                    let i = rng.random_range(0..inbox.len());
                    let m = inbox.swap_remove(i);
                    if stopped.contains(&m.to) || !(1..=4).contains(&m.to) {
                        continue;
                    }
                    Some(m)
                }
                _ => Some(random_message(&mut rng, to, term, last, malformed)),
            };
            let target = m.as_ref().map_or(to, |m| m.to);
            let desc = format!("seed {seed} step {step}: node {target} <- {m:?}");
            let raw = c.raw_mut(target);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match m {
                    Some(m) => {
                        let _ = raw.step(m);
                    }
                    None => {
                        let _ = raw.tick();
                    }
                }
                drive(raw)
            }));
            match outcome {
                Ok((out, ok)) => {
                    inbox.extend(out);
                    if !ok {
                        stopped.insert(target);
                    }
                }
                Err(_) => panic!("the core panicked on outside input: {desc}"),
            }
        }
    }

    /// Seeds per test: 40, or `RAFT_FUZZ_SEEDS` for a longer search.
    fn seeds() -> u64 {
        std::env::var("RAFT_FUZZ_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40)
    }

    #[test]
    fn random_well_formed_messages_never_panic_the_core() {
        for seed in 0..seeds() {
            run(seed, false);
        }
    }

    #[test]
    fn random_malformed_messages_never_panic_the_core() {
        for seed in 0..seeds() {
            run(1_000_000 + seed, true);
        }
    }
}
