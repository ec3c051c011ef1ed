//! `Client::snapshot`: receives a member's snapshot stream (etcd's
//! `Maintenance.Snapshot`) into a writer.
//!
//! Owns the reading of the stream: chunks in order, an idle bound per
//! chunk, the end (the chunk with `remaining_bytes` 0). Never checks the
//! image itself (its checksums are `storage::snapshot`'s) and never retries:
//! a snapshot cut short must be taken again from the start.

use super::conn::CallError;
use super::{Client, ClientError};
use crate::plumbing::ApiError;
use crate::proto::etcdserverpb::SnapshotRequest;
use crate::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use std::time::Instant;

/// Answers buffered from the connection before the writer takes them.
const STREAM_CAPACITY: usize = 16;

/// Why a snapshot was not received whole.
#[derive(Debug)]
pub enum SnapshotError {
    /// The call failed (or the server answered with an error).
    Client(ClientError),
    /// The caller's `on_chunk` failed (writing the file, say).
    Write(std::io::Error),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Client(e) => write!(f, "{e}"),
            SnapshotError::Write(e) => write!(f, "{e}"),
        }
    }
}

impl From<ClientError> for SnapshotError {
    fn from(e: ClientError) -> SnapshotError {
        SnapshotError::Client(e)
    }
}

impl Client {
    /// Streams a snapshot of the member this client is connected to:
    /// `on_chunk(bytes, remaining)` takes each piece in order (`remaining`
    /// is the server's estimate, 0 on the last). Returns the bytes
    /// received. Each chunk must arrive, and be taken by `on_chunk`, within
    /// the request timeout. While `on_chunk` is slow, other calls on this
    /// client's connection wait: give a large snapshot a client of its own.
    pub fn snapshot(&self, mut on_chunk: impl FnMut(&[u8], u64) -> std::io::Result<()>) -> Result<u64, SnapshotError> {
        // Flow-controlled: a consumer slower than the server (a slow disk)
        // holds the server back instead of losing the stream.
        let timeout = self.inner.opts.request_timeout;
        let stream = self.open_stream_with(
            Req::Snapshot(SnapshotRequest {}),
            STREAM_CAPACITY,
            Some(timeout),
            Instant::now() + timeout,
        )?;
        let mut received = 0u64;
        loop {
            let deadline = Instant::now() + self.inner.opts.request_timeout;
            let chunk = match stream.recv_deadline(deadline) {
                Ok(Resp::Snapshot(c)) => c,
                Ok(Resp::Error(e)) => return Err(ClientError::Api(ApiError::from_proto(&e)).into()),
                Ok(other) => return Err(super::kv::unexpected("Snapshot", &other).into()),
                Err(CallError::Timeout) => return Err(ClientError::Timeout.into()),
                Err(CallError::Lost(reason)) | Err(CallError::NotSent(reason)) => {
                    return Err(ClientError::Closed { reason }.into())
                }
                Err(CallError::Protocol(m)) => return Err(ClientError::Protocol(m).into()),
            };
            on_chunk(&chunk.blob, chunk.remaining_bytes).map_err(SnapshotError::Write)?;
            received += chunk.blob.len() as u64;
            if chunk.remaining_bytes == 0 {
                return Ok(received);
            }
        }
    }
}
