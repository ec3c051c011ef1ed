//! The watch dispatcher thread: drains its two inboxes (commands from client
//! I/O, committed events from the apply thread), steps the `WatchCore`, and
//! every `TICK` does its housekeeping and catch-up. It sleeps on a doorbell
//! (woken by both inboxes), so a put's events leave within one wake-up.
//!
//! Owns the thread and the pacing; all watch logic is in `core.rs`.

use super::core::{WatchCore, WatchStore};
use super::WatchCmd;
use crate::plumbing::doorbell::Doorbell;
use crate::proto::mvccpb::Event;
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Housekeeping period, and the pace of catch-up rounds.
const TICK: Duration = Duration::from_millis(10);
/// The period while no stream is open (an idle member stays idle; a new
/// stream's first command rings the doorbell anyway).
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Commands or event batches handled before housekeeping gets a turn.
const MAX_PER_TURN: usize = 1024;

pub struct WatchDispatcher<S: WatchStore> {
    pub core: WatchCore<S>,
    pub bell: Arc<Doorbell>,
    pub commands: Receiver<WatchCmd>,
    pub events: Receiver<Vec<Event>>,
    /// Raised by the `EventFeed` when it dropped events.
    pub dropped: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
}

impl<S: WatchStore> WatchDispatcher<S> {
    pub fn run(mut self) {
        self.bell.claim();
        let mut next_tick = Instant::now() + TICK;
        while !self.stop.load(Ordering::SeqCst) {
            let mut busy = false;
            for _ in 0..MAX_PER_TURN {
                match self.events.try_recv() {
                    Ok(evs) => {
                        self.core.on_events(evs);
                        busy = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            for _ in 0..MAX_PER_TURN {
                match self.commands.try_recv() {
                    Ok(cmd) => {
                        self.core.handle(cmd);
                        busy = true;
                        // Housekeeping at the normal pace from now on.
                        next_tick = next_tick.min(Instant::now() + TICK);
                    }
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                // Events handed over before the flag was raised are handled
                // above; the gap is what follows.
                let dropped = self.dropped.swap(false, Ordering::SeqCst);
                self.core.tick(now, dropped);
                next_tick = now + if self.core.stream_count() == 0 { IDLE_TICK } else { TICK };
            }
            if !busy {
                self.bell.wait_timeout(next_tick.saturating_duration_since(Instant::now()));
            }
        }
    }
}
