//! The lease table: every lease of the replicated state (its granted TTL,
//! its renewal count, the keys attached to it) plus this member's clock on
//! it (a deadline per lease, and a heap of deadlines to find the expired
//! ones without scanning).
//!
//! The apply thread changes it (grant, renew, revoke, and the attachments
//! that follow from the keyspace's events); the lessor asks it which leases
//! are due; reads ask it for time-to-live and the list. Deadlines come from
//! the time a grant or renewal was *applied here*, so every member keeps
//! nearly the same clock (a renewal is in the log), and a new leader neither
//! restarts the clock nor expires a lease early.
//!
//! Owns the lease bookkeeping; never writes storage, never decides that a
//! lease is revoked (the log does), never reads the clock itself (callers
//! pass `now`, so it is steppable in tests).

use crate::proto::mvccpb::{event::EventType, Event};
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// One lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The granted TTL, in seconds.
    pub ttl: i64,
    /// Grants and renewals applied so far (replicated: every member counts
    /// the same).
    pub renewals: u64,
    /// When it expires by this member's clock.
    pub deadline: Instant,
    pub keys: BTreeSet<Bytes>,
}

impl Lease {
    /// Whole seconds left at `now`, truncated as etcd does (a fresh 60 s
    /// lease reports 59), 0 once the deadline passed.
    pub fn remaining_secs(&self, now: Instant) -> i64 {
        self.deadline.saturating_duration_since(now).as_secs() as i64
    }
}

/// A lease that is due, with the renewal count the decision rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub id: i64,
    pub renewals: u64,
}

#[derive(Default)]
pub struct LeaseTable {
    leases: HashMap<i64, Lease>,
    /// Key -> the lease it is attached to.
    owner_of: HashMap<Bytes, i64>,
    /// (deadline, id, renewals); entries of renewed or revoked leases are
    /// stale and skipped when they surface.
    expiry: BinaryHeap<Reverse<(Instant, i64, u64)>>,
}

impl LeaseTable {
    pub fn new() -> LeaseTable {
        LeaseTable::default()
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Every lease id, the soonest to expire first (as etcd lists them).
    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<(Instant, i64)> = self.leases.iter().map(|(&id, l)| (l.deadline, id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Adds a lease with `remaining` seconds to live (its TTL, unless it is
    /// restored); false if the id is taken.
    pub fn grant(&mut self, id: i64, ttl: i64, remaining: i64, renewals: u64, now: Instant) -> bool {
        if self.leases.contains_key(&id) {
            return false;
        }
        let deadline = now + secs(remaining);
        self.leases.insert(id, Lease { ttl, renewals, deadline, keys: BTreeSet::new() });
        self.push_deadline(deadline, id, renewals);
        true
    }

    /// Restarts a lease's clock with `remaining` seconds; returns its new
    /// renewal count, or `None` if there is no such lease.
    pub fn renew(&mut self, id: i64, remaining: i64, now: Instant) -> Option<u64> {
        let lease = self.leases.get_mut(&id)?;
        lease.renewals += 1;
        lease.deadline = now + secs(remaining);
        let (deadline, renewals) = (lease.deadline, lease.renewals);
        self.push_deadline(deadline, id, renewals);
        Some(renewals)
    }

    /// Removes a lease and its attachments, returning it (its keys are the
    /// caller's to delete).
    pub fn revoke(&mut self, id: i64) -> Option<Lease> {
        let lease = self.leases.remove(&id)?;
        for k in &lease.keys {
            self.owner_of.remove(k);
        }
        Some(lease)
    }

    /// Follows the keyspace: a written or deleted key leaves its old lease;
    /// a put naming a lease joins it.
    pub fn track(&mut self, events: &[Event]) {
        for ev in events {
            let Some(kv) = &ev.kv else { continue };
            self.detach(&kv.key);
            if ev.r#type == EventType::Put as i32 && kv.lease != 0 {
                self.attach(kv.key.clone(), kv.lease);
            }
        }
    }

    /// Attaches `key` to lease `id` (if it exists).
    pub fn attach(&mut self, key: Bytes, id: i64) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.clone());
            self.owner_of.insert(key, id);
        }
    }

    fn detach(&mut self, key: &[u8]) {
        if let Some(id) = self.owner_of.remove(key) {
            if let Some(lease) = self.leases.get_mut(&id) {
                lease.keys.remove(key);
            }
        }
    }

