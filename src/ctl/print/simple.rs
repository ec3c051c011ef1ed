//! The simple format: etcdctl's default, line oriented output.
//!
//! Owns the texts of `OK`, key/value lines (raw bytes, or `\xNN` with
//! `--hex`), deleted counts, `SUCCESS`/`FAILURE` with op outputs, the
//! lease lines (ids as Go's `%016x`; `--hex` does not apply), and the
//! endpoint status and health lines. Never decides about errors.

use super::super::gofmt;
use super::{EpHealth, EpStatus};
use crate::proto::etcdserverpb::{
    response_op, DeleteRangeResponse, MemberListResponse, PutResponse, RangeResponse, TxnResponse,
};
use crate::proto::etcdserverpb::{
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseTimeToLiveResponse, WatchResponse,
};
use crate::proto::mvccpb::{event::EventType, KeyValue};

/// `\x61\x62` for `ab` (etcdctl's `--hex`).
fn hex(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    for b in bytes {
        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
    }
    out
}

/// etcdctl's `printKV`: the key on one line, the value on the next.
fn kv(out: &mut Vec<u8>, kv: &KeyValue, is_hex: bool, value_only: bool) {
    let (k, v) = if is_hex { (hex(&kv.key), hex(&kv.value)) } else { (kv.key.to_vec(), kv.value.to_vec()) };
    if !value_only {
        out.extend_from_slice(&k);
        out.push(b'\n');
    }
    out.extend_from_slice(&v);
    out.push(b'\n');
}

pub fn put(r: &PutResponse, is_hex: bool) -> Vec<u8> {
    let mut out = b"OK\n".to_vec();
    if let Some(prev) = &r.prev_kv {
        kv(&mut out, prev, is_hex, false);
    }
    out
}

pub fn get(r: &RangeResponse, is_hex: bool, value_only: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for k in &r.kvs {
        kv(&mut out, k, is_hex, value_only);
    }
    out
}

pub fn del(r: &DeleteRangeResponse, is_hex: bool) -> Vec<u8> {
    let mut out = format!("{}\n", r.deleted).into_bytes();
    for k in &r.prev_kvs {
        kv(&mut out, k, is_hex, false);
    }
    out
}

/// `SUCCESS` or `FAILURE`, then per op response an empty line and the op's
/// own simple output.
pub fn txn(r: &TxnResponse, is_hex: bool) -> Vec<u8> {
    let mut out = if r.succeeded { b"SUCCESS\n".to_vec() } else { b"FAILURE\n".to_vec() };
    for op in &r.responses {
        out.push(b'\n');
        match &op.response {
            Some(response_op::Response::ResponseDeleteRange(d)) => out.extend(del(d, is_hex)),
            Some(response_op::Response::ResponsePut(p)) => out.extend(put(p, is_hex)),
            Some(response_op::Response::ResponseRange(g)) => out.extend(get(g, is_hex, false)),
            Some(response_op::Response::ResponseTxn(t)) => out.extend(txn(t, is_hex)),
            None => out.extend_from_slice(b"unexpected response <nil>\n"),
        }
    }
    out
}

/// etcd's name of an event type (`PUT`, `DELETE`).
pub fn event_type_name(t: i32) -> String {
    match EventType::try_from(t) {
        Ok(EventType::Put) => "PUT".to_string(),
        Ok(EventType::Delete) => "DELETE".to_string(),
        Err(_) => t.to_string(),
    }
}

