//! The range engine shared by published reads, reads inside an apply batch
//! and txn execution: which keys are live in a key range at a revision
//! (published index merged with not-yet-published writes), the count, value
//! fetching, and etcd 3.4's filtering, sorting and limit rules.
//!
//! Owns the read algorithm only. Must never write, and never hold the
//! store's lock while reading values from RocksDB (callers collect revisions
//! under the lock, then fetch).

use super::error::MvccError;
use super::key_index::{latest_at, IdxRev, KeyIndex, KeyRange};
use super::revision::{decode_kv, encode_rev_key, Revision};
use super::validate::validate_range;
use crate::proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    RangeRequest, RangeResponse, ResponseHeader,
};
use crate::proto::mvccpb::KeyValue;
use crate::storage::db::{Db, CF_KV};
use bytes::Bytes;
use rocksdb::{ReadOptions, Snapshot};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// Writes not yet in the published index, per key, oldest first.
pub(crate) type Layer = BTreeMap<Bytes, Vec<IdxRev>>;
/// Values of those writes.
pub(crate) type ValueMap = HashMap<Revision, KeyValue>;

/// Unpublished writes stacked over the published index: the batch's earlier
/// requests, then the current txn's earlier ops (newest last).
#[derive(Clone, Copy, Default)]
pub(crate) struct Layers<'a> {
    pub idx: [Option<&'a Layer>; 2],
    pub vals: [Option<&'a ValueMap>; 2],
}

impl<'a> Layers<'a> {
    pub fn none() -> Layers<'a> {
        Layers::default()
    }

    /// The newest unpublished write of `key` at or below `at`, if any layer has one.
    pub fn latest(&self, key: &[u8], at: i64) -> Option<IdxRev> {
        for l in self.idx.iter().rev().flatten() {
            if let Some(w) = l.get(key) {
                if let Some(r) = latest_at(w, at) {
                    return Some(r);
                }
            }
        }
        None
    }

    fn value(&self, rev: Revision) -> Option<&KeyValue> {
        self.vals.iter().rev().flatten().find_map(|m| m.get(&rev))
    }
}

/// Live keys of a range at a revision: how many, and the first `want` of them.
pub(crate) struct Collected {
    pub count: i64,
    pub revs: Vec<(Bytes, Revision)>,
}

/// Walks `range` at revision `at` over the index merged with `layers`.
pub(crate) fn collect(index: &KeyIndex, layers: &Layers<'_>, range: &KeyRange<'_>, at: i64, want: usize) -> Collected {
    let mut changed: BTreeMap<&[u8], IdxRev> = BTreeMap::new();
    if let Some(bounds) = range.bounds() {
        for layer in layers.idx.iter().flatten() {
            for (k, w) in layer.range::<[u8], _>(bounds) {
                if let Some(r) = latest_at(w, at) {
                    changed.insert(k.as_ref(), r);
                }
            }
        }
    }
    let mut count = 0i64;
    let mut revs = Vec::new();
    let mut emit = |k: &[u8], r: IdxRev| {
        if !r.is_tombstone() {
            count += 1;
            if revs.len() < want {
                revs.push((Bytes::copy_from_slice(k), r.rev()));
            }
        }
    };
    if changed.is_empty() {
        if let KeyRange::Single(k) = range {
            if let Some(r) = latest_at(index.writes(k), at) {
                emit(k, r);
            }
        } else {
            index.visit(range, |k, w| {
                if let Some(r) = latest_at(w, at) {
                    emit(k, r);
                }
                true
            });
        }
    } else {
        let mut ch = changed.into_iter().peekable();
        index.visit(range, |k, w| {
            while let Some((ck, cr)) = ch.peek().copied() {
                match ck.cmp(k) {
                    Ordering::Less => {
                        emit(ck, cr);
                        ch.next();
                    }
                    Ordering::Equal => {
                        emit(ck, cr);
                        ch.next();
                        return true;
                    }
                    Ordering::Greater => break,
                }
            }
            if let Some(r) = latest_at(w, at) {
                emit(k, r);
            }
            true
        });
        for (ck, cr) in ch {
            emit(ck, cr);
        }
    }
    Collected { count, revs }
}

/// The value of a live revision: from the layers, else from RocksDB.
/// `Ok(None)` when RocksDB does not have it (compacted meanwhile, or corrupt:
/// the caller decides).
pub(crate) fn fetch(
    db: &Db,
    layers: &Layers<'_>,
    rev: Revision,
    snap: Option<&Snapshot<'_>>,
) -> Result<Option<KeyValue>, MvccError> {
    if let Some(kv) = layers.value(rev) {
        return Ok(Some(kv.clone()));
    }
    let key = encode_rev_key(rev, false);
    let got = match snap {
        Some(s) => s.get_pinned_cf(db.cf(CF_KV), key)?,
        None => db.raw().get_pinned_cf(db.cf(CF_KV), key)?,
    };
    match got {
        Some(b) => Ok(Some(decode_kv(rev, false, &b)?)),
        None => Ok(None),
    }
}

/// What a range request needs beyond key order: etcd fetches everything
/// when it must filter or re-sort, and `limit + 1` otherwise.
pub(crate) struct Plan {
    pub at: i64,
    pub want: usize,
}

/// etcd's default ordering: results come in ascending key order already.
pub(crate) fn is_default_ordering(r: &RangeRequest) -> bool {
    let order = effective_order(r);
    order == SortOrder::None || (r.sort_target == SortTarget::Key as i32 && order == SortOrder::Ascend)
}

pub(crate) fn has_filters(r: &RangeRequest) -> bool {
    r.min_mod_revision != 0 || r.max_mod_revision != 0 || r.min_create_revision != 0 || r.max_create_revision != 0
}

