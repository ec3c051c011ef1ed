//! raftkv: a strongly consistent, distributed key-value store with the
//! semantics of etcd v3, built as a synchronous thread-per-node actor system.
//!
//! Module map (see `docs/architecture.md` for the threads and data flow):
//! - [`raft`]: the consensus core, a pure deterministic state machine.
//! - [`storage`]: RocksDB, the durable Raft log, state-machine snapshots.
//! - [`mvcc`]: the revisioned keyspace with etcd's semantics.
//! - [`server`]: a node: its threads, apply, reads, request routing.
//! - [`api`]: the client protocol: framing, errors, I/O, dispatch.
//! - [`transport`]: how Raft messages reach peers.
//! - [`sim`]: deterministic simulation of whole Raft clusters, for tests.
//! - [`proto`]: generated protobuf types.
//! - [`client`]: the blocking client library.
//! - [`ctl`]: raftkvctl, the etcdctl look-alike.
//! - [`bench`]: raftkv-bench, the load generator.

pub mod api;
pub mod bench;
pub mod client;
pub mod ctl;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod server;
pub mod sim;
pub mod storage;
pub mod transport;
