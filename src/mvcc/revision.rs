//! Revisions and the byte layout of the `kv` and `meta` column families.
//!
//! Owns: `Revision` (main, sub), the `kv` key encoding (main u64 BE ++ sub
//! u64 BE, plus `b't'` for a tombstone), the names and encodings of the
//! `meta` keys, and decoding of stored `KeyValue`s. Must never panic on
//! stored bytes: anything malformed becomes `MvccError::Corrupt`.

use super::error::MvccError;
use crate::proto::mvccpb::KeyValue;
use prost::Message;

/// Length of a `kv` key of a put; a tombstone has one more byte.
pub const REV_KEY_LEN: usize = 16;
/// The trailing byte that marks a tombstone.
pub const TOMBSTONE_MARK: u8 = b't';

/// `meta` key: Raft index of the last applied entry (u64 BE).
pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// `meta` key: term of that entry (u64 BE).
pub const META_CONSISTENT_TERM: &[u8] = b"consistent_term";
/// `meta` key: the last compaction revision accepted (i64 BE).
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduled_compact_rev";
/// `meta` key: the last compaction revision physically completed (i64 BE).
pub const META_FINISHED_COMPACT: &[u8] = b"finished_compact_rev";

/// A point in the history of the keyspace: `main` counts write
/// transactions, `sub` orders the writes inside one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }
}

/// The `kv` key of a revision. Revisions are never negative.
pub fn encode_rev_key(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(REV_KEY_LEN + 1);
    k.extend_from_slice(&(rev.main as u64).to_be_bytes());
    k.extend_from_slice(&(rev.sub as u64).to_be_bytes());
    if tombstone {
        k.push(TOMBSTONE_MARK);
    }
    k
}

/// The smallest `kv` key at or after revision `(main, 0)`.
pub fn rev_key_lower_bound(main: i64) -> Vec<u8> {
    encode_rev_key(Revision::new(main.max(0), 0), false)
}

/// Decodes a `kv` key into its revision and tombstone flag.
pub fn decode_rev_key(k: &[u8]) -> Result<(Revision, bool), MvccError> {
    let tombstone = match k.len() {
        REV_KEY_LEN => false,
        17 if k[REV_KEY_LEN] == TOMBSTONE_MARK => true,
        _ => return Err(MvccError::corrupt(format!("kv key of unexpected shape: {}", hex(k)))),
    };
    let mut main = [0u8; 8];
    let mut sub = [0u8; 8];
    main.copy_from_slice(&k[..8]);
    sub.copy_from_slice(&k[8..16]);
    let main = u64::from_be_bytes(main);
    let sub = u64::from_be_bytes(sub);
    if main > i64::MAX as u64 || sub > i64::MAX as u64 {
        return Err(MvccError::corrupt(format!("kv key revision out of range: {}", hex(k))));
    }
    Ok((Revision::new(main as i64, sub as i64), tombstone))
}

/// Decodes a stored `KeyValue`, checking it against the revision it is stored under.
pub fn decode_kv(rev: Revision, tombstone: bool, bytes: &[u8]) -> Result<KeyValue, MvccError> {
    let kv = KeyValue::decode(bytes)
        .map_err(|e| MvccError::corrupt(format!("value at revision {}/{}: {e}", rev.main, rev.sub)))?;
    if kv.key.is_empty() {
        return Err(MvccError::corrupt(format!("value at revision {}/{} has an empty key", rev.main, rev.sub)));
    }
    if kv.mod_revision != rev.main {
        return Err(MvccError::corrupt(format!(
            "value at revision {}/{} has mod_revision {}",
            rev.main, rev.sub, kv.mod_revision
        )));
    }
    if !tombstone && (kv.version < 1 || kv.create_revision < 1 || kv.create_revision > rev.main) {
        return Err(MvccError::corrupt(format!(
            "value at revision {}/{} has version {} create_revision {}",
            rev.main, rev.sub, kv.version, kv.create_revision
        )));
    }
    Ok(kv)
}

