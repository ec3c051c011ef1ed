//! The Raft log as the core sees it: the persisted part (through `Storage`)
//! followed by the unstable part, with the commit, applying and applied
//! indexes.
//!
//! Owns log-matching logic (conflict detection, truncation, commit rules that
//! depend only on the log). It never decides *whether* to commit (that is the
//! quorum's job) and never writes to storage.

use super::errors::{Error, Result, StorageError};
use super::log_unstable::Unstable;
use super::storage::{limit_size, Storage};
use crate::proto::raftpb::{Entry, Snapshot};

pub(crate) struct RaftLog<S: Storage> {
    pub(crate) store: S,
    pub(crate) unstable: Unstable,
    /// Highest index known to be committed on a quorum.
    pub(crate) committed: u64,
    /// Highest index handed to the application for applying.
    pub(crate) applying: u64,
    /// Highest index the application has applied.
    pub(crate) applied: u64,
    /// Bytes of committed entries handed out at once.
    max_applying_size: u64,
}

impl<S: Storage> RaftLog<S> {
    pub(crate) fn new(store: S, max_applying_size: u64) -> RaftLog<S> {
        let first = store.first_index();
        let last = store.last_index();
        RaftLog {
            store,
            unstable: Unstable::new(last + 1),
            committed: first - 1,
            applying: first - 1,
            applied: first - 1,
            max_applying_size,
        }
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.unstable.maybe_first_index().unwrap_or_else(|| self.store.first_index())
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.unstable.maybe_last_index().unwrap_or_else(|| self.store.last_index())
    }

    /// The last index known to be persisted (entries handed out in a `Ready`
    /// but not yet confirmed by `advance` do not count).
    pub(crate) fn stable_last_index(&self) -> u64 {
        (self.unstable.offset - 1).min(self.last_index())
    }

    /// The term of the entry at `index`. `Compacted` / `Unavailable` when the
    /// index is outside `[first_index - 1, last_index]`.
    pub(crate) fn term(&self, index: u64) -> std::result::Result<u64, StorageError> {
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        // Everything from the unstable offset on is answered by the unstable
        // part, and a pending snapshot replaces everything before it.
        if index >= self.unstable.offset {
            return Err(StorageError::Unavailable);
        }
        if self.unstable.snapshot.is_some() {
            return Err(StorageError::Compacted);
        }
        self.store.term(index)
    }

    /// The term at `index`, or 0 when the index is compacted or beyond the
    /// log. Other storage failures propagate.
    pub(crate) fn term_or_zero(&self, index: u64) -> Result<u64> {
        match self.term(index) {
            Ok(t) => Ok(t),
            Err(StorageError::Compacted | StorageError::Unavailable) => Ok(0),
            Err(e) => Err(Error::Storage(e)),
        }
    }

    pub(crate) fn last_term(&self) -> Result<u64> {
        let last = self.last_index();
        match self.term(last) {
            Ok(t) => Ok(t),
            Err(e) => Err(Error::Storage(StorageError::Other(format!("term of the last index {last}: {e}")))),
        }
    }

    pub(crate) fn match_term(&self, index: u64, term: u64) -> Result<bool> {
        Ok(self.term_or_zero(index)? == term && (term != 0 || index == 0))
    }

    /// Whether a log ending at (`last_index`, `term`) is at least as
    /// up-to-date as this one (§5.4.1, the election restriction).
    pub(crate) fn is_up_to_date(&self, last_index: u64, term: u64) -> Result<bool> {
        let our_term = self.last_term()?;
        Ok(term > our_term || (term == our_term && last_index >= self.last_index()))
    }

    /// The index of the first entry of `entries` whose term differs from the
    /// log's entry at that index (or which is beyond the log); 0 when every
    /// entry is already present.
    fn find_conflict(&self, entries: &[Entry]) -> Result<u64> {
        for e in entries {
            if !self.match_term(e.index, e.term)? {
                return Ok(e.index);
            }
        }
        Ok(0)
    }

    /// The largest index `<= index` whose term is `<= term`, with that term.
    /// Used on both sides of a rejected append to skip whole terms at once.
    /// An index whose term is unknown (compacted) is returned with term 0.
    pub(crate) fn find_conflict_by_term(&self, mut index: u64, term: u64) -> Result<(u64, u64)> {
        while index > 0 {
            match self.term(index) {
                Ok(t) if t <= term => return Ok((index, t)),
                Ok(_) => index -= 1,
                Err(StorageError::Compacted | StorageError::Unavailable) => return Ok((index, 0)),
                Err(e) => return Err(Error::Storage(e)),
            }
        }
        Ok((0, 0))
    }

