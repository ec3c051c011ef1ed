//! How any thread answers a client: a `Responder` names the connection and
//! request, and carries the channel to the client I/O thread plus its mio
//! `Waker`. Answers for connections that closed meanwhile are dropped by the
//! I/O thread; the sender never blocks on a particular client.

use crate::api::ApiError;
use crate::proto::raftkvpb::{client_response::Body, ClientResponse};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A response on its way to a connection.
#[derive(Debug)]
pub struct Outgoing {
    pub conn: u64,
    pub response: ClientResponse,
}

/// The channel into the client I/O thread. Wakes its poll only when it is
/// not already awake, so a burst of responses costs one wake-up.
#[derive(Clone)]
pub struct ResponseSink {
    tx: Sender<Outgoing>,
    waker: Arc<mio::Waker>,
    wake_pending: Arc<AtomicBool>,
}

impl ResponseSink {
    pub fn new(tx: Sender<Outgoing>, waker: Arc<mio::Waker>, wake_pending: Arc<AtomicBool>) -> ResponseSink {
        ResponseSink { tx, waker, wake_pending }
    }

    pub fn send(&self, out: Outgoing) {
        // A full channel means the I/O thread is behind: waiting is the
        // backpressure. A closed one means it is gone: nothing to answer.
        if self.tx.send(out).is_err() {
            return;
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::warn!("waking the client I/O thread failed: {e}");
            }
        }
    }
}

/// Where the answer to one request goes.
pub struct Responder {
    pub conn: u64,
    pub request_id: u64,
    sink: ResponseSink,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Responder(conn {}, request {})", self.conn, self.request_id)
    }
}

impl Responder {
    pub fn new(conn: u64, request_id: u64, sink: ResponseSink) -> Responder {
        Responder { conn, request_id, sink }
    }

    pub fn respond(self, body: Body) {
        let response = ClientResponse { request_id: self.request_id, body: Some(body) };
        self.sink.send(Outgoing { conn: self.conn, response });
    }

    pub fn fail(self, e: ApiError) {
        self.respond(Body::Error(e.to_proto()));
    }

    pub fn answer(self, r: Result<Body, ApiError>) {
        match r {
            Ok(b) => self.respond(b),
            Err(e) => self.fail(e),
        }
    }
}
