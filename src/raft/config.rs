//! Configuration of one consensus core.
//!
//! Owns the tunables and their validation. It never reads files or flags; the
//! server maps its own configuration onto this one.

use super::errors::{Error, Result};

/// How linearizable reads are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadOnlyOption {
    /// The leader confirms it is still leader with a quorum heartbeat round
    /// for every batch of reads. Safe under any clock behaviour.
    #[default]
    Safe,
    /// The leader relies on its lease (it heard from a quorum within the last
    /// election timeout, so no other leader can exist). Saves a round trip but
    /// trusts bounded clock drift; requires `check_quorum`.
    LeaseBased,
}

/// Configuration of a Raft node. `Config::new(id)` gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id; never 0.
    pub id: u64,
    /// Ticks without hearing from a leader before a follower campaigns. The
    /// actual timeout is randomized in `[election_tick, 2 * election_tick)`.
    pub election_tick: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// The last index the application has applied, when restarting.
    pub applied: u64,
    /// Maximum bytes of entries in one append message (at least one entry is
    /// always sent, however large).
    pub max_size_per_msg: u64,
    /// Maximum bytes of committed entries handed out in one `Ready`.
    pub max_committed_size_per_ready: u64,
    /// Maximum bytes of uncommitted entry payloads a leader accepts; further
    /// proposals are refused with `DropReason::UncommittedLimit`.
    pub max_uncommitted_entries_size: u64,
    /// Maximum append messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Maximum bytes of entries in flight to one follower (0: no byte limit).
    pub max_inflight_bytes: u64,
    /// A leader steps down when it has not heard from a quorum for an
    /// election timeout, and followers ignore votes while they have a leader.
    pub check_quorum: bool,
    /// Run a pre-election before raising the term, so a node that was
    /// partitioned away cannot disrupt the cluster when it comes back.
    pub pre_vote: bool,
    /// How read-index requests are confirmed.
    pub read_only_option: ReadOnlyOption,
    /// Drop proposals on followers instead of forwarding them to the leader.
    pub disable_proposal_forwarding: bool,
    /// A leader removed from the configuration steps down at once.
    pub step_down_on_removal: bool,
    /// Seed of the random number generator (randomized election timeouts).
    /// Mixed with `id`, so nodes with the same seed still differ.
    pub seed: u64,
}

impl Config {
    /// The defaults: election 10 ticks, heartbeat 1 tick, pre-vote and
    /// check-quorum on, safe read-index.
    pub fn new(id: u64) -> Config {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg: 1024 * 1024,
            max_committed_size_per_ready: 16 * 1024 * 1024,
            max_uncommitted_entries_size: 64 * 1024 * 1024,
            max_inflight_msgs: 256,
            max_inflight_bytes: 32 * 1024 * 1024,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            disable_proposal_forwarding: false,
            step_down_on_removal: true,
            seed: 0,
        }
    }

    /// Checks the configuration for values the core cannot work with.
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: &str| Err(Error::InvalidConfig(why.to_string()));
        if self.id == 0 {
            return invalid("id must not be 0");
        }
        if self.heartbeat_tick == 0 {
            return invalid("heartbeat_tick must be greater than 0");
        }
        if self.election_tick <= self.heartbeat_tick {
            return invalid("election_tick must be greater than heartbeat_tick");
        }
        if self.max_inflight_msgs == 0 {
            return invalid("max_inflight_msgs must be greater than 0");
        }
        if self.max_inflight_bytes != 0 && self.max_inflight_bytes < self.max_size_per_msg {
            return invalid("max_inflight_bytes must be at least max_size_per_msg");
        }
        if self.max_uncommitted_entries_size == 0 {
            return invalid("max_uncommitted_entries_size must be greater than 0");
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return invalid("check_quorum must be enabled when read_only_option is LeaseBased");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::new(1).validate().is_ok());
    }

    #[test]
    fn invalid_values_are_refused() {
        let mut c = Config::new(0);
        assert!(c.validate().is_err(), "id 0");
        c = Config::new(1);
        c.election_tick = 1;
        assert!(c.validate().is_err(), "election <= heartbeat");
        c = Config::new(1);
        c.check_quorum = false;
        c.read_only_option = ReadOnlyOption::LeaseBased;
        assert!(c.validate().is_err(), "lease reads need check-quorum");
        c = Config::new(1);
        c.max_inflight_msgs = 0;
        assert!(c.validate().is_err(), "no in-flight window");
    }
}
