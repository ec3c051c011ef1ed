//! raftkv-bench: a load generator modeled on etcd's benchmark tool.
//!
//! Owns the program's flow: parse, validate, run, print exactly one JSON
//! line on stdout (`op, conns, clients, total, secs, ops_per_sec, p50_ms,
//! p90_ms, p99_ms, p999_ms, max_ms, errors`). Layout: `args` (flags),
//! `workload` (requests), `driver` (one connection's clients), `runner`
//! (the connections' threads and merging their measurements), `report`
//! (histogram and the JSON line), `watch` (the watch workloads), `lease`
//! (the lease workloads, whose lines add fields of their own).

pub mod args;
pub mod driver;
pub mod lease;
pub mod report;
pub mod runner;
pub mod watch;
pub mod workload;

use clap::Parser;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// raftkv-bench's `main`; returns the exit code.
pub fn main() -> i32 {
    let args = match args::BenchArgs::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if let Err(e) = args.validate() {
        eprintln!("raftkv-bench: {e}");
        return 2;
    }
    // The progress bar (on stderr) only when a person is watching.
    let show_progress = std::io::stdout().is_terminal();
    let lease_run = match &args.op {
        args::Op::LeaseKeepalive { ttl, stream_per_keep_alive } => {
            Some(lease::keepalive(&args, *ttl, *stream_per_keep_alive))
        }
        args::Op::LeaseScale { scale, duration_secs, renewals_per_ttl } => {
            Some(lease::scale(&args, scale, Duration::from_secs(*duration_secs), *renewals_per_ttl))
        }
        args::Op::LeaseExpiry { scale, put_rate, put_clients, poll_ms, max_wait_secs } => Some(lease::expiry(
            &args,
            scale,
            *put_rate,
            *put_clients,
            Duration::from_millis(*poll_ms),
            Duration::from_secs(*max_wait_secs),
        )),
        _ => None,
    };
    if let Some(run) = lease_run {
        return match run {
            Ok(report) => {
                let mut out = std::io::stdout();
                let _ = out.write_all(report.json_line().as_bytes());
                let _ = out.flush();
                0
            }
            Err(e) => {
                eprintln!("raftkv-bench: {e}");
                1
            }
        };
    }
    if let Some(plan) = watch::Plan::of(&args) {
        return match watch::run(&args, &plan) {
            Ok(report) => {
                if report.errors > 0 {
                    eprintln!("raftkv-bench: {} events or puts missing", report.errors);
                }
                let mut out = std::io::stdout();
                let _ = out.write_all(report.json_line().as_bytes());
                let _ = out.flush();
                0
            }
            Err(e) => {
                eprintln!("raftkv-bench: {e}");
                1
            }
        };
    }
    match runner::run(&args, show_progress) {
        Ok(outcome) => {
            if let Some(e) = &outcome.first_error {
                eprintln!(
                    "raftkv-bench: {} of {} requests failed; first error: {e}",
                    outcome.report.errors, outcome.report.total
                );
            }
            let mut out = std::io::stdout();
            let _ = out.write_all(outcome.report.json_line().as_bytes());
            let _ = out.flush();
            0
        }
        Err(e) => {
            eprintln!("raftkv-bench: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake_server::{ok_answer, FakeServer};
    use crate::proto::raftkvpb::client_request::Body;

    fn args(extra: &[&str], endpoint: &str) -> args::BenchArgs {
        let mut argv = vec!["raftkv-bench".to_string(), "--endpoints".to_string(), endpoint.to_string()];
        argv.extend(extra.iter().map(|s| s.to_string()));
        args::BenchArgs::parse_from(argv)
    }

    #[test]
    fn a_run_sends_every_request_over_the_asked_connections() {
        let server = FakeServer::start(|s, req| s.reply(req.request_id, ok_answer(&req)));
        let a =
            args(&["--conns", "3", "--clients", "7", "--total", "200", "--key-space", "50", "put"], &server.endpoint());
        a.validate().unwrap();
        let out = runner::run(&a, false).unwrap();
        let r = out.report;
        assert_eq!((r.op.as_str(), r.conns, r.clients, r.total, r.errors), ("put", 3, 7, 200, 0));
        assert!(r.ops_per_sec > 0.0 && r.p50_ms <= r.p99_ms && r.p99_ms <= r.max_ms, "{r:?}");
        assert_eq!(server.count(|b| matches!(b, Body::Put(_))), 200);
        assert_eq!(server.connections(), 3);
    }

    #[test]
    fn a_range_run_preloads_its_key_and_counts_errors() {
        // Every range fails: the run still completes and says so.
        let server = FakeServer::start(|s, req| match req.body {
            Some(Body::Range(_)) => s.reply(
                req.request_id,
                crate::proto::raftkvpb::client_response::Body::Error(
                    crate::plumbing::ApiError::of(crate::proto::raftkvpb::ErrorCode::Compacted).to_proto(),
                ),
            ),
            _ => s.reply(req.request_id, ok_answer(&req)),
        });
        let a = args(&["--total", "20", "range", "--consistency", "s"], &server.endpoint());
        let out = runner::run(&a, false).unwrap();
        assert_eq!((out.report.op.as_str(), out.report.errors), ("range-serializable", 20));
        assert!(out.first_error.is_some());
        assert_eq!(server.count(|b| matches!(b, Body::Put(_))), 1, "the key is put once first");
        assert!(server
            .requests()
            .iter()
            .filter_map(|r| match &r.body {
                Some(Body::Range(q)) => Some(q.serializable),
                _ => None,
            })
            .all(|s| s));
    }

    #[test]
    fn a_connection_keeps_all_its_clients_in_flight() {
        // The server answers only once four requests wait: a run with four
        // clients progresses only if the connection keeps all four
        // outstanding at once. (One connection, and a total that is a
        // multiple of four, so the last round is full too.)
        let server = FakeServer::start(|s, req| {
            s.held.push(req);
            if s.held.len() == 4 {
                for r in std::mem::take(&mut s.held) {
                    s.reply(r.request_id, ok_answer(&r));
                }
            }
        });
        let a = args(
            &["--conns", "1", "--clients", "4", "--total", "400", "--request-timeout-ms", "5000", "put"],
            &server.endpoint(),
        );
        let out = runner::run(&a, false).unwrap();
        assert_eq!(out.report.errors, 0, "{:?}", out.first_error);
        assert_eq!(server.count(|b| matches!(b, Body::Put(_))), 400);
    }

    #[test]
    fn unanswered_requests_time_out_and_their_clients_move_on() {
        // Every third request is never answered.
        let server = FakeServer::start(|s, req| {
            if req.request_id % 3 != 0 {
                s.reply(req.request_id, ok_answer(&req));
            }
        });
        let a = args(&["--clients", "4", "--total", "30", "--request-timeout-ms", "200", "put"], &server.endpoint());
        let out = runner::run(&a, false).unwrap();
        assert_eq!(out.report.errors, 10);
        assert_eq!(out.first_error, Some(crate::client::ClientError::Timeout));
        assert_eq!(server.count(|b| matches!(b, Body::Put(_))), 30);
    }

    #[test]
    fn a_connection_that_dies_fails_its_requests_and_the_others_finish_the_run() {
        let closed_one = std::sync::atomic::AtomicBool::new(false);
        let server = FakeServer::start(move |s, req| {
            if req.request_id == 5 && !closed_one.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return s.close();
            }
            s.reply(req.request_id, ok_answer(&req));
        });
        let a = args(&["--conns", "2", "--clients", "2", "--total", "100", "put"], &server.endpoint());
        let out = runner::run(&a, false).unwrap();
        let r = out.report;
        assert_eq!(r.errors, 1, "the one request on the closed connection");
        assert!(matches!(out.first_error, Some(crate::client::ClientError::Closed { .. })), "{:?}", out.first_error);
        assert_eq!(server.count(|b| matches!(b, Body::Put(_))), 100, "the other connection sent the rest");
    }

    /// A server that grants leases (ids from 1000 on) and answers every
    /// keep-alive with `ttl`, and every other request with `ok_answer`.
    fn lease_server(ttl: i64) -> FakeServer {
        use crate::proto::etcdserverpb::{
            LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseStatus,
        };
        use crate::proto::raftkvpb::client_response::Body as Resp;
        let next = std::sync::atomic::AtomicI64::new(1000);
        FakeServer::start(move |s, req| match &req.body {
            Some(Body::LeaseGrant(g)) => {
                let id = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                s.reply(req.request_id, Resp::LeaseGrant(LeaseGrantResponse { id, ttl: g.ttl, ..Default::default() }))
            }
            Some(Body::LeaseKeepAlive(k)) => s.reply(
                req.request_id,
                Resp::LeaseKeepAlive(LeaseKeepAliveResponse {
                    header: None,
                    id: k.id,
                    ttl: if k.id % 2 == 0 { ttl } else { 0 },
                }),
            ),
            Some(Body::LeaseLeases(_)) => {
                let leases =
                    (1000..next.load(std::sync::atomic::Ordering::SeqCst)).map(|id| LeaseStatus { id }).collect();
                s.reply(req.request_id, Resp::LeaseLeases(LeaseLeasesResponse { header: None, leases }))
            }
            _ => s.reply(req.request_id, ok_answer(&req)),
        })
    }

    #[test]
    fn a_keepalive_run_renews_each_clients_lease_on_one_stream() {
        let server = lease_server(30);
        let a = args(
            &["--conns", "2", "--clients", "4", "--total", "200", "lease-keepalive", "--ttl", "30"],
            &server.endpoint(),
        );
        a.validate().unwrap();
        let r = lease::keepalive(&a, 30, false).unwrap();
        assert_eq!((r.op.as_str(), r.conns, r.clients, r.total), ("lease-keepalive", 2, 4, 200));
        // The fake answers odd lease ids with TTL 0: two of the four
        // clients' keep-alives all count as errors.
        assert!(r.errors > 0 && r.errors < 200, "{r:?}");
        assert_eq!(server.count(|b| matches!(b, Body::LeaseGrant(_))), 4);
        assert_eq!(server.count(|b| matches!(b, Body::LeaseKeepAlive(_))), 200);
        // One stream per client, kept open, cancelled when the client is
        // done (before its lease is revoked).
        assert_eq!(server.count(|b| matches!(b, Body::CancelStream(_))), 4);
        assert_eq!(server.count(|b| matches!(b, Body::LeaseRevoke(_))), 4, "the leases are revoked at the end");
    }

    #[test]
    fn a_keepalive_run_can_open_a_stream_per_keep_alive() {
        let server = lease_server(30);
        let a = args(
            &["--clients", "2", "--total", "20", "lease-keepalive", "--stream-per-keep-alive"],
            &server.endpoint(),
        );
        let r = lease::keepalive(&a, 100, true).unwrap();
        assert_eq!(r.op, "lease-keepalive-once");
        assert_eq!(server.count(|b| matches!(b, Body::LeaseKeepAlive(_))), 20);
        // Each stream is cancelled after its answer (the last cancels may
        // still be on their way).
        let wait = std::time::Instant::now();
        while server.count(|b| matches!(b, Body::CancelStream(_))) < 20 && wait.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server.count(|b| matches!(b, Body::CancelStream(_))), 20);
    }

    #[test]
    fn a_scale_run_renews_every_lease_and_counts_the_lost_ones() {
        let server = lease_server(2);
        let a = args(
            &[
                "--conns",
                "2",
                "--clients",
                "3",
                "lease-scale",
                "--leases",
                "40",
                "--ttl",
                "2",
                "--streams",
                "3",
                "--window",
                "5",
                "--duration-secs",
                "1",
            ],
            &server.endpoint(),
        );
        a.validate().unwrap();
        let args::Op::LeaseScale { scale, .. } = &a.op else { unreachable!() };
        let r = lease::scale(&a, scale, Duration::from_millis(1500), 2).unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.json_line()).unwrap();
        assert_eq!(v["leases"], 40);
        assert_eq!(server.count(|b| matches!(b, Body::LeaseGrant(_))), 40);
        // A renewal per second (TTL 2, 2 per TTL) for 1.5 s: every lease
        // once or twice, and the odd half answered with TTL 0.
        let renewals = server.count(|b| matches!(b, Body::LeaseKeepAlive(_))) as u64;
        assert!((40..=80).contains(&renewals), "{renewals}");
        assert_eq!(r.total, renewals);
        let odd = server.count(|b| matches!(b, Body::LeaseKeepAlive(k) if k.id % 2 == 1)) as u64;
        assert_eq!(v["ttl0_answers"].as_u64().unwrap(), odd, "{v}");
        assert_eq!(v["alive_at_end"], 40);
        assert_eq!(v["lost"], 0);
    }

    #[test]
    fn bad_flag_combinations_are_refused() {
        assert!(args(&["--conns", "0", "put"], "x:1").validate().is_err());
        assert!(args(&["--key-space", "2", "txn-put", "--txn-ops", "3"], "x:1").validate().is_err());
        assert!(args(&["--key-space", "3", "txn-put", "--txn-ops", "3"], "x:1").validate().is_ok());
        assert!(args(&["lease-keepalive", "--ttl", "0"], "x:1").validate().is_err());
        assert!(args(&["lease-scale", "--leases", "0"], "x:1").validate().is_err());
        assert!(args(&["lease-scale", "--renewals-per-ttl", "1"], "x:1").validate().is_err());
        assert!(args(&["lease-expiry", "--streams", "0"], "x:1").validate().is_err());
        assert!(args(&["lease-expiry", "--put-clients", "0"], "x:1").validate().is_err());
        assert!(args(&["lease-expiry", "--put-clients", "0", "--put-rate", "0"], "x:1").validate().is_ok());
        assert!(args(&["lease-expiry", "--poll-ms", "0"], "x:1").validate().is_err());
    }

    #[test]
    fn lease_flags_parse_with_etcds_defaults() {
        let a = args(&["--clients", "100", "--total", "1000", "lease-keepalive"], "x:1");
        assert!(matches!(a.op, args::Op::LeaseKeepalive { ttl: 100, stream_per_keep_alive: false }));
        assert_eq!(a.op_name(), "lease-keepalive");
        let s = args(&["lease-scale", "--leases", "5000", "--ttl", "30", "--window", "10"], "x:1");
        let args::Op::LeaseScale { scale, duration_secs, renewals_per_ttl } = &s.op else { panic!("{s:?}") };
        assert_eq!(
            (scale.leases, scale.ttl, scale.streams, scale.window, *duration_secs, *renewals_per_ttl),
            (5000, 30, 4, 10, 120, 3)
        );
        let e = args(&["lease-expiry", "--put-rate", "500", "--max-wait-secs", "9"], "x:1");
        let args::Op::LeaseExpiry { scale, put_rate, put_clients, poll_ms, max_wait_secs } = &e.op else { panic!() };
        assert_eq!((scale.leases, *put_rate, *put_clients, *poll_ms, *max_wait_secs), (100_000, 500, 10, 100, 9));
        assert_eq!(e.op_name(), "lease-expiry");
    }
}
