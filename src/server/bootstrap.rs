//! A member's identity at start-up: read from its data directory, or made
//! when the directory is empty, either by bootstrapping a new cluster
//! from `initial-cluster` or by joining a running one (`initial-cluster-
//! state = "existing"`, after `member add`).
//!
//! Owns the cluster id and member id keys of `raft_state` and the
//! bootstrap entries; never starts a thread.

use super::config::{ClusterState, Config, Peer};
use super::ids;
use super::reconfig::parse_peer_url;
use crate::proto::etcdserverpb::Member;
use crate::proto::internalpb::MemberContext;
use crate::proto::raftpb::{ConfChange, ConfChangeType, Entry, EntryType, HardState};
use crate::raft::Storage as _;
use crate::storage::db::CF_RAFT_STATE;
use crate::storage::{Db, RaftLogStorage};
use prost::Message as _;
use rocksdb::WriteBatch;
use std::net::SocketAddr;
use std::time::Duration;

/// In `raft_state`: the cluster id fixed at bootstrap (or learned when joining).
const CLUSTER_ID_KEY: &[u8] = b"cluster_id";
/// In `raft_state`: this member's id. Absent in data directories made
/// before members could join; theirs is derived from name and address.
const MEMBER_ID_KEY: &[u8] = b"member_id";
/// In `raft_state`: present once this member applied its own removal.
const REMOVED_KEY: &[u8] = b"removed";
/// In `raft_state`: this prefix and a member id, for each member removed.
const REMOVED_PEER_PREFIX: &[u8] = b"removed_peer/";
/// How long a joining member waits for each member it asks.
const JOIN_ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Who this member is, and the peers the transport starts with.
pub struct Identity {
    pub cluster_id: u64,
    pub member_id: u64,
    pub peers: Vec<(u64, SocketAddr)>,
}

fn read_u64(db: &Db, key: &[u8]) -> Result<Option<u64>, String> {
    let Some(v) = db.get(CF_RAFT_STATE, key).map_err(|e| e.to_string())? else { return Ok(None) };
    let raw: [u8; 8] =
        v.as_slice().try_into().map_err(|_| format!("corrupt {} in raft_state", String::from_utf8_lossy(key)))?;
    Ok(Some(u64::from_be_bytes(raw)))
}

fn initial_peers(cfg: &Config) -> Vec<(u64, SocketAddr)> {
    cfg.initial_cluster.iter().map(|p| (ids::member_id(&p.name, &p.addr), p.addr)).collect()
}

/// The record of a member named in an initial cluster (at bootstrap, or
/// in a restore's `--initial-cluster`): its id derived from its name and
/// address, no client URLs until it publishes them.
pub fn initial_member(p: &Peer) -> Member {
    Member {
        id: ids::member_id(&p.name, &p.addr),
        name: p.name.clone(),
        peer_ur_ls: vec![super::reconfig::canonical_peer_url(p.addr)],
        client_ur_ls: Vec::new(),
        is_learner: false,
    }
}

/// Adds this member's identity to `batch` (a restored data directory's,
/// written with its first state).
pub fn put_identity(batch: &mut WriteBatch, db: &Db, cluster_id: u64, member_id: u64) {
    batch.put_cf(db.cf(CF_RAFT_STATE), CLUSTER_ID_KEY, cluster_id.to_be_bytes());
    batch.put_cf(db.cf(CF_RAFT_STATE), MEMBER_ID_KEY, member_id.to_be_bytes());
}

/// Records that this member applied its own removal: it never serves again
/// from this data directory.
pub fn mark_removed(db: &Db) -> Result<(), String> {
    let mut batch = WriteBatch::default();
    batch.put_cf(db.cf(CF_RAFT_STATE), REMOVED_KEY, 1u64.to_be_bytes());
    db.write(batch, true).map_err(|e| e.to_string())
}

/// Records that member `id` left the cluster: it is told so if it calls.
pub fn record_removed_peer(db: &Db, id: u64) -> Result<(), String> {
    let mut batch = WriteBatch::default();
    batch.put_cf(db.cf(CF_RAFT_STATE), removed_peer_key(id), []);
    db.write(batch, false).map_err(|e| e.to_string())
}

