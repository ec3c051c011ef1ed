//! A lease kept alive in the background: `Client::keep_alive` starts a
//! thread that renews the lease until the handle is closed or dropped, and
//! reports each renewal and the loss of the lease as events.
//!
//! Owns the handle, its thread's lifetime (stopped and joined on close or
//! drop: no thread outlives its handle) and the event queue: bounded, the
//! oldest `Renewed` dropped when full, `Lost` never dropped. Never talks to
//! the server itself: the renewal loop is `keepalive_loop.rs`.
//!
//! ```no_run
//! use raftkv::client::{Client, ClientOptions, KeepAliveEvent};
//! use std::time::Duration;
//! let client = Client::connect(&["127.0.0.1:2379".to_string()], ClientOptions::default())?;
//! let lease = client.lease_grant(10, 0)?;
//! let ka = client.keep_alive(lease.id)?;
//! while let Ok(event) = ka.recv_timeout(Duration::from_secs(30)) {
//!     match event {
//!         KeepAliveEvent::Renewed(r) => println!("renewed, TTL {}", r.ttl),
//!         KeepAliveEvent::Lost(why) => { println!("lost: {why}"); break }
//!     }
//! }
//! # Ok::<(), raftkv::client::ClientError>(())
//! ```

use super::keepalive_loop::{self, Stop};
use super::{Client, ClientError};
use crate::proto::etcdserverpb::LeaseKeepAliveResponse;
use crossbeam_channel::{bounded, Sender};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Events buffered before the oldest renewal is dropped.
pub const EVENT_CAPACITY: usize = 64;

/// What a `KeepAlive` reports.
#[derive(Debug, Clone, PartialEq)]
pub enum KeepAliveEvent {
    /// The server renewed the lease: its answer (TTL > 0).
    Renewed(LeaseKeepAliveResponse),
    /// The lease is gone or can no longer be known alive: the server said
    /// so (TTL 0: expired or revoked), or no renewal succeeded before the
    /// last successful one's request time + TTL. Always the last event.
    Lost(String),
}

/// Why `KeepAlive::recv_timeout` returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveRecvError {
    /// No event within the wait; the keep-alive goes on.
    Timeout,
    /// The keep-alive has ended (after `Lost`, or closed) and every event
    /// was taken.
    Ended,
}

/// The event queue shared by the handle and the loop.
pub(crate) struct Events {
    state: Mutex<EventState>,
    ready: Condvar,
}

struct EventState {
    queue: VecDeque<KeepAliveEvent>,
    ended: bool,
}

impl Events {
    fn new() -> Events {
        Events { state: Mutex::new(EventState { queue: VecDeque::new(), ended: false }), ready: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, EventState> {
        // Updates are single pushes and flag sets: nothing half-done to
        // fear after a panic elsewhere.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event. A full queue loses its oldest renewal, never a
    /// `Lost` (which is pushed once, last).
    pub(crate) fn push(&self, event: KeepAliveEvent) {
        let mut st = self.lock();
        if st.queue.len() >= EVENT_CAPACITY {
            if let Some(i) = st.queue.iter().position(|e| matches!(e, KeepAliveEvent::Renewed(_))) {
                st.queue.remove(i);
            }
        }
        st.queue.push_back(event);
        drop(st);
        self.ready.notify_all();
    }

    /// No more events will come.
    pub(crate) fn end(&self) {
        self.lock().ended = true;
        self.ready.notify_all();
    }

    fn pop(&self, deadline: Instant) -> Result<KeepAliveEvent, KeepAliveRecvError> {
        let mut st = self.lock();
        loop {
            if let Some(e) = st.queue.pop_front() {
                return Ok(e);
            }
            if st.ended {
                return Err(KeepAliveRecvError::Ended);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(KeepAliveRecvError::Timeout);
            }
            st = self.ready.wait_timeout(st, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// A lease kept alive by a background thread. Renewals go every TTL/3
/// (the TTL of the latest answer; the first at once) over a keep-alive
/// stream, re-opened on another endpoint (with a bounded backoff) when its
/// connection is lost or the server answers with a retryable error.
/// Dropping or closing the handle stops and joins the thread; the lease
/// then expires on its own after its TTL.
pub struct KeepAlive {
    id: i64,
    events: Arc<Events>,
    /// Dropping it wakes the loop wherever it waits, and stops it.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    /// Keeps lease `id` alive in the background until the handle is closed
    /// or dropped. Fails only if the thread cannot be started; a lease that
    /// does not exist is reported as a `Lost` event.
    pub fn keep_alive(&self, id: i64) -> Result<KeepAlive, ClientError> {
        let events = Arc::new(Events::new());
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let (client, ev) = (self.clone(), events.clone());
        let thread = std::thread::Builder::new()
            .name(format!("rk-keepalive {id:x}"))
            .spawn(move || {
                keepalive_loop::run(&client, id, &ev, &Stop(stop_rx));
                ev.end();
            })
            .map_err(|e| ClientError::Closed { reason: format!("could not start the keep-alive thread: {e}") })?;
        Ok(KeepAlive { id, events, stop: Some(stop_tx), thread: Some(thread) })
    }
}

impl KeepAlive {
    /// The lease kept alive.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The next event, waiting at most `timeout`. After `Lost` (or
    /// `close`), `Err(Ended)` once the queue is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<KeepAliveEvent, KeepAliveRecvError> {
        self.events.pop(Instant::now() + timeout)
    }

    /// The next event if one is queued.
    pub fn try_recv(&self) -> Result<KeepAliveEvent, KeepAliveRecvError> {
        self.events.pop(Instant::now())
    }

    /// Stops renewing and waits for the thread to end (at most about the
    /// dial timeout, if it is dialling). Events already queued can still be
    /// taken. Revokes nothing: the lease expires after its TTL.
    pub fn close(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.events.end();
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAlive").field("id", &self.id).field("running", &self.thread.is_some()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renewed(ttl: i64) -> KeepAliveEvent {
        KeepAliveEvent::Renewed(LeaseKeepAliveResponse { ttl, ..Default::default() })
    }

    #[test]
    fn a_full_queue_drops_the_oldest_renewal_never_the_loss() {
        let ev = Events::new();
        for i in 0..EVENT_CAPACITY as i64 {
            ev.push(renewed(i + 1));
        }
        ev.push(KeepAliveEvent::Lost("gone".into()));
        ev.end();
        let deadline = Instant::now();
        assert_eq!(ev.pop(deadline), Ok(renewed(2)), "the oldest renewal made room");
        let mut rest = Vec::new();
        while let Ok(e) = ev.pop(deadline) {
            rest.push(e);
        }
        assert_eq!(rest.len(), EVENT_CAPACITY - 1);
        assert_eq!(rest.last(), Some(&KeepAliveEvent::Lost("gone".into())));
        assert_eq!(ev.pop(deadline), Err(KeepAliveRecvError::Ended));
    }

    #[test]
    fn an_empty_live_queue_times_out() {
        let ev = Events::new();
        let t0 = Instant::now();
        assert_eq!(ev.pop(t0 + Duration::from_millis(30)), Err(KeepAliveRecvError::Timeout));
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }
}