fn effective_order(r: &RangeRequest) -> SortOrder {
    let order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
    if r.sort_target != SortTarget::Key as i32 && order == SortOrder::None {
        SortOrder::Ascend
    } else {
        order
    }
}

/// Validates `r` and resolves its revision against the view's current and
/// compaction revisions, as etcd's `rangeKeys` does.
pub(crate) fn plan(r: &RangeRequest, current: i64, compacted: i64) -> Result<Plan, MvccError> {
    validate_range(r)?;
    let mut at = r.revision;
    if at > current {
        return Err(MvccError::FutureRev);
    }
    if at <= 0 {
        at = current;
    }
    if at < compacted {
        return Err(MvccError::Compacted);
    }
    let want = if r.count_only {
        0
    } else if !is_default_ordering(r) || has_filters(r) || r.limit <= 0 {
        usize::MAX
    } else {
        usize::try_from(r.limit).unwrap_or(usize::MAX).saturating_add(1)
    };
    Ok(Plan { at, want })
}

/// Fetches the values of collected revisions. A value missing from RocksDB
/// means a compaction overtook this read (`Compacted`) when
/// `compacted_now() > at`, and corruption otherwise.
pub(crate) fn fetch_all(
    db: &Db,
    layers: &Layers<'_>,
    revs: &[(Bytes, Revision)],
    at: i64,
    compacted_now: impl Fn() -> i64,
) -> Result<Vec<KeyValue>, MvccError> {
    let mut out = Vec::with_capacity(revs.len());
    for (key, rev) in revs {
        out.push(fetch_one(db, layers, key, *rev, at, &compacted_now, None)?);
    }
    Ok(out)
}

pub(crate) fn fetch_one(
    db: &Db,
    layers: &Layers<'_>,
    key: &[u8],
    rev: Revision,
    at: i64,
    compacted_now: &dyn Fn() -> i64,
    snap: Option<&Snapshot<'_>>,
) -> Result<KeyValue, MvccError> {
    let got = fetch(db, layers, rev, snap)?;
    check_fetched(key, rev, at, got, compacted_now)
}

/// Values of many published revisions from a snapshot, with one batched
/// RocksDB lookup per 256 revisions (a 100-key range costs 1 call, not 100).
pub(crate) fn fetch_many(
    db: &Db,
    revs: &[(Bytes, Revision)],
    at: i64,
    compacted_now: &dyn Fn() -> i64,
    snap: &Snapshot<'_>,
) -> Result<Vec<KeyValue>, MvccError> {
    let mut out = Vec::with_capacity(revs.len());
    let cf = db.cf(CF_KV);
    for chunk in revs.chunks(256) {
        let keys: Vec<Vec<u8>> = chunk.iter().map(|(_, r)| encode_rev_key(*r, false)).collect();
        let mut ro = ReadOptions::default();
        ro.set_snapshot(snap);
        let got = db.raw().batched_multi_get_cf_opt(cf, keys.iter(), false, &ro);
        if got.len() != chunk.len() {
            return Err(MvccError::Storage(format!("multi-get returned {} of {} values", got.len(), chunk.len())));
        }
        for ((key, rev), res) in chunk.iter().zip(got) {
            let kv = match res? {
                Some(b) => Some(decode_kv(*rev, false, &b)?),
                None => None,
            };
            out.push(check_fetched(key, *rev, at, kv, compacted_now)?);
        }
    }
    Ok(out)
}

/// A fetched value must exist and belong to the key the index named.
fn check_fetched(
    key: &[u8],
    rev: Revision,
    at: i64,
    got: Option<KeyValue>,
    compacted_now: &dyn Fn() -> i64,
) -> Result<KeyValue, MvccError> {
    match got {
        Some(kv) if kv.key.as_ref() == key => Ok(kv),
        Some(kv) => Err(MvccError::corrupt(format!(
            "revision {}/{} holds key {:?}, the index says {:?}",
            rev.main,
            rev.sub,
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(key)
        ))),
        None if compacted_now() > at => Err(MvccError::Compacted),
        None => Err(MvccError::corrupt(format!(
            "revision {}/{} of key {:?} is in the index but not in the kv column family",
            rev.main,
            rev.sub,
            String::from_utf8_lossy(key)
        ))),
    }
}

/// etcd 3.4's `applierV3backend.Range` after the mvcc read: filters, sort,
/// limit with `more`, `keys_only`. `count` is the number of live keys in the
/// range at the revision, before filters and limit (as in etcd 3.4 and 3.5).
pub(crate) fn assemble(r: &RangeRequest, header_rev: i64, count: i64, mut kvs: Vec<KeyValue>) -> RangeResponse {
    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }
    sort_kvs(r, &mut kvs);
    let mut more = false;
    if r.limit > 0 && kvs.len() as u64 > r.limit as u64 {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value = Bytes::new();
        }
    }
    RangeResponse { header: Some(ResponseHeader { revision: header_rev, ..Default::default() }), kvs, more, count }
}

/// Sorts as etcd does, but stably: ties keep ascending key order (etcd's
/// `sort.Sort` is stable only for up to 12 items; beyond that etcd's tie
/// order is unspecified).
pub(crate) fn sort_kvs(r: &RangeRequest, kvs: &mut [KeyValue]) {
    if is_default_ordering(r) {
        return;
    }
    let target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    match effective_order(r) {
        SortOrder::Ascend => kvs.sort_by(cmp),
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
        SortOrder::None => {}
    }
}

/// Bytes a key-value adds to a response chunk.
pub(crate) fn kv_bytes(kv: &KeyValue) -> usize {
    kv.key.len() + kv.value.len()
}
