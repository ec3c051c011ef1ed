//! Whether a user's key permissions allow one access to a key or a range,
//! by etcd's rules (`auth/range_perm_cache.go`): a user's granted READ and
//! WRITE intervals (READWRITE counts for both) are merged per kind; a
//! single key is allowed when some interval holds it, a range only when
//! the union of the intervals covers all of it.
//!
//! Intervals follow etcd's byte-affine convention: `[key, range_end)`,
//! where a `range_end` of `"\0"` (from-key) means "to the end of the
//! keyspace", and a permission with no `range_end` is the single key
//! `[key, key + "\0")`.
//!
//! Owns this arithmetic only: pure, no storage, no users or roles.

use crate::proto::authpb::{permission::Type as PermType, Permission};

/// The kind of access a request needs on a key or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// `[start, end)`; `end == None` is the end of the keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    /// A permission's interval (etcd's `getMergedPerms`).
    fn of_permission(key: &[u8], range_end: &[u8]) -> Interval {
        match range_end {
            [] => Interval::point(key),
            [0] => Interval { start: key.to_vec(), end: None },
            end => Interval { start: key.to_vec(), end: Some(end.to_vec()) },
        }
    }

    /// The single key `key`: `[key, key + "\0")`.
    fn point(key: &[u8]) -> Interval {
        let mut end = key.to_vec();
        end.push(0);
        Interval { start: key.to_vec(), end: Some(end) }
    }

    fn holds(&self, key: &[u8]) -> bool {
        let below_end = match &self.end {
            None => true,
            Some(end) => key < end.as_slice(),
        };
        self.start.as_slice() <= key && below_end
    }
}

/// One user's merged key permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPerms {
    read: Vec<Interval>,
    write: Vec<Interval>,
}

impl KeyPerms {
    /// The permissions of every role a user holds, merged.
    pub fn new<'a>(perms: impl IntoIterator<Item = &'a Permission>) -> KeyPerms {
        let mut out = KeyPerms::default();
        for p in perms {
            let ivl = Interval::of_permission(&p.key, &p.range_end);
            match PermType::try_from(p.perm_type).unwrap_or(PermType::Read) {
                PermType::Read => out.read.push(ivl),
                PermType::Write => out.write.push(ivl),
                PermType::Readwrite => {
                    out.read.push(ivl.clone());
                    out.write.push(ivl);
                }
            }
        }
        for list in [&mut out.read, &mut out.write] {
            list.sort_by(|a, b| a.start.cmp(&b.start));
        }
        out
    }

    /// Whether `access` to `key` (a single key when `range_end` is empty,
    /// `[key, range_end)` otherwise, to the end of the keyspace when it is
    /// `"\0"`) is allowed.
    pub fn allows(&self, access: Access, key: &[u8], range_end: &[u8]) -> bool {
        let granted = match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        if range_end.is_empty() {
            return granted.iter().any(|i| i.holds(key));
        }
        let want = Interval::of_permission(key, range_end);
        covers(granted, &want)
    }
}

