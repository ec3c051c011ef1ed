//! What any thread sends to a client connection: one bounded `Outbox` per
//! connection, filled by producers (the apply thread, read workers, the
//! watch dispatcher...) and emptied by the client I/O thread, which owns the
//! socket.
//!
//! Producers never block on a client. What happens when a connection's
//! output is full is decided per kind:
//! - a unary answer (`Responder`) is always queued: the client I/O thread
//!   admits at most `max_in_flight_per_conn` requests per connection, so
//!   these are bounded by admission;
//! - a stream message (`StreamSender::try_send`, a watch's events) is
//!   refused once the connection holds `stream_limit` unsent bytes, and the
//!   producer decides (the watch dispatcher marks the watcher slow and
//!   catches it up from storage later);
//! - a stream's control message (`StreamSender::send_control`: created,
//!   canceled) is always queued; each answers one request of the client's,
//!   and those are bounded by the stream's owner.
//!
//! A closed connection refuses everything. Owns only the hand-over of
//! responses and their byte accounting; never encodes, writes a socket or
//! decides which request an answer belongs to (the client I/O thread drops
//! answers to requests that timed out or streams that ended).

use super::errors::ApiError;
use crate::proto::raftkvpb::{client_response::Body, ClientResponse};
use prost::Message as _;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes a frame adds around a message (the length prefix).
const FRAME_OVERHEAD: usize = 4;

/// One response on its way to the socket.
#[derive(Debug)]
pub struct Outgoing {
    pub response: ClientResponse,
    /// The last message of its request: a unary answer, or the end of a
    /// stream.
    pub ends: bool,
    /// Its encoded size, as counted in the outbox.
    pub size: usize,
}

/// Which connections have something queued, and how to wake the client I/O
/// thread. One per client I/O thread.
pub struct Notifier {
    ready: Mutex<Vec<u64>>,
    waker: Box<dyn Fn() + Send + Sync>,
    wake_pending: AtomicBool,
}

impl Notifier {
    /// `wake` wakes the I/O thread's poll (a `mio::Waker` in the server).
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Arc<Notifier> {
        Arc::new(Notifier {
            ready: Mutex::new(Vec::new()),
            waker: Box::new(wake),
            wake_pending: AtomicBool::new(false),
        })
    }

    /// The connections with queued output since the last call. Re-arms the
    /// wake-up first, so a push after this call wakes the thread again.
    pub fn take_ready(&self) -> Vec<u64> {
        self.wake_pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn mark_ready(&self, conn: u64) {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        // One wake-up per burst: the I/O thread takes everything at once.
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            (self.waker)();
        }
    }
}

/// Why a stream message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The connection holds too much unsent output: try again later.
    Full,
    /// The connection or the stream is gone: stop sending.
    Closed,
}

/// The output of one connection.
pub struct Outbox {
    conn: u64,
    queue: Mutex<VecDeque<Outgoing>>,
    /// Bytes in `queue`.
    queued: AtomicUsize,
    /// Bytes the I/O thread holds encoded but not yet written.
    buffered: AtomicUsize,
    /// Stream messages are refused beyond this many unsent bytes.
    stream_limit: usize,
    closed: AtomicBool,
    /// The connection is in the notifier's ready list.
    scheduled: AtomicBool,
    notifier: Arc<Notifier>,
}

impl Outbox {
    pub fn new(conn: u64, stream_limit: usize, notifier: Arc<Notifier>) -> Arc<Outbox> {
        Arc::new(Outbox {
            conn,
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            buffered: AtomicUsize::new(0),
            stream_limit,
            closed: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
            notifier,
        })
    }

    pub fn conn(&self) -> u64 {
        self.conn
    }

    /// Unsent bytes: queued here or held by the I/O thread.
    pub fn unsent(&self) -> usize {
        self.queued.load(Ordering::SeqCst) + self.buffered.load(Ordering::SeqCst)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The I/O thread closed the connection: everything is refused from now on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.clear();
        self.queued.store(0, Ordering::SeqCst);
    }

    /// The I/O thread's side: everything queued, in order.
    pub fn drain(&self) -> VecDeque<Outgoing> {
        // Cleared before taking, so a push after the take schedules again.
        self.scheduled.store(false, Ordering::SeqCst);
        let taken = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        let bytes: usize = taken.iter().map(|o| o.size).sum();
        self.queued.fetch_sub(bytes, Ordering::SeqCst);
        taken
    }

    /// The I/O thread's side: how many encoded bytes it still holds.
    pub fn set_buffered(&self, bytes: usize) {
        self.buffered.store(bytes, Ordering::SeqCst);
    }

    fn push(&self, response: ClientResponse, ends: bool, limit: Option<usize>) -> Result<(), Refused> {
        let size = response.encoded_len() + FRAME_OVERHEAD;
        {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if self.is_closed() {
                return Err(Refused::Closed);
            }
            if let Some(limit) = limit {
                // A message larger than the whole limit still goes alone
                // into an empty connection, or it could never be sent.
                let unsent = self.unsent();
                if unsent > 0 && unsent + size > limit {
                    return Err(Refused::Full);
                }
            }
            q.push_back(Outgoing { response, ends, size });
            self.queued.fetch_add(size, Ordering::SeqCst);
        }
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            self.notifier.mark_ready(self.conn);
        }
        Ok(())
    }
}

/// Where the one answer to a unary request goes.
pub struct Responder {
    outbox: Arc<Outbox>,
    request_id: u64,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Responder(conn {}, request {})", self.outbox.conn, self.request_id)
    }
}

