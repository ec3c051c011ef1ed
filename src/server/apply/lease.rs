//! The lease applier: LeaseGrant, LeaseRevoke, renewals (LeaseCheckpoint)
//! and revocations for expiry (LeaseExpire), on the shared `LeaseTable`
//! and the `lease` column family (ID as 8 bytes big-endian ->
//! `LeaseRecord`). A revocation deletes the lease's keys in one revision
//! of the same batch; their events go to watchers like any delete's.
//!
//! Every member computes the same table: the TTL in an entry is final
//! (the proposer raised it to the minimum), and only the deadlines are this
//! member's own (restarted when an entry is applied here). Owns the `lease`
//! column family's part of the batch; never proposes anything.

use super::router::{Applied, Applier, Outcome};
use crate::lease::table::LeaseTable;
use crate::lease::MAX_LEASES;
use crate::mvcc::{ApplyBatch, KvStore};
use crate::plumbing::errors::ApiError;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseRevokeResponse, RangeRequest,
};
use crate::proto::internalpb::{internal_request::Body as Req, InternalRequest, LeaseRecord};
use crate::proto::mvccpb::Event;
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::server::status::NodeStatus;
use crate::storage::db::CF_LEASE;
use crate::storage::Db;
use bytes::Bytes;
use prost::Message as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Key bytes per chunk while finding the attached keys at start.
const LOAD_CHUNK_BYTES: usize = 4 << 20;

pub struct LeaseApplier {
    db: Arc<Db>,
    kv: Arc<KvStore>,
    status: Arc<NodeStatus>,
    table: Arc<Mutex<LeaseTable>>,
}

impl LeaseApplier {
    /// Loads the leases from the `lease` column family and their keys from
    /// the keyspace; every clock starts now with the remaining TTL stored.
    pub fn open(db: Arc<Db>, kv: Arc<KvStore>, status: Arc<NodeStatus>) -> Result<LeaseApplier, String> {
        let a = LeaseApplier { db, kv, status, table: Arc::new(Mutex::new(LeaseTable::new())) };
        a.load()?;
        Ok(a)
    }

    /// The table, shared with the lessor and the read workers.
    pub fn table(&self) -> &Arc<Mutex<LeaseTable>> {
        &self.table
    }

    fn lock(&self) -> MutexGuard<'_, LeaseTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads the table (after a snapshot replaced the column families).
    pub fn reload(&mut self) -> Result<(), String> {
        self.load()
    }

    fn load(&self) -> Result<(), String> {
        let now = Instant::now();
        let mut table = LeaseTable::new();
        for item in self.db.raw().iterator_cf(self.db.cf(CF_LEASE), rocksdb::IteratorMode::Start) {
            let (_, v) = item.map_err(|e| format!("reading leases: {e}"))?;
            let r = LeaseRecord::decode(&*v).map_err(|e| format!("a lease record does not decode: {e}"))?;
            table.grant(r.id, r.ttl, r.remaining_ttl, r.renewals, now);
        }
        if !table.is_empty() {
            let all =
                RangeRequest { key: vec![0].into(), range_end: vec![0].into(), keys_only: true, ..Default::default() };
            let chunks =
                self.kv.range_chunks(&all, LOAD_CHUNK_BYTES).map_err(|e| format!("finding leased keys: {e}"))?;
            for chunk in chunks {
                let chunk = chunk.map_err(|e| format!("finding leased keys: {e}"))?;
                for kv in chunk.kvs.into_iter().filter(|kv| kv.lease != 0) {
                    table.attach(kv.key, kv.lease);
                }
            }
        }
        *self.lock() = table;
        Ok(())
    }

    /// Follows the keyspace's changes (attachments move with puts and
    /// deletes).
    pub fn track(&self, events: &[Event]) {
        self.lock().track(events);
    }

    fn persist(&self, batch: &mut ApplyBatch<'_>, r: &LeaseRecord) {
        batch.write_batch().put_cf(self.db.cf(CF_LEASE), (r.id as u64).to_be_bytes(), r.encode_to_vec());
    }

