//! A raftkv node's server side: opens (or bootstraps) its storage and runs
//! its threads (raft, apply, read workers, watch dispatcher, lessor, peer
//! I/O), and hands out the handles the client side uses (`ServerHandles`):
//! the proposer, the read queues, the watch and lease hubs, leader notices,
//! the status.
//! The client I/O thread is started above it (`crate::node`), so imports
//! run one way: `api -> server`.
//!
//! ```text
//!  (api) ─► proposer ─► raft thread ─► transport ─► peers
//!    │  reads            │ committed entries, confirmed reads
//!    ▼                   ▼
//!  read workers ◄── apply thread ── router ─► kv / lease / membership appliers
//!                                     ├─ events ─► watch dispatcher ─► (api) outboxes
//!                                     └─ outcomes ─► lessor (keep-alives, expiry) ─► proposer
//! ```
//! Threads talk over bounded crossbeam channels. Owns start-up (including
//! bootstrapping a new cluster member), wiring, and an orderly stop.

pub mod alarms;
pub mod apply;
pub mod auto_promote;
pub mod bootstrap;
pub mod cluster_view;
pub mod config;
pub mod corrupt_check;
pub mod defrag;
pub mod ids;
pub mod members;
pub mod msgs;
pub mod proposer;
pub mod quota;
pub mod raft_loop;
pub mod reads;
pub mod reconfig;
pub mod restore;
pub mod snapshot_stream;
pub mod status;
pub mod watch_store;

use crate::lease::lessor::LessorParts;
use crate::lease::runner::LessorThread;
use crate::lease::{LeaseHub, LeaseTable, Lessor, LessorConfig};
use crate::mvcc::KvStore;
use crate::plumbing::doorbell::{self, Doorbell, RingingSender};
use crate::plumbing::ids::RequestIds;
use crate::plumbing::notice::{LeaderInfo, Notices};
use crate::plumbing::wait::WaitRegistry;
use crate::raft::{self, RawNode};
use crate::storage::{Db, RaftLogStorage};
use crate::transport::forward::{ForwardSlot, Forwarder};
use crate::transport::incarnation::Incarnations;
use crate::transport::members::Members;
use crate::transport::{peer_io, PeerTransport};
use crate::watch::dispatcher::WatchDispatcher;
use crate::watch::{EventFeed, WatchConfig, WatchCore, WatchHub};
use config::Config;
use crossbeam_channel::{bounded, Receiver, Sender};
use msgs::ReadJob;
use proposer::Proposer;
use status::NodeStatus;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Queue sizes between threads. Bounded channels preallocate every slot,
/// so these are sized to the limits they serve, not larger.
const PROPOSAL_QUEUE: usize = 16_384;
const READ_QUEUE: usize = 4096;
const APPLY_QUEUE: usize = 64;
const CONTROL_QUEUE: usize = 1024;
const PEER_QUEUE: usize = 4096;
const PEER_REPORT_QUEUE: usize = 1024;
const PEER_CMD_QUEUE: usize = 16_384;
const MAX_WAITERS: usize = 262_144;
const READ_WORKERS: usize = 2;
/// Watch commands (creates, cancels, progress requests, stream ends)
/// waiting for the dispatcher.
const WATCH_CMD_QUEUE: usize = 16_384;
/// Committed batches' events waiting for the dispatcher; past it the
/// dispatcher reads them from storage instead.
const WATCH_EVENT_QUEUE: usize = 1024;
/// Watch streams open on one member at most.
const MAX_WATCH_STREAMS: usize = 65_536;
/// Keep-alive commands waiting for the lessor.
const LEASE_CMD_QUEUE: usize = 16_384;
/// Outcomes of the lessor's proposals (it has a few in flight at most).
const LEASE_OUTCOME_QUEUE: usize = 64;
/// Keep-alive streams open on one member at most.
const MAX_KEEP_ALIVE_STREAMS: usize = 65_536;

