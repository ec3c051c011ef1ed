//! A deterministic, hand-driven cluster of `RawNode`s over `MemStorage`.
//!
//! Nothing happens unless a test asks for it: messages wait in one FIFO queue
//! until they are delivered (one by one, or "stabilize": until the queue is
//! empty), time passes only through explicit ticks, and every node carries
//! out its `Ready` exactly as the contract says right after each input:
//! send `messages`; persist snapshot, entries and hard state; send
//! `persisted_messages`; apply snapshot and committed entries (calling
//! `apply_conf_change` for membership entries); `advance`.
//!
//! Faults: links can be cut (one way or both), nodes isolated or muted
//! (their output dropped), arbitrary messages dropped by filters, and nodes
//! crashed (only what was persisted survives: `into_store`, then a new
//! `RawNode` on that storage).
//!
//! Two safety nets run all the time: no two nodes ever apply different
//! entries at the same index, and no term has two leaders.

use bytes::Bytes;
use raftkv::proto::raftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
    HardState, Message, MessageType,
};
use raftkv::raft::{
    Config, DropReason, Error, MemStorage, ProgressState, ProgressStatus, RawNode, ReadState, StateRole, Storage,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The seed every node's configuration uses unless a test says otherwise.
pub const SEED: u64 = 0x5EED;

/// The default configuration of node `id`: `Config::new` with the test seed.
pub fn config(id: u64) -> Config {
    let mut c = Config::new(id);
    c.seed = SEED;
    c
}

// ------------------------------------------------------------------ helpers

pub fn ent(index: u64, term: u64) -> Entry {
    Entry { index, term, data: Bytes::from(format!("{index}@{term}")), ..Default::default() }
}

/// A storage holding `terms[i]` at index `i + 1` (normal entries), the given
/// configuration, and the hard state (`term`, no vote, `commit`).
pub fn storage_with_log(cs: ConfState, terms: &[u64], term: u64, commit: u64) -> MemStorage {
    let mut s = MemStorage::new();
    s.set_conf_state(cs);
    let entries: Vec<Entry> = terms.iter().enumerate().map(|(i, &t)| ent(i as u64 + 1, t)).collect();
    s.append(&entries).expect("append");
    s.set_hard_state(HardState { term, vote: 0, commit });
    s
}

pub fn voters(ids: &[u64]) -> ConfState {
    ConfState { voters: ids.to_vec(), ..Default::default() }
}

pub fn voters_learners(v: &[u64], l: &[u64]) -> ConfState {
    ConfState { voters: v.to_vec(), learners: l.to_vec(), ..Default::default() }
}

pub fn cc(t: ConfChangeType, id: u64) -> ConfChange {
    ConfChange { change_type: t as i32, node_id: id, ..Default::default() }
}

pub fn add_node(id: u64) -> ConfChange {
    cc(ConfChangeType::ConfChangeAddNode, id)
}

pub fn remove_node(id: u64) -> ConfChange {
    cc(ConfChangeType::ConfChangeRemoveNode, id)
}

pub fn add_learner(id: u64) -> ConfChange {
    cc(ConfChangeType::ConfChangeAddLearnerNode, id)
}

pub fn single(t: ConfChangeType, id: u64) -> ConfChangeSingle {
    ConfChangeSingle { change_type: t as i32, node_id: id }
}

pub fn cc_v2(transition: ConfChangeTransition, changes: Vec<ConfChangeSingle>) -> ConfChangeV2 {
    ConfChangeV2 { transition: transition as i32, changes, ..Default::default() }
}

/// The empty change that leaves a joint configuration.
pub fn leave_joint() -> ConfChangeV2 {
    ConfChangeV2::default()
}

pub fn is(m: &Message, t: MessageType) -> bool {
    m.msg_type() == t
}

pub fn dropped(reason: DropReason) -> Error {
    Error::ProposalDropped(reason)
}

fn sorted(v: &[u64]) -> Vec<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// A configuration's members, sorted, for comparisons.
pub fn conf_voters(cs: &ConfState) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    (sorted(&cs.voters), sorted(&cs.voters_outgoing), sorted(&cs.learners))
}

