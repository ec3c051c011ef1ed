//! The JSON format: what Go's `encoding/json` makes of etcd's response
//! structs, as etcdctl prints them.
//!
//! Owns the shape: snake_case protobuf names (`cluster_id`, `prev_kv`),
//! camelCase for Status (`dbSize`), the txn oneof wrappers
//! (`{"Response":{"ResponsePut":{...}}}`), every field omitted when zero,
//! false or empty, uint64 ids as plain JSON numbers, keys and values in
//! standard base64. One line, newline-terminated.
//!
//! Lease answers are clientv3's own structs, not the protobuf ones: the
//! header is embedded, so its fields sit at the top level, and the other
//! fields have no `omitempty` (`"Error":""`, `"keys":null`), under
//! clientv3's names (`ID`/`TTL`, or `id`/`ttl`/`granted-ttl`/`keys` for
//! time-to-live).

use super::super::gofmt::json_string;
use super::{EpHealth, EpStatus};
use crate::proto::etcdserverpb::{
    response_op, DeleteRangeResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeResponse, LeaseTimeToLiveResponse, Member, MemberListResponse, PutResponse, RangeResponse,
    ResponseHeader, StatusResponse, TxnResponse, WatchResponse,
};
use crate::proto::mvccpb::{Event, KeyValue};
use base64::Engine as _;

/// A JSON object under construction, omitting empty fields as
/// `omitempty` does.
struct Obj {
    buf: String,
    empty: bool,
}

impl Obj {
    fn new() -> Obj {
        Obj { buf: String::from("{"), empty: true }
    }

    fn raw(&mut self, name: &str, value: &str) -> &mut Obj {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        self.buf.push('"');
        self.buf.push_str(name);
        self.buf.push_str("\":");
        self.buf.push_str(value);
        self
    }

    fn num<T: Into<i128>>(&mut self, name: &str, v: T) -> &mut Obj {
        let v: i128 = v.into();
        if v != 0 {
            self.raw(name, &v.to_string());
        }
        self
    }

    fn flag(&mut self, name: &str, v: bool) -> &mut Obj {
        if v {
            self.raw(name, "true");
        }
        self
    }

    fn bytes(&mut self, name: &str, v: &[u8]) -> &mut Obj {
        if !v.is_empty() {
            let b64 = base64::engine::general_purpose::STANDARD.encode(v);
            self.raw(name, &format!("\"{b64}\""));
        }
        self
    }

    fn string(&mut self, name: &str, v: &str) -> &mut Obj {
        if !v.is_empty() {
            self.raw(name, &json_string(v.as_bytes()));
        }
        self
    }

    fn opt(&mut self, name: &str, v: Option<String>) -> &mut Obj {
        if let Some(v) = v {
            self.raw(name, &v);
        }
        self
    }

    fn done(&mut self) -> String {
        self.buf.push('}');
        std::mem::take(&mut self.buf)
    }
}

fn array<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    let parts: Vec<String> = items.iter().map(f).collect();
    format!("[{}]", parts.join(","))
}

fn nonempty_array<T>(items: &[T], f: impl Fn(&T) -> String) -> Option<String> {
    (!items.is_empty()).then(|| array(items, f))
}

pub fn header(h: &ResponseHeader) -> String {
    Obj::new()
        .num("cluster_id", h.cluster_id)
        .num("member_id", h.member_id)
        .num("revision", h.revision)
        .num("raft_term", h.raft_term)
        .done()
}

pub fn key_value(kv: &KeyValue) -> String {
    Obj::new()
        .bytes("key", &kv.key)
        .num("create_revision", kv.create_revision)
        .num("mod_revision", kv.mod_revision)
        .num("version", kv.version)
        .bytes("value", &kv.value)
        .num("lease", kv.lease)
        .done()
}

fn range_obj(r: &RangeResponse) -> String {
    Obj::new()
        .opt("header", r.header.as_ref().map(header))
        .opt("kvs", nonempty_array(&r.kvs, key_value))
        .flag("more", r.more)
        .num("count", r.count)
        .done()
}

fn put_obj(r: &PutResponse) -> String {
    Obj::new().opt("header", r.header.as_ref().map(header)).opt("prev_kv", r.prev_kv.as_ref().map(key_value)).done()
}

fn delete_obj(r: &DeleteRangeResponse) -> String {
    Obj::new()
        .opt("header", r.header.as_ref().map(header))
        .num("deleted", r.deleted)
        .opt("prev_kvs", nonempty_array(&r.prev_kvs, key_value))
        .done()
}

fn txn_obj(r: &TxnResponse) -> String {
    let op = |op: &crate::proto::etcdserverpb::ResponseOp| {
        let inner = match &op.response {
            Some(response_op::Response::ResponseRange(g)) => format!("{{\"ResponseRange\":{}}}", range_obj(g)),
            Some(response_op::Response::ResponsePut(p)) => format!("{{\"ResponsePut\":{}}}", put_obj(p)),
            Some(response_op::Response::ResponseDeleteRange(d)) => {
                format!("{{\"ResponseDeleteRange\":{}}}", delete_obj(d))
            }
            Some(response_op::Response::ResponseTxn(t)) => format!("{{\"ResponseTxn\":{}}}", txn_obj(t)),
            None => "null".to_string(),
        };
        format!("{{\"Response\":{inner}}}")
    };
    Obj::new()
        .opt("header", r.header.as_ref().map(header))
        .flag("succeeded", r.succeeded)
        .opt("responses", nonempty_array(&r.responses, op))
        .done()
}

