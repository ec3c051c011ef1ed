//! What the watch dispatcher reads, as the server gives it: the keyspace
//! behind the snapshot gate, so a history read never sees a state machine
//! half replaced by a snapshot install (the install holds the gate alone;
//! the read waits, then sees the new state and its compaction revision).
//!
//! Owns only the gating; never decides what a watcher gets.

use crate::mvcc::{HistoryChunk, KvStore, MvccError};
use crate::proto::mvccpb::KeyValue;
use crate::watch::WatchStore;
use std::sync::{Arc, RwLock};

pub struct GatedStore {
    pub kv: Arc<KvStore>,
    /// Read workers and this hold it shared; a snapshot install alone.
    pub gate: Arc<RwLock<()>>,
}

impl WatchStore for GatedStore {
    fn current_revision(&self) -> i64 {
        self.kv.current_revision()
    }
    fn compact_revision(&self) -> i64 {
        self.kv.compact_revision()
    }
    fn history(&self, from: i64, to: i64, max_events: usize) -> Result<HistoryChunk, MvccError> {
        let _shared = self.gate.read().unwrap_or_else(|e| e.into_inner());
        self.kv.history(from, to, max_events)
    }
    fn prev_kv(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let _shared = self.gate.read().unwrap_or_else(|e| e.into_inner());
        self.kv.prev_kv(key, rev)
    }
    fn reloads(&self) -> u64 {
        self.kv.reloads()
    }
}
