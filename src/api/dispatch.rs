//! Routes each decoded client request to the part of the node that serves
//! it: validates it, then proposes writes through the proposer, sends
//! linearizable reads to the raft thread for a read index and serializable
//! reads straight to the read workers, and opens streams (watch, lease
//! keep-alive, snapshot) with their owner. Never blocks: a full queue answers "too many requests".
//!
//! Owns the mapping from request kinds to handles; never touches storage,
//! Raft or a socket.

use crate::lease::MAX_LEASE_TTL;
use crate::mvcc as validate;
use crate::plumbing::errors::ApiError;
use crate::plumbing::outbox::{Outbox, Responder, StreamOwner, StreamSender};
use crate::plumbing::wait::Completion;
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, LeaseGrantRequest, ResponseHeader,
};
use crate::proto::internalpb::internal_request;
use crate::proto::raftkvpb::{client_request::Body as Req, client_response::Body, ClientRequest, ErrorCode};
use crate::server::msgs::{ReadJob, ReadKind};
use crate::server::quota;
use crate::server::ServerHandles;
use crossbeam_channel::TrySendError;
use std::sync::Arc;

/// The most operations a transaction may hold (etcd's `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

pub struct Dispatcher {
    pub max_request_bytes: usize,
    pub server: ServerHandles,
    /// Serve everything here: the requests other members forwarded to this
    /// one (forwarding them again could loop).
    pub serve_locally: bool,
}

/// What a request became.
pub enum Dispatched {
    /// One answer comes (or came) through the request's responder.
    Unary,
    /// An open stream: later requests on its id go to the owner.
    Stream(Box<dyn StreamOwner>),
}

impl Dispatcher {
    /// Handles one request; answers go to `outbox` under its request id.
    pub fn dispatch(&self, req: ClientRequest, outbox: &Arc<Outbox>) -> Dispatched {
        let responder = Responder::new(outbox.clone(), req.request_id);
        let Some(body) = req.body else {
            responder.fail(ApiError::of(ErrorCode::UnknownRequest));
            return Dispatched::Unary;
        };
        if self.server.status.is_stopping() {
            responder.fail(ApiError::of(ErrorCode::Stopped));
            return Dispatched::Unary;
        }
        let opened = match body {
            Req::Watch(w) => self.server.watch.open(StreamSender::new(outbox.clone(), req.request_id), w).map(boxed),
            Req::LeaseKeepAlive(k) => {
                self.server.lease.hub.open(StreamSender::new(outbox.clone(), req.request_id), k).map(boxed)
            }
            Req::Snapshot(_) => {
                self.server.snapshots.open(StreamSender::new(outbox.clone(), req.request_id)).map(boxed)
            }
            unary => {
                self.unary(unary, responder);
                return Dispatched::Unary;
            }
        };
        match opened {
            Ok(owner) => Dispatched::Stream(owner),
            Err(e) => {
                responder.fail(e);
                Dispatched::Unary
            }
        }
    }

    fn lease_grant(&self, mut g: LeaseGrantRequest, responder: Responder) {
        if g.ttl > MAX_LEASE_TTL {
            return responder.fail(ApiError::of(ErrorCode::LeaseTtlTooLarge));
        }
        // Raised here, not when applied: every member then applies the same
        // TTL whatever its own election timeout.
        g.ttl = g.ttl.max(self.server.lease.min_ttl);
        if g.id == 0 {
            g.id = self.server.proposer.new_lease_id();
        }
        self.server.proposer.propose(internal_request::Body::LeaseGrant(g), responder);
    }

