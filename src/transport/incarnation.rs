//! Data-directory incarnations: how members notice that one of them lost its
//! data directory.
//!
//! A member restarted on an empty data directory bootstraps again as the same
//! member (same id, same cluster id), but it has forgotten entries it
//! acknowledged and votes it cast. Alone it cannot tell that from a first
//! start; its peers can. So every data directory gets a random incarnation
//! when it is created, members exchange incarnations in the peer handshake,
//! and each remembers the incarnation it last saw of every peer:
//!
//! - A peer that shows up with a new incarnation lost its data: the raft
//!   thread is told (a leader restarts that follower's progress), and until
//!   the peer says it knows (it names the old incarnation as its previous
//!   one), we keep telling it the old one.
//! - A peer that names an incarnation of ours we never had means we lost our
//!   data: the lost-state flag is persisted and raised for the raft thread,
//!   which then neither votes nor campaigns until a leader caught it up.
//!
//! Owns the keys it keeps in `raft_state` (which no snapshot replaces). It
//! never steps the consensus core itself: it raises a flag the raft thread
//! polls before each peer message, so the flag is up before any message that
//! followed the handshake that raised it.

use crate::storage::db::CF_RAFT_STATE;
use crate::storage::Db;
use rocksdb::WriteBatch;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const OWN_KEY: &[u8] = b"incarnation";
const PREVIOUS_KEY: &[u8] = b"previous_incarnation";
const LOST_STATE_KEY: &[u8] = b"lost_state";
const PEER_PREFIX: &[u8] = b"peer_incarnation/";

/// What a peer's handshake said about its data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSeen {
    /// The incarnation we knew (or none given).
    Same,
    /// The first time we hear of this peer.
    First,
    /// A new incarnation: the peer lost its data directory.
    LostState,
}

pub struct Incarnations {
    db: Arc<Db>,
    own: u64,
    /// The incarnation a peer told us we had before ours (0: none known).
    previous: AtomicU64,
    /// Raised when we learn we lost our state; taken by the raft thread.
    lost_state_notice: AtomicBool,
    /// Cache of the peers' incarnations we remember.
    known: Mutex<HashMap<u64, u64>>,
}

fn get_u64(db: &Db, key: &[u8]) -> Result<Option<u64>, String> {
    match db.get(CF_RAFT_STATE, key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(v) => {
            let raw: [u8; 8] =
                v.as_slice().try_into().map_err(|_| format!("corrupt {}", String::from_utf8_lossy(key)))?;
            Ok(Some(u64::from_be_bytes(raw)))
        }
    }
}

fn peer_key(peer: u64) -> Vec<u8> {
    let mut k = PEER_PREFIX.to_vec();
    k.extend_from_slice(&peer.to_be_bytes());
    k
}

impl Incarnations {
    /// Loads this member's incarnation, or makes one for a data directory
    /// that has none yet (a new one, or one from before incarnations).
    pub fn open(db: Arc<Db>) -> Result<Incarnations, String> {
        let own = match get_u64(&db, OWN_KEY)? {
            Some(v) if v != 0 => v,
            _ => {
                let v = rand::random::<u64>().max(1);
                let mut b = WriteBatch::default();
                b.put_cf(db.cf(CF_RAFT_STATE), OWN_KEY, v.to_be_bytes());
                db.write(b, true).map_err(|e| e.to_string())?;
                v
            }
        };
        let previous = get_u64(&db, PREVIOUS_KEY)?.unwrap_or(0);
        let lost = db.get(CF_RAFT_STATE, LOST_STATE_KEY).map_err(|e| e.to_string())?.is_some_and(|v| v == [1]);
        Ok(Incarnations {
            db,
            own,
            previous: AtomicU64::new(previous),
            lost_state_notice: AtomicBool::new(lost),
            known: Mutex::new(HashMap::new()),
        })
    }

    pub fn own(&self) -> u64 {
        self.own
    }

    pub fn previous(&self) -> u64 {
        self.previous.load(Ordering::SeqCst)
    }

