//! `KvStore`: the keyspace as the rest of the node sees it. Opening
//! (rebuilding the key index from `kv`, resuming an unfinished physical
//! compaction), published reads (`range`, `range_chunks`, `hash_kv`), the
//! entry point for writes (`begin`), waiting for compaction, and `reload`.
//!
//! Owns the shared state (`Inner`): the key index and the published
//! revisions behind one `RwLock`. Readers hold the read lock only while
//! walking the index, never while reading values; the apply thread takes the
//! write lock only to publish a committed batch. Must never expose a
//! partially applied batch and never panic on stored bytes.

use super::apply::ApplyBatch;
use super::compact::{worker, Compactor};
use super::error::MvccError;
use super::hash::{hash_kv, HashKv};
use super::key_index::{IdxRev, KeyIndex, KeyRange};
use super::range::{
    assemble, collect, fetch_many, fetch_one, has_filters, is_default_ordering, kv_bytes, plan, Layers,
};
use super::revision::{
    decode_i64, decode_kv, decode_rev_key, decode_u64, META_CONSISTENT_INDEX, META_CONSISTENT_TERM,
    META_FINISHED_COMPACT, META_SCHEDULED_COMPACT,
};
use super::validate::DEFAULT_MAX_TXN_OPS;
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse};
use crate::proto::mvccpb::KeyValue;
use crate::storage::db::{Db, CF_KV, CF_META};
use bytes::Bytes;
use rocksdb::IteratorMode;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Tunables. `Default` is what the server uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// etcd's `--max-txn-ops`, enforced again at apply time.
    pub max_txn_ops: usize,
    /// Revisions examined per RocksDB batch by physical compaction.
    pub compaction_batch_size: usize,
    /// Keys compacted per write-lock hold when compacting the key index.
    pub index_compaction_chunk: usize,
    /// Test hook: the compaction worker stops for good (as if the process
    /// died) after this many batches since open.
    #[doc(hidden)]
    pub compaction_stop_after_batches: Option<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            compaction_batch_size: 1000,
            index_compaction_chunk: 10_000,
            compaction_stop_after_batches: None,
        }
    }
}

/// What readers see, replaced atomically at publication.
pub(crate) struct State {
    pub index: KeyIndex,
    /// The published (fully applied) revision.
    pub current_rev: i64,
    /// The scheduled compaction revision; reads below it fail.
    pub compact_rev: i64,
    pub consistent_index: u64,
    pub consistent_term: u64,
}

pub(crate) struct Inner {
    pub db: Arc<Db>,
    state: RwLock<State>,
    apply_lock: Mutex<()>,
    pub compactor: Compactor,
    pub opts: Options,
    /// Times the state was replaced wholesale (`reload`, after a snapshot):
    /// the history a watcher relied on may have jumped.
    pub reloads: std::sync::atomic::AtomicU64,
}

impl Inner {
    pub fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Compacts the key index at `c`, a chunk of keys per write-lock hold so
    /// readers interleave. Reads at or above `c` give the same answers before,
    /// during and after, and reads below `c` are already refused.
    pub fn compact_index(&self, c: i64) {
        let chunk = self.opts.index_compaction_chunk.max(1);
        let mut after: Option<Box<[u8]>> = None;
        loop {
            after = self.write_state().index.compact_chunk(c, after.as_deref(), chunk);
            if after.is_none() {
                return;
            }
        }
    }
}

/// The MVCC keyspace over the node's RocksDB. `Send + Sync`; share it as
/// `Arc<KvStore>`. Dropping it stops and joins the compaction worker.
pub struct KvStore {
    inner: Arc<Inner>,
    worker: Option<JoinHandle<()>>,
}

struct Loaded {
    state: State,
    scheduled: i64,
    finished: i64,
}

