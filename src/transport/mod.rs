//! Peer transport: how Raft messages and snapshots travel between members.
//!
//! Owns the `Transport` seam the raft thread sends through, and the peer
//! I/O. A single-node cluster uses [`NoPeers`]; a cluster uses
//! [`PeerTransport`]: one mio thread for every message connection
//! (`peer_io`), one thread per snapshot in flight (`snapshot`), and the
//! connections that forward client requests to the leader (`forward`).

pub mod forward;
pub mod incarnation;
pub mod join;
pub mod members;
pub mod peer_io;
pub mod snapshot;

use crate::plumbing::doorbell::RingingSender;
use crate::proto::raftpb::{Message, MessageType};
use crate::storage::Db;
use crossbeam_channel::{Sender, TrySendError};
use members::Members;
use peer_io::Cmd;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// What the transport tells the raft thread about its peers.
#[derive(Debug)]
pub enum PeerReport {
    /// A message to this peer was dropped: Raft should probe it.
    Unreachable(u64),
    /// How a snapshot sent to this peer ended.
    Snapshot(u64, crate::raft::SnapshotStatus),
    /// The peer came back with a new data directory: what it had is gone.
    LostState(u64),
    /// The peer refused us: this member was removed from the cluster.
    RemovedByPeer(u64),
}

/// Sends Raft messages to peers. Must never block the raft thread: a
/// message that cannot be queued is dropped (Raft retries) and the peer is
/// reported unreachable through the raft thread's report channel.
pub trait Transport: Send {
    fn send(&mut self, msgs: Vec<Message>);
}

/// The transport of a cluster of one: there is nobody to send to.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            log::warn!("dropping a {:?} to {:x}: no peer transport", m.msg_type(), m.to);
        }
    }
}

/// The raft thread's handle on the peer I/O thread and snapshot senders.
pub struct PeerTransport {
    pub cmds: Sender<Cmd>,
    pub waker: Arc<mio::Waker>,
    pub members: Arc<Members>,
    pub reports: RingingSender<PeerReport>,
    pub cluster_id: u64,
    pub db: Arc<Db>,
    /// Peers with a snapshot on its way (one at a time per peer).
    pub sending_snapshots: Arc<Mutex<HashSet<u64>>>,
}

impl PeerTransport {
    fn send_snapshot(&self, m: Message) {
        let to = m.to;
        let Some(addr) = self.members.addr(to) else {
            let _ = self.reports.try_send(PeerReport::Snapshot(to, crate::raft::SnapshotStatus::Failure));
            return;
        };
        {
            let mut busy = self.sending_snapshots.lock().unwrap_or_else(|e| e.into_inner());
            if !busy.insert(to) {
                return; // one is on its way; Raft waits for its report
            }
        }
        let o = snapshot::Outgoing {
            msg: m,
            addr,
            cluster_id: self.cluster_id,
            db: self.db.clone(),
            reports: self.reports.clone(),
        };
        let busy = self.sending_snapshots.clone();
        let spawned = std::thread::Builder::new().name("snapshot-send".into()).spawn(move || {
            snapshot::send(o);
            busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&to);
        });
        if let Err(e) = spawned {
            log::error!("cannot start a snapshot sender: {e}");
            self.sending_snapshots.lock().unwrap_or_else(|e| e.into_inner()).remove(&to);
            let _ = self.reports.try_send(PeerReport::Snapshot(to, crate::raft::SnapshotStatus::Failure));
        }
    }
}

impl Transport for PeerTransport {
    fn send(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        for m in msgs {
            if m.msg_type() == MessageType::MsgSnap {
                self.send_snapshot(m);
                continue;
            }
            let to = m.to;
            match self.cmds.try_send(Cmd::Send(Box::new(m))) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    let _ = self.reports.try_send(PeerReport::Unreachable(to));
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        let _ = self.waker.wake();
    }
}

impl Drop for PeerTransport {
    fn drop(&mut self) {
        let _ = self.cmds.try_send(Cmd::Stop);
        let _ = self.waker.wake();
    }
}
