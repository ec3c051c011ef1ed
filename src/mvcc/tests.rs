//! Unit tests of the store as a whole: every semantic rule of the brief,
//! checked against etcd's behaviour (see the comments for the etcd source
//! each rule comes from).

use super::*;
use crate::proto::etcdserverpb::{
    compare::{CompareResult as CR, CompareTarget as CT, TargetUnion as TU},
    range_request::{SortOrder, SortTarget},
    request_op, response_op, CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::db::{Db, CF_KV, CF_META};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

struct T {
    dir: tempfile::TempDir,
    store: Option<KvStore>,
    db: Option<Arc<Db>>,
    ci: u64,
    opts: Options,
}

impl T {
    fn new() -> T {
        T::with(Options::default())
    }
    fn with(opts: Options) -> T {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("db")).unwrap());
        let store = KvStore::open_with(Arc::clone(&db), opts.clone()).unwrap();
        T { dir, store: Some(store), db: Some(db), ci: 0, opts }
    }
    fn s(&self) -> &KvStore {
        self.store.as_ref().unwrap()
    }
    fn db(&self) -> &Db {
        self.db.as_ref().unwrap()
    }
    fn reopen_with(&mut self, opts: Options) {
        self.store = None;
        self.db = None;
        let db = Arc::new(Db::open(&self.dir.path().join("db")).unwrap());
        self.store = Some(KvStore::open_with(Arc::clone(&db), opts.clone()).unwrap());
        self.db = Some(db);
        self.opts = opts;
    }
    fn reopen(&mut self) {
        let o = self.opts.clone();
        self.reopen_with(o)
    }
    /// Runs `f` in its own batch and commits it with the next index.
    fn apply<R>(&mut self, f: impl FnOnce(&mut ApplyBatch<'_>) -> R) -> R {
        self.ci += 1;
        let ci = self.ci;
        let mut b = self.store.as_ref().unwrap().begin();
        let r = f(&mut b);
        b.commit(ci, 1).unwrap();
        r
    }
    fn put(&mut self, k: &str, v: &str) -> PutResponse {
        self.apply(|b| b.put(&put_req(k, v))).unwrap().0
    }
    fn put_r(&mut self, req: PutRequest) -> Result<(PutResponse, Vec<Event>), MvccError> {
        self.apply(|b| b.put(&req))
    }
    fn del(&mut self, k: &str, end: &str) -> (DeleteRangeResponse, Vec<Event>) {
        self.apply(|b| b.delete_range(&del_req(k, end, false))).unwrap()
    }
    fn txn(&mut self, t: TxnRequest) -> Result<(TxnResponse, Vec<Event>), MvccError> {
        self.apply(|b| b.txn(&t))
    }
    fn compact(&mut self, rev: i64) -> Result<CompactionResponse, MvccError> {
        self.apply(|b| b.compact(&CompactionRequest { revision: rev, physical: false }))
    }
    fn get(&self, k: &str) -> Option<KeyValue> {
        let r = self.s().range(&get_req(k)).unwrap();
        assert!(r.kvs.len() <= 1);
        r.kvs.into_iter().next()
    }
    fn range(&self, r: RangeRequest) -> Result<RangeResponse, MvccError> {
        self.s().range(&r)
    }
    fn keys(&self, r: RangeRequest) -> Vec<String> {
        self.range(r).unwrap().kvs.iter().map(|kv| s(&kv.key)).collect()
    }
    fn kv_cf(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.db()
            .raw()
            .iterator_cf(self.db().cf(CF_KV), rocksdb::IteratorMode::Start)
            .map(|i| {
                let (k, v) = i.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect()
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}
fn b(x: &str) -> Bytes {
    Bytes::copy_from_slice(x.as_bytes())
}
fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest { key: b(k), value: b(v), ..Default::default() }
}
fn get_req(k: &str) -> RangeRequest {
    RangeRequest { key: b(k), ..Default::default() }
}
fn rng(k: &str, end: &str) -> RangeRequest {
    RangeRequest { key: b(k), range_end: b(end), ..Default::default() }
}
fn del_req(k: &str, end: &str, prev: bool) -> DeleteRangeRequest {
    DeleteRangeRequest { key: b(k), range_end: b(end), prev_kv: prev }
}
fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestPut(put_req(k, v))) }
}
fn op_put_r(p: PutRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestPut(p)) }
}
fn op_get(r: RangeRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestRange(r)) }
}
fn op_del(k: &str, end: &str) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestDeleteRange(del_req(k, end, true))) }
}
fn op_txn(t: TxnRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestTxn(t)) }
}
fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest { compare, success, failure }
}
fn cmp(k: &str, target: CT, result: CR, u: TU) -> Compare {
    Compare { key: b(k), target: target as i32, result: result as i32, target_union: Some(u), range_end: Bytes::new() }
}
fn resp_range(r: &TxnResponse, i: usize) -> &RangeResponse {
    match &r.responses[i].response {
        Some(response_op::Response::ResponseRange(x)) => x,
        other => panic!("not a range response: {other:?}"),
    }
}
fn resp_put(r: &TxnResponse, i: usize) -> &PutResponse {
    match &r.responses[i].response {
        Some(response_op::Response::ResponsePut(x)) => x,
        other => panic!("not a put response: {other:?}"),
    }
}
fn resp_del(r: &TxnResponse, i: usize) -> &DeleteRangeResponse {
    match &r.responses[i].response {
        Some(response_op::Response::ResponseDeleteRange(x)) => x,
        other => panic!("not a delete response: {other:?}"),
    }
}
fn resp_txn(r: &TxnResponse, i: usize) -> &TxnResponse {
    match &r.responses[i].response {
        Some(response_op::Response::ResponseTxn(x)) => x,
        other => panic!("not a txn response: {other:?}"),
    }
}
fn hdr(r: &Option<crate::proto::etcdserverpb::ResponseHeader>) -> i64 {
    r.as_ref().expect("header").revision
}

// ------------------------------------------------------------------ basics

#[test]
fn fresh_store_is_at_revision_one() {
    let t = T::new();
    assert_eq!(t.s().current_revision(), 1);
    assert_eq!(t.s().compact_revision(), -1);
    assert_eq!(t.s().consistent_index(), 0);
    let r = t.range(get_req("a")).unwrap();
    assert_eq!(hdr(&r.header), 1);
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 0);
}

#[test]
fn put_maintains_revisions_versions_and_generations() {
    let mut t = T::new();
    let r = t.put("a", "1");
    assert_eq!(hdr(&r.header), 2);
    assert_eq!(r.prev_kv, None);
    let kv = t.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, s(&kv.value)), (2, 2, 1, "1".into()));
    t.put("a", "2");
    let kv = t.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    t.put("b", "x");
    let (d, _) = t.del("a", "");
    assert_eq!((d.deleted, hdr(&d.header)), (1, 5));
    assert_eq!(t.get("a"), None);
    t.put("a", "3");
    let kv = t.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (6, 6, 1), "a delete starts a new generation");
    // History is readable at every revision.
    let at = |rev: i64| t.range(RangeRequest { revision: rev, ..get_req("a") }).unwrap().kvs;
    assert!(at(1).is_empty());
    assert_eq!(s(&at(2)[0].value), "1");
    assert_eq!(s(&at(4)[0].value), "2");
    assert!(at(5).is_empty());
    assert_eq!(at(6)[0].version, 1);
}

