//! Lease calls and keep-alives against the in-process fake server: typed
//! answers and errors, the retry rules, keep-alive renewal, failover, loss
//! and shutdown.

use super::fake_server::{FakeServer, Session};
use super::{Client, ClientError, ClientOptions, KeepAlive, KeepAliveEvent, KeepAliveRecvError};
use crate::plumbing::ApiError;
use crate::proto::etcdserverpb::{
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveResponse, ResponseHeader,
};
use crate::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp, ClientRequest, ErrorCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn opts() -> ClientOptions {
    ClientOptions { request_timeout: Duration::from_secs(5), ..ClientOptions::default() }
}

fn header() -> Option<ResponseHeader> {
    Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4 })
}

fn error(code: ErrorCode) -> Resp {
    Resp::Error(ApiError::of(code).to_proto())
}

fn is_keep_alive(b: &Req) -> bool {
    matches!(b, Req::LeaseKeepAlive(_))
}

fn is_cancel(b: &Req) -> bool {
    matches!(b, Req::CancelStream(_))
}

/// The keep-alive answer renewing `req`'s lease for `ttl` seconds.
fn renewal(req: &ClientRequest, ttl: i64) -> Resp {
    let id = match &req.body {
        Some(Req::LeaseKeepAlive(k)) => k.id,
        _ => 0,
    };
    Resp::LeaseKeepAlive(LeaseKeepAliveResponse { header: header(), id, ttl })
}

/// A server renewing every keep-alive for `ttl` seconds (other requests
/// are ignored).
fn renewing_server(ttl: i64) -> FakeServer {
    FakeServer::start(move |s, req| {
        if req.body.as_ref().is_some_and(is_keep_alive) {
            s.reply(req.request_id, renewal(&req, ttl));
        }
    })
}

fn next_event(ka: &KeepAlive) -> KeepAliveEvent {
    match ka.recv_timeout(WAIT) {
        Ok(e) => e,
        Err(e) => panic!("no keep-alive event within {WAIT:?}: {e:?}"),
    }
}

fn expect_renewed(ka: &KeepAlive) -> LeaseKeepAliveResponse {
    match next_event(ka) {
        KeepAliveEvent::Renewed(r) => r,
        KeepAliveEvent::Lost(why) => panic!("lease lost: {why}"),
    }
}

// ---------------------------------------------------------------- calls

fn lease_server() -> FakeServer {
    FakeServer::start(|s: &mut Session, req| {
        let body = match &req.body {
            Some(Req::LeaseGrant(g)) if g.ttl > 9_000_000_000 => error(ErrorCode::LeaseTtlTooLarge),
            Some(Req::LeaseGrant(g)) if g.id == 7 => error(ErrorCode::LeaseExist),
            Some(Req::LeaseGrant(g)) => Resp::LeaseGrant(LeaseGrantResponse {
                header: header(),
                id: if g.id == 0 { 0x694d7c5b3a1f4e0a } else { g.id },
                ttl: g.ttl,
                error: String::new(),
            }),
            Some(Req::LeaseRevoke(r)) if r.id == 1 => Resp::LeaseRevoke(LeaseRevokeResponse { header: header() }),
            Some(Req::LeaseRevoke(_)) => error(ErrorCode::LeaseNotFound),
            Some(Req::LeaseTimeToLive(t)) if t.id == 1 => Resp::LeaseTimeToLive(LeaseTimeToLiveResponse {
                header: header(),
                id: 1,
                ttl: 8,
                granted_ttl: 10,
                keys: if t.keys { vec!["a".into(), "b".into()] } else { vec![] },
            }),
            Some(Req::LeaseTimeToLive(t)) => Resp::LeaseTimeToLive(LeaseTimeToLiveResponse {
                header: header(),
                id: t.id,
                ttl: -1,
                ..Default::default()
            }),
            Some(Req::LeaseLeases(_)) => Resp::LeaseLeases(LeaseLeasesResponse {
                header: header(),
                leases: vec![LeaseStatus { id: 1 }, LeaseStatus { id: 2 }],
            }),
            Some(Req::LeaseKeepAlive(k)) if k.id == 1 => renewal(&req, 10),
            Some(Req::LeaseKeepAlive(_)) => renewal(&req, 0),
            _ => error(ErrorCode::NotImplemented),
        };
        s.reply(req.request_id, body);
    })
}

