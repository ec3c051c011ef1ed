//! The durable Raft log: the RocksDB implementation of the consensus core's
//! `Storage` trait.
//!
//! Owns the `raft_log` column family (index u64 BE -> `Entry`) and, in
//! `raft_state`, the hard state and the compaction point (the metadata of the
//! last snapshot). Everything one `Ready` asks to persist is written in one
//! `WriteBatch`, synced when the Ready says so. The terms of every retained
//! entry are kept in memory and recent entries are cached, so the core's
//! constant `term` lookups and the leader's appends rarely touch the disk.
//!
//! The applied configuration (`ConfState`) belongs to the replicated state
//! machine and lives in `meta` (see [`put_applied_conf_state`]): a snapshot
//! image then describes itself. This module reads it back at start-up.

use super::db::{Db, CF_META, CF_RAFT_LOG, CF_RAFT_STATE};
use super::error::{StoreError, StoreResult};
use crate::proto::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use crate::raft::{RaftState, Storage, StorageError};
use prost::Message as _;
use rocksdb::{Direction, IteratorMode, WriteBatch};
use std::collections::VecDeque;
use std::sync::Arc;

const HARD_STATE_KEY: &[u8] = b"hard_state";
const SNAPSHOT_META_KEY: &[u8] = b"snapshot_meta";
/// In `meta`: the configuration as of the consistent (applied) index.
pub const APPLIED_CONF_STATE_KEY: &[u8] = b"conf_state";

