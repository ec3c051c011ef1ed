//! The synced watchers, indexed for matching live events: single-key
//! watchers by key (a hash lookup per event), range watchers in a list
//! (checked one by one; there are few of them in practice).
//!
//! Owns only membership in the synced group; never decides what a watcher
//! wants (that is `Watcher::wants`).

use super::watcher::Watcher;
use super::WatcherId;
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};

#[derive(Default, Debug)]
pub struct SyncedIndex {
    by_key: HashMap<Bytes, BTreeSet<WatcherId>>,
    ranges: BTreeSet<WatcherId>,
}

impl SyncedIndex {
    pub fn insert(&mut self, id: WatcherId, w: &Watcher) {
        if w.is_single_key() {
            self.by_key.entry(w.key.clone()).or_default().insert(id);
        } else {
            self.ranges.insert(id);
        }
    }

    pub fn remove(&mut self, id: WatcherId, w: &Watcher) -> bool {
        if w.is_single_key() {
            let mut removed = false;
            if let Some(set) = self.by_key.get_mut(&w.key) {
                removed = set.remove(&id);
                if set.is_empty() {
                    self.by_key.remove(&w.key);
                }
            }
            removed
        } else {
            self.ranges.remove(&id)
        }
    }

    /// Every watcher that may want an event on `key` (ids in order).
    pub fn candidates(&self, key: &[u8], out: &mut Vec<WatcherId>) {
        if let Some(set) = self.by_key.get(key) {
            out.extend(set.iter().copied());
        }
        out.extend(self.ranges.iter().copied());
    }

    /// Every synced watcher.
    pub fn all(&self) -> Vec<WatcherId> {
        let mut v: Vec<WatcherId> = self.by_key.values().flatten().copied().collect();
        v.extend(self.ranges.iter().copied());
        v
    }

    pub fn clear(&mut self) {
        self.by_key.clear();
        self.ranges.clear();
    }
}
