//! Membership changes at run time: etcd's Cluster API (add, remove, update,
//! promote) checked against etcd's safety rules on the member that serves
//! it (the leader: the dispatcher forwards these requests there), then
//! proposed as configuration changes and answered once applied.
//!
//! The checks are pure functions of the member table and the leader's
//! view of replication, so they are tested without threads. Owns the
//! checks and the shape of the answers; never applies a change (the
//! membership applier does) and never waits.

use super::cluster_view::{ClusterView, ViewCell};
use super::msgs::Control;
use super::proposer::Proposer;
use super::status::NodeStatus;
use crate::plumbing::doorbell::RingingSender;
use crate::plumbing::errors::ApiError;
use crate::plumbing::outbox::Responder;
use crate::plumbing::wait::Completion;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberPromoteResponse, MemberRemoveResponse, MemberUpdateResponse,
};
use crate::proto::internalpb::MemberContext;
use crate::proto::raftkvpb::{client_response::Body, ErrorCode};
use crate::proto::raftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use crate::storage::Db;
use crossbeam_channel::TrySendError;
use prost::Message as _;
use std::net::SocketAddr;
use std::sync::Arc;

/// A learner is promotable once its log holds this share of the leader's
/// (etcd's `readyPercent`).
const PROMOTE_READY_SHARE: f64 = 0.9;

/// The rules a change must pass.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Refuse changes that would leave fewer started members than a quorum
    /// (etcd's `--strict-reconfig-check`, on by default).
    pub strict: bool,
    /// Learners the cluster may hold at once (etcd: 1).
    pub max_learners: usize,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules { strict: true, max_learners: 1 }
    }
}

/// A peer URL as etcd's tools write it (`http://host:port`, a trailing `/`
/// allowed) or bare `host:port`, as an address.
pub fn parse_peer_url(url: &str) -> Option<SocketAddr> {
    let s = url.trim();
    let s = s.strip_prefix("http://").unwrap_or(s);
    s.strip_suffix('/').unwrap_or(s).parse().ok()
}

/// The canonical form stored in member records: `http://host:port`.
pub fn canonical_peer_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

fn bad_urls() -> ApiError {
    ApiError::of(ErrorCode::MemberBadUrls)
}

/// Parses and canonicalises a change's peer URLs: at least one, each valid,
/// no repeats.
pub fn peer_urls(urls: &[String]) -> Result<Vec<String>, ApiError> {
    if urls.is_empty() {
        return Err(bad_urls());
    }
    let mut out: Vec<String> = Vec::new();
    for u in urls {
        let url = canonical_peer_url(parse_peer_url(u).ok_or_else(bad_urls)?);
        if out.contains(&url) {
            return Err(bad_urls());
        }
        out.push(url);
    }
    Ok(out)
}

/// Refuses URLs that another member (not `except`) already uses.
fn check_clash(members: &[Member], urls: &[String], except: u64) -> Result<(), ApiError> {
    let taken = |u: &String| {
        members
            .iter()
            .filter(|m| m.id != except)
            .any(|m| m.peer_ur_ls.iter().any(|p| parse_peer_url(p).map(canonical_peer_url).as_ref() == Some(u)))
    };
    if urls.iter().any(taken) {
        return Err(ApiError::of(ErrorCode::PeerUrlExist));
    }
    Ok(())
}

/// Started, as etcd counts it: the member published its name, i.e. it ran.
fn started(m: &Member) -> bool {
    !m.name.is_empty()
}

fn not_enough_started() -> ApiError {
    ApiError::of(ErrorCode::NotEnoughStarted)
}

fn find(members: &[Member], id: u64) -> Result<&Member, ApiError> {
    members.iter().find(|m| m.id == id).ok_or_else(|| ApiError::of(ErrorCode::MemberNotFound))
}

/// May a member with these peer URLs join (as a learner or a voter)? As
/// etcd (`mayAddMember`): with the strict check, a new voter needs a
/// quorum of the larger cluster started, and any addition needs every
/// voter answering; then the URLs must be free and the learners few.
pub fn check_add(
    members: &[Member],
    view: &ClusterView,
    urls: &[String],
    learner: bool,
    rules: Rules,
) -> Result<(), ApiError> {
    if rules.strict {
        let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
        if !learner {
            // The new voter counts in the quorum but has not started yet.
            let n = voters.len() + 1;
            let started = voters.iter().filter(|m| started(m)).count();
            // A second member for a one-member cluster (restoring data) is allowed.
            let restoring = started == 1 && n == 2;
            if !restoring && started < n / 2 + 1 {
                return Err(not_enough_started());
            }
        }
        if view.is_leader && voters.iter().any(|m| !view.is_active(m.id)) {
            return Err(ApiError::of(ErrorCode::Unhealthy));
        }
    }
    check_clash(members, urls, 0)?;
    if learner && members.iter().filter(|m| m.is_learner).count() >= rules.max_learners {
        return Err(ApiError::of(ErrorCode::TooManyLearners));
    }
    Ok(())
}

