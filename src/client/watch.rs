//! Watches from the client's side: one watcher per stream, resumed after a
//! disconnect or a failover from the last revision it delivered + 1, as
//! etcd's clientv3 does, with fragments reassembled and compaction surfaced
//! as an error.
//!
//! Owns the watcher's position (`next_rev`) and the reconnect loop; never
//! delivers an event twice or skips one: after a resume, events below
//! `next_rev` (there are none, the server starts there) would be dropped.

use super::conn::{CallError, Stream};
use super::{Client, ClientError};
use crate::plumbing::errors::ApiError;
use crate::proto::etcdserverpb::{
    watch_request::RequestUnion, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use crate::proto::raftkvpb::{client_request, client_response, ErrorCode};
use std::time::{Duration, Instant};

/// Answers buffered per stream before a slow consumer is cut off (and
/// resumed from its position).
const STREAM_CAPACITY: usize = 1024;
/// Pause between reconnect attempts.
const RESUME_BACKOFF: Duration = Duration::from_millis(100);

/// What `Watch::next` returns.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchUpdate {
    /// Events (whole revisions, fragments reassembled), in order.
    Events(WatchResponse),
    /// A progress notification: everything up to `header.revision` that
    /// this watcher wants has been delivered.
    Progress(WatchResponse),
}

/// One watcher on its own stream.
pub struct Watch {
    client: Client,
    create: WatchCreateRequest,
    stream: Option<Stream>,
    watch_id: i64,
    /// The first revision not delivered yet (0 until known).
    next_rev: i64,
    /// Fragments of a revision still arriving.
    partial: Option<WatchResponse>,
    /// The stream was resumed since `next` last returned.
    resumed: bool,
    /// The server's cancel response, once the watch was canceled.
    canceled: Option<WatchResponse>,
}

impl Client {
    /// Creates a watcher and waits (within the request timeout) for the
    /// server to confirm it. A create the server refuses (empty range,
    /// duplicate id, too many watchers) fails with its reason.
    pub fn watch(&self, create: WatchCreateRequest) -> Result<Watch, ClientError> {
        let mut w = Watch {
            client: self.clone(),
            next_rev: create.start_revision,
            create,
            stream: None,
            watch_id: 0,
            partial: None,
            resumed: false,
            canceled: None,
        };
        w.open(Instant::now() + self.options().request_timeout)?;
        Ok(w)
    }
}

impl Watch {
    /// The watch id the server gave (on the current stream).
    pub fn watch_id(&self) -> i64 {
        self.watch_id
    }

    /// The endpoint the watch is open on now, if connected.
    pub fn endpoint(&self) -> Option<&str> {
        self.stream.as_ref().map(|s| s.endpoint())
    }

    /// The first revision not delivered yet.
    pub fn next_revision(&self) -> i64 {
        self.next_rev
    }

    /// The server's response that canceled this watch (compaction, or a
    /// refused create), as it came: etcdctl prints it. `None` while the
    /// watch is live.
    pub fn cancel_response(&self) -> Option<&WatchResponse> {
        self.canceled.as_ref()
    }

    /// Whether the stream was re-opened since the last call (a resume).
    pub fn take_resumed(&mut self) -> bool {
        std::mem::take(&mut self.resumed)
    }

