//! The maintenance applier: etcd's alarms (GET / ACTIVATE / DEACTIVATE,
//! every action through Raft as etcd does it, so a GET is linearizable),
//! kept in the `alarm` column family and mirrored in the shared
//! `AlarmSet` the rest of the node reads.
//!
//! Owns the `alarm` column family's part of the batch; never refuses
//! requests itself (the router asks the set).

use super::router::{Applied, Applier, Outcome};
use crate::mvcc::ApplyBatch;
use crate::proto::etcdserverpb::{alarm_request::AlarmAction, AlarmMember, AlarmResponse};
use crate::proto::internalpb::{internal_request::Body as Req, InternalRequest};
use crate::proto::mvccpb::Event;
use crate::proto::raftkvpb::client_response::Body;
use crate::server::alarms::{key, AlarmSet};
use crate::storage::db::CF_ALARM;
use crate::storage::Db;
use std::sync::Arc;

pub struct AlarmApplier {
    db: Arc<Db>,
    set: Arc<AlarmSet>,
    /// Changed since the last commit: reload the set if the batch is abandoned.
    dirty: bool,
}

impl AlarmApplier {
    pub fn open(db: Arc<Db>, set: Arc<AlarmSet>) -> Result<AlarmApplier, String> {
        set.load(&db)?;
        Ok(AlarmApplier { db, set, dirty: false })
    }

    pub fn reload(&mut self) -> Result<(), String> {
        self.set.load(&self.db)
    }
}

impl Applier for AlarmApplier {
    fn apply(&mut self, batch: &mut ApplyBatch<'_>, req: &InternalRequest, _events: &mut Vec<Event>) -> Applied {
        let Some(Req::Alarm(a)) = &req.body else { return Ok(None) };
        let alarms: Vec<AlarmMember> = match a.action() {
            AlarmAction::Get => self.set.get(a.alarm),
            AlarmAction::Activate => {
                if self.set.activate(a.member_id, a.alarm) {
                    batch.write_batch().put_cf(self.db.cf(CF_ALARM), key(a.member_id, a.alarm), []);
                    self.dirty = true;
                    log::warn!(
                        "alarm raised: {}",
                        crate::server::alarms::alarm_text(&AlarmMember { member_id: a.member_id, alarm: a.alarm })
                    );
                }
                vec![AlarmMember { member_id: a.member_id, alarm: a.alarm }]
            }
            AlarmAction::Deactivate => {
                if self.set.deactivate(a.member_id, a.alarm) {
                    batch.write_batch().delete_cf(self.db.cf(CF_ALARM), key(a.member_id, a.alarm));
                    self.dirty = true;
                    vec![AlarmMember { member_id: a.member_id, alarm: a.alarm }]
                } else {
                    Vec::new()
                }
            }
        };
        // etcd 3.4 answers without a header (3.5 adds one); etcdctl prints
        // what it gets.
        let resp = AlarmResponse { header: None, alarms };
        Ok(Some(Outcome::of(req.id, Ok(Body::Alarm(resp)))))
    }

    fn committed(&mut self) {
        self.dirty = false;
    }

    fn aborted(&mut self) {
        if std::mem::take(&mut self.dirty) {
            if let Err(e) = self.set.load(&self.db) {
                log::error!("reloading the alarms: {e}");
            }
        }
    }
}
