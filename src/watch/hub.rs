//! How client I/O reaches the watch dispatcher: `WatchHub::open` starts a
//! stream with its first request, and the returned `WatchStreamOwner` is
//! kept by the client I/O thread as the stream's owner: later requests on
//! the stream (more creates, cancels, progress requests) and its end go
//! through it.
//!
//! Never blocks (it runs on the client I/O thread): a full command queue
//! fails the request with a clear error instead.

use super::StreamKey;
use super::INVALID_WATCH_ID;
use crate::plumbing::doorbell::RingingSender;
use crate::plumbing::errors::ApiError;
use crate::plumbing::outbox::{StreamOwner, StreamSender};
use crate::plumbing::slots;
use crate::proto::etcdserverpb::{watch_request, WatchRequest, WatchResponse};
use crate::proto::raftkvpb::{client_request, client_response::Body, ErrorCode};
use crossbeam_channel::TrySendError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What the dispatcher is asked to do.
#[derive(Debug)]
pub enum WatchCmd {
    /// A new stream and its first request.
    Open {
        key: StreamKey,
        sender: StreamSender,
        ended: Arc<AtomicBool>,
        first: WatchRequest,
    },
    Request {
        key: StreamKey,
        req: WatchRequest,
    },
    /// The client cancelled the stream or closed its connection.
    End {
        key: StreamKey,
    },
}

/// The dispatcher's inbox, shared by every client I/O thread.
#[derive(Clone)]
pub struct WatchHub {
    tx: RingingSender<WatchCmd>,
    /// Streams open now; the dispatcher lowers it when it forgets one.
    open_streams: Arc<AtomicUsize>,
    max_streams: usize,
}

impl WatchHub {
    pub fn new(tx: RingingSender<WatchCmd>, open_streams: Arc<AtomicUsize>, max_streams: usize) -> WatchHub {
        WatchHub { tx, open_streams, max_streams }
    }

    /// Opens a watch stream whose answers go through `sender`.
    pub fn open(&self, sender: StreamSender, first: WatchRequest) -> Result<WatchStreamOwner, ApiError> {
        slots::take(&self.open_streams, self.max_streams, "watch streams")?;
        let key = (sender.conn(), sender.request_id());
        let ended = Arc::new(AtomicBool::new(false));
        let cmd = WatchCmd::Open { key, sender: sender.clone(), ended: ended.clone(), first };
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(WatchStreamOwner { key, hub: self.clone(), sender, ended }),
            Err(e) => {
                slots::give_back(&self.open_streams);
                Err(ApiError::from_queue(&e))
            }
        }
    }
}

/// The client I/O thread's handle on one open watch stream.
pub struct WatchStreamOwner {
    key: StreamKey,
    hub: WatchHub,
    sender: StreamSender,
    ended: Arc<AtomicBool>,
}

impl StreamOwner for WatchStreamOwner {
    fn on_request(&mut self, body: client_request::Body) {
        let client_request::Body::Watch(req) = body else {
            let e = ApiError::invalid("raftkv: only watch requests may be sent on a watch stream");
            let _ = self.sender.send_control(Body::Error(e.to_proto()));
            return;
        };
        let is_create = matches!(req.request_union, Some(watch_request::RequestUnion::CreateRequest(_)));
        match self.hub.tx.try_send(WatchCmd::Request { key: self.key, req }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) if is_create => {
                // The create is refused as etcd refuses one: created and
                // canceled at once, with the reason.
                let refused = WatchResponse {
                    watch_id: INVALID_WATCH_ID,
                    created: true,
                    canceled: true,
                    cancel_reason: ApiError::of(ErrorCode::TooManyRequests).message,
                    ..Default::default()
                };
                let _ = self.sender.send_control(Body::Watch(refused));
            }
            Err(_) => {
                // A cancel or progress request cannot be dropped silently:
                // the stream ends with the reason, and the dispatcher
                // forgets it (it checks `ended`).
                self.ended.store(true, Ordering::SeqCst);
                self.sender.finish(Body::Error(ApiError::of(ErrorCode::TooManyRequests).to_proto()));
            }
        }
    }

    fn on_end(&mut self) {
        self.ended.store(true, Ordering::SeqCst);
        // If the queue is full the dispatcher's sweep finds `ended`.
        let _ = self.hub.tx.try_send(WatchCmd::End { key: self.key });
    }
}
