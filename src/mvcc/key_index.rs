//! The in-memory key index: for every key, the revisions at which it was
//! written (puts and tombstones), oldest first.
//!
//! Owns the answer to "which revision of key K is visible at revision R" and
//! "which keys exist in [a, b) at R", and the logical compaction of history.
//! Must never touch the disk or hold values: it maps keys to revisions only.
//!
//! Memory: the common case (one revision, no tombstone) is stored inline as
//! 16 bytes next to the boxed key in a `BTreeMap` slot; only keys with
//! history get a `Vec`. Generations are implicit: a tombstone ends one, and
//! versions and create revisions live in the stored `KeyValue`s.

use super::revision::Revision;
use std::collections::BTreeMap;
use std::ops::Bound;

const TOMBSTONE_BIT: u64 = 1 << 63;

/// One write of a key: its revision and whether it was a delete.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IdxRev {
    main: u64,
    sub_flag: u64,
}

impl IdxRev {
    /// Revisions are non-negative; `sub` uses 63 bits.
    pub fn new(rev: Revision, tombstone: bool) -> IdxRev {
        let sub = (rev.sub as u64) & !TOMBSTONE_BIT;
        IdxRev { main: rev.main as u64, sub_flag: if tombstone { sub | TOMBSTONE_BIT } else { sub } }
    }
    pub fn rev(&self) -> Revision {
        Revision::new(self.main as i64, (self.sub_flag & !TOMBSTONE_BIT) as i64)
    }
    pub fn main(&self) -> i64 {
        self.main as i64
    }
    pub fn is_tombstone(&self) -> bool {
        self.sub_flag & TOMBSTONE_BIT != 0
    }
}

/// The writes of one key, oldest first.
#[derive(Clone, Debug)]
pub enum Entry {
    One(IdxRev),
    Many(Vec<IdxRev>),
}

impl Entry {
    pub fn as_slice(&self) -> &[IdxRev] {
        match self {
            Entry::One(r) => std::slice::from_ref(r),
            Entry::Many(v) => v,
        }
    }

    fn push(&mut self, r: IdxRev) {
        match self {
            Entry::One(first) => {
                *self = Entry::Many(vec![*first, r]);
            }
            Entry::Many(v) => v.push(r),
        }
    }

    /// Drops history made unreachable by a compaction at `c`; true when
    /// nothing is left.
    fn compact(&mut self, c: i64) -> bool {
        let s = self.as_slice();
        let n = s.partition_point(|e| e.main() <= c);
        if n == 0 {
            return false;
        }
        let drop = if s[n - 1].is_tombstone() { n } else { n - 1 };
        if drop == 0 {
            return false;
        }
        if drop == s.len() {
            return true;
        }
        if s.len() - drop == 1 {
            *self = Entry::One(s[drop]);
        } else if let Entry::Many(v) = self {
            v.drain(..drop);
            if v.capacity() > 2 * v.len() + 4 {
                v.shrink_to_fit();
            }
        }
        false
    }
}

/// Latest write of `s` at or below revision `at` (a tombstone included).
pub fn latest_at(s: &[IdxRev], at: i64) -> Option<IdxRev> {
    let n = s.partition_point(|e| e.main() <= at);
    if n == 0 {
        None
    } else {
        Some(s[n - 1])
    }
}

