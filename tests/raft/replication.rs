//! Log replication: the paper's Figure 7 (followers' logs brought in line
//! with the leader's), Figure 8 (a leader never commits an earlier term's
//! entry by counting replicas), and fast backtracking with reject hints.

use super::harness::*;
use raftkv::proto::raftpb::MessageType;
use raftkv::raft::{ProgressState, StateRole};

fn rejections_from(c: &Cluster, id: u64) -> usize {
    c.count_sent(|m| m.from == id && is(m, MessageType::MsgAppResp) && m.reject)
}

// ------------------------------------------------------------------ Figure 7

#[test]
fn figure_7_every_follower_log_is_brought_in_line_with_the_leader() {
    // Figure 7 of the Raft paper: the leader of term 8 (node 1) and the
    // followers (a)-(f) (nodes 2-7). Each list is the term of the entry at
    // index 1, 2, ...
    let leader: &[u64] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [(&str, &[u64]); 6] = [
        ("a: missing one entry", &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        ("b: missing many entries", &[1, 1, 1, 4]),
        ("c: one extra uncommitted entry", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        ("d: extra entries of a later term", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        ("e: missing entries, extra entries of term 4", &[1, 1, 1, 4, 4, 4, 4]),
        ("f: many entries of terms 2 and 3", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    let cs = voters(&[1, 2, 3, 4, 5, 6, 7]);
    let mut storages = vec![(1, storage_with_log(cs.clone(), leader, 6, 3))];
    for (i, (_, log)) in followers.iter().enumerate() {
        let term = *log.last().unwrap();
        storages.push((i as u64 + 2, storage_with_log(cs.clone(), log, term, 3)));
    }
    let mut c = Cluster::from_storages(storages, |_| {});
    c.clear_trace();
    c.elect(1);
    assert_eq!(c.term(1), 8, "node 1 leads term 8 as in the figure:{}", c.describe());
    c.stabilize();

    let mut expected = leader.to_vec();
    expected.push(8); // the new leader's empty entry
    assert_eq!(c.terms(1), expected);
    for (i, (case, log)) in followers.iter().enumerate() {
        let id = i as u64 + 2;
        assert_eq!(c.terms(id), expected, "follower ({case}) was {log:?}");
        assert_eq!(c.committed(id), expected.len() as u64, "follower ({case}) learns the commit index");
        // With reject hints, each follower costs at most one rejection.
        let rejections = rejections_from(&c, id);
        assert!(rejections <= 1, "follower ({case}) rejected {rejections} appends");
    }
    // The persisted logs agree too, entry for entry.
    let reference = c.stored_entries(1);
    for id in 2..=7 {
        assert_eq!(c.stored_entries(id), reference, "node {id}'s storage");
    }
}

// ------------------------------------------------------------------ Figure 8

/// Figure 8 of the Raft paper with five servers S1..S5 (nodes 1..5), indexes
/// shifted by the five bootstrap entries (paper index 2 is index 6 here).
///
/// (a) S1 leads term 2 and replicates index 6 (term 2) to S2 only.
/// (b) S1 crashes; S5 is elected for term 3 by S3, S4 and itself and writes
///     a different entry at index 6 (term 3), which nobody else receives.
/// (c) S5 crashes; S1 restarts and is elected for term 4 by S1, S2, S3. It
///     replicates index 6 (term 2) to S3: the entry is now on a majority
///     (S1, S2, S3), but is not committed. Its term-4 entry (index 7)
///     reaches S2 but not S3.
fn figure_8_up_to_c() -> Cluster {
    // One entry per append, so index 6 can reach S3 without index 7.
    let mut c = Cluster::with_config(&[1, 2, 3, 4, 5], |cfg| cfg.max_size_per_msg = 1);
    // (a)
    c.add_filter(|m| is(m, MessageType::MsgApp) && m.from == 1 && m.to != 2);
    c.elect(1);
    assert_eq!(c.term(1), 2);
    assert_eq!(c.log(1).last(), Some(&(6, 2)));
    assert_eq!(c.log(2).last(), Some(&(6, 2)));
    for id in 3..=5 {
        assert_eq!(c.last_index(id), 5);
    }
    assert_eq!(c.committed(1), 5, "index 6 is on 2 of 5 servers");
    // (b)
    c.crash(1);
    c.clear_filters();
    c.cut(5, 2);
    c.add_filter(|m| is(m, MessageType::MsgApp) && m.from == 5);
    c.elect(5);
    assert_eq!(c.term(5), 3);
    assert_eq!(c.log(5).last(), Some(&(6, 3)));
    for id in 2..=4 {
        assert_ne!(c.log(id).last(), Some(&(6, 3)), "node {id}");
    }
    // (c)
    c.crash(5);
    c.heal();
    c.restart(1);
    c.cut(1, 4);
    // S3 must hear the first append of term 4 (a probe it rejects, as it
    // lacks index 6), but no later one carrying the term-4 entry.
    let mut term_4_appends_to_s3 = 0;
    c.add_filter(move |m| {
        let hit = is(m, MessageType::MsgApp) && m.from == 1 && m.to == 3 && m.entries.iter().any(|e| e.term == 4);
        term_4_appends_to_s3 += hit as usize;
        hit && term_4_appends_to_s3 > 1
    });
    c.clear_trace();
    c.elect(1);
    assert_eq!(rejections_from(&c, 3), 1, "S3 rejected the first probe");
    assert_eq!(c.term(1), 4, "{}", c.describe());
    for id in 1..=3 {
        assert_eq!(c.raw(id).raft.log_term(6), Some(2), "node {id} holds index 6 from term 2");
    }
    assert_eq!(c.log(1).last(), Some(&(7, 4)));
    assert_eq!(c.log(3).last(), Some(&(6, 2)));
    // The leader knows index 6 is on a majority ...
    assert!(c.progress(1, 2).matched >= 6 && c.progress(1, 3).matched == 6);
    // ... and still does not commit it: it is from an earlier term.
    assert_eq!(c.committed(1), 5, "an entry of term 2 must not be committed by counting replicas in term 4");
    // Heartbeats do not change that.
    for _ in 0..3 {
        c.tick(1);
        c.stabilize();
    }
    assert_eq!(c.committed(1), 5);
    for id in 1..=3 {
        assert!(c.node(id).sm.applied <= 5, "node {id} applied an uncommitted entry");
    }
    c
}

#[test]
fn figure_8_d_an_entry_of_an_earlier_term_on_a_majority_may_still_be_overwritten() {
    let mut c = figure_8_up_to_c();
    // (d) S1 crashes; S5 restarts and is elected for term 5 by S3, S4 and
    // itself: its last entry (6, term 3) is more up to date than theirs.
    c.crash(1);
    c.heal();
    c.restart(5);
    c.elect(5);
    assert!(c.term(5) >= 5);
    c.stabilize();
    // It replaces index 6 (term 2) everywhere, as it may: that entry was never
    // committed, which is exactly why S1 must not have committed it in (c).
    for id in 2..=5 {
        assert_eq!(c.raw(id).raft.log_term(6), Some(3), "node {id}:{}", c.describe());
        assert_eq!(c.committed(id), c.last_index(5), "node {id}");
    }
    assert!(c.node(2).sm.applied_log.iter().any(|&(i, t)| i == 6 && t == 3));
}

#[test]
fn figure_8_e_once_an_entry_of_the_current_term_commits_the_earlier_one_is_committed_too() {
    let mut c = figure_8_up_to_c();
    // (e) S1 replicates its term-4 entry to S3 before crashing: with it, the
    // earlier entry is committed (log matching), and S5 can never win.
    c.clear_filters();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(1), 7, "index 7 (term 4) on S1, S2, S3 commits index 6 (term 2) with it");
    assert!(c.node(1).sm.applied_log.contains(&(6, 2)));
    c.crash(1);
    c.heal();
    c.restart(5);
    assert!(!c.try_elect(5), "S5 lacks committed entries:{}", c.describe());
    c.elect(2);
    c.stabilize();
    for id in 2..=5 {
        assert_eq!(c.raw(id).raft.log_term(6), Some(2), "node {id}");
        assert_eq!(c.raw(id).raft.log_term(7), Some(4), "node {id}");
    }
}

// ------------------------------------------------------------------ backtracking

/// A three-node cluster: nodes 1 and 2 hold `common` then `leader_tail`,
/// node 3 holds `common` then `follower_tail`. Everyone is at `term`, with
/// `common` committed. Node 1 is then elected.
fn diverged(common: &[u64], leader_tail: &[u64], follower_tail: &[u64], term: u64) -> Cluster {
    let cs = voters(&[1, 2, 3]);
    let commit = common.len() as u64;
    let leader_log: Vec<u64> = common.iter().chain(leader_tail).copied().collect();
    let follower_log: Vec<u64> = common.iter().chain(follower_tail).copied().collect();
    let mut c = Cluster::from_storages(
        vec![
            (1, storage_with_log(cs.clone(), &leader_log, term, commit)),
            (2, storage_with_log(cs.clone(), &leader_log, term, commit)),
            (3, storage_with_log(cs, &follower_log, term, commit)),
        ],
        |_| {},
    );
    c.cut(1, 3);
    c.elect(1);
    c.heal();
    c.clear_trace();
    c
}

#[test]
fn a_follower_far_behind_is_caught_up_in_one_rejection() {
    let common = [1, 1, 1];
    let leader_tail = vec![3; 100];
    let mut c = diverged(&common, &leader_tail, &[], 3);
    c.tick(1);
    c.stabilize();
    assert_eq!(c.terms(3), c.terms(1));
    assert_eq!(rejections_from(&c, 3), 1, "one rejection, whose hint points at the follower's last index");
    let appends = c.sent_between(1, 3, MessageType::MsgApp).len();
    assert!(appends <= 4, "{appends} appends to catch up 100 entries (one per entry would be 100)");
}

#[test]
fn a_long_divergent_suffix_of_an_old_term_is_skipped_in_one_round_trip() {
    // The follower holds 50 uncommitted entries of term 2; the leader has 50
    // entries of term 3 at the same indexes.
    let common = [1, 1, 1];
    let mut c = diverged(&common, &[3; 50], &[2; 50], 3);
    c.tick(1);
    c.stabilize();
    assert_eq!(c.terms(3), c.terms(1), "{}", c.describe());
    assert_eq!(rejections_from(&c, 3), 1, "the whole term-2 suffix is skipped at once");
    assert!(c.sent_between(1, 3, MessageType::MsgApp).len() <= 4);
}

#[test]
fn several_divergent_terms_are_skipped_term_by_term_at_worst() {
    // Follower: terms 2 and 4 after the common prefix; leader: terms 3 and 5.
    let common = [1, 1, 1];
    let leader_tail: Vec<u64> = [vec![3; 20], vec![5; 20]].concat();
    let follower_tail: Vec<u64> = [vec![2; 20], vec![4; 30]].concat();
    let mut c = diverged(&common, &leader_tail, &follower_tail, 5);
    c.tick(1);
    c.stabilize();
    assert_eq!(c.terms(3), c.terms(1));
    let rejections = rejections_from(&c, 3);
    assert!((1..=2).contains(&rejections), "{rejections} rejections for 50 divergent entries");
}

#[test]
fn probing_a_follower_does_not_overwrite_its_matching_prefix() {
    // Follower (b) of Figure 7 against a leader of term 3 with a longer log:
    // the follower's entries that match are kept (never re-sent).
    let common = [1, 1, 1, 2, 2];
    let mut c = diverged(&common, &[3; 5], &[], 3);
    c.tick(1);
    c.stabilize();
    let resent: Vec<u64> =
        c.sent_between(1, 3, MessageType::MsgApp).iter().flat_map(|m| m.entries.iter().map(|e| e.index)).collect();
    assert!(resent.iter().all(|&i| i > 5), "entries the follower holds were re-sent: {resent:?}");
    assert_eq!(c.terms(3), c.terms(1));
}

#[test]
fn log_matching_a_follower_rejects_an_append_whose_previous_entry_differs() {
    let cs = voters(&[1, 2, 3]);
    let s = storage_with_log(cs, &[1, 1, 1, 2, 2], 2, 3);
    let mut c = Cluster::from_storages(vec![(2, s)], |_| {});
    let before = c.log(2);
    c.clear_trace();
    // The leader of term 3 believes index 5 has term 3: mismatch.
    c.step(2, append(1, 2, 3, 5, 3, vec![ent(6, 3)], 3)).unwrap();
    assert_eq!(c.log(2), before, "nothing appended after a mismatching entry");
    let resp = c.sent_between(2, 1, MessageType::MsgAppResp);
    assert_eq!(resp.len(), 1);
    assert!(resp[0].reject);
    assert_eq!((resp[0].index, resp[0].reject_hint, resp[0].log_term), (5, 5, 2), "hint: index 5 has term 2");
    // Beyond the follower's log: the hint is its last index.
    c.clear_trace();
    c.step(2, append(1, 2, 3, 9, 3, vec![ent(10, 3)], 3)).unwrap();
    let resp = c.sent_between(2, 1, MessageType::MsgAppResp);
    assert!(resp[0].reject);
    assert_eq!(resp[0].reject_hint, 5);
    // A matching append replaces the conflicting suffix and commits up to
    // the leader's commit index, bounded by what this append proves.
    c.step(2, append(1, 2, 3, 3, 1, vec![ent(4, 3), ent(5, 3)], 9)).unwrap();
    assert_eq!(c.terms(2), vec![1, 1, 1, 3, 3]);
    assert_eq!(c.committed(2), 5);
    assert_eq!(c.role(2), StateRole::Follower);
    assert_eq!(c.leader_of(2), 1);
}

#[test]
fn a_new_leader_starts_probing_and_switches_to_replicate_on_the_first_success() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.cut(1, 3);
    c.elect(1);
    assert_eq!(c.progress_state(1, 2), ProgressState::Replicate);
    assert_eq!(c.progress_state(1, 3), ProgressState::Probe, "no answer from 3 yet");
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.progress_state(1, 3), ProgressState::Replicate);
    assert_eq!(c.progress(1, 3).matched, c.last_index(1));
}

// ------------------------------------------------------------------ the Ready contract

#[test]
fn the_leader_counts_its_own_entry_only_once_persisted() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.node_mut(1).manual_ready = true;
    c.raw_mut(1).propose("x".into()).unwrap();
    let rd = c.raw_mut(1).ready().unwrap();
    let x = rd.entries.last().expect("the entry to persist").index;
    assert!(rd.messages.iter().any(|m| m.to == 2 && carries_entries(m)), "appends leave before the leader persists");
    c.dispatch(rd.messages.clone());
    // Node 2 acknowledges; node 3 does not hear of it.
    c.take(|m| m.to == 3);
    c.stabilize();
    assert_eq!(c.progress(1, 2).matched, x);
    assert!(c.committed(1) < x, "the leader's unpersisted copy does not count: 1 of 3");
    // Persisting and advancing delivers the leader's own acknowledgement.
    let store = c.raw_mut(1).store_mut();
    store.append(&rd.entries).unwrap();
    if let Some(hs) = rd.hard_state {
        store.set_hard_state(hs);
    }
    c.raw_mut(1).advance().unwrap();
    assert_eq!(c.committed(1), x, "2 of 3 once the leader's copy is persisted");
    c.node_mut(1).manual_ready = false;
    c.handle_ready(1);
    c.stabilize();
    assert_eq!(c.applied_data(3), vec!["x"]);
}

#[test]
fn a_follower_acknowledges_only_what_it_persisted() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose(1, "x").unwrap();
    let x = c.last_index(1);
    let to_2 = c.take(|m| m.to == 2).pop().unwrap();
    c.node_mut(2).manual_ready = true;
    c.raw_mut(2).step(to_2).unwrap();
    let rd = c.raw_mut(2).ready().unwrap();
    assert_eq!(rd.entries.last().map(|e| e.index), Some(x));
    assert!(!rd.messages.iter().any(|m| is(m, MessageType::MsgAppResp)), "no acknowledgement before persisting");
    assert!(rd.persisted_messages.iter().any(|m| is(m, MessageType::MsgAppResp) && m.index == x));
    // Crash before persisting: the entry is gone and was never acknowledged.
    c.crash(2);
    c.node_mut(2).manual_ready = false;
    c.restart(2);
    assert!(c.last_index(2) < x);
    c.isolate(3);
    c.stabilize();
    assert!(c.progress(1, 2).matched < x);
    assert!(c.committed(1) < x, "nobody but the leader holds x");
    c.heal();
    c.tick(1);
    c.stabilize();
    assert_eq!(c.committed(1), x);
    assert_eq!(c.applied_data(2), vec!["x"]);
}

