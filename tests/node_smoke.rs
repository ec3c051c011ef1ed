mod common;

use common::*;
use raftkv::node::Node;
use raftkv::proto::etcdserverpb::{PutRequest, RangeRequest};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use std::time::Duration;

#[test]
fn put_then_get_on_a_single_node() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = single_node_config(dir.path());
    let node = Node::start(&cfg).expect("start");
    wait_for_leader(&node, Duration::from_secs(5));
    let mut c = RawClient::connect(node.client_addr());
    let r = c.call(Req::Put(PutRequest { key: "a".into(), value: "1".into(), ..Default::default() }));
    match r {
        Resp::Put(p) => assert!(p.header.unwrap().revision >= 2),
        other => panic!("{other:?}"),
    }
    let r = c.call(Req::Range(RangeRequest { key: "a".into(), ..Default::default() }));
    match r {
        Resp::Range(rr) => {
            assert_eq!(rr.kvs.len(), 1);
            assert_eq!(rr.kvs[0].value.as_ref(), b"1");
        }
        other => panic!("{other:?}"),
    }
    node.stop();
}

/// The apply thread starts on committed entries already on disk while the
/// raft thread is still writing the commit index, so after a crash the
/// applied index can be ahead of the persisted commit index. The node must
/// start anyway, keep every write, and apply nothing twice.
#[test]
fn a_node_restarts_with_its_applied_index_beyond_the_persisted_commit() {
    use raftkv::storage::{Db, RaftLogStorage};
    let dir = tempfile::tempdir().unwrap();
    let cfg = single_node_config(dir.path());
    let node = Node::start(&cfg).expect("start");
    wait_for_leader(&node, Duration::from_secs(5));
    let mut c = RawClient::connect(node.client_addr());
    for i in 0..5 {
        c.call(Req::Put(PutRequest { key: format!("k{i}").into(), value: "v".into(), ..Default::default() }));
    }
    node.stop();

    // What a crash between the apply thread's write and the raft thread's
    // write of the commit index leaves: the commit index three entries back.
    {
        let db = std::sync::Arc::new(Db::open(&cfg.data_dir.join("db")).unwrap());
        let mut log = RaftLogStorage::open(db).unwrap();
        let mut hs = log.hard_state();
        assert!(hs.commit >= 5, "{hs:?}");
        hs.commit -= 3;
        log.persist(&[], Some(hs), true).unwrap();
    }

    let node = Node::start(&cfg).expect("a node whose applied index is beyond its persisted commit starts");
    wait_for_leader(&node, Duration::from_secs(5));
    let mut c = RawClient::connect(node.client_addr());
    let r = c.call(Req::Range(RangeRequest { key: "k".into(), range_end: "l".into(), ..Default::default() }));
    match r {
        Resp::Range(rr) => {
            assert_eq!(rr.kvs.len(), 5);
            // Five puts after the initial revision 1: none applied twice.
            assert_eq!(rr.header.unwrap().revision, 6);
            assert!(rr.kvs.iter().all(|kv| kv.version == 1), "{:?}", rr.kvs);
        }
        other => panic!("{other:?}"),
    }
    node.stop();
}
