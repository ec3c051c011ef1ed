//! The backend quota (etcd's `--quota-backend-bytes`): whether a write of
//! some cost still fits, checked where requests come in, as etcd checks
//! it. The database size is sampled at most every `SAMPLE_EVERY` (reading
//! RocksDB's properties per request would cost more than the check is
//! worth; etcd's own size refreshes about as often).
//!
//! Owns the estimate and the costs; never raises the alarm itself.

use crate::proto::etcdserverpb::{request_op, PutRequest, TxnRequest};
use crate::storage::Db;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// etcd's per-put overhead in its cost model.
const PUT_OVERHEAD: u64 = 256;
/// etcd's cost of a lease grant.
pub const LEASE_COST: u64 = 64;

pub struct Quota {
    db: Arc<Db>,
    bytes: u64,
    size: AtomicU64,
    sampled: Mutex<Option<Instant>>,
}

impl Quota {
    pub fn new(db: Arc<Db>, bytes: u64) -> Quota {
        Quota { db, bytes, size: AtomicU64::new(0), sampled: Mutex::new(None) }
    }

    /// The database size, at most `SAMPLE_EVERY` old.
    pub fn db_size(&self) -> u64 {
        if let Ok(mut at) = self.sampled.try_lock() {
            if !at.is_some_and(|t| t.elapsed() < SAMPLE_EVERY) {
                self.sample(&mut at);
            }
        }
        self.size.load(Ordering::Relaxed)
    }

    /// Samples the size now (after a defragmentation changed it).
    pub fn refresh(&self) {
        self.sample(&mut self.sampled.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn sample(&self, at: &mut Option<Instant>) {
        self.size.store(self.db.state_machine_size(), Ordering::Relaxed);
        *at = Some(Instant::now());
    }

    /// Whether a write of `cost` bytes fits (etcd: size + cost < quota).
    pub fn available(&self, cost: u64) -> bool {
        cost == 0 || self.db_size().saturating_add(cost) < self.bytes
    }
}

pub fn put_cost(p: &PutRequest) -> u64 {
    PUT_OVERHEAD + p.key.len() as u64 + p.value.len() as u64
}

/// The larger of the two branches' put costs (nested included).
pub fn txn_cost(t: &TxnRequest) -> u64 {
    let branch = |ops: &[crate::proto::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => put_cost(p),
                Some(request_op::Request::RequestTxn(inner)) => txn_cost(inner),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}
