//! Notices of a changing value (the leader, above all) for the parts of a
//! node that act on it: the latest value is always readable, and each
//! subscriber has a signal that coalesces changes, so a slow subscriber
//! never misses the newest value and a publisher never blocks.
//!
//! Owns only the value and the signals; never decides what a change means.

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use std::sync::Mutex;

/// Who leads, as this member last learned it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderInfo {
    /// 0 while no leader is known.
    pub leader: u64,
    pub term: u64,
    /// This member is the leader.
    pub is_self: bool,
}

/// A value with change signals.
pub struct Notices<T: Clone> {
    inner: Mutex<(T, Vec<Sender<()>>)>,
}

impl<T: Clone> Notices<T> {
    pub fn new(initial: T) -> Notices<T> {
        Notices { inner: Mutex::new((initial, Vec::new())) }
    }

    /// The latest value.
    pub fn current(&self) -> T {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// A signal that fires after every change (several changes may fire it
    /// once: read `current` when it does). Dropping the receiver
    /// unsubscribes.
    pub fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = bounded(1);
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1.push(tx);
        rx
    }

    /// Sets the value and signals every subscriber; never blocks.
    pub fn publish(&self, value: T) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = value;
        g.1.retain(|tx| !matches!(tx.try_send(()), Err(TrySendError::Disconnected(_))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_subscriber_sees_the_latest_value_once() {
        let n = Notices::new(LeaderInfo::default());
        let rx = n.subscribe();
        for term in 1..=5 {
            n.publish(LeaderInfo { leader: 9, term, is_self: false });
        }
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "changes coalesce into one signal");
        assert_eq!(n.current().term, 5);
    }

    #[test]
    fn dropped_subscribers_are_forgotten() {
        let n = Notices::new(0u64);
        drop(n.subscribe());
        n.publish(1);
        assert!(n.inner.lock().unwrap().1.is_empty());
    }
}
