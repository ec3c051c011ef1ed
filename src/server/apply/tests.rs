//! The apply loop's routing, stepped without threads: entries in, waiters
//! completed, events handed to the watch feed after the commit, member
//! records staged and read back within one batch, nothing applied twice.

use super::alarm::AlarmApplier;
use super::router::Router;
use super::ApplyLoop;
use crate::mvcc::KvStore;
use crate::plumbing::doorbell::{self, Doorbell};
use crate::plumbing::wait::{Completion, WaitRegistry};
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, DeleteRangeRequest, LeaseCheckpoint, LeaseCheckpointRequest,
    LeaseGrantRequest, LeaseRevokeRequest, Member, PutRequest,
};
use crate::proto::internalpb::{internal_request::Body as Req, InternalRequest, MemberAttributes, MemberContext};
use crate::proto::internalpb::{LeaseExpireRequest, LeaseExpiry};
use crate::proto::mvccpb::Event;
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::proto::raftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType};
use crate::server::alarms::AlarmSet;
use crate::server::apply::kv::KvApplier;
use crate::server::apply::lease::LeaseApplier;
use crate::server::apply::membership::MembershipApplier;
use crate::server::status::NodeStatus;
use crate::storage::Db;
use crate::watch::EventFeed;
use crossbeam_channel::{bounded, Receiver};
use prost::Message as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ME: u64 = 7;

struct Harness {
    _dir: tempfile::TempDir,
    apply: ApplyLoop,
    events: Receiver<Vec<Event>>,
    next_index: u64,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&dir.path().join("db")).unwrap());
    let kv = Arc::new(KvStore::open(db.clone()).unwrap());
    let status = Arc::new(NodeStatus::new(1, ME));
    let (bell, raft_bell) = (Doorbell::new(), Doorbell::new());
    let (ev_tx, ev_rx) = doorbell::channel(16, &Doorbell::new());
    let (_apply_tx, apply_rx) = doorbell::channel(4, &bell);
    let (ctrl_tx, _ctrl_rx) = doorbell::channel(4, &raft_bell);
    let (reads_tx, _reads_rx) = bounded(4);
    let alarms = Arc::new(AlarmSet::default());
    let router = Router::new(
        KvApplier::new(status.clone()),
        MembershipApplier::open(db.clone(), status.clone(), ME).unwrap(),
        LeaseApplier::open(db.clone(), kv.clone(), status.clone()).unwrap(),
        AlarmApplier::open(db.clone(), alarms.clone()).unwrap(),
        alarms,
        Some(EventFeed::new(ev_tx, Arc::new(AtomicBool::new(false)))),
    );
    let apply = ApplyLoop {
        kv,
        db,
        router,
        rx: apply_rx,
        bell,
        raft_bell,
        raft_backlog: Arc::new(AtomicBool::new(false)),
        wait: Arc::new(WaitRegistry::new(64)),
        status,
        reads: reads_tx,
        control: ctrl_tx,
        member_id: ME,
        snapshot_count: 10_000,
    };
    Harness { _dir: dir, apply, events: ev_rx, next_index: 1 }
}

impl Harness {
    fn entry(&mut self, t: EntryType, data: Vec<u8>) -> Entry {
        let e = Entry { entry_type: t as i32, term: 1, index: self.next_index, data: data.into() };
        self.next_index += 1;
        e
    }

    fn request(&mut self, id: u64, member: u64, body: Req) -> Entry {
        let data = InternalRequest { id, member_id: member, body: Some(body) }.encode_to_vec();
        self.entry(EntryType::EntryNormal, data)
    }

    fn wait_for(&self, id: u64) -> Receiver<Result<Body, crate::plumbing::ApiError>> {
        let (tx, rx) = bounded(1);
        self.apply.wait.register(id, Completion::Notify(tx), Instant::now() + Duration::from_secs(60)).unwrap();
        rx
    }
}

fn put(key: &str) -> Req {
    Req::Put(PutRequest { key: key.as_bytes().to_vec().into(), value: "v".into(), ..Default::default() })
}