fn line(s: String) -> String {
    s + "\n"
}

pub fn range(r: &RangeResponse) -> String {
    line(range_obj(r))
}

pub fn put(r: &PutResponse) -> String {
    line(put_obj(r))
}

pub fn delete(r: &DeleteRangeResponse) -> String {
    line(delete_obj(r))
}

pub fn txn(r: &TxnResponse) -> String {
    line(txn_obj(r))
}

fn event_obj(e: &Event) -> String {
    Obj::new()
        .num("type", e.r#type)
        .opt("kv", e.kv.as_ref().map(key_value))
        .opt("prev_kv", e.prev_kv.as_ref().map(key_value))
        .done()
}

/// clientv3's `WatchResponse` struct as Go encodes it: the header is a
/// value (always there, `{}` when empty), `Events` is never null, and the
/// last three fields have no `omitempty`.
pub fn watch(r: &WatchResponse) -> String {
    let mut o = Obj::new();
    o.raw("Header", &header(&r.header.unwrap_or_default()))
        .raw("Events", &array(&r.events, event_obj))
        .raw("CompactRevision", &r.compact_revision.to_string())
        .raw("Canceled", if r.canceled { "true" } else { "false" })
        .raw("Created", if r.created { "true" } else { "false" });
    line(o.done())
}

fn status_obj(s: &StatusResponse) -> String {
    Obj::new()
        .opt("header", s.header.as_ref().map(header))
        .string("version", &s.version)
        .num("dbSize", s.db_size)
        .num("leader", s.leader)
        .num("raftIndex", s.raft_index)
        .num("raftTerm", s.raft_term)
        .num("raftAppliedIndex", s.raft_applied_index)
        .opt("errors", nonempty_array(&s.errors, |e| json_string(e.as_bytes())))
        .num("dbSizeInUse", s.db_size_in_use)
        .flag("isLearner", s.is_learner)
        .done()
}

pub fn endpoint_status(list: &[EpStatus]) -> String {
    line(array(list, |s| {
        format!("{{\"Endpoint\":{},\"Status\":{}}}", json_string(s.ep.as_bytes()), status_obj(&s.resp))
    }))
}

pub fn endpoint_health(list: &[EpHealth]) -> String {
    line(array(list, |h| {
        let mut o = Obj::new();
        o.raw("endpoint", &json_string(h.ep.as_bytes()))
            .raw("health", if h.health { "true" } else { "false" })
            .raw("took", &json_string(h.took.as_bytes()))
            .string("error", &h.error);
        o.done()
    }))
}

fn member_obj(m: &Member) -> String {
    let strings = |v: &[String]| nonempty_array(v, |u| json_string(u.as_bytes()));
    Obj::new()
        .num("ID", m.id)
        .string("name", &m.name)
        .opt("peerURLs", strings(&m.peer_ur_ls))
        .opt("clientURLs", strings(&m.client_ur_ls))
        .flag("isLearner", m.is_learner)
        .done()
}

/// A membership change's answer: the header, the member (add only) and
/// the members after the change.
pub fn members_answer(h: Option<&ResponseHeader>, member: Option<&Member>, members: &[Member]) -> String {
    line(
        Obj::new()
            .opt("header", h.map(header))
            .opt("member", member.map(member_obj))
            .opt("members", nonempty_array(members, member_obj))
            .done(),
    )
}

pub fn member_list(r: &MemberListResponse) -> String {
    line(
        Obj::new()
            .opt("header", r.header.as_ref().map(header))
            .opt("members", nonempty_array(&r.members, member_obj))
            .done(),
    )
}

/// An object starting with the fields of an embedded `*ResponseHeader`
/// (none when it is nil).
fn flattened(h: Option<&ResponseHeader>) -> Obj {
    let mut o = Obj::new();
    if let Some(h) = h {
        o.num("cluster_id", h.cluster_id)
            .num("member_id", h.member_id)
            .num("revision", h.revision)
            .num("raft_term", h.raft_term);
    }
    o
}

pub fn lease_grant(r: &LeaseGrantResponse) -> String {
    let mut o = flattened(r.header.as_ref());
    o.raw("ID", &r.id.to_string()).raw("TTL", &r.ttl.to_string()).raw("Error", &json_string(r.error.as_bytes()));
    line(o.done())
}

/// The protobuf message itself (`LeaseRevokeResponse` is not wrapped by
/// clientv3).
pub fn lease_revoke(r: &LeaseRevokeResponse) -> String {
    line(Obj::new().opt("header", r.header.as_ref().map(header)).done())
}

pub fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> String {
    let mut o = flattened(r.header.as_ref());
    o.raw("ID", &r.id.to_string()).raw("TTL", &r.ttl.to_string());
    line(o.done())
}

pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse) -> String {
    let mut o = flattened(r.header.as_ref());
    let keys = if r.keys.is_empty() {
        "null".to_string()
    } else {
        array(&r.keys, |k| format!("\"{}\"", base64::engine::general_purpose::STANDARD.encode(k)))
    };
    o.raw("id", &r.id.to_string())
        .raw("ttl", &r.ttl.to_string())
        .raw("granted-ttl", &r.granted_ttl.to_string())
        .raw("keys", &keys);
    line(o.done())
}

/// clientv3 copies the leases into a fresh slice: `[]` when there are none.
pub fn lease_leases(r: &LeaseLeasesResponse) -> String {
    let mut o = flattened(r.header.as_ref());
    o.raw("leases", &array(&r.leases, |l| format!("{{\"id\":{}}}", l.id)));
    line(o.done())
}
