//! The dispatcher's core stepped by hand: a fake store with an in-memory
//! history, real outboxes (no sockets), and checks of what each stream
//! received.

use super::core::{WatchConfig, WatchCore, WatchStore, REASON_COMPACTED, REASON_DUPLICATE_ID, REASON_EMPTY_RANGE};
use super::{WatchCmd, INVALID_WATCH_ID};
use crate::mvcc::{HistoryChunk, MvccError};
use crate::plumbing::outbox::{Notifier, Outbox, StreamSender};
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::{
    watch_request::RequestUnion, ResponseHeader, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest,
    WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::proto::raftkvpb::client_response::Body;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct FakeStore {
    inner: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    /// revision -> its events.
    history: BTreeMap<i64, Vec<Event>>,
    current: i64,
    compacted: i64,
    reloads: u64,
}

impl FakeStore {
    /// Commits one revision of puts; returns its events (as the apply
    /// thread would hand them over).
    fn put(&self, keys: &[&str]) -> Vec<Event> {
        let mut st = self.inner.lock().unwrap();
        st.current += 1;
        let rev = st.current;
        let evs: Vec<Event> = keys.iter().map(|k| event(EventType::Put, k, rev)).collect();
        st.history.insert(rev, evs.clone());
        evs
    }

    fn delete(&self, key: &str) -> Vec<Event> {
        let mut st = self.inner.lock().unwrap();
        st.current += 1;
        let rev = st.current;
        let evs = vec![event(EventType::Delete, key, rev)];
        st.history.insert(rev, evs.clone());
        evs
    }

    fn compact(&self, rev: i64) {
        self.inner.lock().unwrap().compacted = rev;
    }
}

fn event(kind: EventType, key: &str, rev: i64) -> Event {
    let kv = KeyValue {
        key: key.as_bytes().to_vec().into(),
        mod_revision: rev,
        create_revision: rev,
        version: 1,
        value: format!("v{rev}").into_bytes().into(),
        ..Default::default()
    };
    Event { r#type: kind as i32, kv: Some(kv), prev_kv: None }
}

impl WatchStore for FakeStore {
    fn current_revision(&self) -> i64 {
        self.inner.lock().unwrap().current
    }
    fn compact_revision(&self) -> i64 {
        self.inner.lock().unwrap().compacted
    }
    fn history(&self, from: i64, to: i64, max_events: usize) -> Result<HistoryChunk, MvccError> {
        let st = self.inner.lock().unwrap();
        if from < st.compacted {
            return Err(MvccError::Compacted);
        }
        let to = to.min(st.current);
        let mut chunk = HistoryChunk { events: Vec::new(), last: to };
        for (&rev, evs) in st.history.range(from..=to.max(from)) {
            if rev > to {
                break;
            }
            if !chunk.events.is_empty() && chunk.events.len() >= max_events {
                chunk.last = rev - 1;
                return Ok(chunk);
            }
            chunk.events.extend(evs.iter().cloned());
        }
        Ok(chunk)
    }
    fn prev_kv(&self, _key: &[u8], _rev: i64) -> Option<KeyValue> {
        None
    }
    fn reloads(&self) -> u64 {
        self.inner.lock().unwrap().reloads
    }
}

struct Harness {
    store: Arc<FakeStore>,
    core: WatchCore<FakeStore>,
    notifier: Arc<Notifier>,
    next_conn: u64,
}

/// A client stream: its outbox, as the I/O thread would drain it.
struct Client {
    outbox: Arc<Outbox>,
    key: (u64, u64),
}

impl Client {
    /// Everything queued so far (and the connection drained: room again).
    fn received(&self) -> Vec<WatchResponse> {
        let out = self.outbox.drain();
        self.outbox.set_buffered(0);
        out.into_iter()
            .filter_map(|o| match o.response.body {
                Some(Body::Watch(w)) => Some(w),
                _ => None,
            })
            .collect()
    }
}

fn create(key: &str, end: &str, start: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.as_bytes().to_vec().into(),
            range_end: end.as_bytes().to_vec().into(),
            start_revision: start,
            ..Default::default()
        })),
    }
}

fn with(req: WatchRequest, f: impl FnOnce(&mut WatchCreateRequest)) -> WatchRequest {
    let mut req = req;
    if let Some(RequestUnion::CreateRequest(c)) = &mut req.request_union {
        f(c);
    }
    req
}

fn header(rev: i64) -> ResponseHeader {
    ResponseHeader { revision: rev, ..Default::default() }
}

