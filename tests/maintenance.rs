//! Maintenance through whole processes, against etcd's Maintenance API:
//! the backend quota raising NOSPACE under writes (no acknowledged write
//! lost, reads and deletes still served, Status naming the alarm), space
//! reclaimed by delete + compact + defragment, the alarm disarmed and
//! writes back; alarms raised and cleared by hand.

mod common;

use common::cluster::{wait_for, CallError, Client, Cluster, Opts};
use raftkv::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, CompactionRequest, DefragmentRequest, DeleteRangeRequest,
    LeaseGrantRequest, PutRequest, RangeRequest,
};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp, ErrorCode};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn call(c: &Cluster, i: usize, body: Req) -> Result<Resp, CallError> {
    let mut client = Client::connect(c.members[i].client, Duration::from_secs(2)).map_err(CallError::Lost)?;
    client.call(body, T)
}

fn put(key: &str, len: usize) -> Req {
    Req::Put(PutRequest { key: key.as_bytes().to_vec().into(), value: vec![b'x'; len].into(), ..Default::default() })
}

fn alarms(c: &Cluster, i: usize) -> Vec<(u64, i32)> {
    let get = AlarmRequest { action: AlarmAction::Get as i32, member_id: 0, alarm: AlarmType::None as i32 };
    match call(c, i, Req::Alarm(get)) {
        Ok(Resp::Alarm(a)) => a.alarms.iter().map(|m| (m.member_id, m.alarm)).collect(),
        other => panic!("alarm list: {other:?}"),
    }
}

fn no_space(r: Result<Resp, CallError>, what: &str) {
    match r {
        Err(CallError::Server { code, message }) => {
            assert_eq!(code, ErrorCode::NoSpace as i32, "{what}: {message}");
            assert_eq!(message, "etcdserver: mvcc: database space exceeded", "{what}");
        }
        other => panic!("{what}: expected NOSPACE, got {other:?}"),
    }
}

#[test]
fn the_quota_raises_nospace_and_space_is_reclaimed_by_compact_and_defrag() {
    let c = Cluster::start(Opts { quota_bytes: Some(1024 * 1024), ..Opts::default() });
    let leader = c.wait_leader(&c.all(), T);
    let follower = (leader + 1) % 3;

    // Write 64 KiB values until the quota refuses one.
    let mut acked = Vec::new();
    let refused_at = (0..200)
        .find(|i| {
            let key = format!("big{i:03}");
            match call(&c, leader, put(&key, 64 * 1024)) {
                Ok(Resp::Put(_)) => {
                    acked.push(key);
                    false
                }
                Err(CallError::Server { code, .. }) if code == ErrorCode::NoSpace as i32 => true,
                other => panic!("put {key}: {other:?}"),
            }
        })
        .expect("the quota refuses a write within 200 x 64 KiB");
    assert!(refused_at > 0, "some writes fit in 1 MiB");
    wait_for(T, "NOSPACE raised cluster-wide", || {
        let a = alarms(&c, follower);
        if a == vec![(c.members[leader].id, AlarmType::Nospace as i32)] {
            Ok(())
        } else {
            Err(format!("{a:?}"))
        }
    });

    // Writes that grow the database are refused on every member; reads,
    // deletes and compaction are served; Status names the alarm.
    no_space(call(&c, follower, put("small", 10)), "a small put on a follower");
    no_space(call(&c, leader, Req::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 0 })), "a lease grant");
    let status = c.status(follower).expect("status");
    assert!(
        status.errors.iter().any(|e| e == &format!("memberID:{} alarm:NOSPACE ", c.members[leader].id)),
        "{:?}",
        status.errors
    );
    for key in &acked {
        let r = RangeRequest { key: key.as_bytes().to_vec().into(), ..Default::default() };
        match call(&c, follower, Req::Range(r)) {
            Ok(Resp::Range(r)) => assert_eq!(r.kvs.len(), 1, "acknowledged {key} is kept"),
            other => panic!("range {key}: {other:?}"),
        }
    }
    let del =
        DeleteRangeRequest { key: b"big".to_vec().into(), range_end: b"bih".to_vec().into(), ..Default::default() };
    let revision = match call(&c, leader, Req::DeleteRange(del)) {
        Ok(Resp::DeleteRange(d)) => {
            assert_eq!(d.deleted as usize, acked.len());
            d.header.expect("header").revision
        }
        other => panic!("delete: {other:?}"),
    };
    match call(&c, leader, Req::Compact(CompactionRequest { revision, physical: true })) {
        Ok(Resp::Compact(_)) => {}
        other => panic!("compact: {other:?}"),
    }
    for i in c.all() {
        match call(&c, i, Req::Defragment(DefragmentRequest {})) {
            Ok(Resp::Defragment(_)) => {}
            other => panic!("defragment {i}: {other:?}"),
        }
    }

    // Disarmed, writes are back.
    let off = AlarmRequest {
        action: AlarmAction::Deactivate as i32,
        member_id: c.members[leader].id,
        alarm: AlarmType::Nospace as i32,
    };
    match call(&c, follower, Req::Alarm(off)) {
        Ok(Resp::Alarm(a)) => assert_eq!(a.alarms.len(), 1, "the disarmed alarm is named"),
        other => panic!("disarm: {other:?}"),
    }
    assert!(alarms(&c, leader).is_empty());
    match call(&c, follower, put("small", 10)) {
        Ok(Resp::Put(_)) => {}
        other => panic!("a put after the disarm: {other:?}"),
    }
}

