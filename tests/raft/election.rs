//! Terms, votes, the election restriction, randomized timeouts, heartbeats,
//! pre-vote and check-quorum (§5.1, §5.2, §5.4.1 of the Raft paper; §9.6 and
//! §6.2 of the thesis).

use super::harness::*;
use raftkv::proto::raftpb::{Message, MessageType};
use raftkv::raft::{MemStorage, StateRole};

// ------------------------------------------------------------------ terms

#[test]
fn a_lower_term_vote_request_is_ignored() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let t = c.term(2);
    c.clear_trace();
    // A vote request from an earlier term with a log that would otherwise win.
    c.step(2, vote_request(3, 2, t - 1, 100, t - 1, false)).unwrap();
    assert_eq!(c.term(2), t, "term unchanged");
    assert_eq!(c.vote(2), 1, "vote unchanged");
    assert_eq!(c.leader_of(2), 1, "leader unchanged");
    assert!(c.trace.is_empty(), "a stale vote request gets no answer, got {:?}", c.trace);
}

#[test]
fn a_lower_term_append_is_refused_with_the_newer_term() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let t = c.term(2);
    let log_before = c.log(2);
    let last = c.last_index(2);
    c.clear_trace();
    let stale = append(3, 2, t - 1, last, c.raw(2).raft.log_term(last).unwrap(), vec![ent(last + 1, t - 1)], last);
    c.step(2, stale).unwrap();
    assert_eq!(c.log(2), log_before, "nothing appended from a stale leader");
    assert_eq!(c.term(2), t);
    assert_eq!(c.leader_of(2), 1, "the real leader is still followed");
    let resp = c.sent_between(2, 3, MessageType::MsgAppResp);
    assert_eq!(resp.len(), 1, "the stale leader is answered: {:?}", c.trace);
    assert_eq!(resp[0].term, t, "the answer carries the newer term");
}

#[test]
fn a_stale_leader_steps_down_when_answered_with_the_newer_term() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let old_term = c.term(1);
    c.isolate(1);
    c.elect(2);
    let new_term = c.term(2);
    assert!(new_term > old_term);
    assert_eq!(c.role(1), StateRole::Leader, "the old leader does not know yet");
    assert_eq!(c.term(1), old_term);

    c.heal();
    // The old leader's next heartbeat reaches the others ...
    c.tick(1);
    let hb: Vec<_> = c.queued(|m| m.from == 1 && is(m, MessageType::MsgHeartbeat)).into_iter().cloned().collect();
    assert_eq!(hb.len(), 2);
    assert!(hb.iter().all(|m| m.term == old_term));
    c.stabilize();
    // ... is answered with the newer term, and it steps down.
    assert_eq!(c.role(1), StateRole::Follower, "{}", c.describe());
    assert_eq!(c.term(1), new_term);
    assert_eq!(c.leaders(), vec![2]);
    // The new leader's next heartbeat tells it who leads.
    c.tick(2);
    c.stabilize();
    assert_eq!(c.leader_of(1), 2);
}

#[test]
fn a_higher_term_makes_any_node_a_follower_of_that_term() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let t = c.term(1);

    // A leader that sees a response from a later term steps down, leaderless.
    c.step(1, msg(MessageType::MsgHeartbeatResp, 3, 1, t + 3)).unwrap();
    assert_eq!(c.role(1), StateRole::Follower);
    assert_eq!(c.term(1), t + 3);
    assert_eq!(c.leader_of(1), 0);
    assert_eq!(c.vote(1), 0, "a new term starts without a vote");

    // A candidate that hears a heartbeat of a later term follows its sender.
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.pre_vote = false);
    c.isolate(3);
    c.campaign(3);
    assert_eq!(c.role(3), StateRole::Candidate);
    let t = c.term(3);
    c.heal();
    let hb = Message { commit: 0, ..msg(MessageType::MsgHeartbeat, 2, 3, t + 2) };
    c.step(3, hb).unwrap();
    assert_eq!(c.role(3), StateRole::Follower);
    assert_eq!(c.term(3), t + 2);
    assert_eq!(c.leader_of(3), 2);
}

// ------------------------------------------------------------------ votes

/// Three nodes that grant votes at once (no pre-vote, no check-quorum lease).
fn plain_voters() -> Cluster {
    Cluster::with_config(&[1, 2, 3], |cfg| {
        cfg.pre_vote = false;
        cfg.check_quorum = false;
    })
}

