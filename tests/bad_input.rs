//! Bad input never harms the server or other clients: every case gets an
//! error answer (with etcd's wording and a stable code) or a closed
//! connection, and a well-behaved client on another connection keeps
//! working throughout.

mod common;

use common::*;
use prost::Message;
use raftkv::api::framing::encode_frame;
use raftkv::node::Node;
use raftkv::proto::etcdserverpb::{
    range_request::SortOrder, request_op, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp, ClientRequest, ErrorCode};
use std::time::Duration;

struct Fixture {
    node: Node,
    _dir: tempfile::TempDir,
    good: RawClient,
    writes: u64,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(|_| {})
    }

    fn with(adjust: impl FnOnce(&mut raftkv::server::config::RawConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = single_node_raw(dir.path());
        adjust(&mut raw);
        let node = Node::start(&raw.validate(dir.path()).unwrap()).expect("start");
        wait_for_leader(&node, Duration::from_secs(5));
        let good = RawClient::connect(node.client_addr());
        Fixture { node, _dir: dir, good, writes: 0 }
    }

    /// The well-behaved client writes and reads back.
    fn still_serves(&mut self) {
        self.writes += 1;
        let v = format!("v{}", self.writes);
        match self.good.call(Req::Put(PutRequest { key: "good".into(), value: v.clone().into(), ..Default::default() }))
        {
            Resp::Put(_) => {}
            other => panic!("the good client's write failed: {other:?}"),
        }
        match self.good.call(Req::Range(RangeRequest { key: "good".into(), ..Default::default() })) {
            Resp::Range(r) => assert_eq!(r.kvs[0].value.as_ref(), v.as_bytes(), "the good client reads its write"),
            other => panic!("the good client's read failed: {other:?}"),
        }
    }

    fn bad(&self) -> RawClient {
        RawClient::connect(self.node.client_addr())
    }
}

fn expect_error(body: Resp, code: ErrorCode, message: &str) {
    match body {
        Resp::Error(e) => {
            assert_eq!(e.code, code as i32, "code of {e:?}");
            assert_eq!(e.message, message);
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

fn put(key: &str, value: &str) -> Req {
    Req::Put(PutRequest { key: key.to_string().into(), value: value.to_string().into(), ..Default::default() })
}

#[test]
fn oversized_frame_is_answered_and_skipped() {
    let mut f = Fixture::new();
    let mut bad = f.bad();
    // 3 MiB: over the frame limit (1.5 MiB + margin); never buffered.
    let big = vec![b'x'; 3 << 20];
    let id = bad.send(Req::Put(PutRequest { key: "k".into(), value: big.into(), ..Default::default() }));
    let r = bad.recv().expect("an answer, not a closed connection");
    assert_eq!(r.request_id, id, "answered by id");
    expect_error(r.body.unwrap(), ErrorCode::RequestTooLarge, "etcdserver: request is too large");
    // The same connection goes on working after the skipped frame.
    assert!(matches!(bad.call(put("after", "1")), Resp::Put(_)));
    f.still_serves();
}

#[test]
fn request_just_over_max_request_bytes_is_refused() {
    let mut f = Fixture::new();
    let mut bad = f.bad();
    // Fits in a frame (the limit has a margin) but not in a proposal.
    let body =
        bad.call(Req::Put(PutRequest { key: "k".into(), value: vec![1u8; 1_600_000].into(), ..Default::default() }));
    expect_error(body, ErrorCode::RequestTooLarge, "etcdserver: request is too large");
    f.still_serves();
}

#[test]
fn undecodable_bytes_get_malformed_request() {
    let mut f = Fixture::new();
    let mut bad = f.bad();
    // A frame whose payload is not a ClientRequest (an invalid wire type).
    let payload = [0x08u8, 0x2a, 0x0f, 0xff, 0xff];
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    bad.send_raw(&frame);
    let r = bad.recv().expect("an answer");
    assert_eq!(r.request_id, 42, "the request id was recovered from the first field");
    match r.body {
        Some(Resp::Error(e)) => assert_eq!(e.code, ErrorCode::MalformedRequest as i32),
        other => panic!("{other:?}"),
    }
    assert!(matches!(bad.call(put("after", "1")), Resp::Put(_)), "the connection survives");
    f.still_serves();
}

#[test]
fn unknown_request_kind() {
    let mut f = Fixture::new();
    let mut bad = f.bad();
    // Field 999 is no request this server knows: the body decodes as None.
    let mut payload = ClientRequest { request_id: 7, auth_token: String::new(), body: None }.encode_to_vec();
    payload.extend_from_slice(&[0xba, 0x3e, 0x00]); // field 999, length-delimited, empty
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    bad.send_raw(&frame);
    let r = bad.recv().expect("an answer");
    assert_eq!(r.request_id, 7);
    expect_error(r.body.unwrap(), ErrorCode::UnknownRequest, "raftkv: unknown request");
    f.still_serves();
}

#[test]
fn validation_errors_keep_etcd_wording() {
    let mut f = Fixture::new();
    let mut bad = f.bad();
    expect_error(bad.call(put("", "v")), ErrorCode::EmptyKey, "etcdserver: key is not provided");
    expect_error(
        bad.call(Req::Range(RangeRequest { key: "".into(), ..Default::default() })),
        ErrorCode::EmptyKey,
        "etcdserver: key is not provided",
    );
    expect_error(
        bad.call(Req::Range(RangeRequest { key: "a".into(), sort_order: 7, ..Default::default() })),
        ErrorCode::InvalidSortOption,
        "etcdserver: invalid sort option",
    );
    expect_error(
        bad.call(Req::Range(RangeRequest {
            key: "a".into(),
            sort_order: SortOrder::Ascend as i32,
            sort_target: 9,
            ..Default::default()
        })),
        ErrorCode::InvalidSortOption,
        "etcdserver: invalid sort option",
    );
    expect_error(
        bad.call(Req::Put(PutRequest { key: "a".into(), value: "v".into(), ignore_value: true, ..Default::default() })),
        ErrorCode::ValueProvided,
        "etcdserver: value is provided",
    );
    let ops: Vec<RequestOp> = (0..129)
        .map(|i| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: format!("k{i}").into(),
                ..Default::default()
            })),
        })
        .collect();
    expect_error(
        bad.call(Req::Txn(TxnRequest { success: ops, ..Default::default() })),
        ErrorCode::TooManyOps,
        "etcdserver: too many operations in txn request",
    );
    let dup = (0..2)
        .map(|_| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest { key: "same".into(), ..Default::default() })),
        })
        .collect();
    expect_error(
        bad.call(Req::Txn(TxnRequest { success: dup, ..Default::default() })),
        ErrorCode::DuplicateKey,
        "etcdserver: duplicate key given in txn request",
    );
    expect_error(
        bad.call(Req::LeaseGrant(LeaseGrantRequest { ttl: 9_000_000_001, id: 0 })),
        ErrorCode::LeaseTtlTooLarge,
        "etcdserver: too large lease TTL",
    );
    // A request kind not served yet.
    match bad.call(Req::AuthStatus(Default::default())) {
        Resp::Error(e) => assert_eq!(e.code, ErrorCode::NotImplemented as i32, "{e:?}"),
        other => panic!("{other:?}"),
    }
    f.still_serves();
}

