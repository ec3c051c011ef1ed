//! Scenario tests of the Raft consensus core (`src/raft/`): precise,
//! hand-driven complements to the randomized simulation. Every scenario runs
//! on the deterministic harness in `harness.rs`.

mod harness;

mod bad_input;
mod election;
mod flow_control;
mod membership;
mod reads;
mod replication;
mod snapshot;
mod transfer;
