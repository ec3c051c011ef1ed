//! The fields format (`-w fields`): etcdctl's `"Name" : value` lines, the
//! only format `get --count-only` accepts (etcdctl 3.5+).
//!
//! Owns the field names and order of etcdctl's fields printer; strings and
//! bytes are Go `%q`-quoted, every field is printed even when zero.

use super::super::gofmt::quote;
use super::{EpHealth, EpStatus};
use crate::proto::etcdserverpb::{
    response_op, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeResponse, LeaseTimeToLiveResponse, MemberListResponse, PutResponse, RangeResponse, ResponseHeader,
    TxnResponse, WatchResponse,
};
use crate::proto::mvccpb::KeyValue;
use std::fmt::Write as _;

fn hdr(out: &mut String, h: Option<&ResponseHeader>) {
    let h = h.cloned().unwrap_or_default();
    let _ = writeln!(out, "\"ClusterID\" : {}", h.cluster_id);
    let _ = writeln!(out, "\"MemberID\" : {}", h.member_id);
    let _ = writeln!(out, "\"Revision\" : {}", h.revision);
    let _ = writeln!(out, "\"RaftTerm\" : {}", h.raft_term);
}

fn kv(out: &mut String, pfx: &str, kv: &KeyValue) {
    let _ = writeln!(out, "\"{pfx}Key\" : {}", quote(&kv.key));
    let _ = writeln!(out, "\"{pfx}CreateRevision\" : {}", kv.create_revision);
    let _ = writeln!(out, "\"{pfx}ModRevision\" : {}", kv.mod_revision);
    let _ = writeln!(out, "\"{pfx}Version\" : {}", kv.version);
    let _ = writeln!(out, "\"{pfx}Value\" : {}", quote(&kv.value));
    let _ = writeln!(out, "\"{pfx}Lease\" : {}", kv.lease);
}

fn get_into(out: &mut String, r: &RangeResponse) {
    hdr(out, r.header.as_ref());
    for k in &r.kvs {
        kv(out, "", k);
    }
    let _ = writeln!(out, "\"More\" : {}", r.more);
    let _ = writeln!(out, "\"Count\" : {}", r.count);
}

fn put_into(out: &mut String, r: &PutResponse) {
    hdr(out, r.header.as_ref());
    if let Some(prev) = &r.prev_kv {
        kv(out, "Prev", prev);
    }
}

fn del_into(out: &mut String, r: &DeleteRangeResponse) {
    hdr(out, r.header.as_ref());
    let _ = writeln!(out, "\"Deleted\" : {}", r.deleted);
    for k in &r.prev_kvs {
        kv(out, "Prev", k);
    }
}

fn txn_into(out: &mut String, r: &TxnResponse) {
    hdr(out, r.header.as_ref());
    let _ = writeln!(out, "\"Succeeded\" : {}", r.succeeded);
    for op in &r.responses {
        match &op.response {
            Some(response_op::Response::ResponseDeleteRange(d)) => del_into(out, d),
            Some(response_op::Response::ResponsePut(p)) => put_into(out, p),
            Some(response_op::Response::ResponseRange(g)) => get_into(out, g),
            other => {
                let _ = writeln!(out, "\"Unknown\" : {}", quote(format!("{other:?}").as_bytes()));
            }
        }
    }
}

pub fn get(r: &RangeResponse) -> Vec<u8> {
    let mut out = String::new();
    get_into(&mut out, r);
    out.into_bytes()
}

pub fn put(r: &PutResponse) -> Vec<u8> {
    let mut out = String::new();
    put_into(&mut out, r);
    out.into_bytes()
}

pub fn del(r: &DeleteRangeResponse) -> Vec<u8> {
    let mut out = String::new();
    del_into(&mut out, r);
    out.into_bytes()
}

pub fn txn(r: &TxnResponse) -> Vec<u8> {
    let mut out = String::new();
    txn_into(&mut out, r);
    out.into_bytes()
}