/// What the client side holds on the server: every way a request gets in.
#[derive(Clone)]
pub struct ServerHandles {
    pub member_id: u64,
    pub status: Arc<NodeStatus>,
    pub proposer: Proposer,
    /// To the raft thread: reads that need a read index.
    pub linear_reads: RingingSender<ReadJob>,
    /// To the read workers: reads served locally at once.
    pub local_reads: Sender<ReadJob>,
    pub watch: WatchHub,
    pub lease: LeaseHandles,
    pub leader: Arc<Notices<LeaderInfo>>,
    /// Sends requests that must be served by the leader to it.
    pub forwarder: Forwarder,
    /// Membership changes (served where the leader is).
    pub reconfig: reconfig::Reconfig,
    /// The active alarms, and the quota that raises NOSPACE.
    pub alarms: Arc<alarms::AlarmSet>,
    pub quota: Arc<quota::Quota>,
    pub defrag: defrag::Defragmenter,
    /// Streams images of the state machine to clients (`Snapshot`).
    pub snapshots: snapshot_stream::SnapshotStreams,
}

/// What the client side needs for leases.
#[derive(Clone)]
pub struct LeaseHandles {
    /// Opens keep-alive streams.
    pub hub: LeaseHub,
    /// Grants are raised to this TTL (seconds) when proposed.
    pub min_ttl: i64,
}

/// The running server side of a node.
pub struct Server {
    pub member_id: u64,
    pub cluster_id: u64,
    handles: ServerHandles,
    kv: Arc<KvStore>,
    raft_stop: RingingSender<()>,
    watch_stop: Arc<AtomicBool>,
    watch_bell: Arc<Doorbell>,
    lessor_stop: Arc<AtomicBool>,
    lessor_bell: Arc<Doorbell>,
    lessor_thread: Option<JoinHandle<()>>,
    raft_thread: Option<JoinHandle<()>>,
    peer_thread: Option<JoinHandle<()>>,
    apply_thread: Option<JoinHandle<()>>,
    watch_thread: Option<JoinHandle<()>>,
    read_threads: Vec<JoinHandle<()>>,
    defrag_thread: Option<JoinHandle<()>>,
    snapshot_thread: Option<JoinHandle<()>>,
    corrupt_check: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    auto_promote: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    failure: Receiver<String>,
    db: Arc<Db>,
    forward_slot: ForwardSlot,
}

impl Server {
    /// Opens the data directory (bootstrapping a new member of the initial
    /// cluster if it is empty) and starts every thread. `client_addr` is
    /// where clients reach this member (published to the others).
    pub fn start(cfg: &Config, client_addr: SocketAddr) -> Result<Server, String> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", cfg.data_dir.display()))?;
        let snap_dir = cfg.data_dir.join("snap");
        let db = Arc::new(Db::open(&restore::db_path(&cfg.data_dir)).map_err(|e| e.to_string())?);
        // Opening the log finishes a snapshot install a crash interrupted.
        let mut storage = RaftLogStorage::open(db.clone()).map_err(|e| e.to_string())?;
        clean_staged_images(&snap_dir);
        let identity = bootstrap::open_or_bootstrap(cfg, &db, &mut storage)?;
        let (member_id, cluster_id) = (identity.member_id, identity.cluster_id);
        let incarnations = Arc::new(Incarnations::open(db.clone())?);
        let kv = Arc::new(KvStore::open(db.clone()).map_err(|e| format!("opening the keyspace: {e}"))?);
        let status = Arc::new(NodeStatus::new(cluster_id, member_id));
        status.set_applied(kv.consistent_index());
        storage.set_snapshot_source(snapshot_source(kv.clone(), db.clone()));

        let members = Arc::new(Members::new(identity.peers));
        members::refresh_transport(&db, &members);
        for id in bootstrap::removed_peers(&db) {
            members.mark_removed(id);
        }

        let mut rc = raft::Config::new(member_id);
        rc.election_tick = cfg.election_ticks();
        rc.heartbeat_tick = 1;
        // The apply thread may run ahead of the persisted commit index (it
        // starts on entries already on disk while the commit index is being
        // written): entries in between are handed out again, and skipped.
        rc.applied = kv.consistent_index().min(storage.hard_state().commit);
        rc.seed = rand::random();
        let raw = RawNode::new(&rc, storage).map_err(|e| format!("starting raft: {e}"))?;

