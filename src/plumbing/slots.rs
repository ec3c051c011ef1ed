//! A bounded number of open things of one kind on a member (watch streams,
//! keep-alive streams): taken when one opens, given back when its owner
//! forgets it. Owns only the count.

use super::errors::ApiError;
use crate::proto::raftkvpb::ErrorCode;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Takes one of `max` slots counted by `open`, or refuses with etcd's "too
/// many requests", naming `what` ("watch streams").
pub fn take(open: &AtomicUsize, max: usize, what: &str) -> Result<(), ApiError> {
    if open.fetch_add(1, Ordering::SeqCst) >= max {
        open.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            format!("etcdserver: too many requests (at most {max} {what} per member)"),
        ));
    }
    Ok(())
}

/// Gives back a slot taken with `take`.
pub fn give_back(open: &AtomicUsize) {
    open.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_come_back() {
        let open = AtomicUsize::new(0);
        assert!(take(&open, 2, "things").is_ok() && take(&open, 2, "things").is_ok());
        let e = take(&open, 2, "things").unwrap_err();
        assert_eq!(e.code, ErrorCode::TooManyRequests);
        assert!(e.message.contains("at most 2 things per member"), "{}", e.message);
        give_back(&open);
        assert!(take(&open, 2, "things").is_ok());
        assert_eq!(open.load(Ordering::SeqCst), 2);
    }
}