/// The header, then per event `"Type"`, the previous kv (`Prev...`) if
/// any, and the kv.
pub fn watch(r: &WatchResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for e in &r.events {
        let _ = writeln!(out, "\"Type\" : {}", super::simple::event_type_name(e.r#type));
        if let Some(prev) = &e.prev_kv {
            kv(&mut out, "Prev", prev);
        }
        kv(&mut out, "", &e.kv.clone().unwrap_or_default());
    }
    out.into_bytes()
}

pub fn endpoint_status(list: &[EpStatus]) -> Vec<u8> {
    let mut out = String::new();
    for s in list {
        hdr(&mut out, s.resp.header.as_ref());
        let r = &s.resp;
        let _ = writeln!(out, "\"Version\" : {}", quote(r.version.as_bytes()));
        let _ = writeln!(out, "\"DBSize\" : {}", r.db_size);
        let _ = writeln!(out, "\"Leader\" : {}", r.leader);
        let _ = writeln!(out, "\"IsLearner\" : {}", r.is_learner);
        let _ = writeln!(out, "\"RaftIndex\" : {}", r.raft_index);
        let _ = writeln!(out, "\"RaftTerm\" : {}", r.raft_term);
        let _ = writeln!(out, "\"RaftAppliedIndex\" : {}", r.raft_applied_index);
        let _ = writeln!(out, "\"Errors\" : [{}]", r.errors.join(" "));
        let _ = writeln!(out, "\"Endpoint\" : {}", quote(s.ep.as_bytes()));
        out.push('\n');
    }
    out.into_bytes()
}

pub fn endpoint_health(list: &[EpHealth]) -> Vec<u8> {
    let mut out = String::new();
    for h in list {
        let _ = writeln!(out, "\"Endpoint\" : {}", quote(h.ep.as_bytes()));
        let _ = writeln!(out, "\"Health\" : {}", h.health);
        let _ = writeln!(out, "\"Took\" : {}", h.took);
        let _ = writeln!(out, "\"Error\" : {}", h.error);
        out.push('\n');
    }
    out.into_bytes()
}

pub fn member_list(r: &MemberListResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for m in &r.members {
        let _ = writeln!(out, "\"ID\" : {}", m.id);
        let _ = writeln!(out, "\"Name\" : {}", quote(m.name.as_bytes()));
        for u in &m.peer_ur_ls {
            let _ = writeln!(out, "\"PeerURL\" : {}", quote(u.as_bytes()));
        }
        for u in &m.client_ur_ls {
            let _ = writeln!(out, "\"ClientURL\" : {}", quote(u.as_bytes()));
        }
        let _ = writeln!(out, "\"IsLearner\" : {}", m.is_learner);
        out.push('\n');
    }
    out.into_bytes()
}

/// Grant and keep-alive answers: the header, `"ID"` and `"TTL"`.
fn id_ttl(header: Option<&ResponseHeader>, id: i64, ttl: i64) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, header);
    let _ = writeln!(out, "\"ID\" : {id}");
    let _ = writeln!(out, "\"TTL\" : {ttl}");
    out.into_bytes()
}

pub fn lease_grant(r: &LeaseGrantResponse) -> Vec<u8> {
    id_ttl(r.header.as_ref(), r.id, r.ttl)
}

pub fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> Vec<u8> {
    id_ttl(r.header.as_ref(), r.id, r.ttl)
}

pub fn lease_revoke(r: &LeaseRevokeResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    out.into_bytes()
}

/// Keys are listed whenever the answer has them (only with `--keys`).
pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    let _ = writeln!(out, "\"ID\" : {}", r.id);
    let _ = writeln!(out, "\"TTL\" : {}", r.ttl);
    let _ = writeln!(out, "\"GrantedTTL\" : {}", r.granted_ttl);
    for k in &r.keys {
        let _ = writeln!(out, "\"Key\" : {}", quote(k));
    }
    out.into_bytes()
}

pub fn lease_leases(r: &LeaseLeasesResponse) -> Vec<u8> {
    let mut out = String::new();
    hdr(&mut out, r.header.as_ref());
    for l in &r.leases {
        let _ = writeln!(out, "\"ID\" : {}", l.id);
    }
    out.into_bytes()
}
