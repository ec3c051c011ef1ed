//! Runs a workload: `conns` TCP connections spread over the endpoints, each
//! driven by one thread (`driver`) carrying its share of the `clients`
//! closed-loop clients, `total` requests handed out by a shared counter.
//!
//! Owns the connections' threads, the progress bar and merging their
//! latency histograms (one per connection, so memory does not grow with the
//! number of requests). Never formats results.

use super::args::BenchArgs;
use super::driver::{self, ConnOutcome, Driver};
use super::report::{Latencies, Report};
use super::workload::Workload;
use crate::client::ClientError;
use crate::proto::raftkvpb::client_request::Body;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// A finished run.
pub struct Outcome {
    pub report: Report,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<ClientError>,
}

fn progress_bar(total: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style);
    }
    bar
}

/// Runs the benchmark described by `args`.
pub fn run(args: &BenchArgs, show_progress: bool) -> Result<Outcome, ClientError> {
    let c = &args.common;
    let endpoints: Vec<String> = c.endpoints.iter().filter(|e| !e.trim().is_empty()).cloned().collect();
    if endpoints.is_empty() {
        return Err(ClientError::InvalidEndpoint(String::new()));
    }
    let dial_timeout = Duration::from_millis(c.dial_timeout_ms);
    let mut sockets = (0..c.conns)
        .map(|i| driver::dial(&endpoints[i % endpoints.len()], dial_timeout))
        .collect::<Result<Vec<_>, _>>()?;
    let workload = Workload::new(args);
    let request_timeout = Duration::from_millis(c.request_timeout_ms);
    if let (Some(put), Some(first)) = (workload.preload(), sockets.first_mut()) {
        driver::call_once(first, Body::Put(put), request_timeout)?;
    }
    let next = AtomicU64::new(0);
    let bar = progress_bar(c.total, show_progress);
    let shared = driver::Shared { workload: &workload, next: &next, total: c.total, request_timeout, progress: &bar };
    let started = Instant::now();
    let outcomes: Vec<ConnOutcome> = std::thread::scope(|s| {
        let shared = &shared;
        let handles: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                // The clients spread over the connections as evenly as they go.
                let clients = c.clients / c.conns + usize::from(i < c.clients % c.conns);
                let rng = ChaCha8Rng::seed_from_u64(i as u64);
                std::thread::Builder::new()
                    .name(format!("bench-conn-{i}"))
                    .spawn_scoped(s, move || Driver::new(shared, socket, clients, rng).run())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| failed_connection("a connection thread panicked")),
                Err(e) => failed_connection(&format!("could not start a connection thread: {e}")),
            })
            .collect()
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let mut all = Latencies::new();
    let mut errors = 0;
    let mut first_error = None;
    for o in outcomes {
        all.merge(&o.latencies);
        errors += o.errors;
        first_error = first_error.or(o.first_error);
    }
    let report = Report::new(args.op_name(), c.conns, c.clients, c.total, elapsed, &all, errors);
    Ok(Outcome { report, first_error })
}

/// A connection that never ran: its share of requests went to the others.
fn failed_connection(reason: &str) -> ConnOutcome {
    eprintln!("raftkv-bench: {reason}");
    ConnOutcome::default()
}
