//! raftkvctl's `snapshot save|status|restore` refusals against real etcdctl
//! 3.4.23 (`tests/captures/etcdctl/snapshot/`): the cases decided before any
//! server is asked or any snapshot is read (arguments, flags, endpoints,
//! paths, existing data directories, output formats). Each captured command
//! runs with raftkvctl in a directory laid out as etcdctl's was; stdout,
//! stderr (without etcdctl's zap log lines) and the exit code must be
//! etcdctl's byte for byte. What raftkv's snapshot files hold and print is
//! checked by `tests/snapshot.rs` and the printers' unit tests.

use std::path::{Path, PathBuf};
use std::process::Command;

const CASES: [&str; 19] = [
    "save_missing_dir",
    "save_no_args",
    "save_two_args",
    "save_two_endpoints",
    "status_protobuf",
    "status_bad_format",
    "status_missing",
    "status_no_args",
    "status_two_args",
    "status_directory",
    "restore_ok_again",
    "restore_existing_nonempty",
    "restore_existing_empty",
    "restore_missing",
    "restore_no_args",
    "restore_two_args",
    "restore_name_not_in_cluster",
    "restore_peer_url_mismatch",
    "restore_cluster_dup_url",
];

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captures/etcdctl/snapshot")
}

/// A valid raftkv snapshot file (a few keys), made without a server.
fn write_snapshot(path: &Path) {
    use raftkv::storage::db::CF_KV;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = raftkv::storage::Db::open(&dir.path().join("db")).expect("open db");
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(db.cf(CF_KV), raftkv::mvcc::encode_rev_key(raftkv::mvcc::Revision::new(2, 0), false), b"kv");
    db.write(batch, true).expect("write");
    let mut out = Vec::new();
    raftkv::storage::snapshot::write_image(&db, 4096, |c| {
        out.extend_from_slice(&c.data);
        Ok(())
    })
    .expect("image");
    std::fs::write(path, out).expect("write snapshot");
}

/// etcdctl's stderr without its structured log lines.
fn without_logs(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr).lines().filter(|l| !l.starts_with("{\"level\"")).map(|l| format!("{l}\n")).collect()
}

#[test]
fn snapshot_refusals_read_as_etcdctls() {
    let table = std::fs::read_to_string(captures().join("cases.tsv")).expect("cases.tsv");
    let cwd = tempfile::tempdir().expect("temp dir");
    // What the captured directory held when these cases ran.
    write_snapshot(&cwd.path().join("snap.db"));
    write_snapshot(&cwd.path().join("snap2.db"));
    for dir in ["n1.data", "fulldir", "emptydir"] {
        std::fs::create_dir(cwd.path().join(dir)).expect("mkdir");
    }
    std::fs::write(cwd.path().join("fulldir/file"), b"x").expect("write");

    let mut failures = Vec::new();
    for case in CASES {
        let line = table
            .lines()
            .find(|l| l.split('\t').next() == Some(case))
            .unwrap_or_else(|| panic!("{case} is not in cases.tsv"));
        let fields: Vec<&str> = line.split('\t').collect();
        let code: i32 = fields[1].parse().expect("exit code");
        let mut words = fields[2].split_whitespace();
        assert_eq!(words.next(), Some("etcdctl"), "{case}: {}", fields[2]);
        let out = Command::new(env!("CARGO_BIN_EXE_raftkvctl"))
            .args(words)
            .current_dir(cwd.path())
            .env_remove("ETCDCTL_ENDPOINTS")
            .output()
            .expect("run raftkvctl");
        let want_out = std::fs::read(captures().join(format!("{case}.stdout"))).expect("stdout capture");
        let want_err = without_logs(&std::fs::read(captures().join(format!("{case}.stderr"))).expect("stderr capture"));
        let got_err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() != Some(code) || out.stdout != want_out || got_err != want_err {
            failures.push(format!(
                "{case}: exit {:?} (etcdctl {code})\n  stdout {:?}\n  etcdctl {:?}\n  stderr {:?}\n  etcdctl {:?}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&want_out),
                got_err,
                want_err
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), CASES.len(), failures.join("\n"));
    assert!(!cwd.path().join("x.data").exists(), "no refused restore made a data directory");
    assert!(!cwd.path().join("missing.data").exists());
}
