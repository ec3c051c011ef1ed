//! The write side: one `ApplyBatch` per batch of committed Raft entries.
//! Put, DeleteRange, Txn and Compact are executed against the published
//! state plus the batch's own earlier writes, staged in memory and in one
//! RocksDB `WriteBatch`, and published to readers only by `commit`.
//!
//! Owns etcd's write semantics (revisions, versions, generations, txn
//! compare / check / execute order, events). Must never change the store
//! before `commit` (dropping a batch leaves memory and disk untouched), never
//! half-apply a request (a failing request stages nothing), and never panic
//! on request data.

use super::error::MvccError;
use super::key_index::{latest_at, IdxRev, KeyRange};
use super::range::{assemble, collect, fetch_all, fetch_one, plan, Layer, Layers, ValueMap};
use super::revision::{
    encode_i64, encode_rev_key, encode_u64, Revision, META_CONSISTENT_INDEX, META_CONSISTENT_TERM,
    META_SCHEDULED_COMPACT,
};
use super::store::Inner;
use super::validate::{validate_delete_range, validate_put, validate_txn};
use crate::proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op, response_op, CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::db::{CF_KV, CF_META};
use bytes::Bytes;
use prost::Message;
use rocksdb::WriteBatch;
use std::cmp::Ordering;
use std::sync::MutexGuard;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

/// The writes of one request (one future main revision), kept apart until
/// the request succeeds so a failing request leaves nothing behind.
struct Scope {
    main: i64,
    changes: Vec<(Bytes, IdxRev, KeyValue)>,
    layer: Layer,
    values: ValueMap,
}

impl Scope {
    fn new(main: i64) -> Scope {
        Scope { main, changes: Vec::new(), layer: Layer::new(), values: ValueMap::new() }
    }

    fn record(&mut self, kv: KeyValue, tombstone: bool) {
        let rev = Revision::new(self.main, self.changes.len() as i64);
        let ir = IdxRev::new(rev, tombstone);
        self.layer.entry(kv.key.clone()).or_default().push(ir);
        if !tombstone {
            self.values.insert(rev, kv.clone());
        }
        self.changes.push((kv.key.clone(), ir, kv));
    }
}

/// A batch of writes; see the module documentation. Obtained from
/// `KvStore::begin`; only one exists at a time (a second `begin` blocks).
pub struct ApplyBatch<'a> {
    inner: &'a Inner,
    /// The apply lock; `None` for a read-only batch (never committed).
    _one_at_a_time: Option<MutexGuard<'a, ()>>,
    wb: WriteBatch,
    start_consistent_index: u64,
    start_consistent_term: u64,
    /// Store revision including this batch's requests so far.
    rev: i64,
    compact_rev: i64,
    new_compaction: Option<i64>,
    layer: Layer,
    values: ValueMap,
    lease_check: Option<Box<dyn Fn(i64) -> bool + 'a>>,
}

/// A read view: unpublished layers and the revision they read at.
struct View<'s> {
    layers: Layers<'s>,
    at: i64,
}

