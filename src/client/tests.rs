//! The client against the in-process fake server: pipelining, error
//! preservation, failover, the write-retry rule, timeouts, limits, streams.

use super::conn::{CallError, ConnOptions, Connection, EncodedRequest};
use super::fake_server::{dead_endpoint, ok_answer, ok_server, FakeServer};
use super::{Client, ClientError, ClientOptions};
use crate::plumbing::ApiError;
use crate::proto::etcdserverpb::{PutRequest, RangeRequest, WatchRequest, WatchResponse};
use crate::proto::raftkvpb::{client_request, client_response, ErrorCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn opts() -> ClientOptions {
    ClientOptions { request_timeout: Duration::from_secs(10), ..ClientOptions::default() }
}

fn is_put(b: &client_request::Body) -> bool {
    matches!(b, client_request::Body::Put(_))
}

fn is_range(b: &client_request::Body) -> bool {
    matches!(b, client_request::Body::Range(_))
}

fn error_body(code: ErrorCode) -> client_response::Body {
    client_response::Body::Error(ApiError::of(code).to_proto())
}

#[test]
fn pipelined_calls_from_many_threads_share_one_connection_and_match_out_of_order_answers() {
    const THREADS: usize = 16;
    // Answers only once every thread's request is in, then in reverse order:
    // each answer must still reach the thread that asked.
    let server = FakeServer::start(|s, req| {
        s.held.push(req);
        if s.held.len() == THREADS {
            let held: Vec<_> = s.held.drain(..).collect();
            for r in held.iter().rev() {
                s.reply(r.request_id, ok_answer(r));
            }
        }
    });
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let c = client.clone();
            std::thread::spawn(move || {
                let key = format!("key-{i}");
                let kv = c.get(key.clone()).unwrap().unwrap();
                assert_eq!(kv.key, key.as_bytes(), "thread {i} got someone else's answer");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(server.connections(), 1, "one connection carries every call");
    let ids: std::collections::HashSet<u64> = server.requests().iter().map(|r| r.request_id).collect();
    assert_eq!(ids.len(), THREADS, "request ids are unique");
}

#[test]
fn server_error_code_and_message_are_preserved() {
    let server = FakeServer::start(|s, req| {
        s.reply(
            req.request_id,
            client_response::Body::Error(ApiError::new(ErrorCode::Compacted, "custom: compacted at 7").to_proto()),
        )
    });
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let err = client.range(RangeRequest { key: "k".into(), revision: 3, ..Default::default() }).unwrap_err();
    assert_eq!(err, ClientError::Api(ApiError::new(ErrorCode::Compacted, "custom: compacted at 7")));
    assert_eq!(err.to_string(), "custom: compacted at 7");
    // An unknown code keeps the message.
    let server2 = FakeServer::start(|s, req| {
        s.reply(
            req.request_id,
            client_response::Body::Error(crate::proto::raftkvpb::Error { code: 4242, message: "future".into() }),
        )
    });
    let c2 = Client::connect(&[server2.endpoint()], opts()).unwrap();
    let err = c2.put_kv("k", "v").unwrap_err();
    assert_eq!(err.api().map(|e| (e.code, e.message.as_str())), Some((ErrorCode::Unspecified, "future")));
}

#[test]
fn fails_over_to_the_second_endpoint_when_the_first_is_down() {
    let live = ok_server();
    let endpoints = vec![dead_endpoint(), live.endpoint()];
    // Eager connect succeeds with one live endpoint.
    let client = Client::connect(&endpoints, opts()).unwrap();
    for i in 0..4 {
        assert!(client.put_kv(format!("k{i}"), "v").is_ok());
    }
    assert_eq!(live.count(is_put), 4);
    // A lazy client finds the live endpoint on first use, writes included
    // (a failed dial sends nothing).
    let lazy = Client::new_lazy(&endpoints, opts()).unwrap();
    assert!(lazy.put_kv("lazy", "v").is_ok());
    assert_eq!(live.count(is_put), 5);
}

#[test]
fn a_write_that_was_sent_is_not_retried_when_the_connection_dies() {
    // A reads the put, then drops the connection without answering.
    let a = FakeServer::start(|s, _req| s.close());
    let b = ok_server();
    let client = Client::connect(&[a.endpoint(), b.endpoint()], opts()).unwrap();
    let err = client.put_kv("k", "v").unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    assert_eq!(a.count(is_put), 1);
    assert_eq!(b.count(is_put), 0, "the write must not be sent twice");
}

#[test]
fn a_read_is_retried_on_another_endpoint_when_the_connection_dies() {
    let a = FakeServer::start(|s, _req| s.close());
    let b = ok_server();
    let client = Client::connect(&[a.endpoint(), b.endpoint()], opts()).unwrap();
    let kv = client.get("k").unwrap().unwrap();
    assert_eq!(kv.key, "k");
    assert_eq!(a.count(is_range), 1);
    assert_eq!(b.count(is_range), 1);
}

#[test]
fn retryable_server_errors_retry_reads_but_not_writes() {
    let a = FakeServer::start(|s, req| s.reply(req.request_id, error_body(ErrorCode::NoLeader)));
    let b = ok_server();
    let client = Client::connect(&[a.endpoint(), b.endpoint()], opts()).unwrap();
    assert!(client.get("k").unwrap().is_some());
    assert_eq!(b.count(is_range), 1);
    // The next call goes to A again (round robin) and is a write.
    let mut saw_no_leader = false;
    for _ in 0..2 {
        match client.put_kv("k", "v") {
            Err(ClientError::Api(e)) => {
                assert_eq!(e.code, ErrorCode::NoLeader);
                saw_no_leader = true;
            }
            other => assert!(other.is_ok(), "{other:?}"),
        }
    }
    assert!(saw_no_leader);
    assert_eq!(a.count(is_put) + b.count(is_put), 2, "each put was sent exactly once");
}

#[test]
fn a_call_without_an_answer_times_out() {
    let server = FakeServer::start(|_s, _req| {});
    let timeout = Duration::from_millis(300);
    let client = Client::connect(&[server.endpoint()], ClientOptions { request_timeout: timeout, ..opts() }).unwrap();
    let t0 = Instant::now();
    let err = client.get("k").unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err, ClientError::Timeout);
    assert!(took >= timeout, "returned after {took:?}");
    assert!(took < timeout + Duration::from_secs(3), "returned after {took:?}");
    // The connection is still usable: a late answer is simply dropped.
    assert_eq!(server.connections(), 1);
}

#[test]
fn an_unreachable_cluster_times_out_lazily_and_fails_eagerly() {
    let dead = dead_endpoint();
    let err = Client::connect(std::slice::from_ref(&dead), opts()).unwrap_err();
    match &err {
        ClientError::Connect { endpoint, reason } => {
            assert_eq!(endpoint, &dead);
            assert!(reason.contains("connection refused"), "{reason}");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    let lazy =
        Client::new_lazy(&[dead], ClientOptions { request_timeout: Duration::from_millis(300), ..opts() }).unwrap();
    let t0 = Instant::now();
    assert_eq!(lazy.get("k").unwrap_err(), ClientError::Timeout);
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_broken_connection_is_replaced_by_a_new_one() {
    // Answers, then closes: every call needs a fresh connection. Reads that
    // land on the dying connection are retried on the next one.
    let server = FakeServer::start(|s, req| {
        s.reply(req.request_id, ok_answer(&req));
        s.close();
    });
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    for i in 0..3 {
        let key = format!("k{i}");
        assert_eq!(client.get(key.clone()).unwrap().unwrap().key, key.as_bytes());
    }
    assert!(server.connections() >= 3, "{} connections", server.connections());
}

#[test]
fn an_unsent_request_reports_not_sent() {
    let server = FakeServer::start(|s, _req| s.close());
    let conn_opts = ConnOptions {
        max_in_flight: 8,
        max_response_bytes: 1 << 20,
        write_timeout: Duration::from_secs(5),
        auth_token: None,
    };
    let conn = Connection::dial(&server.endpoint(), &conn_opts, Duration::from_secs(2)).unwrap();
    let req = EncodedRequest::new(&client_request::Body::Put(PutRequest::default()));
    // The first put is sent, and the server closes on it.
    let first = conn.call(&req, Instant::now() + Duration::from_secs(5));
    assert!(matches!(first, Err(CallError::Lost(_))), "{first:?}");
    // The connection is now known dead: nothing more leaves this process.
    let second = conn.call(&req, Instant::now() + Duration::from_secs(5));
    assert!(matches!(second, Err(CallError::NotSent(_))), "{second:?}");
    assert_eq!(server.count(is_put), 1);
}

#[test]
fn an_oversized_answer_fails_only_its_call() {
    let server = FakeServer::start(|s, req| {
        let mut body = ok_answer(&req);
        if let (client_response::Body::Range(r), Some(client_request::Body::Range(q))) = (&mut body, &req.body) {
            if q.key == "big" {
                r.kvs[0].value = vec![b'x'; 4096].into();
            }
        }
        s.reply(req.request_id, body);
    });
    let client = Client::connect(&[server.endpoint()], ClientOptions { max_response_bytes: 1024, ..opts() }).unwrap();
    let err = client.get("big").unwrap_err();
    match err {
        ClientError::Protocol(m) => assert!(m.contains("larger than max"), "{m}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert!(client.get("small").unwrap().is_some());
    assert_eq!(server.connections(), 1, "the connection survived the oversized answer");
}

#[test]
fn an_oversized_request_is_refused_before_sending() {
    let server = ok_server();
    let client = Client::connect(&[server.endpoint()], ClientOptions { max_request_bytes: 100, ..opts() }).unwrap();
    let err = client.put_kv("k", vec![0u8; 200]).unwrap_err();
    assert!(matches!(err, ClientError::RequestTooLarge { max: 100, .. }), "{err:?}");
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn in_flight_calls_per_connection_are_capped() {
    const CAP: usize = 2;
    let max_seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let m = max_seen.clone();
    // Holds requests until CAP are waiting, then answers them all: with more
    // than CAP allowed in flight it would see more at once.
    let server = FakeServer::start(move |s, req| {
        s.held.push(req);
        m.fetch_max(s.held.len(), std::sync::atomic::Ordering::SeqCst);
        if s.held.len() == CAP {
            for r in std::mem::take(&mut s.held) {
                s.reply(r.request_id, ok_answer(&r));
            }
        }
    });
    let client =
        Client::connect(&[server.endpoint()], ClientOptions { max_in_flight_per_connection: CAP, ..opts() }).unwrap();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let c = client.clone();
            std::thread::spawn(move || c.get(format!("k{i}")).map(|kv| kv.is_some()))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Ok(true));
    }
    assert_eq!(max_seen.load(std::sync::atomic::Ordering::SeqCst), CAP);
}

#[test]
fn the_auth_token_travels_with_every_request() {
    let server = ok_server();
    let client =
        Client::connect(&[server.endpoint()], ClientOptions { auth_token: Some("tok".into()), ..opts() }).unwrap();
    client.put_kv("k", "v").unwrap();
    client.get("k").unwrap();
    assert!(server.requests().iter().all(|r| r.auth_token == "tok"));
}

#[test]
fn a_stream_receives_many_answers_for_one_request() {
    let server = FakeServer::start(|s, req| {
        if !matches!(req.body, Some(client_request::Body::Watch(_))) {
            return s.reply(req.request_id, ok_answer(&req));
        }
        for i in 0..3 {
            s.reply(req.request_id, client_response::Body::Watch(WatchResponse { watch_id: i, ..Default::default() }));
        }
    });
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let stream = client.open_stream(client_request::Body::Watch(WatchRequest::default()), 16).unwrap();
    for i in 0..3 {
        match stream.recv_deadline(Instant::now() + Duration::from_secs(5)).unwrap() {
            client_response::Body::Watch(w) => assert_eq!(w.watch_id, i),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stream.recv_deadline(Instant::now() + Duration::from_millis(50)), Err(CallError::Timeout));
    // Unary calls still work beside the stream.
    assert!(client.get("k").unwrap().is_some());
}
