//! Identities: member ids and the cluster id, derived deterministically from
//! names and peer addresses (so every member computes the same ones from the
//! same initial cluster). Request ids are `plumbing::ids`.

use super::config::Peer;

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

/// A 64-bit hash of `bytes` (ids chosen at run time, such as an added
/// member's).
pub fn hash_of(bytes: &[u8]) -> u64 {
    fnv1a(&[b"id", bytes])
}

/// The cluster id of an initial cluster: a hash of its sorted member ids.
pub fn cluster_id(peers: &[Peer]) -> u64 {
    let mut ids: Vec<u64> = peers.iter().map(|p| member_id(&p.name, &p.addr)).collect();
    ids.sort_unstable();
    let bytes: Vec<[u8; 8]> = ids.iter().map(|id| id.to_be_bytes()).collect();
    let parts: Vec<&[u8]> = std::iter::once(&b"cluster"[..]).chain(bytes.iter().map(|b| &b[..])).collect();
    fnv1a(&parts)
}

/// The cluster id of a cluster restored from a snapshot: its members, the
/// token and the image's checksum, so every member restored from the same
/// file with the same flags agrees, and the restored cluster is never
/// taken for the one the snapshot came from.
pub fn restored_cluster_id(peers: &[Peer], token: &str, image_crc: u32) -> u64 {
    let mut ids: Vec<u64> = peers.iter().map(|p| member_id(&p.name, &p.addr)).collect();
    ids.sort_unstable();
    let bytes: Vec<[u8; 8]> = ids.iter().map(|id| id.to_be_bytes()).collect();
    let crc = image_crc.to_be_bytes();
    let parts: Vec<&[u8]> =
        [&b"restored"[..], token.as_bytes(), &crc[..]].into_iter().chain(bytes.iter().map(|b| &b[..])).collect();
    fnv1a(&parts)
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
}