/// Reads `meta` and rebuilds the key index from `kv` (streaming: one value
/// decoded at a time), then compacts the index at the scheduled compaction.
fn load(db: &Db) -> Result<Loaded, MvccError> {
    let meta_u64 = |key: &[u8], what: &str| -> Result<Option<u64>, MvccError> {
        db.get(CF_META, key)?.map(|v| decode_u64(what, &v)).transpose()
    };
    let meta_i64 = |key: &[u8], what: &str| -> Result<Option<i64>, MvccError> {
        db.get(CF_META, key)?.map(|v| decode_i64(what, &v)).transpose()
    };
    let consistent_index = meta_u64(META_CONSISTENT_INDEX, "consistent_index")?.unwrap_or(0);
    let consistent_term = meta_u64(META_CONSISTENT_TERM, "consistent_term")?.unwrap_or(0);
    let finished = meta_i64(META_FINISHED_COMPACT, "finished_compact_rev")?.unwrap_or(-1);
    let scheduled = meta_i64(META_SCHEDULED_COMPACT, "scheduled_compact_rev")?.unwrap_or(-1).max(finished);

    let mut index = KeyIndex::new();
    let mut max_main = 0i64;
    for item in db.raw().iterator_cf(db.cf(CF_KV), IteratorMode::Start) {
        let (k, v) = item?;
        let (rev, tomb) = decode_rev_key(&k)?;
        let kv = decode_kv(rev, tomb, &v)?;
        index.append(&kv.key, IdxRev::new(rev, tomb));
        max_main = max_main.max(rev.main);
    }
    if scheduled > 0 {
        index.compact(scheduled);
    }
    // A fresh store is at revision 1, as etcd; a compaction may have removed
    // the newest revisions (tombstones), but never the revision itself.
    let current_rev = max_main.max(scheduled).max(1);
    Ok(Loaded {
        state: State { index, current_rev, compact_rev: scheduled, consistent_index, consistent_term },
        scheduled,
        finished,
    })
}

impl KvStore {
    /// Opens over the node's database with default options.
    pub fn open(db: Arc<Db>) -> Result<KvStore, MvccError> {
        KvStore::open_with(db, Options::default())
    }

