//! A new cluster's data directory made from a snapshot file (`raftkvctl
//! snapshot restore`, etcd's `etcdctl snapshot restore`): the file's
//! keyspace, leases and users, with a fresh membership (the members named
//! in `initial-cluster`), a new cluster id and no alarms. Each member of
//! the new cluster is restored from the same file with the same flags and
//! its own name; `raftkv --data-dir D --name N` then starts it.
//!
//! Owns the checks before anything is written and the layout of a restored
//! directory; never touches a directory that already exists, and removes
//! what it made if the restore fails half way.

use super::bootstrap;
use super::config::Peer;
use super::ids;
use super::reconfig::canonical_peer_url;
use crate::proto::etcdserverpb::Member;
use crate::proto::raftpb::ConfState;
use crate::storage::db::{CF_ALARM, CF_MEMBERS};
use crate::storage::snapshot::{scan_image, ImageSummary};
use crate::storage::{Db, RaftLogStorage};
use prost::Message as _;
use std::net::SocketAddr;
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
        let why =
            if e.kind() == std::io::ErrorKind::NotFound { "no such file or directory".into() } else { e.to_string() };
        return Err(format!("open {}: {why}", plan.file.display()));
    }
    let image = scan_image(&plan.file, |_, _, _| Ok(()))
        .map_err(|e| format!("snapshot file {} cannot be restored: {e}", plan.file.display()))?;
    let made = write_dir(plan, &image);
    if made.is_err() {
        // Nothing half-made is left for `raftkv` to start from.
        let _ = std::fs::remove_dir_all(&plan.data_dir);
    }
    made
}

fn write_dir(plan: &RestorePlan, image: &ImageSummary) -> Result<Restored, String> {
    let cluster_id = ids::restored_cluster_id(&plan.initial_cluster, &plan.token, image.crc);
    let member_id = ids::member_id(&plan.name, &plan.advertise_peer);
    let members: Vec<Member> = plan
        .initial_cluster
        .iter()
        .map(|p| Member {
            id: ids::member_id(&p.name, &p.addr),
            name: p.name.clone(),
            peer_ur_ls: vec![canonical_peer_url(p.addr)],
            client_ur_ls: Vec::new(),
            is_learner: false,
        })
        .collect();
    let conf_state = ConfState { voters: members.iter().map(|m| m.id).collect(), ..Default::default() };

    std::fs::create_dir_all(&plan.data_dir)
        .map_err(|e| format!("cannot create data-dir {}: {e}", plan.data_dir.display()))?;
    let db = Arc::new(Db::open(&db_path(&plan.data_dir)).map_err(|e| e.to_string())?);
    let mut log = RaftLogStorage::open(db.clone()).map_err(|e| e.to_string())?;
    log.restore_image(&plan.file, &[CF_MEMBERS, CF_ALARM], conf_state, |batch, db| {
        for m in &members {
            batch.put_cf(db.cf(CF_MEMBERS), m.id.to_be_bytes(), m.encode_to_vec());
        }
        bootstrap::put_identity(batch, db, cluster_id, member_id);
    })
    .map_err(|e| format!("snapshot file {} cannot be restored: {e}", plan.file.display()))?;
    Ok(Restored { cluster_id, member_id, members, image: image.clone() })
}

/// Where a member keeps its RocksDB inside its data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}