/// Bytes of recent entries kept in memory (what a follower a little behind
/// needs, without reading the disk).
const CACHE_BYTES: usize = 4 * 1024 * 1024;

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Writes the applied configuration into `batch` (the apply thread does this
/// in the same batch as the entry that changed it).
pub fn put_applied_conf_state(db: &Db, batch: &mut WriteBatch, cs: &ConfState) {
    batch.put_cf(db.cf(CF_META), APPLIED_CONF_STATE_KEY, cs.encode_to_vec());
}

/// Reads the applied configuration, if any was recorded.
pub fn applied_conf_state(db: &Db) -> StoreResult<Option<ConfState>> {
    match db.get(CF_META, APPLIED_CONF_STATE_KEY)? {
        Some(v) => Ok(Some(ConfState::decode(v.as_slice())?)),
        None => Ok(None),
    }
}

/// A snapshot producer registered by the server: given the index the
/// follower needs and its id, returns the metadata of a snapshot it can send
/// (the image itself travels separately). Without one, `snapshot()` answers
/// with the compaction point.
pub type SnapshotSource = Box<dyn Fn(u64, u64) -> Result<Snapshot, StorageError> + Send>;

pub struct RaftLogStorage {
    db: Arc<Db>,
    hard_state: HardState,
    /// The compaction point: index, term and configuration of the last entry
    /// removed from the log (or of the installed snapshot).
    compacted: SnapshotMetadata,
    /// Terms of entries `compacted.index + 1 ..= last_index`.
    terms: VecDeque<u64>,
    /// The most recent entries, contiguous, ending at the last index.
    cache: VecDeque<Entry>,
    cache_bytes: usize,
    snapshot_source: Option<SnapshotSource>,
}

impl RaftLogStorage {
    /// Loads the log from the database.
    pub fn open(db: Arc<Db>) -> StoreResult<RaftLogStorage> {
        let hard_state = match db.get(CF_RAFT_STATE, HARD_STATE_KEY)? {
            Some(v) => HardState::decode(v.as_slice())?,
            None => HardState::default(),
        };
        let compacted = match db.get(CF_RAFT_STATE, SNAPSHOT_META_KEY)? {
            Some(v) => SnapshotMetadata::decode(v.as_slice())?,
            None => SnapshotMetadata::default(),
        };
        let mut terms = VecDeque::new();
        let from = index_key(compacted.index + 1);
        let iter = db.raw().iterator_cf(db.cf(CF_RAFT_LOG), IteratorMode::From(&from, Direction::Forward));
        for (expect, item) in (compacted.index + 1..).zip(iter) {
            let (k, v) = item?;
            let index = decode_index(&k)?;
            if index != expect {
                return Err(StoreError::Corrupt(format!("raft log has a gap: expected index {expect}, found {index}")));
            }
            let e = Entry::decode(v.as_ref())?;
            if e.index != index {
                return Err(StoreError::Corrupt(format!("raft log entry under key {index} has index {}", e.index)));
            }
            terms.push_back(e.term);
        }
        let mut s = RaftLogStorage {
            db,
            hard_state,
            compacted,
            terms,
            cache: VecDeque::new(),
            cache_bytes: 0,
            snapshot_source: None,
        };
        s.recover_install()?;
        if s.hard_state.commit > s.last() {
            return Err(StoreError::Corrupt(format!(
                "hard state commits {} but the log ends at {}",
                s.hard_state.commit,
                s.last()
            )));
        }
        Ok(s)
    }

    /// Persists the initial state of a member of a brand-new cluster: the
    /// bootstrap entries and the hard state that commits them. Refuses a
    /// storage that already holds a log.
    pub fn bootstrap(&mut self, entries: &[Entry], hard_state: HardState) -> StoreResult<()> {
        self.bootstrap_with(entries, hard_state, |_, _| {})
    }

    /// `bootstrap`, with `extra` writes (the cluster identity) in the same
    /// synced batch, so a crash never leaves half a bootstrap.
    pub fn bootstrap_with(
        &mut self,
        entries: &[Entry],
        hard_state: HardState,
        extra: impl FnOnce(&mut WriteBatch, &Db),
    ) -> StoreResult<()> {
        if self.last() != 0 || self.hard_state != HardState::default() {
            return Err(StoreError::Corrupt("refusing to bootstrap over an existing raft log".into()));
        }
        self.persist_with(entries, Some(hard_state), true, extra)
    }

    /// Registers the server's snapshot producer.
    pub fn set_snapshot_source(&mut self, source: SnapshotSource) {
        self.snapshot_source = Some(source);
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn first(&self) -> u64 {
        self.compacted.index + 1
    }

    fn last(&self) -> u64 {
        self.compacted.index + self.terms.len() as u64
    }

    /// Persists what one `Ready` asks: `entries` (truncating any conflicting
    /// suffix) and the hard state, in one batch, synced if `sync`.
    pub fn persist(&mut self, entries: &[Entry], hard_state: Option<HardState>, sync: bool) -> StoreResult<()> {
        self.persist_with(entries, hard_state, sync, |_, _| {})
    }

    fn persist_with(
        &mut self,
        entries: &[Entry],
        hard_state: Option<HardState>,
        sync: bool,
        extra: impl FnOnce(&mut WriteBatch, &Db),
    ) -> StoreResult<()> {
        let mut batch = WriteBatch::default();
        extra(&mut batch, &self.db);
        let cf = self.db.cf(CF_RAFT_LOG);
        let mut first_new = None;
        if let Some(first) = entries.first() {
            if first.index < self.first() {
                return Err(StoreError::Corrupt(format!(
                    "appending at {} before the first index {}",
                    first.index,
                    self.first()
                )));
            }
            if first.index > self.last() + 1 {
                return Err(StoreError::Corrupt(format!(
                    "appending at {} leaves a gap after the last index {}",
                    first.index,
                    self.last()
                )));
            }
            for (i, e) in entries.iter().enumerate() {
                if e.index != first.index + i as u64 {
                    return Err(StoreError::Corrupt("entries to append are not contiguous".into()));
                }
                batch.put_cf(cf, index_key(e.index), e.encode_to_vec());
            }
            let new_last = first.index + entries.len() as u64 - 1;
            if new_last < self.last() {
                // The new entries replace a longer conflicting suffix.
                batch.delete_range_cf(cf, index_key(new_last + 1), index_key(self.last() + 1));
            }
            first_new = Some(first.index);
        }
        if let Some(hs) = &hard_state {
            batch.put_cf(self.db.cf(CF_RAFT_STATE), HARD_STATE_KEY, hs.encode_to_vec());
        }
        // Written unsynced, then the log files synced: durable all the same
        // once this returns, but a synced write would hold RocksDB's write
        // queue for the whole fsync, and the apply thread's writes (which
        // need no sync) would wait behind it.
        self.db.write(batch, false)?;
        if sync {
            self.db.sync_wal()?;
        }

        // Only once durable does the in-memory view change.
        if let Some(first) = first_new {
            let keep = (first - self.first()) as usize;
            self.terms.truncate(keep);
            self.terms.extend(entries.iter().map(|e| e.term));
            self.cache_append(entries);
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
        Ok(())
    }

    fn cache_append(&mut self, entries: &[Entry]) {
        let first = entries[0].index;
        // Drop cached entries the new ones replace, or all if not contiguous.
        match self.cache.front().map(|e| e.index) {
            Some(front) if first > front && first <= front + self.cache.len() as u64 => {
                let keep = (first - front) as usize;
                for e in self.cache.drain(keep..) {
                    self.cache_bytes -= e.data.len();
                }
            }
            Some(_) => {
                self.cache.clear();
                self.cache_bytes = 0;
            }
            None => {}
        }
        for e in entries {
            self.cache_bytes += e.data.len();
            self.cache.push_back(e.clone());
        }
        while self.cache_bytes > CACHE_BYTES {
            match self.cache.pop_front() {
                Some(e) => self.cache_bytes -= e.data.len(),
                None => break,
            }
        }
    }

    /// Removes entries up to and including `index` (which must be applied
    /// and covered by a snapshot of the state machine): they become the
    /// compaction point.
    pub fn compact(&mut self, index: u64) -> StoreResult<()> {
        if index <= self.compacted.index {
            return Ok(());
        }
        if index > self.last() {
            return Err(StoreError::Corrupt(format!("compacting to {index} beyond the last index {}", self.last())));
        }
        let term = self.terms[(index - self.first()) as usize];
        let conf_state = applied_conf_state(&self.db)?;
        let meta = SnapshotMetadata { index, term, conf_state };
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.db.cf(CF_RAFT_LOG), index_key(0), index_key(index + 1));
        batch.put_cf(self.db.cf(CF_RAFT_STATE), SNAPSHOT_META_KEY, meta.encode_to_vec());
        // Compaction removes the only copy of those entries: the state
        // machine they produced must be durable first.
        self.db.write(batch, true)?;
        let drop = (index - self.compacted.index) as usize;
        self.terms.drain(..drop);
        while self.cache.front().is_some_and(|e| e.index <= index) {
            if let Some(e) = self.cache.pop_front() {
                self.cache_bytes -= e.data.len();
            }
        }
        self.compacted = meta;
        Ok(())
    }

    /// Replaces the whole log with an installed snapshot's point: every
    /// entry goes, the hard state commits at least up to it.
    pub fn apply_snapshot(&mut self, meta: &SnapshotMetadata) -> StoreResult<()> {
        self.apply_snapshot_with(meta, |_, _| {})
    }

    /// `apply_snapshot`, with `extra` writes in the same synced batch.
    pub(crate) fn apply_snapshot_with(
        &mut self,
        meta: &SnapshotMetadata,
        extra: impl FnOnce(&mut WriteBatch, &Db),
    ) -> StoreResult<()> {
        let mut hs = self.hard_state;
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        let mut batch = WriteBatch::default();
        extra(&mut batch, &self.db);
        batch.delete_range_cf(self.db.cf(CF_RAFT_LOG), index_key(0), index_key(u64::MAX));
        batch.put_cf(self.db.cf(CF_RAFT_STATE), SNAPSHOT_META_KEY, meta.encode_to_vec());
        batch.put_cf(self.db.cf(CF_RAFT_STATE), HARD_STATE_KEY, hs.encode_to_vec());
        self.db.write(batch, true)?;
        self.hard_state = hs;
        self.compacted = meta.clone();
        self.terms.clear();
        self.cache.clear();
        self.cache_bytes = 0;
        Ok(())
    }

    /// The compaction point (the metadata of the last snapshot).
    pub fn compacted(&self) -> &SnapshotMetadata {
        &self.compacted
    }

    fn read_entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>, StorageError> {
        let mut out = Vec::new();
        let mut size = 0u64;
        // Serve from the cache when it covers `low`.
        if let Some(front) = self.cache.front().map(|e| e.index) {
            if low >= front {
                for e in self.cache.iter().skip((low - front) as usize).take((high - low) as usize) {
                    size += e.encoded_len() as u64;
                    if !out.is_empty() && size > max_size {
                        break;
                    }
                    out.push(e.clone());
                }
                return Ok(out);
            }
        }
        let from = index_key(low);
        let iter = self.db.raw().iterator_cf(self.db.cf(CF_RAFT_LOG), IteratorMode::From(&from, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(|e| StorageError::Other(e.into_string()))?;
            let index = decode_index(&k).map_err(|e| StorageError::Other(e.to_string()))?;
            if index >= high {
                break;
            }
            let e =
                Entry::decode(v.as_ref()).map_err(|e| StorageError::Other(format!("raft log entry {index}: {e}")))?;
            size += e.encoded_len() as u64;
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e);
        }
        if out.first().map(|e| e.index) != Some(low) {
            return Err(StorageError::Other(format!("raft log entry {low} is missing on disk")));
        }
        Ok(out)
    }
}

fn decode_index(k: &[u8]) -> StoreResult<u64> {
    let raw: [u8; 8] = k.try_into().map_err(|_| StoreError::Corrupt(format!("raft log key of {} bytes", k.len())))?;
    Ok(u64::from_be_bytes(raw))
}

impl Storage for RaftLogStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        let conf_state = match applied_conf_state(&self.db) {
            Ok(Some(cs)) => cs,
            Ok(None) => self.compacted.conf_state.clone().unwrap_or_default(),
            Err(e) => return Err(StorageError::Other(e.to_string())),
        };
        Ok(RaftState { hard_state: self.hard_state, conf_state })
    }

    fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>, StorageError> {
        if low < self.first() {
            return Err(StorageError::Compacted);
        }
        if high > self.last() + 1 {
            return Err(StorageError::Unavailable);
        }
        if low >= high {
            return Ok(Vec::new());
        }
        self.read_entries(low, high, max_size)
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        if index == self.compacted.index {
            return Ok(self.compacted.term);
        }
        if index < self.compacted.index {
            return Err(StorageError::Compacted);
        }
        if index > self.last() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.terms[(index - self.first()) as usize])
    }

    fn first_index(&self) -> u64 {
        self.first()
    }

    fn last_index(&self) -> u64 {
        self.last()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> Result<Snapshot, StorageError> {
        match &self.snapshot_source {
            Some(source) => source(request_index, to),
            None => Ok(Snapshot { data: Default::default(), metadata: Some(self.compacted.clone()) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64, data: &'static [u8]) -> Entry {
        Entry { index, term, data: bytes::Bytes::from_static(data), ..Default::default() }
    }

    fn open(dir: &std::path::Path) -> RaftLogStorage {
        RaftLogStorage::open(Arc::new(Db::open(dir).unwrap())).unwrap()
    }

    #[test]
    fn persists_and_reloads_entries_and_hard_state() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.persist(
                &[ent(1, 1, b"a"), ent(2, 1, b"b"), ent(3, 2, b"c")],
                Some(HardState { term: 2, vote: 1, commit: 2 }),
                true,
            )
            .unwrap();
        }
        let s = open(dir.path());
        assert_eq!((s.first_index(), s.last_index()), (1, 3));
        assert_eq!(s.term(3), Ok(2));
        assert_eq!(s.term(0), Ok(0));
        assert_eq!(s.hard_state(), HardState { term: 2, vote: 1, commit: 2 });
        let got = s.entries(1, 4, u64::MAX).unwrap();
        assert_eq!(got.iter().map(|e| e.data.as_ref()).collect::<Vec<_>>(), vec![&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn conflicting_suffix_is_truncated_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.persist(&[ent(1, 1, b"a"), ent(2, 1, b"b"), ent(3, 1, b"c"), ent(4, 1, b"d")], None, true).unwrap();
            s.persist(&[ent(2, 3, b"x")], None, true).unwrap();
            assert_eq!(s.last_index(), 2);
            assert_eq!(s.entries(2, 3, u64::MAX).unwrap()[0].data.as_ref(), b"x", "served from the cache");
        }
        let s = open(dir.path());
        assert_eq!(s.last_index(), 2, "entries 3 and 4 were deleted");
        assert_eq!(s.term(2), Ok(3));
        assert_eq!(s.entries(1, 3, u64::MAX).unwrap()[1].data.as_ref(), b"x", "read from disk");
    }

    #[test]
    fn gaps_and_reads_out_of_range_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.persist(&[ent(1, 1, b"a")], None, true).unwrap();
        assert!(s.persist(&[ent(3, 1, b"c")], None, true).is_err(), "gap refused");
        assert_eq!(s.entries(1, 5, u64::MAX), Err(StorageError::Unavailable));
        assert_eq!(s.term(2), Err(StorageError::Unavailable));
    }

    #[test]
    fn compaction_and_size_limits() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            let entries: Vec<Entry> = (1..=10).map(|i| ent(i, 1 + i / 5, b"0123456789")).collect();
            s.persist(&entries, Some(HardState { term: 3, vote: 0, commit: 10 }), true).unwrap();
            s.compact(6).unwrap();
            assert_eq!(s.first_index(), 7);
            assert_eq!(s.term(6), Ok(2));
            assert_eq!(s.entries(5, 8, u64::MAX), Err(StorageError::Compacted));
            let one = ent(7, 2, b"0123456789").encoded_len() as u64;
            assert_eq!(s.entries(7, 11, 2 * one).unwrap().len(), 2);
            assert_eq!(s.entries(7, 11, 0).unwrap().len(), 1, "at least one entry");
        }
        let s = open(dir.path());
        assert_eq!((s.first_index(), s.last_index()), (7, 10));
        assert_eq!(s.term(6), Ok(2), "the compaction point survives a restart");
        let snap = s.snapshot(0, 0).unwrap();
        assert_eq!(snap.metadata.map(|m| (m.index, m.term)), Some((6, 2)));
    }

    #[test]
    fn snapshot_replaces_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.persist(&[ent(1, 1, b"a"), ent(2, 1, b"b")], Some(HardState { term: 1, vote: 0, commit: 1 }), true)
                .unwrap();
            s.apply_snapshot(&SnapshotMetadata { index: 50, term: 4, conf_state: None }).unwrap();
            assert_eq!((s.first_index(), s.last_index()), (51, 50));
            s.persist(&[ent(51, 4, b"z")], None, true).unwrap();
        }
        let s = open(dir.path());
        assert_eq!((s.first_index(), s.last_index()), (51, 51));
        assert_eq!(s.term(50), Ok(4));
        assert_eq!(s.hard_state().commit, 50);
    }

    #[test]
    fn bootstrap_only_on_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let (entries, hs, _) = crate::raft::bootstrap_entries(&[1, 2, 3]);
        s.bootstrap(&entries, hs).unwrap();
        assert_eq!(s.last_index(), 3);
        assert!(s.bootstrap(&entries, hs).is_err());
    }
}