    /// Appends entries received from the leader after (`prev_index`,
    /// `prev_term`) if the logs match there, and commits up to
    /// `leader_commit`. Returns the index of the last new entry, or `None`
    /// when the logs do not match.
    pub(crate) fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        leader_commit: u64,
        entries: &[Entry],
    ) -> Result<Option<u64>> {
        if !self.match_term(prev_index, prev_term)? {
            return Ok(None);
        }
        let last_new = prev_index + entries.len() as u64;
        let conflict = self.find_conflict(entries)?;
        if conflict != 0 {
            if conflict <= self.committed {
                return Err(Error::InvalidMessage(format!(
                    "entry {conflict} conflicts with committed entry (committed {})",
                    self.committed
                )));
            }
            let start = (conflict - (prev_index + 1)) as usize;
            self.append(&entries[start..])?;
        }
        self.commit_to(leader_commit.min(last_new))?;
        Ok(Some(last_new))
    }

    /// Appends entries at the end of the log (truncating a conflicting
    /// uncommitted suffix). Returns the new last index.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<u64> {
        let Some(first) = entries.first() else { return Ok(self.last_index()) };
        assert!(
            first.index > self.committed,
            "invariant: appending at {} would overwrite committed entries up to {}",
            first.index,
            self.committed
        );
        self.unstable.truncate_and_append(entries);
        Ok(self.last_index())
    }

    /// Raises the commit index. Returns an error (and changes nothing) when
    /// `to` is beyond the log: the leader believes this node has entries it
    /// does not have, which means its log was lost or corrupted.
    pub(crate) fn commit_to(&mut self, to: u64) -> Result<()> {
        if to > self.committed {
            let last = self.last_index();
            if to > last {
                return Err(Error::InvalidMessage(format!(
                    "commit index {to} is beyond the last index {last}; was the log lost or truncated?"
                )));
            }
            self.committed = to;
        }
        Ok(())
    }

    /// Commits `index` if it holds an entry of `term` (a leader only commits
    /// entries of its own term by counting replicas, §5.4.2).
    pub(crate) fn maybe_commit(&mut self, index: u64, term: u64) -> Result<bool> {
        if index > self.committed && self.term_or_zero(index)? == term {
            self.commit_to(index)?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(crate) fn applied_to(&mut self, index: u64) {
        if index == 0 || index <= self.applied {
            return;
        }
        assert!(index <= self.committed, "invariant: applied index {index} beyond committed index {}", self.committed);
        self.applied = index;
        self.applying = self.applying.max(index);
    }

    pub(crate) fn accept_applying(&mut self, index: u64) {
        self.applying = self.applying.max(index);
    }

    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        self.unstable.stable_to(index, term);
    }

    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }

    /// Unstable entries not yet handed out for persistence.
    pub(crate) fn next_unstable_entries(&self) -> &[Entry] {
        self.unstable.next_entries()
    }

    pub(crate) fn has_next_unstable_entries(&self) -> bool {
        !self.unstable.next_entries().is_empty()
    }

    pub(crate) fn next_unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.next_snapshot()
    }

    pub(crate) fn has_pending_snapshot(&self) -> bool {
        self.unstable.has_in_progress_or_next_snapshot()
    }

    /// The range of committed entries that can be handed out for applying.
    /// Nothing while a snapshot is pending: it must be applied first.
    fn next_committed_range(&self) -> Option<(u64, u64)> {
        if self.has_pending_snapshot() {
            return None;
        }
        let lo = self.applying + 1;
        let hi = self.committed + 1;
        (lo < hi).then_some((lo, hi))
    }

    pub(crate) fn has_next_committed_entries(&self) -> bool {
        self.next_committed_range().is_some()
    }

    /// Committed entries not yet handed out, bounded in size.
    pub(crate) fn next_committed_entries(&self) -> Result<Vec<Entry>> {
        match self.next_committed_range() {
            Some((lo, hi)) => self.slice(lo, hi, self.max_applying_size),
            None => Ok(Vec::new()),
        }
    }

    /// The snapshot to send to a follower that needs compacted entries.
    pub(crate) fn snapshot(&self, request_index: u64, to: u64) -> std::result::Result<Snapshot, StorageError> {
        match &self.unstable.snapshot {
            Some(s) => Ok(s.clone()),
            None => self.store.snapshot(request_index, to),
        }
    }

    /// Entries from `index` to the end of the log, at most `max_size` bytes
    /// (but at least one entry).
    pub(crate) fn entries(&self, index: u64, max_size: u64) -> Result<Vec<Entry>> {
        let last = self.last_index();
        if index > last {
            return Ok(Vec::new());
        }
        self.slice(index, last + 1, max_size)
    }

    /// Entries in `[lo, hi)`, at most `max_size` bytes (but at least one).
    /// `Compacted` when `lo` was compacted.
    pub(crate) fn slice(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        if lo < self.first_index() {
            return Err(Error::Storage(StorageError::Compacted));
        }
        let last = self.last_index();
        assert!(hi <= last + 1, "invariant: slice [{lo}, {hi}) beyond the last index {last}");

        let mut out = Vec::new();
        let offset = self.unstable.offset;
        if lo < offset {
            let stored = self.store.entries(lo, hi.min(offset), max_size)?;
            let complete = stored.len() as u64 == hi.min(offset) - lo;
            out = stored;
            if !complete {
                // The storage stopped at the size limit.
                return Ok(out);
            }
        }
        if hi > offset {
            out.extend_from_slice(self.unstable.slice(lo.max(offset), hi));
        }
        limit_size(&mut out, max_size);
        Ok(out)
    }

    /// Replaces the log with a snapshot received from the leader.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        self.committed = index;
        self.unstable.restore(snapshot);
    }

    /// Whether any entry in `(applied, committed]` is a configuration change.
    pub(crate) fn has_unapplied_conf_changes(&self) -> Result<bool> {
        use crate::proto::raftpb::EntryType;
        let mut lo = self.applied + 1;
        let hi = self.committed + 1;
        while lo < hi {
            let page = self.slice(lo, hi, self.max_applying_size)?;
            let Some(last) = page.last() else { break };
            if page.iter().any(|e| e.entry_type() != EntryType::EntryNormal) {
                return Ok(true);
            }
            lo = last.index + 1;
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::storage::MemStorage;

    fn ent(index: u64, term: u64) -> Entry {
        Entry { index, term, ..Default::default() }
    }

    fn log_with(stable: &[(u64, u64)], unstable: &[(u64, u64)]) -> RaftLog<MemStorage> {
        let mut s = MemStorage::new();
        let ents: Vec<Entry> = stable.iter().map(|&(i, t)| ent(i, t)).collect();
        s.append(&ents).unwrap();
        let mut l = RaftLog::new(s, u64::MAX);
        let ents: Vec<Entry> = unstable.iter().map(|&(i, t)| ent(i, t)).collect();
        l.append(&ents).unwrap();
        l
    }

    #[test]
    fn terms_span_stable_and_unstable() {
        let l = log_with(&[(1, 1), (2, 2)], &[(3, 3)]);
        assert_eq!(l.term(0), Ok(0));
        assert_eq!(l.term(2), Ok(2));
        assert_eq!(l.term(3), Ok(3));
        assert_eq!(l.term(4), Err(StorageError::Unavailable));
        assert_eq!(l.last_index(), 3);
        assert_eq!(l.slice(1, 4, u64::MAX).unwrap().len(), 3);
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let l = log_with(&[(1, 1), (2, 2), (3, 2)], &[]);
        assert!(l.is_up_to_date(1, 3).unwrap(), "higher term wins");
        assert!(!l.is_up_to_date(9, 1).unwrap(), "lower term loses");
        assert!(l.is_up_to_date(3, 2).unwrap(), "equal");
        assert!(!l.is_up_to_date(2, 2).unwrap(), "shorter");
    }

    #[test]
    fn maybe_append_checks_match_and_truncates_conflicts() {
        let mut l = log_with(&[(1, 1), (2, 2), (3, 2)], &[]);
        assert_eq!(l.maybe_append(3, 3, 3, &[ent(4, 3)]).unwrap(), None, "prev term mismatch");
        assert_eq!(l.maybe_append(2, 2, 1, &[ent(3, 3), ent(4, 3)]).unwrap(), Some(4));
        assert_eq!(l.term(3), Ok(3));
        assert_eq!(l.committed, 1);
        // A stale append that only re-sends existing entries changes nothing.
        assert_eq!(l.maybe_append(1, 1, 4, &[ent(2, 2)]).unwrap(), Some(2));
        assert_eq!(l.last_index(), 4);
        assert_eq!(l.committed, 2, "commit bounded by the last new entry");
        // A conflict with a committed entry is refused, not applied.
        assert!(l.maybe_append(0, 0, 0, &[ent(1, 5)]).is_err());
        assert_eq!(l.term(1), Ok(1));
    }

    #[test]
    fn find_conflict_by_term_skips_whole_terms() {
        let l = log_with(&[(1, 1), (2, 1), (3, 4), (4, 4), (5, 4), (6, 5)], &[]);
        assert_eq!(l.find_conflict_by_term(6, 3).unwrap(), (2, 1));
        assert_eq!(l.find_conflict_by_term(6, 5).unwrap(), (6, 5));
        assert_eq!(l.find_conflict_by_term(5, 4).unwrap(), (5, 4));
        assert_eq!(l.find_conflict_by_term(6, 0).unwrap(), (0, 0));
    }

    #[test]
    fn commit_beyond_log_is_an_error() {
        let mut l = log_with(&[(1, 1)], &[]);
        assert!(l.commit_to(5).is_err());
        assert_eq!(l.committed, 0);
        l.commit_to(1).unwrap();
        assert_eq!(l.committed, 1);
    }

    #[test]
    fn committed_entries_are_handed_out_once() {
        let mut l = log_with(&[(1, 1), (2, 1)], &[(3, 1)]);
        l.commit_to(3).unwrap();
        assert_eq!(l.next_committed_entries().unwrap().len(), 3, "unstable committed entries included");
        l.accept_applying(3);
        assert!(!l.has_next_committed_entries());
        l.applied_to(3);
        assert_eq!(l.applied, 3);
    }
}
