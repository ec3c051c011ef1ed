//! Membership changes under write load, through real processes: the
//! cluster grows 3 -> 5 (each newcomer a learner first, catching up by
//! snapshot because the log was compacted, then promoted) and shrinks back
//! to 3, and one original member is replaced (removed, its disk wiped, added
//! again under a new id at the same address); meanwhile clients write and
//! read, and their history must be linearizable, every acknowledged write
//! readable on every remaining member, and HashKV equal.
//!
//! Prints its seed; `RAFTKV_FAULT_SEED=<seed>` replays the workload's choices.

mod common;

use common::cluster::{wait_for, Client, Cluster, Opts};
use common::workload::{check_history, final_reads, verify_durable, Clock, Workload, WorkloadOpts};
use raftkv::proto::etcdserverpb::{MemberAddRequest, MemberPromoteRequest, MemberRemoveRequest};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn call(c: &Cluster, i: usize, body: Req) -> Result<Resp, String> {
    let mut client = Client::connect(c.members[i].client, Duration::from_secs(2))?;
    client.call(body, T).map_err(|e| e.to_string())
}

/// Any running member serves it (forwarded to the leader): the first that
/// answers. Retried: a change may meet a pending one or a leader change.
fn change(c: &Cluster, what: &str, body: impl Fn() -> Req) -> Resp {
    let running: Vec<usize> = c.all().into_iter().filter(|&i| c.members[i].is_running()).collect();
    wait_for(T, what, || {
        let mut last = String::new();
        for &i in &running {
            match call(c, i, body()) {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    })
}

/// The cluster's initial-cluster string for a member joining now: every
/// running member and the newcomer.
fn joining_cluster(c: &Cluster, newcomer: usize) -> String {
    let mut parts: Vec<String> = c
        .all()
        .into_iter()
        .filter(|&i| i != newcomer && c.members[i].is_running())
        .map(|i| format!("{}={}", c.members[i].name, c.members[i].advertise))
        .collect();
    parts.push(format!("{}={}", c.members[newcomer].name, c.members[newcomer].advertise));
    parts.join(",")
}

/// Adds member `i` as a learner, starts it, and promotes it once in sync.
fn add_and_promote(c: &mut Cluster, i: usize) {
    let url = format!("http://{}", c.members[i].advertise);
    let added = change(c, "a learner added", || {
        Req::MemberAdd(MemberAddRequest { peer_ur_ls: vec![url.clone()], is_learner: true })
    });
    let Resp::MemberAdd(added) = added else { panic!("member add: {added:?}") };
    let id = added.member.expect("added member").id;
    c.members[i].id = id;
    c.members[i].joining = Some(joining_cluster(c, i));
    c.spawn(i);
    c.wait_serving(i, Duration::from_secs(30));
    let name = c.members[i].name.clone();
    change(c, &format!("{name} promoted"), || Req::MemberPromote(MemberPromoteRequest { id }));
}

fn remove(c: &mut Cluster, i: usize) {
    let id = c.members[i].id;
    let name = c.members[i].name.clone();
    change(c, &format!("{name} removed"), || Req::MemberRemove(MemberRemoveRequest { id }));
    let status = c.wait_exit(i, T);
    assert!(!status.success(), "{name} stops once removed: {status}");
}

#[test]
fn grow_to_five_and_back_to_three_under_load_replacing_a_member() {
    let seed = std::env::var("RAFTKV_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("seed {seed} (replay with RAFTKV_FAULT_SEED={seed})");
    let clock = Clock::new();
    // A short log: newcomers catch up by snapshot.
    let opts = Opts { seed, snapshot_count: Some(300), snapshot_catchup_entries: Some(50), ..Opts::default() };
    let mut c = Cluster::start(opts);
    let wl = WorkloadOpts::new(seed, 3, 4);
    let (load, mut history) = Workload::start(c.endpoints(), wl.clone(), clock);
    load.wait_progress(400, Duration::from_secs(60), "before growing");

    let n4 = c.new_member_slot();
    add_and_promote(&mut c, n4);
    load.wait_progress(50, T, "with four members");
    let n5 = c.new_member_slot();
    add_and_promote(&mut c, n5);
    load.wait_progress(50, T, "with five members");
    let five: Vec<usize> = c.all();
    c.wait_leader(&five, T);

    // Shrink: one newcomer and one original member leave.
    remove(&mut c, n4);
    remove(&mut c, 1);
    load.wait_progress(50, T, "back to three");

    // Replace member n1 (index 0): removed, wiped, added again (a new id).
    remove(&mut c, 0);
    c.wipe(0);
    load.wait_progress(20, T, "with two members");
    add_and_promote(&mut c, 0);
    load.wait_progress(50, T, "after the replacement");
    history.extend(load.stop());

    let running: Vec<usize> = c.all().into_iter().filter(|&i| c.members[i].is_running()).collect();
    assert_eq!(running.len(), 3, "three members run at the end");
    c.wait_leader(&running, T);
    c.wait_converged(Duration::from_secs(30));
    let endpoints: Vec<_> = running.iter().map(|&i| c.members[i].client).collect();
    history.extend(final_reads(&endpoints, &wl.keys, clock, 999));
    check_history(&history, seed, "grow_to_five_and_back_to_three");
    c.wait_converged(Duration::from_secs(30));
    verify_durable(&c, &history.acked, seed);
    c.assert_same_hash_kv();
    c.check_logs();
    let snapshots = c.log_lines(n5, "installed a snapshot").len() + c.log_lines(0, "installed a snapshot").len();
    assert!(snapshots > 0, "a newcomer caught up by snapshot (the log was compacted)");
}
