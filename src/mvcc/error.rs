//! Errors of the MVCC keyspace.
//!
//! Owns the mapping from every failure the keyspace can report to etcd's exact
//! wording (`Display`) and to a stable `raftkvpb::ErrorCode` (`code()`).
//! Must never lose information: storage failures keep RocksDB's message, and
//! corrupt stored bytes say where they were found.

use crate::proto::raftkvpb::ErrorCode;
use crate::storage::StoreError;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MvccError {
    /// `etcdserver: key is not provided`
    EmptyKey,
    /// `etcdserver: key not found` (ignore_value / ignore_lease on a missing key, or an empty txn op)
    KeyNotFound,
    /// `etcdserver: value is provided`
    ValueProvided,
    /// `etcdserver: lease is provided`
    LeaseProvided,
    /// `etcdserver: too many operations in txn request`
    TooManyOps,
    /// `etcdserver: duplicate key given in txn request`
    DuplicateKey,
    /// `etcdserver: invalid sort option`
    InvalidSortOption,
    /// `etcdserver: mvcc: required revision has been compacted`
    Compacted,
    /// `etcdserver: mvcc: required revision is a future revision`
    FutureRev,
    /// `etcdserver: requested lease not found` (only when a lease check is installed on the batch)
    LeaseNotFound,
    /// `etcdserver: request timed out` (waiting for physical compaction)
    Timeout,
    /// The store is shutting down (the compaction worker stopped).
    Stopped,
    /// Stored bytes that do not decode or break an invariant of the layout.
    Corrupt(String),
    /// RocksDB or the file system failed.
    Storage(String),
}

impl MvccError {
    /// The stable numeric code sent to clients next to the message.
    pub fn code(&self) -> ErrorCode {
        match self {
            MvccError::EmptyKey => ErrorCode::EmptyKey,
            MvccError::KeyNotFound => ErrorCode::KeyNotFound,
            MvccError::ValueProvided => ErrorCode::ValueProvided,
            MvccError::LeaseProvided => ErrorCode::LeaseProvided,
            MvccError::TooManyOps => ErrorCode::TooManyOps,
            MvccError::DuplicateKey => ErrorCode::DuplicateKey,
            MvccError::InvalidSortOption => ErrorCode::InvalidSortOption,
            MvccError::Compacted => ErrorCode::Compacted,
            MvccError::FutureRev => ErrorCode::FutureRev,
            MvccError::LeaseNotFound => ErrorCode::LeaseNotFound,
            MvccError::Timeout => ErrorCode::Timeout,
            MvccError::Stopped => ErrorCode::Stopped,
            MvccError::Corrupt(_) | MvccError::Storage(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> MvccError {
        MvccError::Corrupt(what.into())
    }
}

impl fmt::Display for MvccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MvccError::EmptyKey => f.write_str("etcdserver: key is not provided"),
            MvccError::KeyNotFound => f.write_str("etcdserver: key not found"),
            MvccError::ValueProvided => f.write_str("etcdserver: value is provided"),
            MvccError::LeaseProvided => f.write_str("etcdserver: lease is provided"),
            MvccError::TooManyOps => f.write_str("etcdserver: too many operations in txn request"),
            MvccError::DuplicateKey => f.write_str("etcdserver: duplicate key given in txn request"),
            MvccError::InvalidSortOption => f.write_str("etcdserver: invalid sort option"),
            MvccError::Compacted => f.write_str("etcdserver: mvcc: required revision has been compacted"),
            MvccError::FutureRev => f.write_str("etcdserver: mvcc: required revision is a future revision"),
            MvccError::LeaseNotFound => f.write_str("etcdserver: requested lease not found"),
            MvccError::Timeout => f.write_str("etcdserver: request timed out"),
            MvccError::Stopped => f.write_str("etcdserver: server stopped"),
            MvccError::Corrupt(why) => write!(f, "mvcc: corrupt data: {why}"),
            MvccError::Storage(why) => write!(f, "mvcc: storage failure: {why}"),
        }
    }
}

impl std::error::Error for MvccError {}

impl From<rocksdb::Error> for MvccError {
    fn from(e: rocksdb::Error) -> Self {
        MvccError::Storage(e.into_string())
    }
}

impl From<StoreError> for MvccError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(why) => MvccError::Corrupt(why),
            other => MvccError::Storage(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_etcd_wording_and_codes_are_stable() {
        let cases = [
            (MvccError::EmptyKey, "etcdserver: key is not provided", ErrorCode::EmptyKey, 100),
            (MvccError::KeyNotFound, "etcdserver: key not found", ErrorCode::KeyNotFound, 101),
            (MvccError::ValueProvided, "etcdserver: value is provided", ErrorCode::ValueProvided, 102),
            (MvccError::LeaseProvided, "etcdserver: lease is provided", ErrorCode::LeaseProvided, 103),
            (MvccError::TooManyOps, "etcdserver: too many operations in txn request", ErrorCode::TooManyOps, 104),
            (MvccError::DuplicateKey, "etcdserver: duplicate key given in txn request", ErrorCode::DuplicateKey, 105),
            (MvccError::InvalidSortOption, "etcdserver: invalid sort option", ErrorCode::InvalidSortOption, 106),
            (MvccError::Compacted, "etcdserver: mvcc: required revision has been compacted", ErrorCode::Compacted, 200),
            (
                MvccError::FutureRev,
                "etcdserver: mvcc: required revision is a future revision",
                ErrorCode::FutureRev,
                201,
            ),
            (MvccError::LeaseNotFound, "etcdserver: requested lease not found", ErrorCode::LeaseNotFound, 300),
        ];
        for (err, msg, code, num) in cases {
            assert_eq!(err.to_string(), msg);
            assert_eq!(err.code(), code);
            assert_eq!(err.code() as i32, num);
        }
        assert_eq!(MvccError::Corrupt("x".into()).code(), ErrorCode::Internal);
        assert_eq!(MvccError::Storage("x".into()).code(), ErrorCode::Internal);
    }
}
