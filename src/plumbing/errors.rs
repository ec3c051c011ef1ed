//! Errors of the client protocol: a stable numeric code (`ErrorCode` in
//! `proto/client.proto`) and a message that keeps etcd's wording where etcd
//! has one. The server, the client and raftkvctl share this table.

use crate::proto::raftkvpb::{self, ErrorCode};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// An error with etcd's canonical message for `code`.
    pub fn of(code: ErrorCode) -> ApiError {
        ApiError { code, message: canonical_message(code).to_string() }
    }

    /// An error with a specific message (for codes whose message names a
    /// detail, like INVALID_ARGUMENT or INTERNAL).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }

    /// A bounded queue refused a message: "too many requests" when it is
    /// full, "stopped" when its receiver is gone.
    pub fn from_queue<T>(e: &crossbeam_channel::TrySendError<T>) -> ApiError {
        ApiError::of(match e {
            crossbeam_channel::TrySendError::Full(_) => ErrorCode::TooManyRequests,
            crossbeam_channel::TrySendError::Disconnected(_) => ErrorCode::Stopped,
        })
    }

    pub fn to_proto(&self) -> raftkvpb::Error {
        raftkvpb::Error { code: self.code as i32, message: self.message.clone() }
    }

    pub fn from_proto(e: &raftkvpb::Error) -> ApiError {
        let code = ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified);
        ApiError { code, message: e.message.clone() }
    }

    /// Whether trying again (possibly on another member) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::NoLeader
                | ErrorCode::LeaderChanged
                | ErrorCode::Stopped
                | ErrorCode::Timeout
                | ErrorCode::TimeoutDueToLeaderFail
                | ErrorCode::TimeoutWaitAppliedIndex
                | ErrorCode::TooManyRequests
                | ErrorCode::Unhealthy
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// etcd's message for each code (a generic one where etcd has none).
pub fn canonical_message(code: ErrorCode) -> &'static str {
    use ErrorCode::*;
    match code {
        Unspecified => "unknown error",
        EmptyKey => "etcdserver: key is not provided",
        KeyNotFound => "etcdserver: key not found",
        ValueProvided => "etcdserver: value is provided",
        LeaseProvided => "etcdserver: lease is provided",
        TooManyOps => "etcdserver: too many operations in txn request",
        DuplicateKey => "etcdserver: duplicate key given in txn request",
        InvalidSortOption => "etcdserver: invalid sort option",
        RequestTooLarge => "etcdserver: request is too large",
        InvalidArgument => "etcdserver: invalid argument",
        Compacted => "etcdserver: mvcc: required revision has been compacted",
        FutureRev => "etcdserver: mvcc: required revision is a future revision",
        LeaseTtlTooLarge => "etcdserver: too large lease TTL",
        LeaseNotFound => "etcdserver: requested lease not found",
        LeaseExist => "etcdserver: lease already exists",
        MemberExist => "etcdserver: member ID already exist",
        PeerUrlExist => "etcdserver: Peer URLs already exists",
        MemberNotFound => "etcdserver: member not found",
        MemberBadUrls => "etcdserver: given member URLs are invalid",
        MemberNotLearner => "etcdserver: can only promote a learner member",
        LearnerNotReady => "etcdserver: can only promote a learner member which is in sync with leader",
        TooManyLearners => "etcdserver: too many learner members in cluster",
        NotEnoughStarted => "etcdserver: re-configuration failed due to not enough started members",
        NotLeader => "etcdserver: not leader",
        BadLeaderTransferee => "etcdserver: bad leader transferee",
        NotSupportedForLearner => "etcdserver: rpc not supported for learner",
        WatchCanceled => "etcdserver: watch canceled",
        NoLeader => "etcdserver: no leader",
        LeaderChanged => "etcdserver: leader changed",
        Stopped => "etcdserver: server stopped",
        Timeout => "etcdserver: request timed out",
        TimeoutDueToLeaderFail => "etcdserver: request timed out, possibly due to previous leader failure",
        TimeoutWaitAppliedIndex => "etcdserver: request timed out, waiting for the applied index took too long",
        Unhealthy => "etcdserver: unhealthy cluster",
        Corrupt => "etcdserver: corrupt cluster",
        NoSpace => "etcdserver: mvcc: database space exceeded",
        TooManyRequests => "etcdserver: too many requests",
        AuthFailed => "etcdserver: authentication failed, invalid user ID or password",
        PermissionDenied => "etcdserver: permission denied",
        InvalidAuthToken => "etcdserver: invalid auth token",
        AuthNotEnabled => "etcdserver: authentication is not enabled",
        RootUserNotExist => "etcdserver: root user does not exist",
        RootRoleNotExist => "etcdserver: root user does not have root role",
        UserAlreadyExist => "etcdserver: user name already exists",
        UserEmpty => "etcdserver: user name is empty",
        UserNotFound => "etcdserver: user name not found",
        RoleAlreadyExist => "etcdserver: role name already exists",
        RoleNotFound => "etcdserver: role name not found",
        RoleEmpty => "etcdserver: role name is empty",
        PermissionNotGiven => "etcdserver: permission not given",
        RoleNotGranted => "etcdserver: role is not granted to the user",
        PermissionNotGranted => "etcdserver: permission is not granted to the role",
        InvalidAuthMgmt => "etcdserver: invalid auth management",
        AuthOldRevision => "etcdserver: revision of auth store is old",
        NotImplemented => "raftkv: not implemented",
        UnknownRequest => "raftkv: unknown request",
        MalformedRequest => "raftkv: malformed request",
        Internal => "raftkv: internal error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_the_wire_form() {
        let e = ApiError::of(ErrorCode::Compacted);
        assert_eq!(e.message, "etcdserver: mvcc: required revision has been compacted");
        let back = ApiError::from_proto(&e.to_proto());
        assert_eq!(back, e);
        let unknown = ApiError::from_proto(&raftkvpb::Error { code: 12345, message: "?".into() });
        assert_eq!(unknown.code, ErrorCode::Unspecified);
    }
}