    /// Opens over the node's database: rebuilds the key index from `kv` and
    /// resumes an unfinished physical compaction.
    pub fn open_with(db: Arc<Db>, opts: Options) -> Result<KvStore, MvccError> {
        let loaded = load(&db)?;
        let inner = Arc::new(Inner {
            db,
            state: RwLock::new(loaded.state),
            apply_lock: Mutex::new(()),
            compactor: Compactor::new(loaded.scheduled, loaded.finished),
            opts,
            reloads: Default::default(),
        });
        let w = Arc::clone(&inner);
        let worker = std::thread::Builder::new()
            .name("mvcc-compact".into())
            .spawn(move || worker(w))
            .map_err(|e| MvccError::Storage(format!("starting the compaction worker: {e}")))?;
        Ok(KvStore { inner, worker: Some(worker) })
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// How many times the whole state was replaced (snapshot installs).
    pub fn reloads(&self) -> u64 {
        self.inner.reloads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The published (fully applied) revision.
    pub fn current_revision(&self) -> i64 {
        self.inner.read_state().current_rev
    }

    /// The scheduled compaction revision (-1 before any compaction, as etcd).
    pub fn compact_revision(&self) -> i64 {
        self.inner.read_state().compact_rev
    }

    /// The Raft index of the last applied entry.
    pub fn consistent_index(&self) -> u64 {
        self.inner.read_state().consistent_index
    }

    pub fn consistent_term(&self) -> u64 {
        self.inner.read_state().consistent_term
    }

    /// The replay guard for the apply loop: true when the Raft entry `index`
    /// was already applied (it is at or below the persisted consistent
    /// index) and must be skipped. See also `ApplyBatch::already_applied`.
    pub fn already_applied(&self, index: u64) -> bool {
        index <= self.consistent_index()
    }

    /// The highest compaction revision physically completed.
    pub fn finished_compact_revision(&self) -> i64 {
        self.inner.compactor.lock().finished
    }

    /// Number of keys in the index (live or with history).
    pub fn index_len(&self) -> usize {
        self.inner.read_state().index.len()
    }

    /// A read at the published state. Any thread, concurrently with writes.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        let range = KeyRange::new(&req.key, &req.range_end);
        // The snapshot is taken under the lock: it holds every published
        // revision, and no physical deletion of a later compaction, so a
        // slow reader never loses the values it was promised.
        let (current, p, c, snap) = {
            let st = self.inner.read_state();
            let p = plan(req, st.current_rev, st.compact_rev)?;
            let c = collect(&st.index, &Layers::none(), &range, p.at, p.want);
            let snap = if c.revs.is_empty() { None } else { Some(self.inner.db.raw().snapshot()) };
            (st.current_rev, p, c, snap)
        };
        let compacted = || self.compact_revision();
        let kvs = match (&c.revs[..], &snap) {
            ([(key, rev)], Some(snap)) => {
                vec![fetch_one(&self.inner.db, &Layers::none(), key, *rev, p.at, &compacted, Some(snap))?]
            }
            (revs, Some(snap)) => fetch_many(&self.inner.db, revs, p.at, &compacted, snap)?,
            (_, None) => Vec::new(),
        };
        Ok(assemble(req, current, c.count, kvs))
    }

    /// The same result as `range`, cut into responses of at most about
    /// `chunk_bytes` of key + value bytes each (at least one key-value per
    /// chunk). Every chunk carries the header and the total `count`; `more`
    /// is set on the last chunk only. With the default ordering and no
    /// revision filters the chunks are produced lazily from the index, so
    /// only one chunk of values is in memory at a time; a custom sort or
    /// revision filters need the whole result first (as etcd, whose
    /// streaming range refuses those options).
    pub fn range_chunks(&self, req: &RangeRequest, chunk_bytes: usize) -> Result<RangeChunks, MvccError> {
        let chunk_bytes = chunk_bytes.max(1);
        if !is_default_ordering(req) || has_filters(req) || req.count_only {
            let resp = self.range(req)?;
            return Ok(RangeChunks {
                inner: Arc::clone(&self.inner),
                header: resp.header.unwrap_or_default(),
                count: resp.count,
                more: resp.more,
                chunk_bytes,
                keys_only: false,
                source: Source::Ready(resp.kvs.into()),
                done: false,
            });
        }
        let range = KeyRange::new(&req.key, &req.range_end);
        let st = self.inner.read_state();
        let p = plan(req, st.current_rev, st.compact_rev)?;
        let count = collect(&st.index, &Layers::none(), &range, p.at, 0).count;
        let limit = if req.limit > 0 { req.limit as u64 } else { u64::MAX };
        Ok(RangeChunks {
            inner: Arc::clone(&self.inner),
            header: ResponseHeader { revision: st.current_rev, ..Default::default() },
            count,
            more: req.limit > 0 && count as u64 > limit,
            chunk_bytes,
            keys_only: req.keys_only,
            source: Source::Lazy {
                key: req.key.clone(),
                range_end: req.range_end.clone(),
                at: p.at,
                left: limit.min(count.max(0) as u64),
                after: None,
                pending: VecDeque::new(),
            },
            done: false,
        })
    }

    /// A transaction that writes nothing, evaluated against the published
    /// state at one revision, beside the apply thread (linearizable once the
    /// caller waited for its read index; serializable otherwise). A
    /// transaction that would write is refused.
    pub fn txn_read(&self, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        let mut batch = ApplyBatch::read_only(&self.inner);
        let (resp, events) = batch.txn(req)?;
        if !events.is_empty() {
            return Err(MvccError::corrupt("a transaction with writes was served as a read"));
        }
        Ok(resp)
    }

    /// HashKV at `revision` (0 = current).
    pub fn hash_kv(&self, revision: i64) -> Result<HashKv, MvccError> {
        hash_kv(&self.inner, revision)
    }

    /// Starts a batch of writes. The apply thread only; a second batch waits
    /// until the first is committed or dropped.
    pub fn begin(&self) -> ApplyBatch<'_> {
        let guard = self.inner.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        ApplyBatch::new(&self.inner, guard)
    }

    /// Blocks until physical compaction up to `rev` has finished, at most `timeout`.
    pub fn wait_compacted(&self, rev: i64, timeout: Duration) -> Result<(), MvccError> {
        self.inner.compactor.wait(rev, timeout)
    }

    /// Stops the compaction worker between two batches until the returned
    /// guard is dropped or `reload`ed. Hold it while replacing the column
    /// families (snapshot install), then call `CompactionPause::reload`.
    pub fn pause_compaction(&self) -> CompactionPause<'_> {
        CompactionPause { store: self, _batch: self.inner.compactor.pause() }
    }

    /// Rebuilds everything from the column families (after a snapshot
    /// replaced them). Waits for a batch in progress (no `ApplyBatch` may be
    /// open on this thread) and for the compaction worker's current batch.
    pub fn reload(&self) -> Result<(), MvccError> {
        self.pause_compaction().reload()
    }
}

