//! Errors of the consensus core.
//!
//! Owns the error types returned by the core and by its `Storage`. Expected
//! conditions (a compacted index, a proposal that cannot be accepted now) are
//! ordinary values here; only broken invariants inside the core panic.

use std::fmt;

/// Why a proposal was not appended to the log. The caller may retry later
/// (for example once a leader is known) or report the reason to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No leader is known, so the proposal cannot be forwarded.
    NoLeader,
    /// Proposal forwarding to the leader is disabled on this node.
    ForwardingDisabled,
    /// A leadership transfer is in progress; proposals wait until it ends.
    TransferInProgress,
    /// The leader holds too many uncommitted bytes already.
    UncommittedLimit,
    /// This node was removed from the configuration.
    NotInConfig,
    /// A configuration change is already pending (proposed but not applied).
    ConfChangePending,
    /// The configuration is joint and must be left before another change.
    MustLeaveJoint,
    /// An empty change (leave joint) was proposed outside a joint configuration.
    NotJoint,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::NoLeader => "no leader",
            DropReason::ForwardingDisabled => "proposal forwarding is disabled",
            DropReason::TransferInProgress => "leadership transfer in progress",
            DropReason::UncommittedLimit => "too many uncommitted entries",
            DropReason::NotInConfig => "node is not in the configuration",
            DropReason::ConfChangePending => "a configuration change is already pending",
            DropReason::MustLeaveJoint => "must leave the joint configuration first",
            DropReason::NotJoint => "not in a joint configuration",
        })
    }
}

/// Errors a `Storage` implementation returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The requested index is older than the first available entry.
    Compacted,
    /// The requested index is newer than the last available entry.
    Unavailable,
    /// The snapshot to apply is older than the storage's current one.
    SnapshotOutOfDate,
    /// No snapshot can be produced right now; the core retries later.
    SnapshotTemporarilyUnavailable,
    /// A failure of the underlying medium (I/O, corruption). The node that
    /// sees it must stop: its in-memory state may no longer match the disk.
    Other(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Compacted => f.write_str("requested index is unavailable due to compaction"),
            StorageError::Unavailable => f.write_str("requested entry at index is unavailable"),
            StorageError::SnapshotOutOfDate => f.write_str("requested index is older than the existing snapshot"),
            StorageError::SnapshotTemporarilyUnavailable => f.write_str("snapshot is temporarily unavailable"),
            StorageError::Other(why) => write!(f, "storage failure: {why}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// Errors returned by the core's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A proposal (or read request) was not accepted; see the reason.
    ProposalDropped(DropReason),
    /// A message type that only the node itself may generate came from outside.
    StepLocalMsg,
    /// A response came from a node that is not in the configuration.
    StepPeerNotFound,
    /// A message that does not decode or carries an unknown type.
    InvalidMessage(String),
    /// A configuration change that cannot be applied; the reason says why.
    InvalidConfChange(String),
    /// The configuration given to the core is invalid.
    InvalidConfig(String),
    /// The storage failed in a way the core cannot handle (see
    /// [`StorageError::Other`]): the node must stop.
    Storage(StorageError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ProposalDropped(why) => write!(f, "raft proposal dropped: {why}"),
            Error::StepLocalMsg => f.write_str("raft: cannot step raft local message"),
            Error::StepPeerNotFound => f.write_str("raft: cannot step as peer not found"),
            Error::InvalidMessage(why) => write!(f, "raft: invalid message: {why}"),
            Error::InvalidConfChange(why) => write!(f, "raft: invalid configuration change: {why}"),
            Error::InvalidConfig(why) => write!(f, "raft: invalid config: {why}"),
            Error::Storage(e) => write!(f, "raft: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
}

/// Result of the core's API.
pub type Result<T> = std::result::Result<T, Error>;