/// May member `id` leave?
pub fn check_remove(members: &[Member], view: &ClusterView, id: u64, rules: Rules) -> Result<(), ApiError> {
    let target = find(members, id)?;
    if target.is_learner || !rules.strict {
        return Ok(());
    }
    let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
    let rest: Vec<&&Member> = voters.iter().filter(|m| m.id != id).collect();
    let started_rest = rest.iter().filter(|m| started(m)).count();
    if started_rest < rest.len() / 2 + 1 {
        return Err(not_enough_started());
    }
    // A member that is down is not part of the active quorum: safe to remove.
    if view.is_leader && !view.is_active(id) {
        return Ok(());
    }
    // The members still answering, without the one leaving, must be a
    // quorum of the smaller cluster.
    if view.is_leader {
        let active_rest = rest.iter().filter(|m| view.is_active(m.id)).count();
        if active_rest < rest.len() / 2 + 1 {
            return Err(not_enough_started());
        }
    }
    Ok(())
}

/// May learner `id` become a voter? Only the leader knows whether it is in sync.
pub fn check_promote(members: &[Member], view: &ClusterView, id: u64, rules: Rules) -> Result<(), ApiError> {
    let target = find(members, id)?;
    if !target.is_learner {
        return Err(ApiError::of(ErrorCode::MemberNotLearner));
    }
    if !view.is_leader {
        return Err(ApiError::of(ErrorCode::NotLeader));
    }
    let matched = view.progress.get(&id).map_or(0, |p| p.matched);
    let leader = view.progress.get(&view.member_id).map_or(view.last_index, |p| p.matched.max(view.last_index));
    if (matched as f64) < leader as f64 * PROMOTE_READY_SHARE {
        return Err(ApiError::of(ErrorCode::LearnerNotReady));
    }
    if rules.strict {
        // The learner counts as started and in the future quorum.
        let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
        let n = voters.len() + 1;
        let started = 1 + voters.iter().filter(|m| started(m)).count();
        if started < n / 2 + 1 {
            return Err(not_enough_started());
        }
    }
    Ok(())
}

/// May member `id` move to these peer URLs?
pub fn check_update(members: &[Member], id: u64, urls: &[String]) -> Result<(), ApiError> {
    find(members, id)?;
    check_clash(members, urls, id)
}

/// A new member's id: from its URLs, the cluster and the time (as etcd's),
/// never 0 and never one in use.
pub fn new_member_id(members: &[Member], urls: &[String], cluster_id: u64, now_nanos: u128) -> u64 {
    let mut seed = format!("{}|{cluster_id:x}|{now_nanos}", urls.join(","));
    loop {
        let id = super::ids::hash_of(seed.as_bytes());
        if id != 0 && members.iter().all(|m| m.id != id) {
            return id;
        }
        seed.push('+');
    }
}

fn change(change_type: ConfChangeType, node_id: u64) -> ConfChangeSingle {
    ConfChangeSingle { change_type: change_type as i32, node_id }
}

/// A one-step configuration change carrying `member` for the appliers.
fn conf_change(changes: Vec<ConfChangeSingle>, member: Option<Member>) -> ConfChangeV2 {
    ConfChangeV2 {
        transition: ConfChangeTransition::Auto as i32,
        changes,
        context: MemberContext { member, ..Default::default() }.encode_to_vec().into(),
    }
}

/// Serves the Cluster API's changes on this member.
#[derive(Clone)]
pub struct Reconfig {
    pub cluster_id: u64,
    pub rules: Rules,
    pub db: Arc<Db>,
    pub view: Arc<ViewCell>,
    pub status: Arc<NodeStatus>,
    pub proposer: Proposer,
    /// To the raft thread, for leadership transfers.
    pub control: RingingSender<Control>,
}

impl Reconfig {
    fn members(&self) -> Result<Vec<Member>, ApiError> {
        super::members::load(&self.db).map_err(|e| ApiError::internal(format!("reading the members: {e}")))
    }

    /// The applied member list, reshaped for the request's answer.
    fn propose(
        &self,
        cc: ConfChangeV2,
        responder: Responder,
        shape: impl FnOnce(Vec<Member>) -> Body + Send + 'static,
    ) {
        self.propose_then(cc, shape, Box::new(move |r| responder.answer(r)));
    }

    fn propose_then(
        &self,
        cc: ConfChangeV2,
        shape: impl FnOnce(Vec<Member>) -> Body + Send + 'static,
        then: Box<dyn FnOnce(Result<Body, ApiError>) + Send>,
    ) {
        let done = move |r: Result<Body, ApiError>| {
            then(r.and_then(|b| match b {
                Body::MemberList(l) => Ok(shape(l.members)),
                other => Err(ApiError::internal(format!("unexpected outcome of a membership change: {other:?}"))),
            }))
        };
        self.proposer.propose_conf_change(cc, Completion::Call(Box::new(done)));
    }