#[test]
fn one_vote_per_term_even_across_a_restart() {
    let mut c = plain_voters();
    c.campaign(1);
    assert_eq!((c.role(1), c.term(1)), (StateRole::Candidate, 2));
    // Only node 3 hears node 1.
    c.cut(1, 2);
    c.stabilize();
    assert_eq!(c.vote(3), 1);
    assert_eq!(c.role(1), StateRole::Leader, "1 and 3 are a majority");

    // Node 3 crashes and restarts: its vote was persisted before it answered.
    c.crash(3);
    c.restart(3);
    assert_eq!((c.term(3), c.vote(3)), (2, 1), "term and vote survive the crash");

    // Node 2 campaigns in the same term 2: node 3 refuses.
    c.isolate(1);
    c.campaign(2);
    assert_eq!((c.role(2), c.term(2)), (StateRole::Candidate, 2));
    c.clear_trace();
    c.stabilize();
    let answers = c.sent_between(3, 2, MessageType::MsgVoteResp);
    assert_eq!(answers.len(), 1);
    assert!(answers[0].reject, "a second candidate in the same term is refused");
    assert_eq!(c.vote(3), 1);
    assert_eq!(c.role(2), StateRole::Candidate, "2 cannot win term 2");

    // The candidate that got the vote asking again is granted again.
    c.heal();
    let last = c.last_index(1);
    let again = vote_request(1, 3, 2, last, c.raw(1).raft.log_term(last).unwrap(), false);
    c.clear_trace();
    c.step(3, again).unwrap();
    let answers = c.sent_between(3, 1, MessageType::MsgVoteResp);
    assert!(answers.len() == 1 && !answers[0].reject, "a repeated request of the same candidate is granted");
}

#[test]
fn a_vote_leaves_only_after_it_was_persisted() {
    let mut c = plain_voters();
    c.campaign(1);
    let req = c.take(|m| m.to == 3).pop().unwrap();
    c.node_mut(3).manual_ready = true;
    c.raw_mut(3).step(req.clone()).unwrap();
    let rd = c.raw_mut(3).ready().unwrap();
    assert!(
        !rd.messages.iter().any(|m| is(m, MessageType::MsgVoteResp)),
        "the vote must not leave before it is persisted: {:?}",
        rd.messages
    );
    let resp: Vec<_> = rd.persisted_messages.iter().filter(|m| is(m, MessageType::MsgVoteResp)).collect();
    assert_eq!(resp.len(), 1);
    assert!(!resp[0].reject);
    let hs = rd.hard_state.expect("the vote is part of the hard state to persist");
    assert_eq!((hs.term, hs.vote), (2, 1));
    assert!(rd.must_sync, "a vote is synced");

    // Crash before persisting: no vote was cast as far as anyone knows, and
    // the restarted node may vote again.
    c.crash(3);
    c.node_mut(3).manual_ready = false;
    c.restart(3);
    assert_eq!((c.term(3), c.vote(3)), (1, 0), "nothing was persisted");
    c.campaign(2);
    c.take(|m| m.to == 1);
    c.stabilize();
    assert_eq!(c.vote(3), 2);
    assert_eq!(c.role(2), StateRole::Leader);
}

// ------------------------------------------------------------------ election restriction

/// Node 1 of a three-node cluster whose log holds `terms` (term of each
/// index), at term `term`, with its start-up lease expired.
fn voter_with_log(terms: &[u64], term: u64) -> Cluster {
    let s = storage_with_log(voters(&[1, 2, 3]), terms, term, 1);
    let mut c = Cluster::from_storages(vec![(1, s)], |_| {});
    c.expire_leases(&[1]);
    c
}

