//! etcdctl's exit codes and the error a command ends with.
//!
//! Owns the mapping of failures to exit codes and the `Error: ...` line;
//! never prints anything itself.

use crate::client::ClientError;
use std::fmt;

/// Success.
pub const EXIT_SUCCESS: i32 = 0;
/// A server error, a timeout, an unhealthy endpoint, a bad flag value.
pub const EXIT_ERROR: i32 = 1;
/// etcdctl's ExitBadConnection.
pub const EXIT_BAD_CONNECTION: i32 = 2;
/// Unreadable input (txn grammar, stdin EOF).
pub const EXIT_INVALID_INPUT: i32 = 3;
/// An unsupported output format or option value.
pub const EXIT_BAD_FEATURE: i32 = 4;
/// etcdctl's ExitInterrupted: a watch the server canceled.
pub const EXIT_INTERRUPTED: i32 = 5;
/// Wrong arguments.
pub const EXIT_BAD_ARGS: i32 = 128;

/// How a command failed: the exit code and the text after `Error: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    pub code: i32,
    pub message: String,
}

impl CtlError {
    pub fn new(code: i32, message: impl Into<String>) -> CtlError {
        CtlError { code, message: message.into() }
    }

    pub fn bad_args(message: impl Into<String>) -> CtlError {
        CtlError::new(EXIT_BAD_ARGS, message)
    }

    pub fn bad_feature(message: impl Into<String>) -> CtlError {
        CtlError::new(EXIT_BAD_FEATURE, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> CtlError {
        CtlError::new(EXIT_INVALID_INPUT, message)
    }

    /// A request failed: the client's etcd-like text, exit code 1.
    pub fn request(e: &ClientError) -> CtlError {
        CtlError::new(EXIT_ERROR, e.to_string())
    }

    /// The exact stderr line etcdctl prints for this error.
    pub fn stderr_line(&self) -> String {
        format!("Error: {}\n", self.message)
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CtlError {}