impl<'a> ApplyBatch<'a> {
    pub(crate) fn new(inner: &'a Inner, guard: MutexGuard<'a, ()>) -> ApplyBatch<'a> {
        ApplyBatch::with_guard(inner, Some(guard))
    }

    /// A batch that only reads: it takes no apply lock, so it runs beside
    /// the apply thread, reading the state published when it was made. It
    /// must never be committed (`KvStore::txn_read` drops it).
    pub(crate) fn read_only(inner: &'a Inner) -> ApplyBatch<'a> {
        ApplyBatch::with_guard(inner, None)
    }

    fn with_guard(inner: &'a Inner, guard: Option<MutexGuard<'a, ()>>) -> ApplyBatch<'a> {
        let st = inner.read_state();
        let b = ApplyBatch {
            inner,
            _one_at_a_time: guard,
            wb: WriteBatch::default(),
            start_consistent_index: st.consistent_index,
            start_consistent_term: st.consistent_term,
            rev: st.current_rev,
            compact_rev: st.compact_rev,
            new_compaction: None,
            layer: Layer::new(),
            values: ValueMap::new(),
            lease_check: None,
        };
        drop(st);
        b
    }

    /// The replay guard: true when the Raft entry `index` was already applied
    /// (it is at or below the consistent index persisted with the store), so
    /// the caller must skip it. Call it for every entry before applying it;
    /// `commit` then records the last entry's index.
    pub fn already_applied(&self, index: u64) -> bool {
        index <= self.start_consistent_index
    }

    /// Installs the lease layer's existence check: puts naming a lease for
    /// which `exists` is false fail with `etcdserver: requested lease not
    /// found` (checked before anything of the request is applied, as etcd
    /// does). Without it leases are recorded unchecked.
    pub fn set_lease_check(&mut self, exists: impl Fn(i64) -> bool + 'a) {
        self.lease_check = Some(Box::new(exists));
    }

    /// The store revision including this batch's writes so far.
    pub fn revision(&self) -> i64 {
        self.rev
    }

    fn view<'s>(&'s self, scope: Option<&'s Scope>) -> View<'s> {
        let mut layers = Layers::none();
        layers.idx[0] = Some(&self.layer);
        layers.vals[0] = Some(&self.values);
        let mut at = self.rev;
        if let Some(s) = scope {
            layers.idx[1] = Some(&s.layer);
            layers.vals[1] = Some(&s.values);
            if !s.changes.is_empty() {
                at = s.main;
            }
        }
        View { layers, at }
    }

    fn compacted_now(&self) -> i64 {
        self.inner.read_state().compact_rev.max(self.compact_rev)
    }

    /// The live value of `key` in a view.
    fn get_live(&self, v: &View<'_>, key: &[u8]) -> Result<Option<KeyValue>, MvccError> {
        let w = match v.layers.latest(key, v.at) {
            Some(w) => Some(w),
            None => latest_at(self.inner.read_state().index.writes(key), v.at),
        };
        match w {
            Some(w) if !w.is_tombstone() => {
                let c = || self.compacted_now();
                Ok(Some(fetch_one(&self.inner.db, &v.layers, key, w.rev(), v.at, &c, None)?))
            }
            _ => Ok(None),
        }
    }

    fn check_lease(&self, lease: i64) -> Result<(), MvccError> {
        if lease != 0 {
            if let Some(check) = &self.lease_check {
                if !check(lease) {
                    return Err(MvccError::LeaseNotFound);
                }
            }
        }
        Ok(())
    }

    fn absorb(&mut self, scope: Scope) {
        if scope.changes.is_empty() {
            return;
        }
        let kv_cf = self.inner.db.cf(CF_KV);
        for (key, ir, kv) in scope.changes {
            self.wb.put_cf(kv_cf, encode_rev_key(ir.rev(), ir.is_tombstone()), kv.encode_to_vec());
            self.layer.entry(key).or_default().push(ir);
        }
        self.values.extend(scope.values);
        self.rev = scope.main;
    }

    // ------------------------------------------------------------ requests

    /// A read inside the batch: sees the batch's earlier writes.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.exec_range(None, req)
    }

    pub fn put(&mut self, req: &PutRequest) -> Result<(PutResponse, Vec<Event>), MvccError> {
        validate_put(req)?;
        // etcd checks the lease of a plain put before anything else.
        self.check_lease(req.lease)?;
        let mut scope = Scope::new(self.rev + 1);
        let mut events = Vec::with_capacity(1);
        let resp = self.exec_put(&mut scope, req, &mut events)?;
        self.absorb(scope);
        Ok((resp, events))
    }

    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<(DeleteRangeResponse, Vec<Event>), MvccError> {
        validate_delete_range(req)?;
        let mut scope = Scope::new(self.rev + 1);
        let mut events = Vec::new();
        let resp = self.exec_delete(&mut scope, req, &mut events)?;
        self.absorb(scope);
        Ok((resp, events))
    }

    /// Deletes exactly `keys` (those that are live) in one revision, as a
    /// lease's revocation does; no revision is used when none is live.
    pub fn delete_keys(&mut self, keys: &[Bytes]) -> Result<Vec<Event>, MvccError> {
        let mut scope = Scope::new(self.rev + 1);
        let mut events = Vec::with_capacity(keys.len());
        for key in keys {
            let req = DeleteRangeRequest { key: key.clone(), ..Default::default() };
            self.exec_delete(&mut scope, &req, &mut events)?;
        }
        self.absorb(scope);
        Ok(events)
    }

    /// etcd's txn: compares (of this txn and of every nested txn on the
    /// taken path) are evaluated against the state before the txn; then puts
    /// (ignore_value / ignore_lease need the key, leases must exist) and
    /// then ranges (revision not compacted nor future) on the path are
    /// checked; only then are the ops executed, each seeing the earlier ones.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<(TxnResponse, Vec<Event>), MvccError> {
        validate_txn(req, self.inner.opts.max_txn_ops)?;
        let mut path = Vec::new();
        {
            let pre = self.view(None);
            self.compare_path(&pre, req, &mut path)?;
            self.check_path(&pre, req, &path, &mut 0, Check::Puts)?;
            self.check_path(&pre, req, &path, &mut 0, Check::Ranges)?;
        }
        let mut scope = Scope::new(self.rev + 1);
        let mut events = Vec::new();
        let mut resp = self.exec_txn(&mut scope, req, &path, &mut 0, &mut events)?;
        let rev = if scope.changes.is_empty() { self.rev } else { scope.main };
        self.absorb(scope);
        resp.header = header(rev);
        Ok((resp, events))
    }

    /// Schedules a compaction at `req.revision`: from now on reads below it
    /// fail; the key index is compacted at `commit`, and old revisions are
    /// removed from RocksDB in the background afterwards.
    pub fn compact(&mut self, req: &CompactionRequest) -> Result<CompactionResponse, MvccError> {
        if req.revision <= self.compact_rev {
            return Err(MvccError::Compacted);
        }
        if req.revision > self.rev {
            return Err(MvccError::FutureRev);
        }
        self.compact_rev = req.revision;
        self.new_compaction = Some(req.revision);
        self.wb.put_cf(self.inner.db.cf(CF_META), META_SCHEDULED_COMPACT, encode_i64(req.revision));
        Ok(CompactionResponse { header: header(self.rev) })
    }

    /// The batch's RocksDB `WriteBatch`, for other layers' writes that must
    /// be atomic with the keyspace (leases, auth, members).
    pub fn write_batch(&mut self) -> &mut WriteBatch {
        &mut self.wb
    }

    /// Records `consistent_index` / `consistent_term` in the same
    /// `WriteBatch`, writes it (not synced: the Raft log is the durable
    /// record), then publishes the new revision and index entries to
    /// readers. The consistent index never moves backwards: a lower index
    /// than the one the batch started from keeps the old index and term.
    /// On error nothing was published; the caller must stop applying.
    pub fn commit(mut self, consistent_index: u64, consistent_term: u64) -> Result<(), MvccError> {
        let (ci, term) = if consistent_index >= self.start_consistent_index {
            (consistent_index, consistent_term)
        } else {
            (self.start_consistent_index, self.start_consistent_term)
        };
        let meta = self.inner.db.cf(CF_META);
        self.wb.put_cf(meta, META_CONSISTENT_INDEX, encode_u64(ci));
        self.wb.put_cf(meta, META_CONSISTENT_TERM, encode_u64(term));
        let wb = std::mem::take(&mut self.wb);
        self.inner.db.write(wb, false)?;
        {
            let mut st = self.inner.write_state();
            for (key, writes) in std::mem::take(&mut self.layer) {
                for w in writes {
                    st.index.append(&key, w);
                }
            }
            st.current_rev = self.rev;
            st.compact_rev = self.compact_rev;
            st.consistent_index = ci;
            st.consistent_term = term;
        }
        if let Some(c) = self.new_compaction {
            self.inner.compact_index(c);
            self.inner.compactor.schedule(c);
        }
        Ok(())
    }

    // ------------------------------------------------------------ execution

    fn exec_range(&self, scope: Option<&Scope>, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        let v = self.view(scope);
        let p = plan(req, v.at, self.compact_rev)?;
        let range = KeyRange::new(&req.key, &req.range_end);
        let c = {
            let st = self.inner.read_state();
            collect(&st.index, &v.layers, &range, p.at, p.want)
        };
        let kvs = fetch_all(&self.inner.db, &v.layers, &c.revs, p.at, || self.compacted_now())?;
        Ok(assemble(req, v.at, c.count, kvs))
    }

    fn exec_put(&self, scope: &mut Scope, req: &PutRequest, events: &mut Vec<Event>) -> Result<PutResponse, MvccError> {
        let (cur, prev_event) = {
            let v = self.view(Some(scope));
            let cur = self.get_live(&v, &req.key)?;
            // Watchers see prev_kv as of the revision before this write's.
            let prev_event = if scope.layer.contains_key(&req.key[..]) {
                self.get_live(&self.view(None), &req.key)?
            } else {
                cur.clone()
            };
            (cur, prev_event)
        };
        if (req.ignore_value || req.ignore_lease) && cur.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        let value = match (&cur, req.ignore_value) {
            (Some(c), true) => c.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&cur, req.ignore_lease) {
            (Some(c), true) => c.lease,
            _ => req.lease,
        };
        let (create_revision, version) = match &cur {
            Some(c) => (c.create_revision, c.version + 1),
            None => (scope.main, 1),
        };
        let kv = KeyValue { key: req.key.clone(), create_revision, mod_revision: scope.main, version, value, lease };
        scope.record(kv.clone(), false);
        events.push(Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: prev_event });
        Ok(PutResponse { header: header(scope.main), prev_kv: if req.prev_kv { cur } else { None } })
    }

    fn exec_delete(
        &self,
        scope: &mut Scope,
        req: &DeleteRangeRequest,
        events: &mut Vec<Event>,
    ) -> Result<DeleteRangeResponse, MvccError> {
        let range = KeyRange::new(&req.key, &req.range_end);
        let (kvs, prevs) = {
            let v = self.view(Some(scope));
            let c = {
                let st = self.inner.read_state();
                collect(&st.index, &v.layers, &range, v.at, usize::MAX)
            };
            let kvs = fetch_all(&self.inner.db, &v.layers, &c.revs, v.at, || self.compacted_now())?;
            let pre = self.view(None);
            let mut prevs = Vec::with_capacity(kvs.len());
            for kv in &kvs {
                prevs.push(if scope.layer.contains_key(&kv.key[..]) {
                    self.get_live(&pre, &kv.key)?
                } else {
                    Some(kv.clone())
                });
            }
            (kvs, prevs)
        };
        for (kv, prev) in kvs.iter().zip(prevs) {
            let tomb = KeyValue { key: kv.key.clone(), mod_revision: scope.main, ..Default::default() };
            scope.record(tomb.clone(), true);
            events.push(Event { r#type: EventType::Delete as i32, kv: Some(tomb), prev_kv: prev });
        }
        let deleted = kvs.len() as i64;
        let revision = if !scope.changes.is_empty() { scope.main } else { self.rev };
        Ok(DeleteRangeResponse { header: header(revision), deleted, prev_kvs: if req.prev_kv { kvs } else { vec![] } })
    }

    fn exec_txn(
        &self,
        scope: &mut Scope,
        t: &TxnRequest,
        path: &[bool],
        pos: &mut usize,
        events: &mut Vec<Event>,
    ) -> Result<TxnResponse, MvccError> {
        let ok = next_path(path, pos)?;
        let ops = if ok { &t.success } else { &t.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let r = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    response_op::Response::ResponseRange(self.exec_range(Some(scope), r)?)
                }
                Some(request_op::Request::RequestPut(p)) => {
                    response_op::Response::ResponsePut(self.exec_put(scope, p, events)?)
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    response_op::Response::ResponseDeleteRange(self.exec_delete(scope, d, events)?)
                }
                Some(request_op::Request::RequestTxn(n)) => {
                    response_op::Response::ResponseTxn(self.exec_txn(scope, n, path, pos, events)?)
                }
                None => return Err(MvccError::KeyNotFound),
            };
            responses.push(ResponseOp { response: Some(r) });
        }
        // etcd leaves nested txn headers empty; the caller fills the outer one.
        Ok(TxnResponse { header: Some(ResponseHeader::default()), succeeded: ok, responses })
    }

    fn compare_path(&self, v: &View<'_>, t: &TxnRequest, path: &mut Vec<bool>) -> Result<(), MvccError> {
        let mut ok = true;
        for c in &t.compare {
            if !self.compare(v, c)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let Some(request_op::Request::RequestTxn(n)) = &op.request {
                self.compare_path(v, n, path)?;
            }
        }
        Ok(())
    }

    /// etcd's `applyCompare`: every key of the range must satisfy the
    /// compare; with no key, VALUE compares are false and the others compare
    /// against zero.
    fn compare(&self, v: &View<'_>, c: &Compare) -> Result<bool, MvccError> {
        let range = KeyRange::new(&c.key, &c.range_end);
        let col = {
            let st = self.inner.read_state();
            collect(&st.index, &v.layers, &range, v.at, usize::MAX)
        };
        if col.revs.is_empty() {
            if c.target == CompareTarget::Value as i32 {
                return Ok(false);
            }
            return Ok(compare_kv(c, &KeyValue::default()));
        }
        let compacted = || self.compacted_now();
        for (key, rev) in &col.revs {
            let kv = fetch_one(&self.inner.db, &v.layers, key, *rev, v.at, &compacted, None)?;
            if !compare_kv(c, &kv) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn check_path(
        &self,
        v: &View<'_>,
        t: &TxnRequest,
        path: &[bool],
        pos: &mut usize,
        what: Check,
    ) -> Result<(), MvccError> {
        let ok = next_path(path, pos)?;
        for op in if ok { &t.success } else { &t.failure } {
            match (&op.request, what) {
                (Some(request_op::Request::RequestTxn(n)), _) => self.check_path(v, n, path, pos, what)?,
                (Some(request_op::Request::RequestPut(p)), Check::Puts) => {
                    if (p.ignore_value || p.ignore_lease) && self.get_live(v, &p.key)?.is_none() {
                        return Err(MvccError::KeyNotFound);
                    }
                    self.check_lease(p.lease)?;
                }
                (Some(request_op::Request::RequestRange(r)), Check::Ranges) if r.revision != 0 => {
                    if r.revision > v.at {
                        return Err(MvccError::FutureRev);
                    }
                    if r.revision < self.compact_rev {
                        return Err(MvccError::Compacted);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Check {
    Puts,
    Ranges,
}

fn next_path(path: &[bool], pos: &mut usize) -> Result<bool, MvccError> {
    let ok = *path.get(*pos).ok_or_else(|| MvccError::corrupt("txn path shorter than the txn (internal)"))?;
    *pos += 1;
    Ok(ok)
}

/// etcd's `compareKV`: a target union of another kind compares against zero
/// (or the empty value); an unknown result passes.
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => b"",
            };
            kv.value.as_ref().cmp(want)
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(match &c.target_union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => &0,
        }),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(match &c.target_union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => &0,
        }),
        Ok(CompareTarget::Version) => kv.version.cmp(match &c.target_union {
            Some(TargetUnion::Version(v)) => v,
            _ => &0,
        }),
        Ok(CompareTarget::Lease) => kv.lease.cmp(match &c.target_union {
            Some(TargetUnion::Lease(v)) => v,
            _ => &0,
        }),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}