        // Into the raft, apply and watch threads: senders that ring their doorbell.
        let (raft_bell, apply_bell, watch_bell) = (Doorbell::new(), Doorbell::new(), Doorbell::new());
        let (prop_tx, prop_rx) = doorbell::channel(PROPOSAL_QUEUE, &raft_bell);
        let (linear_tx, linear_rx) = doorbell::channel(READ_QUEUE, &raft_bell);
        let (ctrl_tx, ctrl_rx) = doorbell::channel(CONTROL_QUEUE, &raft_bell);
        let (report_tx, report_rx) = doorbell::channel(PEER_REPORT_QUEUE, &raft_bell);
        let (peer_tx, peer_rx) = doorbell::channel(PEER_QUEUE, &raft_bell);
        let (stop_tx, stop_rx) = doorbell::channel(1, &raft_bell);
        let (apply_tx, apply_rx) = doorbell::channel(APPLY_QUEUE, &apply_bell);
        let (watch_cmd_tx, watch_cmd_rx) = doorbell::channel(WATCH_CMD_QUEUE, &watch_bell);
        let (watch_ev_tx, watch_ev_rx) = doorbell::channel(WATCH_EVENT_QUEUE, &watch_bell);
        let raft_backlog = Arc::new(AtomicBool::new(false));
        let (local_tx, local_rx) = bounded(READ_QUEUE);
        let (fail_tx, fail_rx) = bounded(4);
        let wait = Arc::new(WaitRegistry::new(MAX_WAITERS));
        let request_timeout = Duration::from_millis(cfg.request_timeout_ms);
        let gate = Arc::new(RwLock::new(()));
        let leader = Arc::new(Notices::new(LeaderInfo::default()));
        let view = Arc::new(cluster_view::ViewCell::default());
        let alarms = Arc::new(alarms::AlarmSet::default());

        // Peers: one mio thread for every message connection.
        let peer_listener = std::net::TcpListener::bind(cfg.listen_peer)
            .map_err(|e| format!("cannot listen for peers on {}: {e}", cfg.listen_peer))?;
        peer_listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let peer_poll = mio::Poll::new().map_err(|e| e.to_string())?;
        let peer_waker = Arc::new(mio::Waker::new(peer_poll.registry(), peer_io::WAKER).map_err(|e| e.to_string())?);
        let (cmd_tx, cmd_rx) = bounded(PEER_CMD_QUEUE);
        let forward_slot = ForwardSlot::default();
        let peer_io = peer_io::PeerIo::new(
            peer_poll,
            mio::net::TcpListener::from_std(peer_listener),
            cmd_rx,
            peer_io::PeerIoConfig {
                cluster_id,
                member_id,
                snap_dir: snap_dir.clone(),
                incarnations: incarnations.clone(),
                forward: forward_slot.clone(),
                forwards_served: Arc::default(),
            },
            members.clone(),
            peer_tx,
            report_tx.clone(),
        )
        .map_err(|e| format!("peer I/O: {e}"))?;
        let peer_thread = spawn("peer-io", move || peer_io.run())?;
        let transport = Box::new(PeerTransport {
            cmds: cmd_tx,
            waker: peer_waker,
            members: members.clone(),
            reports: report_tx,
            cluster_id,
            db: db.clone(),
            sending_snapshots: Arc::default(),
        });

        let lease_applier = apply::lease::LeaseApplier::open(db.clone(), kv.clone(), status.clone())
            .map_err(|e| format!("opening the leases: {e}"))?;
        let lease_table: Arc<Mutex<LeaseTable>> = lease_applier.table().clone();

        let mut read_threads = Vec::new();
        for i in 0..READ_WORKERS {
            let worker = reads::ReadWorker {
                rx: local_rx.clone(),
                gate: gate.clone(),
                kv: kv.clone(),
                db: db.clone(),
                status: status.clone(),
                leases: lease_table.clone(),
                alarms: alarms.clone(),
                request_timeout,
            };
            read_threads.push(spawn(&format!("read-{i}"), move || worker.run())?);
        }

        let open_streams = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let watch_cfg = WatchConfig {
            progress_interval: Duration::from_millis(cfg.watch_progress_notify_interval_ms),
            max_response_bytes: cfg.max_request_bytes,
            ..WatchConfig::default()
        };
        let header_status = status.clone();
        // Behind the snapshot gate, like the read workers.
        let store = Arc::new(watch_store::GatedStore { kv: kv.clone(), gate: gate.clone() });
        let core =
            WatchCore::new(store, watch_cfg, Box::new(move |rev| header_status.header(rev)), open_streams.clone());
        let watch_stop = Arc::new(AtomicBool::new(false));
        let dispatcher = WatchDispatcher {
            core,
            bell: watch_bell.clone(),
            commands: watch_cmd_rx,
            events: watch_ev_rx,
            dropped: dropped.clone(),
            stop: watch_stop.clone(),
        };
        let watch_thread = spawn("watch", move || dispatcher.run())?;
        let watch = WatchHub::new(watch_cmd_tx, open_streams, MAX_WATCH_STREAMS);

