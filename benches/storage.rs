//! Synced append rate of the durable Raft log (RocksDB): batches of 1, 16
//! and 256 entries of 256 bytes, each batch one synced write, the way one
//! `Ready` is persisted.
//!
//! Run: `cargo bench --bench storage` (figures go to docs/benchmarks.md).

use raftkv::proto::raftpb::{Entry, HardState};
use raftkv::storage::{Db, RaftLogStorage};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(3);

fn main() {
    println!("raft log on RocksDB, synced writes, 256-byte entries");
    for batch in [1usize, 16, 256] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(Db::open(dir.path()).expect("open"));
        let mut log = RaftLogStorage::open(db).expect("log");
        let mut next = 1u64;
        let mut writes = 0u64;
        let mut latencies = Vec::new();
        let start = Instant::now();
        while start.elapsed() < RUN {
            let entries: Vec<Entry> = (next..next + batch as u64)
                .map(|index| Entry { index, term: 1, data: vec![7u8; 256].into(), ..Default::default() })
                .collect();
            next += batch as u64;
            let t = Instant::now();
            log.persist(&entries, Some(HardState { term: 1, vote: 1, commit: next - 1 }), true).expect("persist");
            latencies.push(t.elapsed());
            writes += 1;
            if next > 200_000 {
                log.compact(next - 10_000).expect("compact");
            }
        }
        let secs = start.elapsed().as_secs_f64();
        latencies.sort();
        let p50 = latencies[latencies.len() / 2];
        let p99 = latencies[latencies.len() * 99 / 100];
        println!(
            "batch {batch:>3}: {:>9.0} entries/s  {:>7.0} synced writes/s  write p50 {:>6.3} ms  p99 {:>6.3} ms",
            (writes * batch as u64) as f64 / secs,
            writes as f64 / secs,
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        );
    }
}