/// Encodes the applied payloads as a snapshot body (length-prefixed).
fn encode_sm(data: &[Bytes]) -> Bytes {
    let mut out = Vec::new();
    for d in data {
        out.extend_from_slice(&(d.len() as u32).to_be_bytes());
        out.extend_from_slice(d);
    }
    out.into()
}

fn decode_sm(mut raw: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while raw.len() >= 4 {
        let n = u32::from_be_bytes(raw[..4].try_into().unwrap()) as usize;
        out.push(Bytes::copy_from_slice(&raw[4..4 + n]));
        raw = &raw[4 + n..];
    }
    out
}

// ------------------------------------------------------------------ node

/// The application side of one node: what it applied.
#[derive(Debug, Default, Clone)]
pub struct StateMachine {
    /// Payloads of applied non-empty normal entries, in order.
    pub data: Vec<Bytes>,
    /// Index of the last applied entry (or snapshot).
    pub applied: u64,
    /// (index, term) of every entry applied since the last (re)start.
    pub applied_log: Vec<(u64, u64)>,
    /// The configuration as of `applied`.
    pub conf_state: ConfState,
    /// Every configuration this node applied, in order.
    pub conf_history: Vec<ConfState>,
    /// (index, term) of every snapshot installed from a leader.
    pub snapshots_installed: Vec<(u64, u64)>,
}

pub struct Node {
    pub id: u64,
    pub config: Config,
    raw: Option<RawNode<MemStorage>>,
    /// The persisted storage while the node is down.
    disk: Option<MemStorage>,
    pub sm: StateMachine,
    /// Read states handed out, oldest first.
    pub read_states: Vec<ReadState>,
    /// How many times the core asked the storage for a newer snapshot.
    pub snapshot_requests: usize,
    /// When set, the harness leaves this node's `Ready` to the test.
    pub manual_ready: bool,
}

impl Node {
    fn start(&mut self) {
        let store = self.disk.take().expect("node is already running");
        let snap = store.snapshot(0, 0).expect("a MemStorage always has a snapshot");
        let meta = snap.metadata.clone().unwrap_or_default();
        self.sm = StateMachine {
            data: decode_sm(&snap.data),
            applied: meta.index,
            conf_state: meta.conf_state.clone().unwrap_or_default(),
            ..Default::default()
        };
        let mut config = self.config.clone();
        config.applied = meta.index;
        let raw = RawNode::new(&config, store).unwrap_or_else(|e| panic!("node {}: start failed: {e}", self.id));
        self.raw = Some(raw);
    }
}

/// What happened while a node carried out its Ready (checked by the cluster).
#[derive(Default)]
struct Outcome {
    out: Vec<Message>,
    applied: Vec<Entry>,
    became_leader: Option<u64>,
}

// ------------------------------------------------------------------ cluster

type Filter = Box<dyn FnMut(&Message) -> bool>;

pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    /// Messages in flight, delivered in order.
    pub queue: VecDeque<Message>,
    /// Every message any node sent, in order (including dropped ones).
    pub trace: Vec<Message>,
    /// Messages lost to a fault.
    pub lost: Vec<Message>,
    /// Messages refused on delivery: forwarded proposals that were dropped,
    /// responses from nodes that are no longer members.
    pub refused: Vec<(Message, Error)>,
    cut: BTreeSet<(u64, u64)>,
    isolated: BTreeSet<u64>,
    muted: BTreeSet<u64>,
    filters: Vec<Filter>,
    configure: Box<dyn Fn(&mut Config)>,
    /// Safety net: the first entry applied at each index, by anyone.
    applied_anywhere: BTreeMap<u64, (u64, Bytes)>,
    /// Safety net: the leader of each term.
    leaders: BTreeMap<u64, u64>,
}

impl Cluster {
    /// Initial members `ids` of a new cluster, default configuration.
    pub fn new(ids: &[u64]) -> Cluster {
        Cluster::with_config(ids, |_| {})
    }

    /// Initial members `ids`, each configuration adjusted by `f` (also used
    /// for nodes added later).
    pub fn with_config(ids: &[u64], f: impl Fn(&mut Config) + 'static) -> Cluster {
        let mut c = Cluster::empty(f);
        for &id in ids {
            c.add_node_with_storage(id, MemStorage::bootstrap(ids));
        }
        c
    }

