//! The table of requests waiting for answers on one connection.
//!
//! Owns the mapping request id → waiter: a unary call (exactly one answer, on
//! a one-shot channel) or a stream (many answers with the same id, on a
//! bounded channel), the cap on requests in flight, and failing every waiter
//! when the connection dies. Never touches the socket.

use crate::proto::raftkvpb::client_response;
use crossbeam_channel::{Sender, TrySendError};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a waiter receives: an answer, or why none will come.
pub type Delivery = Result<client_response::Body, Failure>;

/// Why a waiter got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection closed; whether the request left this process is
    /// known only to the caller (its `sent` flag).
    Lost(String),
    /// The answer could not be used (undecodable, over the size limit).
    Protocol(String),
}

/// Where the reader puts a stream's answers, and why the stream ended.
pub struct StreamSink {
    pub tx: Sender<Delivery>,
    pub end: Arc<Mutex<Option<Failure>>>,
    /// How long the reader waits for room when the buffer is full before it
    /// cuts the consumer off. `None`: it never waits (a watch must not hold
    /// up the connection's other calls). `Some`: the stream is
    /// flow-controlled (a snapshot): the waiting reader stops reading the
    /// socket, so the server's output for the connection fills and its
    /// sender waits; every other call on the connection waits too.
    pub patience: Option<Duration>,
}

enum Waiter {
    Unary(Sender<Delivery>),
    Stream(StreamSink),
}

/// Why a request could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// The connection is closed (the reason is given).
    Closed(String),
    /// The in-flight cap stayed full until the deadline.
    Timeout,
}

struct State {
    waiters: HashMap<u64, Waiter>,
    closed: Option<String>,
}

pub struct Dispatch {
    state: Mutex<State>,
    /// Signalled when a waiter leaves the table (space for another).
    space: Condvar,
    max_in_flight: usize,
}