impl Harness {
    fn new(cfg: WatchConfig) -> Harness {
        let store = Arc::new(FakeStore::default());
        let core = WatchCore::new(store.clone(), cfg, Box::new(header), Arc::new(AtomicUsize::new(0)));
        Harness { store, core, notifier: Notifier::new(|| {}), next_conn: 1 }
    }

    fn open(&mut self, first: WatchRequest, stream_limit: usize) -> Client {
        let conn = self.next_conn;
        self.next_conn += 1;
        let outbox = Outbox::new(conn, stream_limit, self.notifier.clone());
        let key = (conn, 1);
        let sender = StreamSender::new(outbox.clone(), 1);
        self.core.handle(WatchCmd::Open { key, sender, ended: Arc::new(AtomicBool::new(false)), first });
        Client { outbox, key }
    }

    fn request(&mut self, c: &Client, req: WatchRequest) {
        self.core.handle(WatchCmd::Request { key: c.key, req });
    }

    /// Writes and hands the events over, as the apply thread does.
    fn commit(&mut self, evs: Vec<Event>) {
        self.core.on_events(evs);
    }

    fn tick(&mut self) {
        // Far past any progress interval used here.
        self.core.tick(Instant::now(), false);
    }
}

fn events_of(rs: &[WatchResponse]) -> Vec<(i64, String)> {
    rs.iter()
        .flat_map(|r| r.events.iter())
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (kv.mod_revision, String::from_utf8_lossy(&kv.key).into_owned())
        })
        .collect()
}

#[test]
fn created_then_live_events_for_a_key_a_range_and_a_prefix() {
    let mut h = Harness::new(WatchConfig::default());
    let key = h.open(create("foo", "", 0), 1 << 20);
    let range = h.open(create("a", "c", 0), 1 << 20);
    let prefix = h.open(create("fo", "fp", 0), 1 << 20);
    for c in [&key, &range, &prefix] {
        let r = c.received();
        assert_eq!(r.len(), 1);
        assert!(r[0].created && !r[0].canceled, "{r:?}");
        assert_eq!(r[0].watch_id, 0);
    }
    let evs = h.store.put(&["foo"]);
    h.commit(evs);
    let evs = h.store.put(&["b", "food"]);
    h.commit(evs);
    assert_eq!(events_of(&key.received()), vec![(1, "foo".into())]);
    assert_eq!(events_of(&range.received()), vec![(2, "b".into())]);
    assert_eq!(events_of(&prefix.received()), vec![(1, "foo".into()), (2, "food".into())]);
}

#[test]
fn a_revision_goes_out_whole_in_one_response() {
    let mut h = Harness::new(WatchConfig::default());
    let c = h.open(create("k", "l", 0), 1 << 20);
    c.received();
    let evs = h.store.put(&["k1", "k2", "k3"]);
    h.commit(evs);
    let r = c.received();
    assert_eq!(r.len(), 1, "one response for the revision");
    assert_eq!(r[0].events.len(), 3);
    assert_eq!(r[0].header.as_ref().unwrap().revision, 1);
}

#[test]
fn history_is_replayed_then_live_with_no_gap_and_no_duplicate() {
    let mut h = Harness::new(WatchConfig::default());
    for i in 0..5 {
        let evs = h.store.put(&[&format!("k{i}")]);
        h.commit(evs);
    }
    let c = h.open(create("k", "l", 2), 1 << 20);
    // Live events arrive before the catch-up round runs.
    let evs = h.store.put(&["k5"]);
    h.commit(evs);
    h.tick();
    let evs = h.store.put(&["k6"]);
    h.commit(evs);
    let revs: Vec<i64> = events_of(&c.received()).into_iter().map(|(r, _)| r).collect();
    assert_eq!(revs, vec![2, 3, 4, 5, 6, 7]);
}

#[test]
fn a_future_start_revision_waits_for_it() {
    let mut h = Harness::new(WatchConfig::default());
    let c = h.open(create("k", "", 3), 1 << 20);
    for _ in 0..4 {
        let evs = h.store.put(&["k"]);
        h.commit(evs);
    }
    let revs: Vec<i64> = events_of(&c.received()).into_iter().map(|(r, _)| r).collect();
    assert_eq!(revs, vec![3, 4]);
}

