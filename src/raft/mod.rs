//! The Raft consensus core: a pure, deterministic state machine in the style
//! of etcd's raft package.
//!
//! Owns elections (pre-vote, check-quorum), log replication with flow
//! control, membership changes (single-step and joint consensus), leadership
//! transfer, read-index (safe and lease-based) and snapshots. It never does
//! I/O, reads a clock, spawns a thread or uses a global RNG: the application
//! drives it through [`RawNode`] and carries out each [`Ready`].

mod confchange;
mod config;
mod errors;
mod follower;
mod inflights;
mod leader;
mod log_unstable;
mod progress;
mod quorum;
mod raft_core;
mod raft_log;
mod raw_node;
mod read_only;
mod status;
mod storage;
mod tracker;

pub use confchange::{conf_change_to_v2, enters_joint, is_leave_joint};
pub use config::{Config, ReadOnlyOption};
pub use errors::{DropReason, Error, Result, StorageError};
pub use progress::{Progress, ProgressState};
pub use quorum::{JointConfig, MajorityConfig, VoteResult};
pub use raft_core::{Raft, SoftState, StateRole, NONE};
pub use raw_node::{RawNode, Ready, SnapshotStatus};
pub use read_only::ReadState;
pub use status::{ProgressStatus, Status};
pub use storage::{bootstrap_entries, MemStorage, RaftState, Storage};
pub use tracker::{ProgressTracker, TrackerConfig};
