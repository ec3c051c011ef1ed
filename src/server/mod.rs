//! A raftkv node: opens (or bootstraps) its storage and runs its threads.
//!
//! ```text
//!  clients ─► client-io (mio) ─► dispatcher ─► raft thread ─► transport ─► peers
//!                 ▲                  │ reads        │ committed entries, confirmed reads
//!                 │                  ▼              ▼
//!                 └── responses ◄── read workers ◄─ apply thread ──► state machine
//! ```
//! Threads talk over bounded crossbeam channels; answers reach the client
//! I/O thread through a channel and a mio `Waker`. Owns start-up (including
//! bootstrapping a new cluster member), wiring, and an orderly stop.

pub mod apply;
pub mod config;
pub mod doorbell;
pub mod ids;
pub mod membership;
pub mod msgs;
pub mod raft_loop;
pub mod reads;
pub mod respond;
pub mod status;
pub mod wait;

use crate::api::client_io::{ClientIo, Limits, WAKER};
use crate::api::dispatch::Dispatcher;
use crate::mvcc::KvStore;
use crate::proto::etcdserverpb::Member;
use crate::proto::internalpb::MemberContext;
use crate::proto::raftpb::{ConfChange, ConfChangeType, Entry, EntryType, HardState};
use crate::raft::{self, RawNode};
use crate::storage::db::CF_RAFT_STATE;
use crate::storage::{Db, RaftLogStorage};
use crate::transport::incarnation::Incarnations;
use crate::transport::members::Members;
use crate::transport::{peer_io, PeerTransport};
use config::Config;
use crossbeam_channel::{bounded, Receiver};
use doorbell::{Doorbell, RingingSender};
use prost::Message as _;
use respond::ResponseSink;
use status::NodeStatus;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;
use wait::WaitRegistry;

/// Queue sizes between threads. Bounded channels preallocate every slot,
/// so these are sized to the limits they serve, not larger.
const PROPOSAL_QUEUE: usize = 16_384;
const READ_QUEUE: usize = 4096;
const APPLY_QUEUE: usize = 64;
const RESPONSE_QUEUE: usize = 16_384;
const CONTROL_QUEUE: usize = 1024;
const PEER_QUEUE: usize = 4096;
const PEER_CMD_QUEUE: usize = 16_384;
const MAX_WAITERS: usize = 262_144;
const READ_WORKERS: usize = 2;
/// In `raft_state`: the cluster id fixed at bootstrap.
const CLUSTER_ID_KEY: &[u8] = b"cluster_id";

/// A running node.
pub struct Node {
    pub member_id: u64,
    pub cluster_id: u64,
    client_addr: SocketAddr,
    status: Arc<NodeStatus>,
    kv: Arc<KvStore>,
    client_stop: Arc<AtomicBool>,
    client_waker: Arc<mio::Waker>,
    raft_stop: RingingSender<()>,
    client_thread: Option<JoinHandle<()>>,
    raft_thread: Option<JoinHandle<()>>,
    peer_thread: Option<JoinHandle<()>>,
    apply_thread: Option<JoinHandle<()>>,
    read_threads: Vec<JoinHandle<()>>,
    failure: Receiver<String>,
    db: Arc<Db>,
}

impl Node {
    /// Opens the data directory (bootstrapping a new member of the initial
    /// cluster if it is empty) and starts every thread.
    pub fn start(cfg: &Config) -> Result<Node, String> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", cfg.data_dir.display()))?;
        let snap_dir = cfg.data_dir.join("snap");
        let db = Arc::new(Db::open(&cfg.data_dir.join("db")).map_err(|e| e.to_string())?);
        // Opening the log finishes a snapshot install a crash interrupted.
        let mut storage = RaftLogStorage::open(db.clone()).map_err(|e| e.to_string())?;
        clean_staged_images(&snap_dir);
        let member_id = ids::member_id(&cfg.name, &cfg.advertise_peer);
        let cluster_id = open_or_bootstrap(cfg, &db, &mut storage)?;
        let incarnations = Arc::new(Incarnations::open(db.clone())?);
        let kv = Arc::new(KvStore::open(db.clone()).map_err(|e| format!("opening the keyspace: {e}"))?);
        let status = Arc::new(NodeStatus::new(cluster_id, member_id));
        status.set_applied(kv.consistent_index());
        storage.set_snapshot_source(snapshot_source(kv.clone(), db.clone()));

