//! Watches: etcd's Watch API served from this member's applied state.
//!
//! ```text
//!  apply thread ──EventFeed (bounded, never blocks)──►┐
//!  client-io ──WatchHub / WatchStreamOwner (bounded)──►  watch dispatcher ──StreamSender──► connection outboxes
//!                                                     ┘        │ catch-up and replay
//!                                                              ▼
//!                                                   KvStore::history (RocksDB)
//! ```
//!
//! | file | owns |
//! | --- | --- |
//! | `watcher.rs` | one watcher: its range, filters, options and position (`next_rev`) |
//! | `index.rs` | the synced group, indexed by key for live events |
//! | `feed.rs` | the hand-off of committed events from the apply thread |
//! | `hub.rs` | the handle client I/O opens streams through, and the stream owner it keeps |
//! | `core.rs` | the dispatcher's state machine: streams, create / cancel / progress, live delivery, catch-up, progress notifications; steppable without threads |
//! | `dispatcher.rs` | the dispatcher thread around the core |
//!
//! Guarantees (as etcd's): per watcher, events are sent in revision order,
//! each once, all of a revision's events in one response (unless the
//! watcher asked for fragments), with no gap; a progress notification never
//! claims a revision whose events are not sent yet. A watcher whose
//! connection cannot take more output is never waited for: it leaves the
//! synced group and is caught up from storage later.
//!
//! Never blocks the apply thread or a client; never writes the keyspace.

pub mod core;
pub mod dispatcher;
pub mod feed;
pub mod hub;
mod index;
pub mod watcher;

pub use self::core::{WatchConfig, WatchCore, WatchStore};
pub use feed::EventFeed;
pub use hub::{WatchCmd, WatchHub};

/// A stream: its connection and request id.
pub type StreamKey = (u64, u64);

/// A watcher's identity inside the dispatcher (not its client-visible id).
pub type WatcherId = u64;

/// etcd's `clientv3.InvalidWatchID`: the id of a failed create's answer
/// and of progress answers that concern the whole stream.
pub const INVALID_WATCH_ID: i64 = -1;

#[cfg(test)]
mod tests;
