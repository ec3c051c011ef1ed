//! What the leader knows about one follower's log, and the flow-control state
//! machine that decides what to send it next.
//!
//! Probe: the leader does not know where the logs agree; it sends one append
//! at a time and waits. Replicate: appends are streamed optimistically up to
//! the in-flight window. Snapshot: a snapshot is on its way; nothing else is
//! sent until it is reported.

use super::inflights::Inflights;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    Probe,
    Replicate,
    Snapshot,
}

impl fmt::Display for ProgressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProgressState::Probe => "StateProbe",
            ProgressState::Replicate => "StateReplicate",
            ProgressState::Snapshot => "StateSnapshot",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Progress {
    /// Highest index known to be replicated on the follower.
    pub matched: u64,
    /// Next index to send. Invariant: `matched < next`.
    pub next: u64,
    /// Highest commit index sent to the follower.
    pub(crate) sent_commit: u64,
    pub state: ProgressState,
    /// Index of the snapshot being sent (Snapshot state only).
    pub pending_snapshot: u64,
    /// Heard from recently (reset every election timeout under check-quorum).
    pub recent_active: bool,
    /// In Probe: an append is out and unanswered. In Replicate: the window is
    /// full.
    pub(crate) msg_app_flow_paused: bool,
    pub(crate) inflights: Inflights,
    pub is_learner: bool,
    /// The leader's tick at which the newest heartbeat this follower
    /// acknowledged was sent (leases, see `Raft::lease_valid`).
    pub(crate) lease_ack: u64,
}

impl Progress {
    pub(crate) fn new(next: u64, max_inflight: usize, max_inflight_bytes: u64) -> Progress {
        Progress {
            matched: 0,
            next,
            sent_commit: 0,
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: false,
            msg_app_flow_paused: false,
            inflights: Inflights::new(max_inflight, max_inflight_bytes),
            is_learner: false,
            lease_ack: 0,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.msg_app_flow_paused = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    pub(crate) fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            // The snapshot may have been applied: resume after it.
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next = self.matched + 1;
        }
        self.sent_commit = self.sent_commit.min(self.next - 1);
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched + 1;
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
        self.next = snapshot_index + 1;
        self.sent_commit = snapshot_index;
    }

    /// Records an append of `entries` entries (`bytes` bytes) just sent.
    pub(crate) fn sent_entries(&mut self, entries: usize, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if entries > 0 {
                    self.next += entries as u64;
                    self.inflights.add(self.next - 1, bytes);
                }
                self.msg_app_flow_paused = self.inflights.full();
            }
            ProgressState::Probe => {
                if entries > 0 {
                    self.msg_app_flow_paused = true;
                }
            }
            ProgressState::Snapshot => {
                panic!("invariant: appends are never sent to a follower in StateSnapshot")
            }
        }
    }

    pub(crate) fn sent_commit(&mut self, commit: u64) {
        self.sent_commit = commit;
    }

    /// Whether the follower should be told about a newer commit index.
    pub(crate) fn can_bump_commit(&self, index: u64) -> bool {
        index > self.sent_commit && self.sent_commit < self.next - 1
    }

    /// A successful append response for `n`. Returns whether it was news.
    pub(crate) fn maybe_update(&mut self, n: u64) -> bool {
        if n <= self.matched {
            return false;
        }
        self.matched = n;
        self.next = self.next.max(n + 1);
        self.msg_app_flow_paused = false;
        true
    }

    /// A rejected append for index `rejected`, with the follower's hint of
    /// where the logs may agree. Returns whether the rejection was news (a
    /// stale rejection is ignored).
    pub(crate) fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            // Appends were streamed optimistically; restart right after the
            // last known match.
            self.next = self.matched + 1;
            self.sent_commit = self.sent_commit.min(self.next - 1);
            return true;
        }
        // In Probe only the answer to the last probe counts.
        if self.next - 1 != rejected {
            return false;
        }
        self.next = rejected.min(match_hint + 1).max(self.matched + 1);
        self.sent_commit = self.sent_commit.min(self.next - 1);
        self.msg_app_flow_paused = false;
        true
    }

    /// Whether appends to this follower are paused by flow control.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe | ProgressState::Replicate => self.msg_app_flow_paused,
            ProgressState::Snapshot => true,
        }
    }

    /// Number of append messages in flight.
    pub fn inflight_count(&self) -> usize {
        self.inflights.count()
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} match={} next={}", self.state, self.matched, self.next)?;
        if self.is_learner {
            f.write_str(" learner")?;
        }
        if self.is_paused() {
            f.write_str(" paused")?;
        }
        if self.pending_snapshot > 0 {
            write!(f, " pendingSnap={}", self.pending_snapshot)?;
        }
        if !self.recent_active {
            f.write_str(" inactive")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(state: ProgressState, matched: u64, next: u64) -> Progress {
        let mut p = Progress::new(next, 4, 0);
        p.state = state;
        p.matched = matched;
        p
    }

    #[test]
    fn probe_sends_one_append_at_a_time() {
        let mut p = progress(ProgressState::Probe, 0, 5);
        assert!(!p.is_paused());
        p.sent_entries(3, 30);
        assert!(p.is_paused(), "waits for the answer");
        assert_eq!(p.next, 5, "next is not advanced while probing");
        assert!(p.maybe_update(7));
        assert!(!p.is_paused());
    }

    #[test]
    fn replicate_streams_up_to_the_window() {
        let mut p = progress(ProgressState::Replicate, 4, 5);
        for i in 0..4 {
            assert!(!p.is_paused(), "message {i}");
            p.sent_entries(1, 10);
        }
        assert!(p.is_paused(), "window of 4 is full");
        assert_eq!(p.next, 9);
        p.maybe_update(6);
        p.inflights.free_le(6);
        assert_eq!(p.inflight_count(), 2);
    }

    #[test]
    fn rejections_in_replicate_restart_after_match() {
        let mut p = progress(ProgressState::Replicate, 5, 10);
        assert!(!p.maybe_decr_to(5, 5), "stale: at or below match");
        assert!(p.maybe_decr_to(9, 9));
        assert_eq!(p.next, 6);
    }

    #[test]
    fn rejections_in_probe_use_the_hint() {
        let mut p = progress(ProgressState::Probe, 0, 10);
        assert!(!p.maybe_decr_to(5, 2), "not the outstanding probe");
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next, 4);
        p.matched = 5;
        p.next = 10;
        assert!(p.maybe_decr_to(9, 1));
        assert_eq!(p.next, 6, "never below match + 1");
    }

    #[test]
    fn snapshot_state_pauses_until_reported() {
        let mut p = progress(ProgressState::Probe, 1, 2);
        p.become_snapshot(50);
        assert!(p.is_paused());
        p.become_probe();
        assert_eq!(p.next, 51, "resumes after the snapshot");
    }
}