        let members =
            Arc::new(Members::new(cfg.initial_cluster.iter().map(|p| (ids::member_id(&p.name, &p.addr), p.addr))));
        membership::refresh_transport(&db, &members);

        let mut rc = raft::Config::new(member_id);
        rc.election_tick = cfg.election_ticks();
        rc.heartbeat_tick = 1;
        // The apply thread may run ahead of the persisted commit index (it
        // starts on entries already on disk while the commit index is being
        // written): entries in between are handed out again, and skipped.
        rc.applied = kv.consistent_index().min(storage.hard_state().commit);
        rc.seed = rand::random();
        let raw = RawNode::new(&rc, storage).map_err(|e| format!("starting raft: {e}"))?;

        let listener = std::net::TcpListener::bind(cfg.listen_client)
            .map_err(|e| format!("cannot listen for clients on {}: {e}", cfg.listen_client))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let client_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let poll = mio::Poll::new().map_err(|e| e.to_string())?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).map_err(|e| e.to_string())?);

        // Into the raft and apply threads: senders that ring their doorbell.
        let (raft_bell, apply_bell) = (Doorbell::new(), Doorbell::new());
        let (prop_tx, prop_rx) = doorbell::channel(PROPOSAL_QUEUE, &raft_bell);
        let (linear_tx, linear_rx) = doorbell::channel(READ_QUEUE, &raft_bell);
        let (ctrl_tx, ctrl_rx) = doorbell::channel(CONTROL_QUEUE, &raft_bell);
        let (peer_tx, peer_rx) = doorbell::channel(PEER_QUEUE, &raft_bell);
        let (stop_tx, stop_rx) = doorbell::channel(1, &raft_bell);
        let (apply_tx, apply_rx) = doorbell::channel(APPLY_QUEUE, &apply_bell);
        let raft_backlog = Arc::new(AtomicBool::new(false));
        let (local_tx, local_rx) = bounded(READ_QUEUE);
        let (resp_tx, resp_rx) = bounded(RESPONSE_QUEUE);
        let (fail_tx, fail_rx) = bounded(4);
        let wake_pending = Arc::new(AtomicBool::new(false));
        let sink = ResponseSink::new(resp_tx, waker.clone(), wake_pending.clone());
        let wait = Arc::new(WaitRegistry::new(MAX_WAITERS));
        let request_timeout = Duration::from_millis(cfg.request_timeout_ms);
        let gate = Arc::new(RwLock::new(()));

        // Peers: one mio thread for every message connection.
        let peer_listener = std::net::TcpListener::bind(cfg.listen_peer)
            .map_err(|e| format!("cannot listen for peers on {}: {e}", cfg.listen_peer))?;
        peer_listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let peer_poll = mio::Poll::new().map_err(|e| e.to_string())?;
        let peer_waker = Arc::new(mio::Waker::new(peer_poll.registry(), peer_io::WAKER).map_err(|e| e.to_string())?);
        let (cmd_tx, cmd_rx) = bounded(PEER_CMD_QUEUE);
        let peer_io = peer_io::PeerIo::new(
            peer_poll,
            mio::net::TcpListener::from_std(peer_listener),
            cmd_rx,
            peer_io::PeerIoConfig {
                cluster_id,
                member_id,
                snap_dir: snap_dir.clone(),
                incarnations: incarnations.clone(),
            },
            members.clone(),
            peer_tx,
            ctrl_tx.clone(),
        )
        .map_err(|e| format!("peer I/O: {e}"))?;
        let peer_thread = spawn("peer-io", move || peer_io.run())?;
        let transport = Box::new(PeerTransport {
            cmds: cmd_tx,
            waker: peer_waker,
            members: members.clone(),
            control: ctrl_tx.clone(),
            cluster_id,
            db: db.clone(),
            sending_snapshots: Arc::default(),
        });

        let mut read_threads = Vec::new();
        for i in 0..READ_WORKERS {
            let worker = reads::ReadWorker {
                rx: local_rx.clone(),
                gate: gate.clone(),
                kv: kv.clone(),
                db: db.clone(),
                status: status.clone(),
                request_timeout,
            };
            read_threads.push(spawn(&format!("read-{i}"), move || worker.run())?);
        }
        let apply = apply::ApplyLoop {
            kv: kv.clone(),
            db: db.clone(),
            rx: apply_rx,
            bell: apply_bell,
            raft_bell: raft_bell.clone(),
            raft_backlog: raft_backlog.clone(),
            wait: wait.clone(),
            status: status.clone(),
            reads: local_tx.clone(),
            control: ctrl_tx,
            member_id,
            snapshot_count: cfg.snapshot_count,
        };
        let fail = fail_tx.clone();
        let apply_thread = spawn("apply", move || {
            if let Err(e) = apply.run() {
                log::error!("apply thread failed: {e}");
                let _ = fail.send(e);
            }
        })?;
        let raft_loop = raft_loop::RaftLoop::new(
            raw,
            raft_loop::Channels {
                bell: raft_bell,
                apply_backlog: raft_backlog,
                proposals: prop_rx,
                reads: linear_rx,
                control: ctrl_rx,
                peers: peer_rx,
                stop: stop_rx,
                apply: apply_tx,
            },
            transport,
            raft_loop::Shared {
                status: status.clone(),
                wait: wait.clone(),
                kv: kv.clone(),
                db: db.clone(),
                members,
                incarnations,
                gate,
                snap_dir,
                attributes: crate::proto::internalpb::MemberAttributes {
                    id: member_id,
                    name: cfg.name.clone(),
                    client_urls: vec![format!("http://{client_addr}")],
                },
            },
            Duration::from_millis(cfg.heartbeat_ms),
            cfg.snapshot_catchup_entries,
        );
        let fail = fail_tx;
        let raft_thread = spawn("raft", move || {
            if let Err(e) = raft_loop.run() {
                log::error!("raft thread failed: {e}");
                let _ = fail.send(e);
            }
        })?;

        let dispatcher = Dispatcher {
            max_request_bytes: cfg.max_request_bytes,
            request_timeout,
            member_id,
            ids: Arc::new(ids::RequestIds::new(member_id)),
            wait,
            status: status.clone(),
            proposals: prop_tx,
            linear_reads: linear_tx,
            local_reads: local_tx,
        };
        let limits = Limits {
            max_frame: cfg.max_request_bytes + 512 * 1024,
            idle_timeout: Duration::from_millis(cfg.client_idle_timeout_ms),
            frame_timeout: request_timeout,
            request_timeout,
            max_connections: cfg.max_client_connections,
            max_in_flight_per_conn: 4096,
            max_output: 32 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(2),
        };
        let client_stop = Arc::new(AtomicBool::new(false));
        let io = ClientIo::new(
            poll,
            mio::net::TcpListener::from_std(listener),
            resp_rx,
            wake_pending,
            sink,
            dispatcher,
            status.clone(),
            limits,
            client_stop.clone(),
        )
        .map_err(|e| format!("client I/O: {e}"))?;
        let client_thread = spawn("client-io", move || io.run())?;

        log::info!(
            "member {member_id:x} ({}) of cluster {cluster_id:x} serving clients on {client_addr}, data in {}",
            cfg.name,
            cfg.data_dir.display()
        );
        Ok(Node {
            member_id,
            cluster_id,
            client_addr,
            status,
            kv,
            client_stop,
            client_waker: waker,
            raft_stop: stop_tx,
            client_thread: Some(client_thread),
            raft_thread: Some(raft_thread),
            peer_thread: Some(peer_thread),
            apply_thread: Some(apply_thread),
            read_threads,
            failure: fail_rx,
            db,
        })
    }

    /// The address clients connect to (the bound one, when port 0 was asked).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn status(&self) -> &Arc<NodeStatus> {
        &self.status
    }

    pub fn kv(&self) -> &Arc<KvStore> {
        &self.kv
    }

    /// Receives the reason if a thread fails and the node must stop.
    pub fn failures(&self) -> &Receiver<String> {
        &self.failure
    }

    /// Stops in order: no new requests; requests in flight get a grace
    /// period; the raft thread hands over what is committed; the apply
    /// thread applies it; everything is flushed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.status.set_stopping();
        self.client_stop.store(true, Ordering::Release);
        let _ = self.client_waker.wake();
        join(self.client_thread.take());
        let _ = self.raft_stop.send(());
        join(self.raft_thread.take());
        // The transport went with the raft thread: the peer thread stops.
        join(self.peer_thread.take());
        join(self.apply_thread.take());
        for t in self.read_threads.drain(..) {
            join(Some(t));
        }
        if let Err(e) = self.db.sync_wal() {
            log::error!("final sync failed: {e}");
        }
        log::info!("member {:x} stopped", self.member_id);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.raft_thread.is_some() {
            self.shutdown();
        }
    }
}

