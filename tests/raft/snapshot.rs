//! Snapshots and log compaction (§7 of the paper): a follower behind the
//! leader's compacted log gets the snapshot, installs it and catches up; a
//! failed snapshot is retried once reported; a snapshot that predates a new
//! member is never sent to it.

use super::harness::*;
use bytes::Bytes;
use raftkv::proto::raftpb::{ConfState, Entry, Message, MessageType, Snapshot, SnapshotMetadata};
use raftkv::raft::{
    Config, MemStorage, ProgressState, RaftState, RawNode, SnapshotStatus, StateRole, Storage, StorageError,
};

/// Three nodes; node 3 misses `n` entries, which the leader then compacts
/// away (snapshot at its applied index).
fn follower_behind_compaction(n: usize) -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose(1, "before").unwrap();
    c.stabilize();
    c.isolate(3);
    for i in 0..n {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    c.stabilize();
    let applied = c.node(1).sm.applied;
    assert_eq!(applied, c.last_index(1));
    c.snapshot_and_compact(1, applied);
    assert_eq!(c.raw(1).raft.first_index(), applied + 1);
    assert!(c.last_index(3) < applied);
    c.heal();
    c.clear_trace();
    c
}

fn expected_data(n: usize) -> Vec<String> {
    std::iter::once("before".to_string()).chain((0..n).map(|i| format!("e{i}"))).collect()
}

#[test]
fn a_follower_behind_the_compacted_log_installs_a_snapshot_and_catches_up() {
    let mut c = follower_behind_compaction(5);
    let snap_index = c.last_index(1);
    let snap_term = c.term(1);
    c.tick(1);
    c.stabilize();
    let snaps = c.sent_between(1, 3, MessageType::MsgSnap);
    assert_eq!(snaps.len(), 1);
    let meta = snaps[0].snapshot.as_ref().and_then(|s| s.metadata.clone()).unwrap();
    assert_eq!((meta.index, meta.term), (snap_index, snap_term));
    assert_eq!(c.node(3).sm.snapshots_installed, vec![(snap_index, snap_term)], "installed via Ready.snapshot");
    assert_eq!(c.applied_data(3), expected_data(5), "the state machine was restored from the snapshot");
    assert_eq!(c.raw(3).store().first_index(), snap_index + 1);
    assert_eq!(c.committed(3), snap_index);
    assert_eq!(conf_voters(&c.node(3).sm.conf_state).0, vec![1, 2, 3]);
    assert_eq!(c.progress_state(1, 3), ProgressState::Replicate);
    // Later entries arrive as ordinary appends.
    c.propose(1, "after").unwrap();
    c.stabilize();
    let mut all = expected_data(5);
    all.push("after".into());
    assert_eq!(c.applied_data(3), all);
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgSnap)), 1);
}

#[test]
fn a_snapshot_that_restarts_survives_a_crash() {
    let mut c = follower_behind_compaction(3);
    c.tick(1);
    c.stabilize();
    c.crash(3);
    c.restart(3);
    assert_eq!(c.applied_data(3), expected_data(3), "restored from the persisted snapshot");
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(3), c.committed(1));
}

#[test]
fn a_lost_snapshot_is_resent_only_after_report_snapshot_failure() {
    let mut c = follower_behind_compaction(5);
    c.add_filter(|m| is(m, MessageType::MsgSnap));
    c.tick(1);
    c.stabilize();
    c.clear_filters();
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgSnap)), 1, "sent, and lost");
    assert_eq!(c.progress_state(1, 3), ProgressState::Snapshot);
    // While the leader believes the snapshot is on its way, it sends nothing
    // but heartbeats.
    c.clear_trace();
    for _ in 0..5 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.count_sent(|m| m.to == 3 && (is(m, MessageType::MsgSnap) || is(m, MessageType::MsgApp))), 0);
    assert_eq!(c.progress_state(1, 3), ProgressState::Snapshot);
    // The transport reports the failure: the leader probes and resends.
    c.raw_mut(1).report_snapshot(3, SnapshotStatus::Failure).unwrap();
    assert_eq!(c.progress_state(1, 3), ProgressState::Probe);
    assert!(c.progress(1, 3).paused, "the probe waits for the next heartbeat response");
    c.tick(1);
    c.stabilize();
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgSnap)), 1, "resent");
    assert_eq!(c.applied_data(3), expected_data(5));
    assert_eq!(c.progress_state(1, 3), ProgressState::Replicate);
}

