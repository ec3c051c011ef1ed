//! Read workers: serve reads from the local state machine (serializable
//! reads at once, linearizable ones once their read index is applied), the
//! Status request, and the wait of a physical compaction. A small pool, so a
//! large range never stalls the I/O thread or the apply thread.

use super::msgs::{ReadJob, ReadKind};
use super::status::NodeStatus;
use crate::lease::LeaseTable;
use crate::mvcc::KvStore;
use crate::plumbing::ApiError;
use crate::proto::etcdserverpb::{
    HashKvResponse, LeaseLeasesResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    MemberListResponse, StatusResponse,
};
use crate::proto::raftkvpb::client_response::Body;
use crate::storage::Db;
use crossbeam_channel::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The version reported by Status: etcd's numbering, because clients gate
/// features on it (kube-apiserver among them); raftkv serves etcd 3.5's
/// API. raftkv's own version is `RAFTKV_VERSION`.
pub const VERSION: &str = "3.5.0";
/// raftkv's own version.
pub const RAFTKV_VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct ReadWorker {
    pub rx: Receiver<ReadJob>,
    /// Held shared while reading: a snapshot install holds it alone.
    pub gate: Arc<std::sync::RwLock<()>>,
    pub kv: Arc<KvStore>,
    pub db: Arc<Db>,
    pub status: Arc<NodeStatus>,
    pub leases: Arc<Mutex<LeaseTable>>,
    pub alarms: Arc<super::alarms::AlarmSet>,
    pub request_timeout: Duration,
}

impl ReadWorker {
    /// Status's `errors`, as etcd fills them: no leader, then the alarms.
    fn status_errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.status.leader() == 0 {
            errors.push("etcdserver: no leader".to_string());
        }
        errors.extend(self.alarms.errors());
        errors
    }

    /// Serves until every sender is gone.
    pub fn run(self) {
        for job in self.rx.iter() {
            let result = {
                let _shared = self.gate.read().unwrap_or_else(|e| e.into_inner());
                self.serve(job.kind)
            };
            job.responder.answer(result);
        }
    }

    fn serve(&self, kind: ReadKind) -> Result<Body, ApiError> {
        let mvcc = |e: crate::mvcc::MvccError| ApiError::new(e.code(), e.to_string());
        match kind {
            ReadKind::Range(r) => {
                let mut resp = self.kv.range(&r).map_err(mvcc)?;
                resp.header = Some(self.status.header(resp.header.map_or(0, |h| h.revision)));
                Ok(Body::Range(resp))
            }
            ReadKind::Txn(t) => {
                let mut resp = self.kv.txn_read(&t).map_err(mvcc)?;
                resp.header = Some(self.status.header(resp.header.map_or(0, |h| h.revision)));
                Ok(Body::Txn(resp))
            }
            ReadKind::Status => {
                let size = self.db.approximate_size() as i64;
                Ok(Body::Status(StatusResponse {
                    header: Some(self.status.header(self.kv.current_revision())),
                    version: VERSION.to_string(),
                    db_size: size,
                    leader: self.status.leader(),
                    raft_index: self.status.raft_index(),
                    raft_term: self.status.term(),
                    raft_applied_index: self.status.applied(),
                    errors: self.status_errors(),
                    db_size_in_use: size,
                    is_learner: self.status.is_learner(),
                }))
            }
            ReadKind::HashKv(revision) => {
                let h = self.kv.hash_kv(revision).map_err(mvcc)?;
                Ok(Body::HashKv(HashKvResponse {
                    header: Some(self.status.header(self.kv.current_revision())),
                    hash: h.hash,
                    // etcd: -1 until the first compaction.
                    compact_revision: if h.compact_revision == 0 { -1 } else { h.compact_revision },
                    hash_revision: h.hash_revision,
                }))
            }
            ReadKind::MemberList => {
                let members = super::members::load(&self.db).map_err(|e| ApiError::internal(e.to_string()))?;
                // etcd's member list header carries no revision.
                Ok(Body::MemberList(MemberListResponse { header: Some(self.status.header(0)), members }))
            }
            ReadKind::LeaseTimeToLive(req) => Ok(Body::LeaseTimeToLive(self.time_to_live(&req))),
            ReadKind::LeaseLeases => {
                let ids = self.leases.lock().unwrap_or_else(|e| e.into_inner()).ids();
                Ok(Body::LeaseLeases(LeaseLeasesResponse {
                    header: Some(self.status.header(self.kv.current_revision())),
                    leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
                }))
            }
            ReadKind::PhysicalCompaction { revision, response } => {
                self.kv.wait_compacted(revision, self.request_timeout).map_err(mvcc)?;
                Ok(Body::Compact(response))
            }
        }
    }

    /// The lease's remaining TTL by this member's clock (restarted when it
    /// applied the lease's last renewal, as the leader's was), its granted
    /// TTL and, if asked, its keys. An unknown lease answers TTL -1, as etcd.
    fn time_to_live(&self, req: &LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse {
        let header = Some(self.status.header(self.kv.current_revision()));
        let t = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        match t.get(req.id) {
            Some(l) => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: l.remaining_secs(std::time::Instant::now()),
                granted_ttl: l.ttl,
                keys: if req.keys { l.keys.iter().cloned().collect() } else { Vec::new() },
            },
            None => LeaseTimeToLiveResponse { header, id: req.id, ttl: -1, ..Default::default() },
        }
    }
}