impl Dispatch {
    pub fn new(max_in_flight: usize) -> Dispatch {
        Dispatch {
            state: Mutex::new(State { waiters: HashMap::new(), closed: None }),
            space: Condvar::new(),
            max_in_flight: max_in_flight.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert/remove), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a unary call, waiting (until `deadline`) for room under the
    /// in-flight cap.
    pub fn register_unary(&self, id: u64, tx: Sender<Delivery>, deadline: Instant) -> Result<(), RegisterError> {
        self.register(id, Waiter::Unary(tx), deadline)
    }

    /// Registers a stream: every answer with `id` goes to `sink` until the
    /// stream is removed or the connection dies.
    pub fn register_stream(&self, id: u64, sink: StreamSink, deadline: Instant) -> Result<(), RegisterError> {
        self.register(id, Waiter::Stream(sink), deadline)
    }

    fn register(&self, id: u64, waiter: Waiter, deadline: Instant) -> Result<(), RegisterError> {
        let mut st = self.lock();
        loop {
            if let Some(reason) = &st.closed {
                return Err(RegisterError::Closed(reason.clone()));
            }
            if st.waiters.len() < self.max_in_flight {
                st.waiters.insert(id, waiter);
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RegisterError::Timeout);
            }
            st = self.space.wait_timeout(st, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Hands an answer to its waiter. Returns false when nobody waits for
    /// `id` (a late answer to a call that timed out).
    pub fn deliver(&self, id: u64, body: client_response::Body) -> bool {
        let mut st = self.lock();
        let is_stream = match st.waiters.get(&id) {
            None => return false,
            Some(Waiter::Stream(_)) => true,
            Some(Waiter::Unary(_)) => false,
        };
        if !is_stream {
            if let Some(Waiter::Unary(tx)) = st.waiters.remove(&id) {
                drop(st);
                self.space.notify_one();
                // The caller may have given up meanwhile; nothing to do then.
                let _ = tx.try_send(Ok(body));
            }
            return true;
        }
        let (tx, patience) = match st.waiters.get(&id) {
            Some(Waiter::Stream(sink)) => (sink.tx.clone(), sink.patience),
            _ => return true,
        };
        let delivered = match tx.try_send(Ok(body)) {
            Ok(()) => true,
            Err(TrySendError::Full(body)) => match patience {
                Some(patience) => {
                    // Waits without the table's lock: other waiters may
                    // still be removed (timeouts) meanwhile.
                    drop(st);
                    let sent = tx.send_timeout(body, patience).is_ok();
                    st = self.lock();
                    sent
                }
                None => false,
            },
            // The consumer dropped its end: stop delivering.
            Err(TrySendError::Disconnected(_)) => false,
        };
        if !delivered {
            // A consumer that does not keep up (a patient one: within its
            // patience) is cut off rather than blocking the reader, and
            // every other call on the connection, any longer.
            if let Some(Waiter::Stream(sink)) = st.waiters.remove(&id) {
                end_stream(&sink, Failure::Protocol("stream consumer too slow: answers dropped".into()));
            }
            drop(st);
            self.space.notify_one();
        }
        true
    }

    /// Fails one waiter (an answer that could not be used).
    pub fn fail_one(&self, id: u64, failure: Failure) {
        let waiter = self.lock().waiters.remove(&id);
        if let Some(w) = waiter {
            self.space.notify_one();
            fail(w, failure);
        }
    }

    /// Removes a waiter without an answer (timeout or cancellation).
    pub fn remove(&self, id: u64) {
        if self.lock().waiters.remove(&id).is_some() {
            self.space.notify_one();
        }
    }

    /// Closes the table: fails every waiter and refuses new ones. Only the
    /// first reason is kept.
    pub fn close(&self, reason: &str) {
        let drained: Vec<Waiter> = {
            let mut st = self.lock();
            if st.closed.is_none() {
                st.closed = Some(reason.to_string());
            }
            st.waiters.drain().map(|(_, w)| w).collect()
        };
        self.space.notify_all();
        for w in drained {
            fail(w, Failure::Lost(reason.to_string()));
        }
    }

    /// The reason the table was closed, if it was.
    pub fn closed(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    /// Requests currently waiting.
    pub fn in_flight(&self) -> usize {
        self.lock().waiters.len()
    }
}

fn fail(w: Waiter, failure: Failure) {
    match w {
        Waiter::Unary(tx) => {
            let _ = tx.try_send(Err(failure));
        }
        Waiter::Stream(sink) => end_stream(&sink, failure),
    }
}

fn end_stream(sink: &StreamSink, failure: Failure) {
    let mut end = sink.end.lock().unwrap_or_else(|p| p.into_inner());
    if end.is_none() {
        *end = Some(failure);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutResponse;
    use crossbeam_channel::bounded;
    use std::time::Duration;

    fn put_body() -> client_response::Body {
        client_response::Body::Put(PutResponse::default())
    }

    #[test]
    fn unary_gets_one_answer_and_leaves_the_table() {
        let d = Dispatch::new(4);
        let (tx, rx) = bounded(1);
        d.register_unary(7, tx, Instant::now() + Duration::from_secs(1)).unwrap();
        assert!(d.deliver(7, put_body()));
        assert_eq!(rx.try_recv().unwrap(), Ok(put_body()));
        assert!(!d.deliver(7, put_body()), "a second answer finds no waiter");
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn stream_gets_many_answers_until_removed() {
        let d = Dispatch::new(4);
        let (tx, rx) = bounded(8);
        let end = Arc::new(Mutex::new(None));
        d.register_stream(9, StreamSink { tx, end: end.clone(), patience: None }, Instant::now()).unwrap();
        for _ in 0..3 {
            assert!(d.deliver(9, put_body()));
        }
        assert_eq!(rx.len(), 3);
        d.remove(9);
        assert!(!d.deliver(9, put_body()));
        assert!(end.lock().unwrap().is_none(), "removal is not a failure");
    }

    #[test]
    fn slow_stream_is_cut_off_not_blocking() {
        let d = Dispatch::new(4);
        let (tx, _rx) = bounded(1);
        let end = Arc::new(Mutex::new(None));
        d.register_stream(1, StreamSink { tx, end: end.clone(), patience: None }, Instant::now()).unwrap();
        assert!(d.deliver(1, put_body()));
        assert!(d.deliver(1, put_body()), "overflow is handled without blocking");
        assert!(matches!(*end.lock().unwrap(), Some(Failure::Protocol(_))));
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn a_flow_controlled_stream_waits_for_its_consumer_then_gives_up() {
        let d = Arc::new(Dispatch::new(4));
        let (tx, rx) = bounded(1);
        let end = Arc::new(Mutex::new(None));
        let sink = StreamSink { tx, end: end.clone(), patience: Some(Duration::from_secs(10)) };
        d.register_stream(1, sink, Instant::now()).unwrap();
        assert!(d.deliver(1, put_body()));
        // The buffer is full: the reader waits until the consumer takes one.
        let reader = {
            let d = d.clone();
            std::thread::spawn(move || d.deliver(1, put_body()))
        };
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Ok(put_body()));
        assert!(reader.join().unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Ok(put_body()), "nothing was dropped");
        assert!(end.lock().unwrap().is_none());

        // A consumer that never takes is cut off once the patience is spent.
        let (tx, _rx) = bounded(1);
        let end = Arc::new(Mutex::new(None));
        let sink = StreamSink { tx, end: end.clone(), patience: Some(Duration::from_millis(50)) };
        d.register_stream(2, sink, Instant::now()).unwrap();
        assert!(d.deliver(2, put_body()));
        assert!(d.deliver(2, put_body()));
        assert!(matches!(*end.lock().unwrap(), Some(Failure::Protocol(_))));
    }

    #[test]
    fn close_fails_everyone_and_refuses_newcomers() {
        let d = Dispatch::new(4);
        let (tx, rx) = bounded(1);
        d.register_unary(1, tx, Instant::now()).unwrap();
        d.close("gone");
        assert_eq!(rx.try_recv().unwrap(), Err(Failure::Lost("gone".into())));
        let (tx2, _rx2) = bounded(1);
        assert_eq!(d.register_unary(2, tx2, Instant::now()), Err(RegisterError::Closed("gone".into())));
    }

    #[test]
    fn in_flight_cap_waits_until_the_deadline() {
        let d = Arc::new(Dispatch::new(1));
        let (tx, _rx) = bounded(1);
        d.register_unary(1, tx, Instant::now()).unwrap();
        let (tx2, _rx2) = bounded(1);
        let t0 = Instant::now();
        assert_eq!(d.register_unary(2, tx2, Instant::now() + Duration::from_millis(50)), Err(RegisterError::Timeout));
        assert!(t0.elapsed() >= Duration::from_millis(50));
        // Space frees up when the first call leaves the table.
        let d2 = d.clone();
        let waiter = std::thread::spawn(move || {
            let (tx3, _rx3) = bounded(1);
            d2.register_unary(3, tx3, Instant::now() + Duration::from_secs(10))
        });
        // Whether the thread blocks on the cap before or after this removal,
        // it must get in.
        d.remove(1);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }
}
