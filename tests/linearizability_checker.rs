//! Unit tests of the linearizability checker used by the fault tests.
mod common;
