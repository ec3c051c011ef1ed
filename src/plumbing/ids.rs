//! Request ids unique per member across restarts, for waiters and
//! proposals. Owns only the numbering.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request ids: the low 16 bits of the member id, then the start time in
/// milliseconds and a counter in the remaining 48 bits (as etcd does), so ids
/// from a restarted member never collide with its earlier ones.
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new(member_id: u64) -> RequestIds {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // 40 bits of milliseconds (34 years) then 8 bits of counter.
        let suffix = (millis & ((1 << 40) - 1)) << 8;
        RequestIds { prefix: (member_id & 0xffff) << 48, next: AtomicU64::new(suffix) }
    }

    pub fn next(&self) -> u64 {
        let suffix = self.next.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1);
        self.prefix | suffix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_increase_and_carry_the_member() {
        let ids = RequestIds::new(0xabcd_1234);
        let a = ids.next();
        let b = ids.next();
        assert!(b > a);
        assert_eq!(a >> 48, 0x1234);
    }
}
