mod common;

use common::*;
use raftkv::node::Node;
use raftkv::proto::etcdserverpb::{MemberListRequest, PutRequest, RangeRequest};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use std::time::{Duration, Instant};

#[test]
fn three_nodes_replicate_and_read_from_followers() {
    let dir = tempfile::tempdir().unwrap();
    let cfgs = cluster_configs(dir.path(), 3);
    let nodes: Vec<Node> = cfgs.iter().map(|c| Node::start(c).expect("start")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes.iter().all(|n| n.status().leader() != 0) {
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(10));
    }
    let leader = nodes[0].status().leader();
    assert!(nodes.iter().all(|n| n.status().leader() == leader), "one leader for all");
    // Write on every member (followers forward), read on every member.
    for (i, n) in nodes.iter().enumerate() {
        let mut c = RawClient::connect(n.client_addr());
        match c.call(Req::Put(PutRequest { key: format!("k{i}").into(), value: "v".into(), ..Default::default() })) {
            Resp::Put(_) => {}
            other => panic!("put on node {i}: {other:?}"),
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        let mut c = RawClient::connect(n.client_addr());
        match c.call(Req::Range(RangeRequest { key: "k".into(), range_end: "l".into(), ..Default::default() })) {
            Resp::Range(r) => assert_eq!(r.kvs.len(), 3, "linearizable read on node {i} sees every write"),
            other => panic!("range on node {i}: {other:?}"),
        }
    }
    // Every member publishes its client URL; any member lists them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = RawClient::connect(nodes[1].client_addr());
        let list = match c.call(Req::MemberList(MemberListRequest { linearizable: true })) {
            Resp::MemberList(l) => l.members,
            other => panic!("member list: {other:?}"),
        };
        let urls: Vec<String> = list.iter().flat_map(|m| m.client_ur_ls.clone()).collect();
        if list.len() == 3 && urls.len() == 3 {
            for n in &nodes {
                assert!(urls.contains(&format!("http://{}", n.client_addr())), "{urls:?}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "client URLs not published: {list:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in nodes {
        n.stop();
    }
}
