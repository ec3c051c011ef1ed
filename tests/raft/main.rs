//! Scenario tests of the Raft consensus core (`src/raft/`): precise,
//! hand-driven complements to the randomized simulation (`src/sim/`). Every
//! scenario runs on the deterministic harness in `harness.rs`.
//!
//! | module | covers |
//! | --- | --- |
//! | `election` | terms and stale messages, one vote per term (persisted), the election restriction, randomized timeouts, heartbeats, pre-vote, check-quorum |
//! | `replication` | Figures 7 and 8 of the paper, fast backtracking with reject hints, log matching, the Ready contract's acknowledgements, forwarding |
//! | `membership` | learners, single-step add / remove, one pending change, joint consensus (auto, implicit, explicit), a leader crash while joint, demotion, removing the leader |
//! | `transfer` | leadership transfer: catch-up first, proposals refused meanwhile, time-out, ignored targets |
//! | `reads` | read index (safe, batched, forwarded, held by a new leader) and lease-based reads with their fallback |
//! | `snapshot` | compaction, sending and installing snapshots, failure reports, snapshots that predate a member |
//! | `flow_control` | probe state, the in-flight window by count and bytes, message size, batching, the uncommitted bound |
//! | `lost_state` | a member that lost its data directory: no votes until caught up, the leader restarts its progress |
//! | `bad_input` | malformed or foreign messages are refused without a panic, plus a deterministic fuzz |

mod harness;

mod bad_input;
mod election;
mod flow_control;
mod lost_state;
mod membership;
mod reads;
mod replication;
mod snapshot;
mod transfer;
