//! Reading the member records of the `members` column family (member id
//! u64 BE -> `etcdserverpb::Member`; written only by the membership
//! applier), and what the transport needs from them.

use crate::proto::etcdserverpb::Member;
use crate::proto::internalpb::MemberAttributes;
use crate::proto::raftpb::Entry;
use crate::storage::db::CF_MEMBERS;
use crate::storage::{Db, StoreResult};
use crate::transport::members::Members;
use prost::Message as _;
use rocksdb::IteratorMode;
use std::net::SocketAddr;

/// The member described by a configuration change's context, if any.
pub fn member_of(e: &Entry) -> Option<Member> {
    super::apply::membership::context_of(e)?.member
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
    super::reconfig::parse_peer_url(m.peer_ur_ls.first()?)
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