#[test]
fn put_prev_kv_lease_and_events() {
    let mut t = T::new();
    let (r, ev) = t.put_r(PutRequest { lease: 7, prev_kv: true, ..put_req("k", "v1") }).unwrap();
    assert_eq!(r.prev_kv, None);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].r#type, EventType::Put as i32);
    assert_eq!(ev[0].prev_kv, None);
    let kv1 = ev[0].kv.clone().unwrap();
    assert_eq!(kv1.lease, 7);
    assert_eq!(t.get("k").unwrap(), kv1);
    let (r, ev) = t.put_r(PutRequest { prev_kv: true, ..put_req("k", "v2") }).unwrap();
    assert_eq!(r.prev_kv.as_ref(), Some(&kv1));
    assert_eq!(ev[0].prev_kv.as_ref(), Some(&kv1));
    assert_eq!(ev[0].kv.as_ref().unwrap().lease, 0, "a put without ignore_lease replaces the lease");
    // Without prev_kv the response has none, the event still does.
    let (r, ev) = t.put_r(put_req("k", "v3")).unwrap();
    assert_eq!(r.prev_kv, None);
    assert_eq!(s(&ev[0].prev_kv.as_ref().unwrap().value), "v2");
}

#[test]
fn ignore_value_and_ignore_lease() {
    let mut t = T::new();
    // On a missing key: etcdserver: key not found, and no revision.
    let e = t.put_r(PutRequest { ignore_value: true, ..put_req("k", "") }).unwrap_err();
    assert_eq!(e, MvccError::KeyNotFound);
    assert_eq!(e.to_string(), "etcdserver: key not found");
    let e = t.put_r(PutRequest { ignore_lease: true, ..put_req("k", "v") }).unwrap_err();
    assert_eq!(e, MvccError::KeyNotFound);
    assert_eq!(t.s().current_revision(), 1);
    assert_eq!(t.s().consistent_index(), 2, "the failed entries were still consumed");
    t.put_r(PutRequest { lease: 9, ..put_req("k", "v") }).unwrap();
    let (r, _) = t.put_r(PutRequest { ignore_value: true, lease: 10, prev_kv: true, ..put_req("k", "") }).unwrap();
    assert_eq!(s(&r.prev_kv.unwrap().value), "v");
    let kv = t.get("k").unwrap();
    assert_eq!((s(&kv.value), kv.lease, kv.version), ("v".into(), 10, 2));
    t.put_r(PutRequest { ignore_lease: true, ..put_req("k", "w") }).unwrap();
    let kv = t.get("k").unwrap();
    assert_eq!((s(&kv.value), kv.lease, kv.version), ("w".into(), 10, 3));
    t.put_r(PutRequest { ignore_lease: true, ignore_value: true, ..put_req("k", "") }).unwrap();
    let kv = t.get("k").unwrap();
    assert_eq!((s(&kv.value), kv.lease, kv.version, kv.mod_revision), ("w".into(), 10, 4, 5));
    // Validation applies at apply time too.
    assert_eq!(t.put_r(PutRequest { ignore_value: true, ..put_req("k", "x") }).unwrap_err(), MvccError::ValueProvided);
    assert_eq!(
        t.put_r(PutRequest { ignore_lease: true, lease: 3, ..put_req("k", "") }).unwrap_err(),
        MvccError::LeaseProvided
    );
    assert_eq!(t.put_r(put_req("", "x")).unwrap_err(), MvccError::EmptyKey);
}

#[test]
fn a_failed_request_leaves_the_batch_usable() {
    let mut t = T::new();
    t.apply(|b| {
        b.put(&put_req("a", "1")).unwrap();
        assert_eq!(b.put(&PutRequest { ignore_value: true, ..put_req("zz", "") }).unwrap_err(), MvccError::KeyNotFound);
        let (r, _) = b.put(&put_req("b", "2")).unwrap();
        assert_eq!(hdr(&r.header), 3, "the failure took no revision");
    });
    assert_eq!(t.s().current_revision(), 3);
}

// ------------------------------------------------------------------ range

fn abcd(t: &mut T) {
    for (k, v) in [("a", "4"), ("b", "3"), ("c", "2"), ("d", "1"), ("e/1", "x"), ("e/2", "y")] {
        t.put(k, v);
    }
}

#[test]
fn range_forms() {
    let mut t = T::new();
    abcd(&mut t);
    assert_eq!(t.keys(get_req("b")), ["b"]);
    assert_eq!(t.keys(get_req("bb")), Vec::<String>::new());
    assert_eq!(t.keys(rng("b", "d")), ["b", "c"]);
    assert_eq!(t.keys(rng("e/", "e0")), ["e/1", "e/2"], "prefix scan");
    assert_eq!(t.keys(rng("c", "\0")), ["c", "d", "e/1", "e/2"], "\\0 means every key >= key");
    assert_eq!(t.keys(rng("\0", "\0")), ["a", "b", "c", "d", "e/1", "e/2"], "all keys");
    assert!(t.keys(rng("d", "b")).is_empty());
    let r = t.range(RangeRequest { limit: 2, ..rng("a", "\0") }).unwrap();
    assert_eq!(r.kvs.len(), 2);
    assert!(r.more);
    assert_eq!(r.count, 6, "count ignores limit");
    let r = t.range(RangeRequest { limit: 6, ..rng("a", "\0") }).unwrap();
    assert!(!r.more);
    let r = t.range(RangeRequest { limit: -1, ..rng("a", "\0") }).unwrap();
    assert_eq!((r.kvs.len(), r.more), (6, false), "a negative limit is no limit");
}