/// Whether the union of `granted` (sorted by start) covers all of `want`.
fn covers(granted: &[Interval], want: &Interval) -> bool {
    if let Some(end) = &want.end {
        if end.as_slice() <= want.start.as_slice() {
            // An empty range asks for nothing.
            return true;
        }
    }
    // Sweep: `reached` is how far from `want.start` the union has covered
    // without a gap (None once it reaches the end of the keyspace).
    let mut reached: Option<Vec<u8>> = Some(want.start.clone());
    for i in granted {
        let Some(r) = &reached else { break };
        if i.start.as_slice() > r.as_slice() {
            break;
        }
        reached = match (&i.end, r) {
            (None, _) => None,
            (Some(e), r) if e.as_slice() > r.as_slice() => Some(e.clone()),
            _ => reached,
        };
    }
    match (&reached, &want.end) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(r), Some(end)) => r.as_slice() >= end.as_slice(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermType, key: &str, end: &[u8]) -> Permission {
        Permission { perm_type: t as i32, key: key.as_bytes().to_vec().into(), range_end: end.to_vec().into() }
    }

    #[test]
    fn a_single_key_permission_allows_that_key_only() {
        let p = KeyPerms::new(&[perm(PermType::Read, "k1", b"")]);
        assert!(p.allows(Access::Read, b"k1", b""));
        assert!(!p.allows(Access::Read, b"k10", b""), "not a prefix");
        assert!(!p.allows(Access::Read, b"k0", b""));
        assert!(!p.allows(Access::Write, b"k1", b""), "read is not write");
        // The range holding exactly k1 is covered; one key wider is not.
        assert!(p.allows(Access::Read, b"k1", b"k1\0"));
        assert!(!p.allows(Access::Read, b"k1", b"k1\0\0"));
    }

    #[test]
    fn a_range_permission_ends_just_before_its_end() {
        let p = KeyPerms::new(&[perm(PermType::Readwrite, "a", b"c")]);
        for access in [Access::Read, Access::Write] {
            assert!(p.allows(access, b"a", b""));
            assert!(p.allows(access, b"bzzz", b""));
            assert!(!p.allows(access, b"c", b""), "the end is outside");
            assert!(p.allows(access, b"a", b"c"));
            assert!(p.allows(access, b"ab", b"b"));
            assert!(!p.allows(access, b"a", b"c\0"), "the key just past the end");
            assert!(!p.allows(access, b"", b"b"), "starts before the grant");
        }
    }

    #[test]
    fn from_key_grants_and_requests_reach_the_end_of_the_keyspace() {
        let p = KeyPerms::new(&[perm(PermType::Write, "m", b"\0")]);
        assert!(p.allows(Access::Write, b"zzzz", b""));
        assert!(p.allows(Access::Write, b"m", b"\0"), "from m to the end");
        assert!(!p.allows(Access::Write, b"l", b"\0"));
        let narrow = KeyPerms::new(&[perm(PermType::Write, "m", b"z")]);
        assert!(!narrow.allows(Access::Write, b"m", b"\0"), "a bounded grant never covers to the end");
        let everything = KeyPerms::new(&[perm(PermType::Read, "", b"\0")]);
        assert!(everything.allows(Access::Read, b"", b"\0"));
    }

    #[test]
    fn a_range_is_covered_by_adjacent_or_overlapping_grants_but_not_across_a_gap() {
        let p = KeyPerms::new(&[
            perm(PermType::Read, "c", b"e"),
            perm(PermType::Read, "a", b"c"),
            perm(PermType::Read, "d", b"g"),
        ]);
        assert!(p.allows(Access::Read, b"a", b"g"), "a-c, c-e and d-g leave no gap");
        let gap = KeyPerms::new(&[perm(PermType::Read, "a", b"c"), perm(PermType::Read, "d", b"g")]);
        assert!(!gap.allows(Access::Read, b"a", b"g"), "c..d is not granted");
        assert!(gap.allows(Access::Read, b"d", b"e"));
        // A prefix grant (etcd's --prefix: [p, prefix_end(p))).
        let prefix = KeyPerms::new(&[perm(PermType::Read, "foo/", b"foo0")]);
        assert!(prefix.allows(Access::Read, b"foo/", b"foo0"));
        assert!(prefix.allows(Access::Read, b"foo/bar", b""));
        assert!(!prefix.allows(Access::Read, b"foo", b""));
    }

    #[test]
    fn nothing_granted_allows_nothing_but_an_empty_range() {
        let p = KeyPerms::new(&[]);
        assert!(!p.allows(Access::Read, b"k", b""));
        assert!(!p.allows(Access::Read, b"a", b"b"));
        assert!(p.allows(Access::Read, b"b", b"a"), "an inverted range asks for no key");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Keys of up to 3 bytes over a tiny alphabet: every endpoint a
        /// test uses is among them, so a gap in the grants always starts at
        /// one of them and checking each one decides coverage exactly.
        fn key() -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'b')], 0..3)
        }

        fn universe() -> Vec<Vec<u8>> {
            let mut out = vec![Vec::new()];
            for len in 1..=4 {
                let mut next = Vec::new();
                for k in out.iter().filter(|k| k.len() == len - 1) {
                    for b in [0u8, b'a', b'b'] {
                        let mut k2 = k.clone();
                        k2.push(b);
                        next.push(k2);
                    }
                }
                out.extend(next);
            }
            out
        }

        fn in_range(k: &[u8], start: &[u8], end: &[u8]) -> bool {
            match end {
                [] => k == start,
                [0] => k >= start,
                end => k >= start && k < end,
            }
        }

        proptest! {
            #[test]
            fn allows_agrees_with_checking_every_key(
                grants in proptest::collection::vec((key(), prop_oneof![Just(vec![]), Just(vec![0u8]), key()]), 0..4),
                start in key(),
                end in prop_oneof![Just(vec![]), Just(vec![0u8]), key()],
            ) {
                let perms: Vec<Permission> = grants
                    .iter()
                    .map(|(k, e)| Permission { perm_type: PermType::Read as i32, key: k.clone().into(), range_end: e.clone().into() })
                    .collect();
                let p = KeyPerms::new(&perms);
                let brute = universe()
                    .iter()
                    .filter(|k| in_range(k, &start, &end))
                    .all(|k| grants.iter().any(|(gk, ge)| in_range(k, gk, ge)));
                prop_assert_eq!(p.allows(Access::Read, &start, &end), brute, "grants {:?} request {:?}..{:?}", grants, start, end);
            }
        }
    }
}
