//! HashKV: a deterministic CRC-32 over the logical keyspace up to a revision.
//!
//! Owns the definition of what is hashed: every `kv` entry (key bytes, then
//! value bytes, in revision order) with revision <= the hashed revision that
//! is either after the compaction revision or kept by the compaction (the
//! latest non-tombstone write of its key at or below it). Revisions a
//! compaction dropped are skipped whether or not physical compaction removed
//! them yet, so replicas that applied the same entries agree. Must never
//! hold the index lock while reading RocksDB, and never load values beyond
//! one at a time.

use super::error::MvccError;
use super::revision::decode_rev_key;
use super::store::Inner;
use crate::storage::db::CF_KV;
use rocksdb::IteratorMode;

/// The answer of `KvStore::hash_kv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    /// CRC-32 (IEEE) over `b"kv"`, then key and value bytes of each hashed revision.
    pub hash: u32,
    /// The compaction revision in force when hashing.
    pub compact_revision: i64,
    /// The revision hashed (the current revision when 0 was asked).
    pub hash_revision: i64,
    /// The store's current revision (for the response header).
    pub current_revision: i64,
}

pub(crate) fn hash_kv(inner: &Inner, revision: i64) -> Result<HashKv, MvccError> {
    let (rev, compact, current, kept, snapshot) = {
        let st = inner.read_state();
        let (current, compact) = (st.current_rev, st.compact_rev);
        // etcd: a revision below the compaction is compacted, above the
        // current one is future, 0 means current.
        if revision > 0 && revision < compact {
            return Err(MvccError::Compacted);
        }
        if revision > current {
            return Err(MvccError::FutureRev);
        }
        let rev = if revision == 0 { current } else { revision };
        let kept = if compact > 0 { st.index.kept_at(compact) } else { Vec::new() };
        // Taken under the lock: holds everything published so far, and no
        // physical deletion of a later compaction.
        (rev, compact, current, kept, inner.db.raw().snapshot())
    };
    let mut h = crc32fast::Hasher::new();
    h.update(b"kv");
    for item in snapshot.iterator_cf(inner.db.cf(CF_KV), IteratorMode::Start) {
        let (k, v) = item?;
        let (r, tomb) = decode_rev_key(&k)?;
        if r.main > rev {
            break;
        }
        if r.main <= compact && (tomb || kept.binary_search(&r).is_err()) {
            continue;
        }
        h.update(&k);
        h.update(&v);
    }
    Ok(HashKv { hash: h.finalize(), compact_revision: compact, hash_revision: rev, current_revision: current })
}
