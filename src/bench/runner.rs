//! Runs a workload: `conns` clients (one TCP connection each, spread over
//! the endpoints), `clients` threads spread over them, `total` requests
//! handed out by a shared counter.
//!
//! Owns the threads, the counters, the progress bar and the latency
//! histograms (one per connection, so memory does not grow with the
//! thread count or the number of requests). Never formats results.

use super::args::BenchArgs;
use super::report::{Latencies, Report};
use super::workload::Workload;
use crate::client::{Client, ClientError, ClientOptions};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A finished run.
pub struct Outcome {
    pub report: Report,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<ClientError>,
}

/// One client per connection, each with a single endpoint.
fn connect(args: &BenchArgs) -> Result<Vec<Client>, ClientError> {
    let c = &args.common;
    let endpoints: Vec<String> = c.endpoints.iter().filter(|e| !e.trim().is_empty()).cloned().collect();
    (0..c.conns)
        .map(|i| {
            let opts = ClientOptions {
                dial_timeout: Duration::from_millis(c.dial_timeout_ms),
                request_timeout: Duration::from_millis(c.request_timeout_ms),
                connections_per_endpoint: 1,
                // Every thread on this connection may wait at once.
                max_in_flight_per_connection: c.clients.div_ceil(c.conns).max(1),
                ..ClientOptions::default()
            };
            Client::connect(&[endpoints[i % endpoints.len()].clone()], opts)
        })
        .collect()
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
    let clients = connect(args)?;
    let workload = Workload::new(args);
    if let Some(put) = workload.preload() {
        clients[0].put(put)?;
    }
    let next = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let first_error: OnceLock<ClientError> = OnceLock::new();
    let hists: Vec<Mutex<Latencies>> = (0..c.conns).map(|_| Mutex::new(Latencies::new())).collect();
    let bar = progress_bar(c.total, show_progress);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..c.clients {
            let (client, hist) = (&clients[t % c.conns], &hists[t % c.conns]);
            let (workload, next, errors, first_error, bar) = (&workload, &next, &errors, &first_error, &bar);
            let spawned = std::thread::Builder::new().name(format!("bench-{t}")).spawn_scoped(s, move || {
                let mut rng = ChaCha8Rng::seed_from_u64(t as u64);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= c.total {
                        break;
                    }
                    let body = workload.request(i, &mut rng);
                    let sent = Instant::now();
                    match client.call(body) {
                        Ok(_) => {
                            let took = sent.elapsed();
                            hist.lock().unwrap_or_else(|p| p.into_inner()).record(took);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            let _ = first_error.set(e);
                        }
                    }
                    bar.inc(1);
                }
            });
            if let Err(e) = spawned {
                // Fewer threads than asked: the others do the work.
                eprintln!("raftkv-bench: could not start client thread {t}: {e}");
            }
        }
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let mut all = Latencies::new();
    for h in &hists {
        all.merge(&h.lock().unwrap_or_else(|p| p.into_inner()));
    }
    let report =
        Report::new(args.op_name(), c.conns, c.clients, c.total, elapsed, &all, errors.load(Ordering::Relaxed));
    Ok(Outcome { report, first_error: first_error.into_inner() })
}
