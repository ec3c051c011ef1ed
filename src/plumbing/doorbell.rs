//! Waking a thread that waits on bounded channels, without spinning.
//!
//! crossbeam's blocking receive (and `select!`) spins, then yields the CPU
//! a few times, before it sleeps. On two cores shared by a dozen busy
//! threads one yield can last milliseconds, and a message that arrives
//! meanwhile waits for the yielding thread to be scheduled again: under
//! load that was a visible share of the write latency's tail. A thread
//! asleep in `park`, woken by `unpark`, is scheduled promptly instead.
//!
//! So the threads on the write path (raft, apply) own a `Doorbell`: their
//! senders are `RingingSender`s, which ring it after every message they
//! deliver (and when they are dropped, so a closed channel is noticed); the
//! owner drains its channels with `try_recv` and waits on the doorbell only
//! when they are all empty. A ring that comes between the last `try_recv`
//! and the wait is not lost: `park` returns at once after an `unpark`.
//!
//! Owns only the wake-up; never holds or orders messages.

use crossbeam_channel::{Receiver, SendError, SendTimeoutError, Sender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// The wake-up of one thread, its owner.
#[derive(Default)]
pub struct Doorbell {
    owner: OnceLock<Thread>,
}

impl Doorbell {
    pub fn new() -> Arc<Doorbell> {
        Arc::new(Doorbell::default())
    }

    /// Makes the calling thread the one woken. Called by the owner before
    /// it first looks at its channels, so no ring after that is missed.
    pub fn claim(&self) {
        let me = std::thread::current();
        let owner = self.owner.get_or_init(|| me.clone());
        assert!(owner.id() == me.id(), "invariant: a doorbell wakes the one thread that claimed it");
    }

    /// Wakes the owner (or makes its next wait return at once).
    pub fn ring(&self) {
        if let Some(t) = self.owner.get() {
            t.unpark();
        }
    }

    /// Sleeps until rung or `timeout` passes (the owner only; it may also
    /// return early, so callers look at their channels again).
    pub fn wait_timeout(&self, timeout: Duration) {
        std::thread::park_timeout(timeout);
    }
}

/// A bounded channel to the owner of `bell`.
pub fn channel<T>(capacity: usize, bell: &Arc<Doorbell>) -> (RingingSender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (RingingSender { tx: Some(tx), bell: bell.clone() }, rx)
}

/// The sending half: crossbeam's `Sender`, ringing after each delivery.
pub struct RingingSender<T> {
    /// Taken (dropped) before the last ring, so the owner sees the channel
    /// closed; `Some` until then.
    tx: Option<Sender<T>>,
    bell: Arc<Doorbell>,
}

impl<T> RingingSender<T> {
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let Some(tx) = &self.tx else { return Err(TrySendError::Disconnected(msg)) };
        tx.try_send(msg)?;
        self.bell.ring();
        Ok(())
    }

    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        let Some(tx) = &self.tx else { return Err(SendError(msg)) };
        tx.send(msg)?;
        self.bell.ring();
        Ok(())
    }

    pub fn is_full(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.is_full())
    }

    /// Wakes the owner without a message (something it polls changed).
    pub fn ring(&self) {
        self.bell.ring();
    }

    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        let Some(tx) = &self.tx else { return Err(SendTimeoutError::Disconnected(msg)) };
        tx.send_timeout(msg, timeout)?;
        self.bell.ring();
        Ok(())
    }
}

impl<T> Clone for RingingSender<T> {
    fn clone(&self) -> Self {
        RingingSender { tx: self.tx.clone(), bell: self.bell.clone() }
    }
}

impl<T> Drop for RingingSender<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.bell.ring();
    }
}

impl<T> std::fmt::Debug for RingingSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingingSender")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::TryRecvError;
    use std::time::Instant;

    /// The owner's loop: drain, then wait; returns what it received.
    fn owner_loop(bell: Arc<Doorbell>, rx: Receiver<u32>) -> Vec<u32> {
        bell.claim();
        let mut got = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(v) => got.push(v),
                Err(TryRecvError::Disconnected) => return got,
                // Long enough that only a ring ends the wait in time.
                Err(TryRecvError::Empty) => bell.wait_timeout(Duration::from_secs(60)),
            }
        }
    }

    #[test]
    fn every_message_wakes_the_owner_and_dropping_the_senders_ends_it() {
        let bell = Doorbell::new();
        let (tx, rx) = channel::<u32>(4, &bell);
        let b = bell.clone();
        let owner = std::thread::spawn(move || owner_loop(b, rx));
        let started = Instant::now();
        for i in 0..1000 {
            tx.send(i).unwrap();
        }
        let tx2 = tx.clone();
        tx2.try_send(1000).or_else(|e| tx2.send(e.into_inner())).unwrap();
        drop(tx);
        drop(tx2);
        let got = owner.join().unwrap();
        assert_eq!(got, (0..=1000).collect::<Vec<_>>());
        assert!(started.elapsed() < Duration::from_secs(30), "a ring was lost: the owner slept through a wait");
    }

    #[test]
    #[should_panic(expected = "invariant")]
    fn a_doorbell_has_one_owner() {
        let bell = Doorbell::new();
        let b = bell.clone();
        std::thread::spawn(move || b.claim()).join().unwrap();
        bell.claim();
    }
}
