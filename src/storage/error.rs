//! Errors of the storage layer. Every failure of the disk or of RocksDB
//! becomes one of these, with enough context to act on; nothing here panics.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The data directory holds something that is not a raftkv database.
    NotRaftkv(String),
    /// The database was written by a newer raftkv with a format we do not know.
    NewerFormat { found: u32, supported: u32 },
    /// Stored bytes that do not decode, or break an invariant of the layout.
    Corrupt(String),
    /// A file system operation failed.
    Io(String),
    /// RocksDB reported an error.
    Rocks(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotRaftkv(why) => write!(f, "not a raftkv data directory: {why}"),
            StoreError::NewerFormat { found, supported } => write!(
                f,
                "data directory was written by a newer raftkv (format {found}; this build reads up to {supported})"
            ),
            StoreError::Corrupt(why) => write!(f, "corrupt data: {why}"),
            StoreError::Io(why) => write!(f, "i/o error: {why}"),
            StoreError::Rocks(why) => write!(f, "rocksdb: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Rocks(e.into_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

impl From<prost::DecodeError> for StoreError {
    fn from(e: prost::DecodeError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