    /// A cluster of nodes starting from the given storages.
    pub fn from_storages(storages: Vec<(u64, MemStorage)>, f: impl Fn(&mut Config) + 'static) -> Cluster {
        let mut c = Cluster::empty(f);
        for (id, s) in storages {
            c.add_node_with_storage(id, s);
        }
        c
    }

    fn empty(f: impl Fn(&mut Config) + 'static) -> Cluster {
        Cluster {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            trace: Vec::new(),
            lost: Vec::new(),
            refused: Vec::new(),
            cut: BTreeSet::new(),
            isolated: BTreeSet::new(),
            muted: BTreeSet::new(),
            filters: Vec::new(),
            configure: Box::new(f),
            applied_anywhere: BTreeMap::new(),
            leaders: BTreeMap::new(),
        }
    }

    /// The configuration node `id` gets in this cluster.
    pub fn config_of(&self, id: u64) -> Config {
        let mut c = config(id);
        (self.configure)(&mut c);
        c
    }

    /// Starts node `id` on `storage` and carries out its first Ready.
    pub fn add_node_with_storage(&mut self, id: u64, storage: MemStorage) {
        let config = self.config_of(id);
        self.add_node_with(config, storage);
    }

    pub fn add_node_with(&mut self, config: Config, storage: MemStorage) {
        let id = config.id;
        assert!(!self.nodes.contains_key(&id), "node {id} exists already");
        let mut node = Node {
            id,
            config,
            raw: None,
            disk: Some(storage),
            sm: StateMachine::default(),
            read_states: Vec::new(),
            snapshot_requests: 0,
            manual_ready: false,
        };
        node.start();
        self.nodes.insert(id, node);
        self.handle_ready(id);
    }

    /// A member to be added later: empty storage.
    pub fn add_empty_node(&mut self, id: u64) {
        self.add_node_with_storage(id, MemStorage::new());
    }

    // -------------------------------------------------------------- access

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.get(&id).unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn raw(&self, id: u64) -> &RawNode<MemStorage> {
        self.node(id).raw.as_ref().unwrap_or_else(|| panic!("node {id} is down"))
    }