#[test]
fn report_snapshot_finish_resumes_replication_after_the_snapshot() {
    let mut c = follower_behind_compaction(5);
    let snap_index = c.last_index(1);
    // The snapshot arrives, but its acknowledgement is lost.
    c.add_filter(|m| m.from == 3 && is(m, MessageType::MsgAppResp) && !m.reject);
    c.tick(1);
    c.stabilize();
    c.heal();
    assert_eq!(c.node(3).sm.snapshots_installed.len(), 1);
    assert_eq!(c.progress_state(1, 3), ProgressState::Snapshot);
    c.raw_mut(1).report_snapshot(3, SnapshotStatus::Finish).unwrap();
    let pr = c.progress(1, 3);
    assert_eq!((pr.state, pr.next), (ProgressState::Probe, snap_index + 1), "resume right after the snapshot");
    c.propose(1, "after").unwrap();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgSnap)), 1, "no second snapshot");
    assert_eq!(c.applied_data(3).last().map(String::as_str), Some("after"));
}

#[test]
fn a_stale_snapshot_is_not_installed() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    for i in 0..3 {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    c.stabilize();
    let committed = c.committed(2);
    let term = c.term(1);
    let stale = Snapshot {
        data: Bytes::new(),
        metadata: Some(SnapshotMetadata { conf_state: Some(voters(&[1, 2, 3])), index: committed - 2, term }),
    };
    c.clear_trace();
    c.step(2, Message { snapshot: Some(stale), ..msg(MessageType::MsgSnap, 1, 2, term) }).unwrap();
    assert!(c.node(2).sm.snapshots_installed.is_empty());
    assert_eq!(c.applied_data(2), vec!["e0", "e1", "e2"]);
    let resp = c.sent_between(2, 1, MessageType::MsgAppResp);
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].index, committed, "answered with the follower's commit index");
}

#[test]
fn a_snapshot_predating_a_new_member_is_not_sent_to_it() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    for i in 0..3 {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    c.stabilize();
    let applied = c.node(1).sm.applied;
    c.snapshot_and_compact(1, applied);
    // Node 4 joins; the only snapshot's configuration is {1, 2, 3}.
    c.add_empty_node(4);
    c.propose_conf_change(1, &add_node(4)).unwrap();
    c.stabilize();
    for _ in 0..3 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.count_sent(|m| m.to == 4 && is(m, MessageType::MsgSnap)), 0, "it would refuse a snapshot without it");
    assert!(c.node(1).snapshot_requests > 0, "the storage was asked for a newer snapshot");
    assert!(c.node(4).sm.snapshots_installed.is_empty());
    // The application makes one (its configuration contains 4): it is sent.
    c.snapshot_now(1);
    c.tick(1);
    c.stabilize();
    let snaps = c.sent_between(1, 4, MessageType::MsgSnap);
    assert_eq!(snaps.len(), 1);
    let cs = snaps[0].snapshot.as_ref().and_then(|s| s.metadata.as_ref()).and_then(|m| m.conf_state.clone()).unwrap();
    assert!(cs.voters.contains(&4));
    assert_eq!(c.node(4).sm.snapshots_installed.len(), 1);
    assert_eq!(c.applied_data(4), vec!["e0", "e1", "e2"]);
    assert_eq!(conf_voters(&c.node(4).sm.conf_state).0, vec![1, 2, 3, 4]);
}

#[test]
fn a_follower_refuses_a_snapshot_whose_configuration_lacks_it() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let term = c.term(1);
    let foreign = Snapshot {
        data: Bytes::new(),
        metadata: Some(SnapshotMetadata { conf_state: Some(voters(&[1, 2])), index: 100, term }),
    };
    c.step(3, Message { snapshot: Some(foreign), ..msg(MessageType::MsgSnap, 1, 3, term) }).unwrap();
    assert!(c.node(3).sm.snapshots_installed.is_empty());
    assert!(c.last_index(3) < 100);
}

