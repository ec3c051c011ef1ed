//! The deterministic simulation as part of the test suite: 300 seeds of 2000
//! steps each (3 and 5 voters, every fault kind). A failure names the seed
//! and the command that replays it.

use raftkv::sim::{self, SimConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const SEED_BASE: u64 = 20_261_123;
const SEEDS: u64 = 300;
const STEPS: u64 = 2000;

#[test]
fn simulation_holds_every_invariant_across_300_seeds() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let (writes, reads, leaders) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= SEEDS {
                    break;
                }
                let cfg = SimConfig { seed: SEED_BASE + i, steps: STEPS, nodes: 0 };
                match sim::run(&cfg) {
                    Ok(r) => {
                        writes.fetch_add(r.writes_acked, Ordering::Relaxed);
                        reads.fetch_add(r.reads_checked, Ordering::Relaxed);
                        leaders.fetch_add(r.terms_with_leader as u64, Ordering::Relaxed);
                    }
                    Err(f) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{f}\n  replay: scripts/simulate.sh --seed {} --steps {STEPS}", f.seed)),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {SEEDS} seeds failed:\n{}", failures.len(), failures.join("\n"));
    // The runs must have done real work, or the invariants prove nothing.
    assert!(writes.into_inner() > SEEDS * 100, "too few acknowledged writes");
    assert!(reads.into_inner() > SEEDS * 50, "too few checked reads");
    assert!(leaders.into_inner() > SEEDS * 3, "too few elections");
}
