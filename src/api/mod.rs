//! The client protocol: the client I/O thread (connections, frames, the
//! table of requests and streams in flight) and the dispatch of decoded
//! requests to the node's parts.
//!
//! Owns the wire as clients see it; never touches storage or Raft directly
//! (it goes through the server's handles). The framing and the error table
//! it speaks live in `plumbing`, shared with the client and the transport.

pub mod client_io;
pub mod dispatch;
pub mod in_flight;

pub use crate::plumbing::errors;
pub use crate::plumbing::framing;
pub use crate::plumbing::ApiError;