#[test]
fn heartbeats_never_carry_a_commit_index_beyond_the_followers_match() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.add_filter(|m| m.to == 3 && carries_entries(m));
    for i in 0..3 {
        c.propose(1, &format!("e{i}")).unwrap();
    }
    c.stabilize();
    c.clear_trace();
    c.tick(1);
    let matched = c.progress(1, 3).matched;
    assert!(matched < c.committed(1));
    let hb = c.sent_between(1, 3, MessageType::MsgHeartbeat);
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0].commit, matched, "told to commit only what it is known to hold");
    // The follower never sees a commit index beyond its log (the harness
    // fails the test on the error that would cause).
    c.stabilize();
    assert!(c.committed(3) <= c.last_index(3));
}

#[test]
fn proposals_on_a_follower_are_forwarded_unless_forwarding_is_disabled() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.disable_proposal_forwarding = cfg.id == 3);
    c.elect(1);
    c.propose(2, "via 2").unwrap();
    assert_eq!(c.queued(|m| m.from == 2 && m.to == 1 && is(m, MessageType::MsgProp)).len(), 1);
    c.stabilize();
    assert_eq!(c.applied_data(1), vec!["via 2"]);
    assert_eq!(c.propose(3, "via 3"), Err(dropped(raftkv::raft::DropReason::ForwardingDisabled)));
    // Without a known leader there is nowhere to forward to.
    let mut fresh = Cluster::new(&[1, 2, 3]);
    assert_eq!(fresh.propose(2, "x"), Err(dropped(raftkv::raft::DropReason::NoLeader)));
}
