//! raftkv: a strongly consistent, distributed key-value store with the
//! semantics of etcd v3, built as a synchronous thread-per-node actor system.
//!
//! Module map (see `docs/architecture.md` for the threads and data flow):
//! - [`raft`]: the consensus core, a pure deterministic state machine.
//! - [`storage`]: RocksDB, the durable Raft log, state-machine snapshots.
//! - [`mvcc`]: the revisioned keyspace with etcd's semantics.
//! - [`server`]: a node: its threads, apply, reads, request routing.
//! - [`plumbing`]: framing, errors, doorbells, outboxes, waiters, ids, notices
//!   (below every layer).
//! - [`node`]: a whole node: the server's threads plus client I/O.
//! - [`api`]: the client protocol: client I/O, dispatch.
//! - [`watch`]: watchers and the watch dispatcher.
//! - [`lease`]: the lease table, keep-alive streams and the lessor.
//! - [`transport`]: how Raft messages reach peers.
//! - [`sim`]: deterministic simulation of whole Raft clusters, for tests.
//! - [`proto`]: generated protobuf types.
//! - [`client`]: the blocking client library.
//! - [`ctl`]: raftkvctl, the etcdctl look-alike.
//! - [`bench`]: raftkv-bench, the load generator.

pub mod api;
pub mod auth;
pub mod bench;
pub mod client;
pub mod ctl;
pub mod lease;
pub mod mvcc;
pub mod node;
pub mod plumbing;
pub mod proto;
pub mod raft;
pub mod server;
pub mod sim;
pub mod storage;
pub mod transport;
pub mod watch;
