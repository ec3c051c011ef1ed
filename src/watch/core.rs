//! The watch dispatcher's state machine, without threads or clocks of its
//! own: streams and their watchers, create / cancel / progress requests,
//! delivery of live events to the synced group, catch-up of the unsynced
//! group from storage, progress notifications. The thread (`dispatcher.rs`)
//! feeds it; tests step it directly.
//!
//! Positions: every watcher has `next_rev`, the first revision it has not
//! been sent. `synced_rev` is the last revision whose live events were
//! matched against the synced group. A synced watcher has been sent
//! everything it wants up to `synced_rev`; an unsynced one has been sent
//! everything below its `next_rev`, which is at most `synced_rev`, and is
//! caught up from `WatchStore::history` in bounded rounds until it passes
//! `synced_rev` and rejoins the synced group. A watcher whose connection
//! refuses output (`Refused::Full`) becomes unsynced at the first revision
//! it was not sent: slow clients cost storage reads later, never a wait now.
//!
//! Never blocks, never writes the keyspace, never sends a watcher an event
//! below its `next_rev`.

use super::index::SyncedIndex;
use super::watcher::{is_empty_range, revision_of, Watcher};
use super::{StreamKey, WatchCmd, WatcherId, INVALID_WATCH_ID};
use crate::mvcc::{HistoryChunk, KvStore, MvccError};
use crate::plumbing::outbox::{Refused, StreamSender};
use crate::proto::etcdserverpb::{
    watch_request::RequestUnion, ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::{Event, KeyValue};
use crate::proto::raftkvpb::client_response::Body;
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// etcd's reasons, word for word.
pub const REASON_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
pub const REASON_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
pub const REASON_COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

/// What the dispatcher reads: the keyspace's revisions and history.
pub trait WatchStore: Send + Sync {
    fn current_revision(&self) -> i64;
    fn compact_revision(&self) -> i64;
    fn history(&self, from: i64, to: i64, max_events: usize) -> Result<HistoryChunk, MvccError>;
    fn prev_kv(&self, key: &[u8], rev: i64) -> Option<KeyValue>;
    /// Changes when the whole state was replaced (a snapshot install).
    fn reloads(&self) -> u64;
}

impl WatchStore for KvStore {
    fn current_revision(&self) -> i64 {
        KvStore::current_revision(self)
    }
    fn compact_revision(&self) -> i64 {
        KvStore::compact_revision(self)
    }
    fn history(&self, from: i64, to: i64, max_events: usize) -> Result<HistoryChunk, MvccError> {
        KvStore::history(self, from, to, max_events)
    }
    fn prev_kv(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        KvStore::prev_kv(self, key, rev)
    }
    fn reloads(&self) -> u64 {
        KvStore::reloads(self)
    }
}

#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub max_watchers_per_stream: usize,
    pub max_watchers: usize,
    /// How often idle watchers that asked for it get a progress
    /// notification (etcd's `--experimental-watch-progress-notify-interval`).
    pub progress_interval: Duration,
    /// Responses are split at revision boundaries past this size (and inside
    /// a revision, for watchers that asked for fragments).
    pub max_response_bytes: usize,
    /// History events read per catch-up round.
    pub catch_up_events: usize,
}

impl Default for WatchConfig {
    fn default() -> WatchConfig {
        WatchConfig {
            max_watchers_per_stream: 10_000,
            max_watchers: 200_000,
            progress_interval: Duration::from_secs(600),
            max_response_bytes: 1024 * 1024,
            catch_up_events: 10_000,
        }
    }
}

/// Builds a response header at a revision (cluster, member, term).
pub type HeaderFn = Box<dyn Fn(i64) -> ResponseHeader + Send>;

struct WatchStream {
    sender: StreamSender,
    ended: Arc<AtomicBool>,
    /// Client-visible watch id -> watcher.
    watchers: BTreeMap<i64, WatcherId>,
    next_watch_id: i64,
}

