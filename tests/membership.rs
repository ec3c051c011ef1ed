//! Membership at run time through whole processes, against etcd's Cluster
//! API: a learner added (on a follower: forwarded to the leader), started
//! with `--initial-cluster-state existing`, caught up, promoted once in
//! sync, then removed (it stops and says why, and refuses to start again
//! from its data directory); etcd's refusals on the way (bad and clashing
//! URLs, a second learner, promoting a voter, unknown ids).

mod common;

use common::cluster::{wait_for, CallError, Client, Cluster, Opts};
use raftkv::proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
    MoveLeaderRequest, PutRequest, RangeRequest,
};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp, ErrorCode};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn call(c: &Cluster, i: usize, body: Req) -> Result<Resp, CallError> {
    let mut client = Client::connect(c.members[i].client, Duration::from_secs(2)).map_err(CallError::Lost)?;
    client.call(body, T)
}

fn refused(r: Result<Resp, CallError>, want: ErrorCode, what: &str) {
    match r {
        Err(CallError::Server { code, message }) => {
            assert_eq!(code, want as i32, "{what}: {message}");
            assert!(message.starts_with("etcdserver: "), "{what}: etcd's wording, got {message:?}");
        }
        other => panic!("{what}: expected {want:?}, got {other:?}"),
    }
}

fn add(peer: &str, learner: bool) -> Req {
    Req::MemberAdd(MemberAddRequest { peer_ur_ls: vec![peer.to_string()], is_learner: learner })
}

fn members(c: &Cluster, i: usize) -> Vec<raftkv::proto::etcdserverpb::Member> {
    match call(c, i, Req::MemberList(MemberListRequest { linearizable: true })) {
        Ok(Resp::MemberList(l)) => l.members,
        other => panic!("member list: {other:?}"),
    }
}

fn put(c: &Cluster, i: usize, key: &str) {
    let p = PutRequest { key: key.as_bytes().to_vec().into(), value: b"v".to_vec().into(), ..Default::default() };
    match call(c, i, Req::Put(p)) {
        Ok(Resp::Put(_)) => {}
        other => panic!("put {key}: {other:?}"),
    }
}

