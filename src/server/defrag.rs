//! Defragmentation without stopping the world (etcd #9222: etcd's defrag
//! holds every request for its whole length): a full compaction of every
//! column family, on a thread of its own and in slices with rests between
//! them, so RocksDB rewrites the files and drops what compaction and
//! deletes left dead while reads and writes go on at nearly their speed. Requests queue (one defrag at a time per member) and are answered
//! when theirs is done.
//!
//! Owns the thread and the queue; never blocks a caller (a full queue is
//! "too many requests").

use super::quota::Quota;
use crate::plumbing::errors::ApiError;
use crate::plumbing::outbox::Responder;
use crate::proto::etcdserverpb::DefragmentResponse;
use crate::proto::raftkvpb::client_response::Body;
use crate::storage::db::ALL_CFS;
use crate::storage::Db;
use crossbeam_channel::{bounded, Receiver, Sender};
use rocksdb::IteratorMode;
use std::sync::Arc;
use std::time::Instant;

/// Defrag requests waiting on one member.
const QUEUE: usize = 16;

#[derive(Clone)]
pub struct Defragmenter {
    tx: Sender<Responder>,
}

impl Defragmenter {
    /// The handle and the thread's loop (run it on a thread of its own; it
    /// ends once every handle is gone).
    pub fn new(db: Arc<Db>, quota: Arc<Quota>) -> (Defragmenter, impl FnOnce() + Send + 'static) {
        let (tx, rx) = bounded(QUEUE);
        (Defragmenter { tx }, move || run(&db, &quota, &rx))
    }

    pub fn defragment(&self, responder: Responder) {
        if let Err(e) = self.tx.try_send(responder) {
            let error = ApiError::from_queue(&e);
            e.into_inner().fail(error);
        }
    }
}

/// Slices a column family's key range is compacted in.
const SLICES: usize = 64;
/// After a slice that took `t`, the defrag rests `REST_FACTOR * t`: it
/// compacts a tenth of the time it runs through, so few requests ever meet
/// a slice (with 3, a quarter of them did, and the put p99 during a defrag
/// of 1 GiB was 7x the p99 without; with 9 it is 1.1-1.2x, see
/// docs/benchmarks.md). A defrag takes longer; nobody waits for it.
const REST_FACTOR: u32 = 9;

fn run(db: &Db, quota: &Quota, rx: &Receiver<Responder>) {
    for responder in rx.iter() {
        let started = Instant::now();
        let before = db.approximate_size();
        for name in ALL_CFS {
            compact_in_slices(db, name);
        }
        let after = db.approximate_size();
        // Writes refused for want of space may fit now.
        quota.refresh();
        log::info!("defragmented in {:?}: {before} -> {after} bytes", started.elapsed());
        // etcd answers an empty DefragmentResponse.
        responder.answer(Ok(Body::Defragment(DefragmentResponse { header: None })));
    }
}

/// Compacts column family `name` slice by slice (by the first 8 bytes of
/// its keys, which spread them for every layout here: revisions, log
/// indexes, ids), resting between slices.
fn compact_in_slices(db: &Db, name: &str) {
    let cf = db.cf(name);
    let first = db.raw().iterator_cf(cf, IteratorMode::Start).next().and_then(Result::ok).map(|(k, _)| prefix(&k));
    let last = db.raw().iterator_cf(cf, IteratorMode::End).next().and_then(Result::ok).map(|(k, _)| prefix(&k));
    let (Some(first), Some(last)) = (first, last) else {
        // Empty: whatever is left (tombstones) goes in one pass.
        db.raw().compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        return;
    };
    let step = ((last - first) / SLICES as u64).max(1);
    let mut from = first;
    loop {
        let to = from.saturating_add(step);
        let t = Instant::now();
        let (start, end) = (from.to_be_bytes(), to.to_be_bytes());
        if to > last {
            db.raw().compact_range_cf(cf, Some(&start[..]), None::<&[u8]>);
        } else {
            db.raw().compact_range_cf(cf, Some(&start[..]), Some(&end[..]));
        }
        std::thread::sleep(t.elapsed() * REST_FACTOR);
        if to > last {
            break;
        }
        from = to;
    }
    // The tombstones before the first key and anything the slices missed.
    db.raw().compact_range_cf(cf, None::<&[u8]>, Some(&first.to_be_bytes()[..]));
}

/// The first 8 bytes of a key as a number (shorter keys padded with zeros).
fn prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}