#[test]
fn range_revisions_and_errors() {
    let mut t = T::new();
    abcd(&mut t); // revisions 2..=7
    t.put("a", "new"); // 8
    let r = t.range(RangeRequest { revision: 3, ..rng("a", "\0") }).unwrap();
    assert_eq!(r.kvs.iter().map(|kv| s(&kv.key)).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(s(&r.kvs[0].value), "4");
    assert_eq!(hdr(&r.header), 8, "header.revision is the current revision, even for historical reads");
    assert_eq!(t.range(RangeRequest { revision: 9, ..get_req("a") }).unwrap_err(), MvccError::FutureRev);
    assert_eq!(t.range(RangeRequest { revision: -3, ..get_req("a") }).unwrap().kvs[0].mod_revision, 8);
    t.compact(5).unwrap();
    assert_eq!(t.range(RangeRequest { revision: 4, ..get_req("a") }).unwrap_err(), MvccError::Compacted);
    let r = t.range(RangeRequest { revision: 5, ..rng("a", "\0") }).unwrap();
    assert_eq!(r.count, 4, "the compaction revision itself stays readable");
    assert_eq!(
        t.range(RangeRequest { revision: 4, ..get_req("a") }).unwrap_err().to_string(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(t.range(RangeRequest { ..get_req("") }).unwrap_err(), MvccError::EmptyKey);
    assert_eq!(t.range(RangeRequest { sort_order: 9, ..get_req("a") }).unwrap_err(), MvccError::InvalidSortOption);
}

#[test]
fn range_sorting_follows_etcd_defaults() {
    let mut t = T::new();
    abcd(&mut t);
    t.put("c", "2b"); // c: version 2, mod 8
    let all = || rng("a", "f");
    let sorted = |t: &T, order: SortOrder, target: SortTarget| {
        t.keys(RangeRequest { sort_order: order as i32, sort_target: target as i32, ..all() })
    };
    // KEY + NONE: ascending key (no sort).
    assert_eq!(sorted(&t, SortOrder::None, SortTarget::Key), ["a", "b", "c", "d", "e/1", "e/2"]);
    assert_eq!(sorted(&t, SortOrder::Ascend, SortTarget::Key), ["a", "b", "c", "d", "e/1", "e/2"]);
    assert_eq!(sorted(&t, SortOrder::Descend, SortTarget::Key), ["e/2", "e/1", "d", "c", "b", "a"]);
    // Another target with NONE means ASCEND.
    assert_eq!(sorted(&t, SortOrder::None, SortTarget::Value), ["d", "c", "b", "a", "e/1", "e/2"]);
    assert_eq!(sorted(&t, SortOrder::Descend, SortTarget::Value), ["e/2", "e/1", "a", "b", "c", "d"]);
    assert_eq!(sorted(&t, SortOrder::Ascend, SortTarget::Mod), ["a", "b", "d", "e/1", "e/2", "c"]);
    assert_eq!(sorted(&t, SortOrder::Descend, SortTarget::Create), ["e/2", "e/1", "d", "c", "b", "a"]);
    // Ties keep ascending key order, in both directions.
    assert_eq!(sorted(&t, SortOrder::None, SortTarget::Version), ["a", "b", "d", "e/1", "e/2", "c"]);
    assert_eq!(sorted(&t, SortOrder::Descend, SortTarget::Version), ["c", "a", "b", "d", "e/1", "e/2"]);
    // Sorting happens before the limit.
    let r = t
        .range(RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Key as i32,
            limit: 2,
            ..all()
        })
        .unwrap();
    assert_eq!(r.kvs.iter().map(|kv| s(&kv.key)).collect::<Vec<_>>(), ["e/2", "e/1"]);
    assert!(r.more);
    assert_eq!(r.count, 6);
}

#[test]
fn range_keys_only_count_only_and_filters() {
    let mut t = T::new();
    abcd(&mut t); // a=2 b=3 c=4 d=5 e/1=6 e/2=7
    t.put("a", "again"); // a: create 2, mod 8
    let r = t.range(RangeRequest { keys_only: true, ..rng("a", "c") }).unwrap();
    assert_eq!(r.kvs.len(), 2);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty() && kv.version > 0));
    let r = t.range(RangeRequest { count_only: true, limit: 1, ..rng("a", "\0") }).unwrap();
    assert!(r.kvs.is_empty());
    assert_eq!((r.count, r.more), (6, false), "count_only: no kvs, no more");
    let f = |min_mod, max_mod, min_c, max_c| RangeRequest {
        min_mod_revision: min_mod,
        max_mod_revision: max_mod,
        min_create_revision: min_c,
        max_create_revision: max_c,
        ..rng("a", "\0")
    };
    assert_eq!(t.keys(f(5, 0, 0, 0)), ["a", "d", "e/1", "e/2"]);
    assert_eq!(t.keys(f(0, 4, 0, 0)), ["b", "c"]);
    assert_eq!(t.keys(f(0, 0, 4, 0)), ["c", "d", "e/1", "e/2"]);
    assert_eq!(t.keys(f(0, 0, 0, 3)), ["a", "b"]);
    assert_eq!(t.keys(f(3, 7, 3, 6)), ["b", "c", "d", "e/1"]);
    // count is taken before the filters (etcd 3.4 and 3.5), more after them.
    let r = t.range(RangeRequest { limit: 1, ..f(0, 0, 0, 3) }).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (1, 6, true));
    let r = t.range(RangeRequest { limit: 2, ..f(0, 0, 0, 3) }).unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (2, 6, false));
}

#[test]
fn range_chunks_equal_range() {
    let mut t = T::new();
    t.apply(|b| {
        for i in 0..300 {
            b.put(&put_req(&format!("k{i:04}"), &"v".repeat(i % 17))).unwrap();
        }
    });
    t.del("k0100", "k0110");
    let reqs = vec![
        rng("k", "l"),
        RangeRequest { limit: 50, ..rng("k", "l") },
        RangeRequest { limit: 500, ..rng("k", "l") },
        RangeRequest { keys_only: true, ..rng("k0", "\0") },
        RangeRequest { revision: 2, ..rng("k", "l") },
        RangeRequest { sort_order: 2, sort_target: 4, limit: 30, ..rng("k", "l") },
        RangeRequest { min_mod_revision: 3, ..rng("k", "l") },
        RangeRequest { count_only: true, ..rng("k", "l") },
        get_req("k0005"),
        get_req("zzz"),
    ];
    for req in reqs {
        for chunk in [1usize, 40, 1000, 1 << 20] {
            let whole = t.range(req.clone()).unwrap();
            let chunks: Vec<RangeResponse> = t.s().range_chunks(&req, chunk).unwrap().map(|c| c.unwrap()).collect();
            assert!(!chunks.is_empty());
            let mut kvs = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                assert_eq!(c.header, whole.header);
                assert_eq!(c.count, whole.count);
                let last = i + 1 == chunks.len();
                assert_eq!(c.more, last && whole.more, "more on the last chunk only");
                let bytes: usize = c.kvs.iter().map(|kv| kv.key.len() + kv.value.len()).sum();
                if c.kvs.len() > 1 {
                    let without_last: usize = bytes - c.kvs.last().map(|kv| kv.key.len() + kv.value.len()).unwrap();
                    assert!(without_last < chunk, "chunk over budget: {bytes} for {chunk}");
                }
                kvs.extend(c.kvs.clone());
            }
            assert_eq!(kvs, whole.kvs, "request {req:?} chunk {chunk}");
        }
    }
}

#[test]
fn range_chunks_fail_if_compaction_overtakes_them() {
    let mut t = T::new();
    t.apply(|b| {
        for i in 0..600 {
            b.put(&put_req(&format!("k{i:04}"), "v")).unwrap();
        }
    });
    let at = t.s().current_revision();
    t.put("k0000", "w");
    let mut chunks = t.s().range_chunks(&RangeRequest { revision: at, ..rng("k", "l") }, 10).unwrap();
    assert_eq!(chunks.next().unwrap().unwrap().count, 600);
    t.compact(at + 1).unwrap();
    let rest: Vec<_> = chunks.collect();
    assert_eq!(rest.last().unwrap().as_ref().unwrap_err(), &MvccError::Compacted);
}

// ------------------------------------------------------------------ delete