#[test]
fn a_candidate_with_a_less_up_to_date_log_is_refused() {
    // Voter's log: terms 1,1,1,2,2 (last index 5, last term 2).
    let log = [1, 1, 1, 2, 2];
    // (candidate last index, candidate last term, granted?)
    let cases = [
        (6, 1, false), // longer log, older last term
        (9, 1, false), // much longer, older last term
        (4, 2, false), // same last term, shorter
        (5, 2, true),  // identical
        (6, 2, true),  // same last term, longer
        (3, 3, true),  // newer last term wins even though shorter
        (1, 3, true),  //
    ];
    for pre in [false, true] {
        for (index, log_term, granted) in cases {
            let mut c = voter_with_log(&log, 3);
            c.clear_trace();
            c.step(1, vote_request(2, 1, 4, index, log_term, pre)).unwrap();
            let t = if pre { MessageType::MsgPreVoteResp } else { MessageType::MsgVoteResp };
            let resp = c.sent_between(1, 2, t);
            assert_eq!(resp.len(), 1, "one answer to {:?}", c.trace);
            assert_eq!(
                !resp[0].reject,
                granted,
                "{} for a candidate ending at ({index}, term {log_term}) against a log ending at (5, term 2)",
                if pre { "pre-vote" } else { "vote" }
            );
            if !pre {
                assert_eq!(c.vote(1), if granted { 2 } else { 0 });
            }
        }
    }
}

#[test]
fn a_node_missing_committed_entries_cannot_become_leader() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.isolate(3);
    for i in 0..3 {
        c.propose(1, &format!("x{i}")).unwrap();
    }
    c.stabilize();
    let committed = c.committed(1);
    assert_eq!(c.committed(2), committed);
    assert!(c.last_index(3) < committed);
    // The leader dies; node 3 comes back and campaigns first.
    c.crash(1);
    c.heal();
    assert!(!c.try_elect(3), "node 3 lacks committed entries and must not win:{}", c.describe());
    assert_ne!(c.role(3), StateRole::Leader);
    // Node 2 holds every committed entry and wins; node 3 catches up.
    c.elect(2);
    c.stabilize();
    assert_eq!(c.applied_data(3), vec!["x0", "x1", "x2"]);
}

// ------------------------------------------------------------------ timeouts

/// Ticks until node `id` (configured without pre-vote) starts a campaign,
/// raising its term; returns how many ticks that took.
fn ticks_until_campaign(c: &mut Cluster, id: u64, limit: usize) -> usize {
    let start_term = c.term(id);
    for n in 1..=limit {
        c.tick(id);
        if c.term(id) != start_term {
            return n;
        }
    }
    panic!("node {id} never campaigned within {limit} ticks");
}