/// Bounds of a `BTreeMap` range over byte-string keys.
pub type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// A request's key range in etcd's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRange<'a> {
    /// `range_end` empty: the key alone.
    Single(&'a [u8]),
    /// `range_end == "\0"`: every key >= key.
    From(&'a [u8]),
    /// `[key, range_end)`; empty when `range_end <= key`.
    Between(&'a [u8], &'a [u8]),
}

impl<'a> KeyRange<'a> {
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> KeyRange<'a> {
        if range_end.is_empty() {
            KeyRange::Single(key)
        } else if range_end == [0u8] {
            KeyRange::From(key)
        } else {
            KeyRange::Between(key, range_end)
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match *self {
            KeyRange::Single(key) => k == key,
            KeyRange::From(key) => k >= key,
            KeyRange::Between(key, end) => k >= key && k < end,
        }
    }

    pub fn start(&self) -> &'a [u8] {
        match *self {
            KeyRange::Single(k) | KeyRange::From(k) | KeyRange::Between(k, _) => k,
        }
    }

    /// Bounds for a `BTreeMap` range, or `None` when the range is empty.
    pub fn bounds(&self) -> Option<KeyBounds<'a>> {
        match *self {
            KeyRange::Single(k) => Some((Bound::Included(k), Bound::Included(k))),
            KeyRange::From(k) => Some((Bound::Included(k), Bound::Unbounded)),
            KeyRange::Between(k, e) if k < e => Some((Bound::Included(k), Bound::Excluded(e))),
            KeyRange::Between(..) => None,
        }
    }

    /// The same range restricted to keys strictly after `after`.
    pub fn bounds_after(&self, after: &'a [u8]) -> Option<KeyBounds<'a>> {
        let (lo, hi) = self.bounds()?;
        let lo = match lo {
            Bound::Included(k) if k > after => Bound::Included(k),
            _ => Bound::Excluded(after),
        };
        let nonempty = match (lo, hi) {
            (Bound::Excluded(a), Bound::Included(b)) => a < b,
            (Bound::Excluded(a), Bound::Excluded(b)) => a < b,
            (Bound::Included(a), Bound::Included(b)) => a <= b,
            (Bound::Included(a), Bound::Excluded(b)) => a < b,
            _ => true,
        };
        if nonempty {
            Some((lo, hi))
        } else {
            None
        }
    }
}

/// Key -> writes. Mutated only by the apply thread (at publication) and by
/// the start-up rebuild; read by everyone under the store's lock.
#[derive(Default, Debug)]
pub struct KeyIndex {
    map: BTreeMap<Box<[u8]>, Entry>,
}

impl KeyIndex {
    pub fn new() -> KeyIndex {
        KeyIndex::default()
    }

    /// Number of keys with any recorded write.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records a write. Writes of a key arrive in increasing revision order.
    pub fn append(&mut self, key: &[u8], r: IdxRev) {
        match self.map.get_mut(key) {
            Some(e) => e.push(r),
            None => {
                self.map.insert(key.into(), Entry::One(r));
            }
        }
    }

    /// All writes of `key`, oldest first.
    pub fn writes(&self, key: &[u8]) -> &[IdxRev] {
        self.map.get(key).map(|e| e.as_slice()).unwrap_or(&[])
    }

    /// The live revision of `key` at revision `at`, if the key exists then.
    pub fn get(&self, key: &[u8], at: i64) -> Option<Revision> {
        let r = latest_at(self.writes(key), at)?;
        if r.is_tombstone() {
            None
        } else {
            Some(r.rev())
        }
    }

    /// Visits every key of `range` in ascending order with its writes;
    /// stops when `f` returns false.
    pub fn visit(&self, range: &KeyRange<'_>, mut f: impl FnMut(&[u8], &[IdxRev]) -> bool) {
        let Some(bounds) = range.bounds() else { return };
        for (k, e) in self.map.range::<[u8], _>(bounds) {
            if !f(k, e.as_slice()) {
                return;
            }
        }
    }

    /// Like `visit`, restricted to keys after `after` (exclusive).
    pub fn visit_after(&self, range: &KeyRange<'_>, after: &[u8], mut f: impl FnMut(&[u8], &[IdxRev]) -> bool) {
        let Some(bounds) = range.bounds_after(after) else { return };
        for (k, e) in self.map.range::<[u8], _>(bounds) {
            if !f(k, e.as_slice()) {
                return;
            }
        }
    }

    /// Compacts every key at `c` (see `compact_chunk`).
    pub fn compact(&mut self, c: i64) {
        let mut after: Option<Box<[u8]>> = None;
        loop {
            after = self.compact_chunk(c, after.as_deref(), usize::MAX);
            if after.is_none() {
                return;
            }
        }
    }