#[test]
fn delete_range_forms_prev_kvs_and_no_op_deletes() {
    let mut t = T::new();
    abcd(&mut t); // rev 7
    let (r, ev) = t.apply(|b| b.delete_range(&del_req("zz", "", true))).unwrap();
    assert_eq!((r.deleted, hdr(&r.header)), (0, 7), "deleting nothing creates no revision");
    assert!(ev.is_empty());
    assert_eq!(t.s().current_revision(), 7);
    let (r, ev) = t.apply(|b| b.delete_range(&del_req("b", "d", true))).unwrap();
    assert_eq!((r.deleted, hdr(&r.header)), (2, 8));
    assert_eq!(r.prev_kvs.iter().map(|kv| s(&kv.value)).collect::<Vec<_>>(), ["3", "2"]);
    assert_eq!(ev.len(), 2);
    for (e, k) in ev.iter().zip(["b", "c"]) {
        assert_eq!(e.r#type, EventType::Delete as i32);
        let kv = e.kv.as_ref().unwrap();
        assert_eq!(
            (s(&kv.key), kv.mod_revision, kv.create_revision, kv.version, kv.value.len()),
            (k.to_string(), 8, 0, 0, 0)
        );
        assert_eq!(s(&e.prev_kv.as_ref().unwrap().key), k);
    }
    // Tombstones on disk: the key with mod_revision, under (8, 0) and (8, 1).
    let cf = t.kv_cf();
    let tomb: Vec<_> = cf.iter().filter(|(k, _)| k.len() == 17).collect();
    assert_eq!(tomb.len(), 2);
    assert_eq!(decode_rev_key(&tomb[0].0).unwrap(), (Revision::new(8, 0), true));
    assert_eq!(decode_rev_key(&tomb[1].0).unwrap(), (Revision::new(8, 1), true));
    let (r, _) = t.apply(|b| b.delete_range(&del_req("d", "\0", false))).unwrap();
    assert_eq!((r.deleted, r.prev_kvs.len()), (3, 0));
    assert_eq!(t.keys(rng("\0", "\0")), ["a"]);
    let (r, _) = t.del("\0", "\0");
    assert_eq!(r.deleted, 1);
    assert_eq!(t.range(rng("\0", "\0")).unwrap().count, 0);
    assert_eq!(t.apply(|b| b.delete_range(&del_req("", "", false))).unwrap_err(), MvccError::EmptyKey);
}

// ------------------------------------------------------------------ txn

#[test]
fn txn_compares_every_target_and_result() {
    let mut t = T::new();
    t.put_r(PutRequest { lease: 5, ..put_req("k", "m") }).unwrap(); // rev 2
    t.put_r(PutRequest { ignore_lease: true, ..put_req("k", "n") }).unwrap(); // rev 3, version 2
    let check = |t: &mut T, c: Compare| -> bool { t.txn(txn(vec![c], vec![], vec![])).unwrap().0.succeeded };
    let cases: Vec<(CT, TU, [bool; 4])> = vec![
        // [EQUAL, GREATER, LESS, NOT_EQUAL] against: value "n", version 2, create 2, mod 3, lease 5
        (CT::Value, TU::Value(b("n")), [true, false, false, false]),
        (CT::Value, TU::Value(b("m")), [false, true, false, true]),
        (CT::Value, TU::Value(b("o")), [false, false, true, true]),
        (CT::Version, TU::Version(2), [true, false, false, false]),
        (CT::Version, TU::Version(1), [false, true, false, true]),
        (CT::Create, TU::CreateRevision(3), [false, false, true, true]),
        (CT::Mod, TU::ModRevision(3), [true, false, false, false]),
        (CT::Lease, TU::Lease(5), [true, false, false, false]),
        (CT::Lease, TU::Lease(4), [false, true, false, true]),
    ];
    for (target, u, want) in cases {
        for (i, result) in [CR::Equal, CR::Greater, CR::Less, CR::NotEqual].into_iter().enumerate() {
            assert_eq!(check(&mut t, cmp("k", target, result, u.clone())), want[i], "{target:?} {result:?} {u:?}");
        }
    }
    // A missing key compares as zero, except VALUE which is always false.
    assert!(check(&mut t, cmp("nope", CT::Version, CR::Equal, TU::Version(0))));
    assert!(check(&mut t, cmp("nope", CT::Create, CR::Equal, TU::CreateRevision(0))));
    assert!(check(&mut t, cmp("nope", CT::Mod, CR::Less, TU::ModRevision(1))));
    assert!(check(&mut t, cmp("nope", CT::Lease, CR::Equal, TU::Lease(0))));
    assert!(!check(&mut t, cmp("nope", CT::Value, CR::Equal, TU::Value(b("")))));
    assert!(!check(&mut t, cmp("nope", CT::Value, CR::NotEqual, TU::Value(b("x")))));
    // A union of another kind compares against zero.
    assert!(check(&mut t, cmp("k", CT::Version, CR::Greater, TU::ModRevision(100))));
    assert_eq!(t.s().current_revision(), 3, "read-only txns create no revision");
}

#[test]
fn txn_compare_over_a_range_must_hold_for_every_key() {
    let mut t = T::new();
    abcd(&mut t);
    let c = |end: &str, r: CR, v: i64| Compare { range_end: b(end), ..cmp("a", CT::Version, r, TU::Version(v)) };
    let ok = |t: &mut T, c: Compare| t.txn(txn(vec![c], vec![], vec![])).unwrap().0.succeeded;
    assert!(ok(&mut t, c("e", CR::Equal, 1)));
    t.put("c", "again");
    assert!(!ok(&mut t, c("e", CR::Equal, 1)));
    assert!(ok(&mut t, c("c", CR::Equal, 1)));
    assert!(ok(&mut t, c("\0", CR::Greater, 0)));
    // An empty range behaves like a missing key.
    assert!(ok(&mut t, Compare { range_end: b("aa"), key: b("a0"), ..c("", CR::Equal, 0) }));
    let v = Compare { range_end: b("zz"), ..cmp("x", CT::Value, CR::NotEqual, TU::Value(b("q"))) };
    assert!(!ok(&mut t, v));
}

#[test]
fn txn_branches_nested_txns_and_in_txn_visibility() {
    let mut t = T::new();
    t.put("x", "1"); // rev 2
    let inner_t = txn(
        vec![cmp("x", CT::Value, CR::Equal, TU::Value(b("1")))], // evaluated before the outer writes
        vec![op_put("inner", "yes"), op_get(get_req("x"))],
        vec![op_put("inner", "no")],
    );
    let t1 = txn(
        vec![cmp("x", CT::Version, CR::Equal, TU::Version(1))],
        vec![
            op_get(get_req("x")),
            op_put("x", "2"),
            op_get(get_req("x")),
            op_txn(inner_t),
            op_get(RangeRequest { revision: 2, ..get_req("x") }),
            op_del("zz", ""),
        ],
        vec![op_put("failed", "1")],
    );
    let (r, ev) = t.txn(t1.clone()).unwrap();
    assert!(r.succeeded);
    assert_eq!(hdr(&r.header), 3);
    assert_eq!(r.responses.len(), 6);
    assert_eq!(s(&resp_range(&r, 0).kvs[0].value), "1");
    assert_eq!(hdr(&resp_range(&r, 0).header), 2, "a range before any write reads at the old revision");
    assert_eq!(hdr(&resp_put(&r, 1).header), 3);
    let seen = &resp_range(&r, 2);
    assert_eq!(s(&seen.kvs[0].value), "2", "later ops see earlier writes");
    assert_eq!(hdr(&seen.header), 3);
    let n = resp_txn(&r, 3);
    assert!(n.succeeded, "nested compares see the state before the txn");
    assert_eq!(n.header.as_ref().unwrap().revision, 0, "etcd leaves nested txn headers empty");
    assert_eq!(s(&resp_range(n, 1).kvs[0].value), "2");
    assert_eq!(s(&resp_range(&r, 4).kvs[0].value), "1", "historical read inside a txn");
    assert_eq!(hdr(&resp_del(&r, 5).header), 3, "a no-op delete after writes reports the txn's revision");
    assert_eq!(ev.len(), 2);
    let kvs: Vec<_> = ev.iter().map(|e| e.kv.clone().unwrap()).collect();
    assert_eq!((kvs[0].mod_revision, kvs[1].mod_revision), (3, 3), "one main revision per txn");
    let cf = t.kv_cf();
    let subs: Vec<_> = cf.iter().map(|(k, _)| decode_rev_key(k).unwrap().0).filter(|r| r.main == 3).collect();
    assert_eq!(subs, [Revision::new(3, 0), Revision::new(3, 1)]);
    assert_eq!(s(&t.get("inner").unwrap().value), "yes");
    // Same txn again: x has version 2 now, failure branch.
    let (r, _) = t.txn(t1).unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.responses.len(), 1);
    assert_eq!(hdr(&r.header), 4);
    assert!(t.get("failed").is_some());
}

