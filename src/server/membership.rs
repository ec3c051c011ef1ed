//! The member records kept in the `members` column family (member id u64
//! BE -> `etcdserverpb::Member`), written when membership changes apply,
//! and what the transport needs from them.

use crate::proto::etcdserverpb::Member;
use crate::proto::internalpb::{MemberAttributes, MemberContext};
use crate::proto::raftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType};
use crate::storage::db::CF_MEMBERS;
use crate::storage::{Db, StoreResult};
use crate::transport::members::Members;
use prost::Message as _;
use rocksdb::{IteratorMode, WriteBatch};
use std::net::SocketAddr;

/// The member described by a configuration change's context, if any.
pub fn member_of(e: &Entry) -> Option<Member> {
    let context = match e.entry_type() {
        EntryType::EntryConfChange => ConfChange::decode(e.data.clone()).ok()?.context,
        EntryType::EntryConfChangeV2 => ConfChangeV2::decode(e.data.clone()).ok()?.context,
        EntryType::EntryNormal => return None,
    };
    MemberContext::decode(context).ok()?.member
}

fn in_conf(cs: &ConfState, id: u64) -> bool {
    cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).chain(&cs.learners_next).any(|&x| x == id)
}

/// Records, in `batch`, the effect of an applied configuration change on
/// the member records: the member it describes is stored (with its learner
/// flag), members no longer in the configuration are deleted.
pub fn record(db: &Db, batch: &mut WriteBatch, e: &Entry, cs: &ConfState) {
    let cf = db.cf(CF_MEMBERS);
    if let Some(mut m) = member_of(e) {
        if in_conf(cs, m.id) {
            m.is_learner = cs.learners.contains(&m.id) || cs.learners_next.contains(&m.id);
            batch.put_cf(cf, m.id.to_be_bytes(), m.encode_to_vec());
        }
    }
    if let Ok(existing) = load(db) {
        for m in existing {
            if !in_conf(cs, m.id) {
                batch.delete_cf(cf, m.id.to_be_bytes());
            }
        }
    }
}

/// Records a member's published attributes (name, client URLs) over its
/// stored record, in `batch`. Unknown members are ignored: a member removed
/// meanwhile stays removed.
pub fn set_attributes(db: &Db, batch: &mut WriteBatch, a: &MemberAttributes) {
    let Ok(Some(bytes)) = db.get(CF_MEMBERS, &a.id.to_be_bytes()) else { return };
    let Ok(mut m) = Member::decode(bytes.as_slice()) else { return };
    m.name = a.name.clone();
    m.client_ur_ls = a.client_urls.clone();
    batch.put_cf(db.cf(CF_MEMBERS), a.id.to_be_bytes(), m.encode_to_vec());
}

/// Whether the stored record of `a.id` already carries these attributes.
pub fn has_attributes(db: &Db, a: &MemberAttributes) -> bool {
    load(db)
        .ok()
        .and_then(|ms| ms.into_iter().find(|m| m.id == a.id))
        .is_some_and(|m| m.name == a.name && m.client_ur_ls == a.client_urls)
}

/// Every stored member.
pub fn load(db: &Db) -> StoreResult<Vec<Member>> {
    let mut out = Vec::new();
    for item in db.raw().iterator_cf(db.cf(CF_MEMBERS), IteratorMode::Start) {
        let (_, v) = item?;
        out.push(Member::decode(v.as_ref())?);
    }
    Ok(out)
}

/// The first peer URL of a member as an address.
pub fn peer_addr(m: &Member) -> Option<SocketAddr> {
    m.peer_ur_ls.first()?.trim_start_matches("http://").parse().ok()
}

/// Makes the transport's view match the stored members (plus `extra`, the
/// initial cluster, for members not applied yet).
pub fn refresh_transport(db: &Db, members: &Members) {
    if let Ok(stored) = load(db) {
        for m in stored {
            if let Some(addr) = peer_addr(&m) {
                members.set(m.id, addr);
            }
        }
    }
}