#[test]
fn alarms_are_raised_and_cleared_by_hand_and_corrupt_refuses_writes_not_reads() {
    let c = Cluster::start(Opts::default());
    let leader = c.wait_leader(&c.all(), T);
    match call(&c, leader, put("k", 1)) {
        Ok(Resp::Put(_)) => {}
        other => panic!("put: {other:?}"),
    }
    c.wait_converged(T);
    // `endpoint hashkv`: one line per member, all equal (etcd's format).
    let eps: Vec<String> = c.members.iter().map(|m| m.client.to_string()).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftkvctl"))
        .args(["--endpoints", &eps.join(","), "endpoint", "hashkv"])
        .output()
        .expect("run raftkvctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(", ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().zip(&eps).all(|((ep, _), want)| ep == want), "{text}");
    assert!(lines.iter().all(|(_, h)| h.parse::<u32>().is_ok() && *h == lines[0].1), "equal hashes: {text}");
    let corrupt =
        |action: AlarmAction| AlarmRequest { action: action as i32, member_id: 0, alarm: AlarmType::Corrupt as i32 };
    match call(&c, leader, Req::Alarm(corrupt(AlarmAction::Activate))) {
        Ok(Resp::Alarm(a)) => assert_eq!(a.alarms.len(), 1),
        other => panic!("activate: {other:?}"),
    }
    for i in c.all() {
        match call(&c, i, put("k", 1)) {
            Err(CallError::Server { code, message }) => {
                assert_eq!(code, ErrorCode::Corrupt as i32);
                assert_eq!(message, "etcdserver: corrupt cluster");
            }
            other => panic!("a put while CORRUPT: {other:?}"),
        }
        let r = RangeRequest { key: b"k".to_vec().into(), ..Default::default() };
        assert!(matches!(call(&c, i, Req::Range(r)), Ok(Resp::Range(r)) if r.kvs.len() == 1), "reads are served");
    }
    // Deactivating what is not active names nothing.
    let nospace =
        AlarmRequest { action: AlarmAction::Deactivate as i32, member_id: 9, alarm: AlarmType::Nospace as i32 };
    assert!(matches!(call(&c, leader, Req::Alarm(nospace)), Ok(Resp::Alarm(a)) if a.alarms.is_empty()));
    assert!(
        matches!(call(&c, leader, Req::Alarm(corrupt(AlarmAction::Deactivate))), Ok(Resp::Alarm(a)) if a.alarms.len() == 1)
    );
    assert!(matches!(call(&c, leader, put("k", 1)), Ok(Resp::Put(_))));
}

/// Changes the value of the newest revision in a stopped member's keyspace,
/// straight in its RocksDB (what a disk or a bug could do behind Raft's back).
fn corrupt_newest_value(data_dir: &std::path::Path) {
    use prost::Message as _;
    use raftkv::proto::mvccpb::KeyValue;
    use raftkv::storage::db::CF_KV;
    let db = raftkv::storage::Db::open(&data_dir.join("db")).expect("open the stopped member's database");
    let (key, value) = db
        .raw()
        .iterator_cf(db.cf(CF_KV), rocksdb::IteratorMode::End)
        .filter_map(Result::ok)
        .find(|(k, _)| k.len() == 16)
        .expect("a revision");
    let mut kv = KeyValue::decode(value.as_ref()).expect("a KeyValue");
    kv.value = b"corrupted".to_vec().into();
    db.raw().put_cf(db.cf(CF_KV), key, kv.encode_to_vec()).expect("write");
}

