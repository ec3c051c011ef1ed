//! Plumbing shared by every layer of a node: framing, the error table,
//! doorbells, per-connection output (responders and streams), waiters,
//! request ids and change notices.
//!
//! It sits below everything that uses it (`api`, `server`, `watch`,
//! `transport`, `client`), so imports run one way: nothing here imports a
//! layer above. Owns no thread and no domain logic.

pub mod doorbell;
pub mod errors;
pub mod framing;
pub mod ids;
pub mod notice;
pub mod outbox;
pub mod slots;
pub mod wait;

pub use errors::ApiError;