/// See `KvStore::pause_compaction`.
pub struct CompactionPause<'a> {
    store: &'a KvStore,
    _batch: std::sync::MutexGuard<'a, ()>,
}

impl CompactionPause<'_> {
    /// Rebuilds the index and revisions from disk, then lets the worker go on
    /// with whatever compaction the new data has scheduled.
    pub fn reload(self) -> Result<(), MvccError> {
        let inner = &self.store.inner;
        let _apply = inner.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = load(&inner.db)?;
        *inner.write_state() = loaded.state;
        inner.reloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        inner.compactor.reset(loaded.scheduled, loaded.finished);
        Ok(())
    }
}

impl Drop for KvStore {
    fn drop(&mut self) {
        self.inner.compactor.stop();
        if let Some(w) = self.worker.take() {
            if w.join().is_err() {
                log::error!("mvcc: the compaction worker panicked");
            }
        }
    }
}

enum Source {
    Ready(VecDeque<KeyValue>),
    Lazy {
        key: Bytes,
        range_end: Bytes,
        at: i64,
        /// Key-values still to produce (the limit, or the count).
        left: u64,
        after: Option<Bytes>,
        pending: VecDeque<(Bytes, crate::mvcc::Revision)>,
    },
}

/// Index entries fetched per lock hold by a lazy chunked range.
const LAZY_STEP: usize = 256;

/// The responses of `KvStore::range_chunks`, produced on demand.
pub struct RangeChunks {
    inner: Arc<Inner>,
    header: ResponseHeader,
    count: i64,
    more: bool,
    chunk_bytes: usize,
    keys_only: bool,
    source: Source,
    done: bool,
}

impl RangeChunks {
    fn next_kv(&mut self) -> Result<Option<KeyValue>, MvccError> {
        match &mut self.source {
            Source::Ready(q) => Ok(q.pop_front()),
            Source::Lazy { key, range_end, at, left, after, pending } => {
                if pending.is_empty() && *left > 0 {
                    let range = KeyRange::new(key, range_end);
                    let st = self.inner.read_state();
                    if st.compact_rev > *at {
                        return Err(MvccError::Compacted);
                    }
                    let want = (*left).min(LAZY_STEP as u64) as usize;
                    let mut visit = |k: &[u8], w: &[IdxRev]| {
                        if let Some(r) = super::key_index::latest_at(w, *at) {
                            if !r.is_tombstone() {
                                pending.push_back((Bytes::copy_from_slice(k), r.rev()));
                            }
                        }
                        pending.len() < want
                    };
                    match after {
                        None => st.index.visit(&range, &mut visit),
                        Some(a) => st.index.visit_after(&range, a, &mut visit),
                    }
                    drop(st);
                    if let Some((k, _)) = pending.back() {
                        *after = Some(k.clone());
                    }
                }
                let Some((k, rev)) = pending.pop_front() else { return Ok(None) };
                *left = left.saturating_sub(1);
                let at = *at;
                let inner = &self.inner;
                let compacted = || inner.read_state().compact_rev;
                let mut kv = fetch_one(&inner.db, &Layers::none(), &k, rev, at, &compacted, None)?;
                if self.keys_only {
                    kv.value = Bytes::new();
                }
                Ok(Some(kv))
            }
        }
    }
}

impl Iterator for RangeChunks {
    type Item = Result<RangeResponse, MvccError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut kvs = Vec::new();
        let mut bytes = 0usize;
        let mut last = false;
        loop {
            match self.next_kv() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(None) => {
                    last = true;
                    break;
                }
                Ok(Some(kv)) => {
                    bytes += kv_bytes(&kv);
                    kvs.push(kv);
                    if bytes >= self.chunk_bytes {
                        break;
                    }
                }
            }
        }
        // Look ahead so the final chunk is known (and carries `more`).
        if !last {
            match &self.source {
                Source::Ready(q) => last = q.is_empty(),
                Source::Lazy { left, pending, .. } => last = *left == 0 && pending.is_empty(),
            }
        }
        if last {
            self.done = true;
        }
        Some(Ok(RangeResponse { header: Some(self.header), kvs, more: last && self.more, count: self.count }))
    }
}
