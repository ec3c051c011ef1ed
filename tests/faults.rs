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
    check_history, final_reads, record, unique_value, verify_durable, Clock, History, Outcome, Workload, WorkloadOpts,
};
use raftkv::proto::etcdserverpb::PutRequest;
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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
fn probe_first_write(
    cluster: &Cluster,
    members: &[usize],
    clock: Clock,
    client: usize,
    within: Duration,
) -> (Instant, History) {
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
                match c.send(Req::Put(PutRequest {
                    key: key.clone().into(),
                    value: value.clone().into(),
                    ..Default::default()
                })) {
                    Ok(id) => pending.push((slot, id, key, value, call)),
                    Err(_) => {
                        h.ops.push(Op {
                            client,
                            key,
                            input: Input::Put(value),
                            output: Output::Unknown,
                            call,
                            ret: call,
                        });
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
        // Collect answers for a short while on every connection (indexed:
        // a dead connection's slot is cleared inside the loop).
        #[allow(clippy::needless_range_loop)]
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
                        h.ops.push(Op {
                            client,
                            key: p.2.clone(),
                            input: Input::Put(p.3.clone()),
                            output: Output::Unknown,
                            call: p.4,
                            ret: p.4,
                        });
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

    let all = cluster.all();
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

/// Kill (or stop with SIGTERM) and restart each member in turn, then all
/// three at once, twice over, under load: no acknowledged write is lost, the
/// history is linearizable, every member comes back (SIGKILL finds it
/// running, SIGTERM exits 0) and no log shows a panic.
#[test]
fn members_killed_and_restarted_in_turn() {
    let _serial = serial();
    let seed = seed("members_killed_and_restarted_in_turn");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clock = Clock::new();
    let mut cluster = Cluster::start(Opts { seed, ..Opts::default() });
    let opts = WorkloadOpts::new(seed, 3, 3);
    let (load, mut history) = Workload::start(cluster.endpoints(), opts.clone(), clock);
    load.wait_progress(20, Duration::from_secs(20), "before the first kill");
    let all = cluster.all();
    for round in 0..2 {
        for i in 0..cluster.len() {
            std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
            let name = cluster.members[i].name.clone();
            if rng.random_bool(0.25) {
                println!("round {round}: SIGTERM {name}");
                cluster.sigterm(i);
            } else {
                println!("round {round}: SIGKILL {name}");
                cluster.kill9(i);
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(100..800)));
            cluster.restart(i);
            cluster.wait_leader(&all, Duration::from_secs(20));
            load.wait_progress(5, Duration::from_secs(20), &format!("round {round}, after restarting {name}"));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
        println!("round {round}: SIGKILL all");
        for i in 0..cluster.len() {
            cluster.kill9(i);
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..500)));
        for i in 0..cluster.len() {
            cluster.spawn(i);
        }
        cluster.wait_leader(&all, Duration::from_secs(30));
        load.wait_progress(5, Duration::from_secs(20), &format!("round {round}, after restarting every member"));
    }
    history.extend(load.stop());
    assert!(cluster.members.iter().all(|m| m.starts == 5), "every member was restarted four times");
    finish(&mut cluster, history, &opts.keys, clock, seed, "members_killed_and_restarted_in_turn");
}

/// One pinned read: (call, ret, the value read or the error).
type PinnedRead = (u64, Option<u64>, Result<Option<String>, String>);

/// Linearizable reads sent to one member, pipelined every 100 ms, until
/// stopped; then every answer is awaited. Returns (call, ret, outcome) of
/// each read, recorded as client `client` into a history too.
struct PinnedReader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(History, Vec<PinnedRead>)>,
}

