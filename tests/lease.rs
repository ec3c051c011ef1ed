//! Leases through whole nodes, point by point against etcd's Lease API:
//! grant (ids, minimum and maximum TTL, duplicates), revoke (keys deleted
//! in one revision, watchers told), keep-alive streams (TTL in each answer,
//! TTL 0 for a lease that is gone, many streams on one connection),
//! time-to-live and the list, puts with leases (attach, move, detach,
//! ignore_lease, txn), expiry, restart, and a three-member cluster where
//! followers serve keep-alives and a leader change keeps the clock.

mod common;

use common::*;
use raftkv::node::Node;
use raftkv::proto::etcdserverpb::{
    request_op, watch_request::RequestUnion, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, RangeRequest,
    RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use raftkv::proto::mvccpb::event::EventType;
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp, ErrorCode};
use std::time::{Duration, Instant};

fn single_node(dir: &std::path::Path) -> Node {
    let node = Node::start(&single_node_config(dir)).expect("start");
    wait_for_leader(&node, Duration::from_secs(5));
    node
}

fn grant(c: &mut RawClient, ttl: i64, id: i64) -> Result<(i64, i64), ErrorCode> {
    match c.call(Req::LeaseGrant(LeaseGrantRequest { ttl, id })) {
        Resp::LeaseGrant(g) => Ok((g.id, g.ttl)),
        Resp::Error(e) => Err(e.code()),
        other => panic!("grant: {other:?}"),
    }
}

fn revoke(c: &mut RawClient, id: i64) -> Result<i64, ErrorCode> {
    match c.call(Req::LeaseRevoke(LeaseRevokeRequest { id })) {
        Resp::LeaseRevoke(r) => Ok(r.header.expect("header").revision),
        Resp::Error(e) => Err(e.code()),
        other => panic!("revoke: {other:?}"),
    }
}

fn ttl(c: &mut RawClient, id: i64) -> LeaseTimeToLiveResponse {
    match c.call(Req::LeaseTimeToLive(LeaseTimeToLiveRequest { id, keys: true })) {
        Resp::LeaseTimeToLive(t) => t,
        other => panic!("time-to-live: {other:?}"),
    }
}

fn keys(t: &LeaseTimeToLiveResponse) -> Vec<String> {
    let mut k: Vec<String> = t.keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    k.sort();
    k
}

fn put_req(key: &str, lease: i64) -> PutRequest {
    PutRequest { key: key.to_string().into(), value: "v".into(), lease, ..Default::default() }
}

fn put(c: &mut RawClient, key: &str, lease: i64) -> Result<i64, ErrorCode> {
    match c.call(Req::Put(put_req(key, lease))) {
        Resp::Put(p) => Ok(p.header.expect("header").revision),
        Resp::Error(e) => Err(e.code()),
        other => panic!("put: {other:?}"),
    }
}

fn lease_of_key(c: &mut RawClient, key: &str) -> Option<i64> {
    match c.call(Req::Range(RangeRequest { key: key.to_string().into(), ..Default::default() })) {
        Resp::Range(r) => r.kvs.first().map(|kv| kv.lease),
        other => panic!("range: {other:?}"),
    }
}

/// The next keep-alive answer for stream `id`: (lease, TTL), or the error.
fn next_keep_alive(c: &mut RawClient, id: u64) -> Result<(i64, i64), ErrorCode> {
    let r = c.recv().expect("connection closed");
    assert_eq!(r.request_id, id, "an answer for another request: {r:?}");
    match r.body {
        Some(Resp::LeaseKeepAlive(k)) => Ok((k.id, k.ttl)),
        Some(Resp::Error(e)) => Err(e.code()),
        other => panic!("keep-alive: {other:?}"),
    }
}

