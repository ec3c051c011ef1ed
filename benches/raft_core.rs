//! Throughput of the consensus core alone: three in-memory nodes driven in
//! one thread, no faults, no I/O. Reports committed entries per second for
//! one proposal per round trip, many single proposals in flight, and
//! batches handed to `propose_batch`.
//!
//! Run: `cargo bench --bench raft_core` (figures go to docs/benchmarks.md).

use bytes::Bytes;
use raftkv::proto::raftpb::Message;
use raftkv::raft::{Config, MemStorage, RawNode};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const PAYLOAD: usize = 256;
const RUN: Duration = Duration::from_secs(3);

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    queue: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Cluster {
        let nodes = (1..=3u64)
            .map(|id| {
                let mut c = Config::new(id);
                c.seed = 7;
                c.max_inflight_msgs = 512;
                RawNode::new(&c, MemStorage::bootstrap(&[1, 2, 3])).expect("node")
            })
            .collect();
        let mut cl = Cluster { nodes, queue: VecDeque::new() };
        // Fresh nodes grant no vote during their first election timeout:
        // tick until node 1 wins.
        for _ in 0..1000 {
            if cl.nodes[0].is_leader() {
                return cl;
            }
            cl.nodes[0].tick().expect("tick");
            for n in cl.nodes[1..].iter_mut() {
                n.tick().expect("tick");
            }
            if cl.nodes[0].raft.leader_id == 0 {
                let _ = cl.nodes[0].campaign();
            }
            cl.settle();
        }
        panic!("no leader after 1000 ticks");
    }

    /// Carries out every Ready and delivers every message until quiet.
    fn settle(&mut self) {
        loop {
            let mut busy = false;
            for n in self.nodes.iter_mut() {
                while n.has_ready() {
                    busy = true;
                    let rd = n.ready().expect("ready");
                    self.queue.extend(rd.messages);
                    let s = n.store_mut();
                    if let Some(snap) = rd.snapshot {
                        s.apply_snapshot(snap).expect("snapshot");
                    }
                    s.append(&rd.entries).expect("append");
                    if let Some(hs) = rd.hard_state {
                        s.set_hard_state(hs);
                    }
                    self.queue.extend(rd.persisted_messages);
                    for e in &rd.committed_entries {
                        if e.entry_type() != raftkv::proto::raftpb::EntryType::EntryNormal {
                            n.apply_conf_change(e).expect("conf change");
                        }
                    }
                    n.advance().expect("advance");
                }
            }
            while let Some(m) = self.queue.pop_front() {
                busy = true;
                let to = (m.to - 1) as usize;
                self.nodes[to].step(m).expect("step");
            }
            if !busy {
                return;
            }
        }
    }

    fn committed(&self) -> u64 {
        self.nodes[0].raft.committed()
    }

    /// Compacts the logs now and then so memory stays flat over long runs.
    fn trim(&mut self) {
        for n in self.nodes.iter_mut() {
            let applied = n.raft.applied();
            if applied > 10_000 {
                let s = n.store_mut();
                let _ = s.create_snapshot(applied, None, Bytes::new());
                let _ = s.compact(applied - 1000);
            }
        }
    }
}

fn run(name: &str, per_round: usize, batched: bool) {
    let mut c = Cluster::new();
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let start_commit = c.committed();
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < RUN {
        if batched {
            c.nodes[0].propose_batch(vec![payload.clone(); per_round]).expect("propose");
        } else {
            for _ in 0..per_round {
                c.nodes[0].propose(payload.clone()).expect("propose");
            }
        }
        c.settle();
        rounds += 1;
        if rounds % 64 == 0 {
            c.trim();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let entries = c.committed() - start_commit;
    println!(
        "{name:<44} {:>12.0} entries/s  {:>10.0} rounds/s  ({entries} entries in {secs:.1} s)",
        entries as f64 / secs,
        rounds as f64 / secs
    );
}

fn main() {
    println!("raft core, 3 in-memory nodes in one thread, {PAYLOAD}-byte entries");
    run("one proposal per round (no batching)", 1, false);
    run("64 separate proposals per round", 64, false);
    run("64 proposals as one batch (propose_batch)", 64, true);
    run("256 proposals as one batch (propose_batch)", 256, true);
}
