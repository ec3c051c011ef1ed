mod common;

use common::*;
use raftkv::proto::etcdserverpb::{PutRequest, RangeRequest};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use raftkv::server::Node;
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
