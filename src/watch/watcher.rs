//! One watcher: what it watches (a key, a range, a prefix, or every key
//! from one on), which events it wants, and how far it has been sent.
//!
//! Owns the matching and the per-watcher position; never sends anything.

use super::StreamKey;
use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::WatchCreateRequest;
use crate::proto::mvccpb::{event::EventType, Event};
use bytes::Bytes;

#[derive(Debug)]
pub struct Watcher {
    pub stream: StreamKey,
    pub watch_id: i64,
    pub key: Bytes,
    pub range_end: Bytes,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    pub progress_notify: bool,
    pub fragment: bool,
    /// The first revision not yet sent: every event below it that this
    /// watcher wants was sent, in order, exactly once.
    pub next_rev: i64,
    /// An event went out since the last progress notification.
    pub sent_since_progress: bool,
}

impl Watcher {
    pub fn new(stream: StreamKey, watch_id: i64, req: &WatchCreateRequest, next_rev: i64) -> Watcher {
        let filters = |f: FilterType| req.filters.contains(&(f as i32));
        Watcher {
            stream,
            watch_id,
            key: req.key.clone(),
            range_end: req.range_end.clone(),
            no_put: filters(FilterType::Noput),
            no_delete: filters(FilterType::Nodelete),
            prev_kv: req.prev_kv,
            progress_notify: req.progress_notify,
            fragment: req.fragment,
            next_rev,
            sent_since_progress: false,
        }
    }

    pub fn range(&self) -> KeyRange<'_> {
        KeyRange::new(&self.key, &self.range_end)
    }

    /// A single key (indexed by key) rather than a range.
    pub fn is_single_key(&self) -> bool {
        self.range_end.is_empty()
    }

    /// Whether this watcher wants `ev` (its key in range, its kind not
    /// filtered out, its revision not sent yet).
    pub fn wants(&self, ev: &Event) -> bool {
        let Some(kv) = &ev.kv else { return false };
        if kv.mod_revision < self.next_rev || !self.range().contains(&kv.key) {
            return false;
        }
        match ev.r#type() {
            EventType::Put => !self.no_put,
            EventType::Delete => !self.no_delete,
        }
    }
}

/// The revision of an event (its key-value's mod revision).
pub fn revision_of(ev: &Event) -> i64 {
    ev.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// Whether `[key, range_end)` watches nothing (etcd: "watcher range is
/// empty").
pub fn is_empty_range(key: &[u8], range_end: &[u8]) -> bool {
    !range_end.is_empty() && range_end != [0u8] && key >= range_end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    fn ev(kind: EventType, key: &str, rev: i64) -> Event {
        let kv = KeyValue { key: key.as_bytes().to_vec().into(), mod_revision: rev, ..Default::default() };
        Event { r#type: kind as i32, kv: Some(kv), prev_kv: None }
    }

    fn watcher(key: &str, end: &str, filters: Vec<FilterType>, next: i64) -> Watcher {
        let req = WatchCreateRequest {
            key: key.as_bytes().to_vec().into(),
            range_end: end.as_bytes().to_vec().into(),
            filters: filters.into_iter().map(|f| f as i32).collect(),
            ..Default::default()
        };
        Watcher::new((1, 1), 0, &req, next)
    }

    #[test]
    fn keys_ranges_prefixes_and_from_key() {
        let single = watcher("foo", "", vec![], 1);
        assert!(single.wants(&ev(EventType::Put, "foo", 5)));
        assert!(!single.wants(&ev(EventType::Put, "foo1", 5)));
        let range = watcher("a", "c", vec![], 1);
        assert!(range.wants(&ev(EventType::Put, "b", 5)));
        assert!(!range.wants(&ev(EventType::Put, "c", 5)));
        let from = watcher("m", "\0", vec![], 1);
        assert!(from.wants(&ev(EventType::Put, "zzz", 5)));
        assert!(!from.wants(&ev(EventType::Put, "a", 5)));
    }

    #[test]
    fn filters_and_already_sent_revisions() {
        let w = watcher("k", "", vec![FilterType::Noput], 10);
        assert!(!w.wants(&ev(EventType::Put, "k", 11)));
        assert!(w.wants(&ev(EventType::Delete, "k", 11)));
        assert!(!w.wants(&ev(EventType::Delete, "k", 9)), "below next_rev: sent already");
        let w = watcher("k", "", vec![FilterType::Nodelete], 1);
        assert!(!w.wants(&ev(EventType::Delete, "k", 2)));
    }

    #[test]
    fn empty_ranges() {
        assert!(is_empty_range(b"b", b"a"));
        assert!(is_empty_range(b"a", b"a"));
        assert!(!is_empty_range(b"a", b""));
        assert!(!is_empty_range(b"a", b"\0"));
        assert!(!is_empty_range(b"a", b"b"));
    }
}
