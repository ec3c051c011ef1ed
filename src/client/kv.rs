//! Typed calls on top of `Client::call`: one method per request kind served
//! today, plus conveniences for the common cases.
//!
//! Owns the pairing of request and answer kinds (an answer of the wrong kind
//! is a protocol error) and etcd's prefix arithmetic. Never retries on its
//! own: `Client::call` does.

use super::{Client, ClientError};
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;
use crate::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use bytes::Bytes;

macro_rules! typed_call {
    ($(#[$doc:meta])* $name:ident, $req_ty:ty, $req:ident, $resp_ty:ty, $resp:ident) => {
        $(#[$doc])*
        pub fn $name(&self, req: $req_ty) -> Result<$resp_ty, ClientError> {
            match self.call(Req::$req(req))? {
                Resp::$resp(r) => Ok(r),
                other => Err(unexpected(stringify!($resp), &other)),
            }
        }
    };
}

pub(super) fn unexpected(wanted: &str, got: &Resp) -> ClientError {
    let got = format!("{got:?}");
    let kind = got.split('(').next().unwrap_or("?");
    ClientError::Protocol(format!("expected a {wanted} answer, got {kind}"))
}

impl Client {
    typed_call!(
        /// A range read (etcd's `Range`).
        range, RangeRequest, Range, RangeResponse, Range
    );
    typed_call!(
        /// A put (etcd's `Put`).
        put, PutRequest, Put, PutResponse, Put
    );
    typed_call!(
        /// A delete of a key or range (etcd's `DeleteRange`).
        delete_range, DeleteRangeRequest, DeleteRange, DeleteRangeResponse, DeleteRange
    );
    typed_call!(
        /// A transaction (etcd's `Txn`).
        txn, TxnRequest, Txn, TxnResponse, Txn
    );
    typed_call!(
        /// Compaction of the history up to a revision (etcd's `Compact`).
        compact, CompactionRequest, Compact, CompactionResponse, Compact
    );
    typed_call!(
        /// Alarm list / activation (etcd's `Alarm`).
        alarm, AlarmRequest, Alarm, AlarmResponse, Alarm
    );

    /// The status of the member behind the next connection (etcd's
    /// `Status`). For one given member, use a client with only its endpoint.
    pub fn status(&self) -> Result<StatusResponse, ClientError> {
        match self.call(Req::Status(StatusRequest {}))? {
            Resp::Status(r) => Ok(r),
            other => Err(unexpected("Status", &other)),
        }
    }

    /// The current value of one key, linearizable.
    pub fn get(&self, key: impl Into<Bytes>) -> Result<Option<KeyValue>, ClientError> {
        let resp = self.range(RangeRequest { key: key.into(), ..Default::default() })?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Every key starting with `prefix`, linearizable.
    pub fn get_prefix(&self, prefix: impl Into<Bytes>) -> Result<RangeResponse, ClientError> {
        let key: Bytes = prefix.into();
        let range_end = Bytes::from(prefix_end(&key));
        self.range(RangeRequest { key, range_end, ..Default::default() })
    }

    /// Sets `key` to `value`.
    pub fn put_kv(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<PutResponse, ClientError> {
        self.put(PutRequest { key: key.into(), value: value.into(), ..Default::default() })
    }

    /// Deletes one key; returns how many keys were deleted (0 or 1).
    pub fn delete(&self, key: impl Into<Bytes>) -> Result<i64, ClientError> {
        Ok(self.delete_range(DeleteRangeRequest { key: key.into(), ..Default::default() })?.deleted)
    }
}

/// The range end that selects every key with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// incremented and what follows dropped; `[0]` (to the end of the keyspace)
/// when every byte is 0xff or the prefix is empty.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"ab"), b"ac");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\x00");
        assert_eq!(prefix_end(b"\xff\xff"), b"\x00");
        assert_eq!(prefix_end(b""), b"\x00");
    }
}
