//! What each benchmark request is: keys, values, and the request body per
//! operation.
//!
//! Owns key selection (sequential or random within the key space, encoded
//! in `key_size` bytes) and request construction; never sends anything.

use super::args::{BenchArgs, Consistency, Op};
use crate::proto::etcdserverpb::{request_op, PutRequest, RangeRequest, RequestOp, TxnRequest};
use crate::proto::raftkvpb::client_request::Body;
use bytes::Bytes;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The requests of one run.
#[derive(Debug, Clone)]
pub struct Workload {
    op: Op,
    key_size: usize,
    key_space: u64,
    sequential: bool,
    value: Bytes,
}

impl Workload {
    pub fn new(args: &BenchArgs) -> Workload {
        let mut value = vec![0u8; args.common.val_size];
        ChaCha8Rng::seed_from_u64(0x5eed).fill_bytes(&mut value);
        Workload {
            op: args.op.clone(),
            key_size: args.common.key_size,
            key_space: args.common.key_space,
            sequential: args.common.sequential_keys,
            value: value.into(),
        }
    }

    /// Key number `n` in `key_size` bytes: big-endian, right-aligned (the
    /// low bytes when the key is shorter than 8 bytes).
    pub fn key(&self, n: u64) -> Bytes {
        let mut key = vec![0u8; self.key_size];
        let be = n.to_be_bytes();
        let take = self.key_size.min(8);
        key[self.key_size - take..].copy_from_slice(&be[8 - take..]);
        key.into()
    }

    fn key_number(&self, i: u64, rng: &mut ChaCha8Rng) -> u64 {
        if self.sequential {
            i % self.key_space
        } else {
            rng.random_range(0..self.key_space)
        }
    }

    /// The key a range run reads (put once before the run).
    pub fn preload(&self) -> Option<PutRequest> {
        match self.op {
            Op::Range { .. } => Some(PutRequest { key: self.key(0), value: self.value.clone(), ..Default::default() }),
            _ => None,
        }
    }

    /// Request number `i` of the run.
    pub fn request(&self, i: u64, rng: &mut ChaCha8Rng) -> Body {
        match &self.op {
            Op::Put => Body::Put(PutRequest {
                key: self.key(self.key_number(i, rng)),
                value: self.value.clone(),
                ..Default::default()
            }),
            Op::Range { consistency } => Body::Range(RangeRequest {
                key: self.key(0),
                serializable: *consistency == Consistency::S,
                ..Default::default()
            }),
            Op::TxnPut { txn_ops } => {
                // Distinct keys within one txn: consecutive numbers from a
                // start drawn like a put's key.
                let start = if self.sequential { i.wrapping_mul(*txn_ops) } else { self.key_number(i, rng) };
                let success = (0..*txn_ops)
                    .map(|j| RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: self.key(start.wrapping_add(j) % self.key_space),
                            value: self.value.clone(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                Body::Txn(TxnRequest { compare: Vec::new(), success, failure: Vec::new() })
            }
            // The watch and lease workloads make their own requests
            // (`watch.rs`, `lease.rs`).
            Op::Watch { .. }
            | Op::WatchLatency
            | Op::LeaseKeepalive { .. }
            | Op::LeaseScale { .. }
            | Op::LeaseExpiry { .. } => Body::Put(PutRequest {
                key: self.key(self.key_number(i, rng)),
                value: self.value.clone(),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn workload(args: &[&str]) -> Workload {
        let mut argv = vec!["raftkv-bench"];
        argv.extend_from_slice(args);
        Workload::new(&BenchArgs::parse_from(argv))
    }

    #[test]
    fn keys_have_the_requested_size_and_stay_in_the_key_space() {
        let w = workload(&["--key-size", "8", "--key-space", "10", "put"]);
        assert_eq!(&w.key(258)[..], &[0, 0, 0, 0, 0, 0, 1, 2]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for i in 0..100 {
            match w.request(i, &mut rng) {
                Body::Put(p) => {
                    assert_eq!(p.key.len(), 8);
                    assert!(u64::from_be_bytes(p.key[..].try_into().unwrap()) < 10);
                    assert_eq!(p.value.len(), 256);
                }
                other => panic!("{other:?}"),
            }
        }
        let short = workload(&["--key-size", "2", "put"]);
        assert_eq!(&short.key(0x0102_0304)[..], &[3, 4]);
        let long = workload(&["--key-size", "12", "put"]);
        assert_eq!(long.key(1).len(), 12);
    }

    #[test]
    fn sequential_keys_cycle_through_the_key_space() {
        let w = workload(&["--sequential-keys", "--key-space", "3", "put"]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let keys: Vec<Bytes> = (0..6)
            .map(|i| match w.request(i, &mut rng) {
                Body::Put(p) => p.key,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(keys[0], w.key(0));
        assert_eq!(keys[2], w.key(2));
        assert_eq!(keys[3], w.key(0));
    }

    #[test]
    fn txn_puts_use_distinct_keys_and_ranges_one_key() {
        let w = workload(&["--key-space", "100", "txn-put", "--txn-ops", "4"]);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        match w.request(0, &mut rng) {
            Body::Txn(t) => {
                let keys: std::collections::HashSet<_> = t
                    .success
                    .iter()
                    .map(|op| match &op.request {
                        Some(request_op::Request::RequestPut(p)) => p.key.clone(),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                assert_eq!(keys.len(), 4);
            }
            other => panic!("{other:?}"),
        }
        let r = workload(&["range", "--consistency", "s"]);
        assert!(r.preload().is_some());
        match r.request(5, &mut rng) {
            Body::Range(q) => assert!(q.serializable && q.key == r.key(0)),
            other => panic!("{other:?}"),
        }
    }
}
