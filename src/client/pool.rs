//! The client's connections: `connections_per_endpoint` slots per endpoint,
//! used round robin, dialled lazily, re-dialled after failures.
//!
//! Owns endpoint selection and reconnect backoff. A slot starts on its own
//! endpoint (so connections spread over the endpoints); when its connection
//! breaks or a dial fails it moves to the next endpoint, round robin. Dials
//! happen outside the lock, so one slow dial never stalls calls on healthy
//! slots. Never sends requests.

use super::conn::{ConnOptions, Connection};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// First wait after a failed dial; doubled per failure up to `MAX_BACKOFF`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

enum SlotConn {
    /// Never dialled, or its connection broke (may dial at once).
    Idle,
    /// A thread is dialling it now.
    Dialing,
    Ready(Arc<Connection>),
    /// The last dial failed; no new dial before this instant.
    Backoff(Instant),
}

struct Slot {
    endpoint: usize,
    conn: SlotConn,
    backoff: Duration,
}

struct State {
    slots: Vec<Slot>,
    /// Next slot to try (round robin).
    next: usize,
    /// The most recent dial failure: (endpoint, reason).
    last_error: Option<(String, String)>,
}

pub struct Pool {
    endpoints: Vec<String>,
    conn_opts: ConnOptions,
    dial_timeout: Duration,
    state: Mutex<State>,
    /// Signalled when a slot changes (a dial finished).
    changed: Condvar,
}

/// No connection could be had before the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoConnection {
    /// The most recent dial failure: (endpoint, reason).
    pub last_error: Option<(String, String)>,
}

impl Pool {
    pub fn new(endpoints: Vec<String>, per_endpoint: usize, conn_opts: ConnOptions, dial_timeout: Duration) -> Pool {
        let per_endpoint = per_endpoint.max(1);
        // Interleaved: slot i starts on endpoint i % n, so the first n
        // round-robin picks touch every endpoint once.
        let slots = (0..endpoints.len() * per_endpoint)
            .map(|i| Slot { endpoint: i % endpoints.len(), conn: SlotConn::Idle, backoff: INITIAL_BACKOFF })
            .collect();
        Pool {
            endpoints,
            conn_opts,
            dial_timeout,
            state: Mutex::new(State { slots, next: 0, last_error: None }),
            changed: Condvar::new(),
        }
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single field assignment: poisoning leaves no
        // half-done state behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Dials every slot once (used by `Client::connect`). Returns how many
    /// slots are connected and the last failure.
    pub fn dial_all(&self) -> (usize, Option<(String, String)>) {
        let n = self.lock().slots.len();
        let mut ok = 0;
        for idx in 0..n {
            let ready = matches!(self.lock().slots[idx].conn, SlotConn::Ready(_));
            if ready || self.dial_slot(idx, Instant::now() + self.dial_timeout).is_some() {
                ok += 1;
            }
        }
        (ok, self.lock().last_error.clone())
    }

    /// A live connection, round robin over the slots; dials idle slots and
    /// waits for backoffs to expire, until `deadline`.
    pub fn acquire(&self, deadline: Instant) -> Result<Arc<Connection>, NoConnection> {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let n = st.slots.len();
            let mut to_dial = None;
            let mut wake = deadline;
            for i in 0..n {
                let idx = (st.next + i) % n;
                let endpoints = self.endpoints.len();
                let slot = &mut st.slots[idx];
                match &slot.conn {
                    SlotConn::Ready(c) if c.is_alive() => {
                        let c = c.clone();
                        st.next = idx + 1;
                        return Ok(c);
                    }
                    SlotConn::Ready(_) => {
                        // Broken: reconnect, to the next endpoint.
                        slot.endpoint = (slot.endpoint + 1) % endpoints;
                        slot.conn = SlotConn::Idle;
                        to_dial = Some(idx);
                        break;
                    }
                    SlotConn::Idle => {
                        to_dial = Some(idx);
                        break;
                    }
                    SlotConn::Backoff(t) if *t <= now => {
                        to_dial = Some(idx);
                        break;
                    }
                    SlotConn::Backoff(t) => wake = wake.min(*t),
                    SlotConn::Dialing => {}
                }
            }
            if let Some(idx) = to_dial {
                st.next = idx + 1;
                drop(st);
                if let Some(c) = self.dial_slot(idx, deadline) {
                    return Ok(c);
                }
                st = self.lock();
                continue;
            }
            if now >= deadline {
                return Err(NoConnection { last_error: st.last_error.clone() });
            }
            // Nothing usable: wait for a dial to finish, a backoff to
            // expire, or the deadline.
            st =
                self.changed.wait_timeout(st, wake.saturating_duration_since(now)).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Dials slot `idx` (outside the lock) and records the outcome.
    fn dial_slot(&self, idx: usize, deadline: Instant) -> Option<Arc<Connection>> {
        let endpoint = {
            let mut st = self.lock();
            let slot = &mut st.slots[idx];
            if matches!(slot.conn, SlotConn::Dialing) {
                return None;
            }
            slot.conn = SlotConn::Dialing;
            self.endpoints[slot.endpoint].clone()
        };
        let timeout = self.dial_timeout.min(deadline.saturating_duration_since(Instant::now()));
        let result = if timeout.is_zero() {
            Err("i/o timeout".to_string())
        } else {
            Connection::dial(&endpoint, &self.conn_opts, timeout)
        };
        let mut st = self.lock();
        let endpoints = self.endpoints.len();
        let out = {
            let slot = &mut st.slots[idx];
            match result {
                Ok(c) => {
                    let c = Arc::new(c);
                    slot.conn = SlotConn::Ready(c.clone());
                    slot.backoff = INITIAL_BACKOFF;
                    Some(c)
                }
                Err(reason) => {
                    log::debug!("dial {endpoint} failed: {reason}");
                    slot.conn = SlotConn::Backoff(Instant::now() + slot.backoff);
                    slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
                    slot.endpoint = (slot.endpoint + 1) % endpoints;
                    st.last_error = Some((endpoint, reason));
                    None
                }
            }
        };
        drop(st);
        self.changed.notify_all();
        out
    }
}
