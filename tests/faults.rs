//! Fault injection on real processes: a three-member cluster of `raftkv`
//! binaries, every peer link through a proxy the test controls, a
//! history-recording workload checked for linearizability, and every
//! acknowledged write read back at the end from every member.
//!
//! Each scenario prints its seed; `RAFTKV_FAULT_SEED=<seed>` replays its
//! choices (timings of faults, victims, operations, the proxies' drops).
//! Scenarios run one at a time (a lock), since each starts a cluster and the
//! timing assertions need the machine.

mod common;

use common::cluster::{wait_for, Client, Cluster, Opts};
use common::linearizability::{Input, Op, Output};
use common::proxy::LinkPolicy;
use common::workload::{
    check_history, execute, final_reads, record, unique_value, verify_durable, Clock, History, Outcome, Workload,
    WorkloadOpts,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use raftkv::proto::etcdserverpb::PutRequest;
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn seed(scenario: &str) -> u64 {
    let seed = std::env::var("RAFTKV_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("{scenario}: seed {seed} (replay with RAFTKV_FAULT_SEED={seed})");
    seed
}

/// The end of every scenario: heal, converge, read every key (recorded),
/// check the history, read every acknowledged write back from every member
/// at its revision, compare HashKV, and look for panics in the logs.
fn finish(cluster: &mut Cluster, mut history: History, keys: &[String], clock: Clock, seed: u64, scenario: &str) {
    cluster.net.heal();
    cluster.check_running();
    cluster.wait_converged(Duration::from_secs(30));
    history.extend(final_reads(&cluster.endpoints(), keys, clock, 999));
    check_history(&history, seed, scenario);
    cluster.wait_converged(Duration::from_secs(30));
    verify_durable(cluster, &history.acked, seed);
    cluster.assert_same_hash_kv();
    cluster.check_running();
    cluster.check_logs();
}

/// Sends a fresh put to every member in `members` every 100 ms until one is
/// acknowledged; returns when that was, with the puts recorded (each on its
/// own key, so they only add to the durability check). Outstanding puts are
/// then awaited for their outcome.
fn probe_first_write(cluster: &Cluster, members: &[usize], clock: Clock, client: usize, within: Duration) -> (Instant, History) {
    let start = Instant::now();
    let mut h = History::default();
    let mut conns: Vec<Option<Client>> = members.iter().map(|_| None).collect();
    // request id -> (member slot, key, value, call)
    let mut pending: Vec<(usize, u64, String, String, u64)> = Vec::new();
    let mut next_send = Instant::now();
    let mut first_ok: Option<Instant> = None;
    let mut n = 0;
    let deadline = start + within;
    let wait_outstanding = Duration::from_millis(cluster.opts.request_timeout_ms + 2000);
    loop {
        let now = Instant::now();
        if first_ok.is_none() && now >= next_send {
            assert!(now < deadline, "no write acknowledged within {within:?}");
            next_send = now + Duration::from_millis(100);
            for (slot, &i) in members.iter().enumerate() {
                if conns[slot].is_none() {
                    conns[slot] = Client::connect(cluster.members[i].client, Duration::from_millis(200)).ok();
                }
                let Some(c) = conns[slot].as_mut() else { continue };
                n += 1;
                let key = format!("probe/{client}/{n}");
                let value = unique_value();
                let call = clock.now();
                match c.send(Req::Put(PutRequest { key: key.clone().into(), value: value.clone().into(), ..Default::default() })) {
                    Ok(id) => pending.push((slot, id, key, value, call)),
                    Err(_) => {
                        h.ops.push(Op { client, key, input: Input::Put(value), output: Output::Unknown, call, ret: call });
                        conns[slot] = None;
                    }
                }
            }
        }
        if pending.is_empty() && first_ok.is_some() {
            break;
        }
        if first_ok.is_some_and(|t| now >= t + wait_outstanding) {
            break;
        }
        // Collect answers for a short while on every connection.
        for slot in 0..conns.len() {
            let Some(c) = conns[slot].as_mut() else { continue };
            match c.recv(Instant::now() + Duration::from_millis(10)) {
                Ok(Some(r)) => {
                    let ret = clock.now();
                    let Some(pos) = pending.iter().position(|p| p.0 == slot && p.1 == r.request_id) else { continue };
                    let (_, _, key, value, call) = pending.swap_remove(pos);
                    let outcome = match r.body {
                        Some(Resp::Put(p)) => {
                            first_ok.get_or_insert_with(Instant::now);
                            Outcome::Done(Output::Ok, p.header.map(|h| h.revision))
                        }
                        other => Outcome::Unknown(format!("{other:?}")),
                    };
                    record(&mut h, client, &key, Input::Put(value), call, ret, &outcome);
                }
                Ok(None) => {}
                Err(_) => {
                    conns[slot] = None;
                    for p in pending.iter().filter(|p| p.0 == slot) {
                        h.ops.push(Op { client, key: p.2.clone(), input: Input::Put(p.3.clone()), output: Output::Unknown, call: p.4, ret: p.4 });
                    }
                    pending.retain(|p| p.0 != slot);
                }
            }
        }
    }
    for p in pending {
        h.ops.push(Op { client, key: p.2, input: Input::Put(p.3), output: Output::Unknown, call: p.4, ret: p.4 });
    }
    (first_ok.expect("a write was acknowledged"), h)
}

/// SIGKILL the leader under write load: a new leader serves writes within
/// 3 s (default timings), every acknowledged write is present once the old
/// leader is back, and the history is linearizable.
#[test]
fn leader_killed_under_load() {
    let _serial = serial();
    let seed = seed("leader_killed_under_load");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clock = Clock::new();
    let mut cluster = Cluster::start(Opts { seed, ..Opts::default() });
    let opts = WorkloadOpts::new(seed, 3, 3);
    let (load, mut history) = Workload::start(cluster.endpoints(), opts.clone(), clock);
    load.wait_progress(20, Duration::from_secs(20), "before the kill");
    std::thread::sleep(Duration::from_millis(rng.random_range(200..1000)));

    let all: Vec<usize> = (0..cluster.len()).collect();
    let old = cluster.wait_leader(&all, Duration::from_secs(10));
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    let killed_at = Instant::now();
    cluster.kill9(old);
    let (first_ok, probes) = probe_first_write(&cluster, &survivors, clock, 100, Duration::from_secs(20));
    history.extend(probes);
    let took = first_ok - killed_at;
    println!("leader {} killed; first write acknowledged {took:?} later", cluster.members[old].name);
    assert!(took <= Duration::from_secs(3), "seed {seed}: the first write after killing the leader took {took:?}");
    let new = cluster.wait_leader(&survivors, Duration::from_secs(10));
    assert_ne!(new, old);

    load.wait_progress(10, Duration::from_secs(20), "with the new leader");
    cluster.restart(old);
    load.wait_progress(10, Duration::from_secs(20), "after the old leader restarted");
    history.extend(load.stop());
    finish(&mut cluster, history, &opts.keys, clock, seed, "leader_killed_under_load");
}