// ------------------------------------------------------------------ the leader's own guard

/// A storage that hands out its snapshot whoever it is for (as a careless
/// implementation might): the core itself must not send it to a node the
/// snapshot's configuration lacks.
struct CarelessSnapshots(MemStorage);

impl Storage for CarelessSnapshots {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        self.0.initial_state()
    }
    fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>, StorageError> {
        self.0.entries(low, high, max_size)
    }
    fn term(&self, index: u64) -> Result<u64, StorageError> {
        self.0.term(index)
    }
    fn first_index(&self) -> u64 {
        self.0.first_index()
    }
    fn last_index(&self) -> u64 {
        self.0.last_index()
    }
    fn snapshot(&self, request_index: u64, _to: u64) -> Result<Snapshot, StorageError> {
        self.0.snapshot(request_index, 0)
    }
}

/// Carries out every Ready of a lone node; returns the messages it sent.
fn run(raw: &mut RawNode<CarelessSnapshots>, cs: &mut ConfState) -> Vec<Message> {
    let mut out = Vec::new();
    while raw.has_ready() {
        let rd = raw.ready().unwrap();
        out.extend(rd.messages);
        let s = &mut raw.store_mut().0;
        s.append(&rd.entries).unwrap();
        if let Some(hs) = rd.hard_state {
            s.set_hard_state(hs);
        }
        out.extend(rd.persisted_messages);
        for e in &rd.committed_entries {
            if e.entry_type() != raftkv::proto::raftpb::EntryType::EntryNormal {
                *cs = raw.apply_conf_change(e).unwrap();
            }
        }
        raw.advance().unwrap();
    }
    out
}

#[test]
fn the_leader_never_sends_a_snapshot_whose_configuration_lacks_the_receiver() {
    let mut cfg = Config::new(1);
    cfg.seed = SEED;
    let mut raw = RawNode::new(&cfg, CarelessSnapshots(MemStorage::bootstrap(&[1]))).unwrap();
    let mut cs = ConfState::default();
    run(&mut raw, &mut cs);
    raw.campaign().unwrap();
    run(&mut raw, &mut cs);
    assert_eq!(raw.raft.role, StateRole::Leader);
    for i in 0..3 {
        raw.propose(Bytes::from(format!("e{i}"))).unwrap();
    }
    run(&mut raw, &mut cs);
    let applied = raw.raft.applied();
    assert_eq!(applied, raw.raft.last_index());
    let s = &mut raw.store_mut().0;
    s.create_snapshot(applied, Some(cs.clone()), Bytes::new()).unwrap();
    s.compact(applied).unwrap();

    // Learner 2 joins; its first probe is refused from an empty log.
    raw.propose_conf_change(&add_learner(2)).unwrap();
    let sent = run(&mut raw, &mut cs);
    assert_eq!(cs.learners, vec![2]);
    let probe = sent.iter().find(|m| m.to == 2 && is(m, MessageType::MsgApp)).expect("a probe to 2");
    let term = raw.raft.term;
    let reject =
        Message { index: probe.index, reject: true, reject_hint: 0, ..msg(MessageType::MsgAppResp, 2, 1, term) };
    raw.step(reject).unwrap();
    let sent = run(&mut raw, &mut cs);
    assert!(
        !sent.iter().any(|m| is(m, MessageType::MsgSnap)),
        "a snapshot of configuration {{1}} must not go to 2: {sent:?}"
    );
    // With a snapshot that contains 2, it goes.
    let applied = raw.raft.applied();
    raw.store_mut().0.create_snapshot(applied, Some(cs.clone()), Bytes::new()).unwrap();
    raw.step(msg(MessageType::MsgHeartbeatResp, 2, 1, term)).unwrap();
    let sent = run(&mut raw, &mut cs);
    let snap = sent.iter().find(|m| is(m, MessageType::MsgSnap)).expect("the newer snapshot is sent");
    assert_eq!(snap.snapshot.as_ref().and_then(|s| s.metadata.as_ref()).map(|m| m.index), Some(applied));
}