pub fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn encode_i64(v: i64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn decode_u64(what: &str, bytes: &[u8]) -> Result<u64, MvccError> {
    let raw: [u8; 8] =
        bytes.try_into().map_err(|_| MvccError::corrupt(format!("meta {what} has {} bytes, not 8", bytes.len())))?;
    Ok(u64::from_be_bytes(raw))
}

pub fn decode_i64(what: &str, bytes: &[u8]) -> Result<i64, MvccError> {
    let raw: [u8; 8] =
        bytes.try_into().map_err(|_| MvccError::corrupt(format!("meta {what} has {} bytes, not 8", bytes.len())))?;
    Ok(i64::from_be_bytes(raw))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The current revision of a keyspace seen one stored record at a time
/// (a snapshot image's records, say): the newest revision in `kv`, or the
/// scheduled compaction if that is newer (a compaction may have removed
/// the newest tombstones), as the store computes it when it opens.
#[derive(Debug, Default, Clone, Copy)]
pub struct RevisionScan {
    max_main: i64,
    scheduled: i64,
}

impl RevisionScan {
    /// Looks at one record of column family `cf`.
    pub fn observe(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), MvccError> {
        if cf == crate::storage::db::CF_KV {
            self.max_main = self.max_main.max(decode_rev_key(key)?.0.main);
        } else if cf == crate::storage::db::CF_META && key == META_SCHEDULED_COMPACT {
            self.scheduled = decode_i64("scheduled_compact_rev", value)?;
        }
        Ok(())
    }

    /// The revision (1 for an empty keyspace, as a fresh store).
    pub fn revision(&self) -> i64 {
        self.max_main.max(self.scheduled).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoding_round_trips_and_sorts_by_revision() {
        let revs = [Revision::new(1, 0), Revision::new(1, 1), Revision::new(2, 0), Revision::new(256, 3)];
        let mut prev: Option<Vec<u8>> = None;
        for r in revs {
            for t in [false, true] {
                let k = encode_rev_key(r, t);
                assert_eq!(k.len(), if t { 17 } else { 16 });
                assert_eq!(decode_rev_key(&k).unwrap(), (r, t));
            }
            let k = encode_rev_key(r, false);
            if let Some(p) = prev {
                assert!(p < k);
            }
            prev = Some(encode_rev_key(r, true));
        }
        assert_eq!(encode_rev_key(Revision::new(2, 5), false)[..8], 2u64.to_be_bytes());
        assert_eq!(encode_rev_key(Revision::new(2, 5), false)[8..], 5u64.to_be_bytes());
    }

    #[test]
    fn malformed_keys_and_values_are_errors_not_panics() {
        assert!(matches!(decode_rev_key(b"short"), Err(MvccError::Corrupt(_))));
        let mut k = encode_rev_key(Revision::new(3, 0), false);
        k.push(b'x');
        assert!(matches!(decode_rev_key(&k), Err(MvccError::Corrupt(_))));
        let mut big = vec![0xff; 16];
        big[8..].fill(0);
        assert!(matches!(decode_rev_key(&big), Err(MvccError::Corrupt(_))));
        assert!(matches!(decode_kv(Revision::new(3, 0), false, &[0xff, 0xff, 0xff]), Err(MvccError::Corrupt(_))));
        let kv = KeyValue { key: "a".into(), mod_revision: 4, create_revision: 4, version: 1, ..Default::default() };
        let bytes = kv.encode_to_vec();
        assert!(matches!(decode_kv(Revision::new(3, 0), false, &bytes), Err(MvccError::Corrupt(_))));
        assert_eq!(decode_kv(Revision::new(4, 0), false, &bytes).unwrap(), kv);
        assert!(matches!(decode_u64("x", &[1, 2]), Err(MvccError::Corrupt(_))));
        assert_eq!(decode_i64("x", &encode_i64(-1)).unwrap(), -1);
    }
}