pub struct WatchCore<S: WatchStore> {
    store: Arc<S>,
    cfg: WatchConfig,
    header: HeaderFn,
    streams: HashMap<StreamKey, WatchStream>,
    watchers: HashMap<WatcherId, Watcher>,
    synced: SyncedIndex,
    unsynced: BTreeSet<WatcherId>,
    synced_rev: i64,
    next_id: WatcherId,
    reloads: u64,
    open_streams: Arc<AtomicUsize>,
    last_progress: Instant,
}

impl<S: WatchStore> WatchCore<S> {
    pub fn new(store: Arc<S>, cfg: WatchConfig, header: HeaderFn, open_streams: Arc<AtomicUsize>) -> WatchCore<S> {
        let synced_rev = store.current_revision();
        let reloads = store.reloads();
        WatchCore {
            store,
            cfg,
            header,
            streams: HashMap::new(),
            watchers: HashMap::new(),
            synced: SyncedIndex::default(),
            unsynced: BTreeSet::new(),
            synced_rev,
            next_id: 1,
            reloads,
            open_streams,
            last_progress: Instant::now(),
        }
    }

    pub fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    pub fn unsynced_count(&self) -> usize {
        self.unsynced.len()
    }

    pub fn synced_revision(&self) -> i64 {
        self.synced_rev
    }

    // ---------------------------------------------------------------- requests

    pub fn handle(&mut self, cmd: WatchCmd) {
        match cmd {
            WatchCmd::Open { key, sender, ended, first } => {
                self.streams.insert(key, WatchStream { sender, ended, watchers: BTreeMap::new(), next_watch_id: 0 });
                self.request(key, first);
            }
            WatchCmd::Request { key, req } => self.request(key, req),
            WatchCmd::End { key } => self.remove_stream(key),
        }
    }

