//! The cluster's active alarms (etcd's alarm store), as the apply thread
//! last applied them, shared with the parts that act on them: the router
//! refuses writes while NOSPACE is active (and everything but reads while
//! CORRUPT is), the dispatcher raises NOSPACE when the quota is passed,
//! Status lists them.
//!
//! Owns the in-memory set; never writes storage (the alarm applier does)
//! and never proposes.

use crate::plumbing::errors::ApiError;
use crate::proto::etcdserverpb::{request_op, AlarmMember, AlarmType, TxnRequest};
use crate::proto::internalpb::internal_request::Body as Req;
use crate::proto::raftkvpb::ErrorCode;
use crate::storage::db::CF_ALARM;
use crate::storage::Db;
use rocksdb::IteratorMode;
use std::collections::BTreeSet;
use std::sync::RwLock;

/// (member id, alarm type) pairs.
#[derive(Debug, Default)]
pub struct AlarmSet {
    active: RwLock<BTreeSet<(u64, i32)>>,
}

/// The key of an alarm in the `alarm` column family.
pub fn key(member: u64, alarm: i32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&member.to_be_bytes());
    k[8..].copy_from_slice(&alarm.to_be_bytes());
    k
}

impl AlarmSet {
    /// Replaces the set with what the `alarm` column family holds.
    pub fn load(&self, db: &Db) -> Result<(), String> {
        let mut set = BTreeSet::new();
        for item in db.raw().iterator_cf(db.cf(CF_ALARM), IteratorMode::Start) {
            let (k, _) = item.map_err(|e| format!("reading the alarms: {e}"))?;
            let (Ok(m), Ok(a)) =
                (<[u8; 8]>::try_from(&k[..8.min(k.len())]), <[u8; 4]>::try_from(k.get(8..).unwrap_or(&[])))
            else {
                return Err(format!("a malformed alarm key of {} bytes", k.len()));
            };
            set.insert((u64::from_be_bytes(m), i32::from_be_bytes(a)));
        }
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = set;
        Ok(())
    }

    /// Adds an alarm; whether it is new.
    pub fn activate(&self, member: u64, alarm: i32) -> bool {
        self.active.write().unwrap_or_else(|e| e.into_inner()).insert((member, alarm))
    }

    /// Removes an alarm; whether it was active.
    pub fn deactivate(&self, member: u64, alarm: i32) -> bool {
        self.active.write().unwrap_or_else(|e| e.into_inner()).remove(&(member, alarm))
    }

    /// The active alarms of type `alarm` (every one for NONE), by member.
    pub fn get(&self, alarm: i32) -> Vec<AlarmMember> {
        let set = self.active.read().unwrap_or_else(|e| e.into_inner());
        set.iter()
            .filter(|&&(_, a)| alarm == AlarmType::None as i32 || a == alarm)
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    pub fn has(&self, alarm: AlarmType) -> bool {
        self.active.read().unwrap_or_else(|e| e.into_inner()).iter().any(|&(_, a)| a == alarm as i32)
    }

    /// etcd's refusals while alarms are active, decided when a request is
    /// applied (so every member decides alike): CORRUPT refuses every write,
    /// NOSPACE the ones that can grow the database (puts, transactions
    /// that write, lease grants). Deletes and compactions still go through,
    /// which is how space is reclaimed.
    pub fn refuses(&self, body: &Req) -> Option<ApiError> {
        let set = self.active.read().unwrap_or_else(|e| e.into_inner());
        if set.is_empty() {
            return None;
        }
        let has = |t: AlarmType| set.iter().any(|&(_, a)| a == t as i32);
        let writes = matches!(
            body,
            Req::Put(_)
                | Req::DeleteRange(_)
                | Req::Txn(_)
                | Req::Compaction(_)
                | Req::LeaseGrant(_)
                | Req::LeaseRevoke(_)
        );
        if has(AlarmType::Corrupt) && writes {
            return Some(ApiError::of(ErrorCode::Corrupt));
        }
        let grows = match body {
            Req::Put(_) | Req::LeaseGrant(_) => true,
            Req::Txn(t) => txn_puts(t),
            _ => false,
        };
        if has(AlarmType::Nospace) && grows {
            return Some(ApiError::of(ErrorCode::NoSpace));
        }
        None
    }

    /// Status's `errors`: one line per alarm, as etcd prints an AlarmMember.
    pub fn errors(&self) -> Vec<String> {
        self.get(AlarmType::None as i32).iter().map(alarm_text).collect()
    }
}

/// Whether a transaction holds a put in either branch (etcd's capped
/// applier refuses those, even when the put is in the branch not taken).
fn txn_puts(t: &TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| match &op.request {
        Some(request_op::Request::RequestPut(_)) => true,
        Some(request_op::Request::RequestTxn(inner)) => txn_puts(inner),
        _ => false,
    })
}

/// An alarm type's name (`NOSPACE`), or its number if unknown.
pub fn alarm_name(alarm: i32) -> String {
    AlarmType::try_from(alarm).map_or_else(|_| alarm.to_string(), |t| t.as_str_name().to_string())
}

/// etcd's `AlarmMember.String()`: `memberID:<id> alarm:<NAME> `.
pub fn alarm_text(a: &AlarmMember) -> String {
    format!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm))
}