impl Responder {
    pub fn new(outbox: Arc<Outbox>, request_id: u64) -> Responder {
        Responder { outbox, request_id }
    }

    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    pub fn respond(self, body: Body) {
        let response = ClientResponse { request_id: self.request_id, body: Some(body) };
        // A closed connection has nobody to answer.
        let _ = self.outbox.push(response, true, None);
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

/// The sending end of one stream (many answers to one request id). Held by
/// the stream's owner; cheap to clone.
#[derive(Clone)]
pub struct StreamSender {
    outbox: Arc<Outbox>,
    request_id: u64,
}

impl std::fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamSender(conn {}, request {})", self.outbox.conn, self.request_id)
    }
}

impl StreamSender {
    pub fn new(outbox: Arc<Outbox>, request_id: u64) -> StreamSender {
        StreamSender { outbox, request_id }
    }

    pub fn conn(&self) -> u64 {
        self.outbox.conn
    }

    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// A data message, refused while the connection's output is full.
    pub fn try_send(&self, body: Body) -> Result<(), Refused> {
        let response = ClientResponse { request_id: self.request_id, body: Some(body) };
        self.outbox.push(response, false, Some(self.outbox.stream_limit))
    }

    /// A control message, always queued while the connection is open.
    pub fn send_control(&self, body: Body) -> Result<(), Refused> {
        let response = ClientResponse { request_id: self.request_id, body: Some(body) };
        self.outbox.push(response, false, None)
    }

    /// The stream's last message (an error, usually): the request id is
    /// free again once it is written.
    pub fn finish(&self, body: Body) {
        let response = ClientResponse { request_id: self.request_id, body: Some(body) };
        let _ = self.outbox.push(response, true, None);
    }

    /// Whether a data message is likely to be taken: the connection holds
    /// less than half its limit. Lets a producer skip work (reading
    /// history) for a connection that would refuse it anyway.
    pub fn has_room(&self) -> bool {
        !self.outbox.is_closed() && self.outbox.unsent() < self.outbox.stream_limit / 2
    }

    /// Whether the connection is gone (the stream's owner is also told).
    pub fn is_closed(&self) -> bool {
        self.outbox.is_closed()
    }
}

/// The owner of an open stream, as the client I/O thread sees it: later
/// requests on the stream's id go to it, and it is told when the stream
/// ends from the client's side (cancelled, or the connection closed). Both
/// calls must return at once: they run on the I/O thread.
pub trait StreamOwner: Send {
    fn on_request(&mut self, body: crate::proto::raftkvpb::client_request::Body);
    fn on_end(&mut self);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{PutResponse, WatchResponse};
    use std::sync::atomic::AtomicUsize;

    fn outbox(limit: usize) -> (Arc<Outbox>, Arc<Notifier>, Arc<AtomicUsize>) {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let n = Notifier::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        (Outbox::new(7, limit, n.clone()), n, wakes)
    }

    fn watch(n: usize) -> Body {
        Body::Watch(WatchResponse { cancel_reason: "x".repeat(n), ..Default::default() })
    }

    #[test]
    fn stream_messages_are_refused_past_the_limit_but_replies_are_not() {
        let (ob, _, _) = outbox(100);
        let s = StreamSender::new(ob.clone(), 1);
        s.try_send(watch(60)).expect("first fits");
        assert_eq!(s.try_send(watch(60)), Err(Refused::Full));
        // Replies and control messages are bounded elsewhere: always queued.
        Responder::new(ob.clone(), 2).respond(Body::Put(PutResponse::default()));
        s.send_control(watch(60)).expect("control always queued");
        assert_eq!(ob.drain().len(), 3);
        // Drained and written: room again.
        ob.set_buffered(0);
        s.try_send(watch(60)).expect("room after the drain");
    }

    #[test]
    fn bytes_held_by_the_io_thread_count_against_the_limit() {
        let (ob, _, _) = outbox(100);
        let s = StreamSender::new(ob.clone(), 1);
        ob.set_buffered(90);
        assert_eq!(s.try_send(watch(20)), Err(Refused::Full));
    }

    #[test]
    fn a_message_larger_than_the_limit_goes_alone() {
        let (ob, _, _) = outbox(10);
        let s = StreamSender::new(ob.clone(), 1);
        s.try_send(watch(50)).expect("alone into an empty connection");
        assert_eq!(s.try_send(watch(1)), Err(Refused::Full));
    }

    #[test]
    fn one_wake_per_burst_and_ready_once_per_drain() {
        let (ob, n, wakes) = outbox(1 << 20);
        let s = StreamSender::new(ob.clone(), 1);
        for _ in 0..10 {
            s.try_send(watch(1)).unwrap();
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(n.take_ready(), vec![7]);
        assert_eq!(ob.drain().len(), 10);
        s.try_send(watch(1)).unwrap();
        assert_eq!(n.take_ready(), vec![7], "scheduled again after the drain");
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_closed_connection_refuses_everything() {
        let (ob, _, _) = outbox(1 << 20);
        let s = StreamSender::new(ob.clone(), 1);
        s.try_send(watch(1)).unwrap();
        ob.close();
        assert!(s.is_closed());
        assert_eq!(s.try_send(watch(1)), Err(Refused::Closed));
        assert_eq!(s.send_control(watch(1)), Err(Refused::Closed));
        assert_eq!(ob.unsent(), 0, "what was queued is dropped");
    }
}
