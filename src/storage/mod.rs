//! Everything a node keeps on disk: one RocksDB database with the column
//! families of the design brief, the durable Raft log, and snapshots of the
//! state machine.
//!
//! Owns the byte layout of `raft_log` and `raft_state` and the snapshot
//! format; the MVCC keyspace (`crate::mvcc`) owns `kv` and `meta`.

pub mod db;
pub mod error;
pub mod raft_log;
pub mod snapshot;

pub use db::Db;
pub use error::{StoreError, StoreResult};
pub use raft_log::RaftLogStorage;