    pub fn add(&self, req: MemberAddRequest, responder: Responder) {
        let checked = self.members().and_then(|members| {
            let urls = peer_urls(&req.peer_ur_ls)?;
            check_add(&members, &self.view.get(), &urls, req.is_learner, self.rules)?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let id = new_member_id(&members, &urls, self.cluster_id, now);
            Ok(Member {
                id,
                name: String::new(),
                peer_ur_ls: urls,
                client_ur_ls: Vec::new(),
                is_learner: req.is_learner,
            })
        });
        let member = match checked {
            Ok(m) => m,
            Err(e) => return responder.fail(e),
        };
        let kind = if member.is_learner {
            ConfChangeType::ConfChangeAddLearnerNode
        } else {
            ConfChangeType::ConfChangeAddNode
        };
        let cc = conf_change(vec![change(kind, member.id)], Some(member.clone()));
        let status = self.status.clone();
        self.propose(cc, responder, move |members| {
            let added = members.iter().find(|m| m.id == member.id).cloned().unwrap_or(member);
            Body::MemberAdd(MemberAddResponse { header: Some(status.header(0)), member: Some(added), members })
        });
    }

    pub fn remove(&self, id: u64, responder: Responder) {
        if let Err(e) = self.members().and_then(|m| check_remove(&m, &self.view.get(), id, self.rules)) {
            return responder.fail(e);
        }
        let cc = conf_change(vec![change(ConfChangeType::ConfChangeRemoveNode, id)], None);
        let status = self.status.clone();
        self.propose(cc, responder, move |members| {
            Body::MemberRemove(MemberRemoveResponse { header: Some(status.header(0)), members })
        });
    }

    pub fn update(&self, id: u64, urls: &[String], responder: Responder) {
        let checked = self.members().and_then(|members| {
            let urls = peer_urls(urls)?;
            check_update(&members, id, &urls)?;
            let mut m = find(&members, id)?.clone();
            m.peer_ur_ls = urls;
            Ok(m)
        });
        let member = match checked {
            Ok(m) => m,
            Err(e) => return responder.fail(e),
        };
        let cc = conf_change(vec![change(ConfChangeType::ConfChangeUpdateNode, id)], Some(member));
        let status = self.status.clone();
        self.propose(cc, responder, move |members| {
            Body::MemberUpdate(MemberUpdateResponse { header: Some(status.header(0)), members })
        });
    }

    /// etcd's MoveLeader: the raft thread checks the transferee (a voter
    /// of the configuration) and answers once it leads.
    pub fn move_leader(&self, to: u64, responder: Responder) {
        let deadline = std::time::Instant::now() + self.proposer.request_timeout;
        if let Err(e) = self.control.try_send(Control::TransferLeader { to, responder, deadline }) {
            let error = ApiError::from_queue(&e);
            if let TrySendError::Full(Control::TransferLeader { responder, .. })
            | TrySendError::Disconnected(Control::TransferLeader { responder, .. }) = e
            {
                responder.fail(error);
            }
        }
    }

    pub fn promote(&self, id: u64, responder: Responder) {
        self.promote_then(id, Box::new(move |r| responder.answer(r)));
    }

    /// Promotes learner `id` if the checks pass; `then` gets the outcome.
    pub fn promote_then(&self, id: u64, then: Box<dyn FnOnce(Result<Body, ApiError>) + Send>) {
        let checked = self.members().and_then(|members| {
            check_promote(&members, &self.view.get(), id, self.rules)?;
            let mut m = find(&members, id)?.clone();
            m.is_learner = false;
            Ok(m)
        });
        let member = match checked {
            Ok(m) => m,
            Err(e) => return then(Err(e)),
        };
        let cc = conf_change(vec![change(ConfChangeType::ConfChangeAddNode, id)], Some(member));
        let status = self.status.clone();
        let shape =
            move |members| Body::MemberPromote(MemberPromoteResponse { header: Some(status.header(0)), members });
        self.propose_then(cc, shape, then);
    }

    /// The learners the leader sees in sync (etcd's 90%), for automatic
    /// promotion; none on a follower.
    pub fn learners_in_sync(&self) -> Vec<u64> {
        let view = self.view.get();
        let Ok(members) = self.members() else { return Vec::new() };
        members
            .iter()
            .filter(|m| m.is_learner && check_promote(&members, &view, m.id, self.rules).is_ok())
            .map(|m| m.id)
            .collect()
    }
}

#[cfg(test)]
#[path = "reconfig_tests.rs"]
mod tests;