#[test]
fn typed_lease_calls_send_their_fields_and_decode_the_answers() {
    let server = lease_server();
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let g = client.lease_grant(10, 0).unwrap();
    assert_eq!((g.id, g.ttl, g.header), (0x694d7c5b3a1f4e0a, 10, header()));
    assert_eq!(client.lease_grant(5, 42).unwrap().id, 42, "a chosen id is sent");
    assert_eq!(client.lease_revoke(1).unwrap().header, header());
    let t = client.lease_time_to_live(1, true).unwrap();
    assert_eq!((t.id, t.ttl, t.granted_ttl, t.keys.len()), (1, 8, 10, 2));
    assert!(client.lease_time_to_live(1, false).unwrap().keys.is_empty(), "keys only when asked for");
    let gone = client.lease_time_to_live(99, false).unwrap();
    assert_eq!((gone.id, gone.ttl, gone.granted_ttl), (99, -1, 0), "an unknown lease is an answer, not an error");
    let l = client.lease_leases().unwrap();
    assert_eq!(l.leases.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 2]);
    let k = client.lease_keep_alive_once(1).unwrap();
    assert_eq!((k.id, k.ttl), (1, 10));
    // The one-shot keep-alive ended its stream.
    assert!(server.wait_count(1, WAIT, is_cancel));
}

#[test]
fn lease_errors_keep_their_code_and_etcd_text() {
    let server = lease_server();
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let api = |e: ClientError| e.api().map(|a| (a.code, a.message.clone()));
    assert_eq!(
        api(client.lease_grant(10, 7).unwrap_err()),
        Some((ErrorCode::LeaseExist, "etcdserver: lease already exists".into()))
    );
    assert_eq!(
        api(client.lease_grant(9_000_000_001, 0).unwrap_err()),
        Some((ErrorCode::LeaseTtlTooLarge, "etcdserver: too large lease TTL".into()))
    );
    assert_eq!(
        api(client.lease_revoke(2).unwrap_err()),
        Some((ErrorCode::LeaseNotFound, "etcdserver: requested lease not found".into()))
    );
    // A renewal answered with TTL 0: the lease is gone (clientv3's
    // ErrLeaseNotFound).
    assert_eq!(
        api(client.lease_keep_alive_once(2).unwrap_err()),
        Some((ErrorCode::LeaseNotFound, "etcdserver: requested lease not found".into()))
    );
}

#[test]
fn a_sent_grant_is_not_retried_but_reads_and_keep_alives_are() {
    // A reads each request, then drops the connection without answering.
    let a = FakeServer::start(|s, _req| s.close());
    let b = lease_server();
    let client = Client::connect(&[a.endpoint(), b.endpoint()], opts()).unwrap();
    let err = client.lease_grant(10, 0).unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err:?}");
    assert_eq!(b.count(|r| matches!(r, Req::LeaseGrant(_))), 0, "a grant must not be sent twice");
    // Each on a fresh client, so that A gets it first: safe to send again,
    // on B.
    let fresh = || Client::connect(&[a.endpoint(), b.endpoint()], opts()).unwrap();
    assert_eq!(fresh().lease_leases().unwrap().leases.len(), 2);
    assert_eq!(fresh().lease_time_to_live(1, false).unwrap().ttl, 8);
    assert_eq!(fresh().lease_keep_alive_once(1).unwrap().ttl, 10);
    for (what, pred) in [
        ("leases", (|r: &Req| matches!(r, Req::LeaseLeases(_))) as fn(&Req) -> bool),
        ("time-to-live", |r: &Req| matches!(r, Req::LeaseTimeToLive(_))),
        ("keep-alive", is_keep_alive),
    ] {
        assert_eq!((what, a.count(pred), b.count(pred)), (what, 1, 1), "tried on A, then B");
    }
}