    /// The incarnation we remember of `peer` (0: never seen).
    pub fn known_of(&self, peer: u64) -> u64 {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&v) = known.get(&peer) {
            return v;
        }
        let v = match get_u64(&self.db, &peer_key(peer)) {
            Ok(v) => v.unwrap_or(0),
            Err(e) => {
                log::error!("reading the incarnation of member {peer:x}: {e}");
                return 0;
            }
        };
        known.insert(peer, v);
        v
    }

    fn remember(&self, peer: u64, incarnation: u64) {
        let mut b = WriteBatch::default();
        b.put_cf(self.db.cf(CF_RAFT_STATE), peer_key(peer), incarnation.to_be_bytes());
        if let Err(e) = self.db.write(b, true) {
            log::error!("persisting the incarnation of member {peer:x}: {e}");
            return;
        }
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(peer, incarnation);
    }

    /// A peer's handshake named its incarnation and the one it knows it had
    /// before (0 for none).
    pub fn on_peer_hello(&self, peer: u64, incarnation: u64, previous: u64) -> PeerSeen {
        if incarnation == 0 {
            return PeerSeen::Same;
        }
        let known = self.known_of(peer);
        if known == 0 {
            self.remember(peer, incarnation);
            return PeerSeen::First;
        }
        if known == incarnation {
            return PeerSeen::Same;
        }
        log::warn!(
            "member {peer:x} lost its data directory (incarnation {incarnation:x}, we knew {known:x}){}",
            if previous == known { "; it knows" } else { "" }
        );
        if previous == known {
            // It knows it lost its state: from now on this is the one.
            self.remember(peer, incarnation);
        }
        PeerSeen::LostState
    }

    /// A peer says we were `was`. Returns true if that tells us we lost our
    /// data directory (then persisted and raised for the raft thread).
    pub fn told_our_incarnation(&self, peer: u64, was: u64) -> bool {
        if was == 0 || was == self.own || was == self.previous() {
            return false;
        }
        log::warn!(
            "member {peer:x} knew this member as incarnation {was:x}, not {:x}: this data directory was lost and \
             made anew; not voting until a leader catches this member up",
            self.own
        );
        let mut b = WriteBatch::default();
        b.put_cf(self.db.cf(CF_RAFT_STATE), PREVIOUS_KEY, was.to_be_bytes());
        b.put_cf(self.db.cf(CF_RAFT_STATE), LOST_STATE_KEY, [1u8]);
        if let Err(e) = self.db.write(b, true) {
            // Still raised in memory: refusing votes is the safe side.
            log::error!("persisting the lost-state flag: {e}");
        }
        self.previous.store(was, Ordering::SeqCst);
        self.lost_state_notice.store(true, Ordering::SeqCst);
        true
    }

    /// Taken by the raft thread before it steps peer messages: true once
    /// after we learned (or started knowing) that we lost our state.
    pub fn take_lost_state_notice(&self) -> bool {
        self.lost_state_notice.load(Ordering::Relaxed) && self.lost_state_notice.swap(false, Ordering::SeqCst)
    }

    /// Whether the lost-state flag is set on disk.
    #[cfg(test)]
    pub fn lost_state(&self) -> bool {
        matches!(self.db.get(CF_RAFT_STATE, LOST_STATE_KEY), Ok(Some(v)) if v == [1])
    }

    /// The consensus core caught up: the flag comes down, on disk too.
    pub fn clear_lost_state(&self) -> Result<(), String> {
        let mut b = WriteBatch::default();
        b.delete_cf(self.db.cf(CF_RAFT_STATE), LOST_STATE_KEY);
        self.db.write(b, true).map_err(|e| format!("clearing the lost-state flag: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> Incarnations {
        Incarnations::open(Arc::new(Db::open(dir).unwrap())).unwrap()
    }

    #[test]
    fn the_incarnation_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path()).own();
        assert_ne!(first, 0);
        assert_eq!(open(dir.path()).own(), first, "reopening keeps it");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(open(other.path()).own(), first, "a new directory gets a new one");
    }

    #[test]
    fn a_peer_with_a_new_incarnation_lost_its_state_until_it_says_it_knows() {
        let dir = tempfile::tempdir().unwrap();
        let inc = open(dir.path());
        assert_eq!(inc.on_peer_hello(7, 100, 0), PeerSeen::First);
        assert_eq!(inc.on_peer_hello(7, 100, 0), PeerSeen::Same);
        assert_eq!(inc.on_peer_hello(7, 200, 0), PeerSeen::LostState);
        assert_eq!(inc.known_of(7), 100, "we keep telling it the old one");
        assert_eq!(inc.on_peer_hello(7, 200, 100), PeerSeen::LostState, "the leader still restarts its progress");
        assert_eq!(inc.known_of(7), 200);
        assert_eq!(inc.on_peer_hello(7, 200, 100), PeerSeen::Same);
        drop(inc);
        assert_eq!(open(dir.path()).known_of(7), 200, "remembered across restarts");
    }

    #[test]
    fn being_told_of_an_unknown_incarnation_raises_the_lost_state_flag() {
        let dir = tempfile::tempdir().unwrap();
        let inc = open(dir.path());
        assert!(!inc.told_our_incarnation(2, 0));
        assert!(!inc.told_our_incarnation(2, inc.own()));
        assert!(!inc.lost_state() && !inc.take_lost_state_notice());
        assert!(inc.told_our_incarnation(2, 55));
        assert!(inc.lost_state());
        assert!(inc.take_lost_state_notice());
        assert!(!inc.take_lost_state_notice(), "taken once");
        assert!(!inc.told_our_incarnation(3, 55), "the old one is known now");
        drop(inc);
        let inc = open(dir.path());
        assert!(inc.lost_state() && inc.take_lost_state_notice(), "the flag survives a restart");
        assert_eq!(inc.previous(), 55);
        inc.clear_lost_state().unwrap();
        drop(inc);
        let inc = open(dir.path());
        assert!(!inc.lost_state() && !inc.take_lost_state_notice());
    }
}
