//! The in-flight window of append messages to one follower: how many are
//! unacknowledged and how many bytes they carry.
//!
//! Owns only the accounting; the progress decides when to consult it.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub(crate) struct Inflights {
    /// (last index of the message, bytes of its entries), oldest first.
    window: VecDeque<(u64, u64)>,
    bytes: u64,
    max_count: usize,
    /// 0 means no byte limit.
    max_bytes: u64,
}

impl Inflights {
    pub(crate) fn new(max_count: usize, max_bytes: u64) -> Inflights {
        Inflights { window: VecDeque::new(), bytes: 0, max_count, max_bytes }
    }

    /// Records a message whose last entry is `index`.
    pub(crate) fn add(&mut self, index: u64, bytes: u64) {
        assert!(!self.full(), "invariant: adding to a full in-flight window");
        if let Some(&(last, _)) = self.window.back() {
            assert!(index > last, "invariant: in-flight indexes increase ({index} after {last})");
        }
        self.window.push_back((index, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last index is `<= to`.
    pub(crate) fn free_le(&mut self, to: u64) {
        while let Some(&(index, bytes)) = self.window.front() {
            if index > to {
                break;
            }
            self.bytes -= bytes;
            self.window.pop_front();
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.window.len() >= self.max_count || (self.max_bytes != 0 && self.bytes >= self.max_bytes)
    }

    pub(crate) fn count(&self) -> usize {
        self.window.len()
    }

    pub(crate) fn reset(&mut self) {
        self.window.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_limit() {
        let mut w = Inflights::new(3, 0);
        w.add(1, 10);
        w.add(2, 10);
        assert!(!w.full());
        w.add(3, 10);
        assert!(w.full());
        w.free_le(2);
        assert_eq!(w.count(), 1);
        assert!(!w.full());
    }

    #[test]
    fn byte_limit() {
        let mut w = Inflights::new(100, 25);
        w.add(1, 10);
        w.add(2, 10);
        assert!(!w.full());
        w.add(3, 10);
        assert!(w.full(), "30 bytes >= 25");
        w.free_le(1);
        assert!(!w.full());
        w.reset();
        assert_eq!(w.count(), 0);
    }
}