#[test]
fn a_keep_alive_once_retries_a_retryable_error() {
    let first = Arc::new(AtomicUsize::new(0));
    let f = first.clone();
    let server = FakeServer::start(move |s, req| {
        if !req.body.as_ref().is_some_and(is_keep_alive) {
            return;
        }
        // The stream ends with the error; the client opens a new one.
        if f.fetch_add(1, Ordering::SeqCst) == 0 {
            s.reply(req.request_id, error(ErrorCode::NoLeader));
        } else {
            s.reply(req.request_id, renewal(&req, 5));
        }
    });
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    assert_eq!(client.lease_keep_alive_once(3).unwrap().ttl, 5);
    let ids: Vec<u64> =
        server.requests().iter().filter(|r| r.body.as_ref().is_some_and(is_keep_alive)).map(|r| r.request_id).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "the retry opened a new stream");
}

// ---------------------------------------------------------------- keep_alive

#[test]
fn keep_alive_renews_every_third_of_the_ttl_on_one_stream() {
    let server = renewing_server(1);
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let ka = client.keep_alive(0x1234).unwrap();
    assert_eq!(ka.id(), 0x1234);
    let t0 = Instant::now();
    let first = expect_renewed(&ka);
    assert_eq!((first.id, first.ttl), (0x1234, 1));
    assert!(t0.elapsed() < Duration::from_secs(2), "the first renewal goes at once");
    let t1 = Instant::now();
    for _ in 0..3 {
        assert_eq!(expect_renewed(&ka).ttl, 1);
    }
    // Three more renewals, each TTL/3 (333 ms) after the previous answer.
    let took = t1.elapsed();
    assert!(took >= Duration::from_millis(950), "renewed too fast: 3 renewals in {took:?}");
    let ids: std::collections::HashSet<u64> =
        server.requests().iter().filter(|r| r.body.as_ref().is_some_and(is_keep_alive)).map(|r| r.request_id).collect();
    assert_eq!(ids.len(), 1, "every renewal went on the same stream");
    assert_eq!(server.connections(), 1);
}

#[test]
fn keep_alive_moves_to_the_second_endpoint_when_the_first_closes_the_connection() {
    // A renews twice, then drops the connection on the third renewal.
    let answered = Arc::new(AtomicUsize::new(0));
    let n = answered.clone();
    let a = FakeServer::start(move |s, req| {
        if !req.body.as_ref().is_some_and(is_keep_alive) {
            return;
        }
        if n.fetch_add(1, Ordering::SeqCst) < 2 {
            s.reply(req.request_id, renewal(&req, 1));
        } else {
            s.close();
        }
    });
    let b = renewing_server(1);
    let client = Client::connect(&[a.endpoint(), b.endpoint()], opts()).unwrap();
    let ka = client.keep_alive(5).unwrap();
    for _ in 0..5 {
        expect_renewed(&ka);
    }
    assert_eq!(a.count(is_keep_alive), 3, "A renewed twice, then closed on the third");
    assert!(b.count(is_keep_alive) >= 3, "B took over: {} renewals", b.count(is_keep_alive));
}

#[test]
fn keep_alive_reopens_after_a_retryable_error_on_the_stream() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = FakeServer::start(move |s, req| {
        if !req.body.as_ref().is_some_and(is_keep_alive) {
            return;
        }
        // The second renewal gets NO_LEADER, which ends its stream.
        if c.fetch_add(1, Ordering::SeqCst) == 1 {
            s.reply(req.request_id, error(ErrorCode::NoLeader));
        } else {
            s.reply(req.request_id, renewal(&req, 1));
        }
    });
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let ka = client.keep_alive(6).unwrap();
    for _ in 0..3 {
        expect_renewed(&ka);
    }
    let streams: std::collections::HashSet<u64> =
        server.requests().iter().filter(|r| r.body.as_ref().is_some_and(is_keep_alive)).map(|r| r.request_id).collect();
    assert_eq!(streams.len(), 2, "one stream before the error, one after");
}

