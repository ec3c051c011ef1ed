//! The lessor thread: drains its two inboxes (commands from client I/O,
//! outcomes of its proposals from the apply thread), and steps the
//! `Lessor` after each burst and at least every `TICK`, the granularity of
//! expiry. It sleeps on a doorbell that both inboxes ring, so a renewal's
//! answer leaves one wake-up after it is applied.
//!
//! Owns the thread and the pacing; all lease logic is in `lessor.rs`.

use super::hub::LeaseCmd;
use super::lessor::Lessor;
use crate::plumbing::doorbell::Doorbell;
use crate::plumbing::errors::ApiError;
use crate::proto::raftkvpb::client_response::Body;
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often expiry is looked at: a lease is revoked at most this late
/// (plus one commit).
const TICK: Duration = Duration::from_millis(50);
/// Commands or outcomes handled before the lessor steps.
const MAX_PER_TURN: usize = 4096;

pub struct LessorThread {
    pub lessor: Lessor,
    pub bell: Arc<Doorbell>,
    pub commands: Receiver<LeaseCmd>,
    pub outcomes: Receiver<(u64, Result<Body, ApiError>)>,
    pub stop: Arc<AtomicBool>,
}

impl LessorThread {
    pub fn run(mut self) {
        self.bell.claim();
        let mut next_tick = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let mut busy = false;
            for _ in 0..MAX_PER_TURN {
                match self.outcomes.try_recv() {
                    Ok((token, r)) => {
                        self.lessor.on_outcome(token, r, Instant::now());
                        busy = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            for _ in 0..MAX_PER_TURN {
                match self.commands.try_recv() {
                    Ok(cmd) => {
                        self.lessor.on_cmd(cmd, Instant::now());
                        busy = true;
                    }
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if busy || now >= next_tick {
                self.lessor.step(now);
                if now >= next_tick {
                    next_tick = now + TICK;
                }
            }
            if !busy {
                self.bell.wait_timeout(next_tick.saturating_duration_since(Instant::now()));
            }
        }
    }
}
