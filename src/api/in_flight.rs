//! What is in flight on one client connection: unary requests (one answer
//! due by a deadline) and streams (answers until they end, an owner told of
//! the end). The client I/O thread keeps one per connection; this is its
//! whole request bookkeeping, without sockets, so it is tested alone.
//!
//! Owns the request ids of one connection and their lifecycle; never
//! touches a socket, never blocks, never decides how a request is served
//! (the dispatch function given to `admit` does).

use super::dispatch::Dispatched;
use crate::plumbing::errors::ApiError;
use crate::plumbing::outbox::{Outgoing, StreamOwner};
use crate::proto::raftkvpb::{client_request, ClientRequest, ErrorCode};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A request id in flight.
enum Entry {
    /// One answer is due by the deadline.
    Unary(Instant),
    /// Answers come until the stream ends; the owner hears of its end.
    Stream(Box<dyn StreamOwner>),
}

pub struct InFlight {
    entries: HashMap<u64, Entry>,
    max: usize,
    request_timeout: Duration,
}

impl InFlight {
    pub fn new(max: usize, request_timeout: Duration) -> InFlight {
        InFlight { entries: HashMap::new(), max, request_timeout }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether a unary request waits for its answer (streams never finish
    /// on their own, so only these hold a shutdown back).
    pub fn has_unary(&self) -> bool {
        self.entries.values().any(|e| matches!(e, Entry::Unary(_)))
    }

    /// A request read from the connection: a later request on an open
    /// stream goes to its owner (a `CancelStream` ends the stream); a new
    /// one is admitted within the bound and handed to `dispatch`. Returns
    /// the error to answer at once, if any.
    pub fn admit(
        &mut self,
        req: ClientRequest,
        now: Instant,
        dispatch: impl FnOnce(ClientRequest) -> Dispatched,
    ) -> Option<(u64, ApiError)> {
        let rid = req.request_id;
        match self.entries.get_mut(&rid) {
            Some(Entry::Stream(owner)) => {
                match req.body {
                    Some(client_request::Body::CancelStream(_)) => {
                        owner.on_end();
                        self.entries.remove(&rid);
                    }
                    Some(body) => owner.on_request(body),
                    None => return Some((rid, ApiError::of(ErrorCode::UnknownRequest))),
                }
                return None;
            }
            Some(Entry::Unary(_)) => {
                return Some((rid, ApiError::invalid(format!("raftkv: request id {rid} is already in flight"))));
            }
            None => {}
        }
        if let Some(client_request::Body::CancelStream(_)) = req.body {
            return None; // the stream ended already: nothing to cancel
        }
        if self.entries.len() >= self.max {
            return Some((rid, ApiError::of(ErrorCode::TooManyRequests)));
        }
        // Registered before dispatching: an answer may be queued at once.
        self.entries.insert(rid, Entry::Unary(now + self.request_timeout));
        if let Dispatched::Stream(owner) = dispatch(req) {
            self.entries.insert(rid, Entry::Stream(owner));
        }
        None
    }

    /// Whether an answer from the outbox is still wanted (its request is in
    /// flight); a unary request, or a stream whose last message this is,
    /// leaves the table.
    pub fn take_answer(&mut self, out: &Outgoing) -> bool {
        let rid = out.response.request_id;
        match self.entries.get(&rid) {
            Some(Entry::Unary(_)) => {
                self.entries.remove(&rid);
                true
            }
            Some(Entry::Stream(_)) => {
                if out.ends {
                    self.entries.remove(&rid);
                }
                true
            }
            None => false,
        }
    }

    /// The unary requests past their deadline, removed: the caller answers
    /// them with a timeout.
    pub fn expire(&mut self, now: Instant) -> Vec<u64> {
        let expired: Vec<u64> =
            self.entries.iter().filter(|(_, e)| matches!(e, Entry::Unary(d) if *d <= now)).map(|(&id, _)| id).collect();
        for id in &expired {
            self.entries.remove(id);
        }
        expired
    }

    /// The connection closed: every stream's owner is told.
    pub fn close(&mut self) {
        for (_, e) in self.entries.drain() {
            if let Entry::Stream(mut owner) = e {
                owner.on_end();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{RangeRequest, WatchRequest};
    use crate::proto::raftkvpb::{client_response::Body, CancelStream, ClientResponse};
    use std::sync::{Arc, Mutex};

    /// A stream owner that records what it hears.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl StreamOwner for Recorder {
        fn on_request(&mut self, body: client_request::Body) {
            let name = format!("{body:?}");
            self.0.lock().unwrap().push(name.split('(').next().unwrap_or("?").to_string());
        }
        fn on_end(&mut self) {
            self.0.lock().unwrap().push("end".into());
        }
    }

    fn req(id: u64, body: client_request::Body) -> ClientRequest {
        ClientRequest { request_id: id, auth_token: String::new(), body: Some(body) }
    }

    fn range(id: u64) -> ClientRequest {
        req(id, client_request::Body::Range(RangeRequest::default()))
    }

    fn watch(id: u64) -> ClientRequest {
        req(id, client_request::Body::Watch(WatchRequest::default()))
    }

    fn cancel(id: u64) -> ClientRequest {
        req(id, client_request::Body::CancelStream(CancelStream {}))
    }

    fn answer(id: u64, ends: bool) -> Outgoing {
        Outgoing {
            response: ClientResponse { request_id: id, body: Some(Body::Range(Default::default())) },
            ends,
            size: 0,
        }
    }

    fn unary(_: ClientRequest) -> Dispatched {
        Dispatched::Unary
    }

    #[test]
    fn a_unary_request_is_answered_once_and_its_id_is_free_again() {
        let now = Instant::now();
        let mut t = InFlight::new(8, Duration::from_secs(5));
        assert!(t.admit(range(1), now, unary).is_none());
        let (id, e) = t.admit(range(1), now, unary).expect("a second request with an id in flight");
        assert_eq!((id, e.code), (1, ErrorCode::InvalidArgument));
        assert!(t.take_answer(&answer(1, true)));
        assert!(!t.take_answer(&answer(1, true)), "a second answer is dropped");
        assert!(t.is_empty() && t.admit(range(1), now, unary).is_none(), "the id is free again");
    }

    #[test]
    fn later_requests_on_a_stream_go_to_its_owner_until_it_ends() {
        let now = Instant::now();
        let mut t = InFlight::new(8, Duration::from_secs(5));
        let rec = Recorder::default();
        let owner = rec.clone();
        assert!(t.admit(watch(3), now, move |_| Dispatched::Stream(Box::new(owner))).is_none());
        assert!(t.admit(watch(3), now, |_| panic!("not dispatched again")).is_none());
        assert!(t.take_answer(&answer(3, false)) && t.take_answer(&answer(3, false)), "many answers");
        assert!(!t.has_unary(), "a stream does not hold a shutdown back");
        assert!(t.admit(cancel(3), now, unary).is_none());
        assert_eq!(*rec.0.lock().unwrap(), ["Watch", "end"]);
        assert!(t.is_empty());
        assert!(!t.take_answer(&answer(3, false)), "answers after the end are dropped");
        assert!(t.admit(cancel(3), now, |_| panic!("nothing to cancel")).is_none());
    }

    #[test]
    fn a_stream_ended_by_its_owner_frees_the_id_at_its_last_message() {
        let now = Instant::now();
        let mut t = InFlight::new(8, Duration::from_secs(5));
        let owner = Recorder::default();
        t.admit(watch(4), now, move |_| Dispatched::Stream(Box::new(owner)));
        assert!(t.take_answer(&answer(4, true)), "the last message is still written");
        assert!(t.is_empty());
    }

    #[test]
    fn admission_is_bounded_and_counts_streams() {
        let now = Instant::now();
        let mut t = InFlight::new(2, Duration::from_secs(5));
        let owner = Recorder::default();
        t.admit(watch(1), now, move |_| Dispatched::Stream(Box::new(owner)));
        t.admit(range(2), now, unary);
        let (id, e) = t.admit(range(3), now, |_| panic!("not admitted")).expect("refused");
        assert_eq!((id, e.code), (3, ErrorCode::TooManyRequests));
        // Requests on the open stream still get through.
        assert!(t.admit(watch(1), now, |_| panic!("routed, not dispatched")).is_none());
    }

    #[test]
    fn unary_requests_expire_and_streams_do_not() {
        let now = Instant::now();
        let mut t = InFlight::new(8, Duration::from_secs(5));
        let owner = Recorder::default();
        t.admit(range(1), now, unary);
        t.admit(watch(2), now, move |_| Dispatched::Stream(Box::new(owner)));
        assert!(t.expire(now + Duration::from_secs(4)).is_empty());
        assert_eq!(t.expire(now + Duration::from_secs(5)), vec![1]);
        assert_eq!(t.len(), 1);
        assert!(!t.take_answer(&answer(1, true)), "a late answer is dropped");
    }

    #[test]
    fn closing_tells_every_stream_owner() {
        let now = Instant::now();
        let mut t = InFlight::new(8, Duration::from_secs(5));
        let (a, b) = (Recorder::default(), Recorder::default());
        let (oa, ob) = (a.clone(), b.clone());
        t.admit(watch(1), now, move |_| Dispatched::Stream(Box::new(oa)));
        t.admit(watch(2), now, move |_| Dispatched::Stream(Box::new(ob)));
        t.admit(range(3), now, unary);
        t.close();
        assert_eq!((a.0.lock().unwrap().len(), b.0.lock().unwrap().len()), (1, 1));
        assert!(t.is_empty());
    }
}
