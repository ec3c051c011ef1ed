//! Identities: member ids and the cluster id, derived deterministically from
//! names and peer addresses (so every member computes the same ones from the
//! same initial cluster), and request ids unique per member across restarts.

use super::config::Peer;
use std::sync::atomic::{AtomicU64, Ordering};

/// FNV-1a, 64 bits: stable across builds and platforms.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The member id of `name` at peer address `addr`; never 0.
pub fn member_id(name: &str, addr: &std::net::SocketAddr) -> u64 {
    match fnv1a(&[b"member", name.as_bytes(), addr.to_string().as_bytes()]) {
        0 => 1,
        id => id,
    }
}

/// The cluster id of an initial cluster: a hash of its sorted member ids.
pub fn cluster_id(peers: &[Peer]) -> u64 {
    let mut ids: Vec<u64> = peers.iter().map(|p| member_id(&p.name, &p.addr)).collect();
    ids.sort_unstable();
    let bytes: Vec<[u8; 8]> = ids.iter().map(|id| id.to_be_bytes()).collect();
    let parts: Vec<&[u8]> = std::iter::once(&b"cluster"[..]).chain(bytes.iter().map(|b| &b[..])).collect();
    fnv1a(&parts)
}

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
    fn ids_are_deterministic_and_distinct() {
        let a: std::net::SocketAddr = "127.0.0.1:2380".parse().unwrap();
        let b: std::net::SocketAddr = "127.0.0.1:2381".parse().unwrap();
        assert_eq!(member_id("n1", &a), member_id("n1", &a));
        assert_ne!(member_id("n1", &a), member_id("n1", &b));
        assert_ne!(member_id("n1", &a), member_id("n2", &a));
        let c1 = cluster_id(&[Peer { name: "n1".into(), addr: a }, Peer { name: "n2".into(), addr: b }]);
        let c2 = cluster_id(&[Peer { name: "n2".into(), addr: b }, Peer { name: "n1".into(), addr: a }]);
        assert_eq!(c1, c2, "order of the initial cluster does not matter");
    }

    #[test]
    fn request_ids_increase_and_carry_the_member() {
        let ids = RequestIds::new(0xabcd_1234);
        let a = ids.next();
        let b = ids.next();
        assert!(b > a);
        assert_eq!(a >> 48, 0x1234);
    }
}
