//! Proposals waiting to be applied: request id -> who wants the outcome.
//!
//! The proposer registers a waiter before proposing; the apply thread takes
//! it when the entry with that id is applied and completes it. Entries never
//! applied (a dropped proposal, a lost leader) expire: the raft thread
//! sweeps them with one deadline sweep and answers with a timeout. Sharded
//! to keep lock contention low; bounded so a flood of proposals cannot grow
//! it forever. Owns only the waiting; never decides an outcome.

use super::errors::ApiError;
use super::outbox::Responder;
use crate::proto::raftkvpb::client_response::Body;
use crate::proto::raftkvpb::ErrorCode;
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 16;

/// Who receives a proposal's outcome: a client's connection, or a part of
/// the node that proposed on its own behalf (through a bounded channel of
/// one, or a callback that must not block: completing never blocks).
pub enum Completion {
    Reply(Responder),
    Notify(Sender<Result<Body, ApiError>>),
    Call(Box<dyn FnOnce(Result<Body, ApiError>) + Send>),
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Completion::Reply(r) => f.debug_tuple("Reply").field(r).finish(),
            Completion::Notify(_) => f.write_str("Notify"),
            Completion::Call(_) => f.write_str("Call"),
        }
    }
}

impl Completion {
    pub fn complete(self, r: Result<Body, ApiError>) {
        match self {
            Completion::Reply(responder) => responder.answer(r),
            Completion::Notify(tx) => {
                let _ = tx.try_send(r);
            }
            Completion::Call(f) => f(r),
        }
    }

    pub fn fail(self, e: ApiError) {
        self.complete(Err(e));
    }
}

impl From<Responder> for Completion {
    fn from(r: Responder) -> Completion {
        Completion::Reply(r)
    }
}

struct Waiter {
    completion: Completion,
    deadline: Instant,
}

pub struct WaitRegistry {
    shards: Vec<Mutex<HashMap<u64, Waiter>>>,
    len: AtomicUsize,
    capacity: usize,
}

impl WaitRegistry {
    pub fn new(capacity: usize) -> WaitRegistry {
        WaitRegistry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
            capacity,
        }
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Waiter>> {
        &self.shards[(id as usize ^ (id >> 32) as usize) % SHARDS]
    }

    /// Registers a waiter. Refuses (handing the completion back) when full.
    pub fn register(&self, id: u64, completion: Completion, deadline: Instant) -> Result<(), Completion> {
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            return Err(completion);
        }
        let mut shard = match self.shard(id).lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if shard.insert(id, Waiter { completion, deadline }).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether `id` is still waiting.
    pub fn contains(&self, id: u64) -> bool {
        match self.shard(id).lock() {
            Ok(s) => s.contains_key(&id),
            Err(poisoned) => poisoned.into_inner().contains_key(&id),
        }
    }

    /// Takes the waiter of `id`, if it is still waiting.
    pub fn take(&self, id: u64) -> Option<Completion> {
        let mut shard = match self.shard(id).lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let w = shard.remove(&id)?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(w.completion)
    }

    /// Answers every waiter past its deadline with `error`.
    pub fn expire(&self, now: Instant, error: &ApiError) {
        for shard in &self.shards {
            let expired: Vec<Waiter> = {
                let mut s = match shard.lock() {
                    Ok(s) => s,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let ids: Vec<u64> = s.iter().filter(|(_, w)| w.deadline <= now).map(|(&id, _)| id).collect();
                ids.into_iter().filter_map(|id| s.remove(&id)).collect()
            };
            self.len.fetch_sub(expired.len(), Ordering::Relaxed);
            for w in expired {
                w.completion.fail(error.clone());
            }
        }
    }

    /// Answers every waiter with `code` (shutdown).
    pub fn fail_all(&self, code: ErrorCode) {
        self.expire(Instant::now() + std::time::Duration::from_secs(1 << 30), &ApiError::of(code));
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
