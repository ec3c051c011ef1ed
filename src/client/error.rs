//! The client's error type.
//!
//! Owns the classification of everything that can go wrong in a call and its
//! etcd-like text (`Display`), so raftkvctl can print errors as etcdctl does.
//! Never decides about retries: that is `retry.rs`'s job.

use crate::plumbing::ApiError;
use std::fmt;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with an error; its code and message are kept.
    Api(ApiError),
    /// No endpoint could be reached (only from `Client::connect`, which
    /// insists on one live connection; calls report `Timeout` instead).
    Connect { endpoint: String, reason: String },
    /// The call's deadline (`request_timeout`) passed. For a write the outcome
    /// is unknown: it may or may not have been applied.
    Timeout,
    /// The connection closed after the request may have been sent. For a
    /// write the outcome is unknown; reads are retried before this surfaces.
    Closed { reason: String },
    /// The peer broke the protocol (undecodable or unexpected answer, or an
    /// answer over the response size limit).
    Protocol(String),
    /// The request is larger than `max_request_bytes`; it was not sent.
    RequestTooLarge { size: usize, max: usize },
    /// An endpoint string that is not `HOST:PORT` (optionally `http://`).
    InvalidEndpoint(String),
}

impl ClientError {
    /// The server's error, if the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ApiError> for ClientError {
    fn from(e: ApiError) -> ClientError {
        ClientError::Api(e)
    }
}

impl fmt::Display for ClientError {
    // The texts follow what etcd's Go client prints in the same situation,
    // so that raftkvctl's `Error: ...` lines read like etcdctl's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Api(e) => write!(f, "{}", e.message),
            ClientError::Connect { endpoint, reason } => write!(
                f,
                "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing dial tcp {endpoint}: {reason}\""
            ),
            ClientError::Timeout => f.write_str("context deadline exceeded"),
            ClientError::Closed { reason } => {
                write!(f, "rpc error: code = Unavailable desc = transport is closing ({reason})")
            }
            ClientError::Protocol(m) => write!(f, "rpc error: code = Internal desc = {m}"),
            ClientError::RequestTooLarge { size, max } => write!(
                f,
                "rpc error: code = ResourceExhausted desc = trying to send message larger than max ({size} vs. {max})"
            ),
            ClientError::InvalidEndpoint(ep) => write!(f, "invalid endpoint {ep:?}: expected HOST:PORT"),
        }
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftkvpb::ErrorCode;

    #[test]
    fn display_is_etcd_like() {
        assert_eq!(ClientError::Timeout.to_string(), "context deadline exceeded");
        assert_eq!(ClientError::Api(ApiError::of(ErrorCode::KeyNotFound)).to_string(), "etcdserver: key not found");
        assert_eq!(
            ClientError::RequestTooLarge { size: 2097163, max: 2097152 }.to_string(),
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max (2097163 vs. 2097152)"
        );
    }
}
