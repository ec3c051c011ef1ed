//! The hand-off of committed events from the apply thread to the watch
//! dispatcher: a bounded channel the apply thread only `try_send`s into.
//! When it is full the events are dropped and a flag is raised; the
//! dispatcher then treats every synced watcher as behind and reads the
//! missing revisions from storage. So the apply thread never waits for
//! watchers, and watchers never miss an event.
//!
//! Owns only the hand-off; never filters or orders events (the apply thread
//! sends them in revision order, after the batch that wrote them is
//! committed and readable).

use crate::plumbing::doorbell::RingingSender;
use crate::proto::mvccpb::Event;
use crossbeam_channel::TrySendError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct EventFeed {
    tx: RingingSender<Vec<Event>>,
    dropped: Arc<AtomicBool>,
}

impl EventFeed {
    pub fn new(tx: RingingSender<Vec<Event>>, dropped: Arc<AtomicBool>) -> EventFeed {
        EventFeed { tx, dropped }
    }

    /// Hands over the events of one committed batch; never blocks.
    pub fn publish(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        match self.tx.try_send(events) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.store(true, Ordering::SeqCst);
                self.tx.ring();
            }
        }
    }
}
