//! The kv applier: Put, DeleteRange, Txn and Compact on the MVCC keyspace.
//! Their events (with prev_kv, in revision order) go to the router, which
//! hands them to the lease table and, once the batch is committed, to the
//! watch dispatcher.
//!
//! Owns the `kv` and `meta` column families' part of the batch; never
//! decides whether a lease exists (the router installs the lease check).

use super::router::{Applied, Applier, Outcome};
use crate::mvcc::{ApplyBatch, MvccError};
use crate::plumbing::errors::ApiError;
use crate::proto::internalpb::{internal_request::Body as Req, InternalRequest};
use crate::proto::mvccpb::Event;
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::server::status::NodeStatus;
use std::sync::Arc;

pub struct KvApplier {
    pub status: Arc<NodeStatus>,
}

impl KvApplier {
    pub fn new(status: Arc<NodeStatus>) -> KvApplier {
        KvApplier { status }
    }
}

/// A request's error as the client's answer, or (storage failures) as a
/// reason to stop the node: replicas must never diverge.
fn client_error(e: MvccError, id: u64) -> Result<ApiError, String> {
    if e.code() == ErrorCode::Internal {
        Err(format!("applying request {id:x}: {e}"))
    } else {
        Ok(ApiError::new(e.code(), e.to_string()))
    }
}

impl Applier for KvApplier {
    fn apply(&mut self, batch: &mut ApplyBatch<'_>, req: &InternalRequest, pending: &mut Vec<Event>) -> Applied {
        let header = |rev: Option<crate::proto::etcdserverpb::ResponseHeader>| {
            Some(self.status.header(rev.map_or(0, |h| h.revision)))
        };
        let mut wait_physical = None;
        let mut events = Vec::new();
        let result = match &req.body {
            Some(Req::Put(p)) => batch.put(p).map(|(mut r, evs)| {
                events = evs;
                r.header = header(r.header);
                Body::Put(r)
            }),
            Some(Req::DeleteRange(d)) => batch.delete_range(d).map(|(mut r, evs)| {
                events = evs;
                r.header = header(r.header);
                Body::DeleteRange(r)
            }),
            Some(Req::Txn(t)) => batch.txn(t).map(|(mut r, evs)| {
                events = evs;
                r.header = header(r.header);
                Body::Txn(r)
            }),
            Some(Req::Compaction(c)) => batch.compact(c).map(|mut r| {
                r.header = header(r.header);
                if c.physical {
                    wait_physical = Some(c.revision);
                }
                Body::Compact(r)
            }),
            _ => return Ok(None),
        };
        pending.extend(events);
        let result = match result {
            Ok(b) => Ok(b),
            Err(e) => Err(client_error(e, req.id)?),
        };
        Ok(Some(Outcome { id: req.id, result, wait_physical }))
    }
}