impl PinnedReader {
    fn start(
        addr: std::net::SocketAddr,
        keys: Vec<String>,
        clock: Clock,
        client: usize,
        wait: Duration,
    ) -> PinnedReader {
        use raftkv::proto::etcdserverpb::RangeRequest;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut h = History::default();
            let mut seen = Vec::new();
            let mut c = Client::connect(addr, Duration::from_secs(1)).expect("connect the pinned reader");
            let mut pending: Vec<(u64, String, u64)> = Vec::new();
            let mut n = 0usize;
            let mut next = Instant::now();
            let mut stopped_at: Option<Instant> = None;
            loop {
                if stopped_at.is_none() && flag.load(Ordering::SeqCst) {
                    stopped_at = Some(Instant::now());
                }
                if stopped_at.is_none() && Instant::now() >= next {
                    next += Duration::from_millis(100);
                    let key = keys[n % keys.len()].clone();
                    n += 1;
                    let call = clock.now();
                    let id = c
                        .send(Req::Range(RangeRequest { key: key.clone().into(), ..Default::default() }))
                        .expect("the pinned reader's connection broke");
                    pending.push((id, key, call));
                }
                if stopped_at.is_some_and(|t| pending.is_empty() || t.elapsed() > wait) {
                    break;
                }
                match c.recv(Instant::now() + Duration::from_millis(20)) {
                    Ok(Some(r)) => {
                        let ret = clock.now();
                        let Some(pos) = pending.iter().position(|p| p.0 == r.request_id) else { continue };
                        let (_, key, call) = pending.swap_remove(pos);
                        let result = match r.body {
                            Some(Resp::Range(rr)) => {
                                let v = rr.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                                let outcome = Outcome::Done(Output::Value(v.clone()), None);
                                record(&mut h, client, &key, Input::Get, call, ret, &outcome);
                                Ok(v)
                            }
                            other => Err(format!("{other:?}")),
                        };
                        seen.push((call, Some(ret), result));
                    }
                    Ok(None) => {}
                    Err(e) => panic!("the pinned reader's connection broke: {e}"),
                }
            }
            for (_, _, call) in pending {
                seen.push((call, None, Err("no answer".into())));
            }
            (h, seen)
        });
        PinnedReader { stop, thread }
    }

    fn stop(self) -> (History, Vec<PinnedRead>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

/// Cut the leader off from both followers under load: it steps down within
/// two election timeouts (check-quorum), linearizable reads sent to it fail
/// or time out instead of answering, the majority elects a leader and keeps
/// serving; the isolated member's term does not move (pre-vote), and after
/// healing it rejoins without disrupting the leader (the majority's term is
/// unchanged). The history is linearizable and nothing acknowledged is lost.
#[test]
fn leader_partitioned_from_followers() {
    let _serial = serial();
    let seed = seed("leader_partitioned_from_followers");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clock = Clock::new();
    let mut cluster = Cluster::start(Opts { seed, ..Opts::default() });
    let election = Duration::from_millis(cluster.opts.election_ms);
    let opts = WorkloadOpts::new(seed, 3, 3);
    let (load, mut history) = Workload::start(cluster.endpoints(), opts.clone(), clock);
    load.wait_progress(20, Duration::from_secs(20), "before the partition");
    std::thread::sleep(Duration::from_millis(rng.random_range(0..500)));

    let all = cluster.all();
    let old = cluster.wait_leader(&all, Duration::from_secs(10));
    let old_id = cluster.members[old].id;
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    let term_before = cluster.status(old).expect("status").raft_term;
    let cut_at = Instant::now();
    cluster.net.isolate(old);
    let wait_reads = Duration::from_millis(cluster.opts.request_timeout_ms + 3000);
    let reader = PinnedReader::start(cluster.members[old].client, opts.keys.clone(), clock, 200, wait_reads);

    // Check-quorum: the isolated leader steps down.
    let stepped_down = wait_for(election * 4, "the isolated leader to step down", || {
        let s = cluster.status(old)?;
        if s.leader != old_id {
            Ok(Instant::now())
        } else {
            Err(format!("{} still leads at term {}", cluster.members[old].name, s.raft_term))
        }
    });
    let took = stepped_down - cut_at;
    println!("isolated leader {} stepped down after {took:?}", cluster.members[old].name);
    // Two election timeouts, plus one Status round and a tick's scheduling.
    let bound = election * 2 + Duration::from_millis(250);
    assert!(took <= bound, "seed {seed}: the isolated leader stepped down after {took:?} (bound {bound:?})");

    let new = cluster.wait_leader(&majority, Duration::from_secs(10));
    let new_id = cluster.members[new].id;
    let term_majority = cluster.status(new).expect("status").raft_term;
    assert!(term_majority > term_before, "the new leader's term {term_majority} is above {term_before}");
    load.wait_progress(10, Duration::from_secs(20), "on the majority side during the partition");
    std::thread::sleep(election * 2);
    let (reads, seen) = reader.stop();
    // Pre-vote: isolated, it never raised its term.
    let term_isolated = cluster.status(old).expect("status").raft_term;
    assert_eq!(
        term_isolated,
        term_before,
        "seed {seed}: the isolated member's term moved from {term_before} to {term_isolated} (pre-vote should prevent it)"
    );
    let answered: Vec<_> = seen.iter().filter(|r| r.2.is_ok()).collect();
    println!(
        "{} linearizable reads sent to the isolated member: {} answered with a value, {} failed, {} unanswered",
        seen.len(),
        answered.len(),
        seen.iter().filter(|r| r.1.is_some() && r.2.is_err()).count(),
        seen.iter().filter(|r| r.1.is_none()).count()
    );
    assert!(seen.len() >= 10, "the pinned reader sent only {} reads", seen.len());
    assert!(answered.is_empty(), "seed {seed}: the isolated member answered linearizable reads: {answered:?}");
    history.extend(reads);

    cluster.net.heal();
    let healed_at = Instant::now();
    wait_for(Duration::from_secs(10), "the old leader to follow the new one", || {
        let s = cluster.status(old)?;
        if s.leader == new_id {
            Ok(())
        } else {
            Err(format!("it names {:x} at term {}", s.leader, s.raft_term))
        }
    });
    println!("old leader rejoined {:?} after healing", healed_at.elapsed());
    // Give a disruptive rejoin every chance to show.
    std::thread::sleep(election * 2);
    for &i in &all {
        let s = cluster.status(i).expect("status");
        assert_eq!(
            (s.leader, s.raft_term),
            (new_id, term_majority),
            "seed {seed}: {} after the rejoin: leader {:x} term {} (the leader or term changed)",
            cluster.members[i].name,
            s.leader,
            s.raft_term
        );
    }
    load.wait_progress(5, Duration::from_secs(20), "after healing");
    history.extend(load.stop());
    finish(&mut cluster, history, &opts.keys, clock, seed, "leader_partitioned_from_followers");
}

/// 10% of frames dropped and every frame delayed 50 ms, on every link,
/// under load: still linearizable, nothing acknowledged lost, and progress
/// (a minimum of acknowledged writes in the run).
#[test]
fn lossy_and_slow_links() {
    let _serial = serial();
    let seed = seed("lossy_and_slow_links");
    let clock = Clock::new();
    let mut cluster = Cluster::start(Opts { seed, ..Opts::default() });
    cluster.net.set_all(LinkPolicy::lossy(0.10, Duration::from_millis(50)));
    let opts = WorkloadOpts::new(seed, 3, 3);
    let (load, mut history) = Workload::start(cluster.endpoints(), opts.clone(), clock);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(12));
    let acked = load.acked();
    history.extend(load.stop());
    let (frames, dropped) = (cluster.net.frames(), cluster.net.dropped());
    println!(
        "lossy links: {acked} writes acknowledged in {:?}; {dropped} of {frames} frames dropped",
        started.elapsed()
    );
    assert!(acked >= 40, "seed {seed}: only {acked} writes acknowledged in 12 s over lossy links");
    assert!(frames > 200 && dropped * 20 > frames, "seed {seed}: the proxies dropped {dropped} of {frames} frames");
    finish(&mut cluster, history, &opts.keys, clock, seed, "lossy_and_slow_links");
}

