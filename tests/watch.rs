//! Watch through whole nodes: the stream seams of the client I/O thread
//! (many answers per request id, more requests on the same id, the end of a
//! stream), the watch dispatcher fed by the apply thread, history replay
//! from RocksDB, followers serving watches, and the client library's
//! resume after a member goes away.

mod common;

use common::*;
use raftkv::client::watch::WatchUpdate;
use raftkv::client::{Client, ClientError, ClientOptions};
use raftkv::node::Node;
use raftkv::proto::etcdserverpb::{
    watch_request::RequestUnion, CompactionRequest, DeleteRangeRequest, PutRequest, WatchCancelRequest,
    WatchCreateRequest, WatchRequest, WatchResponse,
};
use raftkv::proto::mvccpb::event::EventType;
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp, CancelStream, ErrorCode};
use raftkv::server::config::Config;
use std::time::{Duration, Instant};

fn put(c: &mut RawClient, key: &str, value: &str) -> i64 {
    match c.call(Req::Put(PutRequest {
        key: key.to_string().into(),
        value: value.to_string().into(),
        ..Default::default()
    })) {
        Resp::Put(p) => p.header.expect("header").revision,
        other => panic!("put: {other:?}"),
    }
}

fn create(key: &str, end: &str, start: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec().into(),
        range_end: end.as_bytes().to_vec().into(),
        start_revision: start,
        ..Default::default()
    }
}

fn watch_req(c: WatchCreateRequest) -> Req {
    Req::Watch(WatchRequest { request_union: Some(RequestUnion::CreateRequest(c)) })
}

/// The next watch answer on a raw connection, for request id `id`.
fn next_watch(c: &mut RawClient, id: u64) -> WatchResponse {
    loop {
        let r = c.recv().expect("connection closed");
        match r.body {
            Some(Resp::Watch(w)) if r.request_id == id => return w,
            Some(Resp::Put(_)) => continue,
            other => panic!("unexpected answer to {}: {other:?}", r.request_id),
        }
    }
}

fn single_node(dir: &std::path::Path) -> (Node, Config) {
    let cfg = single_node_config(dir);
    let node = Node::start(&cfg).expect("start");
    wait_for_leader(&node, Duration::from_secs(5));
    (node, cfg)
}

#[test]
fn a_stream_carries_many_watches_events_cancels_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = single_node(dir.path());
    let mut writer = RawClient::connect(node.client_addr());
    let mut c = RawClient::connect(node.client_addr());
    let id = c.send(watch_req(create("foo", "", 0)));
    let created = next_watch(&mut c, id);
    assert!(created.created && !created.canceled && created.watch_id == 0, "{created:?}");
    // A second watch on the same stream (same request id): a prefix.
    c.send_on(id, watch_req(create("pre", "prf", 0)));
    let created = next_watch(&mut c, id);
    assert_eq!((created.created, created.watch_id), (true, 1));

    let rev = put(&mut writer, "foo", "bar");
    let w = next_watch(&mut c, id);
    assert_eq!(w.watch_id, 0);
    assert_eq!(w.events.len(), 1);
    let kv = w.events[0].kv.as_ref().unwrap();
    assert_eq!((kv.key.as_ref(), kv.value.as_ref(), kv.mod_revision), (&b"foo"[..], &b"bar"[..], rev));
    put(&mut writer, "prefix1", "x");
    let w = next_watch(&mut c, id);
    assert_eq!(w.watch_id, 1);

    // Cancel the first: answered, and its key is silent afterwards.
    c.send_on(
        id,
        Req::Watch(WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: 0 })),
        }),
    );
    let w = next_watch(&mut c, id);
    assert!(w.canceled && w.watch_id == 0, "{w:?}");
    put(&mut writer, "foo", "again");
    put(&mut writer, "prefix2", "y");
    let w = next_watch(&mut c, id);
    assert_eq!(w.watch_id, 1, "only the prefix watch is left: {w:?}");

    // Unary requests still work on the same connection meanwhile.
    let put_id = c.send(Req::Put(PutRequest { key: "other".into(), value: "v".into(), ..Default::default() }));
    let r = c.recv().unwrap();
    assert_eq!(r.request_id, put_id);

    // The client ends the stream: nothing more arrives for it.
    c.send_on(id, Req::CancelStream(CancelStream {}));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        // The dispatcher forgets the stream promptly; once it has, a put
        // under the prefix produces nothing for this connection.
        put(&mut writer, "prefix3", "z");
        let probe = c.send(Req::Put(PutRequest { key: "probe".into(), value: "v".into(), ..Default::default() }));
        let r = c.recv().unwrap();
        if r.request_id == probe {
            break;
        }
        assert_eq!(r.request_id, id, "only the stream's late events may come first");
    }
    node.stop();
}

