//! Leases: etcd's Lease API. Granting, revoking and renewing go through
//! the Raft log (the lease applier in `server::apply` changes the table);
//! expiry is decided by the leader's lessor and revokes through the log.
//!
//! ```text
//!  client-io ──LeaseHub / KeepAliveStreamOwner (bounded)──► lessor thread ──proposals──► Raft log
//!                                                              │  ▲ outcomes                │
//!                  keep-alive answers ◄── StreamSender ────────┘  └────────── apply thread ◄┘
//!                                                                    │ grant / renew / revoke / attach
//!                                      reads (time-to-live, list) ──► LeaseTable ◄──┘
//! ```
//!
//! | file | owns |
//! | --- | --- |
//! | `table.rs` | the leases, their attached keys, this member's deadlines and the expiry heap |
//! | `hub.rs` | the handle client I/O opens keep-alive streams through, and the stream owner it keeps |
//! | `lessor.rs` | the lessor's state machine: keep-alives batched into renewals, expiry on the leader; steppable without threads |
//! | `runner.rs` | the lessor thread around it |
//!
//! Correct where etcd is not: a keep-alive is answered only once its
//! renewal is committed, and every member restarts the lease's clock when
//! it applies the renewal, so a new leader keeps the remaining TTL (etcd
//! restarts it, etcd #9395); a revocation for expiry names the renewal it
//! was decided on and is ignored if the lease was renewed since, so a stale
//! leader never revokes a live lease (etcd #12528); expiry is found with a
//! deadline heap and revoked in batches of many leases per entry.
//!
//! Never blocks the apply thread or a client; never writes the keyspace
//! itself (revocations are entries of the log).

pub mod hub;
pub mod lessor;
pub mod runner;
pub mod table;

pub use hub::{LeaseCmd, LeaseHub};
pub use lessor::{LeaseProposer, Lessor, LessorConfig};
pub use table::LeaseTable;

/// etcd's `MaxLeaseTTL`: 9,000,000,000 seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// The most leases a cluster holds; a grant past it is refused.
pub const MAX_LEASES: usize = 1_000_000;

/// etcd's minimum TTL: one and a half election timeouts, rounded up to
/// whole seconds (a lease must outlive an election).
pub fn min_ttl(election_timeout: std::time::Duration) -> i64 {
    let ms = election_timeout.as_millis() as i64 * 3 / 2;
    ((ms + 999) / 1000).max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        use std::time::Duration;
        assert_eq!(super::min_ttl(Duration::from_millis(1000)), 2);
        assert_eq!(super::min_ttl(Duration::from_millis(2000)), 3);
        assert_eq!(super::min_ttl(Duration::from_millis(100)), 1);
    }
}
