//! Runs the deterministic Raft simulation over a range of seeds and prints
//! one summary line: `simulation: N seeds, M steps each, F failures`.
//! A failing seed is printed with the command that replays it exactly.

use clap::Parser;
use raftkv::sim::{self, SimConfig, SimReport};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The seed base used when none is given, so runs are comparable.
const DEFAULT_SEED_BASE: u64 = 20_261_123;

#[derive(Parser, Debug)]
#[command(name = "raftkv-sim", about = "Deterministic simulation of Raft clusters under faults")]
struct Args {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Steps (ticks) per seed before faults are healed.
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// First seed; seeds S..S+N are run.
    #[arg(long, default_value_t = DEFAULT_SEED_BASE)]
    seed_base: u64,
    /// Replay exactly one seed (overrides --seeds and --seed-base).
    #[arg(long)]
    seed: Option<u64>,
    /// Initial voters (3 or 5); by default each seed picks.
    #[arg(long, default_value_t = 0)]
    nodes: usize,
    /// Worker threads (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one line per seed.
    #[arg(long, short)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // RUST_LOG=debug with --seed shows every event of a replayed run.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off")).init();
    let (base, count) = match args.seed {
        Some(s) => (s, 1),
        None => (args.seed_base, args.seeds),
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let next = AtomicU64::new(0);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let totals: Mutex<SimReport> = Mutex::new(SimReport::default());

    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let seed = base + i;
                let cfg = SimConfig { seed, steps: args.steps, nodes: args.nodes };
                match sim::run(&cfg) {
                    Ok(r) => {
                        if args.verbose {
                            println!(
                                "seed {seed}: ok ({} nodes, {} leaders, {} committed, {} writes, {} reads, {} crashes, \
                                 {} snapshots, {} conf changes, converged in {} ticks)",
                                r.nodes,
                                r.terms_with_leader,
                                r.committed,
                                r.writes_acked,
                                r.reads_checked,
                                r.crashes,
                                r.snapshots_installed,
                                r.conf_changes_applied,
                                r.convergence_ticks
                            );
                        }
                        if let Ok(mut t) = totals.lock() {
                            t.committed += r.committed;
                            t.writes_acked += r.writes_acked;
                            t.reads_checked += r.reads_checked;
                            t.crashes += r.crashes;
                            t.snapshots_installed += r.snapshots_installed;
                            t.conf_changes_applied += r.conf_changes_applied;
                            t.terms_with_leader += r.terms_with_leader;
                            t.transfers += r.transfers;
                        }
                    }
                    Err(f) => {
                        let line = format!(
                            "{f}\n  replay: scripts/simulate.sh --seed {} --steps {}{}",
                            f.seed,
                            args.steps,
                            if args.nodes != 0 { format!(" --nodes {}", args.nodes) } else { String::new() }
                        );
                        eprintln!("{line}");
                        if let Ok(mut v) = failures.lock() {
                            v.push(line);
                        }
                    }
                }
            });
        }
    });

    let failed = failures.lock().map_or(0, |v| v.len());
    if let Ok(t) = totals.lock() {
        println!(
            "totals: {} elections won, {} entries committed, {} writes and {} reads checked, {} crashes, \
             {} snapshots installed, {} conf changes applied, {} transfers",
            t.terms_with_leader,
            t.committed,
            t.writes_acked,
            t.reads_checked,
            t.crashes,
            t.snapshots_installed,
            t.conf_changes_applied,
            t.transfers
        );
    }
    println!("simulation: {count} seeds, {} steps each, {failed} failures", args.steps);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