#[test]
fn election_timeouts_are_randomized_within_one_to_two_election_ticks() {
    for election_tick in [5usize, 10, 23] {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40u64 {
            for id in 1..=3u64 {
                let s = MemStorage::bootstrap(&[1, 2, 3]);
                let mut c = Cluster::from_storages(vec![(id, s)], move |cfg| {
                    cfg.seed = seed;
                    cfg.election_tick = election_tick;
                    cfg.pre_vote = false;
                });
                // The first timeout, then the next few (each campaign draws a new one).
                for round in 0..3 {
                    let n = ticks_until_campaign(&mut c, id, 3 * election_tick);
                    assert!(
                        (election_tick..2 * election_tick).contains(&n),
                        "seed {seed} node {id} round {round}: timed out after {n} ticks, \
                         outside [{election_tick}, {})",
                        2 * election_tick
                    );
                    seen.insert(n);
                }
            }
        }
        assert!(
            seen.len() > election_tick.min(6) / 2,
            "election_tick {election_tick}: timeouts are not randomized, only {seen:?} seen"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_timeouts_and_ids_differ() {
    let timeouts = |seed: u64, id: u64| {
        let s = MemStorage::bootstrap(&[1, 2, 3, 4, 5]);
        let mut c = Cluster::from_storages(vec![(id, s)], move |cfg| {
            cfg.seed = seed;
            cfg.pre_vote = false;
        });
        (0..5).map(|_| ticks_until_campaign(&mut c, id, 30)).collect::<Vec<_>>()
    };
    assert_eq!(timeouts(9, 1), timeouts(9, 1), "deterministic");
    let per_id: Vec<_> = (1..=5).map(|id| timeouts(9, id)).collect();
    assert!(per_id.windows(2).any(|w| w[0] != w[1]), "nodes with the same seed still differ: {per_id:?}");
}

#[test]
fn leaders_send_heartbeats_every_heartbeat_tick() {
    for heartbeat_tick in [1usize, 3] {
        let mut c = Cluster::with_config(&[1, 2, 3], move |cfg| cfg.heartbeat_tick = heartbeat_tick);
        c.elect(1);
        let mut rounds = Vec::new();
        for t in 1..=9 {
            c.clear_trace();
            c.tick_all();
            let hb = c.sent(|m| is(m, MessageType::MsgHeartbeat));
            if !hb.is_empty() {
                assert!(hb.iter().all(|m| m.from == 1), "only the leader sends heartbeats");
                let mut to: Vec<u64> = hb.iter().map(|m| m.to).collect();
                to.sort_unstable();
                assert_eq!(to, vec![2, 3], "one heartbeat to each follower");
                rounds.push(t);
            }
            c.stabilize();
        }
        let expected: Vec<usize> = (1..=9).filter(|t| t % heartbeat_tick == 0).collect();
        assert_eq!(rounds, expected, "heartbeat_tick {heartbeat_tick}");
        assert_eq!(c.leaders(), vec![1], "followers that hear heartbeats never campaign");
    }
}

// ------------------------------------------------------------------ pre-vote

/// Node 3 is cut off for 100 ticks while 1 and 2 carry on, then rejoins.
/// Returns the cluster, the leader's term before, and node 3's term when it
/// rejoined.
fn partition_and_rejoin(pre_vote: bool) -> (Cluster, u64, u64) {
    let mut c = Cluster::with_config(&[1, 2, 3], move |cfg| cfg.pre_vote = pre_vote);
    c.elect(1);
    c.clear_trace();
    let term = c.term(1);
    c.isolate(3);
    for _ in 0..100 {
        c.tick_all();
        c.stabilize();
    }
    assert_eq!(c.leaders(), vec![1], "1 and 2 keep their leader");
    let isolated_term = c.term(3);
    c.heal();
    (c, term, isolated_term)
}

#[test]
fn with_pre_vote_a_rejoining_node_neither_raises_the_term_nor_deposes_the_leader() {
    let (mut c, term, isolated_term) = partition_and_rejoin(true);
    assert_eq!(isolated_term, term, "pre-elections never raise the term");
    assert_eq!(c.role(3), StateRole::PreCandidate);
    for _ in 0..30 {
        c.tick_all();
        c.stabilize();
        assert_eq!(c.leaders(), vec![1], "the leader is never deposed:{}", c.describe());
    }
    for id in 1..=3 {
        assert_eq!(c.term(id), term, "node {id}");
        assert_eq!(c.leader_of(id), 1, "node {id}");
    }
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgVote)), 0, "no real election was started");
}

#[test]
fn without_pre_vote_a_rejoining_node_raises_the_term_and_deposes_the_leader() {
    let (mut c, term, isolated_term) = partition_and_rejoin(false);
    assert!(isolated_term >= term + 4, "the isolated node kept raising its term: {isolated_term}");
    // The leader's next heartbeat is answered with the higher term.
    c.tick(1);
    c.stabilize();
    assert_ne!(c.role(1), StateRole::Leader, "the leader is deposed:{}", c.describe());
    assert!(c.term(1) >= isolated_term);
    // The cluster recovers at a term at least as high as the isolated node's.
    for _ in 0..60 {
        c.tick_all();
        c.stabilize();
    }
    let leaders = c.leaders();
    assert_eq!(leaders.len(), 1, "{}", c.describe());
    assert!(c.term(leaders[0]) >= isolated_term);
}

// ------------------------------------------------------------------ check-quorum

#[test]
fn a_leader_that_cannot_reach_a_quorum_steps_down_within_two_election_timeouts() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    // Connected, the leader stays.
    for _ in 0..50 {
        c.tick_all();
        c.stabilize();
    }
    assert_eq!(c.leaders(), vec![1]);
    // One follower is enough for a quorum.
    c.cut(1, 3);
    for _ in 0..50 {
        c.tick(1);
        c.tick(2);
        c.stabilize();
    }
    assert_eq!(c.role(1), StateRole::Leader, "1 and 2 are a quorum");
    // Cut off from both, it steps down within an election timeout plus the
    // check period (here both are 10 ticks).
    c.isolate(1);
    let mut n = 0;
    while c.role(1) == StateRole::Leader {
        c.tick(1);
        n += 1;
        assert!(n <= 20, "still leader after {n} ticks without a quorum");
    }
    assert!(n > 0);
    assert_eq!(c.role(1), StateRole::Follower);
    assert_eq!(c.leader_of(1), 0);
}