    fn unary(&self, body: Req, responder: Responder) {
        let propose = |b: internal_request::Body, r: Responder| self.server.proposer.propose(b, r);
        match body {
            Req::Range(r) => {
                if let Err(e) = validate::validate_range(&r) {
                    return responder.fail(ApiError::new(e.code(), e.to_string()));
                }
                let serializable = r.serializable;
                self.read(ReadJob { kind: ReadKind::Range(r), responder }, serializable);
            }
            Req::Put(p) => match validate::validate_put(&p) {
                Ok(()) => match self.over_quota(quota::put_cost(&p)) {
                    Some(e) => responder.fail(e),
                    None => propose(internal_request::Body::Put(p), responder),
                },
                Err(e) => responder.fail(ApiError::new(e.code(), e.to_string())),
            },
            Req::DeleteRange(d) => match validate::validate_delete_range(&d) {
                Ok(()) => propose(internal_request::Body::DeleteRange(d), responder),
                Err(e) => responder.fail(ApiError::new(e.code(), e.to_string())),
            },
            Req::Txn(t) => {
                if let Err(e) = validate::validate_txn(&t, MAX_TXN_OPS) {
                    return responder.fail(ApiError::new(e.code(), e.to_string()));
                }
                if validate::txn_is_read_only(&t) {
                    let serializable = validate::txn_is_serializable(&t);
                    self.read(ReadJob { kind: ReadKind::Txn(t), responder }, serializable);
                } else if let Some(e) = self.over_quota(quota::txn_cost(&t)) {
                    responder.fail(e);
                } else {
                    propose(internal_request::Body::Txn(t), responder);
                }
            }
            Req::Compact(c) => propose(internal_request::Body::Compaction(c), responder),
            Req::Status(_) => self.read(ReadJob { kind: ReadKind::Status, responder }, true),
            Req::HashKv(h) => self.read(ReadJob { kind: ReadKind::HashKv(h.revision), responder }, true),
            Req::LeaseGrant(g) => match self.over_quota(quota::LEASE_COST) {
                Some(e) => responder.fail(e),
                None => self.lease_grant(g, responder),
            },
            Req::Defragment(_) => self.server.defrag.defragment(responder),
            // Every action through Raft, as etcd: a GET is linearizable.
            Req::Alarm(a) => propose(internal_request::Body::Alarm(a), responder),
            Req::LeaseRevoke(r) => propose(internal_request::Body::LeaseRevoke(r), responder),
            Req::LeaseTimeToLive(t) => match self.leader_elsewhere() {
                // By the leader's clock, as etcd.
                Some(leader) => self.forward(leader, Req::LeaseTimeToLive(t), responder),
                None => self.read(ReadJob { kind: ReadKind::LeaseTimeToLive(t), responder }, false),
            },
            Req::LeaseLeases(_) => self.read(ReadJob { kind: ReadKind::LeaseLeases, responder }, false),
            Req::MemberList(m) => self.read(ReadJob { kind: ReadKind::MemberList, responder }, !m.linearizable),
            // Checked where the replication is known: on the leader.
            change @ (Req::MemberAdd(_)
            | Req::MemberRemove(_)
            | Req::MemberUpdate(_)
            | Req::MemberPromote(_)
            | Req::MoveLeader(_)) => match self.leader_elsewhere() {
                Some(leader) => self.forward(leader, change, responder),
                None => self.reconfigure(change, responder),
            },
            // Only meaningful on an open stream (the I/O thread routes it).
            Req::CancelStream(_) => responder.fail(ApiError::invalid("raftkv: no open stream with this request id")),
            other => {
                let name = format!("{other:?}");
                let kind = name.split('(').next().unwrap_or("request");
                responder
                    .fail(ApiError::new(ErrorCode::NotImplemented, format!("raftkv: {kind} is not implemented yet")))
            }
        }
    }

    fn reconfigure(&self, change: Req, responder: Responder) {
        let r = &self.server.reconfig;
        match change {
            Req::MemberAdd(a) => r.add(a, responder),
            Req::MemberRemove(m) => r.remove(m.id, responder),
            Req::MemberUpdate(u) => r.update(u.id, &u.peer_ur_ls, responder),
            Req::MemberPromote(p) => r.promote(p.id, responder),
            Req::MoveLeader(m) => r.move_leader(m.target_id, responder),
            _ => responder.fail(ApiError::internal("not a membership change")),
        }
    }

    /// etcd's quota check where requests come in: a write that would pass
    /// the quota raises NOSPACE for this member (once) and is refused.
    fn over_quota(&self, cost: u64) -> Option<ApiError> {
        if self.server.quota.available(cost) {
            return None;
        }
        if !self.server.alarms.has(AlarmType::Nospace) {
            let raise = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.server.member_id,
                alarm: AlarmType::Nospace as i32,
            };
            let logged = |r: Result<Body, ApiError>| {
                if let Err(e) = r {
                    log::warn!("raising the NOSPACE alarm failed: {e}");
                }
            };
            self.server.proposer.propose(internal_request::Body::Alarm(raise), Completion::Call(Box::new(logged)));
        }
        Some(ApiError::of(ErrorCode::NoSpace))
    }

    /// The leader, when it is another member and this request may be
    /// forwarded to it.
    fn leader_elsewhere(&self) -> Option<u64> {
        let l = self.server.leader.current();
        (!self.serve_locally && l.leader != 0 && !l.is_self).then_some(l.leader)
    }

    /// Forwards to the leader; the answer's header is this member's, as
    /// etcd fills it where the client is.
    fn forward(&self, leader: u64, body: Req, responder: Responder) {
        let deadline = std::time::Instant::now() + self.server.proposer.request_timeout;
        let status = self.server.status.clone();
        let done = move |r: Result<Body, ApiError>| {
            let local = |h: Option<ResponseHeader>| Some(status.header(h.map_or(0, |h| h.revision)));
            responder.answer(r.map(|b| match b {
                Body::LeaseTimeToLive(mut t) => {
                    t.header = local(t.header);
                    Body::LeaseTimeToLive(t)
                }
                Body::MemberAdd(mut m) => {
                    m.header = local(m.header);
                    Body::MemberAdd(m)
                }
                Body::MemberRemove(mut m) => {
                    m.header = local(m.header);
                    Body::MemberRemove(m)
                }
                Body::MemberUpdate(mut m) => {
                    m.header = local(m.header);
                    Body::MemberUpdate(m)
                }
                Body::MemberPromote(mut m) => {
                    m.header = local(m.header);
                    Body::MemberPromote(m)
                }
                other => other,
            }))
        };
        self.server.forwarder.forward(leader, body, deadline, Box::new(done));
    }

    fn read(&self, job: ReadJob, serializable: bool) {
        let sent =
            if serializable { self.server.local_reads.try_send(job) } else { self.server.linear_reads.try_send(job) };
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => job.responder.fail(ApiError::of(ErrorCode::TooManyRequests)),
            Err(TrySendError::Disconnected(job)) => job.responder.fail(ApiError::of(ErrorCode::Stopped)),
        }
    }
}

fn boxed(owner: impl StreamOwner + 'static) -> Box<dyn StreamOwner> {
    Box::new(owner)
}