#[test]
fn read_only_txn_creates_no_revision() {
    let mut t = T::new();
    t.put("a", "1");
    let (r, ev) = t.txn(txn(vec![], vec![op_get(get_req("a")), op_del("nothing", "")], vec![])).unwrap();
    assert!(r.succeeded);
    assert_eq!(hdr(&r.header), 2);
    assert!(ev.is_empty());
    assert_eq!(t.s().current_revision(), 2);
}

#[test]
fn txn_checks_run_before_anything_is_applied() {
    let mut t = T::new();
    t.put("a", "1"); // 2
                     // ignore_value on a missing key, after a write in the same txn: nothing applies.
    let bad = txn(
        vec![],
        vec![op_put("b", "1"), op_put_r(PutRequest { ignore_value: true, ..put_req("missing", "") })],
        vec![],
    );
    assert_eq!(t.txn(bad).unwrap_err(), MvccError::KeyNotFound);
    assert_eq!(t.get("b"), None);
    assert_eq!(t.s().current_revision(), 2);
    // A future revision in a range op.
    let bad = txn(vec![], vec![op_put("b", "1"), op_get(RangeRequest { revision: 3, ..get_req("a") })], vec![]);
    assert_eq!(t.txn(bad).unwrap_err(), MvccError::FutureRev);
    // Put errors are reported before range errors.
    let bad = txn(
        vec![],
        vec![
            op_get(RangeRequest { revision: 30, ..get_req("a") }),
            op_put_r(PutRequest { ignore_lease: true, ..put_req("missing", "v") }),
        ],
        vec![],
    );
    assert_eq!(t.txn(bad).unwrap_err(), MvccError::KeyNotFound);
    // Only the taken branch is checked.
    let fine = txn(
        vec![cmp("a", CT::Value, CR::Equal, TU::Value(b("1")))],
        vec![op_put("ok", "1")],
        vec![op_put_r(PutRequest { ignore_value: true, ..put_req("missing", "") })],
    );
    assert!(t.txn(fine).unwrap().0.succeeded);
    t.compact(3).unwrap();
    let bad = txn(vec![], vec![op_get(RangeRequest { revision: 2, ..get_req("a") })], vec![]);
    assert_eq!(t.txn(bad).unwrap_err(), MvccError::Compacted);
    // etcd's quirk, kept: in a txn a negative revision is below the compaction revision.
    let neg = txn(vec![], vec![op_get(RangeRequest { revision: -1, ..get_req("a") })], vec![]);
    assert_eq!(t.txn(neg).unwrap_err(), MvccError::Compacted);
    // Shape errors.
    let many = txn(vec![], (0..129).map(|i| op_get(get_req(&format!("{i}")))).collect(), vec![]);
    assert_eq!(t.txn(many).unwrap_err(), MvccError::TooManyOps);
    assert_eq!(
        t.txn(txn(vec![], vec![op_put("a", "1"), op_put("a", "2")], vec![])).unwrap_err(),
        MvccError::DuplicateKey
    );
    assert_eq!(t.s().current_revision(), 3);
}

#[test]
fn txn_failure_during_execution_rolls_back() {
    // etcd's overlap check does not see a delete with range_end "\0", so a put
    // with ignore_value after "delete everything" passes the pre-checks and
    // fails during execution (etcd panics there). Here it fails cleanly.
    let mut t = T::new();
    t.put("k", "v");
    let tricky =
        txn(vec![], vec![op_del("\0", "\0"), op_put_r(PutRequest { ignore_value: true, ..put_req("k", "") })], vec![]);
    assert_eq!(t.txn(tricky).unwrap_err(), MvccError::KeyNotFound);
    assert_eq!(s(&t.get("k").unwrap().value), "v");
    assert_eq!(t.s().current_revision(), 2);
}