#[test]
fn requests_are_routed_and_their_waiters_completed_after_the_commit() {
    let mut h = harness();
    let mine = h.wait_for(1);
    let alarm = h.wait_for(2);
    let entries = vec![h.request(1, ME, put("a")), h.request(2, ME, Req::Alarm(AlarmRequest::default()))];
    h.apply.apply_entries(&entries, vec![]).unwrap();
    match mine.try_recv().unwrap().unwrap() {
        Body::Put(p) => assert_eq!(p.header.unwrap().revision, 2),
        other => panic!("{other:?}"),
    }
    match alarm.try_recv().unwrap().unwrap() {
        Body::Alarm(a) => assert!(a.alarms.is_empty(), "no alarm is active: {a:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.apply.kv.current_revision(), 2);
}

fn alarm(action: AlarmAction, member_id: u64, alarm: AlarmType) -> Req {
    Req::Alarm(AlarmRequest { action: action as i32, member_id, alarm: alarm as i32 })
}

#[test]
fn nospace_refuses_what_grows_the_database_on_every_member_alike_until_disarmed() {
    let mut h = harness();
    let raised = h.wait_for(1);
    let refused = h.wait_for(2);
    let deleted = h.wait_for(3);
    let entries = vec![
        h.request(1, 7, alarm(AlarmAction::Activate, 7, AlarmType::Nospace)),
        h.request(2, ME, put("a")),
        h.request(3, ME, Req::DeleteRange(DeleteRangeRequest { key: "a".into(), ..Default::default() })),
    ];
    h.apply.apply_entries(&entries, vec![]).unwrap();
    match raised.try_recv().unwrap().unwrap() {
        Body::Alarm(a) => assert_eq!(a.alarms.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(refused.try_recv().unwrap().unwrap_err().code, ErrorCode::NoSpace);
    assert!(deleted.try_recv().unwrap().is_ok(), "deletes still go through");
    assert_eq!(h.apply.kv.current_revision(), 1, "the refused put wrote nothing");
    let disarmed = h.wait_for(4);
    let after = h.wait_for(5);
    let entries =
        vec![h.request(4, ME, alarm(AlarmAction::Deactivate, 7, AlarmType::Nospace)), h.request(5, ME, put("a"))];
    h.apply.apply_entries(&entries, vec![]).unwrap();
    match disarmed.try_recv().unwrap().unwrap() {
        Body::Alarm(a) => assert_eq!(a.alarms.len(), 1, "the disarmed alarm is named"),
        other => panic!("{other:?}"),
    }
    assert!(after.try_recv().unwrap().is_ok());
}

#[test]
fn events_go_to_the_watch_feed_once_per_committed_batch_in_order() {
    let mut h = harness();
    let entries = vec![h.request(1, 99, put("a")), h.request(2, 99, put("b"))];
    h.apply.apply_entries(&entries, vec![]).unwrap();
    let evs = h.events.try_recv().expect("one hand-over for the batch");
    let revs: Vec<i64> = evs.iter().map(|e| e.kv.as_ref().unwrap().mod_revision).collect();
    assert_eq!(revs, vec![2, 3]);
    assert!(h.events.try_recv().is_err());
    // Replayed entries (at or below the consistent index) change nothing.
    h.apply.apply_entries(&entries, vec![]).unwrap();
    assert!(h.events.try_recv().is_err(), "nothing applied twice");
    assert_eq!(h.apply.kv.current_revision(), 3);
}

#[test]
fn membership_changes_are_staged_in_memory_and_answered() {
    let mut h = harness();
    let member =
        Member { id: 5, name: "n5".into(), peer_ur_ls: vec!["http://127.0.0.1:1".into()], ..Default::default() };
    let ctx = MemberContext { member: Some(member), request_id: 3, proposer: ME };
    let cc = ConfChangeV2 {
        changes: vec![ConfChangeSingle { change_type: ConfChangeType::ConfChangeAddNode as i32, node_id: 5 }],
        context: ctx.encode_to_vec().into(),
        ..Default::default()
    };
    let waiter = h.wait_for(3);
    let cc_entry = h.entry(EntryType::EntryConfChangeV2, cc.encode_to_vec());
    let cs = ConfState { voters: vec![5, ME], ..Default::default() };
    // The attributes in the same batch find the member staged just before.
    let attrs = MemberAttributes { id: 5, name: "renamed".into(), client_urls: vec!["http://127.0.0.1:2".into()] };
    let attrs_entry = h.request(0, 5, Req::MemberAttributes(attrs));
    let index = cc_entry.index;
    h.apply.apply_entries(&[cc_entry, attrs_entry], vec![(index, cs)]).unwrap();
    match waiter.try_recv().unwrap().unwrap() {
        Body::MemberList(l) => assert_eq!(l.members.len(), 1),
        other => panic!("{other:?}"),
    }
    let stored = crate::server::members::load(&h.apply.db).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].name.as_str(), stored[0].client_ur_ls.len()), ("renamed", 1));
}

fn grant(id: i64, ttl: i64) -> Req {
    Req::LeaseGrant(LeaseGrantRequest { id, ttl })
}

fn put_leased(key: &str, lease: i64) -> Req {
    Req::Put(PutRequest { key: key.as_bytes().to_vec().into(), value: "v".into(), lease, ..Default::default() })
}

fn live(h: &Harness, key: &str) -> bool {
    let req = crate::proto::etcdserverpb::RangeRequest { key: key.as_bytes().to_vec().into(), ..Default::default() };
    !h.apply.kv.range(&req).unwrap().kvs.is_empty()
}

fn lease_of(h: &Harness, id: i64) -> Option<crate::lease::table::Lease> {
    h.apply.router.lease.table().lock().unwrap().get(id).cloned()
}

#[test]
fn a_revocation_deletes_the_leases_keys_in_one_revision_and_later_puts_cannot_attach() {
    let mut h = harness();
    let (revoked, late_put, dup) = (h.wait_for(4), h.wait_for(5), h.wait_for(6));
    let entries = vec![
        h.request(1, ME, grant(7, 60)),
        h.request(2, ME, put_leased("a", 7)),
        h.request(3, ME, put_leased("b", 7)),
        h.request(4, ME, Req::LeaseRevoke(LeaseRevokeRequest { id: 7 })),
        // Same batch: the lease is gone already.
        h.request(5, ME, put_leased("c", 7)),
        h.request(6, ME, grant(8, 60)),
    ];
    h.apply.apply_entries(&entries, vec![]).unwrap();
    match revoked.try_recv().unwrap().unwrap() {
        Body::LeaseRevoke(r) => assert_eq!(r.header.unwrap().revision, 4, "a and b deleted at one revision"),
        other => panic!("{other:?}"),
    }
    assert_eq!(late_put.try_recv().unwrap().unwrap_err().code, ErrorCode::LeaseNotFound);
    assert!(dup.try_recv().unwrap().is_ok());
    let evs = h.events.try_recv().unwrap();
    let deletes: Vec<(i64, &[u8])> = evs
        .iter()
        .filter(|e| e.r#type == crate::proto::mvccpb::event::EventType::Delete as i32)
        .map(|e| (e.kv.as_ref().unwrap().mod_revision, &e.kv.as_ref().unwrap().key[..]))
        .collect();
    assert_eq!(deletes, vec![(4, &b"a"[..]), (4, &b"b"[..])], "watchers see both deletes");
    assert!(lease_of(&h, 7).is_none());
    assert_eq!(h.apply.kv.current_revision(), 4);
    let again = h.wait_for(9);
    let e = vec![h.request(9, ME, grant(8, 60))];
    h.apply.apply_entries(&e, vec![]).unwrap();
    assert_eq!(again.try_recv().unwrap().unwrap_err().code, ErrorCode::LeaseExist);
}

#[test]
fn an_expiry_decided_before_a_renewal_revokes_nothing() {
    let mut h = harness();
    let entries = vec![
        h.request(1, ME, grant(7, 60)),
        h.request(2, ME, put_leased("a", 7)),
        h.request(
            3,
            ME,
            Req::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints: vec![LeaseCheckpoint { id: 7, remaining_ttl: 60 }],
            }),
        ),
        // Decided on the grant (renewal 1); the lease was renewed since (2).
        h.request(4, ME, Req::LeaseExpire(LeaseExpireRequest { leases: vec![LeaseExpiry { id: 7, renewals: 1 }] })),
    ];
    h.apply.apply_entries(&entries, vec![]).unwrap();
    assert_eq!(lease_of(&h, 7).map(|l| l.renewals), Some(2), "still there, renewed once");
    assert!(live(&h, "a"));
    let e = vec![h.request(
        5,
        ME,
        Req::LeaseExpire(LeaseExpireRequest { leases: vec![LeaseExpiry { id: 7, renewals: 2 }] }),
    )];
    h.apply.apply_entries(&e, vec![]).unwrap();
    assert!(lease_of(&h, 7).is_none(), "an expiry on the current renewal revokes");
    assert!(!live(&h, "a"));
}

#[test]
fn leases_and_their_keys_come_back_from_storage() {
    let mut h = harness();
    let entries = vec![
        h.request(1, ME, grant(7, 60)),
        h.request(2, ME, grant(8, 30)),
        h.request(3, ME, put_leased("a", 7)),
        h.request(4, ME, put_leased("b", 8)),
        h.request(5, ME, put_leased("b", 7)),
        h.request(
            6,
            ME,
            Req::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints: vec![LeaseCheckpoint { id: 8, remaining_ttl: 30 }],
            }),
        ),
    ];
    h.apply.apply_entries(&entries, vec![]).unwrap();
    let reopened = LeaseApplier::open(h.apply.db.clone(), h.apply.kv.clone(), h.apply.status.clone()).unwrap();
    let t = reopened.table().lock().unwrap();
    let seven = t.get(7).unwrap();
    assert_eq!((seven.ttl, seven.renewals, seven.keys.len()), (60, 1, 2), "a and b (moved from 8)");
    let eight = t.get(8).unwrap();
    assert_eq!((eight.ttl, eight.renewals, eight.keys.len()), (30, 2, 0));
}