/// Polls `cond` every 20 ms until it holds, failing after `within`.
fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn grant_ids_ttls_and_errors_are_etcds() {
    let dir = tempfile::tempdir().unwrap();
    let node = single_node(dir.path());
    let mut c = RawClient::connect(node.client_addr());
    let (id, granted) = grant(&mut c, 60, 0).unwrap();
    assert!(id > 0, "a server-chosen id is positive: {id}");
    assert_eq!(granted, 60);
    let (other, _) = grant(&mut c, 60, 0).unwrap();
    assert_ne!(id, other, "ids are unique");
    // The minimum TTL: 1.5 election timeouts (200 ms here) rounded up to 1 s.
    assert_eq!(grant(&mut c, 0, 0).unwrap().1, 1, "TTL 0 is raised to the minimum");
    assert_eq!(grant(&mut c, -5, 0).unwrap().1, 1, "a negative TTL too");
    assert_eq!(grant(&mut c, 30, 1234).unwrap(), (1234, 30), "the client's id is kept");
    assert_eq!(grant(&mut c, 30, 1234), Err(ErrorCode::LeaseExist));
    assert_eq!(grant(&mut c, 30, -5).unwrap().0, -5, "a negative id is accepted, as etcd");
    assert_eq!(grant(&mut c, 9_000_000_001, 0), Err(ErrorCode::LeaseTtlTooLarge));
    assert_eq!(grant(&mut c, 9_000_000_000, 0).unwrap().1, 9_000_000_000, "the maximum itself is fine");

    let t = ttl(&mut c, 1234);
    assert_eq!((t.id, t.granted_ttl), (1234, 30));
    assert!((28..=30).contains(&t.ttl), "remaining {}", t.ttl);
    let unknown = ttl(&mut c, 999_999);
    assert_eq!((unknown.id, unknown.ttl, unknown.granted_ttl), (999_999, -1, 0), "etcd's answer for no lease");
    let Resp::LeaseLeases(list) = c.call(Req::LeaseLeases(LeaseLeasesRequest {})) else { panic!("leases") };
    let ids: Vec<i64> = list.leases.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), 7);
    assert!(ids.contains(&1234) && ids.contains(&-5) && ids.contains(&id));

    assert!(revoke(&mut c, 1234).is_ok());
    assert_eq!(revoke(&mut c, 1234), Err(ErrorCode::LeaseNotFound), "revoke twice");
    assert_eq!(revoke(&mut c, 0), Err(ErrorCode::LeaseNotFound));
    assert_eq!(ttl(&mut c, 1234).ttl, -1);
    node.stop();
}