#[test]
fn history_is_replayed_from_storage_then_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = single_node(dir.path());
    let mut writer = RawClient::connect(node.client_addr());
    let first = put(&mut writer, "k", "0");
    for i in 1..50 {
        put(&mut writer, "k", &i.to_string());
    }
    let mut c = RawClient::connect(node.client_addr());
    let id = c.send(watch_req(WatchCreateRequest { prev_kv: true, ..create("k", "", first) }));
    assert!(next_watch(&mut c, id).created);
    for i in 50..60 {
        put(&mut writer, "k", &i.to_string());
    }
    let mut revs = Vec::new();
    while revs.len() < 60 {
        let w = next_watch(&mut c, id);
        for e in &w.events {
            let kv = e.kv.as_ref().unwrap();
            if kv.mod_revision > first {
                let prev = e.prev_kv.as_ref().expect("prev_kv asked for");
                assert_eq!(prev.mod_revision, kv.mod_revision - 1, "prev_kv is the value before");
            }
            revs.push(kv.mod_revision);
        }
    }
    let expected: Vec<i64> = (first..first + 60).collect();
    assert_eq!(revs, expected);
    node.stop();
}

#[test]
fn deletes_filters_and_a_compacted_start_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = single_node(dir.path());
    let mut writer = RawClient::connect(node.client_addr());
    let mut c = RawClient::connect(node.client_addr());
    let no_put = WatchCreateRequest { filters: vec![0], ..create("d", "", 0) };
    let id = c.send(watch_req(no_put));
    assert!(next_watch(&mut c, id).created);
    put(&mut writer, "d", "1");
    let del = writer.call(Req::DeleteRange(DeleteRangeRequest { key: "d".into(), ..Default::default() }));
    assert!(matches!(del, Resp::DeleteRange(_)));
    let w = next_watch(&mut c, id);
    assert_eq!(w.events.len(), 1);
    assert_eq!(w.events[0].r#type(), EventType::Delete);

    let rev = put(&mut writer, "d", "2");
    let compact = writer.call(Req::Compact(CompactionRequest { revision: rev, physical: true }));
    assert!(matches!(compact, Resp::Compact(_)), "{compact:?}");
    let mut c2 = RawClient::connect(node.client_addr());
    let id2 = c2.send(watch_req(create("d", "", 1)));
    assert!(next_watch(&mut c2, id2).created);
    let w = next_watch(&mut c2, id2);
    assert!(w.canceled, "{w:?}");
    assert_eq!(w.compact_revision, rev);
    assert_eq!(w.cancel_reason, "etcdserver: mvcc: required revision has been compacted");
    node.stop();
}

#[test]
fn a_client_that_never_reads_does_not_stall_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = single_node(dir.path());
    let mut writer = RawClient::connect(node.client_addr());
    // Watches with big values, never read.
    let mut stalled = RawClient::connect(node.client_addr());
    let sid = stalled.send(watch_req(create("big", "", 0)));
    let mut reader = RawClient::connect(node.client_addr());
    let rid = reader.send(watch_req(create("big", "", 0)));
    assert!(next_watch(&mut reader, rid).created);
    let value = "v".repeat(64 * 1024);
    let mut revs = Vec::new();
    // Far more than the stalled connection's socket and outbox can hold.
    for _ in 0..300 {
        revs.push(put(&mut writer, "big", &value));
    }
    let mut got = Vec::new();
    while got.len() < revs.len() {
        let w = next_watch(&mut reader, rid);
        got.extend(w.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    }
    assert_eq!(got, revs, "the reading watcher got everything, in order");
    // The stalled one now reads: everything arrives, in order, once.
    let mut got = Vec::new();
    assert!(next_watch(&mut stalled, sid).created);
    while got.len() < revs.len() {
        let w = next_watch(&mut stalled, sid);
        assert!(!w.canceled, "{w:?}");
        got.extend(w.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    }
    assert_eq!(got, revs, "the stalled watcher caught up from storage");
    node.stop();
}

#[test]
fn bad_watch_requests_get_clear_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = single_node(dir.path());
    let mut c = RawClient::connect(node.client_addr());
    let id = c.send(watch_req(create("b", "a", 0)));
    let w = next_watch(&mut c, id);
    assert!(w.created && w.canceled && w.watch_id == -1);
    assert_eq!(w.cancel_reason, "mvcc: watcher range is empty");
    // A start revision far in the future: created, waits.
    c.send_on(id, watch_req(create("f", "", 1 << 40)));
    let w = next_watch(&mut c, id);
    assert!(w.created && !w.canceled);
    // Cancel of an unknown id: nothing answers (as etcd), the stream lives.
    c.send_on(
        id,
        Req::Watch(WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: 99 })),
        }),
    );
    // A non-watch request on the stream's id is refused, the stream lives.
    c.send_on(id, Req::Put(PutRequest { key: "x".into(), ..Default::default() }));
    let r = c.recv().unwrap();
    assert_eq!(r.request_id, id);
    assert!(matches!(r.body, Some(Resp::Error(_))), "{r:?}");
    // Thousands of creates on one stream: the limit answers, the node lives.
    for _ in 0..10_050 {
        c.send_on(id, watch_req(create("many", "", 0)));
    }
    let mut refused = 0;
    for _ in 0..10_050 {
        let w = next_watch(&mut c, id);
        if w.canceled {
            assert!(w.cancel_reason.contains("too many watchers"), "{w:?}");
            refused += 1;
        }
    }
    assert!(refused > 0, "the per-stream limit applies");
    let mut other = RawClient::connect(node.client_addr());
    put(&mut other, "still", "serving");
    node.stop();
}

