//! The membership applier: configuration changes and members' published
//! attributes, kept in the `members` column family (member id u64 BE ->
//! `etcdserverpb::Member`).
//!
//! It keeps the member table in memory, loaded once at start and updated
//! as it stages writes, so a change reads what the same batch staged before
//! it (never the database behind the batch's back). Owns the `members`
//! column family's part of the batch; never talks to peers (the raft thread
//! keeps the transport's addresses).

use super::router::{Applied, Applier, Outcome};
use crate::mvcc::ApplyBatch;
use crate::proto::etcdserverpb::{Member, MemberListResponse};
use crate::proto::internalpb::{internal_request::Body as Req, InternalRequest, MemberAttributes, MemberContext};
use crate::proto::mvccpb::Event;
use crate::proto::raftkvpb::client_response::Body;
use crate::proto::raftpb::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType};
use crate::server::status::NodeStatus;
use crate::storage::db::CF_MEMBERS;
use crate::storage::raft_log::put_applied_conf_state;
use crate::storage::Db;
use prost::Message as _;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct MembershipApplier {
    db: Arc<Db>,
    status: Arc<NodeStatus>,
    member_id: u64,
    /// The committed table plus what the current batch staged.
    members: BTreeMap<u64, Member>,
    /// The committed table, to return to if the batch is abandoned.
    committed: BTreeMap<u64, Member>,
}

impl MembershipApplier {
    pub fn open(db: Arc<Db>, status: Arc<NodeStatus>, member_id: u64) -> Result<MembershipApplier, String> {
        let members: BTreeMap<u64, Member> = crate::server::members::load(&db)
            .map_err(|e| format!("loading members: {e}"))?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        Ok(MembershipApplier { db, status, member_id, committed: members.clone(), members })
    }

    /// Reloads the table (after a snapshot replaced the column families).
    pub fn reload(&mut self) -> Result<(), String> {
        *self = MembershipApplier::open(self.db.clone(), self.status.clone(), self.member_id)?;
        Ok(())
    }

    fn put(&mut self, batch: &mut ApplyBatch<'_>, m: Member) {
        batch.write_batch().put_cf(self.db.cf(CF_MEMBERS), m.id.to_be_bytes(), m.encode_to_vec());
        self.members.insert(m.id, m);
    }

    fn delete(&mut self, batch: &mut ApplyBatch<'_>, id: u64) {
        batch.write_batch().delete_cf(self.db.cf(CF_MEMBERS), id.to_be_bytes());
        self.members.remove(&id);
    }

    /// Records a member's attributes (name, client URLs) over its record.
    /// Unknown members are ignored: a member removed meanwhile stays removed.
    fn set_attributes(&mut self, batch: &mut ApplyBatch<'_>, a: &MemberAttributes) {
        let Some(mut m) = self.members.get(&a.id).cloned() else { return };
        m.name = a.name.clone();
        m.client_ur_ls = a.client_urls.clone();
        self.put(batch, m);
    }

    /// The effect of an applied configuration change: the member it
    /// describes is stored (with its learner flag), members no longer in the
    /// configuration are deleted; the proposer's waiter gets the new list.
    pub fn apply_conf_change(&mut self, batch: &mut ApplyBatch<'_>, e: &Entry, cs: &ConfState) -> Applied {
        put_applied_conf_state(&self.db, batch.write_batch(), cs);
        let context = context_of(e);
        if let Some(mut m) = context.as_ref().and_then(|c| c.member.clone()) {
            if in_conf(cs, m.id) {
                m.is_learner = cs.learners.contains(&m.id) || cs.learners_next.contains(&m.id);
                self.put(batch, m);
            }
        }
        let gone: Vec<u64> = self.members.keys().copied().filter(|&id| !in_conf(cs, id)).collect();
        for id in gone {
            self.delete(batch, id);
        }
        let Some(ctx) = context.filter(|c| c.request_id != 0 && c.proposer == self.member_id) else {
            return Ok(None);
        };
        let list = MemberListResponse {
            header: Some(self.status.header(0)),
            members: self.members.values().cloned().collect(),
        };
        Ok(Some(Outcome::of(ctx.request_id, Ok(Body::MemberList(list)))))
    }
}

impl Applier for MembershipApplier {
    fn apply(&mut self, batch: &mut ApplyBatch<'_>, req: &InternalRequest, _events: &mut Vec<Event>) -> Applied {
        if let Some(Req::MemberAttributes(a)) = &req.body {
            self.set_attributes(batch, a);
        }
        // A member's own bookkeeping: nobody waits for it.
        Ok(None)
    }

    fn committed(&mut self) {
        self.committed = self.members.clone();
    }

    fn aborted(&mut self) {
        self.members = self.committed.clone();
    }
}

/// The context of a configuration-change entry, if it has one.
pub fn context_of(e: &Entry) -> Option<MemberContext> {
    let context = match e.entry_type() {
        EntryType::EntryConfChange => ConfChange::decode(e.data.clone()).ok()?.context,
        EntryType::EntryConfChangeV2 => ConfChangeV2::decode(e.data.clone()).ok()?.context,
        EntryType::EntryNormal => return None,
    };
    MemberContext::decode(context).ok()
}

fn in_conf(cs: &ConfState, id: u64) -> bool {
    cs.voters.iter().chain(&cs.learners).chain(&cs.voters_outgoing).chain(&cs.learners_next).any(|&x| x == id)
}
