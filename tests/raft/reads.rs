//! Linearizable reads (§6.4 of the thesis): ReadIndex confirmed by a quorum
//! heartbeat round (safe mode, batched), held by a new leader until it
//! committed an entry of its term, forwarded from followers; and lease-based
//! reads that skip the round only while the lease holds.

use super::harness::*;
use raftkv::proto::raftpb::{Message, MessageType};
use raftkv::raft::{DropReason, ReadOnlyOption, StateRole};

fn ctxs(c: &mut Cluster, id: u64) -> Vec<String> {
    c.take_read_states(id).iter().map(|r| String::from_utf8_lossy(&r.request_ctx).into_owned()).collect()
}

fn heartbeats_with_context(c: &Cluster) -> Vec<&Message> {
    c.queued(|m| is(m, MessageType::MsgHeartbeat) && !m.context.is_empty())
}

// ------------------------------------------------------------------ safe

#[test]
fn a_read_is_confirmed_only_after_a_quorum_heartbeat_round() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let commit = c.committed(1);
    c.read_index(1, "r").unwrap();
    assert!(c.take_read_states(1).is_empty(), "the leader alone is not a quorum");
    let hbs: Vec<Message> = c.take(|m| is(m, MessageType::MsgHeartbeat));
    assert_eq!(hbs.len(), 2);
    assert!(hbs.iter().all(|m| !m.context.is_empty()), "the round carries the request's sequence");
    // Entries committed meanwhile do not change the index of this read.
    c.propose(1, "later").unwrap();
    c.stabilize();
    assert!(c.committed(1) > commit);
    assert!(c.take_read_states(1).is_empty(), "appends do not confirm leadership for reads");
    // One follower's acknowledgement completes the quorum.
    let to_2 = hbs.into_iter().find(|m| m.to == 2).unwrap();
    c.deliver(to_2);
    assert!(c.take_read_states(1).is_empty());
    c.stabilize();
    let rs = c.take_read_states(1);
    assert_eq!(rs.len(), 1);
    assert_eq!((rs[0].index, rs[0].request_ctx.as_ref()), (commit, &b"r"[..]));
}

#[test]
fn a_leader_cut_off_from_both_followers_confirms_no_read() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.isolate(1);
    c.read_index(1, "r").unwrap();
    let mut ticks = 0;
    while c.role(1) == StateRole::Leader {
        c.tick(1);
        c.stabilize();
        ticks += 1;
        assert!(c.take_read_states(1).is_empty(), "no read state without a quorum (tick {ticks})");
    }
    // It stepped down: the read is never confirmed, even once healed.
    c.heal();
    for _ in 0..30 {
        c.tick_all();
        c.stabilize();
    }
    assert!(c.take_read_states(1).is_empty());
}

#[test]
fn a_read_waiting_on_a_partitioned_leader_is_confirmed_once_it_hears_a_quorum() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.isolate(1);
    c.read_index(1, "r").unwrap();
    for _ in 0..5 {
        c.tick(1);
        c.stabilize();
    }
    assert!(c.take_read_states(1).is_empty());
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(ctxs(&mut c, 1), vec!["r"], "the next heartbeat round carries the pending request");
}

#[test]
fn a_new_leader_holds_reads_until_it_committed_an_entry_of_its_term() {
    let mut c = Cluster::new(&[1, 2, 3]);
    // Elected, but its empty entry is not replicated yet.
    c.add_filter(|m| m.from == 1 && is(m, MessageType::MsgApp));
    c.elect(1);
    let noop = c.last_index(1);
    assert_eq!(c.raw(1).raft.log_term(noop), Some(c.term(1)));
    assert!(c.committed(1) < noop);
    c.read_index(1, "r").unwrap();
    assert!(heartbeats_with_context(&c).is_empty(), "the read is held, no confirmation round yet");
    c.tick(1);
    c.stabilize();
    assert!(c.take_read_states(1).is_empty(), "held while nothing of the new term is committed");
    c.clear_filters();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(1), noop);
    let rs = c.take_read_states(1);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].index, noop, "the read index covers the new term's first entry");
}

#[test]
fn one_quorum_round_confirms_every_read_it_covers() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.clear_trace();
    for i in 1..=5 {
        c.read_index(1, &format!("r{i}")).unwrap();
    }
    let hbs: Vec<Message> = c.take(|m| is(m, MessageType::MsgHeartbeat) && m.to == 2);
    assert_eq!(hbs.len(), 5);
    c.take_all();
    // The first round only covers the first read ...
    c.deliver(hbs[0].clone());
    c.stabilize();
    assert_eq!(ctxs(&mut c, 1), vec!["r1"]);
    // ... the last round covers all the others at once, in order.
    c.deliver(hbs[4].clone());
    c.stabilize();
    assert_eq!(ctxs(&mut c, 1), vec!["r2", "r3", "r4", "r5"]);
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgHeartbeatResp)), 2);
}

