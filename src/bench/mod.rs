//! raftkv-bench: a load generator modeled on etcd's benchmark tool.
//!
//! Owns the program's flow: parse, validate, run, print exactly one JSON
//! line on stdout (`op, conns, clients, total, secs, ops_per_sec, p50_ms,
//! p90_ms, p99_ms, p999_ms, max_ms, errors`). Layout: `args` (flags),
//! `workload` (requests), `driver` (one connection's clients), `runner`
//! (the connections' threads and merging their measurements), `report`
//! (histogram and the JSON line), `watch` (the watch workloads).

pub mod args;
pub mod driver;
pub mod report;
pub mod runner;
pub mod watch;
pub mod workload;

use clap::Parser;
use std::io::{IsTerminal, Write};

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

    #[test]
    fn bad_flag_combinations_are_refused() {
        assert!(args(&["--conns", "0", "put"], "x:1").validate().is_err());
        assert!(args(&["--key-space", "2", "txn-put", "--txn-ops", "3"], "x:1").validate().is_err());
        assert!(args(&["--key-space", "3", "txn-put", "--txn-ops", "3"], "x:1").validate().is_ok());
    }
}
