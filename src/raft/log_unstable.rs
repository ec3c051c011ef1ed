//! The tail of the log that is not yet persisted: entries appended by this
//! node (as leader) or received from a leader, and a snapshot received from a
//! leader, until the application reports them stable.
//!
//! Owns only in-memory bookkeeping; it never reads or writes storage. Entries
//! handed out in a `Ready` are "in progress": not handed out again, but still
//! readable until `stable_to` confirms they were persisted.

use crate::proto::raftpb::{Entry, Snapshot};

#[derive(Debug, Default)]
pub(crate) struct Unstable {
    /// A snapshot received from the leader, not yet persisted.
    pub(crate) snapshot: Option<Snapshot>,
    /// Entries not yet persisted; `entries[i]` has index `offset + i`.
    pub(crate) entries: Vec<Entry>,
    pub(crate) offset: u64,
    /// The snapshot was handed out in a `Ready`.
    snapshot_in_progress: bool,
    /// Entries with index below this were handed out in a `Ready`.
    offset_in_progress: u64,
}

fn snapshot_index_term(s: &Snapshot) -> (u64, u64) {
    s.metadata.as_ref().map_or((0, 0), |m| (m.index, m.term))
}

impl Unstable {
    pub(crate) fn new(offset: u64) -> Unstable {
        Unstable { offset, offset_in_progress: offset, ..Default::default() }
    }

