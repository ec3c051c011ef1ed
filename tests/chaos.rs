//! Randomized chaos on real processes: a three-member cluster under a
//! history-recording workload while random faults come and go: SIGKILL or
//! SIGTERM of a member or of the leader (then a restart), all members killed
//! at once, a member isolated, one directed link cut (asymmetric), the
//! leader partitioned away, lossy and slow links. Small snapshot settings so
//! lagging members catch up by snapshot now and then.
//!
//! At the end everything is healed and restarted: the cluster must make
//! progress again, the history must be linearizable, every acknowledged
//! write must be on every member at its revision, HashKV must agree and no
//! log may show a panic.
//!
//! `RAFTKV_FAULT_SEED` replays a run's choices; `RAFTKV_CHAOS_SECS` sets
//! how long faults are injected (default 20). `scripts/chaos.sh` runs it in
//! a loop with fresh seeds.

mod common;

use common::cluster::{Cluster, Opts};
use common::proxy::LinkPolicy;
use common::workload::{check_history, final_reads, verify_durable, Clock, Workload, WorkloadOpts};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

#[test]
fn chaos() {
    let seed: u64 = std::env::var("RAFTKV_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let secs: u64 = std::env::var("RAFTKV_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    println!("chaos: seed {seed} (replay with RAFTKV_FAULT_SEED={seed}), {secs} s of faults");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clock = Clock::new();
    let mut cluster =
        Cluster::start(Opts { seed, snapshot_count: Some(300), snapshot_catchup_entries: Some(50), ..Opts::default() });
    let n = cluster.len();
    let all: Vec<usize> = (0..n).collect();
    let opts = WorkloadOpts::new(seed, 3, 4);
    let (load, mut history) = Workload::start(cluster.endpoints(), opts.clone(), clock);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut step = 0;
    while Instant::now() < end {
        step += 1;
        let hold = Duration::from_millis(rng.random_range(300..3000));
        let leader = cluster.leader_among(&all).ok();
        let victim = match (rng.random_bool(0.5), leader) {
            (true, Some(l)) => l,
            _ => rng.random_range(0..n),
        };
        let name = cluster.members[victim].name.clone();
        let leader_name = leader.map_or("none".to_string(), |l| cluster.members[l].name.clone());
        match rng.random_range(0..8) {
            0 | 1 => {
                println!("step {step}: SIGKILL {name} (leader {leader_name}) for {hold:?}");
                cluster.kill9(victim);
                std::thread::sleep(hold);
                cluster.restart(victim);
            }
            2 => {
                println!("step {step}: SIGTERM {name} (leader {leader_name}) for {hold:?}");
                cluster.sigterm(victim);
                std::thread::sleep(hold);
                cluster.restart(victim);
            }
            3 => {
                println!("step {step}: SIGKILL every member for {hold:?}");
                for i in 0..n {
                    cluster.kill9(i);
                }
                std::thread::sleep(hold / 4);
                for i in 0..n {
                    cluster.spawn(i);
                }
            }
            4 => {
                println!("step {step}: isolate {name} (leader {leader_name}) for {hold:?}");
                cluster.net.isolate(victim);
                std::thread::sleep(hold);
                cluster.net.heal();
            }
            5 => {
                let to = (victim + rng.random_range(1..n)) % n;
                println!("step {step}: cut the link {name} -> {} for {hold:?}", cluster.members[to].name);
                cluster.net.set(victim, to, LinkPolicy::CUT);
                std::thread::sleep(hold);
                cluster.net.heal();
            }
            6 => {
                let drop = rng.random_range(0.0..0.3);
                let delay = Duration::from_millis(rng.random_range(0..80));
                println!("step {step}: every link drops {drop:.2} and delays {delay:?} for {hold:?}");
                cluster.net.set_all(LinkPolicy::lossy(drop, delay));
                std::thread::sleep(hold);
                cluster.net.heal();
            }
            _ => {
                println!("step {step}: quiet for {hold:?}");
                std::thread::sleep(hold);
            }
        }
        cluster.check_running();
    }
    cluster.net.heal();
    cluster.wait_leader(&all, Duration::from_secs(30));
    load.wait_progress(10, Duration::from_secs(30), "after the faults stopped");
    history.extend(load.stop());
    cluster.wait_converged(Duration::from_secs(30));
    history.extend(final_reads(&cluster.endpoints(), &opts.keys, clock, 999));
    check_history(&history, seed, "chaos");
    verify_durable(&cluster, &history.acked, seed);
    cluster.assert_same_hash_kv();
    cluster.check_running();
    cluster.check_logs();
    println!("chaos: {step} faults, {}", history.summary());
}
