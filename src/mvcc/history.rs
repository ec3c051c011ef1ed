//! Reading the keyspace's history as watch events: every write of a range of
//! revisions, in revision order, from the `kv` column family (what a watcher
//! that fell behind, or asked for a past start revision, catches up from).
//!
//! Owns only the reading; never filters for a watcher and never reads below
//! the compaction revision (those revisions may already be gone).

use super::error::MvccError;
use super::revision::{decode_kv, decode_rev_key, rev_key_lower_bound};
use super::store::KvStore;
use crate::proto::etcdserverpb::RangeRequest;
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::db::CF_KV;
use rocksdb::{Direction, IteratorMode};

/// A run of whole revisions of history.
#[derive(Debug, Default)]
pub struct HistoryChunk {
    /// Events of revisions `from..=last`, in revision order.
    pub events: Vec<Event>,
    /// The last revision the chunk covers completely.
    pub last: i64,
}

impl KvStore {
    /// The events of revisions `from..=to`, whole revisions only, stopping
    /// after the first revision that brings the count to `max_events` (a
    /// revision is never split). Fails with `Compacted` when `from` is below
    /// the compaction revision. `to` beyond the published revision is
    /// clipped to it.
    pub fn history(&self, from: i64, to: i64, max_events: usize) -> Result<HistoryChunk, MvccError> {
        let (current, compacted) = {
            let st = self.inner().read_state();
            (st.current_rev, st.compact_rev)
        };
        if from < compacted {
            return Err(MvccError::Compacted);
        }
        let to = to.min(current);
        let mut chunk = HistoryChunk { events: Vec::new(), last: from - 1 };
        if from > to {
            chunk.last = to.max(from - 1);
            return Ok(chunk);
        }
        let db = &self.inner().db;
        let start = rev_key_lower_bound(from);
        let iter = db.raw().iterator_cf(db.cf(CF_KV), IteratorMode::From(&start, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            let (rev, tombstone) = decode_rev_key(&k)?;
            if rev.main > to {
                break;
            }
            if rev.main > chunk.last && chunk.events.len() >= max_events {
                // The previous revision was the last one that fits.
                return Ok(chunk);
            }
            let kv = decode_kv(rev, tombstone, &v)?;
            let kind = if tombstone { EventType::Delete } else { EventType::Put };
            chunk.events.push(Event { r#type: kind as i32, kv: Some(kv), prev_kv: None });
            chunk.last = rev.main;
        }
        // Everything up to `to` was read (revisions without a stored write
        // have no events).
        chunk.last = to;
        Ok(chunk)
    }

    /// The value of `key` just before revision `rev` (a watch event's
    /// prev_kv), or `None` if there was none or it was compacted away.
    pub fn prev_kv(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let req = RangeRequest { key: key.to_vec().into(), revision: rev - 1, limit: 1, ..Default::default() };
        self.range(&req).ok()?.kvs.into_iter().next()
    }
}