    /// Compacts up to `max_keys` keys after `after` at revision `c`: each key
    /// keeps its latest write at or below `c` (unless it is a tombstone) and
    /// everything after. Returns where to resume, or `None` when done.
    pub fn compact_chunk(&mut self, c: i64, after: Option<&[u8]>, max_keys: usize) -> Option<Box<[u8]>> {
        let lo = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let mut emptied: Vec<Box<[u8]>> = Vec::new();
        let mut last: Option<Box<[u8]>> = None;
        let mut seen = 0usize;
        for (k, e) in self.map.range_mut::<[u8], _>((lo, Bound::Unbounded)) {
            if seen == max_keys {
                break;
            }
            seen += 1;
            if e.compact(c) {
                emptied.push(k.clone());
            }
            last = Some(k.clone());
        }
        for k in &emptied {
            self.map.remove(k);
        }
        if seen < max_keys {
            None
        } else {
            last
        }
    }

    /// Whether the write `rev` of `key` survives a compaction at `c`: it is
    /// the key's latest write at or below `c` and not a tombstone. Correct
    /// whether or not the index itself was already compacted at `c` (or
    /// beyond: then history below `c` that is gone was not kept either).
    pub fn is_kept(&self, key: &[u8], rev: Revision, c: i64) -> bool {
        match latest_at(self.writes(key), c) {
            Some(r) => !r.is_tombstone() && r.rev() == rev,
            None => false,
        }
    }

