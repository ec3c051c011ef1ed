//! Snapshots through whole processes: `raftkvctl snapshot save` from a
//! follower of a cluster under way, `snapshot status` of the file, and
//! `snapshot restore` into a new three-member cluster that serves the same
//! keyspace (HashKV equal at the same revision, leases kept) under a new
//! cluster id and its own membership, and takes writes. A truncated or
//! altered file is refused by `status` and `restore`, which then leave no
//! data directory behind.

mod common;

use common::cluster::{CallError, Client, Cluster, Opts};
use raftkv::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseLeasesRequest, MemberListRequest, PutRequest,
    RangeRequest,
};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn call(c: &Cluster, i: usize, body: Req) -> Result<Resp, CallError> {
    let mut client = Client::connect(c.members[i].client, Duration::from_secs(2)).map_err(CallError::Lost)?;
    client.call(body, T)
}

fn put(c: &Cluster, i: usize, key: &str, value: &str, lease: i64) -> i64 {
    let req = PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        lease,
        ..Default::default()
    };
    match call(c, i, Req::Put(req)) {
        Ok(Resp::Put(p)) => p.header.map_or(0, |h| h.revision),
        other => panic!("put {key}: {other:?}"),
    }
}

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkvctl")).args(args).output().expect("run raftkvctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every key and value of the keyspace, as member `i` serves it.
fn dump(c: &Cluster, i: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let all = RangeRequest { key: vec![0].into(), range_end: vec![0].into(), ..Default::default() };
    match call(c, i, Req::Range(all)) {
        Ok(Resp::Range(r)) => r.kvs.into_iter().map(|kv| (kv.key.to_vec(), kv.value.to_vec())).collect(),
        other => panic!("range: {other:?}"),
    }
}

#[test]
fn a_snapshot_saved_from_a_follower_restores_into_a_new_cluster_serving_the_same_keyspace() {
    let c = Cluster::start(Opts::default());
    let leader = c.wait_leader(&c.all(), T);
    let follower = (leader + 1) % 3;
    // History worth keeping: overwrites, deletes, a compaction, a lease.
    let lease = match call(&c, leader, Req::LeaseGrant(LeaseGrantRequest { ttl: 600, id: 0 })) {
        Ok(Resp::LeaseGrant(g)) => g.id,
        other => panic!("lease grant: {other:?}"),
    };
    // Over 2 MB: the image crosses the wire in several chunks.
    let value = "v".repeat(1024);
    for i in 0..2000 {
        put(&c, leader, &format!("key{i:04}"), &format!("v1-{i}-{value}"), 0);
    }
    let compact_at = put(&c, leader, "key0000", "v2", 0);
    for i in (0..2000).step_by(7) {
        let del = DeleteRangeRequest { key: format!("key{i:04}").into_bytes().into(), ..Default::default() };
        call(&c, leader, Req::DeleteRange(del)).expect("delete");
    }
    match call(&c, leader, Req::Compact(CompactionRequest { revision: compact_at, physical: true })) {
        Ok(Resp::Compact(_)) => {}
        other => panic!("compact: {other:?}"),
    }
    let rev = put(&c, leader, "leased", "yes", lease);
    c.wait_converged(T);

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("snap.db");
    let file_s = file.to_str().expect("utf-8 path");
    let ep = c.members[follower].client.to_string();
    let out = ctl(&["--endpoints", &ep, "snapshot", "save", file_s]);
    assert!(out.status.success(), "save: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("Snapshot saved at {file_s}\n"));
    assert!(!dir.path().join("snap.db.part").exists(), "the partial file is renamed");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the whole keyspace is readable by its owner only");

    let out = ctl(&["snapshot", "status", file_s, "-w", "json"]);
    assert!(out.status.success(), "status: {}", text(&out.stderr));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(st["revision"], rev, "the snapshot's revision is the cluster's: {st}");
    assert_eq!(st["totalSize"], std::fs::metadata(&file).expect("file").len(), "{st}");
    assert!(st["totalKey"].as_u64().unwrap_or(0) > 2000, "every stored revision is a key: {st}");
    assert!(st["totalSize"].as_u64().unwrap_or(0) > 2_000_000, "several chunks' worth: {st}");

    let original = c.hash_kv(follower, rev).expect("hashkv of the original");
    let original_keys = dump(&c, follower);
    let original_cluster = c.status(follower).expect("status").header.expect("header").cluster_id;
    drop(c);

    let r = Cluster::start(Opts { restore_from: Some(file.clone()), ..Opts::default() });
    let rl = r.wait_leader(&r.all(), T);
    for i in r.all() {
        let h = r.hash_kv(i, rev).expect("hashkv of the restored member");
        assert_eq!(
            (h.hash, h.compact_revision),
            (original.hash, original.compact_revision),
            "{}: HashKV at {rev} equals the original's",
            r.members[i].name
        );
    }
    assert_eq!(dump(&r, rl), original_keys, "the restored keyspace is the original's");
    let restored_cluster = r.status(rl).expect("status").header.expect("header").cluster_id;
    assert_ne!(restored_cluster, original_cluster, "a restored cluster has a new id");
    match call(&r, rl, Req::MemberList(MemberListRequest { linearizable: true })) {
        Ok(Resp::MemberList(m)) => {
            let mut ids: Vec<u64> = m.members.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            let mut want: Vec<u64> = r.members.iter().map(|m| m.id).collect();
            want.sort_unstable();
            assert_eq!(ids, want, "the membership is the restore's: {m:?}");
        }
        other => panic!("member list: {other:?}"),
    }
    match call(&r, rl, Req::LeaseLeases(LeaseLeasesRequest {})) {
        Ok(Resp::LeaseLeases(l)) => assert!(l.leases.iter().any(|l| l.id == lease), "the lease is kept: {l:?}"),
        other => panic!("lease leases: {other:?}"),
    }
    let after = put(&r, rl, "after-restore", "1", 0);
    assert_eq!(after, rev + 1, "the restored cluster goes on from the snapshot's revision");
}

fn refused(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} should fail; stdout {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.starts_with("Error: "), "{what}: {err}");
    err
}

