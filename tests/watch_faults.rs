//! Watch streams under real faults: a three-member cluster of `raftkv`
//! processes (every peer link through a test-controlled proxy), a
//! linearizability-checked write workload, and watchers recording their
//! streams: one pinned to each member (reconnecting to that member only,
//! resuming at the revision after the last one it received) and one
//! roaming with the client library (resuming on any member). Members are
//! killed, restarted and partitioned meanwhile.
//!
//! At the end the reference history is each member's replay from revision
//! 1; every member must give the same one, and it must hold every
//! acknowledged write at its revision with its value. Then every recorded
//! stream is checked against it: ordered, unique, atomic (a revision's
//! events in one response), no gap between the revision a stream started
//! after and the last one it received, values equal.
//!
//! The scenario prints its seed; `RAFTKV_FAULT_SEED=<seed>` replays its choices.

mod common;

use common::cluster::{Client, Cluster, Opts};
use common::workload::{check_history, final_reads, Clock, Workload, WorkloadOpts};
use raftkv::client::watch::WatchUpdate;
use raftkv::client::ClientOptions;
use raftkv::proto::etcdserverpb::{watch_request::RequestUnion, WatchCreateRequest, WatchRequest};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the workload writes under.
const PREFIX: &str = "reg/";
const PREFIX_END: &str = "reg0";

/// One event as a watcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    revision: i64,
    key: String,
    value: String,
    delete: bool,
}

/// A recorded stream: every response's events, in arrival order, and the
/// revision the stream started after (the created header's, at the first
/// connection).
#[derive(Debug, Default)]
struct Recorded {
    name: String,
    started_after: i64,
    responses: Vec<Vec<Seen>>,
    resumes: usize,
}

fn seen_of(ev: &raftkv::proto::mvccpb::Event) -> Seen {
    let kv = ev.kv.clone().unwrap_or_default();
    Seen {
        revision: kv.mod_revision,
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        delete: ev.r#type == 1,
    }
}

fn create(start: i64) -> Req {
    Req::Watch(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: PREFIX.as_bytes().to_vec().into(),
            range_end: PREFIX_END.as_bytes().to_vec().into(),
            start_revision: start,
            ..Default::default()
        })),
    })
}