    pub fn raw_mut(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.node_mut(id).raw.as_mut().unwrap_or_else(|| panic!("node {id} is down"))
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.raw.is_some())
    }

    pub fn term(&self, id: u64) -> u64 {
        self.raw(id).raft.term
    }

    pub fn role(&self, id: u64) -> StateRole {
        self.raw(id).raft.role
    }

    pub fn leader_of(&self, id: u64) -> u64 {
        self.raw(id).raft.leader_id
    }

    pub fn committed(&self, id: u64) -> u64 {
        self.raw(id).raft.committed()
    }

    pub fn last_index(&self, id: u64) -> u64 {
        self.raw(id).raft.last_index()
    }

    pub fn vote(&self, id: u64) -> u64 {
        self.raw(id).raft.vote
    }

    /// The leader's view of follower `of`.
    pub fn progress(&self, leader: u64, of: u64) -> ProgressStatus {
        let st = self.raw(leader).status();
        let prs = st.progress.unwrap_or_else(|| panic!("node {leader} is not leader"));
        prs.get(&of).cloned().unwrap_or_else(|| panic!("node {leader} has no progress for {of}"))
    }

    pub fn progress_state(&self, leader: u64, of: u64) -> ProgressState {
        self.progress(leader, of).state
    }

    /// The node that was leader in `term`, if any was.
    pub fn leader_of_term(&self, term: u64) -> Option<u64> {
        self.leaders.get(&term).copied()
    }

    /// The live nodes that are leader, in id order.
    pub fn leaders(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raw.as_ref().is_some_and(|r| r.raft.role == StateRole::Leader))
            .map(|(&id, _)| id)
            .collect()
    }

    /// Terms of the entries in node `id`'s log, index `first_index` first.
    pub fn terms(&self, id: u64) -> Vec<u64> {
        let r = &self.raw(id).raft;
        (r.first_index()..=r.last_index()).map(|i| r.log_term(i).unwrap_or(0)).collect()
    }

    /// (index, term) of every entry in node `id`'s log.
    pub fn log(&self, id: u64) -> Vec<(u64, u64)> {
        let r = &self.raw(id).raft;
        (r.first_index()..=r.last_index()).map(|i| (i, r.log_term(i).unwrap_or(0))).collect()
    }

    /// The persisted entries of node `id` (its storage).
    pub fn stored_entries(&self, id: u64) -> Vec<Entry> {
        let s = self.raw(id).store();
        let (first, last) = (s.first_index(), s.last_index());
        if first > last {
            return Vec::new();
        }
        s.entries(first, last + 1, u64::MAX).expect("entries")
    }

    /// The payloads node `id` applied, as strings.
    pub fn applied_data(&self, id: u64) -> Vec<String> {
        self.node(id).sm.data.iter().map(|d| String::from_utf8_lossy(d).into_owned()).collect()
    }

    /// One line per node, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (id, n) in &self.nodes {
            match &n.raw {
                Some(r) => s.push_str(&format!(
                    "\n  node {id}: {:?} term {} vote {} leader {} commit {} applied {} last {} terms {:?}",
                    r.raft.role,
                    r.raft.term,
                    r.raft.vote,
                    r.raft.leader_id,
                    r.raft.committed(),
                    r.raft.applied(),
                    r.raft.last_index(),
                    self.terms(*id)
                )),
                None => s.push_str(&format!("\n  node {id}: down")),
            }
        }
        s
    }

    // -------------------------------------------------------------- faults

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Cuts messages from `from` to `to` only.
    pub fn cut_one_way(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    /// Cuts every link of `id`.
    pub fn isolate(&mut self, id: u64) {
        self.isolated.insert(id);
    }

    /// Restores every link and removes every filter.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.isolated.clear();
        self.filters.clear();
    }

    /// Drops every delivered message for which `f` returns true.
    pub fn add_filter(&mut self, f: impl FnMut(&Message) -> bool + 'static) {
        self.filters.push(Box::new(f));
    }

    pub fn clear_filters(&mut self) {
        self.filters.clear();
    }

    /// Whether `a` and `b` can talk both ways (filters aside).
    pub fn reachable(&self, a: u64, b: u64) -> bool {
        !self.isolated.contains(&a)
            && !self.isolated.contains(&b)
            && !self.cut.contains(&(a, b))
            && !self.cut.contains(&(b, a))
    }

    /// Whether a message would be lost now.
    fn blocked(&mut self, m: &Message) -> bool {
        if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) || self.cut.contains(&(m.from, m.to)) {
            return true;
        }
        let mut drop = false;
        for f in self.filters.iter_mut() {
            drop |= f(m);
        }
        drop
    }

    /// Crashes node `id`: everything not persisted is lost.
    pub fn crash(&mut self, id: u64) {
        let n = self.node_mut(id);
        let raw = n.raw.take().unwrap_or_else(|| panic!("node {id} is already down"));
        n.disk = Some(raw.into_store());
    }

    /// Replaces what crashed node `id` persisted (a wiped data directory).
    pub fn replace_disk(&mut self, id: u64, storage: MemStorage) {
        let n = self.node_mut(id);
        assert!(n.raw.is_none(), "node {id} must be down to lose its disk");
        n.disk = Some(storage);
    }

    /// Restarts node `id` from what it persisted.
    pub fn restart(&mut self, id: u64) {
        self.node_mut(id).start();
        self.handle_ready(id);
    }

    // -------------------------------------------------------------- network

    fn send_out(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            self.trace.push(m.clone());
            if self.muted.contains(&m.from) {
                self.lost.push(m);
            } else {
                self.queue.push_back(m);
            }
        }
    }

    /// Removes from the queue and returns every message matching `pred`.
    pub fn take(&mut self, mut pred: impl FnMut(&Message) -> bool) -> Vec<Message> {
        let (taken, kept): (Vec<Message>, Vec<Message>) = self.queue.drain(..).partition(|m| pred(m));
        self.queue = kept.into();
        taken
    }

    /// Removes every queued message and returns them.
    pub fn take_all(&mut self) -> Vec<Message> {
        self.queue.drain(..).collect()
    }

    /// Messages in flight matching `pred`.
    pub fn queued(&self, pred: impl Fn(&Message) -> bool) -> Vec<&Message> {
        self.queue.iter().filter(|m| pred(m)).collect()
    }

    /// Steps `m` into its target (unless it is lost) and carries out the
    /// resulting Ready. Errors other than refused proposals fail the test.
    pub fn deliver(&mut self, m: Message) {
        if self.blocked(&m) || !self.is_up(m.to) {
            self.lost.push(m);
            return;
        }
        let to = m.to;
        let result = self.raw_mut(to).step(m.clone());
        match result {
            Ok(()) => {}
            // A refused forwarded proposal, or a late response from a node
            // that was removed meanwhile: expected, recorded.
            Err(e @ (Error::ProposalDropped(_) | Error::StepPeerNotFound)) => self.refused.push((m, e)),
            Err(e) => panic!("node {to}: step of {m:?} failed: {e}{}", self.describe()),
        }
        self.handle_ready(to);
    }

    /// Delivers the oldest message in flight. Returns false when none is.
    pub fn deliver_one(&mut self) -> bool {
        match self.queue.pop_front() {
            Some(m) => {
                self.deliver(m);
                true
            }
            None => false,
        }
    }

    /// Delivers messages until none is in flight.
    pub fn stabilize(&mut self) {
        let mut n = 0;
        while self.deliver_one() {
            n += 1;
            assert!(n < 200_000, "the cluster does not quiesce{}", self.describe());
        }
    }

    /// Messages of the trace matching `pred`.
    pub fn sent(&self, pred: impl Fn(&Message) -> bool) -> Vec<&Message> {
        self.trace.iter().filter(|m| pred(m)).collect()
    }

    pub fn count_sent(&self, pred: impl Fn(&Message) -> bool) -> usize {
        self.trace.iter().filter(|m| pred(m)).count()
    }

    /// Messages of type `t` from `from` to `to` in the trace.
    pub fn sent_between(&self, from: u64, to: u64, t: MessageType) -> Vec<&Message> {
        self.sent(|m| m.from == from && m.to == to && is(m, t))
    }

    pub fn clear_trace(&mut self) {
        self.trace.clear();
    }

    // -------------------------------------------------------------- inputs

    pub fn tick(&mut self, id: u64) {
        self.raw_mut(id).tick().unwrap_or_else(|e| panic!("node {id}: tick failed: {e}"));
        self.handle_ready(id);
    }

    pub fn tick_n(&mut self, id: u64, n: usize) {
        for _ in 0..n {
            self.tick(id);
        }
    }

    /// One tick on every live node, in id order.
    pub fn tick_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().filter(|&id| self.is_up(id)).collect();
        for id in ids {
            self.tick(id);
        }
    }

    pub fn campaign(&mut self, id: u64) {
        self.raw_mut(id).campaign().unwrap_or_else(|e| panic!("node {id}: campaign failed: {e}"));
        self.handle_ready(id);
    }

    pub fn propose(&mut self, id: u64, data: &str) -> Result<(), Error> {
        let r = self.raw_mut(id).propose(Bytes::from(data.to_string()));
        self.handle_ready(id);
        r
    }

    pub fn propose_bytes(&mut self, id: u64, data: Bytes) -> Result<(), Error> {
        let r = self.raw_mut(id).propose(data);
        self.handle_ready(id);
        r
    }

    pub fn propose_batch(&mut self, id: u64, data: &[&str]) -> Result<(), Error> {
        let r = self.raw_mut(id).propose_batch(data.iter().map(|d| Bytes::from(d.to_string())).collect());
        self.handle_ready(id);
        r
    }

    pub fn propose_conf_change(&mut self, id: u64, cc: &ConfChange) -> Result<(), Error> {
        let r = self.raw_mut(id).propose_conf_change(cc);
        self.handle_ready(id);
        r
    }

    pub fn propose_conf_change_v2(&mut self, id: u64, cc: &ConfChangeV2) -> Result<(), Error> {
        let r = self.raw_mut(id).propose_conf_change_v2(cc);
        self.handle_ready(id);
        r
    }

    pub fn read_index(&mut self, id: u64, ctx: &str) -> Result<(), Error> {
        let r = self.raw_mut(id).read_index(Bytes::from(ctx.to_string()));
        self.handle_ready(id);
        r
    }

    pub fn transfer_leader(&mut self, leader: u64, to: u64) {
        self.raw_mut(leader).transfer_leader(to).unwrap_or_else(|e| panic!("node {leader}: transfer failed: {e}"));
        self.handle_ready(leader);
    }

    /// Steps a message straight into node `id` (bypassing the network),
    /// carries out the Ready, and returns the step's result.
    pub fn step(&mut self, id: u64, m: Message) -> Result<(), Error> {
        let r = self.raw_mut(id).step(m);
        self.handle_ready(id);
        r
    }

    /// The read states node `id` received since the last call.
    pub fn take_read_states(&mut self, id: u64) -> Vec<ReadState> {
        std::mem::take(&mut self.node_mut(id).read_states)
    }

    // -------------------------------------------------------------- elections

    /// Lets an election timeout pass on `ids` without anything they send
    /// reaching the network: afterwards none of them is within a leader's
    /// (or its start-up) lease, so it will consider vote requests.
    pub fn expire_leases(&mut self, ids: &[u64]) {
        for &id in ids {
            if !self.is_up(id) {
                continue;
            }
            let election_tick = self.node(id).config.election_tick;
            self.muted.insert(id);
            self.tick_n(id, election_tick);
            self.muted.remove(&id);
        }
    }

    /// Makes `id` leader: the leases of the live nodes it can reach expire
    /// (muted), then
    /// `id` campaigns and every message is delivered; repeated a few times
    /// since a first attempt may only teach it a newer term.
    pub fn try_elect(&mut self, id: u64) -> bool {
        let others: Vec<u64> = self.nodes.keys().copied().filter(|&o| o != id && self.reachable(id, o)).collect();
        self.expire_leases(&others);
        for _ in 0..4 {
            self.campaign(id);
            self.stabilize();
            if self.role(id) == StateRole::Leader {
                return true;
            }
        }
        false
    }

    pub fn elect(&mut self, id: u64) {
        assert!(self.try_elect(id), "node {id} could not be elected:{}", self.describe());
    }

    // -------------------------------------------------------------- snapshots

    /// Makes a snapshot of node `id`'s applied state (with its current
    /// configuration) and compacts its log up to `compact_to`.
    pub fn snapshot_and_compact(&mut self, id: u64, compact_to: u64) {
        self.snapshot_now(id);
        let store = self.raw_mut(id).store_mut();
        store.compact(compact_to).unwrap_or_else(|e| panic!("node {id}: compact to {compact_to}: {e}"));
    }

    /// Makes a snapshot of node `id`'s applied state.
    pub fn snapshot_now(&mut self, id: u64) {
        let n = self.node_mut(id);
        let (applied, cs, data) = (n.sm.applied, n.sm.conf_state.clone(), encode_sm(&n.sm.data));
        let store = n.raw.as_mut().expect("node is down").store_mut();
        store.create_snapshot(applied, Some(cs), data).unwrap_or_else(|e| panic!("node {id}: snapshot: {e}"));
    }

    // -------------------------------------------------------------- Ready

    /// Carries out every pending Ready of node `id` (unless the test drives
    /// it by hand).
    pub fn handle_ready(&mut self, id: u64) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else { return };
            if node.manual_ready {
                return;
            }
            let Some(raw) = node.raw.as_mut() else { return };
            if !raw.has_ready() {
                node.snapshot_requests += raw.store().take_snapshot_request() as usize;
                return;
            }
            let outcome = carry_out_ready(id, raw, &mut node.sm, &mut node.read_states);
            node.snapshot_requests += raw.store().take_snapshot_request() as usize;
            self.check(id, &outcome);
            self.send_out(outcome.out);
        }
    }

    /// Sends messages a test took out of a hand-driven Ready.
    pub fn dispatch(&mut self, msgs: Vec<Message>) {
        self.send_out(msgs);
    }

    fn check(&mut self, id: u64, o: &Outcome) {
        if let Some(t) = o.became_leader {
            let prev = *self.leaders.entry(t).or_insert(id);
            assert_eq!(prev, id, "two leaders in term {t}: {prev} and {id}");
        }
        for e in &o.applied {
            match self.applied_anywhere.get(&e.index) {
                Some((t, d)) => assert!(
                    *t == e.term && *d == e.data,
                    "node {id} applied entry {}@{} but entry {}@{t} was applied elsewhere",
                    e.index,
                    e.term,
                    e.index
                ),
                None => {
                    self.applied_anywhere.insert(e.index, (e.term, e.data.clone()));
                }
            }
        }
    }
}