/// Per event: the type, then the previous key and value (if the event
/// carries them), then the key and value. Nothing for a response without
/// events (progress, cancel).
pub fn watch(r: &WatchResponse, is_hex: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in &r.events {
        out.extend_from_slice(event_type_name(e.r#type).as_bytes());
        out.push(b'\n');
        if let Some(prev) = &e.prev_kv {
            kv(&mut out, prev, is_hex, false);
        }
        kv(&mut out, &e.kv.clone().unwrap_or_default(), is_hex, false);
    }
    out
}

/// The rows of etcdctl's `makeEndpointStatusTable`.
pub fn endpoint_status_rows(list: &[EpStatus]) -> Vec<Vec<String>> {
    list.iter()
        .map(|s| {
            let member_id = s.resp.header.as_ref().map_or(0, |h| h.member_id);
            vec![
                s.ep.clone(),
                format!("{member_id:x}"),
                s.resp.version.clone(),
                gofmt::humanize_bytes(s.resp.db_size.max(0) as u64),
                (s.resp.leader == member_id).to_string(),
                s.resp.is_learner.to_string(),
                s.resp.raft_term.to_string(),
                s.resp.raft_index.to_string(),
                s.resp.raft_applied_index.to_string(),
                s.resp.errors.join(", "),
            ]
        })
        .collect()
}

/// One comma-separated line per endpoint (the last field, errors, is empty
/// when there are none, hence the trailing `, `).
pub fn endpoint_status(list: &[EpStatus]) -> Vec<u8> {
    let mut out = String::new();
    for row in endpoint_status_rows(list) {
        out.push_str(&row.join(", "));
        out.push('\n');
    }
    out.into_bytes()
}

/// The health lines; etcdctl writes them to stderr.
pub fn endpoint_health(list: &[EpHealth]) -> Vec<u8> {
    let mut out = String::new();
    for h in list {
        if h.error.is_empty() {
            out.push_str(&format!("{} is healthy: successfully committed proposal: took = {}\n", h.ep, h.took));
        } else {
            out.push_str(&format!("{} is unhealthy: failed to commit proposal: {}\n", h.ep, h.error));
        }
    }
    out.into_bytes()
}

/// The rows of etcdctl's `makeMemberListTable`: a member without a name
/// has not started yet.
pub fn member_list_rows(r: &MemberListResponse) -> Vec<Vec<String>> {
    r.members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() { "unstarted" } else { "started" }.to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

pub fn member_list(r: &MemberListResponse) -> Vec<u8> {
    let mut out = String::new();
    for row in member_list_rows(r) {
        out.push_str(&row.join(", "));
        out.push('\n');
    }
    out.into_bytes()
}

pub fn lease_grant(r: &LeaseGrantResponse) -> Vec<u8> {
    format!("lease {} granted with TTL({}s)\n", gofmt::lease_hex(r.id), r.ttl).into_bytes()
}

/// The revoked id is the one asked for (the answer has none).
pub fn lease_revoke(id: i64) -> Vec<u8> {
    format!("lease {} revoked\n", gofmt::lease_hex(id)).into_bytes()
}

/// No `s` after the TTL here, unlike grant and timetolive.
pub fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> Vec<u8> {
    format!("lease {} keepalived with TTL({})\n", gofmt::lease_hex(r.id), r.ttl).into_bytes()
}

/// The line continuous `lease keep-alive` ends with when the lease is gone.
pub fn lease_keep_alive_lost(id: i64) -> Vec<u8> {
    format!("lease {} expired or revoked.\n", gofmt::lease_hex(id)).into_bytes()
}

/// `already expired` only for etcd's "not found" answer (TTL -1, granted
/// TTL 0); with `keys`, the keys as Go's `%v` of a string slice.
pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse, keys: bool) -> Vec<u8> {
    if r.granted_ttl == 0 && r.ttl == -1 {
        return format!("lease {} already expired\n", gofmt::lease_hex(r.id)).into_bytes();
    }
    let mut out =
        format!("lease {} granted with TTL({}s), remaining({}s)", gofmt::lease_hex(r.id), r.granted_ttl, r.ttl)
            .into_bytes();
    if keys {
        out.extend_from_slice(b", attached keys([");
        for (i, k) in r.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(k);
        }
        out.extend_from_slice(b"])");
    }
    out.push(b'\n');
    out
}

pub fn lease_leases(r: &LeaseLeasesResponse) -> Vec<u8> {
    let mut out = format!("found {} leases\n", r.leases.len());
    for l in &r.leases {
        out.push_str(&gofmt::lease_hex(l.id));
        out.push('\n');
    }
    out.into_bytes()
}