/// A watcher bound to one member: when the member goes away it waits for it
/// and resumes there, from the revision after the last it received.
fn pinned(name: String, addr: SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<Recorded> {
    std::thread::spawn(move || {
        let mut rec = Recorded { name, ..Default::default() };
        let mut next = 0i64;
        let mut first = true;
        while !stop.load(Ordering::SeqCst) {
            let Ok(mut c) = Client::connect(addr, Duration::from_millis(300)) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let Ok(id) = c.send(create(next)) else { continue };
            if !first {
                rec.resumes += 1;
            }
            loop {
                if stop.load(Ordering::SeqCst) {
                    return rec;
                }
                match c.recv(Instant::now() + Duration::from_millis(200)) {
                    Ok(Some(r)) if r.request_id == id => match r.body {
                        Some(Resp::Watch(w)) if w.created => {
                            if first {
                                rec.started_after = w.header.map_or(0, |h| h.revision);
                                next = rec.started_after + 1;
                                first = false;
                            }
                            assert!(!w.canceled, "{}: create refused: {}", rec.name, w.cancel_reason);
                        }
                        Some(Resp::Watch(w)) => {
                            assert!(!w.canceled, "{}: canceled: {w:?}", rec.name);
                            if !w.events.is_empty() {
                                let evs: Vec<Seen> = w.events.iter().map(seen_of).collect();
                                next = evs.last().map_or(next, |e| e.revision + 1);
                                rec.responses.push(evs);
                            }
                        }
                        // A member stopping answers "stopped": go again.
                        _ => break,
                    },
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        rec
    })
}

/// A watcher using the client library over every endpoint.
fn roaming(endpoints: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> JoinHandle<Recorded> {
    std::thread::spawn(move || {
        let mut rec = Recorded { name: "roaming".into(), ..Default::default() };
        let eps: Vec<String> = endpoints.iter().map(|a| a.to_string()).collect();
        let opts = ClientOptions { request_timeout: Duration::from_secs(3), ..Default::default() };
        let client = raftkv::client::Client::new_lazy(&eps, opts).expect("client");
        let create = WatchCreateRequest {
            key: PREFIX.as_bytes().to_vec().into(),
            range_end: PREFIX_END.as_bytes().to_vec().into(),
            ..Default::default()
        };
        let mut w = loop {
            match client.watch(create.clone()) {
                Ok(w) => break w,
                Err(_) if !stop.load(Ordering::SeqCst) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("roaming watch never started: {e}"),
            }
        };
        rec.started_after = w.next_revision() - 1;
        while !stop.load(Ordering::SeqCst) {
            match w.next(Instant::now() + Duration::from_millis(200)) {
                Ok(Some(WatchUpdate::Events(r))) => rec.responses.push(r.events.iter().map(seen_of).collect()),
                Ok(_) => {}
                Err(e) => panic!("roaming watch failed: {e}"),
            }
            if w.take_resumed() {
                rec.resumes += 1;
            }
        }
        rec
    })
}

/// A member's replay of the whole history (from revision 1 to `until`).
fn replay(addr: SocketAddr, until: i64) -> Result<Vec<Seen>, String> {
    let mut c = Client::connect(addr, Duration::from_secs(2))?;
    let id = c.send(create(1))?;
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while all.last().map_or(0, |e: &Seen| e.revision) < until {
        match c.recv(deadline)? {
            Some(r) if r.request_id == id => match r.body {
                Some(Resp::Watch(w)) => all.extend(w.events.iter().map(seen_of)),
                other => return Err(format!("replay from {addr}: {other:?}")),
            },
            Some(_) => {}
            None => return Err(format!("replay from {addr} stopped at {:?}", all.last())),
        }
    }
    Ok(all)
}

fn check_stream(rec: &Recorded, reference: &[Seen], seed: u64) {
    let got: Vec<&Seen> = rec.responses.iter().flatten().collect();
    let Some(last) = got.last() else {
        panic!("seed {seed}: {} received no event", rec.name);
    };
    // Ordered and unique.
    for pair in got.windows(2) {
        assert!(
            pair[0].revision < pair[1].revision || (pair[0].revision == pair[1].revision && pair[0].key < pair[1].key),
            "seed {seed}: {} out of order or duplicated: {:?} then {:?}",
            rec.name,
            pair[0],
            pair[1]
        );
    }
    // Atomic: a revision never spans two responses.
    let mut revision_response: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, resp) in rec.responses.iter().enumerate() {
        for e in resp {
            let r = *revision_response.entry(e.revision).or_insert(i);
            assert_eq!(r, i, "seed {seed}: {} got revision {} split over two responses", rec.name, e.revision);
        }
    }
    // No gap, values equal: exactly the reference between the start and the last.
    let want: Vec<&Seen> =
        reference.iter().filter(|e| e.revision > rec.started_after && e.revision <= last.revision).collect();
    if got != want {
        let first_diff = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "seed {seed}: {} differs from the history at position {first_diff}: got {:?}, want {:?} ({} vs {} events)",
            rec.name,
            got.get(first_diff),
            want.get(first_diff),
            got.len(),
            want.len()
        );
    }
    println!("{}: {} events in {} responses, {} resumes", rec.name, got.len(), rec.responses.len(), rec.resumes);
}

/// A started scenario: the cluster, the workload, the watchers.
struct Scenario {
    name: &'static str,
    seed: u64,
    rng: ChaCha8Rng,
    clock: Clock,
    cluster: Cluster,
    stop: Arc<AtomicBool>,
    watchers: Vec<JoinHandle<Recorded>>,
    load: Workload,
    opts: WorkloadOpts,
    history: common::workload::History,
}

fn start(name: &'static str, cluster_opts: Opts) -> Scenario {
    let seed = std::env::var("RAFTKV_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("{name}: seed {seed} (replay with RAFTKV_FAULT_SEED={seed})");
    let rng = ChaCha8Rng::seed_from_u64(seed);
    let clock = Clock::new();
    let cluster = Cluster::start(Opts { seed, ..cluster_opts });
    let stop = Arc::new(AtomicBool::new(false));
    let mut watchers: Vec<JoinHandle<Recorded>> =
        cluster.members.iter().map(|m| pinned(format!("pinned-{}", m.name), m.client, stop.clone())).collect();
    watchers.push(roaming(cluster.endpoints(), stop.clone()));
    let opts = WorkloadOpts::new(seed, 3, 4);
    let (load, history) = Workload::start(cluster.endpoints(), opts.clone(), clock);
    load.wait_progress(30, Duration::from_secs(20), "before the faults");
    Scenario { name, seed, rng, clock, cluster, stop, watchers, load, opts, history }
}

/// Heals, checks the write history, takes each member's replay as the
/// reference (all equal, holding every acknowledged write), and checks
/// every recorded stream against it. The recorded streams, for more checks.
fn finish(s: Scenario) -> Vec<Recorded> {
    let Scenario { name, seed, clock, mut cluster, stop, watchers, load, opts, mut history, .. } = s;
    cluster.net.heal();
    cluster.check_running();
    cluster.wait_converged(Duration::from_secs(30));
    history.extend(load.stop());
    history.extend(final_reads(&cluster.endpoints(), &opts.keys, clock, 999));
    check_history(&history, seed, name);
    cluster.wait_converged(Duration::from_secs(30));
    let current = cluster.status(0).expect("status").header.expect("header").revision;
    // The streams take what is still on their way (bounded), then stop.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let recorded: Vec<Recorded> = watchers.into_iter().map(|h| h.join().expect("watcher thread")).collect();
    let reference = replay(cluster.members[0].client, current).expect("replay");
    for i in 1..cluster.len() {
        let other = replay(cluster.members[i].client, current).expect("replay");
        assert!(other == reference, "seed {seed}: member {i}'s history differs from member 0's");
    }
    for w in &history.acked {
        let found = reference.iter().find(|e| e.revision == w.revision && e.key == w.key);
        assert!(
            found.is_some_and(|e| e.value == w.value && !e.delete),
            "seed {seed}: acknowledged write {w:?} is not in the history as written: {found:?}"
        );
    }
    for rec in &recorded {
        check_stream(rec, &reference, seed);
    }
    cluster.check_logs();
    recorded
}

#[test]
fn watch_streams_survive_kills_and_partitions() {
    let mut s = start("watch_streams_survive_kills_and_partitions", Opts::default());
    for round in 0..4 {
        let all = s.cluster.all();
        let victim = s.rng.random_range(0..s.cluster.len());
        // The first round always kills, so some pinned stream must resume.
        if round == 0 || s.rng.random_bool(0.5) {
            println!("round {round}: kill -9 {} and restart it", s.cluster.members[victim].name);
            s.cluster.kill9(victim);
            s.load.wait_progress(10, Duration::from_secs(20), "with a member down");
            s.cluster.restart(victim);
            s.cluster.wait_serving(victim, Duration::from_secs(20));
        } else {
            let leader = s.cluster.wait_leader(&all, Duration::from_secs(10));
            println!("round {round}: isolate the leader {}", s.cluster.members[leader].name);
            s.cluster.net.isolate(leader);
            let rest: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
            s.cluster.wait_leader(&rest, Duration::from_secs(10));
            s.load.wait_progress(10, Duration::from_secs(20), "during the partition");
            s.cluster.net.heal();
        }
        s.load.wait_progress(10, Duration::from_secs(20), "after the fault");
    }
    let seed = s.seed;
    let recorded = finish(s);
    assert!(recorded.iter().any(|r| r.resumes > 0), "seed {seed}: no stream had to resume: the faults did not bite");
}

/// A follower cut off while the others compact their log catches up by
/// snapshot: its state machine is replaced under its watchers, which must
/// go on without a gap (the dispatcher reads what the snapshot brought from
/// storage).
#[test]
fn a_watched_follower_catches_up_by_snapshot() {
    let opts = Opts { snapshot_count: Some(100), snapshot_catchup_entries: Some(20), ..Opts::default() };
    let s = start("a_watched_follower_catches_up_by_snapshot", opts);
    let all = s.cluster.all();
    let leader = s.cluster.wait_leader(&all, Duration::from_secs(10));
    let follower = all.iter().copied().find(|&i| i != leader).unwrap_or(0);
    println!("isolate follower {}", s.cluster.members[follower].name);
    s.cluster.net.isolate(follower);
    s.load.wait_progress(300, Duration::from_secs(60), "while the follower is cut off");
    s.cluster.net.heal();
    s.cluster.wait_converged(Duration::from_secs(30));
    let installed = s.cluster.log_lines(follower, "installed a snapshot");
    assert!(!installed.is_empty(), "seed {}: the follower caught up without a snapshot", s.seed);
    s.load.wait_progress(20, Duration::from_secs(20), "after the snapshot");
    finish(s);
}