        let router = apply::router::Router::new(
            apply::kv::KvApplier::new(status.clone()),
            apply::membership::MembershipApplier::open(db.clone(), status.clone(), member_id)?,
            lease_applier,
            apply::alarm::AlarmApplier::open(db.clone(), alarms.clone())?,
            alarms.clone(),
            Some(EventFeed::new(watch_ev_tx, dropped)),
        );
        let apply = apply::ApplyLoop {
            kv: kv.clone(),
            db: db.clone(),
            router,
            rx: apply_rx,
            bell: apply_bell,
            raft_bell: raft_bell.clone(),
            raft_backlog: raft_backlog.clone(),
            wait: wait.clone(),
            status: status.clone(),
            reads: local_tx.clone(),
            control: ctrl_tx.clone(),
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
                peer_reports: report_rx,
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
                members: members.clone(),
                incarnations,
                gate,
                snap_dir,
                attributes: crate::proto::internalpb::MemberAttributes {
                    id: member_id,
                    name: cfg.name.clone(),
                    client_urls: vec![format!("http://{client_addr}")],
                },
                leader: leader.clone(),
                view: view.clone(),
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

        let proposer = Proposer {
            member_id,
            max_request_bytes: cfg.max_request_bytes,
            request_timeout,
            ids: Arc::new(RequestIds::new(member_id)),
            wait,
            proposals: prop_tx,
        };
        // The lessor: keep-alives on every member, expiry on the leader
        // once it applied an entry of its own term.
        let lessor_bell = Doorbell::new();
        let (lease_cmd_tx, lease_cmd_rx) = doorbell::channel(LEASE_CMD_QUEUE, &lessor_bell);
        let (outcome_tx, outcome_rx) = doorbell::channel(LEASE_OUTCOME_QUEUE, &lessor_bell);
        let lease_streams = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (header_status, header_kv) = (status.clone(), kv.clone());
        let (primary_leader, primary_kv) = (leader.clone(), kv.clone());
        let lessor = Lessor::new(
            LessorParts {
                table: lease_table,
                proposer: Box::new(proposer.clone()),
                header: Box::new(move || header_status.header(header_kv.current_revision())),
                is_primary: Box::new(move || {
                    let l = primary_leader.current();
                    l.is_self && primary_kv.consistent_term() >= l.term
                }),
                outcomes: outcome_tx,
                open_streams: lease_streams.clone(),
            },
            LessorConfig { keep_alive_timeout: request_timeout, ..LessorConfig::default() },
        );
        let lessor_stop = Arc::new(AtomicBool::new(false));
        let lessor_thread = LessorThread {
            lessor,
            bell: lessor_bell.clone(),
            commands: lease_cmd_rx,
            outcomes: outcome_rx,
            stop: lessor_stop.clone(),
        };
        let lessor_thread = spawn("lessor", move || lessor_thread.run())?;
        let election = Duration::from_millis(cfg.election_ms);
        let lease = LeaseHandles {
            hub: LeaseHub::new(lease_cmd_tx, lease_streams, MAX_KEEP_ALIVE_STREAMS),
            min_ttl: crate::lease::min_ttl(election),
        };

        let reconfig = reconfig::Reconfig {
            cluster_id,
            rules: reconfig::Rules { strict: cfg.strict_reconfig_check, max_learners: cfg.max_learners },
            db: db.clone(),
            view,
            status: status.clone(),
            proposer: proposer.clone(),
            control: ctrl_tx,
        };
        let quota = Arc::new(quota::Quota::new(db.clone(), cfg.quota_bytes));
        let forwarder = Forwarder::new(member_id, cluster_id, members.clone());
        let corrupt_check = match cfg.corrupt_check_interval_ms {
            0 => None,
            ms => {
                let stop = Arc::new(AtomicBool::new(false));
                let check = corrupt_check::CorruptCheck {
                    member_id,
                    interval: Duration::from_millis(ms),
                    kv: kv.clone(),
                    members: members.clone(),
                    forwarder: forwarder.clone(),
                    proposer: proposer.clone(),
                    leader: leader.clone(),
                    alarms: alarms.clone(),
                    stop: stop.clone(),
                };
                Some((stop, spawn("corrupt-check", move || check.run())?))
            }
        };
        let (defrag, defrag_loop) = defrag::Defragmenter::new(db.clone(), quota.clone());
        let defrag_thread = spawn("defrag", defrag_loop)?;
        let (snapshots, snapshot_loop) = snapshot_stream::SnapshotStreams::new(db.clone(), status.clone());
        let snapshot_thread = spawn("snapshot", snapshot_loop)?;
        let auto_promote = if cfg.auto_promote_learners {
            let stop = Arc::new(AtomicBool::new(false));
            let duty =
                auto_promote::AutoPromote { reconfig: reconfig.clone(), leader: leader.clone(), stop: stop.clone() };
            Some((stop, spawn("auto-promote", move || duty.run())?))
        } else {
            None
        };
        let handles = ServerHandles {
            defrag,
            snapshots,
            member_id,
            reconfig,
            alarms: alarms.clone(),
            quota: quota.clone(),
            status,
            proposer,
            linear_reads: linear_tx,
            local_reads: local_tx,
            watch,
            lease,
            leader,
            forwarder,
        };
        Ok(Server {
            member_id,
            cluster_id,
            handles,
            kv,
            raft_stop: stop_tx,
            watch_stop,
            watch_bell,
            lessor_stop,
            lessor_bell,
            lessor_thread: Some(lessor_thread),
            raft_thread: Some(raft_thread),
            peer_thread: Some(peer_thread),
            apply_thread: Some(apply_thread),
            watch_thread: Some(watch_thread),
            read_threads,
            defrag_thread: Some(defrag_thread),
            snapshot_thread: Some(snapshot_thread),
            corrupt_check,
            auto_promote,
            failure: fail_rx,
            db,
            forward_slot,
        })
    }

