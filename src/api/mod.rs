//! The client protocol: framing, errors, and (with the server) decoding,
//! validation and dispatch of client requests.
//!
//! Owns the wire format seen by clients; never touches storage or Raft.

pub mod client_io;
pub mod dispatch;
pub mod errors;
pub mod framing;

pub use errors::ApiError;
