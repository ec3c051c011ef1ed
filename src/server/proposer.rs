//! The proposer: the one way any part of the node puts something in the
//! Raft log and learns its outcome. It registers a waiter (one registry,
//! one deadline sweep on the raft thread), queues the proposal to the raft
//! thread without blocking, and the apply thread completes the waiter when
//! the entry is applied. Errors are clear: too large, too many requests,
//! stopped; "no leader" and "timed out" come from the sweep.
//!
//! Owns ids, encoding and the hand-over; never waits for the outcome itself
//! (callers that want to wait use `propose_and_wait`'s receiver).

use super::msgs::{Payload, Proposal};
use crate::plumbing::doorbell::RingingSender;
use crate::plumbing::errors::ApiError;
use crate::plumbing::ids::RequestIds;
use crate::plumbing::wait::{Completion, WaitRegistry};
use crate::proto::internalpb::{internal_request, InternalRequest, MemberContext};
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::proto::raftpb::ConfChangeV2;
use crossbeam_channel::{bounded, Receiver, TrySendError};
use prost::Message as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Proposer {
    pub member_id: u64,
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    pub ids: Arc<RequestIds>,
    pub wait: Arc<WaitRegistry>,
    pub proposals: RingingSender<Proposal>,
}

impl Proposer {
    /// Proposes a state-machine request; `completion` gets its outcome.
    pub fn propose(&self, body: internal_request::Body, completion: impl Into<Completion>) {
        let id = self.ids.next();
        let data = InternalRequest { id, member_id: self.member_id, body: Some(body) }.encode_to_vec();
        if data.len() > self.max_request_bytes {
            return completion.into().fail(ApiError::of(ErrorCode::RequestTooLarge));
        }
        self.submit(Proposal { id, payload: Payload::Request(data.into()) }, completion.into());
    }

    /// Proposes a request and returns where its outcome will arrive.
    pub fn propose_and_wait(&self, body: internal_request::Body) -> Receiver<Result<Body, ApiError>> {
        let (tx, rx) = bounded(1);
        self.propose(body, Completion::Notify(tx));
        rx
    }

    /// Proposes a membership change. Its context (`MemberContext.member`,
    /// if any) is kept; the waiter's id and this member are added, and the
    /// outcome is the member list after the change.
    pub fn propose_conf_change(&self, mut cc: ConfChangeV2, completion: impl Into<Completion>) {
        let id = self.ids.next();
        let mut ctx = MemberContext::decode(cc.context.clone()).unwrap_or_default();
        ctx.request_id = id;
        ctx.proposer = self.member_id;
        cc.context = ctx.encode_to_vec().into();
        self.submit(Proposal { id, payload: Payload::ConfChange(cc) }, completion.into());
    }

    /// Proposes a lease id for a grant that left it to the server: unique
    /// in the cluster (the member's bits and a counter) and positive.
    pub fn new_lease_id(&self) -> i64 {
        let id = (self.ids.next() & (i64::MAX as u64)) as i64;
        if id == 0 {
            self.new_lease_id()
        } else {
            id
        }
    }

    fn submit(&self, p: Proposal, completion: Completion) {
        let id = p.id;
        let deadline = Instant::now() + self.request_timeout;
        if let Err(c) = self.wait.register(id, completion, deadline) {
            return c.fail(ApiError::of(ErrorCode::TooManyRequests));
        }
        let code = match self.proposals.try_send(p) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => ErrorCode::TooManyRequests,
            Err(TrySendError::Disconnected(_)) => ErrorCode::Stopped,
        };
        if let Some(c) = self.wait.take(id) {
            c.fail(ApiError::of(code));
        }
    }
}

impl crate::lease::LeaseProposer for Proposer {
    fn propose(&self, body: internal_request::Body, done: crate::lease::lessor::Done) {
        Proposer::propose(self, body, Completion::Call(done));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plumbing::doorbell::{self, Doorbell};
    use crate::proto::etcdserverpb::PutRequest;

    fn proposer(queue: usize) -> (Proposer, crossbeam_channel::Receiver<Proposal>) {
        let bell = Doorbell::new();
        let (tx, rx) = doorbell::channel(queue, &bell);
        let p = Proposer {
            member_id: 7,
            max_request_bytes: 1024,
            request_timeout: Duration::from_secs(5),
            ids: Arc::new(RequestIds::new(7)),
            wait: Arc::new(WaitRegistry::new(16)),
            proposals: tx,
        };
        (p, rx)
    }

    fn put(len: usize) -> internal_request::Body {
        internal_request::Body::Put(PutRequest { key: "k".into(), value: vec![0; len].into(), ..Default::default() })
    }

    #[test]
    fn a_proposal_is_queued_with_its_waiter_registered() {
        let (p, rx) = proposer(4);
        let outcome = p.propose_and_wait(put(1));
        let got = rx.try_recv().expect("queued");
        assert!(p.wait.contains(got.id));
        p.wait.take(got.id).expect("waiter").complete(Err(ApiError::of(ErrorCode::Timeout)));
        assert_eq!(outcome.try_recv().unwrap().unwrap_err().code, ErrorCode::Timeout);
    }

    #[test]
    fn too_large_and_full_queue_fail_at_once_and_leave_no_waiter() {
        let (p, _rx) = proposer(1);
        let big = p.propose_and_wait(put(4096));
        assert_eq!(big.try_recv().unwrap().unwrap_err().code, ErrorCode::RequestTooLarge);
        let _first = p.propose_and_wait(put(1));
        let second = p.propose_and_wait(put(1));
        assert_eq!(second.try_recv().unwrap().unwrap_err().code, ErrorCode::TooManyRequests);
        assert_eq!(p.wait.len(), 1, "only the queued proposal waits");
    }

    #[test]
    fn a_conf_change_carries_its_waiter_and_proposer_in_the_context() {
        let (p, rx) = proposer(4);
        let _outcome = p.propose_and_wait(put(1));
        let (tx, _keep) = bounded(1);
        p.propose_conf_change(ConfChangeV2::default(), Completion::Notify(tx));
        let _normal = rx.try_recv().unwrap();
        let cc = rx.try_recv().unwrap();
        let Payload::ConfChange(cc_msg) = cc.payload else { panic!("a conf change") };
        let ctx = MemberContext::decode(cc_msg.context).unwrap();
        assert_eq!((ctx.request_id, ctx.proposer), (cc.id, 7));
    }
}
