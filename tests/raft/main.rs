//! Scenario tests of the Raft consensus core (`src/raft/`): precise,
//! hand-driven complements to the randomized simulation. Every scenario runs
//! on the deterministic harness in `harness.rs`.

mod harness;

mod election;
mod membership;
mod reads;
mod replication;
mod transfer;