#[test]
fn keys_attach_move_and_detach_and_a_revoke_deletes_them_in_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let node = single_node(dir.path());
    let mut c = RawClient::connect(node.client_addr());
    let mut watcher = RawClient::connect(node.client_addr());
    assert_eq!(put(&mut c, "k", 77), Err(ErrorCode::LeaseNotFound), "no such lease");
    let (a, _) = grant(&mut c, 60, 0).unwrap();
    let (b, _) = grant(&mut c, 60, 0).unwrap();
    put(&mut c, "foo1", a).unwrap();
    put(&mut c, "foo2", a).unwrap();
    put(&mut c, "moved", a).unwrap();
    put(&mut c, "dropped", a).unwrap();
    put(&mut c, "deleted", a).unwrap();
    assert_eq!(lease_of_key(&mut c, "foo1"), Some(a), "KeyValue.lease");
    put(&mut c, "moved", b).unwrap();
    put(&mut c, "dropped", 0).unwrap();
    c.call(Req::DeleteRange(DeleteRangeRequest { key: "deleted".into(), ..Default::default() }));
    // ignore_lease keeps the key's lease.
    let keep = PutRequest { key: "foo2".into(), value: "w".into(), ignore_lease: true, ..Default::default() };
    assert!(matches!(c.call(Req::Put(keep)), Resp::Put(_)));
    // A txn's put attaches too, and a txn naming a missing lease fails whole.
    let txn = |lease: i64| {
        Req::Txn(TxnRequest {
            success: vec![RequestOp { request: Some(request_op::Request::RequestPut(put_req("t", lease))) }],
            ..Default::default()
        })
    };
    assert!(matches!(c.call(txn(b)), Resp::Txn(_)));
    match c.call(txn(88)) {
        Resp::Error(e) => assert_eq!(e.code(), ErrorCode::LeaseNotFound),
        other => panic!("{other:?}"),
    }
    assert_eq!(keys(&ttl(&mut c, a)), ["foo1", "foo2"]);
    assert_eq!(keys(&ttl(&mut c, b)), ["moved", "t"]);

    let wid = watcher.send(Req::Watch(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: "foo".into(),
            range_end: "fop".into(),
            ..Default::default()
        })),
    }));
    assert!(matches!(watcher.recv().and_then(|r| r.body), Some(Resp::Watch(w)) if w.created));
    let rev = revoke(&mut c, a).unwrap();
    let r = watcher.recv().expect("events");
    assert_eq!(r.request_id, wid);
    let Some(Resp::Watch(w)) = r.body else { panic!("watch") };
    let evs: Vec<(i32, i64)> = w.events.iter().map(|e| (e.r#type, e.kv.as_ref().unwrap().mod_revision)).collect();
    let del = EventType::Delete as i32;
    assert_eq!(evs, vec![(del, rev), (del, rev)], "both keys deleted at the revoke's revision, in one response");
    assert_eq!(lease_of_key(&mut c, "foo1"), None);
    assert_eq!(lease_of_key(&mut c, "dropped"), Some(0), "detached keys stay");
    assert_eq!(lease_of_key(&mut c, "moved"), Some(b), "moved keys stay with their new lease");
    // A revoke of a lease without keys takes no revision.
    let (empty, _) = grant(&mut c, 60, 0).unwrap();
    assert_eq!(revoke(&mut c, empty).unwrap(), rev);
    node.stop();
}

#[test]
fn keep_alive_streams_renew_and_report_gone_leases() {
    let dir = tempfile::tempdir().unwrap();
    let node = single_node(dir.path());
    let mut c = RawClient::connect(node.client_addr());
    let (id, _) = grant(&mut c, 5, 0).unwrap();
    let s = c.send(Req::LeaseKeepAlive(LeaseKeepAliveRequest { id }));
    assert_eq!(next_keep_alive(&mut c, s), Ok((id, 5)));
    for _ in 0..5 {
        c.send_on(s, Req::LeaseKeepAlive(LeaseKeepAliveRequest { id }));
        assert_eq!(next_keep_alive(&mut c, s), Ok((id, 5)), "the granted TTL in each answer");
    }
    // Another lease on the same stream, then an unknown one: TTL 0.
    c.send_on(s, Req::LeaseKeepAlive(LeaseKeepAliveRequest { id: 424_242 }));
    assert_eq!(next_keep_alive(&mut c, s), Ok((424_242, 0)));
    let mut other = RawClient::connect(node.client_addr());
    revoke(&mut other, id).unwrap();
    c.send_on(s, Req::LeaseKeepAlive(LeaseKeepAliveRequest { id }));
    assert_eq!(next_keep_alive(&mut c, s), Ok((id, 0)), "a revoked lease answers TTL 0");
    // Something other than a keep-alive on the stream is refused; the
    // stream stays usable.
    c.send_on(s, Req::LeaseLeases(LeaseLeasesRequest {}));
    assert_eq!(next_keep_alive(&mut c, s), Err(ErrorCode::InvalidArgument));
    node.stop();
}

#[test]
fn thousands_of_keep_alive_streams_on_one_connection_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let node = single_node(dir.path());
    let mut c = RawClient::connect(node.client_addr());
    let (id, _) = grant(&mut c, 30, 0).unwrap();
    const STREAMS: usize = 4000; // the per-connection in-flight bound is 4096
    let mut open = std::collections::HashSet::new();
    for _ in 0..STREAMS {
        open.insert(c.send(Req::LeaseKeepAlive(LeaseKeepAliveRequest { id })));
    }
    let mut answered = std::collections::HashSet::new();
    while answered.len() < STREAMS {
        let r = c.recv().expect("connection closed");
        match r.body {
            Some(Resp::LeaseKeepAlive(k)) => assert_eq!((k.id, k.ttl), (id, 30)),
            other => panic!("stream {}: {other:?}", r.request_id),
        }
        assert!(open.contains(&r.request_id));
        answered.insert(r.request_id);
    }
    // Past the bound, a clear error, and the connection stays up.
    let mut refused = 0;
    let extra: Vec<u64> = (0..200).map(|_| c.send(Req::LeaseKeepAlive(LeaseKeepAliveRequest { id }))).collect();
    for _ in &extra {
        match c.recv().and_then(|r| r.body) {
            Some(Resp::LeaseKeepAlive(_)) => {}
            Some(Resp::Error(e)) => {
                assert_eq!(e.code(), ErrorCode::TooManyRequests);
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(refused > 0, "more than the bound of streams in flight are refused");
    // Ending a stream makes room on the same connection.
    let first = *open.iter().min().unwrap();
    c.send_on(first, Req::CancelStream(raftkv::proto::raftkvpb::CancelStream {}));
    assert!(ttl(&mut c, id).ttl > 0, "the connection serves again");
    node.stop();
}

#[test]
fn an_unrenewed_lease_expires_and_a_renewed_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = single_node(dir.path());
    let mut c = RawClient::connect(node.client_addr());
    let (dying, ttl_s) = grant(&mut c, 1, 0).unwrap();
    let (living, _) = grant(&mut c, 1, 0).unwrap();
    put(&mut c, "dying", dying).unwrap();
    put(&mut c, "living", living).unwrap();
    let granted = Instant::now();
    let s = c.send(Req::LeaseKeepAlive(LeaseKeepAliveRequest { id: living }));
    assert_eq!(next_keep_alive(&mut c, s), Ok((living, ttl_s)));
    let mut gone_after = None;
    // Renew `living` every 250 ms (a quarter of its TTL) for 3 s.
    while granted.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(250));
        c.send_on(s, Req::LeaseKeepAlive(LeaseKeepAliveRequest { id: living }));
        assert_eq!(next_keep_alive(&mut c, s), Ok((living, ttl_s)), "renewed in time");
        if gone_after.is_none() && lease_of_key(&mut c, "dying").is_none() {
            gone_after = Some(granted.elapsed());
        }
    }
    let gone_after = gone_after.expect("the unrenewed lease's key is gone within 3 s");
    assert!(gone_after >= Duration::from_secs(ttl_s as u64), "not before its TTL: {gone_after:?}");
    assert_eq!(ttl(&mut c, dying).ttl, -1);
    assert_eq!(lease_of_key(&mut c, "living"), Some(living), "the renewed lease keeps its key");
    node.stop();
}

