//! The `Storage` trait through which the core reads the persisted log, and an
//! in-memory implementation for tests and the simulation.
//!
//! The core only ever reads through `Storage`; the application writes to its
//! storage (entries, hard state, snapshots) between `Ready` and `advance`.
//! Implementations must never hand the core an entry that was not persisted.

use super::errors::StorageError;
use crate::proto::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use prost::Message as _;

/// The persisted state a node restarts from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RaftState {
    pub hard_state: HardState,
    pub conf_state: ConfState,
}

/// Read access to the persisted Raft log. Indexes are 1-based; the entry
/// before `first_index()` is represented by its term only (the last compacted
/// entry, or the snapshot's last entry).
pub trait Storage {
    /// The hard state and configuration to restart from.
    fn initial_state(&self) -> Result<RaftState, StorageError>;

    /// Entries in `[low, high)`, at most `max_size` bytes in total but always
    /// at least one entry when the range is not empty.
    /// `Compacted` if `low < first_index()`, `Unavailable` if
    /// `high > last_index() + 1`.
    fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>, StorageError>;

    /// The term of the entry at `index`, for `index` in
    /// `[first_index() - 1, last_index()]`.
    fn term(&self, index: u64) -> Result<u64, StorageError>;

    /// The index of the first entry still available. Implementations keep
    /// it in memory: the core asks for it constantly.
    fn first_index(&self) -> u64;

    /// The index of the last entry (equal to `first_index() - 1` when
    /// empty). Kept in memory, like `first_index`.
    fn last_index(&self) -> u64;

    /// The most recent snapshot, to be sent to node `to`, which needs the
    /// log from `request_index + 1`. An implementation that builds snapshots
    /// lazily may return `SnapshotTemporarilyUnavailable` while it does. The
    /// snapshot's configuration must contain `to` (a node refuses a snapshot
    /// from before it joined); when the newest one does not, the application
    /// should make a newer one.
    fn snapshot(&self, request_index: u64, to: u64) -> Result<Snapshot, StorageError>;
}

/// Truncates `entries` so their encoded size stays within `max_size`, keeping
/// at least one entry.
pub(crate) fn limit_size(entries: &mut Vec<Entry>, max_size: u64) {
    if entries.len() <= 1 {
        return;
    }
    let mut size = 0u64;
    let keep = entries
        .iter()
        .take_while(|e| {
            size += e.encoded_len() as u64;
            size <= max_size
        })
        .count()
        .max(1);
    entries.truncate(keep);
}

/// What an initial member of a new cluster persists before it starts: one
/// committed `AddNode` entry per voter at term 1, the hard state that commits
/// them, and the configuration they produce. Members added later replay the
/// entries from the log (or get a snapshot), so every member derives the same
/// configuration from the same log; applying an `AddNode` for an existing
/// voter again is harmless.
pub fn bootstrap_entries(voters: &[u64]) -> (Vec<Entry>, HardState, ConfState) {
    use crate::proto::raftpb::{ConfChange, ConfChangeType, EntryType};
    let entries: Vec<Entry> = voters
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let cc =
                ConfChange { change_type: ConfChangeType::ConfChangeAddNode as i32, node_id: id, ..Default::default() };
            Entry {
                entry_type: EntryType::EntryConfChange as i32,
                term: 1,
                index: i as u64 + 1,
                data: cc.encode_to_vec().into(),
            }
        })
        .collect();
    let hard_state = HardState { term: 1, vote: 0, commit: entries.len() as u64 };
    let conf_state = ConfState { voters: voters.to_vec(), ..Default::default() };
    (entries, hard_state, conf_state)
}

/// An in-memory `Storage`. `entries[0]` is a dummy entry that records the
/// index and term of the last compacted entry (or of the snapshot).
#[derive(Debug, Clone)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
    /// Set when the core needed a snapshot newer than the one held (see
    /// [`MemStorage::take_snapshot_request`]).
    snapshot_requested: std::cell::Cell<bool>,
}

impl Default for MemStorage {
    fn default() -> Self {
        MemStorage::new()
    }
}

impl MemStorage {
    /// An empty storage with no configuration.
    pub fn new() -> MemStorage {
        MemStorage {
            hard_state: HardState::default(),
            snapshot: Snapshot { data: Default::default(), metadata: Some(SnapshotMetadata::default()) },
            entries: vec![Entry::default()],
            snapshot_requested: std::cell::Cell::new(false),
        }
    }