    fn header(&self, batch: &ApplyBatch<'_>) -> Option<crate::proto::etcdserverpb::ResponseHeader> {
        Some(self.status.header(batch.revision()))
    }

    fn grant(&self, batch: &mut ApplyBatch<'_>, g: &LeaseGrantRequest) -> Result<Body, ApiError> {
        {
            let mut t = self.lock();
            if t.contains(g.id) {
                return Err(ApiError::of(ErrorCode::LeaseExist));
            }
            if t.len() >= MAX_LEASES {
                let m = format!("etcdserver: too many requests (at most {MAX_LEASES} leases)");
                return Err(ApiError::new(ErrorCode::TooManyRequests, m));
            }
            t.grant(g.id, g.ttl, g.ttl, 1, Instant::now());
        }
        self.persist(batch, &LeaseRecord { id: g.id, ttl: g.ttl, remaining_ttl: g.ttl, renewals: 1 });
        Ok(Body::LeaseGrant(LeaseGrantResponse {
            header: self.header(batch),
            id: g.id,
            ttl: g.ttl,
            error: String::new(),
        }))
    }

    /// Revokes lease `id` if it exists: its keys are deleted in one
    /// revision. Ok(false) when there is no such lease.
    fn revoke(&self, batch: &mut ApplyBatch<'_>, id: i64, events: &mut Vec<Event>) -> Result<bool, String> {
        let Some(lease) = self.lock().revoke(id) else { return Ok(false) };
        let keys: Vec<Bytes> = lease.keys.into_iter().collect();
        let evs = batch.delete_keys(&keys).map_err(|e| format!("revoking lease {id:x}: {e}"))?;
        events.extend(evs);
        batch.write_batch().delete_cf(self.db.cf(CF_LEASE), (id as u64).to_be_bytes());
        Ok(true)
    }
}

impl Applier for LeaseApplier {
    fn apply(&mut self, batch: &mut ApplyBatch<'_>, req: &InternalRequest, events: &mut Vec<Event>) -> Applied {
        let result = match &req.body {
            Some(Req::LeaseGrant(g)) => self.grant(batch, g),
            Some(Req::LeaseRevoke(r)) => match self.revoke(batch, r.id, events)? {
                true => Ok(Body::LeaseRevoke(LeaseRevokeResponse { header: self.header(batch) })),
                false => Err(ApiError::of(ErrorCode::LeaseNotFound)),
            },
            Some(Req::LeaseCheckpoint(c)) => {
                let now = Instant::now();
                let mut renewed = Vec::with_capacity(c.checkpoints.len());
                {
                    let mut t = self.lock();
                    for cp in &c.checkpoints {
                        let Some(ttl) = t.get(cp.id).map(|l| l.ttl) else { continue };
                        // A keep-alive's renewal names no TTL: the granted one.
                        let remaining = if cp.remaining_ttl > 0 { cp.remaining_ttl.min(ttl) } else { ttl };
                        if let Some(renewals) = t.renew(cp.id, remaining, now) {
                            renewed.push(LeaseRecord { id: cp.id, ttl, remaining_ttl: remaining, renewals });
                        }
                    }
                }
                for r in &renewed {
                    self.persist(batch, r);
                }
                Ok(Body::LeaseKeepAlive(LeaseKeepAliveResponse { header: self.header(batch), ..Default::default() }))
            }
            Some(Req::LeaseExpire(x)) => {
                for e in &x.leases {
                    // Renewed since the leader decided: not expired after all.
                    let still_due = self.lock().get(e.id).is_some_and(|l| l.renewals == e.renewals);
                    if still_due {
                        self.revoke(batch, e.id, events)?;
                    }
                }
                Ok(Body::LeaseRevoke(LeaseRevokeResponse { header: self.header(batch) }))
            }
            _ => return Ok(None),
        };
        Ok(Some(Outcome::of(req.id, result)))
    }

    fn aborted(&mut self) {
        // The node stops after a failed batch; until then the table must not
        // keep what the batch staged.
        if let Err(e) = self.load() {
            log::error!("reloading leases after a failed batch: {e}");
        }
    }
}
