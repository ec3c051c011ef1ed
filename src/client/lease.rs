//! Lease calls (etcd's Lease service): grant, revoke, time-to-live, the
//! lease list, and one keep-alive over a short-lived stream.
//!
//! Owns the pairing of lease requests and answers and the retry of a single
//! keep-alive (safe: renewing twice only renews). Never keeps a lease alive
//! in the background: that is `keepalive.rs`. Never retries a grant or a
//! revoke that may have reached the server (`Client::call` decides, as for
//! puts).

use super::conn::CallError;
use super::retry::Backoff;
use super::{Client, ClientError};
use crate::plumbing::ApiError;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp, ErrorCode};
use std::time::Instant;

fn unexpected(wanted: &str, got: &Resp) -> ClientError {
    let got = format!("{got:?}");
    let kind = got.split('(').next().unwrap_or("?");
    ClientError::Protocol(format!("expected a {wanted} answer, got {kind}"))
}

impl Client {
    /// Grants a lease of `ttl` seconds. `id` 0 lets the server choose the
    /// id; another id fails with "etcdserver: lease already exists" if it
    /// is taken. A grant whose connection died after sending is not
    /// retried (it may have been applied).
    pub fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse, ClientError> {
        match self.call(Req::LeaseGrant(LeaseGrantRequest { ttl, id }))? {
            Resp::LeaseGrant(r) => Ok(r),
            other => Err(unexpected("LeaseGrant", &other)),
        }
    }

    /// Revokes a lease, deleting its keys. An unknown lease fails with
    /// "etcdserver: requested lease not found".
    pub fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, ClientError> {
        match self.call(Req::LeaseRevoke(LeaseRevokeRequest { id }))? {
            Resp::LeaseRevoke(r) => Ok(r),
            other => Err(unexpected("LeaseRevoke", &other)),
        }
    }

    /// The remaining and granted TTL of a lease, with its keys if `keys`.
    /// An unknown (expired, revoked) lease is not an error: etcd answers
    /// `TTL` -1 and `grantedTTL` 0.
    pub fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse, ClientError> {
        match self.call(Req::LeaseTimeToLive(LeaseTimeToLiveRequest { id, keys }))? {
            Resp::LeaseTimeToLive(r) => Ok(r),
            other => Err(unexpected("LeaseTimeToLive", &other)),
        }
    }

    /// Every live lease.
    pub fn lease_leases(&self) -> Result<LeaseLeasesResponse, ClientError> {
        match self.call(Req::LeaseLeases(LeaseLeasesRequest {}))? {
            Resp::LeaseLeases(r) => Ok(r),
            other => Err(unexpected("LeaseLeases", &other)),
        }
    }

    /// Renews a lease once: opens a keep-alive stream, sends one request,
    /// reads one answer, ends the stream. Retried (on any endpoint) after a
    /// lost connection or a retryable server error, within the request
    /// timeout. A lease that is gone (the answer's TTL is 0) fails with
    /// `ErrorCode::LeaseNotFound`, as clientv3's `KeepAliveOnce` does.
    pub fn lease_keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse, ClientError> {
        let deadline = Instant::now() + self.options().request_timeout;
        let mut backoff = Backoff::new();
        loop {
            let failure = match self.keep_alive_attempt(id, deadline) {
                Ok(r) if r.ttl <= 0 => return Err(ClientError::Api(ApiError::of(ErrorCode::LeaseNotFound))),
                Ok(r) => return Ok(r),
                Err(e) if is_retryable(&e) => e,
                Err(e) => return Err(e),
            };
            log::debug!("lease keep-alive: retrying after: {failure}");
            if !backoff.wait(deadline) {
                return Err(match failure {
                    e @ ClientError::Api(_) => e,
                    _ => ClientError::Timeout,
                });
            }
        }
    }

    /// One keep-alive on a stream of its own (dropped, hence canceled, on
    /// return).
    fn keep_alive_attempt(&self, id: i64, deadline: Instant) -> Result<LeaseKeepAliveResponse, ClientError> {
        let stream = self.open_stream_until(Req::LeaseKeepAlive(LeaseKeepAliveRequest { id }), 4, deadline)?;
        match stream.recv_deadline(deadline) {
            Ok(Resp::LeaseKeepAlive(r)) => Ok(r),
            Ok(Resp::Error(e)) => Err(ClientError::Api(ApiError::from_proto(&e))),
            Ok(other) => Err(unexpected("LeaseKeepAlive", &other)),
            Err(e) => Err(stream_error(e)),
        }
    }
}

/// A stream failure as the client reports it.
pub(crate) fn stream_error(e: CallError) -> ClientError {
    match e {
        CallError::Timeout => ClientError::Timeout,
        CallError::Lost(reason) | CallError::NotSent(reason) => ClientError::Closed { reason },
        CallError::Protocol(m) => ClientError::Protocol(m),
    }
}

/// Whether a keep-alive that failed so may be tried again: renewing is
/// harmless to repeat, so a lost connection is as good as a retryable
/// server error.
pub(crate) fn is_retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Api(a) => a.is_retryable(),
        ClientError::Closed { .. } => true,
        _ => false,
    }
}
