//! The apply router: decodes each committed entry once and hands it to the
//! applier of its domain (kv, lease, membership, maintenance, auth). Every
//! applier stages its writes in the one `ApplyBatch` of the run of entries
//! (one RocksDB write, with the consistent index), and returns the outcome
//! for the proposer's waiter. The keyspace's events (of kv requests and of
//! lease revocations) are collected here: the lease applier follows them
//! (attachments), and once the batch is committed they go to the watch
//! dispatcher, so a watcher never sees a revision a reader cannot.
//!
//! Owns the routing, the batch's events and the outcomes; never interprets
//! a request itself, never waits for the watch dispatcher (the feed never
//! blocks).

use super::alarm::AlarmApplier;
use super::kv::KvApplier;
use super::lease::LeaseApplier;
use super::membership::MembershipApplier;
use crate::mvcc::ApplyBatch;
use crate::plumbing::errors::ApiError;
use crate::proto::internalpb::{internal_request::Body as Req, InternalRequest};
use crate::proto::mvccpb::Event;
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::proto::raftpb::{ConfState, Entry};
use crate::server::alarms::AlarmSet;
use crate::watch::EventFeed;
use std::sync::Arc;

/// The outcome of one request, for the waiter on its proposing member.
#[derive(Debug)]
pub struct Outcome {
    /// The proposal's id (its waiter).
    pub id: u64,
    pub result: Result<Body, ApiError>,
    /// A compaction with `physical: true` is answered only once the old
    /// revisions are gone.
    pub wait_physical: Option<i64>,
}

impl Outcome {
    pub fn of(id: u64, result: Result<Body, ApiError>) -> Outcome {
        Outcome { id, result, wait_physical: None }
    }
}

/// An applier's verdict on one request: an outcome for its waiter (if
/// anyone waits), or a storage failure that must stop the node (replicas
/// must never diverge).
pub type Applied = Result<Option<Outcome>, String>;

/// A part of the state machine with its own column families.
pub trait Applier {
    /// Applies one request of this domain, staging its writes in `batch`;
    /// the keyspace's events it caused go to `events`.
    fn apply(&mut self, batch: &mut ApplyBatch<'_>, req: &InternalRequest, events: &mut Vec<Event>) -> Applied;
    /// The batch holding this domain's writes was committed.
    fn committed(&mut self) {}
    /// The batch was abandoned (a storage failure): forget what was staged.
    fn aborted(&mut self) {}
}

/// The domains a request may belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Kv,
    Lease,
    Maintenance,
    Membership,
}

pub fn domain_of(body: &Req) -> Domain {
    match body {
        Req::Put(_) | Req::DeleteRange(_) | Req::Txn(_) | Req::Compaction(_) => Domain::Kv,
        Req::LeaseGrant(_) | Req::LeaseRevoke(_) | Req::LeaseCheckpoint(_) | Req::LeaseExpire(_) => Domain::Lease,
        Req::Alarm(_) => Domain::Maintenance,
        Req::MemberAttributes(_) => Domain::Membership,
    }
}

pub struct Router {
    pub kv: KvApplier,
    pub membership: MembershipApplier,
    pub lease: LeaseApplier,
    pub maintenance: AlarmApplier,
    /// The active alarms: what they forbid is refused here, before any
    /// applier sees it, so every member refuses alike.
    alarms: Arc<AlarmSet>,
    /// Where committed events go (none in tests that do not watch).
    feed: Option<EventFeed>,
    /// The events of the batch being applied, in revision order.
    events: Vec<Event>,
}

impl Router {
    pub fn new(
        kv: KvApplier,
        membership: MembershipApplier,
        lease: LeaseApplier,
        maintenance: AlarmApplier,
        alarms: Arc<AlarmSet>,
        feed: Option<EventFeed>,
    ) -> Router {
        Router { kv, membership, lease, maintenance, alarms, feed, events: Vec::new() }
    }

    /// Prepares a new batch: puts naming a lease ask the lease table (as it
    /// is at that point of the batch).
    pub fn begin(&self, batch: &mut ApplyBatch<'_>) {
        let table = self.lease.table().clone();
        batch.set_lease_check(move |id| table.lock().unwrap_or_else(|e| e.into_inner()).contains(id));
    }

    /// Applies a normal entry's request.
    pub fn apply_request(&mut self, batch: &mut ApplyBatch<'_>, req: &InternalRequest) -> Applied {
        let Some(body) = &req.body else {
            let e = ApiError::of(ErrorCode::UnknownRequest);
            return Ok(Some(Outcome::of(req.id, Err(e))));
        };
        if let Some(e) = self.alarms.refuses(body) {
            return Ok(Some(Outcome::of(req.id, Err(e))));
        }
        let start = self.events.len();
        let applied = match domain_of(body) {
            Domain::Kv => self.kv.apply(batch, req, &mut self.events),
            Domain::Lease => self.lease.apply(batch, req, &mut self.events),
            Domain::Maintenance => self.maintenance.apply(batch, req, &mut self.events),
            Domain::Membership => self.membership.apply(batch, req, &mut self.events),
        };
        if self.events.len() > start {
            self.lease.track(&self.events[start..]);
        }
        applied
    }

    /// Applies a configuration-change entry (already applied to the core,
    /// which produced `cs`).
    pub fn apply_conf_change(&mut self, batch: &mut ApplyBatch<'_>, e: &Entry, cs: &ConfState) -> Applied {
        self.membership.apply_conf_change(batch, e, cs)
    }

    /// The batch was committed: its events go to the watch dispatcher.
    pub fn committed(&mut self) {
        let events = std::mem::take(&mut self.events);
        if let Some(feed) = &self.feed {
            feed.publish(events);
        }
        self.kv.committed();
        self.membership.committed();
        self.lease.committed();
        self.maintenance.committed();
    }

    pub fn aborted(&mut self) {
        self.events.clear();
        self.kv.aborted();
        self.membership.aborted();
        self.lease.aborted();
        self.maintenance.aborted();
    }

    /// A snapshot replaced the state machine: reload what appliers keep in
    /// memory.
    pub fn reload(&mut self) -> Result<(), String> {
        self.membership.reload()?;
        self.maintenance.reload()?;
        self.lease.reload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{AlarmRequest, LeaseGrantRequest, PutRequest};

    #[test]
    fn every_request_kind_has_a_domain() {
        assert_eq!(domain_of(&Req::Put(PutRequest::default())), Domain::Kv);
        assert_eq!(domain_of(&Req::LeaseGrant(LeaseGrantRequest::default())), Domain::Lease);
        assert_eq!(domain_of(&Req::Alarm(AlarmRequest::default())), Domain::Maintenance);
        assert_eq!(domain_of(&Req::MemberAttributes(Default::default())), Domain::Membership);
    }
}