/// Carries out one Ready of node `id` as the contract says.
fn carry_out_ready(
    id: u64,
    raw: &mut RawNode<MemStorage>,
    sm: &mut StateMachine,
    read_states: &mut Vec<ReadState>,
) -> Outcome {
    let rd = raw.ready().unwrap_or_else(|e| panic!("node {id}: ready failed: {e}"));
    let mut o = Outcome::default();
    if rd.soft_state.is_some_and(|s| s.role == StateRole::Leader) {
        o.became_leader = Some(raw.raft.term);
    }
    // 1. Messages that may leave at once.
    o.out.extend(rd.messages);
    // 2. Persist.
    let store = raw.store_mut();
    if let Some(s) = &rd.snapshot {
        store.apply_snapshot(s.clone()).unwrap_or_else(|e| panic!("node {id}: apply snapshot: {e}"));
    }
    if !rd.entries.is_empty() {
        store.append(&rd.entries).unwrap_or_else(|e| panic!("node {id}: append: {e}"));
    }
    if let Some(hs) = rd.hard_state {
        store.set_hard_state(hs);
    }
    // 3. Messages that vouch for what was just persisted.
    o.out.extend(rd.persisted_messages);
    // 4. Apply.
    if let Some(s) = &rd.snapshot {
        let meta = s.metadata.clone().unwrap_or_default();
        sm.data = decode_sm(&s.data);
        sm.applied = meta.index;
        sm.conf_state = meta.conf_state.unwrap_or_default();
        sm.conf_history.push(sm.conf_state.clone());
        sm.snapshots_installed.push((meta.index, meta.term));
    }
    for e in &rd.committed_entries {
        assert_eq!(e.index, sm.applied + 1, "node {id}: committed entries must be applied in order");
        match e.entry_type() {
            EntryType::EntryNormal => {
                if !e.data.is_empty() {
                    sm.data.push(e.data.clone());
                }
            }
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                let cs = raw
                    .apply_conf_change(e)
                    .unwrap_or_else(|err| panic!("node {id}: committed conf change {} failed: {err}", e.index));
                sm.conf_state = cs.clone();
                sm.conf_history.push(cs);
            }
        }
        sm.applied = e.index;
        sm.applied_log.push((e.index, e.term));
        o.applied.push(e.clone());
    }
    read_states.extend(rd.read_states);
    // 5. Advance.
    raw.advance().unwrap_or_else(|e| panic!("node {id}: advance failed: {e}"));
    o
}

// ------------------------------------------------------------------ messages

/// A message of type `t` from `from` to `to` at `term`, other fields zero.
pub fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    Message { msg_type: t as i32, from, to, term, ..Default::default() }
}

/// An append from `from` at `term`: entries after (`index`, `log_term`).
pub fn append(from: u64, to: u64, term: u64, index: u64, log_term: u64, entries: Vec<Entry>, commit: u64) -> Message {
    Message { index, log_term, entries, commit, ..msg(MessageType::MsgApp, from, to, term) }
}

/// A vote request (or pre-vote when `pre`) from a candidate whose log ends
/// at (`index`, `log_term`).
pub fn vote_request(from: u64, to: u64, term: u64, index: u64, log_term: u64, pre: bool) -> Message {
    let t = if pre { MessageType::MsgPreVote } else { MessageType::MsgVote };
    Message { index, log_term, ..msg(t, from, to, term) }
}

/// Whether `m` is an append carrying at least one entry.
pub fn carries_entries(m: &Message) -> bool {
    is(m, MessageType::MsgApp) && !m.entries.is_empty()
}