#[test]
fn followers_in_lease_ignore_vote_requests_from_a_disruptive_node() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.pre_vote = false);
    c.elect(1);
    let term = c.term(1);
    // Node 3 loses the leader and campaigns alone at a higher term.
    c.isolate(3);
    let n = ticks_until_campaign(&mut c, 3, 40);
    assert!(n >= 10);
    assert_eq!(c.term(3), term + 1);
    c.heal();
    // The leader's appends and heartbeats to 3 are held back, so that only
    // the vote requests matter here.
    c.cut_one_way(1, 3);
    c.tick(1);
    c.clear_trace();
    c.stabilize();
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgVoteResp)), 0, "nobody answers: {:?}", c.trace);
    assert_eq!(c.term(2), term, "node 2 heard from its leader recently and ignores the higher term");
    assert_eq!(c.term(1), term, "neither does the leader");
    assert_eq!(c.leaders(), vec![1]);
    // Again, at the next timeout.
    let _ = ticks_until_campaign(&mut c, 3, 40);
    c.tick(1);
    c.tick(2);
    c.stabilize();
    assert_eq!((c.term(1), c.term(2)), (term, term));
    assert_eq!(c.leaders(), vec![1]);
}

#[test]
fn a_transfer_campaign_is_not_ignored_by_followers_in_lease() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let term = c.term(1);
    c.tick_all();
    c.stabilize();
    // Everyone heard from leader 1 a tick ago. A transfer to 2 makes 2
    // campaign at once, and 3 grants although it is within its lease.
    c.clear_trace();
    c.transfer_leader(1, 2);
    c.stabilize();
    assert_eq!(c.leaders(), vec![2], "{}", c.describe());
    assert_eq!(c.term(2), term + 1);
    let votes = c.sent(|m| is(m, MessageType::MsgVote));
    assert!(!votes.is_empty() && votes.iter().all(|m| !m.context.is_empty()), "votes marked as a transfer");
    assert_eq!(c.count_sent(|m| is(m, MessageType::MsgPreVote)), 0, "a transfer skips the pre-vote");
    assert!(c.sent_between(3, 2, MessageType::MsgVoteResp).iter().any(|m| !m.reject));
}

#[test]
fn a_freshly_started_node_grants_no_vote_for_its_first_election_timeout() {
    for check_quorum in [true, false] {
        let mut c = Cluster::with_config(&[1, 2, 3], move |cfg| {
            cfg.check_quorum = check_quorum;
            cfg.pre_vote = false;
        });
        c.elect(1);
        c.crash(3);
        c.restart(3);
        let t = c.term(3);
        let (li, lt) = (c.last_index(3), c.raw(3).raft.log_term(c.last_index(3)).unwrap());
        c.clear_trace();
        c.step(3, vote_request(2, 3, t + 1, li, lt, false)).unwrap();
        if check_quorum {
            assert!(c.trace.is_empty(), "a restarted node may be inside a leader's lease: {:?}", c.trace);
            assert_eq!(c.term(3), t);
            // After an election timeout it votes again.
            c.isolate(3);
            c.tick_n(3, 10);
            c.heal();
            let t3 = c.term(3);
            c.clear_trace();
            c.step(3, vote_request(2, 3, t3 + 1, li, lt, false)).unwrap();
        }
        let resp = c.sent_between(3, 2, MessageType::MsgVoteResp);
        assert!(
            resp.len() == 1 && !resp[0].reject,
            "check_quorum {check_quorum}: vote granted once allowed: {:?}",
            c.trace
        );
    }
}

#[test]
fn a_candidate_that_hears_from_a_leader_of_its_term_follows_it() {
    let mut c = Cluster::with_config(&[1, 2, 3], |cfg| cfg.pre_vote = false);
    c.elect(1);
    c.isolate(3);
    c.campaign(3);
    let t = c.term(3);
    assert_eq!(c.role(3), StateRole::Candidate);
    let last = c.last_index(3);
    let last_term = c.raw(3).raft.log_term(last).unwrap();
    // Node 2 won term t meanwhile; its first append reaches 3.
    c.step(3, append(2, 3, t, last, last_term, vec![], 0)).unwrap();
    assert_eq!((c.role(3), c.term(3), c.leader_of(3)), (StateRole::Follower, t, 2));
    assert_eq!(c.vote(3), 3, "the vote of the term is kept");
}