    /// Up to `max` leases whose deadline passed by `now`. Each is asked
    /// about again `retry` later if it is still there (its revocation was
    /// lost, or refused because it was renewed meanwhile).
    pub fn due(&mut self, now: Instant, max: usize, retry: Duration) -> Vec<Due> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&Reverse((deadline, id, renewals))) = self.expiry.peek() else { break };
            if deadline > now {
                break;
            }
            self.expiry.pop();
            match self.leases.get(&id) {
                Some(l) if l.renewals == renewals && l.deadline <= now => {
                    out.push(Due { id, renewals });
                    self.expiry.push(Reverse((now + retry, id, renewals)));
                }
                _ => {} // renewed or revoked since: a stale entry
            }
        }
        out
    }

    /// The earliest deadline in the heap (possibly a stale one).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((d, _, _))| *d)
    }

    /// Forgets everything (before a reload).
    pub fn clear(&mut self) {
        *self = LeaseTable::default();
    }

    fn push_deadline(&mut self, deadline: Instant, id: i64, renewals: u64) {
        self.expiry.push(Reverse((deadline, id, renewals)));
        // Followers never pop: drop the stale entries once they dominate.
        if self.expiry.len() > 2 * self.leases.len() + 1024 {
            self.expiry = self.leases.iter().map(|(&id, l)| Reverse((l.deadline, id, l.renewals))).collect();
        }
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    fn put(key: &str, lease: i64) -> Event {
        let kv = KeyValue { key: Bytes::from(key.to_string()), lease, ..Default::default() };
        Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None }
    }

    fn del(key: &str) -> Event {
        let kv = KeyValue { key: Bytes::from(key.to_string()), ..Default::default() };
        Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv: None }
    }

    fn keys(t: &LeaseTable, id: i64) -> Vec<String> {
        t.get(id).unwrap().keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect()
    }

    #[test]
    fn keys_follow_puts_and_deletes() {
        let now = Instant::now();
        let mut t = LeaseTable::new();
        assert!(t.grant(1, 10, 10, 1, now));
        assert!(t.grant(2, 10, 10, 1, now));
        assert!(!t.grant(1, 5, 5, 1, now), "an id is granted once");
        t.track(&[put("a", 1), put("b", 1), put("c", 0)]);
        assert_eq!(keys(&t, 1), ["a", "b"]);
        t.track(&[put("a", 2)]);
        assert_eq!((keys(&t, 1), keys(&t, 2)), (vec!["b".to_string()], vec!["a".to_string()]), "a moved to lease 2");
        t.track(&[put("b", 0), del("a")]);
        assert!(keys(&t, 1).is_empty() && keys(&t, 2).is_empty(), "a put without a lease or a delete detaches");
        t.track(&[put("x", 9)]);
        assert!(t.owner_of.is_empty(), "an unknown lease attaches nothing");
    }

    #[test]
    fn revoke_returns_the_keys_and_forgets_them() {
        let now = Instant::now();
        let mut t = LeaseTable::new();
        t.grant(1, 10, 10, 1, now);
        t.track(&[put("a", 1), put("b", 1)]);
        let gone = t.revoke(1).unwrap();
        assert_eq!(gone.keys.len(), 2);
        assert!(t.owner_of.is_empty() && !t.contains(1) && t.revoke(1).is_none());
    }

    #[test]
    fn due_finds_expired_leases_and_skips_renewed_ones() {
        let t0 = Instant::now();
        let mut t = LeaseTable::new();
        t.grant(1, 5, 5, 1, t0);
        t.grant(2, 5, 5, 1, t0);
        t.grant(3, 60, 60, 1, t0);
        assert!(t.due(t0 + Duration::from_secs(4), 10, Duration::from_secs(1)).is_empty());
        assert_eq!(t.renew(2, 5, t0 + Duration::from_secs(4)), Some(2));
        let due = t.due(t0 + Duration::from_secs(5), 10, Duration::from_secs(1));
        assert_eq!(due, vec![Due { id: 1, renewals: 1 }], "lease 2 was renewed, lease 3 is young");
        // Not revoked yet: asked about again after `retry`, not before.
        assert!(t.due(t0 + Duration::from_millis(5500), 10, Duration::from_secs(1)).is_empty());
        assert_eq!(t.due(t0 + Duration::from_secs(6), 10, Duration::from_secs(1)), due);
        assert_eq!(t.due(t0 + Duration::from_secs(9), 10, Duration::from_secs(1)).len(), 2, "1 again, and 2");
    }

    #[test]
    fn due_takes_at_most_max() {
        let t0 = Instant::now();
        let mut t = LeaseTable::new();
        for id in 1..=10 {
            t.grant(id, 1, 1, 1, t0);
        }
        let later = t0 + Duration::from_secs(2);
        assert_eq!(t.due(later, 4, Duration::from_secs(60)).len(), 4);
        assert_eq!(t.due(later, 100, Duration::from_secs(60)).len(), 6);
    }

    #[test]
    fn the_heap_stays_bounded_when_nobody_pops() {
        let t0 = Instant::now();
        let mut t = LeaseTable::new();
        t.grant(1, 5, 5, 1, t0);
        for _ in 0..10_000 {
            t.renew(1, 5, t0);
        }
        assert!(t.expiry.len() <= 2 + 1024, "stale entries are dropped: {}", t.expiry.len());
        assert_eq!(t.due(t0 + Duration::from_secs(5), 10, Duration::from_secs(1)).len(), 1);
    }

    #[test]
    fn remaining_truncates_and_stops_at_zero() {
        let t0 = Instant::now();
        let mut t = LeaseTable::new();
        t.grant(1, 10, 10, 1, t0);
        let l = t.get(1).unwrap();
        assert_eq!(l.remaining_secs(t0), 10);
        assert_eq!(l.remaining_secs(t0 + Duration::from_millis(100)), 9);
        assert_eq!(l.remaining_secs(t0 + Duration::from_millis(9100)), 0);
        assert_eq!(l.remaining_secs(t0 + Duration::from_secs(11)), 0);
    }

    #[test]
    fn ids_list_the_soonest_to_expire_first() {
        let t0 = Instant::now();
        let mut t = LeaseTable::new();
        t.grant(1, 300, 300, 1, t0);
        t.grant(2, 100, 100, 1, t0);
        t.grant(3, 200, 200, 1, t0);
        assert_eq!(t.ids(), [2, 3, 1]);
    }
}
