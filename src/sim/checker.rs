//! Safety invariants of a simulated cluster, checked as events happen:
//! - election safety: at most one leader per term;
//! - log matching: two logs with an entry of the same index and term hold
//!   the same entry, preceded by entries of the same terms;
//! - leader completeness: a new leader holds every committed entry;
//! - committed entries are never lost or changed;
//! - state machine safety: every replica's applied sequence is a prefix of
//!   the same sequence (compared by hash chain);
//! - commit indexes never move backwards, even across restarts;
//! - linearizable reads: a read sees every write and read that completed
//!   before it started.
//!
//! Owns the history; never influences the run.

use super::state_machine::{entry_hash, Value};
use crate::proto::raftpb::Entry;
use std::collections::{BTreeMap, HashMap};

/// A violated invariant, with what is known about it.
pub type Violation = String;

#[derive(Debug, Default)]
pub struct Checker {
    leaders: BTreeMap<u64, u64>,
    /// (index, term) -> (content hash, term of the previous entry).
    entries: HashMap<(u64, u64), (u64, u64)>,
    /// index -> (term, content hash) of committed entries.
    committed: BTreeMap<u64, (u64, u64)>,
    /// index -> state machine hash after applying it.
    chain: HashMap<u64, u64>,
    /// node -> highest persisted commit index.
    persisted_commit: BTreeMap<u64, u64>,
    /// Logical clock of client history events.
    clock: u64,
    /// key -> (completion clock, highest write index observed by any
    /// operation completed up to then), in clock order.
    completions: BTreeMap<u8, Vec<(u64, u64)>>,
    pub writes_acked: u64,
    pub reads_checked: u64,
    /// Highest log index of an acknowledged write.
    pub max_acked_index: u64,
}