    fn request(&mut self, key: StreamKey, req: WatchRequest) {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(key, c),
            Some(RequestUnion::CancelRequest(c)) => self.cancel(key, c.watch_id),
            Some(RequestUnion::ProgressRequest(_)) => self.progress(key),
            None => log::debug!("watch stream {key:?}: empty request ignored"),
        }
    }

    fn create(&mut self, key: StreamKey, mut c: WatchCreateRequest) {
        let current = self.store.current_revision();
        let Some(stream) = self.streams.get_mut(&key) else { return };
        // As etcd: an empty key is the smallest key.
        if c.key.is_empty() {
            c.key = vec![0u8].into();
        }
        let refusal = if is_empty_range(&c.key, &c.range_end) {
            Some(REASON_EMPTY_RANGE.to_string())
        } else if c.watch_id != 0 && stream.watchers.contains_key(&c.watch_id) {
            Some(REASON_DUPLICATE_ID.to_string())
        } else if c.watch_id < 0 {
            Some(format!("raftkv: watch id {} is negative", c.watch_id))
        } else if stream.watchers.len() >= self.cfg.max_watchers_per_stream {
            Some(format!("raftkv: too many watchers on this stream (at most {})", self.cfg.max_watchers_per_stream))
        } else if self.watchers.len() >= self.cfg.max_watchers {
            Some(format!("raftkv: too many watchers on this member (at most {})", self.cfg.max_watchers))
        } else {
            None
        };
        if let Some(reason) = refusal {
            let r = WatchResponse {
                header: Some((self.header)(current)),
                watch_id: INVALID_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: reason,
                ..Default::default()
            };
            let _ = stream.sender.send_control(Body::Watch(r));
            return;
        }
        let watch_id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while stream.watchers.contains_key(&stream.next_watch_id) {
                stream.next_watch_id += 1;
            }
            stream.next_watch_id += 1;
            stream.next_watch_id - 1
        };
        // As etcd: 0 is "from now"; a negative start is compacted if it is
        // below the compaction revision (-1 before any compaction), and
        // "from now" otherwise.
        let compacted = self.store.compact_revision();
        let from_now = c.start_revision == 0 || (c.start_revision < 0 && c.start_revision >= compacted);
        let next_rev = if from_now { current + 1 } else { c.start_revision };
        let created =
            WatchResponse { header: Some((self.header)(current)), watch_id, created: true, ..Default::default() };
        if stream.sender.send_control(Body::Watch(created)).is_err() {
            return; // the connection is gone; the sweep forgets the stream
        }
        let id = self.next_id;
        self.next_id += 1;
        stream.watchers.insert(watch_id, id);
        let w = Watcher::new(key, watch_id, &c, next_rev);
        if next_rev <= self.synced_rev {
            self.unsynced.insert(id);
        } else {
            self.synced.insert(id, &w);
        }
        self.watchers.insert(id, w);
    }

    fn cancel(&mut self, key: StreamKey, watch_id: i64) {
        let current = self.store.current_revision();
        let Some(stream) = self.streams.get_mut(&key) else { return };
        // etcd answers nothing for an id it does not know.
        let Some(id) = stream.watchers.remove(&watch_id) else { return };
        let r = WatchResponse { header: Some((self.header)(current)), watch_id, canceled: true, ..Default::default() };
        let _ = stream.sender.send_control(Body::Watch(r));
        self.forget_watcher(id);
    }

    /// Answers a progress request for the whole stream with the highest
    /// revision every watcher on it has been sent everything up to.
    fn progress(&mut self, key: StreamKey) {
        let Some(stream) = self.streams.get(&key) else { return };
        let mut rev = self.synced_rev;
        for id in stream.watchers.values() {
            if let Some(w) = self.watchers.get(id) {
                if self.unsynced.contains(id) {
                    rev = rev.min(w.next_rev - 1);
                }
            }
        }
        let r = WatchResponse { header: Some((self.header)(rev)), watch_id: INVALID_WATCH_ID, ..Default::default() };
        let _ = stream.sender.send_control(Body::Watch(r));
    }

    fn remove_stream(&mut self, key: StreamKey) {
        if let Some(stream) = self.streams.remove(&key) {
            for id in stream.watchers.into_values() {
                self.forget_watcher(id);
            }
            self.open_streams.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn forget_watcher(&mut self, id: WatcherId) {
        if let Some(w) = self.watchers.remove(&id) {
            self.synced.remove(id, &w);
            self.unsynced.remove(&id);
        }
    }

    // ---------------------------------------------------------------- events

    /// Live events of one committed batch, in revision order.
    pub fn on_events(&mut self, events: Vec<Event>) {
        let (Some(first), Some(last)) = (events.first(), events.last()) else { return };
        let (first, last) = (revision_of(first), revision_of(last));
        if last <= self.synced_rev {
            return; // read from storage already, after a gap
        }
        if first > self.synced_rev + 1 {
            // Revisions in between never arrived (the feed was full):
            // everyone catches up from storage, which has them.
            self.fall_behind();
            return;
        }
        let mut per_watcher: BTreeMap<WatcherId, Vec<Event>> = BTreeMap::new();
        let mut candidates = Vec::new();
        for ev in events {
            if revision_of(&ev) <= self.synced_rev {
                continue;
            }
            let Some(kv) = &ev.kv else { continue };
            candidates.clear();
            self.synced.candidates(&kv.key, &mut candidates);
            for id in &candidates {
                let Some(w) = self.watchers.get(id) else { continue };
                if w.wants(&ev) {
                    let mut e = ev.clone();
                    if !w.prev_kv {
                        e.prev_kv = None;
                    }
                    per_watcher.entry(*id).or_default().push(e);
                }
            }
        }
        self.synced_rev = last;
        for (id, evs) in per_watcher {
            if self.send_events(id, evs, last) == Err(Refused::Full) {
                // Slow: caught up from storage once its connection drains.
                if let Some(w) = self.watchers.get(&id) {
                    self.synced.remove(id, w);
                    self.unsynced.insert(id);
                }
            }
        }
    }

    /// Every synced watcher becomes unsynced at the first revision it may
    /// not have; live delivery resumes from the store's current revision.
    pub fn fall_behind(&mut self) {
        for id in self.synced.all() {
            if let Some(w) = self.watchers.get_mut(&id) {
                w.next_rev = w.next_rev.max(self.synced_rev + 1);
                self.unsynced.insert(id);
            }
        }
        self.synced.clear();
        self.synced_rev = self.synced_rev.max(self.store.current_revision());
    }

    /// Sends `events` (wanted, in revision order, all of whose revisions are
    /// complete up to `covered`) to a watcher, split into responses of
    /// whole revisions. On success the watcher's position moves past
    /// `covered`; on `Full`, to the first revision not sent.
    fn send_events(&mut self, id: WatcherId, events: Vec<Event>, covered: i64) -> Result<(), Refused> {
        let Some(w) = self.watchers.get(&id) else { return Err(Refused::Closed) };
        let Some(stream) = self.streams.get(&w.stream) else { return Err(Refused::Closed) };
        let (watch_id, fragment) = (w.watch_id, w.fragment);
        let max = self.cfg.max_response_bytes;
        let mut next_rev = w.next_rev;
        let mut result = Ok(());
        let groups = split_responses(events, max);
        let count = groups.len();
        for (i, group) in groups.into_iter().enumerate() {
            let group_first = group.first().map_or(next_rev, revision_of);
            let group_last = group.last().map_or(next_rev, revision_of);
            // The last response of a delivery speaks for everything it
            // covers (as etcd, whose replay carries the current revision).
            let header = Some((self.header)(if i + 1 == count { covered.max(group_last) } else { group_last }));
            let sent = if fragment && group_size(&group) > max {
                send_fragments(&stream.sender, header, watch_id, group, max)
            } else {
                let r = WatchResponse { header, watch_id, events: group, ..Default::default() };
                stream.sender.try_send(Body::Watch(r))
            };
            match sent {
                Ok(()) => next_rev = group_last + 1,
                Err(e) => {
                    next_rev = next_rev.max(group_first);
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            next_rev = next_rev.max(covered + 1);
        }
        if let Some(w) = self.watchers.get_mut(&id) {
            w.next_rev = w.next_rev.max(next_rev);
            w.sent_since_progress = true;
        }
        result
    }

    // ---------------------------------------------------------------- catch-up

    /// One bounded round of catch-up for the unsynced group. Whether work
    /// remains (the caller comes back after its next tick).
    pub fn catch_up(&mut self) -> bool {
        if self.unsynced.is_empty() {
            return false;
        }
        let compacted = self.store.compact_revision();
        let ids: Vec<WatcherId> = self.unsynced.iter().copied().collect();
        let mut from = i64::MAX;
        for id in &ids {
            let Some(w) = self.watchers.get(id) else { continue };
            if w.next_rev < compacted {
                self.cancel_compacted(*id, compacted);
                continue;
            }
            if w.next_rev > self.synced_rev {
                self.rejoin(*id);
                continue;
            }
            let has_room = self.streams.get(&w.stream).is_some_and(|s| s.sender.has_room());
            if has_room {
                from = from.min(w.next_rev);
            }
        }
        if from == i64::MAX {
            return !self.unsynced.is_empty();
        }
        let chunk = match self.store.history(from, self.synced_rev, self.cfg.catch_up_events) {
            Ok(c) => c,
            // Compacted meanwhile: the next round cancels whoever is below.
            Err(MvccError::Compacted) => return true,
            Err(e) => {
                log::error!("watch catch-up: reading history from revision {from}: {e}");
                return true;
            }
        };
        let ids: Vec<WatcherId> = self.unsynced.iter().copied().collect();
        for id in ids {
            let Some(w) = self.watchers.get(&id) else { continue };
            if w.next_rev > chunk.last || w.next_rev < from {
                continue;
            }
            if !self.streams.get(&w.stream).is_some_and(|s| s.sender.has_room()) {
                continue;
            }
            let mut evs: Vec<Event> = chunk.events.iter().filter(|e| w.wants(e)).cloned().collect();
            if w.prev_kv {
                for e in &mut evs {
                    if let Some(kv) = &e.kv {
                        e.prev_kv = self.store.prev_kv(&kv.key, kv.mod_revision);
                    }
                }
            }
            if self.send_events(id, evs, chunk.last).is_ok() && chunk.last >= self.synced_rev {
                self.rejoin(id);
            }
        }
        !self.unsynced.is_empty()
    }

    fn rejoin(&mut self, id: WatcherId) {
        if let Some(w) = self.watchers.get(&id) {
            self.unsynced.remove(&id);
            self.synced.insert(id, w);
        }
    }

    fn cancel_compacted(&mut self, id: WatcherId, compacted: i64) {
        let Some(w) = self.watchers.get(&id) else { return };
        let (key, watch_id) = (w.stream, w.watch_id);
        if let Some(stream) = self.streams.get_mut(&key) {
            stream.watchers.remove(&watch_id);
            // etcd's cancel for compaction carries no header revision.
            let r = WatchResponse {
                header: Some((self.header)(0)),
                watch_id,
                canceled: true,
                compact_revision: compacted,
                cancel_reason: REASON_COMPACTED.to_string(),
                ..Default::default()
            };
            let _ = stream.sender.send_control(Body::Watch(r));
        }
        self.forget_watcher(id);
    }

    // ---------------------------------------------------------------- time

    /// Housekeeping: forgets ended streams, notices a gap (`feed_dropped`,
    /// a replaced state), sends due progress notifications, catches up.
    /// Whether catch-up work remains.
    pub fn tick(&mut self, now: Instant, feed_dropped: bool) -> bool {
        let ended: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| s.ended.load(Ordering::SeqCst) || s.sender.is_closed())
            .map(|(k, _)| *k)
            .collect();
        for key in ended {
            self.remove_stream(key);
        }
        let reloads = self.store.reloads();
        if feed_dropped || reloads != self.reloads {
            self.reloads = reloads;
            self.fall_behind();
        }
        if now.duration_since(self.last_progress) >= self.cfg.progress_interval {
            self.last_progress = now;
            self.notify_progress();
        }
        self.catch_up()
    }

    /// etcd's progress notifications: a synced watcher that asked for them
    /// and was sent nothing during the last interval gets an empty response
    /// at the synced revision.
    fn notify_progress(&mut self) {
        let rev = self.synced_rev;
        for id in self.synced.all() {
            let Some(w) = self.watchers.get_mut(&id) else { continue };
            if w.progress_notify && !w.sent_since_progress {
                if let Some(s) = self.streams.get(&w.stream) {
                    let r =
                        WatchResponse { header: Some((self.header)(rev)), watch_id: w.watch_id, ..Default::default() };
                    let _ = s.sender.try_send(Body::Watch(r));
                }
            }
            w.sent_since_progress = false;
        }
    }
}

fn group_size(events: &[Event]) -> usize {
    events.iter().map(|e| e.encoded_len() + 2).sum()
}

/// Splits events into responses of whole revisions of at most `max` bytes
/// (a revision larger than `max` alone in its response).
fn split_responses(events: Vec<Event>, max: usize) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = Vec::new();
    let mut cur: Vec<Event> = Vec::new();
    let mut cur_size = 0;
    let mut i = 0;
    while i < events.len() {
        let rev = revision_of(&events[i]);
        let end = events[i..].iter().position(|e| revision_of(e) != rev).map_or(events.len(), |p| i + p);
        let size = group_size(&events[i..end]);
        if !cur.is_empty() && cur_size + size > max {
            out.push(std::mem::take(&mut cur));
            cur_size = 0;
        }
        cur.extend_from_slice(&events[i..end]);
        cur_size += size;
        i = end;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A revision too large for one response, to a watcher that asked for
/// fragments: the first piece is a data message (it may be refused), the
/// rest must follow it, so they go as control messages.
fn send_fragments(
    sender: &StreamSender,
    header: Option<ResponseHeader>,
    watch_id: i64,
    events: Vec<Event>,
    max: usize,
) -> Result<(), Refused> {
    let mut pieces: Vec<Vec<Event>> = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0;
    for e in events {
        let n = e.encoded_len() + 2;
        if !cur.is_empty() && size + n > max {
            pieces.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.push(e);
    }
    pieces.push(cur);
    let last = pieces.len() - 1;
    for (i, events) in pieces.into_iter().enumerate() {
        let r = WatchResponse { header, watch_id, events, fragment: i < last, ..Default::default() };
        if i == 0 {
            sender.try_send(Body::Watch(r))?;
        } else {
            sender.send_control(Body::Watch(r))?;
        }
    }
    Ok(())
}
