//! Peer transport: how Raft messages leave the node.
//!
//! Owns the `Transport` seam the raft thread sends through. A single-node
//! cluster uses [`NoPeers`]; the mio peer transport (connections, framing,
//! snapshots) plugs in here for multi-node clusters.

use crate::proto::raftpb::Message;

/// Sends Raft messages to peers. Must never block the raft thread: a
/// message that cannot be queued is dropped (Raft retries) and the peer is
/// reported unreachable through the raft thread's control channel.
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
