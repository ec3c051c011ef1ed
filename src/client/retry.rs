//! When a failed call may be tried again, and how long to wait before.
//!
//! Owns the safety rule: a read (Range, a Txn made only of ranges, Status,
//! a lease's time-to-live, the lease list) may be retried on a connection
//! failure or a retryable server error; a write (lease grant and revoke
//! included) only if it provably never left this process. Never performs
//! I/O.

use crate::proto::etcdserverpb::{request_op, TxnRequest};
use crate::proto::raftkvpb::client_request::Body;
use std::time::{Duration, Instant};

/// Whether `body` changes nothing on the server, so sending it twice is
/// harmless.
pub fn is_read_only(body: &Body) -> bool {
    match body {
        Body::Range(_) | Body::Status(_) | Body::LeaseTimeToLive(_) | Body::LeaseLeases(_) => true,
        Body::Txn(t) => txn_is_read_only(t),
        // Writes. A lease grant sent twice may create two leases (ID 0: the
        // server picks) or fail with "lease already exists"; a revoke sent
        // twice fails with "lease not found". Keep-alives are streams: they
        // never go through `call` (lease.rs retries them itself).
        _ => false,
    }
}

fn txn_is_read_only(t: &TxnRequest) -> bool {
    t.success.iter().chain(t.failure.iter()).all(|op| match &op.request {
        Some(request_op::Request::RequestRange(_)) => true,
        Some(request_op::Request::RequestTxn(inner)) => txn_is_read_only(inner),
        Some(_) => false,
        // An empty op changes nothing.
        None => true,
    })
}

/// Waits between attempts: none before the first retry (failover should be
/// quick), then doubling from 10 ms up to 500 ms.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { next: Duration::ZERO }
    }

    /// Sleeps before the next attempt. Returns false (without sleeping) when
    /// the wait would end past `deadline`.
    pub fn wait(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now + self.next >= deadline {
            return false;
        }
        if !self.next.is_zero() {
            std::thread::sleep(self.next);
        }
        self.next = if self.next.is_zero() {
            Duration::from_millis(10)
        } else {
            (self.next * 2).min(Duration::from_millis(500))
        };
        true
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{
        CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, LeaseLeasesRequest, LeaseRevokeRequest,
        LeaseTimeToLiveRequest, PutRequest, RangeRequest, RequestOp, StatusRequest,
    };

    fn op(r: request_op::Request) -> RequestOp {
        RequestOp { request: Some(r) }
    }

    #[test]
    fn reads_and_writes_are_told_apart() {
        assert!(is_read_only(&Body::Range(RangeRequest::default())));
        assert!(is_read_only(&Body::Status(StatusRequest::default())));
        assert!(!is_read_only(&Body::Put(PutRequest::default())));
        assert!(!is_read_only(&Body::DeleteRange(DeleteRangeRequest::default())));
        assert!(!is_read_only(&Body::Compact(CompactionRequest::default())));
        assert!(is_read_only(&Body::LeaseTimeToLive(LeaseTimeToLiveRequest::default())));
        assert!(is_read_only(&Body::LeaseLeases(LeaseLeasesRequest::default())));
        assert!(!is_read_only(&Body::LeaseGrant(LeaseGrantRequest::default())));
        assert!(!is_read_only(&Body::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 7 })));
        assert!(!is_read_only(&Body::LeaseRevoke(LeaseRevokeRequest::default())));
        let read_txn = TxnRequest {
            success: vec![op(request_op::Request::RequestRange(RangeRequest::default()))],
            failure: vec![op(request_op::Request::RequestTxn(TxnRequest {
                success: vec![op(request_op::Request::RequestRange(RangeRequest::default()))],
                ..Default::default()
            }))],
            ..Default::default()
        };
        assert!(is_read_only(&Body::Txn(read_txn.clone())));
        let mut write_txn = read_txn;
        write_txn.failure.push(op(request_op::Request::RequestPut(PutRequest::default())));
        assert!(!is_read_only(&Body::Txn(write_txn.clone())));
        let nested_write =
            TxnRequest { success: vec![op(request_op::Request::RequestTxn(write_txn))], ..Default::default() };
        assert!(!is_read_only(&Body::Txn(nested_write)));
    }

    #[test]
    fn backoff_never_overruns_the_deadline() {
        let mut b = Backoff::new();
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut attempts = 0;
        while b.wait(deadline) {
            attempts += 1;
            assert!(attempts < 20);
        }
        assert!(Instant::now() <= deadline + Duration::from_millis(20));
        assert!(attempts >= 2, "the first retry is immediate, then short waits");
    }
}
