//! Request validation done before a request is proposed, mirroring etcd's
//! API-layer checks (`api/v3rpc/key.go`): empty keys, sort options,
//! `ignore_value` / `ignore_lease` with a value / lease, the txn operation
//! limit, and overlapping writes inside a txn.
//!
//! Owns only pure checks of a request's shape. Must never look at the store:
//! the same request gets the same answer on every node and at any time, so
//! the apply path runs these checks again and every replica agrees.

use super::error::MvccError;
use crate::proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use std::collections::HashSet;

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

pub fn validate_range(r: &RangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    // etcd 3.5+ rejects unknown enum values here (3.4 accepted them and could
    // panic when sorting); the brief asks for the check.
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(MvccError::InvalidSortOption);
    }
    Ok(())
}

pub fn validate_put(r: &PutRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

pub fn validate_delete_range(r: &DeleteRangeRequest) -> Result<(), MvccError> {
    if r.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// The whole txn check of etcd's `kvServer.Txn`: shape (recursively, with
/// the op budget shrinking by each level's width, as etcd does), then
/// overlapping writes in the success and in the failure branch.
pub fn validate_txn(r: &TxnRequest, max_ops: usize) -> Result<(), MvccError> {
    check_txn_shape(r, max_ops.min(i64::MAX as usize) as i64)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_txn_shape(r: &TxnRequest, max_ops: i64) -> Result<(), MvccError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len()) as i64;
    if opc > max_ops {
        return Err(MvccError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(MvccError::EmptyKey);
    }
    for op in r.success.iter().chain(r.failure.iter()) {
        check_op(op, max_ops - opc)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: i64) -> Result<(), MvccError> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => validate_range(r),
        Some(request_op::Request::RequestPut(r)) => validate_put(r),
        Some(request_op::Request::RequestDeleteRange(r)) => validate_delete_range(r),
        Some(request_op::Request::RequestTxn(t)) => check_txn_shape(t, max_ops),
        // etcd answers an empty op with ErrGRPCKeyNotFound.
        None => Err(MvccError::KeyNotFound),
    }
}

/// Deleted intervals `[begin, end)` compared as plain bytes; a point delete
/// is `[key, key ++ "\0")`. A delete with `range_end == "\0"` ("every key >=
/// key") therefore overlaps no put: etcd's interval tree behaves exactly so.
#[derive(Default)]
struct Dels(Vec<(Vec<u8>, Vec<u8>)>);

impl Dels {
    fn intersects(&self, k: &[u8]) -> bool {
        self.0.iter().any(|(b, e)| b.as_slice() <= k && k < e.as_slice())
    }
}

/// etcd's `checkIntervals`: a put may not overlap another put or a delete
/// of the same level or of nested txns, except that the success and failure
/// branches of one nested txn may put the same key (only one runs). Deletes
/// of nested txns are checked against this level's puts and later siblings'
/// puts only, as in etcd.
fn check_intervals(reqs: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Dels), MvccError> {
    let mut dels = Dels::default();
    for op in reqs {
        if let Some(request_op::Request::RequestDeleteRange(d)) = &op.request {
            let end = if d.range_end.is_empty() {
                let mut e = d.key.to_vec();
                e.push(0);
                e
            } else {
                d.range_end.to_vec()
            };
            dels.0.push((d.key.to_vec(), end));
        }
    }
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in reqs {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || dels.intersects(k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if puts.contains(k) && !puts_then.contains(k) {
                return Err(MvccError::DuplicateKey);
            }
            if dels.intersects(k) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.0.extend(dels_then.0);
        dels.0.extend(dels_else.0);
    }
    for op in reqs {
        let Some(request_op::Request::RequestPut(p)) = &op.request else { continue };
        let k = p.key.to_vec();
        if puts.contains(&k) || dels.intersects(&k) {
            return Err(MvccError::DuplicateKey);
        }
        puts.insert(k);
    }
    Ok((puts, dels))
}

/// Whether a transaction writes nothing in either branch (nested included).
pub fn txn_is_read_only(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).all(|op| match &op.request {
        Some(request_op::Request::RequestRange(_)) | None => true,
        Some(request_op::Request::RequestTxn(inner)) => txn_is_read_only(inner),
        Some(_) => false,
    })
}

/// Whether every read of a read-only transaction asks to be serializable.
pub fn txn_is_serializable(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).all(|op| match &op.request {
        Some(request_op::Request::RequestRange(r)) => r.serializable,
        Some(request_op::Request::RequestTxn(inner)) => txn_is_serializable(inner),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::Compare;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.to_string().into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.to_string().into(),
                range_end: end.to_string().into(),
                ..Default::default()
            })),
        }
    }
    fn get(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: k.to_string().into(),
                ..Default::default()
            })),
        }
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest { compare: vec![], success, failure }
    }
    fn nested(t: TxnRequest) -> RequestOp {
        RequestOp { request: Some(request_op::Request::RequestTxn(t)) }
    }
    fn check(t: &TxnRequest) -> Result<(), MvccError> {
        validate_txn(t, DEFAULT_MAX_TXN_OPS)
    }

    #[test]
    fn empty_keys_are_refused() {
        assert_eq!(validate_range(&RangeRequest::default()), Err(MvccError::EmptyKey));
        assert_eq!(validate_put(&PutRequest::default()), Err(MvccError::EmptyKey));
        assert_eq!(validate_delete_range(&DeleteRangeRequest::default()), Err(MvccError::EmptyKey));
        assert_eq!(check(&txn(vec![put("")], vec![])), Err(MvccError::EmptyKey));
        assert_eq!(check(&txn(vec![], vec![get("")])), Err(MvccError::EmptyKey));
        assert_eq!(check(&txn(vec![nested(txn(vec![del("", "")], vec![]))], vec![])), Err(MvccError::EmptyKey));
        let mut t = txn(vec![], vec![]);
        t.compare.push(Compare::default());
        assert_eq!(check(&t), Err(MvccError::EmptyKey));
    }

    #[test]
    fn empty_op_is_key_not_found() {
        assert_eq!(check(&txn(vec![RequestOp { request: None }], vec![])), Err(MvccError::KeyNotFound));
    }

    #[test]
    fn sort_options_must_be_known() {
        let ok = RangeRequest { key: "a".into(), sort_order: 2, sort_target: 4, ..Default::default() };
        assert_eq!(validate_range(&ok), Ok(()));
        let bad_order = RangeRequest { sort_order: 3, ..ok.clone() };
        assert_eq!(validate_range(&bad_order), Err(MvccError::InvalidSortOption));
        let bad_target = RangeRequest { sort_target: 5, ..ok.clone() };
        assert_eq!(validate_range(&bad_target), Err(MvccError::InvalidSortOption));
        let neg = RangeRequest { sort_target: -1, ..ok };
        assert_eq!(validate_range(&neg), Err(MvccError::InvalidSortOption));
    }

    #[test]
    fn ignore_flags_refuse_provided_fields() {
        let p = PutRequest { key: "a".into(), value: "v".into(), ignore_value: true, ..Default::default() };
        assert_eq!(validate_put(&p), Err(MvccError::ValueProvided));
        let p = PutRequest { key: "a".into(), lease: 5, ignore_lease: true, ..Default::default() };
        assert_eq!(validate_put(&p), Err(MvccError::LeaseProvided));
        let p = PutRequest { key: "a".into(), ignore_lease: true, ignore_value: true, ..Default::default() };
        assert_eq!(validate_put(&p), Ok(()));
    }

    #[test]
    fn op_limit_counts_the_widest_list_and_shrinks_for_nested_txns() {
        let ops: Vec<RequestOp> = (0..128).map(|i| get(&format!("k{i}"))).collect();
        assert_eq!(check(&txn(ops.clone(), vec![])), Ok(()));
        let mut more = ops.clone();
        more.push(get("x"));
        assert_eq!(check(&txn(more.clone(), vec![])), Err(MvccError::TooManyOps));
        assert_eq!(check(&txn(vec![], more)), Err(MvccError::TooManyOps));
        let mut t = txn(vec![], vec![]);
        t.compare = (0..129).map(|_| Compare { key: "a".into(), ..Default::default() }).collect();
        assert_eq!(check(&t), Err(MvccError::TooManyOps));
        // A nested txn gets the budget left after its parent's width.
        let inner = txn((0..64).map(|i| get(&format!("i{i}"))).collect(), vec![]);
        let mut outer: Vec<RequestOp> = (0..63).map(|i| get(&format!("o{i}"))).collect();
        outer.push(nested(inner.clone()));
        assert_eq!(check(&txn(outer.clone(), vec![])), Ok(()));
        outer.push(get("extra"));
        assert_eq!(check(&txn(outer, vec![])), Err(MvccError::TooManyOps));
        assert_eq!(validate_txn(&txn(vec![get("a"), get("b")], vec![]), 1), Err(MvccError::TooManyOps));
    }

    #[test]
    fn duplicate_rules_follow_etcd() {
        use MvccError::DuplicateKey as D;
        assert_eq!(check(&txn(vec![put("a"), put("a")], vec![])), Err(D));
        assert_eq!(check(&txn(vec![put("a")], vec![put("a")])), Ok(()));
        assert_eq!(check(&txn(vec![put("a"), del("a", "")], vec![])), Err(D));
        assert_eq!(check(&txn(vec![del("a", "c"), put("b")], vec![])), Err(D));
        assert_eq!(check(&txn(vec![del("a", "c"), put("c")], vec![])), Ok(()));
        assert_eq!(check(&txn(vec![del("a", ""), del("a", "b")], vec![])), Ok(()));
        // "\0" as range_end overlaps nothing in etcd's interval check.
        assert_eq!(check(&txn(vec![del("a", "\0"), put("b")], vec![])), Ok(()));
        assert_eq!(check(&txn(vec![del("\0", "\0"), put("b")], vec![])), Ok(()));
        // Nested: then/else of one txn may share a put; siblings may not.
        let both = nested(txn(vec![put("a")], vec![put("a")]));
        assert_eq!(check(&txn(vec![both.clone()], vec![])), Ok(()));
        assert_eq!(check(&txn(vec![both.clone(), put("a")], vec![])), Err(D));
        assert_eq!(check(&txn(vec![put("a"), both], vec![])), Err(D));
        let else_only = nested(txn(vec![], vec![put("a")]));
        let then_only = nested(txn(vec![put("a")], vec![]));
        assert_eq!(check(&txn(vec![then_only.clone(), else_only], vec![])), Err(D));
        // This level's deletes against nested puts, and nested deletes against this level's puts.
        assert_eq!(check(&txn(vec![del("a", ""), then_only.clone()], vec![])), Err(D));
        let nested_del = nested(txn(vec![del("a", "")], vec![]));
        assert_eq!(check(&txn(vec![put("a"), nested_del.clone()], vec![])), Err(D));
        // A nested delete is only seen by later siblings' puts.
        assert_eq!(check(&txn(vec![nested_del.clone(), then_only.clone()], vec![])), Err(D));
        assert_eq!(check(&txn(vec![then_only, nested_del], vec![])), Ok(()));
        // Deep nesting is checked too.
        let deep = nested(txn(vec![nested(txn(vec![put("x"), put("x")], vec![]))], vec![]));
        assert_eq!(check(&txn(vec![deep], vec![])), Err(D));
        // Failure branch checked on its own.
        assert_eq!(check(&txn(vec![], vec![put("z"), put("z")])), Err(D));
    }
}