#[test]
fn filters_and_cancel() {
    let mut h = Harness::new(WatchConfig::default());
    let c = h.open(with(create("k", "", 0), |c| c.filters = vec![FilterType::Noput as i32]), 1 << 20);
    c.received();
    let evs = h.store.put(&["k"]);
    h.commit(evs);
    let evs = h.store.delete("k");
    h.commit(evs);
    let r = c.received();
    assert_eq!(events_of(&r), vec![(2, "k".into())]);
    h.request(
        &c,
        WatchRequest { request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: 0 })) },
    );
    let r = c.received();
    assert!(r[0].canceled && r[0].watch_id == 0 && r[0].compact_revision == 0, "{r:?}");
    let evs = h.store.put(&["k"]);
    h.commit(evs);
    assert!(c.received().is_empty(), "nothing after the cancel");
    // An unknown id: etcd answers nothing.
    h.request(
        &c,
        WatchRequest { request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: 42 })) },
    );
    assert!(c.received().is_empty());
    assert_eq!(h.core.watcher_count(), 0);
}

#[test]
fn refused_creates_carry_etcds_reasons() {
    let cfg = WatchConfig { max_watchers_per_stream: 2, ..WatchConfig::default() };
    let mut h = Harness::new(cfg);
    let c = h.open(create("b", "a", 0), 1 << 20);
    let r = c.received();
    assert!(r[0].created && r[0].canceled && r[0].watch_id == INVALID_WATCH_ID);
    assert_eq!(r[0].cancel_reason, REASON_EMPTY_RANGE);
    h.request(&c, with(create("k", "", 0), |c| c.watch_id = 7));
    h.request(&c, with(create("k", "", 0), |c| c.watch_id = 7));
    let r = c.received();
    assert_eq!((r[0].watch_id, r[0].canceled), (7, false));
    assert_eq!(r[1].cancel_reason, REASON_DUPLICATE_ID);
    h.request(&c, create("k", "", 0));
    h.request(&c, create("k", "", 0));
    let r = c.received();
    assert_eq!(r[0].watch_id, 0, "auto ids start at 0");
    assert!(r[1].canceled && r[1].cancel_reason.contains("too many watchers"), "{r:?}");
}

#[test]
fn a_compacted_start_revision_is_canceled_with_the_compact_revision() {
    let mut h = Harness::new(WatchConfig::default());
    for _ in 0..5 {
        let evs = h.store.put(&["k"]);
        h.commit(evs);
    }
    h.store.compact(4);
    let c = h.open(create("k", "", 2), 1 << 20);
    h.tick();
    let r = c.received();
    assert!(r[0].created);
    assert!(r[1].canceled, "{r:?}");
    assert_eq!(r[1].compact_revision, 4);
    assert_eq!(r[1].cancel_reason, REASON_COMPACTED);
    assert_eq!(h.core.watcher_count(), 0);
}

#[test]
fn a_slow_stream_never_holds_up_the_others_and_gets_everything_later() {
    let mut h = Harness::new(WatchConfig::default());
    // A connection that holds at most ~300 unsent bytes.
    let slow = h.open(create("k", "", 0), 300);
    let fast = h.open(create("k", "", 0), 1 << 20);
    slow.received();
    fast.received();
    for _ in 0..50 {
        let evs = h.store.put(&["k"]);
        h.commit(evs);
    }
    // The fast one has everything at once; the slow one was cut off.
    assert_eq!(events_of(&fast.received()).len(), 50);
    assert!(h.core.unsynced_count() == 1, "the slow watcher left the synced group");
    // It reads again: rounds of catch-up deliver the rest, in order, once.
    let mut got = events_of(&slow.received());
    for _ in 0..100 {
        h.tick();
        got.extend(events_of(&slow.received()));
    }
    let revs: Vec<i64> = got.into_iter().map(|(r, _)| r).collect();
    assert_eq!(revs, (1..=50).collect::<Vec<_>>());
    assert_eq!(h.core.unsynced_count(), 0, "back in the synced group");
    let evs = h.store.put(&["k"]);
    h.commit(evs);
    assert_eq!(events_of(&slow.received()), vec![(51, "k".into())]);
}

#[test]
fn dropped_events_are_read_from_storage() {
    let mut h = Harness::new(WatchConfig::default());
    let c = h.open(create("k", "", 0), 1 << 20);
    c.received();
    let evs = h.store.put(&["k"]);
    h.commit(evs);
    // Revisions 2 and 3 never reach the dispatcher (the feed was full).
    h.store.put(&["k"]);
    h.store.put(&["k"]);
    let evs = h.store.put(&["k"]);
    h.commit(evs);
    h.tick();
    let revs: Vec<i64> = events_of(&c.received()).into_iter().map(|(r, _)| r).collect();
    assert_eq!(revs, vec![1, 2, 3, 4]);
    // The tail case: the last batch dropped, the feed's flag raised.
    h.store.put(&["k"]);
    h.core.tick(Instant::now(), true);
    let revs: Vec<i64> = events_of(&c.received()).into_iter().map(|(r, _)| r).collect();
    assert_eq!(revs, vec![5]);
}