/// What the leader's core is told about the snapshot it may send: the
/// applied state's point (the image itself is made when it is sent). Not
/// available until the applied configuration contains the receiver.
fn snapshot_source(kv: Arc<KvStore>, db: Arc<Db>) -> crate::storage::raft_log::SnapshotSource {
    use crate::proto::raftpb::{Snapshot, SnapshotMetadata};
    use crate::raft::StorageError;
    Box::new(move |_request_index, to| {
        let cs = crate::storage::raft_log::applied_conf_state(&db)
            .map_err(|e| StorageError::Other(e.to_string()))?
            .unwrap_or_default();
        let has_to = cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).any(|&id| id == to);
        if to != 0 && !has_to {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        let meta = SnapshotMetadata { index: kv.consistent_index(), term: kv.consistent_term(), conf_state: Some(cs) };
        Ok(Snapshot { data: Default::default(), metadata: Some(meta) })
    })
}

/// Removes snapshot images staged before a restart: Raft will send a fresh
/// one if it still needs to (an interrupted install kept its own, and has
/// just finished).
fn clean_staged_images(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new().name(name.to_string()).spawn(f).map_err(|e| format!("spawning {name}: {e}"))
}

fn join(t: Option<JoinHandle<()>>) {
    if let Some(t) = t {
        if t.join().is_err() {
            log::error!("a node thread panicked");
        }
    }
}

