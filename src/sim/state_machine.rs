//! The replicated state machine the simulation drives: a few registers, each
//! holding the id of the last operation that wrote it, plus a hash chain over
//! every applied entry so that two replicas' histories compare in O(1).
//!
//! Owns command encoding and snapshots of its own state; knows nothing of
//! Raft beyond entry indexes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// A write: register `key` takes the value `op` (unique per operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put {
    pub op: u64,
    pub key: u8,
}

impl Put {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(9);
        b.put_u8(self.key);
        b.put_u64(self.op);
        b.freeze()
    }

    /// `None` for anything that is not a put (the leader's empty entries).
    pub fn decode(data: &[u8]) -> Option<Put> {
        if data.len() != 9 {
            return None;
        }
        let mut b = data;
        let key = b.get_u8();
        let op = b.get_u64();
        Some(Put { op, key })
    }
}

/// The value of a register: which operation wrote it, at which log index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Value {
    pub op: u64,
    pub index: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registers {
    pub values: BTreeMap<u8, Value>,
    pub applied: u64,
    /// Hash of the sequence of applied entries (index, term, data).
    pub hash: u64,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: cheap and well distributed.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A stable hash of an entry's content.
pub fn entry_hash(term: u64, data: &[u8]) -> u64 {
    let mut h = mix(term ^ 0x5151);
    for chunk in data.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word));
    }
    mix(h ^ data.len() as u64)
}

impl Registers {
    /// Applies the entry at `index`. Returns the put it carried, if any.
    pub fn apply(&mut self, index: u64, term: u64, data: &[u8]) -> Option<Put> {
        assert_eq!(index, self.applied + 1, "invariant: entries are applied in order without gaps");
        self.applied = index;
        self.hash = mix(self.hash ^ mix(index) ^ entry_hash(term, data));
        let put = Put::decode(data)?;
        self.values.insert(put.key, Value { op: put.op, index });
        Some(put)
    }

    /// The entry index was used up by something that is not a state machine
    /// command (a configuration change): it still moves the chain.
    pub fn skip(&mut self, index: u64, term: u64, data: &[u8]) {
        assert_eq!(index, self.applied + 1, "invariant: entries are applied in order without gaps");
        self.applied = index;
        self.hash = mix(self.hash ^ mix(index) ^ entry_hash(term, data) ^ 0xc0f);
    }

    pub fn snapshot(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u64(self.applied);
        b.put_u64(self.hash);
        b.put_u32(self.values.len() as u32);
        for (k, v) in &self.values {
            b.put_u8(*k);
            b.put_u64(v.op);
            b.put_u64(v.index);
        }
        b.freeze()
    }

    /// Restores from `snapshot()` output; `None` if it does not decode.
    pub fn restore(data: &[u8]) -> Option<Registers> {
        if data.is_empty() {
            return Some(Registers::default());
        }
        let mut b = data;
        if b.remaining() < 20 {
            return None;
        }
        let applied = b.get_u64();
        let hash = b.get_u64();
        let n = b.get_u32() as usize;
        if b.remaining() != n * 17 {
            return None;
        }
        let mut values = BTreeMap::new();
        for _ in 0..n {
            let k = b.get_u8();
            let op = b.get_u64();
            let index = b.get_u64();
            values.insert(k, Value { op, index });
        }
        Some(Registers { values, applied, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trip_and_hash_chain() {
        let mut a = Registers::default();
        a.apply(1, 1, &[]);
        a.apply(2, 1, &Put { op: 7, key: 2 }.encode());
        let b = Registers::restore(&a.snapshot()).unwrap();
        assert_eq!(a, b);
        let mut c = Registers::default();
        c.apply(1, 1, &[]);
        c.apply(2, 2, &Put { op: 7, key: 2 }.encode());
        assert_ne!(a.hash, c.hash, "a different term changes the chain");
        assert_eq!(Registers::restore(&[1, 2, 3]), None);
    }
}
