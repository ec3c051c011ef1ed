//! The MVCC keyspace: etcd v3's revisioned key-value store (Range, Put,
//! DeleteRange, Txn, Compact, HashKV) over the `kv` and `meta` column
//! families of the node's RocksDB.
//!
//! | file | owns |
//! | --- | --- |
//! | `revision.rs` | `Revision`, the byte layout of `kv` keys and `meta` values |
//! | `key_index.rs` | the in-memory index key -> revisions, logical compaction |
//! | `range.rs` | the range engine: live keys at a revision, count, values, filters, sort, limit |
//! | `store.rs` | `KvStore`: open / rebuild, published reads, chunked ranges, reload |
//! | `apply.rs` | `ApplyBatch`: put, delete_range, txn, compact, commit |
//! | `compact.rs` | the physical compaction worker |
//! | `hash.rs` | HashKV |
//! | `history.rs` | history as watch events (catch-up of watchers) |
//! | `validate.rs` | request validation done before proposing |
//! | `error.rs` | `MvccError`: etcd's wording and stable codes |
//!
//! The apply loop, in the server:
//! ```text
//! let mut batch = store.begin();
//! for entry in committed_entries {
//!     if batch.already_applied(entry.index) { continue; } // replay after a crash
//!     let result = batch.put(&req);  // or delete_range / txn / compact; an Err stages nothing
//!     ... // answer the client with result, send events to the watch dispatcher
//! }
//! batch.commit(last_index, last_term)?; // one RocksDB write, then readers see it all
//! ```

mod apply;
mod compact;
mod error;
mod hash;
mod history;
mod key_index;
mod range;
mod revision;
mod store;
mod validate;

pub use apply::ApplyBatch;
pub use error::MvccError;
pub use hash::HashKv;
pub use history::HistoryChunk;
pub use key_index::{IdxRev, KeyIndex, KeyRange};
pub use revision::{decode_rev_key, encode_rev_key, Revision, RevisionScan};
pub use store::{CompactionPause, KvStore, Options, RangeChunks};
pub use validate::{
    txn_is_read_only, txn_is_serializable, validate_delete_range, validate_put, validate_range, validate_txn,
    DEFAULT_MAX_TXN_OPS,
};

/// Byte layout constants, for tools and tests that read the column families.
pub mod layout {
    pub use super::revision::{
        META_CONSISTENT_INDEX, META_CONSISTENT_TERM, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT, REV_KEY_LEN,
        TOMBSTONE_MARK,
    };
}

#[cfg(test)]
mod tests;
