//! Flow control: probe state (one append at a time), the in-flight window
//! by count and by bytes, the size of one append, batched proposals, the
//! uncommitted bound, and the size of committed entries per Ready.

use super::harness::*;
use bytes::Bytes;
use prost::Message as _;
use raftkv::proto::raftpb::{Message, MessageType};
use raftkv::raft::{DropReason, ProgressState};

fn appends_to(id: u64) -> impl Fn(&Message) -> bool {
    move |m| m.to == id && carries_entries(m)
}

fn encoded(m: &Message) -> u64 {
    m.entries.iter().map(|e| e.encoded_len() as u64).sum()
}

#[test]
fn in_probe_state_one_append_is_outstanding_until_answered() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_size_per_msg = 1);
    c.cut(1, 3);
    c.elect(1);
    c.heal();
    for i in 0..5 {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    c.stabilize();
    assert_eq!(c.progress_state(1, 3), ProgressState::Probe);
    assert!(c.progress(1, 3).paused, "the lost probe is still outstanding");
    c.clear_trace();
    // 3's answers are lost: each heartbeat response allows one more probe.
    c.add_filter(|m| m.from == 3 && is(m, MessageType::MsgAppResp));
    for round in 1..=3 {
        c.tick(1);
        c.stabilize();
        assert_eq!(c.count_sent(appends_to(3)), round, "one probe per heartbeat round");
        assert_eq!(c.progress_state(1, 3), ProgressState::Probe);
    }
    // Once a probe is answered, the leader streams the rest without waiting.
    c.clear_filters();
    c.clear_trace();
    c.tick(1);
    while c.progress_state(1, 3) == ProgressState::Probe {
        assert!(c.deliver_one(), "the probe is answered");
    }
    let streamed = c.queued(appends_to(3)).len();
    assert_eq!(streamed, 5, "the five remaining entries (one per append) are all in flight at once");
    c.stabilize();
    assert_eq!(c.applied_data(3), vec!["e0", "e1", "e2", "e3", "e4"]);
}

#[test]
fn the_in_flight_window_is_limited_by_count() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_inflight_msgs = 3);
    c.elect(1);
    assert_eq!(c.progress_state(1, 2), ProgressState::Replicate);
    for i in 0..10 {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    let to_2 = c.take(appends_to(2));
    assert_eq!(to_2.len(), 3, "three appends in flight, then the window is full");
    assert_eq!(to_2.iter().map(|m| m.entries.len()).collect::<Vec<_>>(), vec![1, 1, 1]);
    let pr = c.progress(1, 2);
    assert_eq!((pr.inflight, pr.paused), (3, true));
    // Acknowledging the first frees one slot: one more append, with all the
    // entries not yet sent.
    c.take_all();
    c.deliver(to_2[0].clone());
    let ack = c.take(|m| m.from == 2 && is(m, MessageType::MsgAppResp));
    c.deliver(ack[0].clone());
    let more = c.take(appends_to(2));
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].entries.len(), 7);
    assert_eq!(c.progress(1, 2).inflight, 3);
}

#[test]
fn the_in_flight_window_is_limited_by_bytes() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| {
        cfg.max_inflight_bytes = 1000;
        cfg.max_size_per_msg = 1000;
    });
    c.elect(1);
    for _ in 0..10 {
        c.propose_bytes(1, Bytes::from(vec![b'x'; 500])).unwrap();
    }
    let to_2 = c.take(appends_to(2));
    assert_eq!(to_2.len(), 2, "500 + 500 bytes fill a 1000-byte window");
    assert_eq!(c.progress(1, 2).inflight, 2);
    c.take_all();
    c.deliver(to_2[0].clone());
    let ack = c.take(|m| m.from == 2 && is(m, MessageType::MsgAppResp));
    c.deliver(ack[0].clone());
    let more = c.take(appends_to(2));
    assert_eq!(more.len(), 1, "500 bytes freed: room for one more append");
    assert_eq!(more[0].entries.len(), 1, "max_size_per_msg keeps it to one 500-byte entry");
    assert!(c.progress(1, 2).paused);
}

#[test]
fn appends_are_split_at_max_size_per_msg() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_size_per_msg = 350);
    c.elect(1);
    c.add_filter(|m| m.to == 3 && carries_entries(m));
    for i in 0..11 {
        c.propose_bytes(1, Bytes::from(format!("{i:0>100}"))).unwrap();
    }
    c.stabilize();
    assert_eq!(c.node(3).sm.data.len(), 0);
    c.clear_filters();
    c.clear_trace();
    c.tick(1);
    c.stabilize();
    let appends = c.sent(appends_to(3));
    assert!(appends.len() >= 4, "11 entries of ~106 bytes in appends of at most 350: {}", appends.len());
    for m in &appends {
        assert!(m.entries.len() == 1 || encoded(m) <= 350, "an append of {} bytes", encoded(m));
        assert!(m.entries.len() <= 3);
    }
    assert_eq!(c.node(3).sm.data.len(), 11);
    // A single entry larger than the limit is still sent, alone.
    c.clear_trace();
    c.propose_bytes(1, Bytes::from(vec![b'y'; 1000])).unwrap();
    c.stabilize();
    let big = c.sent(appends_to(3));
    assert_eq!(big.len(), 1);
    assert_eq!(big[0].entries.len(), 1);
    assert_eq!(c.node(3).sm.data.len(), 12);
}