#[test]
fn a_read_on_a_follower_is_forwarded_to_the_leader_and_answered() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose(1, "x").unwrap();
    c.stabilize();
    c.clear_trace();
    c.read_index(2, "f").unwrap();
    assert_eq!(c.queued(|m| is(m, MessageType::MsgReadIndex) && m.to == 1).len(), 1);
    c.stabilize();
    let rs = c.take_read_states(2);
    assert_eq!(rs.len(), 1);
    assert_eq!((rs[0].index, rs[0].request_ctx.as_ref()), (c.committed(1), &b"f"[..]));
    assert!(c.take_read_states(1).is_empty(), "the answer goes to the follower");
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgReadIndexResp)), 1);
}

#[test]
fn a_read_without_a_leader_fails() {
    let mut c = Cluster::new(&[1, 2, 3]);
    assert_eq!(c.read_index(1, "r"), Err(dropped(DropReason::NoLeader)));
    c.campaign(1);
    assert_eq!(c.role(1), StateRole::PreCandidate);
    assert_eq!(c.read_index(1, "r"), Err(dropped(DropReason::NoLeader)));
}

#[test]
fn a_single_voter_answers_reads_at_once() {
    let mut c = Cluster::new(&[1]);
    c.elect(1);
    c.clear_trace();
    c.read_index(1, "r").unwrap();
    assert_eq!(ctxs(&mut c, 1), vec!["r"]);
    assert!(c.trace.is_empty());
}

// ------------------------------------------------------------------ lease

fn lease_cluster() -> Cluster {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.read_only_option = ReadOnlyOption::LeaseBased);
    c.elect(1);
    c
}

/// One acknowledged heartbeat round.
fn heartbeat_round(c: &mut Cluster) {
    c.tick(1);
    c.stabilize();
}

#[test]
fn a_lease_read_is_answered_without_a_round_while_the_lease_holds() {
    let mut c = lease_cluster();
    heartbeat_round(&mut c);
    c.clear_trace();
    c.read_index(1, "r").unwrap();
    assert_eq!(ctxs(&mut c, 1), vec!["r"], "answered at once");
    assert!(c.trace.is_empty(), "without any message: {:?}", c.trace);
    // Also for a read forwarded by a follower: a single round trip.
    c.read_index(2, "f").unwrap();
    c.stabilize();
    assert_eq!(ctxs(&mut c, 2), vec!["f"]);
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgHeartbeat)), 0);
}

#[test]
fn right_after_an_election_a_lease_read_falls_back_to_a_quorum_round() {
    let mut c = lease_cluster();
    c.read_index(1, "r").unwrap();
    assert!(c.take_read_states(1).is_empty(), "no lease yet: no heartbeat was acknowledged in this term");
    assert_eq!(heartbeats_with_context(&c).len(), 2);
    c.stabilize();
    assert_eq!(ctxs(&mut c, 1), vec!["r"]);
}

#[test]
fn a_lease_expires_when_followers_stop_answering() {
    let mut c = lease_cluster();
    heartbeat_round(&mut c);
    // The last acknowledged heartbeat was sent at the leader's current tick.
    c.cut(1, 2);
    c.cut(1, 3);
    // The lease lasts an election timeout (10) minus the 2-tick margin.
    for k in 1..=7 {
        c.tick(1);
        c.stabilize();
        c.read_index(1, &format!("k{k}")).unwrap();
        assert_eq!(ctxs(&mut c, 1), vec![format!("k{k}")], "{k} ticks after the last acknowledged heartbeat");
    }
    c.tick(1);
    c.stabilize();
    c.read_index(1, "expired").unwrap();
    assert!(c.take_read_states(1).is_empty(), "8 ticks later the lease is over");
    assert_eq!(c.role(1), StateRole::Leader, "still leader: only the lease expired");
    // The fallback round completes once the followers answer again.
    c.heal();
    heartbeat_round(&mut c);
    assert_eq!(ctxs(&mut c, 1), vec!["expired"]);
}

#[test]
fn a_lease_is_void_once_timeout_now_was_sent() {
    let mut c = lease_cluster();
    heartbeat_round(&mut c);
    c.transfer_leader(1, 2);
    let timeout_now = c.take(|m| is(m, MessageType::MsgTimeoutNow));
    assert_eq!(timeout_now.len(), 1, "sent, and lost");
    c.read_index(1, "r1").unwrap();
    assert!(c.take_read_states(1).is_empty(), "2 may be elected at any moment");
    c.stabilize();
    assert_eq!(ctxs(&mut c, 1), vec!["r1"], "confirmed by a quorum round instead");
    // Even after the transfer was abandoned, for the rest of the term.
    for _ in 0..10 {
        heartbeat_round(&mut c);
    }
    assert_eq!(c.raw(1).raft.lead_transferee, 0);
    assert_eq!(c.role(1), StateRole::Leader);
    c.read_index(1, "r2").unwrap();
    assert!(c.take_read_states(1).is_empty());
    c.stabilize();
    assert_eq!(ctxs(&mut c, 1), vec!["r2"]);
}