/// Stops a follower, changes its newest value straight in its RocksDB,
/// restarts it, and waits for CORRUPT naming it and refusing writes.
/// Returns how long after the restart the alarm was seen.
fn corrupt_a_follower_and_wait_for_the_alarm(c: &mut Cluster) -> Duration {
    let leader = c.wait_leader(&c.all(), T);
    for i in 0..20 {
        match call(c, leader, put(&format!("k{i}"), 10)) {
            Ok(Resp::Put(_)) => {}
            other => panic!("put: {other:?}"),
        }
    }
    c.wait_converged(T);
    let victim = (leader + 1) % 3;
    c.sigterm(victim);
    corrupt_newest_value(&c.members[victim].data_dir);
    c.restart(victim);
    let restarted = std::time::Instant::now();
    let id = c.members[victim].id;
    let leader = c.wait_leader(&c.all(), T);
    wait_for(Duration::from_secs(20), "CORRUPT naming the changed member", || {
        let a = alarms(c, leader);
        if a == vec![(id, AlarmType::Corrupt as i32)] {
            Ok(())
        } else {
            Err(format!("{a:?}"))
        }
    });
    let delay = restarted.elapsed();
    match call(c, leader, put("after", 1)) {
        Err(CallError::Server { code, .. }) => assert_eq!(code, ErrorCode::Corrupt as i32),
        other => panic!("a put while CORRUPT: {other:?}"),
    }
    delay
}

#[test]
fn a_member_whose_data_changed_behind_raft_is_named_by_the_leaders_rounds() {
    let mut c = Cluster::start(Opts { corrupt_check_ms: Some(300), ..Opts::default() });
    let leader = c.wait_leader(&c.all(), T);
    // Rounds pass with nothing raised while the members agree.
    std::thread::sleep(Duration::from_millis(1000));
    assert!(alarms(&c, leader).is_empty(), "no alarm while the members agree");
    let delay = corrupt_a_follower_and_wait_for_the_alarm(&mut c);
    eprintln!("corruption named {delay:?} after the changed member restarted (rounds every 300 ms)");
}

#[test]
fn a_member_whose_data_changed_while_down_is_named_at_its_start_up() {
    // The leader's rounds are an hour apart: only the start-up check can
    // find the change within the test.
    let mut c = Cluster::start(Opts { corrupt_check_ms: Some(3_600_000), ..Opts::default() });
    let delay = corrupt_a_follower_and_wait_for_the_alarm(&mut c);
    eprintln!("corruption named {delay:?} after the changed member restarted (start-up check)");
}

#[test]
fn check_perf_passes_on_a_healthy_cluster_and_leaves_no_keys() {
    let c = Cluster::start(Opts { size: 1, ..Opts::default() });
    let ep = c.members[0].client.to_string();
    let ctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_raftkvctl"))
            .args(["--endpoints", &ep])
            .args(args)
            .output()
            .expect("run raftkvctl")
    };
    let out = ctl(&["check", "perf", "--duration-secs", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "check perf: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("PASS: Throughput is ") && lines[0].ends_with(" writes/s"), "{stdout}");
    assert!(lines[1].starts_with("PASS: Slowest request took "), "{stdout}");
    assert!(lines[2].starts_with("PASS: Stddev is "), "{stdout}");
    assert_eq!(lines[3], "PASS");
    let left = RangeRequest {
        key: b"/etcdctl-check-perf/".to_vec().into(),
        range_end: b"/etcdctl-check-perf0".to_vec().into(),
        count_only: true,
        ..Default::default()
    };
    match call(&c, 0, Req::Range(left)) {
        Ok(Resp::Range(r)) => assert_eq!(r.count, 0, "the check's keys are deleted"),
        other => panic!("range: {other:?}"),
    }

    // A prefix holding keys is refused before any write; a load etcd does
    // not know is refused too.
    match call(&c, 0, put("/etcdctl-check-perf/mine", 1)) {
        Ok(Resp::Put(_)) => {}
        other => panic!("put: {other:?}"),
    }
    let out = ctl(&["check", "perf", "--duration-secs", "3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: prefix \"/etcdctl-check-perf/\" has keys. Delete with etcdctl del --prefix /etcdctl-check-perf/ first\n"
    );
    let out = ctl(&["check", "perf", "--load", "huge"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: unknown load option huge\n");
}