#[test]
fn txn_delete_then_put_and_put_then_delete_in_one_revision() {
    let mut t = T::new();
    t.put("k", "old"); // 2
                       // Delete-all then put (allowed: "\0" ranges overlap nothing in etcd's check).
    let (r, ev) = t
        .txn(txn(
            vec![],
            vec![op_del("\0", "\0"), op_put_r(PutRequest { prev_kv: true, ..put_req("k", "new") })],
            vec![],
        ))
        .unwrap();
    assert_eq!(hdr(&r.header), 3);
    assert_eq!(resp_put(&r, 1).prev_kv, None, "the put sees the delete");
    let kv = t.get("k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (3, 3, 1));
    assert_eq!(ev.len(), 2);
    assert_eq!(s(&ev[1].prev_kv.as_ref().unwrap().value), "old", "watch prev_kv is the state before the txn");
    // Nested put then a later nested delete of the same key (allowed by etcd).
    let (r, ev) = t
        .txn(txn(
            vec![],
            vec![
                op_txn(txn(vec![], vec![op_put("k", "x")], vec![])),
                op_txn(txn(vec![], vec![op_del("k", "")], vec![])),
            ],
            vec![],
        ))
        .unwrap();
    assert_eq!(hdr(&r.header), 4);
    let d = resp_del(resp_txn(&r, 1), 0);
    assert_eq!((d.deleted, s(&d.prev_kvs[0].value)), (1, "x".into()));
    assert_eq!(t.get("k"), None);
    assert_eq!(s(&ev[1].prev_kv.as_ref().unwrap().value), "new");
    let at3 = t.range(RangeRequest { revision: 3, ..get_req("k") }).unwrap();
    assert_eq!(s(&at3.kvs[0].value), "new");
    t.reopen();
    assert_eq!(t.get("k"), None);
    assert_eq!(t.s().current_revision(), 4);
    t.put("k", "again");
    assert_eq!(t.get("k").unwrap().version, 1);
}

#[test]
fn lease_check_is_applied_before_writes() {
    let mut t = T::new();
    t.ci += 1;
    let mut b = t.s().begin();
    b.set_lease_check(|id| id == 1);
    assert!(b.put(&PutRequest { lease: 1, ..put_req("a", "1") }).is_ok());
    assert_eq!(b.put(&PutRequest { lease: 2, ..put_req("a", "1") }).unwrap_err(), MvccError::LeaseNotFound);
    let bad = txn(vec![], vec![op_put("x", "1"), op_put_r(PutRequest { lease: 3, ..put_req("y", "1") })], vec![]);
    assert_eq!(b.txn(&bad).unwrap_err(), MvccError::LeaseNotFound);
    b.commit(1, 1).unwrap();
    assert_eq!(t.get("x"), None);
    assert_eq!(t.get("a").unwrap().lease, 1);
}

// ------------------------------------------------------------------ batches

#[test]
fn batch_reads_see_own_writes_and_readers_see_only_commits() {
    let mut t = T::new();
    t.put("a", "1");
    let mut b = t.s().begin();
    b.put(&put_req("a", "2")).unwrap();
    b.put(&put_req("b", "1")).unwrap();
    let r = b.range(&rng("a", "\0")).unwrap();
    assert_eq!(r.kvs.iter().map(|kv| s(&kv.value)).collect::<Vec<_>>(), ["2", "1"]);
    assert_eq!(hdr(&r.header), 4);
    assert_eq!(s(&b.range(&RangeRequest { revision: 2, ..get_req("a") }).unwrap().kvs[0].value), "1");
    // Not visible outside yet.
    assert_eq!(t.s().current_revision(), 2);
    assert_eq!(s(&t.get("a").unwrap().value), "1");
    assert_eq!(t.get("b"), None);
    b.commit(7, 2).unwrap();
    assert_eq!(t.s().current_revision(), 4);
    assert_eq!(s(&t.get("a").unwrap().value), "2");
    assert_eq!((t.s().consistent_index(), t.s().consistent_term()), (7, 2));
}

#[test]
fn dropping_a_batch_changes_nothing() {
    let mut t = T::new();
    t.put("a", "1");
    let before = t.kv_cf();
    {
        let mut b = t.s().begin();
        b.put(&put_req("a", "2")).unwrap();
        b.delete_range(&del_req("a", "", false)).unwrap();
        b.compact(&CompactionRequest { revision: 2, physical: false }).unwrap();
        b.txn(&txn(vec![], vec![op_put("t", "1")], vec![])).unwrap();
    }
    assert_eq!(t.kv_cf(), before);
    assert_eq!((t.s().current_revision(), t.s().compact_revision(), t.s().consistent_index()), (2, -1, 1));
    assert_eq!(s(&t.get("a").unwrap().value), "1");
    assert!(t.db().get(CF_META, layout::META_SCHEDULED_COMPACT).unwrap().is_none());
    t.reopen();
    assert_eq!(t.kv_cf(), before);
    assert_eq!(t.s().current_revision(), 2);
}

enum Entry {
    Put(PutRequest),
    Del(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(i64),
}

/// The server's apply loop: skip entries at or below the consistent index,
/// apply the others (an error is an answer, the entry is still consumed),
/// commit with the last index.
fn apply_log(store: &KvStore, log: &[(u64, Entry)]) -> usize {
    let mut b = store.begin();
    let mut applied = 0;
    let mut last = 0;
    for (index, e) in log {
        last = *index;
        if b.already_applied(*index) {
            continue;
        }
        let _ = match e {
            Entry::Put(p) => b.put(p).map(|_| ()),
            Entry::Del(d) => b.delete_range(d).map(|_| ()),
            Entry::Txn(t) => b.txn(t).map(|_| ()),
            Entry::Compact(r) => b.compact(&CompactionRequest { revision: *r, physical: false }).map(|_| ()),
        };
        applied += 1;
    }
    b.commit(last, 3).unwrap();
    applied
}

#[test]
fn replay_after_a_crash_applies_nothing_twice() {
    let mut t = T::new();
    let mut log: Vec<(u64, Entry)> = Vec::new();
    for i in 1..=30u64 {
        let e = match i % 6 {
            0 => Entry::Del(del_req("k1", "k3", false)),
            1 | 2 => Entry::Put(put_req(&format!("k{}", i % 4), &format!("{i}"))),
            3 => Entry::Txn(txn(vec![], vec![op_put("t1", &format!("{i}")), op_put("t2", "x")], vec![])),
            4 => Entry::Put(PutRequest { ignore_value: true, ..put_req("k2", "") }),
            _ => Entry::Compact(i as i64 / 2),
        };
        log.push((i, e));
    }
    // Applied in three batches.
    assert_eq!(apply_log(t.s(), &log[..10]), 10);
    assert_eq!(apply_log(t.s(), &log[10..20]), 10);
    assert_eq!(apply_log(t.s(), &log[20..]), 10);
    let state =
        |t: &T| (t.s().current_revision(), t.s().compact_revision(), t.s().consistent_index(), t.s().consistent_term());
    let before = state(&t);
    assert_eq!(before.2, 30);
    let all = |t: &T| t.range(rng("\0", "\0")).unwrap();
    let data = all(&t);
    let hash = t.s().hash_kv(0).unwrap();
    // Crash: drop without anything special, reopen, replay the whole log from an earlier index.
    t.reopen();
    assert_eq!(state(&t), before);
    assert!(t.s().already_applied(30) && !t.s().already_applied(31));
    assert_eq!(apply_log(t.s(), &log[4..]), 0, "nothing is applied twice");
    assert_eq!(state(&t), before);
    assert_eq!(all(&t), data);
    assert_eq!(t.s().hash_kv(0).unwrap(), hash);
    // A commit with a lower index never moves it backwards.
    t.s().begin().commit(4, 1).unwrap();
    assert_eq!(t.s().consistent_index(), 30);
    // New entries after the replayed ones apply.
    let more = vec![(31u64, Entry::Put(put_req("k1", "31")))];
    assert_eq!(apply_log(t.s(), &more), 1);
    assert_eq!(t.s().current_revision(), before.0 + 1);
    assert_eq!(t.s().consistent_index(), 31);
}

#[test]
fn reopen_rebuilds_the_same_state() {
    let mut t = T::new();
    abcd(&mut t);
    t.del("b", "d");
    t.put("b", "again");
    t.txn(txn(vec![], vec![op_put("t1", "1"), op_put("t2", "2"), op_del("a", "")], vec![])).unwrap();
    let rev = t.s().current_revision();
    let snapshot = |t: &T| -> Vec<RangeResponse> {
        (1..=rev).map(|r| t.range(RangeRequest { revision: r, ..rng("\0", "\0") }).unwrap()).collect()
    };
    let before = snapshot(&t);
    let hash = t.s().hash_kv(0).unwrap();
    t.reopen();
    assert_eq!(t.s().current_revision(), rev);
    assert_eq!(snapshot(&t), before);
    assert_eq!(t.s().hash_kv(0).unwrap(), hash);
}

#[test]
fn reload_picks_up_replaced_column_families() {
    let mut src = T::new();
    abcd(&mut src);
    src.compact(3).unwrap();
    src.s().wait_compacted(3, WAIT).unwrap();
    let mut dst = T::new();
    dst.put("other", "x");
    {
        let pause = dst.s().pause_compaction();
        let mut wb = rocksdb::WriteBatch::default();
        for cf in [CF_KV, CF_META] {
            wb.delete_range_cf(dst.db().cf(cf), Vec::<u8>::new(), vec![0xff; 32]);
            for item in src.db().raw().iterator_cf(src.db().cf(cf), rocksdb::IteratorMode::Start) {
                let (k, v) = item.unwrap();
                wb.put_cf(dst.db().cf(cf), k, v);
            }
        }
        dst.db().write(wb, false).unwrap();
        pause.reload().unwrap();
    }
    assert_eq!(dst.s().current_revision(), src.s().current_revision());
    assert_eq!(dst.s().compact_revision(), 3);
    assert_eq!(dst.get("other"), None);
    assert_eq!(dst.range(rng("\0", "\0")).unwrap(), src.range(rng("\0", "\0")).unwrap());
    assert_eq!(dst.s().hash_kv(0).unwrap(), src.s().hash_kv(0).unwrap());
    dst.put("after", "1");
    assert_eq!(dst.get("after").unwrap().mod_revision, src.s().current_revision() + 1);
}

// ------------------------------------------------------------------ compaction

#[test]
fn compaction_semantics_and_errors() {
    let mut t = T::new();
    t.put("a", "1"); // 2
    t.put("a", "2"); // 3
    t.put("b", "1"); // 4
    t.del("b", ""); // 5
    t.put("c", "1"); // 6
    assert_eq!(t.compact(7).unwrap_err(), MvccError::FutureRev);
    let r = t.compact(5).unwrap();
    assert_eq!(hdr(&r.header), 6);
    assert_eq!(t.s().compact_revision(), 5);
    assert_eq!(t.compact(5).unwrap_err(), MvccError::Compacted);
    assert_eq!(t.compact(4).unwrap_err(), MvccError::Compacted);
    assert_eq!(t.s().current_revision(), 6, "compaction creates no revision");
    let r5 = t.range(RangeRequest { revision: 5, ..rng("\0", "\0") }).unwrap();
    assert_eq!(r5.kvs.iter().map(|kv| (s(&kv.key), kv.mod_revision)).collect::<Vec<_>>(), [("a".into(), 3)]);
    t.s().wait_compacted(5, WAIT).unwrap();
    assert_eq!(t.s().finished_compact_revision(), 5);
    // On disk: a@3 (kept), c@6; a@2, b@4 and the tombstone b@5 are gone.
    let revs: Vec<_> = t.kv_cf().iter().map(|(k, _)| decode_rev_key(k).unwrap()).collect();
    assert_eq!(revs, [(Revision::new(3, 0), false), (Revision::new(6, 0), false)]);
    let meta = |k: &[u8]| i64::from_be_bytes(t.db().get(CF_META, k).unwrap().unwrap().try_into().unwrap());
    assert_eq!(meta(layout::META_SCHEDULED_COMPACT), 5);
    assert_eq!(meta(layout::META_FINISHED_COMPACT), 5);
    t.reopen();
    assert_eq!((t.s().compact_revision(), t.s().current_revision()), (5, 6));
    assert_eq!(t.range(RangeRequest { revision: 4, ..get_req("a") }).unwrap_err(), MvccError::Compacted);
    assert_eq!(t.range(RangeRequest { revision: 5, ..rng("\0", "\0") }).unwrap(), r5);
}

#[test]
fn compaction_of_a_trailing_tombstone_keeps_the_revision() {
    let mut t = T::new();
    t.put("a", "1"); // 2
    t.del("a", ""); // 3
    t.compact(3).unwrap();
    t.s().wait_compacted(3, WAIT).unwrap();
    assert!(t.kv_cf().is_empty());
    t.reopen();
    assert_eq!(t.s().current_revision(), 3, "the revision survives though its tombstone is gone");
    assert_eq!(t.put("b", "1").header.unwrap().revision, 4);
}

#[test]
fn compaction_at_zero_on_a_fresh_store_is_accepted_as_in_etcd() {
    let mut t = T::new();
    t.compact(0).unwrap();
    assert_eq!(t.s().compact_revision(), 0);
    assert_eq!(t.compact(0).unwrap_err(), MvccError::Compacted);
    assert_eq!(t.compact(-4).unwrap_err(), MvccError::Compacted);
    t.compact(1).unwrap();
}

fn history(t: &mut T, keys: usize, rounds: usize) {
    for r in 0..rounds {
        t.apply(|b| {
            for k in 0..keys {
                let key = format!("k{k:03}");
                if (k + r) % 7 == 0 {
                    b.delete_range(&del_req(&key, "", false)).unwrap();
                } else {
                    b.put(&put_req(&key, &format!("{r}"))).unwrap();
                }
            }
        });
    }
}

#[test]
fn physical_compaction_resumes_after_a_restart_half_way() {
    let small = Options { compaction_batch_size: 7, ..Options::default() };
    let mut full = T::with(small.clone());
    history(&mut full, 40, 6);
    let target = full.s().current_revision() - 40;
    full.compact(target).unwrap();
    full.s().wait_compacted(target, WAIT).unwrap();

    let mut half = T::with(Options { compaction_stop_after_batches: Some(3), ..small.clone() });
    history(&mut half, 40, 6);
    let before = half.kv_cf().len();
    half.compact(target).unwrap();
    assert_eq!(half.s().wait_compacted(target, Duration::from_millis(200)).unwrap_err(), MvccError::Timeout);
    let mid = half.kv_cf().len();
    assert!(mid < before && mid > full.kv_cf().len(), "stopped half way: {before} -> {mid}");
    // Reads and hashes are already those of the finished compaction.
    assert_eq!(half.s().hash_kv(0).unwrap(), full.s().hash_kv(0).unwrap());
    half.reopen_with(small);
    half.s().wait_compacted(target, WAIT).unwrap();
    assert_eq!(half.kv_cf(), full.kv_cf(), "the resumed compaction ends identical");
    assert_eq!(half.s().hash_kv(0).unwrap(), full.s().hash_kv(0).unwrap());
    assert_eq!(half.range(rng("\0", "\0")).unwrap(), full.range(rng("\0", "\0")).unwrap());
}

#[test]
fn dropping_the_store_stops_a_running_compaction_which_resumes_on_open() {
    let mut t = T::with(Options { compaction_batch_size: 1, ..Options::default() });
    history(&mut t, 60, 8);
    let target = t.s().current_revision() - 10;
    t.compact(target).unwrap();
    // Drop at once: the worker stops between two batches and is joined.
    let started = std::time::Instant::now();
    t.store = None;
    assert!(started.elapsed() < WAIT, "dropping the store took {:?}", started.elapsed());
    t.reopen();
    t.s().wait_compacted(target, WAIT).expect("the resumed compaction finishes");
    let revs: Vec<Revision> = t.kv_cf().iter().map(|(k, _)| decode_rev_key(k).unwrap().0).collect();
    let kept_below = revs.iter().filter(|r| r.main <= target).count();
    assert!(kept_below <= 60, "at most one kept revision per key at or below {target}: {kept_below}");
}

#[test]
fn hash_kv_is_the_same_before_and_after_physical_compaction() {
    let mut a =
        T::with(Options { compaction_stop_after_batches: Some(1), compaction_batch_size: 1, ..Options::default() });
    let mut b = T::new();
    for t in [&mut a, &mut b] {
        history(t, 10, 5);
    }
    let h_before = a.s().hash_kv(0).unwrap();
    assert_eq!(h_before, b.s().hash_kv(0).unwrap());
    assert_eq!(h_before.hash_revision, a.s().current_revision());
    assert_eq!(h_before.compact_revision, -1);
    let c = a.s().current_revision() - 12;
    a.compact(c).unwrap();
    b.compact(c).unwrap();
    b.s().wait_compacted(c, WAIT).unwrap();
    let ha = a.s().hash_kv(0).unwrap();
    let hb = b.s().hash_kv(0).unwrap();
    assert_eq!(ha, hb);
    assert_eq!(ha.compact_revision, c);
    assert_ne!(ha.hash, h_before.hash, "compacted history is not hashed");
    for rev in [c, c + 3, a.s().current_revision()] {
        assert_eq!(a.s().hash_kv(rev).unwrap(), b.s().hash_kv(rev).unwrap());
    }
    assert_eq!(a.s().hash_kv(c - 1).unwrap_err(), MvccError::Compacted);
    assert_eq!(a.s().hash_kv(a.s().current_revision() + 1).unwrap_err(), MvccError::FutureRev);
    // A different history hashes differently.
    b.put("k000", "different");
    a.put("k000", "other");
    assert_ne!(a.s().hash_kv(0).unwrap().hash, b.s().hash_kv(0).unwrap().hash);
    // Hashing an earlier revision ignores later writes.
    let at = a.s().current_revision() - 1;
    assert_eq!(a.s().hash_kv(at).unwrap().hash, b.s().hash_kv(at).unwrap().hash);
}

#[test]
fn wait_compacted_reports_timeout_and_stop() {
    let mut t =
        T::with(Options { compaction_stop_after_batches: Some(1), compaction_batch_size: 1, ..Options::default() });
    history(&mut t, 5, 3);
    t.compact(10).unwrap();
    let e = t.s().wait_compacted(10, Duration::from_millis(50)).unwrap_err();
    assert_eq!(e, MvccError::Timeout);
    assert_eq!(e.to_string(), "etcdserver: request timed out");
}

// ------------------------------------------------------------------ robustness

#[test]
fn corrupt_stored_bytes_are_errors_not_panics() {
    let mut t = T::new();
    t.put("a", "1");
    t.put("b", "1");
    // Garbage value under a live revision.
    let mut wb = rocksdb::WriteBatch::default();
    wb.put_cf(t.db().cf(CF_KV), encode_rev_key(Revision::new(3, 0), false), b"\xff\xff\xff");
    t.db().write(wb, false).unwrap();
    assert!(matches!(t.range(get_req("b")).unwrap_err(), MvccError::Corrupt(_)));
    assert_eq!(t.range(get_req("b")).unwrap_err().code(), crate::proto::raftkvpb::ErrorCode::Internal);
    assert!(t.s().hash_kv(0).is_ok(), "hashing reads raw bytes");
    // Reopen refuses the corrupt data directory instead of panicking.
    let db = t.db.take().unwrap();
    t.store = None;
    assert!(matches!(KvStore::open(Arc::clone(&db)).err(), Some(MvccError::Corrupt(_))));
    // A malformed kv key and a malformed meta value.
    let mut wb = rocksdb::WriteBatch::default();
    wb.put_cf(db.cf(CF_KV), encode_rev_key(Revision::new(3, 0), false), {
        use prost::Message;
        KeyValue { key: b("b"), create_revision: 3, mod_revision: 3, version: 1, ..Default::default() }.encode_to_vec()
    });
    wb.put_cf(db.cf(CF_KV), b"bad", b"x");
    db.write(wb, false).unwrap();
    assert!(matches!(KvStore::open(Arc::clone(&db)).err(), Some(MvccError::Corrupt(_))));
    let mut wb = rocksdb::WriteBatch::default();
    wb.delete_cf(db.cf(CF_KV), b"bad");
    wb.put_cf(db.cf(CF_META), layout::META_CONSISTENT_INDEX, b"123");
    db.write(wb, false).unwrap();
    assert!(matches!(KvStore::open(Arc::clone(&db)).err(), Some(MvccError::Corrupt(_))));
    // A value missing under an indexed revision.
    let mut wb = rocksdb::WriteBatch::default();
    wb.put_cf(db.cf(CF_META), layout::META_CONSISTENT_INDEX, 5u64.to_be_bytes());
    db.write(wb, false).unwrap();
    let store = KvStore::open(Arc::clone(&db)).unwrap();
    let mut wb = rocksdb::WriteBatch::default();
    wb.delete_cf(db.cf(CF_KV), encode_rev_key(Revision::new(2, 0), false));
    db.write(wb, false).unwrap();
    assert!(matches!(store.range(&get_req("a")).unwrap_err(), MvccError::Corrupt(_)));
}

#[test]
fn concurrent_readers_see_only_published_consistent_states() {
    let mut t = T::new();
    t.txn(txn(vec![], vec![op_put("x", "0"), op_put("y", "0")], vec![])).unwrap();
    let store = t.store.take().unwrap();
    let store = Arc::new(store);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut last_rev = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads < 100 {
                let r = store.range(&rng("x", "z")).unwrap();
                let rev = r.header.unwrap().revision;
                assert!(rev >= last_rev, "revisions go backwards: {last_rev} -> {rev}");
                last_rev = rev;
                assert_eq!(r.kvs.len(), 2, "at revision {rev}");
                assert_eq!(r.kvs[0].value, r.kvs[1].value, "x and y differ at revision {rev}");
                assert_eq!(r.kvs[0].mod_revision, r.kvs[1].mod_revision);
                // Batches commit 3 txns each: a published revision is 2 + 3n.
                assert_eq!((rev - 2) % 3, 0, "saw a revision inside a batch: {rev}");
                reads += 1;
            }
            reads
        })
    };
    let mut ci = 10;
    for i in 1..=200 {
        let mut b = store.begin();
        for j in 0..3 {
            let v = format!("{i}-{j}");
            b.txn(&txn(vec![], vec![op_put("x", &v), op_put("y", &v)], vec![])).unwrap();
        }
        ci += 1;
        b.commit(ci, 1).unwrap();
        if i % 50 == 0 {
            let mut b = store.begin();
            let rev = b.revision() - 2;
            b.compact(&CompactionRequest { revision: rev, physical: false }).unwrap();
            ci += 1;
            b.commit(ci, 1).unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("reader saw an inconsistent state");
    assert!(reads >= 100);
    assert_eq!(store.current_revision(), 2 + 600);
}

#[test]
fn batch_read_and_compaction_in_one_batch() {
    let mut t = T::new();
    t.put("a", "1");
    t.put("a", "2");
    let mut b = t.s().begin();
    b.compact(&CompactionRequest { revision: 3, physical: false }).unwrap();
    assert_eq!(b.range(&RangeRequest { revision: 2, ..get_req("a") }).unwrap_err(), MvccError::Compacted);
    assert_eq!(b.compact(&CompactionRequest { revision: 3, physical: false }).unwrap_err(), MvccError::Compacted);
    assert_eq!(t.range(RangeRequest { revision: 2, ..get_req("a") }).unwrap().kvs.len(), 1, "not published yet");
    b.commit(1, 1).unwrap();
    assert_eq!(t.range(RangeRequest { revision: 2, ..get_req("a") }).unwrap_err(), MvccError::Compacted);
}

#[test]
fn store_and_chunks_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<KvStore>();
    check::<RangeChunks>();
    check::<MvccError>();
}