/// The highest "compacted the raft log up to N" in member `i`'s log.
fn compacted_to(cluster: &Cluster, i: usize) -> u64 {
    cluster
        .log_lines(i, "compacted the raft log up to ")
        .iter()
        .filter_map(|l| l.split("up to ").nth(1)?.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Puts fresh keys, 32 at a time, until the leader compacted its log past
/// `index`; the acknowledged puts are returned for the durability check.
fn write_until_compacted_past(cluster: &Cluster, leader: usize, index: u64, clock: Clock) -> History {
    let mut h = History::default();
    let mut c = Client::connect(cluster.members[leader].client, Duration::from_secs(1)).expect("connect the leader");
    let mut n = 0;
    wait_for(Duration::from_secs(60), format!("the leader to compact its log past {index}"), || {
        let mut sent = Vec::new();
        for _ in 0..32 {
            n += 1;
            let (key, value) = (format!("bulk/{n}"), unique_value());
            let id = c
                .send(Req::Put(PutRequest {
                    key: key.clone().into(),
                    value: value.clone().into(),
                    ..Default::default()
                }))
                .map_err(|e| e.to_string())?;
            sent.push((id, key, value, clock.now()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..sent.len() {
            let r = c.recv(deadline)?.ok_or("no answer to a bulk put")?;
            let (_, key, value, call) = sent.iter().find(|s| s.0 == r.request_id).cloned().ok_or("unknown answer")?;
            let outcome = match r.body {
                Some(Resp::Put(p)) => Outcome::Done(Output::Ok, p.header.map(|h| h.revision)),
                other => return Err(format!("bulk put failed: {other:?}")),
            };
            record(&mut h, 300, &key, Input::Put(value), call, clock.now(), &outcome);
        }
        let to = compacted_to(cluster, leader);
        if to > index {
            Ok(())
        } else {
            Err(format!("compacted up to {to}"))
        }
    });
    h
}

/// Stops a follower, writes until the leader compacted past it, restarts
/// it (after wiping its data directory if `wipe`), and expects it to catch
/// up by snapshot and end with the same HashKV as the others.
fn follower_catches_up(scenario: &str, wipe: bool) {
    let seed = seed(scenario);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clock = Clock::new();
    let mut cluster =
        Cluster::start(Opts { seed, snapshot_count: Some(100), snapshot_catchup_entries: Some(20), ..Opts::default() });
    let opts = WorkloadOpts { think: Duration::from_millis(10), ..WorkloadOpts::new(seed, 2, 3) };
    let (load, mut history) = Workload::start(cluster.endpoints(), opts.clone(), clock);
    load.wait_progress(10, Duration::from_secs(20), "before stopping the follower");
    let all = cluster.all();
    let leader = cluster.wait_leader(&all, Duration::from_secs(10));
    let followers: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let f = followers[rng.random_range(0..followers.len())];
    let f_index = cluster.status(f).expect("status").raft_index;
    cluster.kill9(f);
    if wipe {
        cluster.wipe(f);
    }
    println!("{} stopped at index {f_index}{}", cluster.members[f].name, if wipe { ", data wiped" } else { "" });
    history.extend(write_until_compacted_past(&cluster, leader, f_index + 1, clock));
    let compacted = compacted_to(&cluster, leader);
    println!("leader {} compacted its log up to {compacted}", cluster.members[leader].name);

    cluster.restart(f);
    let name = cluster.members[f].name.clone();
    wait_for(Duration::from_secs(30), format!("{name} to install a snapshot"), || {
        let log = cluster.log_since_start(f);
        match log.lines().find(|l| l.contains("installed a snapshot at index")) {
            Some(line) => {
                println!("{name}: {line}");
                Ok(())
            }
            None => Err(format!("log tail:\n{}", cluster.log_tail(f, 10))),
        }
    });
    let after = cluster.status(f).expect("status").raft_applied_index;
    assert!(after > compacted, "{name} applied index {after} is not past the compaction point {compacted}");
    load.wait_progress(5, Duration::from_secs(20), "after the follower caught up");
    history.extend(load.stop());
    finish(&mut cluster, history, &opts.keys, clock, seed, scenario);
}

/// A follower stopped while the leader compacts past it catches up by
/// snapshot and ends with the same HashKV as the others.
#[test]
fn follower_catches_up_by_snapshot() {
    let _serial = serial();
    follower_catches_up("follower_catches_up_by_snapshot", false);
}

/// A follower whose data directory is deleted while it is down comes back
/// as a brand-new member of the initial cluster with the same id, and
/// rejoins by snapshot.
#[test]
fn wiped_follower_rejoins_by_snapshot() {
    let _serial = serial();
    follower_catches_up("wiped_follower_rejoins_by_snapshot", true);
}

/// A follower whose data directory is deleted while it is down, with the
/// leader's log still holding everything after the follower's last entry
/// (no compaction past it): it must catch up all the same.
#[test]
fn wiped_follower_rejoins_without_compaction() {
    let _serial = serial();
    let scenario = "wiped_follower_rejoins_without_compaction";
    let seed = seed(scenario);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clock = Clock::new();
    let mut cluster = Cluster::start(Opts { seed, ..Opts::default() });
    let opts = WorkloadOpts { think: Duration::from_millis(10), ..WorkloadOpts::new(seed, 2, 3) };
    let (load, mut history) = Workload::start(cluster.endpoints(), opts.clone(), clock);
    load.wait_progress(20, Duration::from_secs(20), "before stopping the follower");
    let all = cluster.all();
    let leader = cluster.wait_leader(&all, Duration::from_secs(10));
    let followers: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let f = followers[rng.random_range(0..followers.len())];
    let f_index = cluster.status(f).expect("status").raft_index;
    cluster.kill9(f);
    cluster.wipe(f);
    load.wait_progress(10, Duration::from_secs(20), "while the follower is down");
    println!("{} stopped at index {f_index} and wiped", cluster.members[f].name);
    cluster.restart(f);
    let name = cluster.members[f].name.clone();
    wait_for(Duration::from_secs(20), format!("the wiped {name} to catch up with the leader"), || {
        let (s, l) = (cluster.status(f)?, cluster.status(leader)?);
        if s.raft_applied_index + 5 >= l.raft_applied_index && s.raft_applied_index > f_index {
            Ok(())
        } else {
            Err(format!(
                "{name} applied {} (leader {}); log tail:\n{}",
                s.raft_applied_index,
                l.raft_applied_index,
                cluster.log_tail(f, 8)
            ))
        }
    });
    history.extend(load.stop());
    finish(&mut cluster, history, &opts.keys, clock, seed, scenario);
}

/// A wiped member is not just behind: it forgot entries it acknowledged.
/// A write acknowledged by the leader and one follower (the third member cut
/// off) must survive that follower's data directory being wiped and the old
/// leader going away: the remaining majority (the wiped member and the
/// stale one) must not elect a leader without it.
#[test]
fn wiped_member_keeps_acknowledged_writes() {
    let _serial = serial();
    let scenario = "wiped_member_keeps_acknowledged_writes";
    let seed = seed(scenario);
    let clock = Clock::new();
    let mut cluster = Cluster::start(Opts { seed, ..Opts::default() });
    let all = cluster.all();
    let a = cluster.wait_leader(&all, Duration::from_secs(10));
    let (b, c) = (all[(a + 1) % 3], all[(a + 2) % 3]);
    let keys = vec!["lost/0".to_string()];
    let mut history = common::workload::init_keys(&[cluster.members[a].client], &keys, clock, 0);
    cluster.wait_converged(Duration::from_secs(10));
    // C falls behind; A and B acknowledge a write.
    cluster.net.isolate(c);
    let acked = common::workload::init_keys(&[cluster.members[a].client], &keys, clock, 1);
    assert_eq!(acked.acked.len(), 1, "the write was acknowledged by A and B");
    history.extend(acked.clone());
    // B loses its disk; A goes away; B and C are reconnected.
    cluster.kill9(b);
    cluster.wipe(b);
    cluster.kill9(a);
    cluster.net.heal();
    cluster.restart(b);
    let survivors = vec![b, c];
    // Either they refuse to elect a leader without the write, or the leader
    // they elect has it; watch for a while, then bring A back.
    let watch = Instant::now() + Duration::from_secs(6);
    let mut elected = None;
    while Instant::now() < watch && elected.is_none() {
        elected = cluster.leader_among(&survivors).ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("without A, B (wiped) and C elected {:?}", elected.map(|i| cluster.members[i].name.clone()));
    cluster.restart(a);
    cluster.wait_converged(Duration::from_secs(30));
    history.extend(final_reads(&cluster.endpoints(), &keys, clock, 2));
    verify_durable(&cluster, &acked.acked, seed);
    check_history(&history, seed, scenario);
}