fn removed_peer_key(id: u64) -> Vec<u8> {
    let mut k = REMOVED_PEER_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The members recorded as removed.
pub fn removed_peers(db: &Db) -> Vec<u64> {
    let iter = db.raw().prefix_iterator_cf(db.cf(CF_RAFT_STATE), REMOVED_PEER_PREFIX);
    iter.filter_map(Result::ok)
        .take_while(|(k, _)| k.starts_with(REMOVED_PEER_PREFIX))
        .filter_map(|(k, _)| <[u8; 8]>::try_from(&k[REMOVED_PEER_PREFIX.len()..]).ok().map(u64::from_be_bytes))
        .collect()
}

pub fn open_or_bootstrap(cfg: &Config, db: &Db, storage: &mut RaftLogStorage) -> Result<Identity, String> {
    if let Some(cluster_id) = read_u64(db, CLUSTER_ID_KEY)? {
        if read_u64(db, REMOVED_KEY)?.is_some() {
            return Err(format!(
                "this member was removed from cluster {cluster_id:x}; its data directory ({}) cannot rejoin: \
                 add the member again (raftkvctl member add) and start it with an empty data directory",
                cfg.data_dir.display()
            ));
        }
        let member_id = match read_u64(db, MEMBER_ID_KEY)? {
            Some(id) => id,
            None => ids::member_id(&cfg.name, &cfg.advertise_peer),
        };
        return Ok(Identity { cluster_id, member_id, peers: initial_peers(cfg) });
    }
    if storage.last_index() != 0 || storage.hard_state() != HardState::default() {
        return Err("the data directory has a raft log but no cluster id".into());
    }
    match cfg.initial_cluster_state {
        ClusterState::New => bootstrap(cfg, storage),
        ClusterState::Existing => join(cfg, db),
    }
}

/// A brand-new member of the initial cluster persists the bootstrap entries
/// (one AddNode per initial member, carrying its name and address) with
/// the cluster id and its member id.
fn bootstrap(cfg: &Config, storage: &mut RaftLogStorage) -> Result<Identity, String> {
    let cluster_id = ids::cluster_id(&cfg.initial_cluster);
    let member_id = ids::member_id(&cfg.name, &cfg.advertise_peer);
    let entries: Vec<Entry> = cfg
        .initial_cluster
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let member = initial_member(p);
            let id = member.id;
            let cc = ConfChange {
                id: 0,
                change_type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: id,
                context: MemberContext { member: Some(member), ..Default::default() }.encode_to_vec().into(),
            };
            Entry {
                entry_type: EntryType::EntryConfChange as i32,
                term: 1,
                index: i as u64 + 1,
                data: cc.encode_to_vec().into(),
            }
        })
        .collect();
    let hs = HardState { term: 1, vote: 0, commit: entries.len() as u64 };
    storage
        .bootstrap_with(&entries, hs, |batch, db| put_identity(batch, db, cluster_id, member_id))
        .map_err(|e| e.to_string())?;
    log::info!("bootstrapped member of new cluster {cluster_id:x} with {} members", entries.len());
    Ok(Identity { cluster_id, member_id, peers: initial_peers(cfg) })
}

/// A member added with `member add` learns the cluster from the members of
/// `initial-cluster` and finds itself in it by its peer address. Its log
/// stays empty: the leader sends it everything (entries or a snapshot).
fn join(cfg: &Config, db: &Db) -> Result<Identity, String> {
    let mut errors = Vec::new();
    let info = cfg.initial_cluster.iter().filter(|p| p.addr != cfg.advertise_peer).find_map(|p| {
        match crate::transport::join::ask(p.addr, JOIN_ASK_TIMEOUT) {
            Ok(info) => Some(info),
            Err(e) => {
                errors.push(format!("{} ({}): {e}", p.name, p.addr));
                None
            }
        }
    });
    let Some(info) = info else {
        return Err(format!(
            "cannot join: no member of initial-cluster answered ({}); \
             initial-cluster-state \"existing\" needs the running members listed",
            if errors.is_empty() { "it lists only this member".to_string() } else { errors.join("; ") }
        ));
    };
    let peers: Vec<(u64, SocketAddr)> =
        info.members.iter().filter_map(|m| parse_peer_url(&m.url).map(|a| (m.id, a))).collect();
    let Some(&(member_id, _)) = peers.iter().find(|(_, a)| *a == cfg.advertise_peer) else {
        return Err(format!(
            "cannot join cluster {:x}: no member has this member's peer URL http://{}; add it first \
             (raftkvctl member add {} --peer-urls=http://{})",
            info.cluster_id, cfg.advertise_peer, cfg.name, cfg.advertise_peer
        ));
    };
    let mut batch = WriteBatch::default();
    put_identity(&mut batch, db, info.cluster_id, member_id);
    db.write(batch, true).map_err(|e| e.to_string())?;
    log::info!("joining cluster {:x} as member {member_id:x} ({} members)", info.cluster_id, peers.len());
    Ok(Identity { cluster_id: info.cluster_id, member_id, peers })
}