/// Returns the cluster id. A brand-new member of the initial cluster
/// persists the bootstrap entries (one AddNode per initial member, carrying
/// its name and address) and the cluster id first.
fn open_or_bootstrap(cfg: &Config, db: &Db, storage: &mut RaftLogStorage) -> Result<u64, String> {
    use crate::raft::Storage;
    if let Some(v) = db.get(CF_RAFT_STATE, CLUSTER_ID_KEY).map_err(|e| e.to_string())? {
        let raw: [u8; 8] = v.as_slice().try_into().map_err(|_| "corrupt cluster id".to_string())?;
        return Ok(u64::from_be_bytes(raw));
    }
    if storage.last_index() != 0 || storage.hard_state() != HardState::default() {
        return Err("the data directory has a raft log but no cluster id".into());
    }
    let cluster_id = ids::cluster_id(&cfg.initial_cluster);
    let entries: Vec<Entry> = cfg
        .initial_cluster
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let id = ids::member_id(&p.name, &p.addr);
            let member = Member {
                id,
                name: p.name.clone(),
                peer_ur_ls: vec![format!("http://{}", p.addr)],
                client_ur_ls: Vec::new(),
                is_learner: false,
            };
            let cc = ConfChange {
                id: 0,
                change_type: ConfChangeType::ConfChangeAddNode as i32,
                node_id: id,
                context: MemberContext { member: Some(member) }.encode_to_vec().into(),
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
        .bootstrap_with(&entries, hs, |batch, db| {
            batch.put_cf(db.cf(CF_RAFT_STATE), CLUSTER_ID_KEY, cluster_id.to_be_bytes())
        })
        .map_err(|e| e.to_string())?;
    log::info!("bootstrapped member of new cluster {cluster_id:x} with {} members", entries.len());
    Ok(cluster_id)
}
