//! How client I/O reaches the lessor: `LeaseHub::open` starts a keep-alive
//! stream with its first request, and the returned `KeepAliveStreamOwner`
//! is kept by the client I/O thread as the stream's owner: later
//! keep-alives on the stream and its end go through it.
//!
//! Never blocks (it runs on the client I/O thread): a full queue ends the
//! stream with "too many requests" (the client reopens it) instead.

use crate::plumbing::doorbell::RingingSender;
use crate::plumbing::errors::ApiError;
use crate::plumbing::outbox::{StreamOwner, StreamSender};
use crate::plumbing::slots;
use crate::proto::etcdserverpb::LeaseKeepAliveRequest;
use crate::proto::raftkvpb::{client_request, client_response::Body};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A keep-alive stream's identity in the lessor (unique per member, so a
/// request id reused after a stream ended never names the old stream).
pub type StreamId = u64;

/// What the lessor is asked to do.
#[derive(Debug)]
pub enum LeaseCmd {
    /// A new keep-alive stream and its first request.
    Open {
        stream: StreamId,
        sender: StreamSender,
        ended: Arc<AtomicBool>,
        first: LeaseKeepAliveRequest,
    },
    KeepAlive {
        stream: StreamId,
        req: LeaseKeepAliveRequest,
    },
    /// The client cancelled the stream or closed its connection.
    End {
        stream: StreamId,
    },
}

/// The lessor's inbox, shared by every client I/O thread.
#[derive(Clone)]
pub struct LeaseHub {
    tx: RingingSender<LeaseCmd>,
    /// Streams open now; the lessor lowers it when it forgets one.
    open_streams: Arc<AtomicUsize>,
    max_streams: usize,
    next_stream: Arc<AtomicU64>,
}

impl LeaseHub {
    pub fn new(tx: RingingSender<LeaseCmd>, open_streams: Arc<AtomicUsize>, max_streams: usize) -> LeaseHub {
        LeaseHub { tx, open_streams, max_streams, next_stream: Arc::new(AtomicU64::new(1)) }
    }

    /// Opens a keep-alive stream whose answers go through `sender`.
    pub fn open(&self, sender: StreamSender, first: LeaseKeepAliveRequest) -> Result<KeepAliveStreamOwner, ApiError> {
        slots::take(&self.open_streams, self.max_streams, "keep-alive streams")?;
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let ended = Arc::new(AtomicBool::new(false));
        let cmd = LeaseCmd::Open { stream, sender: sender.clone(), ended: ended.clone(), first };
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(KeepAliveStreamOwner { stream, hub: self.clone(), sender, ended }),
            Err(e) => {
                slots::give_back(&self.open_streams);
                Err(ApiError::from_queue(&e))
            }
        }
    }
}

/// The client I/O thread's handle on one open keep-alive stream.
pub struct KeepAliveStreamOwner {
    stream: StreamId,
    hub: LeaseHub,
    sender: StreamSender,
    ended: Arc<AtomicBool>,
}

impl StreamOwner for KeepAliveStreamOwner {
    fn on_request(&mut self, body: client_request::Body) {
        let client_request::Body::LeaseKeepAlive(req) = body else {
            let e = ApiError::invalid("raftkv: only keep-alive requests may be sent on a keep-alive stream");
            let _ = self.sender.send_control(Body::Error(e.to_proto()));
            return;
        };
        if let Err(e) = self.hub.tx.try_send(LeaseCmd::KeepAlive { stream: self.stream, req }) {
            // A keep-alive cannot be dropped silently: the stream ends with
            // the reason (the client reopens it), and the lessor forgets it
            // (it checks `ended`).
            self.ended.store(true, Ordering::SeqCst);
            self.sender.finish(Body::Error(ApiError::from_queue(&e).to_proto()));
        }
    }

    fn on_end(&mut self) {
        self.ended.store(true, Ordering::SeqCst);
        // If the queue is full the lessor's sweep finds `ended`.
        let _ = self.hub.tx.try_send(LeaseCmd::End { stream: self.stream });
    }
}