#[test]
fn leases_and_attachments_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = single_node_config(dir.path());
    let node = Node::start(&cfg).expect("start");
    wait_for_leader(&node, Duration::from_secs(5));
    let mut c = RawClient::connect(node.client_addr());
    let (id, _) = grant(&mut c, 600, 0).unwrap();
    put(&mut c, "a", id).unwrap();
    put(&mut c, "b", id).unwrap();
    drop(c);
    node.stop();
    let node = Node::start(&cfg).expect("restart");
    wait_for_leader(&node, Duration::from_secs(5));
    let mut c = RawClient::connect(node.client_addr());
    let t = ttl(&mut c, id);
    assert_eq!((t.granted_ttl, keys(&t)), (600, vec!["a".to_string(), "b".to_string()]));
    assert!(t.ttl > 590, "the clock starts again from the stored remaining TTL: {}", t.ttl);
    revoke(&mut c, id).unwrap();
    assert_eq!(lease_of_key(&mut c, "a"), None, "the restored attachments are revoked with it");
    node.stop();
}

fn leader_index(nodes: &[Option<Node>]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for (i, n) in nodes.iter().enumerate() {
            if let Some(n) = n {
                if n.status().leader() == n.status().member_id {
                    return i;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn followers_serve_keep_alives_and_a_new_leader_keeps_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let cfgs = cluster_configs(dir.path(), 3);
    let handles: Vec<_> = cfgs.iter().cloned().map(|c| std::thread::spawn(move || Node::start(&c))).collect();
    let mut nodes: Vec<Option<Node>> = handles.into_iter().map(|h| Some(h.join().unwrap().expect("start"))).collect();
    let leader = leader_index(&nodes);
    let follower = (leader + 1) % 3;
    let addr = |nodes: &[Option<Node>], i: usize| nodes[i].as_ref().unwrap().client_addr();
    let mut f = RawClient::connect(addr(&nodes, follower));
    let (id, _) = grant(&mut f, 10, 0).unwrap();
    put(&mut f, "k", id).unwrap();
    let s = f.send(Req::LeaseKeepAlive(LeaseKeepAliveRequest { id }));
    assert_eq!(next_keep_alive(&mut f, s), Ok((id, 10)), "a follower renews through the leader");
    let renewed = Instant::now();
    // Two seconds later the leader goes away.
    std::thread::sleep(Duration::from_secs(2));
    let before = ttl(&mut f, id).ttl;
    assert!((7..=8).contains(&before), "remaining before the leader change: {before}");
    nodes[leader].take().unwrap().stop();
    let new_leader = leader_index(&nodes);
    let mut n = RawClient::connect(addr(&nodes, new_leader));
    let after = ttl(&mut n, id);
    let elapsed = renewed.elapsed().as_secs() as i64;
    assert!(after.ttl <= 10 - elapsed + 1, "not restarted by the new leader: {} after {elapsed} s", after.ttl);
    assert!(after.ttl >= 10 - elapsed - 2, "not expired early: {} after {elapsed} s", after.ttl);
    // Not renewed any more: revoked by the new leader around its deadline.
    let gone = wait_until(Duration::from_secs(15), "the lease expires", || lease_of_key(&mut n, "k").is_none());
    let total = renewed.elapsed();
    assert!(total >= Duration::from_secs(10), "never before its TTL: {total:?} (waited {gone:?})");
    assert!(total < Duration::from_secs(12), "within TTL + an election or so: {total:?}");
    for n in nodes.into_iter().flatten() {
        n.stop();
    }
}

#[test]
fn the_client_keep_alive_handle_survives_losing_its_member() {
    use raftkv::client::{Client, ClientOptions, KeepAliveEvent};
    let dir = tempfile::tempdir().unwrap();
    let cfgs = cluster_configs(dir.path(), 3);
    let handles: Vec<_> = cfgs.iter().cloned().map(|c| std::thread::spawn(move || Node::start(&c))).collect();
    let mut nodes: Vec<Option<Node>> = handles.into_iter().map(|h| Some(h.join().unwrap().expect("start"))).collect();
    let leader = leader_index(&nodes);
    // The leader first: the keep-alive stream starts on the member that goes away.
    let order = [leader, (leader + 1) % 3, (leader + 2) % 3];
    let endpoints: Vec<String> = order.iter().map(|&i| nodes[i].as_ref().unwrap().client_addr().to_string()).collect();
    let client = Client::connect(&endpoints, ClientOptions::default()).expect("connect");
    let lease = client.lease_grant(2, 0).expect("grant");
    client
        .call(Req::Put(PutRequest { key: "held".into(), value: "v".into(), lease: lease.id, ..Default::default() }))
        .expect("put");
    let keep = client.keep_alive(lease.id).expect("keep-alive");
    let renewed = |keep: &raftkv::client::KeepAlive| match keep.recv_timeout(Duration::from_secs(5)) {
        Ok(KeepAliveEvent::Renewed(r)) => assert_eq!(r.ttl, 2),
        other => panic!("expected a renewal: {other:?}"),
    };
    renewed(&keep);
    renewed(&keep);
    nodes[leader].take().unwrap().stop();
    // Renewals go on through the new leader for longer than the TTL.
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(5) {
        renewed(&keep);
    }
    let new_leader = leader_index(&nodes);
    let mut c = RawClient::connect(nodes[new_leader].as_ref().unwrap().client_addr());
    assert_eq!(lease_of_key(&mut c, "held"), Some(lease.id), "kept alive across the failover");
    drop(keep);
    wait_until(Duration::from_secs(6), "the lease expires once nobody renews it", || {
        lease_of_key(&mut c, "held").is_none()
    });
    for n in nodes.into_iter().flatten() {
        n.stop();
    }
}

#[test]
fn a_follower_restored_from_a_snapshot_has_the_leases_and_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfgs = cluster_configs(dir.path(), 3);
    for c in &mut cfgs {
        c.snapshot_count = 100;
        c.snapshot_catchup_entries = 20;
    }
    let handles: Vec<_> = cfgs.iter().cloned().map(|c| std::thread::spawn(move || Node::start(&c))).collect();
    let mut nodes: Vec<Option<Node>> = handles.into_iter().map(|h| Some(h.join().unwrap().expect("start"))).collect();
    let leader = leader_index(&nodes);
    let follower = (leader + 1) % 3;
    nodes[follower].take().unwrap().stop();
    let mut c = RawClient::connect(nodes[leader].as_ref().unwrap().client_addr());
    let (a, _) = grant(&mut c, 60, 0).unwrap();
    let (b, _) = grant(&mut c, 60, 0).unwrap();
    put(&mut c, "a1", a).unwrap();
    put(&mut c, "a2", a).unwrap();
    put(&mut c, "b1", b).unwrap();
    for i in 0..300 {
        put(&mut c, &format!("filler{i}"), 0).unwrap();
    }
    let f = Node::start(&cfgs[follower]).expect("restart the follower");
    let applied = nodes[leader].as_ref().unwrap().status().applied();
    wait_until(Duration::from_secs(20), "the follower catches up", || f.status().applied() >= applied);
    assert!(f.kv().reloads() > 0, "the follower caught up from a snapshot, not the log");
    // Its own table answers its keep-alives.
    let mut fc = RawClient::connect(f.client_addr());
    let s = fc.send(Req::LeaseKeepAlive(LeaseKeepAliveRequest { id: a }));
    assert_eq!(next_keep_alive(&mut fc, s), Ok((a, 60)), "the lease came with the snapshot");
    // Its attachments too: the revocation deletes the same keys on every member.
    revoke(&mut c, a).unwrap();
    let applied = nodes[leader].as_ref().unwrap().status().applied();
    wait_until(Duration::from_secs(10), "the follower applies the revoke", || f.status().applied() >= applied);
    let serializable = |c: &mut RawClient, key: &str| match c.call(Req::Range(RangeRequest {
        key: key.to_string().into(),
        serializable: true,
        ..Default::default()
    })) {
        Resp::Range(r) => r.kvs.first().map(|kv| kv.lease),
        other => panic!("range: {other:?}"),
    };
    assert_eq!(serializable(&mut fc, "a1"), None, "deleted on the follower too");
    assert_eq!(serializable(&mut fc, "a2"), None);
    assert_eq!(serializable(&mut fc, "b1"), Some(b));
    let hash = |c: &mut RawClient| match c.call(Req::HashKv(Default::default())) {
        Resp::HashKv(h) => (h.hash, h.hash_revision),
        other => panic!("hash: {other:?}"),
    };
    assert_eq!(hash(&mut fc), hash(&mut c), "the follower's keyspace equals the leader's");
    f.stop();
    for n in nodes.into_iter().flatten() {
        n.stop();
    }
}
