//! The renewal loop behind a `KeepAlive`, on its own thread: one
//! keep-alive stream, one request at a time, the next TTL/3 after each
//! answer; the stream re-opened (any endpoint, bounded backoff) when it
//! breaks, errs retryably or stays silent too long.
//!
//! Owns the lease's deadline as this client can know it: the send time of
//! the request whose answer last renewed it, plus that answer's TTL. Past
//! it, the lease may have expired on the server, so the loop reports
//! `Lost` and ends, as clientv3 closes its keep-alive channel. Never
//! reports `Lost` before that deadline for a mere connection problem, and
//! never blocks its owner: every wait ends early when the handle says
//! stop.

use super::conn::{CallError, Stream};
use super::keepalive::{Events, KeepAliveEvent};
use super::Client;
use crate::plumbing::ApiError;
use crate::proto::etcdserverpb::LeaseKeepAliveRequest;
use crate::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// Answers buffered on the stream: one request is out at a time.
const STREAM_CAPACITY: usize = 16;
/// Re-opening waits: none at first (failover should be quick), then from
/// this, doubling...
const REOPEN_FIRST: Duration = Duration::from_millis(50);
/// ...up to this.
const REOPEN_MAX: Duration = Duration::from_secs(1);
/// An answer slower than TTL/3, and than this, means the stream is stuck
/// (a partitioned member keeping its connections): try another endpoint.
const MIN_ANSWER_WAIT: Duration = Duration::from_millis(500);

/// The handle's stop signal: a message or a disconnect (the handle dropped
/// its sender) both mean stop.
pub(crate) struct Stop(pub(crate) Receiver<()>);

impl Stop {
    fn requested(&self) -> bool {
        !matches!(self.0.try_recv(), Err(TryRecvError::Empty))
    }

    /// Waits until `t`; true if stopped meanwhile.
    fn wait_until(&self, t: Instant) -> bool {
        !matches!(self.0.recv_deadline(t), Err(RecvTimeoutError::Timeout))
    }
}

/// When the stream may be re-opened.
struct Reopen {
    at: Instant,
    next: Duration,
}

impl Reopen {
    fn failed(&mut self) {
        self.at = Instant::now() + self.next;
        self.next = if self.next.is_zero() { REOPEN_FIRST } else { (self.next * 2).min(REOPEN_MAX) };
    }

    fn succeeded(&mut self) {
        self.next = Duration::ZERO;
    }
}

struct State<'a> {
    client: &'a Client,
    id: i64,
    stream: Option<Stream>,
    /// Send time of the request whose answer is awaited.
    in_flight: Option<Instant>,
    next_send: Instant,
    /// Past this the lease may be gone.
    deadline: Instant,
    /// TTL of the latest answer (0 before the first).
    ttl: i64,
    reopen: Reopen,
}

/// Renews lease `id` until it is lost or `stop` says so; every renewal and
/// the loss go to `events`.
pub(crate) fn run(client: &Client, id: i64, events: &Events, stop: &Stop) {
    let now = Instant::now();
    let mut st = State {
        client,
        id,
        stream: None,
        in_flight: None,
        next_send: now,
        // Until an answer gives the TTL, the first renewal has the request
        // timeout to succeed.
        deadline: now + client.options().request_timeout,
        ttl: 0,
        reopen: Reopen { at: now, next: Duration::ZERO },
    };
    while !stop.requested() {
        if Instant::now() >= st.deadline {
            events.push(KeepAliveEvent::Lost(st.deadline_text()));
            return;
        }
        st.send_if_due();
        let wake = st.wake_time();
        let got = match &st.stream {
            Some(s) => s.recv_deadline_or(wake, &stop.0),
            None if stop.wait_until(wake) => return,
            None => continue,
        };
        match got {
            Ok(None) => return,
            Ok(Some(answer)) => {
                if let Some(lost) = st.on_answer(answer, events) {
                    events.push(KeepAliveEvent::Lost(lost));
                    return;
                }
            }
            Err(CallError::Timeout) => {
                if st.in_flight.is_some_and(|sent| Instant::now() >= sent + st.answer_wait()) {
                    st.broken("no answer in time");
                }
            }
            Err(e) => st.broken(&format!("{e:?}")),
        }
    }
}