    /// Whether the core asked for a snapshot newer than the one held since
    /// the last call; the application answers with `create_snapshot`.
    pub fn take_snapshot_request(&self) -> bool {
        self.snapshot_requested.replace(false)
    }

    /// The storage of an initial member of a brand-new cluster (see
    /// [`bootstrap_entries`]).
    pub fn bootstrap(voters: &[u64]) -> MemStorage {
        let mut s = MemStorage::new();
        let (entries, hard_state, conf_state) = bootstrap_entries(voters);
        s.entries.extend(entries);
        s.set_hard_state(hard_state);
        s.set_conf_state(conf_state);
        s
    }

    fn offset(&self) -> u64 {
        self.entries[0].index
    }

    fn last(&self) -> u64 {
        self.offset() + self.entries.len() as u64 - 1
    }

    /// The snapshot metadata (also records the configuration at bootstrap).
    fn metadata_mut(&mut self) -> &mut SnapshotMetadata {
        self.snapshot.metadata.get_or_insert_with(Default::default)
    }

    /// Records the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// The recorded hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Records the configuration (the one of the current snapshot).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.metadata_mut().conf_state = Some(cs);
    }

    /// Replaces the whole log with a snapshot. Fails with `SnapshotOutOfDate`
    /// when the snapshot is older than the current one.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<(), StorageError> {
        let meta = snap.metadata.clone().unwrap_or_default();
        let current = self.snapshot.metadata.as_ref().map_or(0, |m| m.index);
        if meta.index < current {
            return Err(StorageError::SnapshotOutOfDate);
        }
        self.entries = vec![Entry { term: meta.term, index: meta.index, ..Default::default() }];
        self.snapshot = snap;
        if self.hard_state.commit < meta.index {
            self.hard_state.commit = meta.index;
        }
        if self.hard_state.term < meta.term {
            self.hard_state.term = meta.term;
        }
        Ok(())
    }

    /// Makes a snapshot at `index` (which must be applied, hence in the log)
    /// holding `data`, with configuration `cs`. Entries are kept: compact
    /// them separately with [`MemStorage::compact`].
    pub fn create_snapshot(
        &mut self,
        index: u64,
        cs: Option<ConfState>,
        data: bytes::Bytes,
    ) -> Result<Snapshot, StorageError> {
        let current = self.snapshot.metadata.as_ref().map_or(0, |m| m.index);
        if index <= current {
            return Err(StorageError::SnapshotOutOfDate);
        }
        if index > self.last() {
            return Err(StorageError::Unavailable);
        }
        let term = self.entries[(index - self.offset()) as usize].term;
        let meta = self.metadata_mut();
        meta.index = index;
        meta.term = term;
        if let Some(cs) = cs {
            meta.conf_state = Some(cs);
        }
        self.snapshot.data = data;
        Ok(self.snapshot.clone())
    }

    /// Discards entries up to and including `compact_index`.
    pub fn compact(&mut self, compact_index: u64) -> Result<(), StorageError> {
        if compact_index <= self.offset() {
            return Err(StorageError::Compacted);
        }
        if compact_index > self.last() {
            return Err(StorageError::Unavailable);
        }
        let i = (compact_index - self.offset()) as usize;
        let dummy = Entry { term: self.entries[i].term, index: compact_index, ..Default::default() };
        self.entries.drain(..=i);
        self.entries.insert(0, dummy);
        Ok(())
    }

    /// Appends entries, truncating any conflicting suffix. Entries already
    /// compacted are ignored.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first_new) = entries.first() else { return Ok(()) };
        let first = self.offset() + 1;
        let last_new = first_new.index + entries.len() as u64 - 1;
        if last_new < first {
            return Ok(());
        }
        let entries = if first > first_new.index { &entries[(first - first_new.index) as usize..] } else { entries };
        let at = entries[0].index - self.offset();
        if at as usize > self.entries.len() {
            return Err(StorageError::Other(format!(
                "missing log entry [last: {}, append at: {}]",
                self.last(),
                entries[0].index
            )));
        }
        self.entries.truncate(at as usize);
        self.entries.extend_from_slice(entries);
        Ok(())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState, StorageError> {
        let conf_state = self.snapshot.metadata.as_ref().and_then(|m| m.conf_state.clone()).unwrap_or_default();
        Ok(RaftState { hard_state: self.hard_state, conf_state })
    }

    fn entries(&self, low: u64, high: u64, max_size: u64) -> Result<Vec<Entry>, StorageError> {
        if low <= self.offset() {
            return Err(StorageError::Compacted);
        }
        if high > self.last() + 1 {
            return Err(StorageError::Unavailable);
        }
        let lo = (low - self.offset()) as usize;
        let hi = (high - self.offset()) as usize;
        let mut out = self.entries[lo..hi].to_vec();
        limit_size(&mut out, max_size);
        Ok(out)
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        if index < self.offset() {
            return Err(StorageError::Compacted);
        }
        if index > self.last() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.entries[(index - self.offset()) as usize].term)
    }

    fn first_index(&self) -> u64 {
        self.offset() + 1
    }

    fn last_index(&self) -> u64 {
        self.last()
    }

    fn snapshot(&self, _request_index: u64, to: u64) -> Result<Snapshot, StorageError> {
        let cs = self.snapshot.metadata.as_ref().and_then(|m| m.conf_state.as_ref());
        let has_to =
            cs.is_some_and(|cs| cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).any(|&id| id == to));
        if to != 0 && !has_to {
            self.snapshot_requested.set(true);
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry { index, term, ..Default::default() }
    }

    fn store(entries: &[(u64, u64)]) -> MemStorage {
        let mut s = MemStorage::new();
        s.entries = entries.iter().map(|&(i, t)| ent(i, t)).collect();
        s
    }

    #[test]
    fn term_respects_compaction_and_end() {
        let s = store(&[(3, 3), (4, 4), (5, 5)]);
        assert_eq!(s.term(2), Err(StorageError::Compacted));
        assert_eq!(s.term(3), Ok(3));
        assert_eq!(s.term(5), Ok(5));
        assert_eq!(s.term(6), Err(StorageError::Unavailable));
        assert_eq!(s.first_index(), 4);
        assert_eq!(s.last_index(), 5);
    }

    #[test]
    fn entries_are_limited_by_size_but_never_empty() {
        let s = store(&[(3, 3), (4, 4), (5, 5), (6, 6)]);
        assert_eq!(s.entries(3, 5, u64::MAX), Err(StorageError::Compacted));
        assert_eq!(s.entries(4, 8, u64::MAX), Err(StorageError::Unavailable));
        assert_eq!(s.entries(4, 7, u64::MAX).unwrap().len(), 3);
        assert_eq!(s.entries(4, 7, 0).unwrap().len(), 1, "at least one entry");
        let one = ent(4, 4).encoded_len() as u64;
        assert_eq!(s.entries(4, 7, 2 * one).unwrap().len(), 2);
    }

    #[test]
    fn append_truncates_conflicts_and_ignores_compacted() {
        let mut s = store(&[(3, 3), (4, 4), (5, 5)]);
        s.append(&[ent(4, 6), ent(5, 6)]).unwrap();
        assert_eq!(s.term(4), Ok(6));
        assert_eq!(s.last_index(), 5);
        s.append(&[ent(2, 3), ent(3, 3), ent(4, 6), ent(5, 6), ent(6, 6)]).unwrap();
        assert_eq!(s.last_index(), 6);
        s.append(&[ent(6, 7)]).unwrap();
        assert_eq!(s.term(6), Ok(7));
        assert!(matches!(s.append(&[ent(9, 7)]), Err(StorageError::Other(_))), "gap refused");
    }

    #[test]
    fn compact_and_snapshot() {
        let mut s = store(&[(3, 3), (4, 4), (5, 5)]);
        assert_eq!(s.compact(3), Err(StorageError::Compacted));
        assert_eq!(s.compact(6), Err(StorageError::Unavailable));
        s.compact(4).unwrap();
        assert_eq!(s.first_index(), 5);
        assert_eq!(s.term(4), Ok(4));
        let snap =
            s.create_snapshot(5, Some(ConfState { voters: vec![1, 2], ..Default::default() }), "x".into()).unwrap();
        assert_eq!(snap.metadata.as_ref().map(|m| (m.index, m.term)), Some((5, 5)));
        assert_eq!(s.create_snapshot(4, None, "y".into()), Err(StorageError::SnapshotOutOfDate));

        let mut other = MemStorage::new();
        other.apply_snapshot(snap.clone()).unwrap();
        assert_eq!(other.first_index(), 6);
        assert_eq!(other.last_index(), 5);
        assert_eq!(other.term(5), Ok(5));
        assert_eq!(other.initial_state().unwrap().conf_state.voters, vec![1, 2]);
        assert_eq!(other.hard_state().commit, 5);
    }
}
