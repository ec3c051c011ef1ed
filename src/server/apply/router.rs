//! The apply router: decodes each committed entry once and hands it to the
//! applier of its domain (kv, lease, membership, maintenance, auth). Every
//! applier stages its writes in the one `ApplyBatch` of the run of entries
//! (one RocksDB write, with the consistent index), and returns the outcome
//! for the proposer's waiter. After the batch is committed, each applier
//! publishes what it produced (the kv applier's events go to the watch
//! dispatcher).
//!
//! Owns the routing and the outcomes; never interprets a request itself.

use super::kv::KvApplier;
use super::membership::MembershipApplier;
use crate::mvcc::ApplyBatch;
use crate::plumbing::errors::ApiError;
use crate::proto::internalpb::{internal_request::Body as Req, InternalRequest};
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::proto::raftpb::{ConfState, Entry};

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
    /// Applies one request of this domain, staging its writes in `batch`.
    fn apply(&mut self, batch: &mut ApplyBatch<'_>, req: &InternalRequest) -> Applied;
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
        Req::LeaseGrant(_) | Req::LeaseRevoke(_) | Req::LeaseCheckpoint(_) => Domain::Lease,
        Req::Alarm(_) => Domain::Maintenance,
        Req::MemberAttributes(_) => Domain::Membership,
    }
}

/// A domain not built yet: every member answers alike, so the state
/// stays equal.
pub struct NotImplemented(pub &'static str);

impl Applier for NotImplemented {
    fn apply(&mut self, _batch: &mut ApplyBatch<'_>, req: &InternalRequest) -> Applied {
        let e = ApiError::new(ErrorCode::NotImplemented, format!("raftkv: {} is not implemented yet", self.0));
        Ok(Some(Outcome::of(req.id, Err(e))))
    }
}

pub struct Router {
    pub kv: KvApplier,
    pub membership: MembershipApplier,
    pub lease: Box<dyn Applier + Send>,
    pub maintenance: Box<dyn Applier + Send>,
}

impl Router {
    /// Applies a normal entry's request.
    pub fn apply_request(&mut self, batch: &mut ApplyBatch<'_>, req: &InternalRequest) -> Applied {
        let Some(body) = &req.body else {
            let e = ApiError::of(ErrorCode::UnknownRequest);
            return Ok(Some(Outcome::of(req.id, Err(e))));
        };
        match domain_of(body) {
            Domain::Kv => {
                // Lease attach checks ask the lease domain (none exist yet:
                // a put naming one is refused as etcd refuses an unknown lease).
                batch.set_lease_check(|_| false);
                self.kv.apply(batch, req)
            }
            Domain::Lease => self.lease.apply(batch, req),
            Domain::Maintenance => self.maintenance.apply(batch, req),
            Domain::Membership => self.membership.apply(batch, req),
        }
    }

    /// Applies a configuration-change entry (already applied to the core,
    /// which produced `cs`).
    pub fn apply_conf_change(&mut self, batch: &mut ApplyBatch<'_>, e: &Entry, cs: &ConfState) -> Applied {
        self.membership.apply_conf_change(batch, e, cs)
    }

    pub fn committed(&mut self) {
        self.kv.committed();
        self.membership.committed();
        self.lease.committed();
        self.maintenance.committed();
    }

    pub fn aborted(&mut self) {
        self.kv.aborted();
        self.membership.aborted();
        self.lease.aborted();
        self.maintenance.aborted();
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