    fn open(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let mut create = self.create.clone();
        create.start_revision = self.next_rev;
        let body =
            client_request::Body::Watch(WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) });
        let stream = self.client.open_stream(body, STREAM_CAPACITY)?;
        match stream.recv_deadline(deadline) {
            Ok(client_response::Body::Watch(r)) if r.created => {
                if r.canceled {
                    let reason = r.cancel_reason.clone();
                    self.canceled = Some(r);
                    return Err(ClientError::Api(ApiError::new(ErrorCode::WatchCanceled, reason)));
                }
                self.watch_id = r.watch_id;
                if self.next_rev == 0 {
                    // "From now": resume after what was current then.
                    self.next_rev = r.header.map_or(0, |h| h.revision) + 1;
                }
                self.stream = Some(stream);
                Ok(())
            }
            Ok(client_response::Body::Error(e)) => Err(ClientError::Api(ApiError::from_proto(&e))),
            Ok(other) => Err(ClientError::Protocol(format!("unexpected answer to a watch: {other:?}"))),
            Err(CallError::Timeout) => Err(ClientError::Timeout),
            Err(CallError::Lost(reason)) | Err(CallError::NotSent(reason)) => Err(ClientError::Closed { reason }),
            Err(CallError::Protocol(m)) => Err(ClientError::Protocol(m)),
        }
    }

    /// Asks the server for a progress notification on this stream.
    pub fn request_progress(&self) -> Result<(), ClientError> {
        let Some(stream) = &self.stream else { return Err(ClientError::Closed { reason: "not connected".into() }) };
        let body = client_request::Body::Watch(WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
        });
        let deadline = Instant::now() + self.client.options().request_timeout;
        stream.send(&body, deadline).map_err(|e| ClientError::Closed { reason: format!("{e:?}") })
    }

    /// The next update, waiting until `deadline` (`Ok(None)` then). A lost
    /// connection is resumed from `next_revision` on any endpoint, within
    /// the deadline. Errors: the watch was canceled by the server
    /// (compaction: `ErrorCode::Compacted` with the compact revision in the
    /// message), or a protocol failure.
    pub fn next(&mut self, deadline: Instant) -> Result<Option<WatchUpdate>, ClientError> {
        loop {
            if self.stream.is_none() {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                if let Err(e) = self.open(deadline) {
                    match e {
                        ClientError::Api(ref a) if a.code == ErrorCode::WatchCanceled => return Err(e),
                        ClientError::Api(ref a) if !a.is_retryable() => return Err(e),
                        _ => {
                            log::debug!("watch: resuming at revision {} failed: {e}", self.next_rev);
                            std::thread::sleep(RESUME_BACKOFF.min(deadline.saturating_duration_since(Instant::now())));
                            continue;
                        }
                    }
                }
                self.resumed = true;
            }
            let Some(stream) = &self.stream else { continue };
            match stream.recv_deadline(deadline) {
                Ok(client_response::Body::Watch(r)) => {
                    if let Some(update) = self.on_response(r)? {
                        return Ok(Some(update));
                    }
                }
                Ok(client_response::Body::Error(e)) => {
                    let e = ApiError::from_proto(&e);
                    if !e.is_retryable() {
                        return Err(ClientError::Api(e));
                    }
                    self.stream = None;
                }
                Ok(other) => return Err(ClientError::Protocol(format!("unexpected answer on a watch: {other:?}"))),
                Err(CallError::Timeout) => return Ok(None),
                // Lost connection, or this consumer fell too far behind:
                // resume from the position.
                Err(_) => {
                    self.stream = None;
                    self.partial = None;
                }
            }
        }
    }

    fn on_response(&mut self, r: WatchResponse) -> Result<Option<WatchUpdate>, ClientError> {
        if r.watch_id != self.watch_id && r.watch_id != crate::watch::INVALID_WATCH_ID {
            return Ok(None);
        }
        if r.canceled {
            self.stream = None;
            self.canceled = Some(r.clone());
            if r.compact_revision != 0 {
                return Err(ClientError::Api(ApiError::new(
                    ErrorCode::Compacted,
                    format!("{} (compact revision {})", ApiError::of(ErrorCode::Compacted).message, r.compact_revision),
                )));
            }
            let reason = if r.cancel_reason.is_empty() { "watch canceled".to_string() } else { r.cancel_reason };
            return Err(ClientError::Api(ApiError::new(ErrorCode::WatchCanceled, reason)));
        }
        if r.created {
            return Ok(None);
        }
        let r = match self.partial.take() {
            Some(mut first) => {
                first.events.extend(r.events);
                first.fragment = r.fragment;
                first.header = r.header;
                first
            }
            None => r,
        };
        if r.fragment {
            self.partial = Some(r);
            return Ok(None);
        }
        if r.events.is_empty() {
            let rev = r.header.as_ref().map_or(0, |h| h.revision);
            self.next_rev = self.next_rev.max(rev + 1);
            return Ok(Some(WatchUpdate::Progress(r)));
        }
        let mut r = r;
        // Never twice: anything below the position was delivered before.
        let next = self.next_rev;
        r.events.retain(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision >= next));
        if let Some(last) = r.events.last().and_then(|e| e.kv.as_ref()) {
            self.next_rev = last.mod_revision + 1;
        }
        if r.events.is_empty() {
            return Ok(None);
        }
        Ok(Some(WatchUpdate::Events(r)))
    }
}
