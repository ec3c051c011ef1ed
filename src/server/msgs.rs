//! The messages the node's threads exchange over bounded channels.

use crate::plumbing::outbox::Responder;
use crate::proto::etcdserverpb::{CompactionResponse, LeaseTimeToLiveRequest, RangeRequest, TxnRequest};
use crate::proto::raftpb::{ConfChangeV2, ConfState, Entry};
use bytes::Bytes;

/// Something for the Raft log. Its waiter is registered under `id` first.
#[derive(Debug)]
pub struct Proposal {
    pub id: u64,
    pub payload: Payload,
}

#[derive(Debug)]
pub enum Payload {
    /// An encoded `InternalRequest`: a normal entry.
    Request(Bytes),
    /// A membership change; its context names the waiter.
    ConfChange(ConfChangeV2),
}

/// A read served from the local state machine.
#[derive(Debug)]
pub enum ReadKind {
    Range(RangeRequest),
    /// A transaction without writes (checked by the caller).
    Txn(TxnRequest),
    Status,
    MemberList,
    HashKv(i64),
    LeaseTimeToLive(LeaseTimeToLiveRequest),
    LeaseLeases,
    /// Answer `response` once physical compaction up to `revision` is done.
    PhysicalCompaction {
        revision: i64,
        response: CompactionResponse,
    },
}

#[derive(Debug)]
pub struct ReadJob {
    pub kind: ReadKind,
    pub responder: Responder,
}

/// From other threads to the raft thread.
#[derive(Debug)]
pub enum Control {
    /// The state machine is durable up to this applied index: the log may be
    /// compacted, keeping the catch-up entries.
    Compact(u64),
    /// etcd's MoveLeader: hand leadership to `to`, answered once it leads
    /// (or refused, or timed out at `deadline`).
    TransferLeader { to: u64, responder: Responder, deadline: std::time::Instant },
}

/// From the raft thread to the apply thread, in order.
#[derive(Debug)]
pub enum ApplyMsg {
    /// Committed entries, with the configuration each configuration-change
    /// entry produced (already applied to the consensus core).
    Entries { entries: Vec<Entry>, conf_states: Vec<(u64, ConfState)> },
    /// Linearizable reads confirmed at `index`: served once it is applied.
    Reads { index: u64, jobs: Vec<ReadJob> },
    /// Answered once everything sent before is applied (before a snapshot
    /// replaces the state machine).
    Barrier(crossbeam_channel::Sender<()>),
    /// A snapshot replaced the state machine's column families: appliers
    /// reload what they keep in memory.
    Reloaded,
}