    /// Every revision at or below `c` that a compaction at `c` keeps, sorted.
    pub fn kept_at(&self, c: i64) -> Vec<Revision> {
        let mut out = Vec::new();
        for e in self.map.values() {
            if let Some(r) = latest_at(e.as_slice(), c) {
                if !r.is_tombstone() {
                    out.push(r.rev());
                }
            }
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(m: i64, s: i64) -> IdxRev {
        IdxRev::new(Revision::new(m, s), false)
    }
    fn del(m: i64, s: i64) -> IdxRev {
        IdxRev::new(Revision::new(m, s), true)
    }

    #[test]
    fn entry_is_compact() {
        assert_eq!(std::mem::size_of::<IdxRev>(), 16);
        assert!(std::mem::size_of::<Entry>() <= 24, "Entry is {} bytes", std::mem::size_of::<Entry>());
    }

    #[test]
    fn idxrev_round_trips_flags() {
        let r = IdxRev::new(Revision::new(7, 3), true);
        assert!(r.is_tombstone());
        assert_eq!(r.rev(), Revision::new(7, 3));
        assert!(!put(7, 3).is_tombstone());
    }

    #[test]
    fn get_sees_generations() {
        let mut ix = KeyIndex::new();
        ix.append(b"a", put(2, 0));
        ix.append(b"a", put(4, 0));
        ix.append(b"a", del(6, 0));
        ix.append(b"a", put(8, 1));
        assert_eq!(ix.get(b"a", 1), None);
        assert_eq!(ix.get(b"a", 2), Some(Revision::new(2, 0)));
        assert_eq!(ix.get(b"a", 5), Some(Revision::new(4, 0)));
        assert_eq!(ix.get(b"a", 6), None);
        assert_eq!(ix.get(b"a", 7), None);
        assert_eq!(ix.get(b"a", 8), Some(Revision::new(8, 1)));
        assert_eq!(ix.get(b"b", 8), None);
    }

    #[test]
    fn compaction_keeps_latest_at_or_below_and_drops_tombstoned_history() {
        let mut ix = KeyIndex::new();
        for (k, rs) in [
            (&b"a"[..], vec![put(2, 0), put(4, 0), del(6, 0), put(8, 0)]),
            (b"b", vec![put(3, 0), del(5, 0)]),
            (b"c", vec![put(9, 0)]),
            (b"d", vec![put(2, 1), put(7, 0)]),
        ] {
            for r in rs {
                ix.append(k, r);
            }
        }
        assert!(ix.is_kept(b"a", Revision::new(4, 0), 5));
        assert!(!ix.is_kept(b"a", Revision::new(2, 0), 5));
        assert_eq!(ix.kept_at(5), vec![Revision::new(2, 1), Revision::new(4, 0)]);
        ix.compact(5);
        assert_eq!(ix.writes(b"a"), &[put(4, 0), del(6, 0), put(8, 0)]);
        assert_eq!(ix.writes(b"b"), &[] as &[IdxRev]);
        assert_eq!(ix.writes(b"c"), &[put(9, 0)]);
        assert_eq!(ix.writes(b"d"), &[put(2, 1), put(7, 0)]);
        assert_eq!(ix.len(), 3);
        ix.compact(6);
        assert_eq!(ix.writes(b"a"), &[put(8, 0)]);
        assert!(matches!(ix.map.get(&b"a"[..]), Some(Entry::One(_))));
        ix.compact(9);
        assert_eq!(ix.writes(b"d"), &[put(7, 0)]);
        assert_eq!(ix.get(b"a", 9), Some(Revision::new(8, 0)));
        // Reads at or above the compaction revision are unchanged.
        assert_eq!(ix.get(b"d", 9), Some(Revision::new(7, 0)));
    }

    #[test]
    fn put_then_delete_in_one_revision_compacts_away() {
        let mut ix = KeyIndex::new();
        ix.append(b"k", put(3, 0));
        ix.append(b"k", del(3, 1));
        assert_eq!(ix.get(b"k", 3), None);
        ix.compact(3);
        assert!(ix.is_empty());
    }

    #[test]
    fn chunked_compaction_equals_full() {
        let mut a = KeyIndex::new();
        for i in 0..100u32 {
            let k = format!("k{i:03}");
            a.append(k.as_bytes(), put(2 + i as i64 % 5, 0));
            a.append(k.as_bytes(), put(10 + i as i64 % 3, 0));
            if i % 4 == 0 {
                a.append(k.as_bytes(), del(20, i as i64));
            }
        }
        let mut b = KeyIndex::new();
        for (k, e) in &a.map {
            for r in e.as_slice() {
                b.append(k, *r);
            }
        }
        a.compact(20);
        let mut after = None;
        let mut rounds = 0;
        loop {
            after = b.compact_chunk(20, after.as_deref(), 7);
            rounds += 1;
            if after.is_none() {
                break;
            }
        }
        assert!(rounds > 10);
        assert_eq!(format!("{:?}", a.map), format!("{:?}", b.map));
        assert_eq!(a.len(), 75);
    }

    #[test]
    fn key_ranges_follow_etcd_encoding() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a"));
        assert_eq!(KeyRange::new(b"a", b"\0"), KeyRange::From(b"a"));
        assert_eq!(KeyRange::new(b"a", b"c"), KeyRange::Between(b"a", b"c"));
        let mut ix = KeyIndex::new();
        for k in ["a", "b", "c", "d"] {
            ix.append(k.as_bytes(), put(2, 0));
        }
        let collect = |r: KeyRange<'_>| {
            let mut v = Vec::new();
            ix.visit(&r, |k, _| {
                v.push(String::from_utf8(k.to_vec()).unwrap());
                true
            });
            v
        };
        assert_eq!(collect(KeyRange::new(b"b", b"")), ["b"]);
        assert_eq!(collect(KeyRange::new(b"b", b"\0")), ["b", "c", "d"]);
        assert_eq!(collect(KeyRange::new(b"\0", b"\0")), ["a", "b", "c", "d"]);
        assert_eq!(collect(KeyRange::new(b"b", b"d")), ["b", "c"]);
        assert!(collect(KeyRange::new(b"d", b"b")).is_empty());
        assert!(collect(KeyRange::new(b"b", b"b")).is_empty());
        let mut v = Vec::new();
        ix.visit_after(&KeyRange::new(b"a", b"d"), b"a", |k, _| {
            v.push(k.to_vec());
            true
        });
        assert_eq!(v, vec![b"b".to_vec(), b"c".to_vec()]);
        let mut n = 0;
        ix.visit_after(&KeyRange::new(b"b", b""), b"b", |_, _| {
            n += 1;
            true
        });
        assert_eq!(n, 0);
    }
}
