//! Defragmentation without stopping the world (etcd #9222: etcd's defrag
//! holds every request for its whole length): a full compaction of every
//! column family on a thread of its own, so RocksDB rewrites the files and
//! drops what compaction and deletes left dead, while reads and writes go
//! on. Requests queue (one defrag at a time per member) and are answered
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

fn run(db: &Db, quota: &Quota, rx: &Receiver<Responder>) {
    for responder in rx.iter() {
        let started = Instant::now();
        let before = db.approximate_size();
        for name in ALL_CFS {
            db.raw().compact_range_cf(db.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
        let after = db.approximate_size();
        // Writes refused for want of space may fit now.
        quota.refresh();
        log::info!("defragmented in {:?}: {before} -> {after} bytes", started.elapsed());
        // etcd answers an empty DefragmentResponse.
        responder.answer(Ok(Body::Defragment(DefragmentResponse { header: None })));
    }
}