fn cluster(dir: &std::path::Path, n: usize) -> (Vec<Config>, Vec<Node>) {
    let cfgs = cluster_configs(dir, n);
    let nodes: Vec<Node> = cfgs.iter().map(|c| Node::start(c).expect("start")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes.iter().all(|n| n.status().leader() != 0) {
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(10));
    }
    (cfgs, nodes)
}

#[test]
fn followers_serve_watches_and_the_client_resumes_on_another_member() {
    let dir = tempfile::tempdir().unwrap();
    let (cfgs, mut nodes) = cluster(dir.path(), 3);
    let endpoints: Vec<String> = nodes.iter().map(|n| n.client_addr().to_string()).collect();
    let opts = ClientOptions { request_timeout: Duration::from_secs(3), ..Default::default() };
    let watcher = Client::connect(&endpoints, opts.clone()).expect("connect");
    let mut w = watcher.watch(create("r", "s", 0)).expect("watch");
    let serving = endpoints.iter().position(|e| Some(e.as_str()) == w.endpoint()).expect("the watch's member");
    let writers: Vec<String> =
        endpoints.iter().enumerate().filter(|(i, _)| *i != serving).map(|(_, e)| e.clone()).collect();
    let writer = Client::connect(&writers, opts).expect("connect");
    let mut expected = Vec::new();
    let mut got = Vec::new();
    let collect = |w: &mut raftkv::client::watch::Watch, got: &mut Vec<i64>, want: usize| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while got.len() < want {
            assert!(Instant::now() < deadline, "only {} of {want} events: {got:?}", got.len());
            match w.next(deadline) {
                Ok(Some(WatchUpdate::Events(r))) => {
                    got.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision))
                }
                Ok(_) => {}
                Err(e) => panic!("watch failed: {e}"),
            }
        }
    };
    for i in 0..20 {
        let r = writer.put_kv(format!("r{i}"), "v").expect("put");
        expected.push(r.header.unwrap().revision);
    }
    collect(&mut w, &mut got, expected.len());
    assert!(!w.take_resumed());
    // The member serving the watch goes away; the watch resumes elsewhere.
    let gone = nodes.remove(serving);
    gone.stop();
    // Writes go on once the others agree on a live leader (a write that a
    // follower forwarded to a leader going away would only time out).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leaders: Vec<u64> = nodes.iter().map(|n| n.status().leader()).collect();
        if leaders.iter().all(|&l| l == leaders[0]) && nodes.iter().any(|n| n.member_id == leaders[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "no live leader after a member stopped: {leaders:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 20..40 {
        let r = writer.put_kv(format!("r{i}"), "v").expect("put");
        expected.push(r.header.unwrap().revision);
    }
    collect(&mut w, &mut got, expected.len());
    assert!(w.take_resumed(), "the stream was re-opened");
    assert_ne!(w.endpoint(), Some(endpoints[serving].as_str()), "on another member");
    assert_eq!(got, expected, "no gap and no duplicate across the resume");
    drop(cfgs);
    for n in nodes {
        n.stop();
    }
}

#[test]
fn compaction_surfaces_as_an_error_in_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = single_node(dir.path());
    let client = Client::connect(&[node.client_addr().to_string()], ClientOptions::default()).expect("connect");
    let mut last = 0;
    for i in 0..5 {
        last = client.put_kv("c", i.to_string()).unwrap().header.unwrap().revision;
    }
    client.compact(CompactionRequest { revision: last, physical: false }).expect("compact");
    let mut w = client.watch(create("c", "", 2)).expect("created");
    match w.next(Instant::now() + Duration::from_secs(5)) {
        Err(ClientError::Api(e)) => assert_eq!(e.code, ErrorCode::Compacted, "{e}"),
        other => panic!("expected the compaction error, got {other:?}"),
    }
    node.stop();
}