impl Checker {
    /// The clock value of a client event happening now.
    pub fn tick_clock(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub fn leader_count(&self) -> usize {
        self.leaders.len()
    }

    pub fn observe_leader(&mut self, term: u64, id: u64) -> Result<(), Violation> {
        match self.leaders.get(&term) {
            Some(&other) if other != id => {
                Err(format!("election safety: nodes {other} and {id} are both leader in term {term}"))
            }
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, id);
                Ok(())
            }
        }
    }

    /// Entries a node is about to persist, after the entry at
    /// `entries[0].index - 1` whose term is `prev_term`.
    pub fn observe_append(&mut self, node: u64, mut prev_term: u64, entries: &[Entry]) -> Result<(), Violation> {
        for e in entries {
            let content = entry_hash(e.term, &e.data);
            match self.entries.get(&(e.index, e.term)) {
                Some(&(h, p)) if h != content || p != prev_term => {
                    return Err(format!(
                        "log matching: node {node} has entry (index {}, term {}) differing from another log's \
                         (content equal: {}, previous term {} vs {})",
                        e.index,
                        e.term,
                        h == content,
                        prev_term,
                        p
                    ));
                }
                Some(_) => {}
                None => {
                    self.entries.insert((e.index, e.term), (content, prev_term));
                }
            }
            // A stale leader (or its follower) may still persist an entry at
            // an index another term has committed: Raft allows it, as long as
            // it is never committed there (see `observe_committed`).
            prev_term = e.term;
        }
        Ok(())
    }

    pub fn observe_committed(&mut self, node: u64, e: &Entry) -> Result<(), Violation> {
        let content = entry_hash(e.term, &e.data);
        match self.committed.get(&e.index) {
            Some(&(t, h)) if t != e.term || h != content => Err(format!(
                "committed entries never change: node {node} applies (index {}, term {}) but term {t} was committed there",
                e.index, e.term
            )),
            Some(_) => Ok(()),
            None => {
                self.committed.insert(e.index, (e.term, content));
                Ok(())
            }
        }
    }

    /// A node's state machine reached `index` with `hash`.
    pub fn observe_applied(&mut self, node: u64, index: u64, hash: u64) -> Result<(), Violation> {
        match self.chain.get(&index) {
            Some(&h) if h != hash => {
                Err(format!("state machine safety: node {node} applied a different sequence up to index {index}"))
            }
            Some(_) => Ok(()),
            None => {
                self.chain.insert(index, hash);
                Ok(())
            }
        }
    }

    pub fn observe_persisted_commit(&mut self, node: u64, commit: u64) -> Result<(), Violation> {
        let prev = self.persisted_commit.entry(node).or_insert(0);
        if commit < *prev {
            return Err(format!("commit index monotonic: node {node} persisted commit {commit} after {prev}"));
        }
        *prev = commit;
        Ok(())
    }

    /// Checks that a new leader's log holds every committed entry beyond its
    /// snapshot. `term_at` answers the leader's term at an index.
    pub fn check_leader_completeness(
        &self,
        node: u64,
        first_index: u64,
        term_at: impl Fn(u64) -> Option<u64>,
    ) -> Result<(), Violation> {
        for (&index, &(term, _)) in self.committed.range(first_index..) {
            if term_at(index) != Some(term) {
                return Err(format!(
                    "leader completeness: leader {node} lacks committed entry (index {index}, term {term}), has {:?}",
                    term_at(index)
                ));
            }
        }
        Ok(())
    }

    pub fn committed_len(&self) -> u64 {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    fn floor(&self, key: u8, invoked: u64) -> u64 {
        let Some(list) = self.completions.get(&key) else { return 0 };
        let n = list.partition_point(|&(clock, _)| clock < invoked);
        if n == 0 {
            0
        } else {
            list[n - 1].1
        }
    }

    fn record_completion(&mut self, key: u8, index: u64) {
        let clock = self.tick_clock();
        let list = self.completions.entry(key).or_default();
        let max = list.last().map_or(0, |&(_, m)| m).max(index);
        list.push((clock, max));
    }

    /// A write of `key` was acknowledged: it is at log `index`.
    pub fn write_acked(&mut self, key: u8, index: u64) {
        self.writes_acked += 1;
        self.max_acked_index = self.max_acked_index.max(index);
        self.record_completion(key, index);
    }

    /// A read of `key` invoked at clock `invoked` returned `value`.
    pub fn read_completed(&mut self, node: u64, key: u8, invoked: u64, value: Value) -> Result<(), Violation> {
        let floor = self.floor(key, invoked);
        if value.index < floor {
            return Err(format!(
                "linearizable read: node {node} read key {key} written at index {} (op {}), but an operation \
                 completed before the read began had seen index {floor}",
                value.index, value.op
            ));
        }
        self.reads_checked += 1;
        self.record_completion(key, value.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64, data: &'static [u8]) -> Entry {
        Entry { index, term, data: bytes::Bytes::from_static(data), ..Default::default() }
    }

    #[test]
    fn detects_two_leaders_in_a_term() {
        let mut c = Checker::default();
        c.observe_leader(3, 1).unwrap();
        c.observe_leader(3, 1).unwrap();
        assert!(c.observe_leader(3, 2).is_err());
    }

    #[test]
    fn detects_log_mismatch() {
        let mut c = Checker::default();
        c.observe_append(1, 0, &[ent(1, 1, b"a"), ent(2, 1, b"b")]).unwrap();
        assert!(c.observe_append(2, 0, &[ent(1, 1, b"x")]).is_err(), "same index and term, other data");
        assert!(c.observe_append(2, 2, &[ent(2, 1, b"b")]).is_err(), "other previous term");
    }

    #[test]
    fn detects_changed_commits_and_diverging_state() {
        let mut c = Checker::default();
        c.observe_committed(1, &ent(1, 1, b"a")).unwrap();
        assert!(c.observe_committed(2, &ent(1, 2, b"a")).is_err());
        c.observe_applied(1, 1, 42).unwrap();
        assert!(c.observe_applied(2, 1, 43).is_err());
        c.observe_persisted_commit(1, 5).unwrap();
        assert!(c.observe_persisted_commit(1, 4).is_err());
    }

    #[test]
    fn detects_stale_reads() {
        let mut c = Checker::default();
        c.write_acked(0, 10);
        let invoked = c.tick_clock();
        assert!(c.read_completed(1, 0, invoked, Value { op: 1, index: 9 }).is_err());
        c.read_completed(1, 0, invoked, Value { op: 2, index: 10 }).unwrap();
        // A read that started before the write completed may see older data.
        let mut c = Checker::default();
        let early = c.tick_clock();
        c.write_acked(0, 10);
        c.read_completed(1, 0, early, Value::default()).unwrap();
    }

    #[test]
    fn leader_completeness() {
        let mut c = Checker::default();
        c.observe_committed(1, &ent(1, 1, b"a")).unwrap();
        c.observe_committed(1, &ent(2, 2, b"b")).unwrap();
        assert!(c.check_leader_completeness(3, 1, |i| Some(if i == 1 { 1 } else { 2 })).is_ok());
        assert!(c.check_leader_completeness(3, 1, |i| if i == 1 { Some(1) } else { None }).is_err());
        assert!(c.check_leader_completeness(3, 3, |_| None).is_ok(), "compacted entries are in the snapshot");
    }
}