impl State<'_> {
    fn request(&self) -> Req {
        Req::LeaseKeepAlive(LeaseKeepAliveRequest { id: self.id })
    }

    /// Sends the next renewal if it is due: on the stream, or by opening
    /// one (its first request is the renewal).
    fn send_if_due(&mut self) {
        let now = Instant::now();
        if self.in_flight.is_some() || now < self.next_send {
            return;
        }
        match &self.stream {
            Some(s) => match s.send(&self.request(), self.deadline) {
                Ok(()) => self.in_flight = Some(now),
                Err(e) => self.broken(&format!("send failed: {e:?}")),
            },
            None if now >= self.reopen.at => {
                let until = self.deadline.min(now + self.client.options().request_timeout);
                match self.client.open_stream_until(self.request(), STREAM_CAPACITY, until) {
                    // The time before opening: an earlier send time only
                    // makes the deadline more cautious.
                    Ok(s) => (self.stream, self.in_flight) = (Some(s), Some(now)),
                    Err(e) => {
                        log::debug!("lease {:016x}: opening a keep-alive stream failed: {e}", self.id);
                        self.reopen.failed();
                    }
                }
            }
            None => {}
        }
    }

    /// The earliest of: the lease deadline, the next send (or re-open),
    /// and the time an awaited answer counts as late.
    fn wake_time(&self) -> Instant {
        let mut wake = self.deadline;
        match self.in_flight {
            Some(sent) => wake = wake.min(sent + self.answer_wait()),
            None if self.stream.is_some() => wake = wake.min(self.next_send),
            None => wake = wake.min(self.next_send.max(self.reopen.at)),
        }
        wake
    }

    fn answer_wait(&self) -> Duration {
        let third = if self.ttl > 0 {
            Duration::from_secs(self.ttl as u64) / 3
        } else {
            self.client.options().request_timeout / 3
        };
        third.max(MIN_ANSWER_WAIT)
    }

    /// Handles one answer; `Some(reason)` when the lease is lost.
    fn on_answer(&mut self, answer: Resp, events: &Events) -> Option<String> {
        match answer {
            Resp::LeaseKeepAlive(r) => {
                // One answer per request, in order; an answer nobody asked
                // for says nothing about when the lease was renewed.
                let sent = self.in_flight.take()?;
                if r.ttl <= 0 {
                    return Some("lease expired or revoked".to_string());
                }
                self.ttl = r.ttl;
                self.deadline = sent + Duration::from_secs(r.ttl as u64);
                self.next_send = Instant::now() + Duration::from_secs(r.ttl as u64) / 3;
                self.reopen.succeeded();
                events.push(KeepAliveEvent::Renewed(r));
                None
            }
            Resp::Error(e) => {
                let e = ApiError::from_proto(&e);
                if !e.is_retryable() {
                    return Some(e.message);
                }
                self.broken(&e.message);
                None
            }
            other => {
                self.broken(&format!("unexpected answer {other:?}"));
                None
            }
        }
    }

    /// The stream is of no more use: drop it (canceling it on the server)
    /// and re-open after the backoff.
    fn broken(&mut self, why: &str) {
        log::debug!("lease {:016x}: keep-alive stream broken ({why}); re-opening", self.id);
        self.stream = None;
        self.in_flight = None;
        self.reopen.failed();
    }

    fn deadline_text(&self) -> String {
        if self.ttl > 0 {
            format!("no renewal succeeded within the lease's TTL ({}s): it may have expired", self.ttl)
        } else {
            format!("no answer to the first renewal within {:?}", self.client.options().request_timeout)
        }
    }
}