#[test]
fn keep_alive_reports_lost_when_the_server_says_the_lease_is_gone() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = FakeServer::start(move |s, req| {
        if req.body.as_ref().is_some_and(is_keep_alive) {
            let ttl = if c.fetch_add(1, Ordering::SeqCst) == 0 { 1 } else { 0 };
            s.reply(req.request_id, renewal(&req, ttl));
        }
    });
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let ka = client.keep_alive(8).unwrap();
    expect_renewed(&ka);
    assert_eq!(next_event(&ka), KeepAliveEvent::Lost("lease expired or revoked".into()));
    assert_eq!(ka.recv_timeout(WAIT), Err(KeepAliveRecvError::Ended), "Lost is the last event");
    assert_eq!(server.count(is_keep_alive), 2, "nothing is renewed after the loss");
}

#[test]
fn keep_alive_reports_lost_when_renewals_go_unanswered_past_the_ttl() {
    // The first renewal is answered (TTL 1 s); later ones never are, on
    // any stream.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = FakeServer::start(move |s, req| {
        if req.body.as_ref().is_some_and(is_keep_alive) && c.fetch_add(1, Ordering::SeqCst) == 0 {
            s.reply(req.request_id, renewal(&req, 1));
        }
    });
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let t0 = Instant::now();
    let ka = client.keep_alive(9).unwrap();
    expect_renewed(&ka);
    match next_event(&ka) {
        KeepAliveEvent::Lost(why) => assert!(why.contains("TTL (1s)"), "{why}"),
        other => panic!("expected Lost, got {other:?}"),
    }
    let took = t0.elapsed();
    // The deadline is the first request's send time + 1 s: not before.
    assert!(took >= Duration::from_secs(1), "lost after {took:?}");
    assert!(took < Duration::from_secs(4), "lost after {took:?}");
    assert!(server.count(is_keep_alive) >= 2, "it kept trying until the deadline");
}

#[test]
fn keep_alive_stops_its_thread_when_dropped_or_closed() {
    let server = renewing_server(1);
    let client = Client::connect(&[server.endpoint()], opts()).unwrap();
    let ka = client.keep_alive(10).unwrap();
    expect_renewed(&ka);
    assert_eq!(Arc::strong_count(&client.inner), 2, "the thread holds a client");
    let t0 = Instant::now();
    drop(ka);
    assert!(t0.elapsed() < Duration::from_secs(1), "drop waited {:?}", t0.elapsed());
    // The thread was joined: it holds no client any more, so it cannot
    // send anything.
    assert_eq!(Arc::strong_count(&client.inner), 1);
    assert!(server.wait_count(1, WAIT, is_cancel), "the stream was canceled on the server");
    // close() does the same and leaves the queued events readable.
    let mut ka = client.keep_alive(11).unwrap();
    assert!(server.wait_count(1, WAIT, |r| matches!(r, Req::LeaseKeepAlive(k) if k.id == 11)));
    ka.close();
    assert_eq!(Arc::strong_count(&client.inner), 1);
    let mut renewed = 0;
    loop {
        match ka.recv_timeout(WAIT) {
            Ok(KeepAliveEvent::Renewed(_)) => renewed += 1,
            Ok(lost) => panic!("closing is not a loss: {lost:?}"),
            Err(e) => {
                assert_eq!(e, KeepAliveRecvError::Ended);
                break;
            }
        }
    }
    assert!(renewed <= 1, "{renewed} renewals queued");
}
