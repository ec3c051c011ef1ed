//! A new cluster's data directory made from a snapshot file (`raftkvctl
//! snapshot restore`, etcd's `etcdctl snapshot restore`): the file's
//! keyspace, leases and users, with a fresh membership (the members named
//! in `initial-cluster`), a new cluster id and no alarms. Each member of
//! the new cluster is restored from the same file with the same flags and
//! its own name; `raftkv --data-dir D --name N` then starts it.
//!
//! Owns the checks before anything is written and the layout of a restored
//! directory; never touches a directory that already exists. The directory
//! is made under a temporary name next to it and renamed into place only
//! once its last write is synced: a restore that fails or is killed half
//! way never leaves a directory `raftkv` would start from.

use super::bootstrap;
use super::config::Peer;
use super::ids;
use super::reconfig::canonical_peer_url;
use crate::proto::etcdserverpb::Member;
use crate::proto::raftpb::ConfState;
use crate::storage::db::{CF_ALARM, CF_MEMBERS};
use crate::storage::snapshot::{scan_image, sync_parent_dir, ImageSummary};
use crate::storage::{Db, RaftLogStorage};
use prost::Message as _;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `snapshot restore` was asked to make.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub file: PathBuf,
    pub data_dir: PathBuf,
    pub name: String,
    pub initial_cluster: Vec<Peer>,
    /// This member's peer address (`--initial-advertise-peer-urls`).
    pub advertise_peer: SocketAddr,
    pub token: String,
}

/// What was made.
#[derive(Debug, Clone)]
pub struct Restored {
    pub cluster_id: u64,
    pub member_id: u64,
    pub members: Vec<Member>,
    pub image: ImageSummary,
}

/// Checks the plan and the file, then writes the data directory.
pub fn restore(plan: &RestorePlan) -> Result<Restored, String> {
    // etcd's checks and texts, in etcd's order.
    let Some(me) = plan.initial_cluster.iter().find(|p| p.name == plan.name) else {
        return Err(format!("couldn't find local name {:?} in the initial cluster configuration", plan.name));
    };
    if me.addr != plan.advertise_peer {
        let (mine, advertised) = (canonical_peer_url(me.addr), canonical_peer_url(plan.advertise_peer));
        return Err(format!(
            "--initial-cluster has {}={mine} but missing from --initial-advertise-peer-urls={advertised} \
             (resolved urls: {advertised:?} != {mine:?})",
            plan.name
        ));
    }
    let mut names: Vec<&str> = plan.initial_cluster.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("member name {:?} appears twice in --initial-cluster", w[0]));
    }
    if names.contains(&"") {
        return Err("--initial-cluster has a member without a name (NAME=URL)".into());
    }
    let mut addrs: Vec<SocketAddr> = plan.initial_cluster.iter().map(|p| p.addr).collect();
    addrs.sort_unstable();
    if addrs.windows(2).any(|w| w[0] == w[1]) {
        let listed: Vec<String> =
            plan.initial_cluster.iter().map(|p| format!("{}={}", p.name, canonical_peer_url(p.addr))).collect();
        return Err(format!("initial cluster {} has duplicate url", listed.join(",")));
    }
    if plan.data_dir.exists() {
        return Err(format!("data-dir {:?} exists", plan.data_dir.display().to_string()));
    }
    if let Err(e) = std::fs::metadata(&plan.file) {
        return Err(format!("open {}: {}", plan.file.display(), go_io_error(&e)));
    }
    let image = scan_image(&plan.file, |_, _, _| Ok(()))
        .map_err(|e| format!("snapshot file {} cannot be restored: {e}", plan.file.display()))?;
    let staging = staging_path(&plan.data_dir);
    let made = write_dir(plan, &staging, &image).and_then(|restored| {
        std::fs::rename(&staging, &plan.data_dir)
            .map_err(|e| format!("cannot rename {} to {}: {e}", staging.display(), plan.data_dir.display()))?;
        sync_parent_dir(&plan.data_dir);
        Ok(restored)
    });
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    made
}

/// Go's texts for the common I/O errors (`no such file or directory`).
pub fn go_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Where the directory is made before it is renamed into place: next to
/// it (the same filesystem), under a name `raftkv` is never given.
fn staging_path(data_dir: &Path) -> PathBuf {
    let name = data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    data_dir.with_file_name(format!(".{name}.restoring-{}", std::process::id()))
}

fn write_dir(plan: &RestorePlan, dir: &Path, image: &ImageSummary) -> Result<Restored, String> {
    let cluster_id = ids::restored_cluster_id(&plan.initial_cluster, &plan.token, image.crc);
    let member_id = ids::member_id(&plan.name, &plan.advertise_peer);
    let members: Vec<Member> = plan.initial_cluster.iter().map(bootstrap::initial_member).collect();
    let conf_state = ConfState { voters: members.iter().map(|m| m.id).collect(), ..Default::default() };

    // Only its owner reads a member's data (etcd makes it 0700 too).
    std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let db = Arc::new(Db::open(&db_path(dir)).map_err(|e| e.to_string())?);
    let mut log = RaftLogStorage::open(db.clone()).map_err(|e| e.to_string())?;
    log.restore_image(&plan.file, &[CF_MEMBERS, CF_ALARM], conf_state, |batch, db| {
        for m in &members {
            batch.put_cf(db.cf(CF_MEMBERS), m.id.to_be_bytes(), m.encode_to_vec());
        }
        bootstrap::put_identity(batch, db, cluster_id, member_id);
    })
    .map_err(|e| format!("snapshot file {} cannot be restored: {e}", plan.file.display()))?;
    // Closed before the directory is renamed.
    drop(log);
    drop(db);
    Ok(Restored { cluster_id, member_id, members, image: image.clone() })
}

/// Where a member keeps its RocksDB inside its data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}