    /// The first index of the log if a snapshot is pending.
    pub(crate) fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| snapshot_index_term(s).0 + 1)
    }

    /// The last index, if there are unstable entries or a snapshot.
    pub(crate) fn maybe_last_index(&self) -> Option<u64> {
        if !self.entries.is_empty() {
            return Some(self.offset + self.entries.len() as u64 - 1);
        }
        self.snapshot.as_ref().map(|s| snapshot_index_term(s).0)
    }

    /// The term of the entry at `index`, if this part of the log knows it.
    pub(crate) fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            let (si, st) = self.snapshot.as_ref().map(snapshot_index_term)?;
            return (si == index).then_some(st);
        }
        let last = self.maybe_last_index()?;
        if index > last {
            return None;
        }
        Some(self.entries[(index - self.offset) as usize].term)
    }

    /// Entries not yet handed out for persistence.
    pub(crate) fn next_entries(&self) -> &[Entry] {
        let in_progress = (self.offset_in_progress - self.offset) as usize;
        &self.entries[in_progress.min(self.entries.len())..]
    }

    /// The snapshot, if not yet handed out for persistence.
    pub(crate) fn next_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().filter(|_| !self.snapshot_in_progress)
    }

    pub(crate) fn has_in_progress_or_next_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Marks everything handed out in a `Ready` as in progress.
    pub(crate) fn accept_in_progress(&mut self) {
        if let Some(last) = self.entries.last() {
            self.offset_in_progress = last.index + 1;
        }
        if self.snapshot.is_some() {
            self.snapshot_in_progress = true;
        }
    }

    /// Entries up to `index` (with term `term`) were persisted. Ignored when
    /// the entry was replaced by a newer leader meanwhile.
    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        let Some(t) = self.maybe_term(index) else { return };
        if index < self.offset {
            // The index belongs to the snapshot: only the snapshot is stable.
            return;
        }
        if t == term {
            self.entries.drain(..=(index - self.offset) as usize);
            self.offset = index + 1;
            self.offset_in_progress = self.offset_in_progress.max(self.offset);
            if self.entries.capacity() > 1024 && self.entries.len() * 8 < self.entries.capacity() {
                self.entries.shrink_to_fit();
            }
        }
    }

    /// The snapshot at `index` was persisted.
    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| snapshot_index_term(s).0 == index) {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    /// Replaces everything with a snapshot received from the leader.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        let (index, _) = snapshot_index_term(&snapshot);
        self.offset = index + 1;
        self.offset_in_progress = self.offset;
        self.entries.clear();
        self.snapshot = Some(snapshot);
        self.snapshot_in_progress = false;
    }

    /// Appends `entries`, replacing any conflicting suffix.
    pub(crate) fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let from = first.index;
        if from == self.offset + self.entries.len() as u64 {
            self.entries.extend_from_slice(entries);
        } else if from <= self.offset {
            // Replaces all unstable entries (the stable log is truncated too,
            // when the application persists these).
            self.offset = from;
            self.offset_in_progress = from;
            self.entries.clear();
            self.entries.extend_from_slice(entries);
        } else {
            self.entries.truncate((from - self.offset) as usize);
            self.entries.extend_from_slice(entries);
            self.offset_in_progress = self.offset_in_progress.min(from);
        }
    }

    /// Entries in `[lo, hi)`, which must lie within the unstable entries.
    pub(crate) fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        assert!(
            lo >= self.offset && hi <= self.offset + self.entries.len() as u64 && lo <= hi,
            "invariant: unstable slice [{lo}, {hi}) within [{}, {}]",
            self.offset,
            self.offset + self.entries.len() as u64
        );
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftpb::SnapshotMetadata;

    fn ent(index: u64, term: u64) -> Entry {
        Entry { index, term, ..Default::default() }
    }

    fn snap(index: u64, term: u64) -> Snapshot {
        Snapshot { metadata: Some(SnapshotMetadata { index, term, ..Default::default() }), ..Default::default() }
    }

    #[test]
    fn indexes_and_terms() {
        let mut u = Unstable::new(5);
        assert_eq!(u.maybe_last_index(), None);
        u.truncate_and_append(&[ent(5, 1), ent(6, 2)]);
        assert_eq!(u.maybe_last_index(), Some(6));
        assert_eq!(u.maybe_term(6), Some(2));
        assert_eq!(u.maybe_term(7), None);
        assert_eq!(u.maybe_term(4), None);
        u.restore(snap(10, 3));
        assert_eq!(u.maybe_first_index(), Some(11));
        assert_eq!(u.maybe_last_index(), Some(10));
        assert_eq!(u.maybe_term(10), Some(3));
        assert_eq!(u.maybe_term(9), None);
    }

    #[test]
    fn truncate_and_append_cases() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(&[ent(5, 1), ent(6, 1), ent(7, 1)]);
        u.truncate_and_append(&[ent(6, 2)]);
        assert_eq!(u.entries, vec![ent(5, 1), ent(6, 2)]);
        u.truncate_and_append(&[ent(4, 3), ent(5, 3)]);
        assert_eq!(u.offset, 4);
        assert_eq!(u.entries, vec![ent(4, 3), ent(5, 3)]);
    }

    #[test]
    fn in_progress_entries_are_handed_out_once() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(&[ent(5, 1), ent(6, 1)]);
        assert_eq!(u.next_entries().len(), 2);
        u.accept_in_progress();
        assert!(u.next_entries().is_empty());
        u.truncate_and_append(&[ent(7, 1)]);
        assert_eq!(u.next_entries(), &[ent(7, 1)]);
        // A conflicting append makes the replaced entries new again.
        u.truncate_and_append(&[ent(6, 2)]);
        assert_eq!(u.next_entries(), &[ent(6, 2)]);
    }

    #[test]
    fn stable_to_ignores_replaced_entries() {
        let mut u = Unstable::new(5);
        u.truncate_and_append(&[ent(5, 1), ent(6, 1)]);
        u.stable_to(6, 2); // wrong term: replaced meanwhile
        assert_eq!(u.entries.len(), 2);
        u.stable_to(5, 1);
        assert_eq!(u.offset, 6);
        assert_eq!(u.entries, vec![ent(6, 1)]);
        u.restore(snap(9, 2));
        u.stable_snap_to(8);
        assert!(u.snapshot.is_some());
        u.stable_snap_to(9);
        assert!(u.snapshot.is_none());
    }
}
