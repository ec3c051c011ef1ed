//! Who the peers are: member id -> advertised peer address, shared by the
//! transport (to dial out and to refuse unknown members at the handshake)
//! and updated when the membership changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::RwLock;

#[derive(Debug, Default)]
pub struct Members {
    map: RwLock<BTreeMap<u64, SocketAddr>>,
    /// Members removed from the cluster: refused with a reason that makes
    /// them stop.
    removed: RwLock<BTreeSet<u64>>,
}

impl Members {
    pub fn new(initial: impl IntoIterator<Item = (u64, SocketAddr)>) -> Members {
        Members { map: RwLock::new(initial.into_iter().collect()), removed: RwLock::default() }
    }

    pub fn mark_removed(&self, id: u64) {
        self.removed.write().unwrap_or_else(|e| e.into_inner()).insert(id);
        self.remove(id);
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.read().unwrap_or_else(|e| e.into_inner()).contains(&id)
    }

    pub fn addr(&self, id: u64) -> Option<SocketAddr> {
        self.read().get(&id).copied()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.read().contains_key(&id)
    }

    pub fn set(&self, id: u64, addr: SocketAddr) {
        self.write().insert(id, addr);
    }

    pub fn remove(&self, id: u64) {
        self.write().remove(&id);
    }

    pub fn ids(&self) -> Vec<u64> {
        self.read().keys().copied().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, SocketAddr>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, SocketAddr>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}