#[test]
fn truncated_frame_then_close_harms_nobody() {
    let mut f = Fixture::new();
    let mut bad = f.bad();
    let frame = encode_frame(&ClientRequest { request_id: 1, auth_token: String::new(), body: Some(put("t", "1")) });
    bad.send_raw(&frame[..frame.len() / 2]);
    drop(bad);
    f.still_serves();
    // The half-sent write was never applied.
    match f.good.call(Req::Range(RangeRequest { key: "t".into(), ..Default::default() })) {
        Resp::Range(r) => assert!(r.kvs.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn absurd_length_prefix_is_answered() {
    let mut f = Fixture::new();
    let mut bad = f.bad();
    bad.send_raw(&[0xff, 0xff, 0xff, 0xff, 0x00]);
    let r = bad.recv().expect("an answer");
    expect_error(r.body.unwrap(), ErrorCode::RequestTooLarge, "etcdserver: request is too large");
    f.still_serves();
}

#[test]
fn silent_and_trickling_clients_are_closed() {
    let mut f = Fixture::with(|c| {
        c.client_idle_timeout_ms = Some(300);
        c.request_timeout_ms = Some(800);
    });
    // Connects and sends nothing.
    let mut silent = f.bad();
    // Sends a frame one byte at a time, slower than the frame timeout allows.
    let mut trickle = f.bad();
    let frame = encode_frame(&ClientRequest { request_id: 1, auth_token: String::new(), body: Some(put("x", "y")) });
    let writer = std::thread::spawn({
        let mut s = trickle_stream(&mut trickle);
        move || {
            for b in frame {
                if std::io::Write::write_all(&mut s, &[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        }
    });
    assert!(silent.closed_within(Duration::from_secs(5)), "an idle connection is closed");
    assert!(trickle.closed_within(Duration::from_secs(5)), "a connection that never finishes its frame is closed");
    let _ = writer.join();
    // The good client was idle meanwhile too, and was closed alike.
    f.good = f.bad();
    f.still_serves();
}

fn trickle_stream(c: &mut RawClient) -> std::net::TcpStream {
    c.try_clone_stream()
}