#[test]
fn a_learner_joins_catches_up_is_promoted_and_leaves() {
    let mut c = Cluster::start(Opts::default());
    let leader = c.wait_leader(&c.all(), T);
    let follower = (leader + 1) % 3;
    for k in 0..50 {
        put(&c, leader, &format!("k{k:02}"));
    }

    // etcd's refusals, asked of a follower (forwarded to the leader).
    refused(call(&c, follower, add("http://nohost", true)), ErrorCode::MemberBadUrls, "a malformed URL");
    let taken = format!("http://{}", c.members[leader].advertise);
    refused(call(&c, follower, add(&taken, false)), ErrorCode::PeerUrlExist, "a clashing URL");
    let voter = c.members[follower].id;
    refused(
        call(&c, follower, Req::MemberPromote(MemberPromoteRequest { id: voter })),
        ErrorCode::MemberNotLearner,
        "promoting a voter",
    );
    refused(
        call(&c, follower, Req::MemberRemove(MemberRemoveRequest { id: 42 })),
        ErrorCode::MemberNotFound,
        "removing an unknown id",
    );

    // Add n4 as a learner.
    let n4 = c.new_member_slot();
    let url = format!("http://{}", c.members[n4].advertise);
    let added = match call(&c, follower, add(&url, true)) {
        Ok(Resp::MemberAdd(a)) => a,
        other => panic!("member add: {other:?}"),
    };
    let m = added.member.expect("the added member");
    assert!(m.is_learner && m.id != 0 && m.name.is_empty(), "{m:?}");
    assert_eq!(m.peer_ur_ls, vec![url.clone()]);
    assert_eq!(added.members.len(), 4);
    assert_eq!(added.header.expect("header").member_id, c.members[follower].id, "the serving member's header");
    c.members[n4].id = m.id;
    refused(call(&c, leader, add("127.0.0.1:1", true)), ErrorCode::TooManyLearners, "a second learner");
    // Not started, not in sync: not promotable.
    refused(
        call(&c, leader, Req::MemberPromote(MemberPromoteRequest { id: m.id })),
        ErrorCode::LearnerNotReady,
        "promoting a learner that never started",
    );

    // It joins, catches up and serves what was written before it came.
    c.spawn(n4);
    c.wait_serving(n4, Duration::from_secs(30));
    wait_for(T, "n4 to hold the keys written before it joined", || {
        let r = RangeRequest {
            key: b"k".to_vec().into(),
            range_end: b"l".to_vec().into(),
            serializable: true,
            ..Default::default()
        };
        match call(&c, n4, Req::Range(r)) {
            Ok(Resp::Range(r)) if r.count == 50 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(c.status(n4).expect("status").is_learner, "n4 reports itself a learner");
    // A learner takes writes and linearizable reads too (through the leader).
    put(&c, n4, "via-learner");
    let r = RangeRequest { key: b"via-learner".to_vec().into(), ..Default::default() };
    match call(&c, n4, Req::Range(r)) {
        Ok(Resp::Range(r)) => assert_eq!(r.kvs.len(), 1, "a linearizable read on the learner sees its own write"),
        other => panic!("linearizable range on the learner: {other:?}"),
    }

    // In sync now: promoted (asked of the learner itself: forwarded).
    wait_for(T, "the promotion of n4", || match call(&c, n4, Req::MemberPromote(MemberPromoteRequest { id: m.id })) {
        Ok(Resp::MemberPromote(p)) => Ok(p),
        other => Err(format!("{other:?}")),
    });
    wait_for(T, "n4 to publish its name and be a voter everywhere", || {
        let ms = members(&c, leader);
        match ms.iter().find(|x| x.id == m.id) {
            Some(x) if !x.is_learner && x.name == "n4" && ms.len() == 4 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    put(&c, n4, "after-promotion");

    // Its peer URL may change to itself (no clash) but not to another's.
    let update = |urls: Vec<String>| Req::MemberUpdate(MemberUpdateRequest { id: m.id, peer_ur_ls: urls });
    match call(&c, leader, update(vec![url.clone()])) {
        Ok(Resp::MemberUpdate(u)) => assert_eq!(u.members.len(), 4),
        other => panic!("member update: {other:?}"),
    }
    refused(call(&c, leader, update(vec![taken.clone()])), ErrorCode::PeerUrlExist, "updating onto another's URL");

    // Removed: it stops and says why, and never serves again from its data.
    match call(&c, follower, Req::MemberRemove(MemberRemoveRequest { id: m.id })) {
        Ok(Resp::MemberRemove(r)) => assert!(r.members.iter().all(|x| x.id != m.id) && r.members.len() == 3),
        other => panic!("member remove: {other:?}"),
    }
    let status = c.wait_exit(n4, Duration::from_secs(15));
    assert!(!status.success(), "a removed member exits with an error: {status}");
    let log = std::fs::read_to_string(&c.members[n4].log).expect("n4 log");
    assert!(log.contains("was removed from the cluster"), "n4 says why it stopped:\n{log}");
    c.spawn(n4);
    let status = c.wait_exit(n4, Duration::from_secs(15));
    assert!(!status.success(), "a removed member refuses to start: {status}");
    let log = std::fs::read_to_string(&c.members[n4].log).expect("n4 log");
    assert!(log.contains("cannot rejoin"), "n4 says why it refused:\n{log}");

    // The three go on.
    put(&c, leader, "after-removal");
    assert_eq!(members(&c, follower).len(), 3);
}

#[test]
fn a_member_that_was_not_added_cannot_join() {
    let mut c = Cluster::start(Opts::default());
    let n4 = c.new_member_slot();
    c.spawn(n4);
    let status = c.wait_exit(n4, Duration::from_secs(20));
    assert!(!status.success());
    let log = std::fs::read_to_string(&c.members[n4].log).expect("n4 log");
    assert!(log.contains("add it first"), "n4 says what to do:\n{log}");
}

#[test]
fn leadership_moves_to_a_named_voter_and_a_removed_leader_hands_over() {
    let mut c = Cluster::start(Opts::default());
    let leader = c.wait_leader(&c.all(), T);
    let target = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let move_to = |id: u64| Req::MoveLeader(MoveLeaderRequest { target_id: id });
    refused(call(&c, other, move_to(42)), ErrorCode::BadLeaderTransferee, "an unknown transferee");
    // Asked of a member that does not lead: served where the leader is.
    match call(&c, other, move_to(c.members[target].id)) {
        Ok(Resp::MoveLeader(m)) => assert!(m.header.is_none(), "etcd answers without a header: {m:?}"),
        other => panic!("move-leader: {other:?}"),
    }
    assert_eq!(c.wait_leader(&c.all(), T), target, "the named voter leads");
    // Moving to the leader itself is a no-op that succeeds.
    assert!(matches!(call(&c, target, move_to(c.members[target].id)), Ok(Resp::MoveLeader(_))));

    // Removing the leader: it answers, stops, and the others elect.
    put(&c, target, "before");
    let id = c.members[target].id;
    match call(&c, target, Req::MemberRemove(MemberRemoveRequest { id })) {
        Ok(Resp::MemberRemove(r)) => assert_eq!(r.members.len(), 2),
        other => panic!("removing the leader: {other:?}"),
    }
    let status = c.wait_exit(target, Duration::from_secs(15));
    assert!(!status.success());
    let rest: Vec<usize> = c.all().into_iter().filter(|&i| i != target).collect();
    c.wait_leader(&rest, Duration::from_secs(20));
    put(&c, rest[0], "after");
    assert_eq!(members(&c, rest[1]).len(), 2);
}

#[test]
fn with_auto_promotion_a_learner_becomes_a_voter_once_in_sync() {
    let mut c = Cluster::start(Opts { auto_promote: true, ..Opts::default() });
    let leader = c.wait_leader(&c.all(), T);
    for k in 0..20 {
        put(&c, leader, &format!("a{k}"));
    }
    let n4 = c.new_member_slot();
    let url = format!("http://{}", c.members[n4].advertise);
    let m = match call(&c, leader, add(&url, true)) {
        Ok(Resp::MemberAdd(a)) => a.member.expect("member"),
        other => panic!("member add: {other:?}"),
    };
    c.members[n4].id = m.id;
    // Not started: it stays a learner.
    assert!(members(&c, leader).iter().any(|x| x.id == m.id && x.is_learner));
    c.spawn(n4);
    c.wait_serving(n4, Duration::from_secs(30));
    wait_for(T, "n4 promoted without being asked", || match members(&c, leader).iter().find(|x| x.id == m.id) {
        Some(x) if !x.is_learner => Ok(()),
        other => Err(format!("{other:?}")),
    });
    assert!(!c.status(n4).expect("status").is_learner);
}