    pub fn handles(&self) -> &ServerHandles {
        &self.handles
    }

    pub fn status(&self) -> &Arc<NodeStatus> {
        &self.handles.status
    }

    /// Where the client side installs how requests forwarded to this
    /// member are served (refused until then).
    pub fn forward_slot(&self) -> &ForwardSlot {
        &self.forward_slot
    }

    pub fn kv(&self) -> &Arc<KvStore> {
        &self.kv
    }

    /// Receives the reason if a thread fails and the node must stop.
    pub fn failures(&self) -> &Receiver<String> {
        &self.failure
    }

    /// Stops in order (the client side has stopped taking requests): the
    /// raft thread hands over what is committed; the apply thread applies
    /// it; the watch dispatcher and the read workers finish; everything is
    /// flushed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// See `stop`; does nothing the second time.
    pub fn shutdown(&mut self) {
        if self.raft_thread.is_none() {
            return;
        }
        self.handles.status.set_stopping();
        for (stop, t) in [self.corrupt_check.take(), self.auto_promote.take()].into_iter().flatten() {
            stop.store(true, Ordering::SeqCst);
            join(Some(t));
        }
        // Forwarded requests are refused from now on, and nothing keeps
        // the handles the forwarding closure holds.
        *self.forward_slot.write().unwrap_or_else(|e| e.into_inner()) = None;
        let _ = self.raft_stop.send(());
        join(self.raft_thread.take());
        // The transport went with the raft thread: the peer thread stops.
        join(self.peer_thread.take());
        join(self.apply_thread.take());
        self.watch_stop.store(true, Ordering::SeqCst);
        self.watch_bell.ring();
        join(self.watch_thread.take());
        self.lessor_stop.store(true, Ordering::SeqCst);
        self.lessor_bell.ring();
        join(self.lessor_thread.take());
        // The read workers stop once every sender is gone (the handles
        // given out are dropped by now).
        let (dead_tx, _) = bounded(1);
        self.handles.local_reads = dead_tx;
        for t in self.read_threads.drain(..) {
            join(Some(t));
        }
        // Likewise the defrag thread (after the one in progress, if any).
        self.handles.defrag = defrag::Defragmenter::new(self.db.clone(), self.handles.quota.clone()).0;
        join(self.defrag_thread.take());
        // And the snapshot thread (a stream in progress sees `stopping`).
        self.handles.snapshots = snapshot_stream::SnapshotStreams::new(self.db.clone(), self.handles.status.clone()).0;
        join(self.snapshot_thread.take());
        if let Err(e) = self.db.sync_wal() {
            log::error!("final sync failed: {e}");
        }
        log::info!("member {:x} stopped", self.member_id);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
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
