//! Routes each decoded client request: validates it, then proposes writes
//! through Raft (registering a waiter first), sends linearizable reads to
//! the raft thread for a read index, and serializable reads straight to the
//! read workers. Never blocks: a full queue answers "too many requests".

use super::errors::ApiError;
use crate::mvcc as validate;
use crate::proto::etcdserverpb::{request_op, TxnRequest};
use crate::proto::internalpb::{internal_request, InternalRequest};
use crate::proto::raftkvpb::{client_request::Body as Req, ClientRequest, ErrorCode};
use crate::server::doorbell::RingingSender;
use crate::server::ids::RequestIds;
use crate::server::msgs::{Proposal, ReadJob, ReadKind};
use crate::server::respond::Responder;
use crate::server::status::NodeStatus;
use crate::server::wait::WaitRegistry;
use crossbeam_channel::{Sender, TrySendError};
use prost::Message as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most operations a transaction may hold (etcd's `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

pub struct Dispatcher {
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    pub member_id: u64,
    pub ids: Arc<RequestIds>,
    pub wait: Arc<WaitRegistry>,
    pub status: Arc<NodeStatus>,
    pub proposals: RingingSender<Proposal>,
    /// To the raft thread: reads that need a read index.
    pub linear_reads: RingingSender<ReadJob>,
    /// To the read workers: reads served locally at once.
    pub local_reads: Sender<ReadJob>,
}

impl Dispatcher {
    /// Handles one request; the answer goes through `responder`.
    pub fn dispatch(&self, req: ClientRequest, responder: Responder) {
        let Some(body) = req.body else {
            return responder.fail(ApiError::of(ErrorCode::UnknownRequest));
        };
        if self.status.is_stopping() {
            return responder.fail(ApiError::of(ErrorCode::Stopped));
        }
        match body {
            Req::Range(r) => {
                if let Err(e) = validate::validate_range(&r) {
                    return responder.fail(ApiError::new(e.code(), e.to_string()));
                }
                let serializable = r.serializable;
                self.read(ReadJob { kind: ReadKind::Range(r), responder }, serializable);
            }
            Req::Put(p) => match validate::validate_put(&p) {
                Ok(()) => self.propose(internal_request::Body::Put(p), responder),
                Err(e) => responder.fail(ApiError::new(e.code(), e.to_string())),
            },
            Req::DeleteRange(d) => match validate::validate_delete_range(&d) {
                Ok(()) => self.propose(internal_request::Body::DeleteRange(d), responder),
                Err(e) => responder.fail(ApiError::new(e.code(), e.to_string())),
            },
            Req::Txn(t) => {
                if let Err(e) = validate::validate_txn(&t, MAX_TXN_OPS) {
                    return responder.fail(ApiError::new(e.code(), e.to_string()));
                }
                if txn_is_read_only(&t) {
                    let serializable = txn_is_serializable(&t);
                    self.read(ReadJob { kind: ReadKind::Txn(t), responder }, serializable);
                } else {
                    self.propose(internal_request::Body::Txn(t), responder);
                }
            }
            Req::Compact(c) => self.propose(internal_request::Body::Compaction(c), responder),
            Req::Status(_) => self.read(ReadJob { kind: ReadKind::Status, responder }, true),
            Req::HashKv(h) => self.read(ReadJob { kind: ReadKind::HashKv(h.revision), responder }, true),
            Req::MemberList(m) => self.read(ReadJob { kind: ReadKind::MemberList, responder }, !m.linearizable),
            other => {
                let name = format!("{other:?}");
                let kind = name.split('(').next().unwrap_or("request");
                responder
                    .fail(ApiError::new(ErrorCode::NotImplemented, format!("raftkv: {kind} is not implemented yet")))
            }
        }
    }

    fn read(&self, job: ReadJob, serializable: bool) {
        let sent = if serializable { self.local_reads.try_send(job) } else { self.linear_reads.try_send(job) };
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => job.responder.fail(ApiError::of(ErrorCode::TooManyRequests)),
            Err(TrySendError::Disconnected(job)) => job.responder.fail(ApiError::of(ErrorCode::Stopped)),
        }
    }

    fn propose(&self, body: internal_request::Body, responder: Responder) {
        let id = self.ids.next();
        let data = InternalRequest { id, member_id: self.member_id, body: Some(body) }.encode_to_vec();
        if data.len() > self.max_request_bytes {
            return responder.fail(ApiError::of(ErrorCode::RequestTooLarge));
        }
        let deadline = Instant::now() + self.request_timeout;
        if let Err(responder) = self.wait.register(id, responder, deadline) {
            return responder.fail(ApiError::of(ErrorCode::TooManyRequests));
        }
        let code = match self.proposals.try_send(Proposal { id, data: data.into() }) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => ErrorCode::TooManyRequests,
            Err(TrySendError::Disconnected(_)) => ErrorCode::Stopped,
        };
        if let Some(r) = self.wait.take(id) {
            r.fail(ApiError::of(code));
        }
    }
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