#[test]
fn progress_answers_never_run_ahead_of_an_unsent_event() {
    let mut h = Harness::new(WatchConfig::default());
    let slow = h.open(create("k", "", 0), 300);
    slow.received();
    for _ in 0..30 {
        let evs = h.store.put(&["k"]);
        h.commit(evs);
    }
    let sent = events_of(&slow.received());
    let last_sent = sent.last().map_or(0, |(r, _)| *r);
    assert!(last_sent < 30, "the connection filled up");
    h.request(&slow, WatchRequest { request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})) });
    let r = slow.received();
    let p = r.iter().find(|r| r.watch_id == INVALID_WATCH_ID).expect("a progress answer");
    assert!(p.events.is_empty());
    assert_eq!(p.header.as_ref().unwrap().revision, last_sent, "bookmark at what was sent");
}

#[test]
fn idle_watchers_that_asked_get_progress_notifications() {
    let cfg = WatchConfig { progress_interval: Duration::ZERO, ..WatchConfig::default() };
    let mut h = Harness::new(cfg);
    let asked = h.open(with(create("k", "", 0), |c| c.progress_notify = true), 1 << 20);
    let silent = h.open(create("k", "", 0), 1 << 20);
    asked.received();
    silent.received();
    let evs = h.store.put(&["other"]);
    h.commit(evs);
    h.tick();
    let r = asked.received();
    assert_eq!(r.len(), 1);
    assert!(r[0].events.is_empty() && r[0].watch_id == 0);
    assert_eq!(r[0].header.as_ref().unwrap().revision, 1);
    assert!(silent.received().is_empty());
}

#[test]
fn large_revisions_are_fragmented_for_watchers_that_ask() {
    let cfg = WatchConfig { max_response_bytes: 200, ..WatchConfig::default() };
    let mut h = Harness::new(cfg);
    let frag = h.open(with(create("k", "l", 0), |c| c.fragment = true), 1 << 20);
    let whole = h.open(create("k", "l", 0), 1 << 20);
    frag.received();
    whole.received();
    let keys: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let evs = h.store.put(&refs);
    h.commit(evs);
    let r = frag.received();
    assert!(r.len() > 1, "split into fragments");
    assert!(r[..r.len() - 1].iter().all(|r| r.fragment) && !r[r.len() - 1].fragment);
    assert_eq!(events_of(&r).len(), 20);
    let r = whole.received();
    assert_eq!(r.len(), 1, "without fragment the revision goes whole");
    assert_eq!(r[0].events.len(), 20);
}

#[test]
fn ended_streams_are_forgotten() {
    let mut h = Harness::new(WatchConfig::default());
    let c = h.open(create("k", "", 0), 1 << 20);
    h.core.handle(WatchCmd::End { key: c.key });
    assert_eq!((h.core.stream_count(), h.core.watcher_count()), (0, 0));
    // A closed connection is found by the sweep too.
    let c = h.open(create("k", "", 0), 1 << 20);
    c.outbox.close();
    h.tick();
    assert_eq!((h.core.stream_count(), h.core.watcher_count()), (0, 0));
}

#[test]
fn negative_start_revisions_behave_as_in_etcd() {
    let mut h = Harness::new(WatchConfig::default());
    // A fresh store's compaction revision is -1, as etcd's.
    h.store.compact(-1);
    let now = h.open(create("k", "", -1), 1 << 20);
    let below = h.open(create("k", "", -5), 1 << 20);
    h.tick();
    let evs = h.store.put(&["k"]);
    h.commit(evs);
    let r = now.received();
    assert!(r[0].created && !r[0].canceled);
    assert_eq!(events_of(&r[1..]), vec![(1, "k".into())], "-1 is from now");
    let r = below.received();
    assert!(r[1].canceled && r[1].compact_revision == -1, "{r:?}");
}

#[test]
fn a_replay_answers_with_the_revision_it_covers() {
    let mut h = Harness::new(WatchConfig::default());
    let evs = h.store.put(&["k"]);
    h.commit(evs);
    for _ in 0..3 {
        let evs = h.store.put(&["other"]);
        h.commit(evs);
    }
    let c = h.open(create("k", "", 1), 1 << 20);
    h.tick();
    let r = c.received();
    assert_eq!(events_of(&r[1..]), vec![(1, "k".into())]);
    assert_eq!(r[1].header.as_ref().unwrap().revision, 4, "the current revision, as etcd");
}