#[test]
fn a_truncated_or_altered_snapshot_file_is_refused_and_restore_leaves_nothing() {
    let c = Cluster::start(Opts { size: 1, ..Opts::default() });
    for i in 0..200 {
        put(&c, 0, &format!("k{i}"), &"v".repeat(100), 0);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.db");
    let ep = c.members[0].client.to_string();
    let out = ctl(&["--endpoints", &ep, "snapshot", "save", good.to_str().expect("path")]);
    assert!(out.status.success(), "save: {}", text(&out.stderr));
    let bytes = std::fs::read(&good).expect("read snapshot");

    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let altered = dir.path().join("altered.db");
    // A byte inside a value (a run of 'v'), so only the checksum can tell.
    let mut flipped = bytes.clone();
    let run = bytes.windows(100).position(|w| w.iter().all(|&b| b == b'v')).expect("a value in the file");
    flipped[run + 50] = b'w';
    std::fs::write(&altered, &flipped).expect("write");
    let missing = dir.path().join("missing.db");

    let restore = |file: &str, data_dir: &str| {
        ctl(&[
            "snapshot",
            "restore",
            file,
            "--data-dir",
            data_dir,
            "--name",
            "m1",
            "--initial-cluster",
            "m1=http://127.0.0.1:2390",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2390",
        ])
    };
    for (file, what) in [(&truncated, "truncated"), (&altered, "altered"), (&missing, "missing")] {
        let f = file.to_str().expect("path");
        let err = refused(&ctl(&["snapshot", "status", f]), &format!("status of the {what} file"));
        let why = match what {
            "truncated" => "truncated",
            "altered" => "checksum",
            _ => "no such file",
        };
        assert!(err.contains(why), "{what}: {err}");
        let data_dir = dir.path().join(format!("restored-{what}"));
        let err = refused(&restore(f, data_dir.to_str().expect("path")), &format!("restore of the {what} file"));
        assert!(err.contains(f), "the error names the file: {err}");
        assert!(!data_dir.exists(), "a failed restore ({what}: {err}) leaves no data directory");
    }
    // The good file restores, once: the directory then exists.
    let data_dir = dir.path().join("restored");
    let (g, d) = (good.to_str().expect("path"), data_dir.to_str().expect("path"));
    let out = restore(g, d);
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert!(Path::new(d).join("db").exists());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(d).expect("data dir").permissions().mode() & 0o777, 0o700);
    let staged: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("restoring"))
        .collect();
    assert!(staged.is_empty(), "no staging directory is left behind: {staged:?}");
    assert!(refused(&restore(g, d), "restore into an existing directory").contains("exists"));
}