#[test]
fn a_batch_of_proposals_goes_out_as_one_append_per_follower() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.clear_trace();
    let batch: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    c.propose_batch(1, &refs).unwrap();
    for id in [2, 3] {
        let appends = c.queued(appends_to(id));
        assert_eq!(appends.len(), 1, "one append to {id} for the whole batch");
        assert_eq!(appends[0].entries.len(), 10);
    }
    c.stabilize();
    assert_eq!(c.applied_data(2), batch);
    // One by one, they would have taken one append each.
    c.clear_trace();
    for i in 0..10 {
        c.propose(1, &format!("s{i}")).unwrap();
    }
    assert_eq!(c.queued(appends_to(2)).len(), 10);
}

#[test]
fn the_uncommitted_bound_refuses_proposals_until_entries_commit() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_uncommitted_entries_size = 1000);
    c.elect(1);
    c.isolate(2);
    c.isolate(3);
    for i in 0..10 {
        c.propose_bytes(1, Bytes::from(vec![b'0' + i; 100])).unwrap();
    }
    let last = c.last_index(1);
    assert_eq!(c.propose(1, "x"), Err(dropped(DropReason::UncommittedLimit)));
    assert_eq!(c.propose_batch(1, &["y", "z"]), Err(dropped(DropReason::UncommittedLimit)));
    assert_eq!(c.last_index(1), last, "nothing appended");
    // Proposals forwarded by followers are refused too.
    c.heal();
    c.cut(1, 3);
    c.cut_one_way(1, 2);
    c.propose(2, "forwarded").unwrap();
    c.stabilize();
    assert!(c.refused.iter().any(|(m, e)| m.from == 2 && *e == dropped(DropReason::UncommittedLimit)));
    // Once the entries commit (and are handed out), proposals flow again.
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(1), last);
    c.propose(1, "x").unwrap();
    c.stabilize();
    assert_eq!(c.applied_data(2).last().map(String::as_str), Some("x"));
}

#[test]
fn a_single_proposal_above_the_bound_is_accepted_when_nothing_else_is_uncommitted() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.max_uncommitted_entries_size = 100);
    c.elect(1);
    c.isolate(2);
    c.isolate(3);
    c.propose_bytes(1, Bytes::from(vec![b'a'; 500])).unwrap();
    assert_eq!(c.propose(1, "b"), Err(dropped(DropReason::UncommittedLimit)));
}

#[test]
fn an_unreachable_follower_goes_back_to_probing() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    assert_eq!(c.progress_state(1, 2), ProgressState::Replicate);
    c.raw_mut(1).report_unreachable(2).unwrap();
    assert_eq!(c.progress_state(1, 2), ProgressState::Probe);
    c.clear_trace();
    for i in 0..4 {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    assert_eq!(c.queued(appends_to(2)).len(), 1, "probing: one append until it is answered");
    assert_eq!(c.queued(appends_to(3)).len(), 4, "the reachable follower is streamed to");
    c.stabilize();
    assert_eq!(c.progress_state(1, 2), ProgressState::Replicate);
    assert_eq!(c.applied_data(2), vec!["e0", "e1", "e2", "e3"]);
}

#[test]
fn committed_entries_are_handed_out_in_bounded_readies() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| {
        if cfg.id == 2 {
            cfg.max_committed_size_per_ready = 300;
        }
    });
    c.elect(1);
    c.propose_batch(1, &[&"a".repeat(100), &"b".repeat(100), &"c".repeat(100), &"d".repeat(100)]).unwrap();
    c.tick(1);
    c.stabilize();
    let committed = c.committed(2);
    // Node 2 restarts without a snapshot: everything committed is applied
    // again, Ready by Ready, by hand.
    c.crash(2);
    c.node_mut(2).manual_ready = true;
    c.restart(2);
    let mut batches = Vec::new();
    let raw = c.raw_mut(2);
    while raw.has_ready() {
        let rd = raw.ready().unwrap();
        assert!(rd.entries.is_empty() && rd.hard_state.is_none(), "nothing new to persist");
        if !rd.committed_entries.is_empty() {
            let size: usize = rd.committed_entries.iter().map(|e| e.encoded_len()).sum();
            assert!(rd.committed_entries.len() == 1 || size <= 300, "a Ready of {size} bytes");
            batches.push(rd.committed_entries.iter().map(|e| e.index).collect::<Vec<_>>());
        }
        raw.advance().unwrap();
    }
    let all: Vec<u64> = batches.concat();
    assert_eq!(all, (1..=committed).collect::<Vec<_>>(), "each committed entry once, in order: {batches:?}");
    assert!(batches.len() >= 2, "300 bytes per Ready cannot hold four 100-byte entries: {batches:?}");
}
