//! The `Snapshot` RPC: a consistent image of this member's state machine
//! (the same image Raft sends a lagging follower, see
//! `storage::snapshot`), streamed to a client as `SnapshotResponse`
//! chunks. One snapshot streams at a time per member, on a thread of its
//! own; a few more may wait their turn, and more than that are refused
//! with "too many requests".
//!
//! The stream respects the connection's output bound: a chunk the outbox
//! refuses is offered again once the client has read some, and a client
//! that reads nothing for `STALL_LIMIT` loses its stream. A client that
//! cancels or goes away stops the image at its next chunk.
//!
//! Owns the thread and its queue; never blocks a caller and never holds
//! anything the apply path needs (the image reads a RocksDB snapshot).

use super::status::NodeStatus;
use crate::plumbing::errors::ApiError;
use crate::plumbing::outbox::{Refused, StreamOwner, StreamSender};
use crate::proto::etcdserverpb::SnapshotResponse;
use crate::proto::raftkvpb::client_request;
use crate::proto::raftkvpb::client_response::Body;
use crate::storage::snapshot::{write_image, Chunk};
use crate::storage::{Db, StoreError};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Payload bytes per `SnapshotResponse` (etcd sends 32 KiB; larger chunks
/// cost fewer wake-ups and stay far below any frame limit).
pub const CHUNK_BYTES: usize = 256 * 1024;
/// How long a client may read nothing before its stream is dropped.
const STALL_LIMIT: Duration = Duration::from_secs(60);
/// The slowest average reading (bytes per second) a stream keeps after its
/// first `STALL_LIMIT`.
const MIN_RATE: u64 = 64 * 1024;
/// How often a full connection is looked at again.
const RETRY_EVERY: Duration = Duration::from_millis(2);

struct Job {
    sender: StreamSender,
    ended: Arc<AtomicBool>,
}

#[derive(Clone)]
pub struct SnapshotStreams {
    tx: Sender<Job>,
}

impl SnapshotStreams {
    /// The handle and the thread's loop (run it on a thread of its own; it
    /// ends once every handle is gone).
    pub fn new(db: Arc<Db>, status: Arc<NodeStatus>) -> (SnapshotStreams, impl FnOnce() + Send + 'static) {
        // A rendezvous: a request is taken only when the thread is idle.
        let (tx, rx) = bounded(0);
        (SnapshotStreams { tx }, move || run(&db, &status, &rx))
    }

    /// Queues a snapshot for the stream `sender` belongs to; its owner
    /// (returned) stops it when the client cancels or leaves.
    pub fn open(&self, sender: StreamSender) -> Result<SnapshotStreamOwner, ApiError> {
        let ended = Arc::new(AtomicBool::new(false));
        match self.tx.try_send(Job { sender, ended: ended.clone() }) {
            Ok(()) => Ok(SnapshotStreamOwner { ended }),
            Err(e) => Err(ApiError::from_queue(&e)),
        }
    }
}

/// The client I/O thread's side of a snapshot stream.
pub struct SnapshotStreamOwner {
    ended: Arc<AtomicBool>,
}

impl StreamOwner for SnapshotStreamOwner {
    fn on_request(&mut self, _: client_request::Body) {
        // Nothing can be asked on a snapshot stream; a cancel ends it
        // through `on_end`.
    }

    fn on_end(&mut self) {
        self.ended.store(true, Ordering::SeqCst);
    }
}

fn run(db: &Db, status: &NodeStatus, rx: &Receiver<Job>) {
    for job in rx.iter() {
        if job.ended.load(Ordering::SeqCst) || job.sender.is_closed() {
            continue;
        }
        let started = Instant::now();
        match stream_one(db, status, &job) {
            Ok(sent) => log::info!("sent a snapshot of {sent} bytes in {:?}", started.elapsed()),
            Err(e) => {
                log::warn!("snapshot stream ended early: {e}");
                job.sender.finish(Body::Error(ApiError::internal(format!("raftkv: snapshot failed: {e}")).to_proto()));
            }
        }
    }
}

/// Streams one image; returns the bytes sent.
fn stream_one(db: &Db, status: &NodeStatus, job: &Job) -> Result<u64, StoreError> {
    // The image's size is known only at its end: `remaining_bytes` counts
    // down from the state machine's estimated size, and is 0 exactly on
    // the last chunk (which is how clients know the stream is complete).
    let estimate = db.state_machine_size();
    let header = Some(status.header(0));
    let mut sent = 0u64;
    let started = Instant::now();
    write_image(db, CHUNK_BYTES, |chunk: Chunk| {
        let elapsed = started.elapsed();
        if elapsed > STALL_LIMIT && sent < MIN_RATE * elapsed.as_secs() {
            return Err(StoreError::Io(format!(
                "the client read {sent} bytes in {elapsed:?}, under {MIN_RATE} bytes/s"
            )));
        }
        sent += chunk.data.len() as u64;
        let remaining_bytes = if chunk.last { 0 } else { estimate.saturating_sub(sent).max(1) };
        let body = || Body::Snapshot(SnapshotResponse { header, remaining_bytes, blob: chunk.data.clone() });
        if chunk.last {
            job.sender.finish(body());
            return Ok(());
        }
        offer(job, status, body)
    })?;
    Ok(sent)
}

/// Offers one chunk until the connection takes it, the client goes away,
/// or it reads nothing for too long. The chunk is built only when the
/// connection has room for it.
fn offer(job: &Job, status: &NodeStatus, body: impl Fn() -> Body) -> Result<(), StoreError> {
    let since = Instant::now();
    loop {
        if status.is_stopping() {
            return Err(StoreError::Io("the member is stopping".into()));
        }
        if job.ended.load(Ordering::SeqCst) {
            return Err(StoreError::Io("the client cancelled the snapshot".into()));
        }
        if job.sender.is_closed() {
            return Err(StoreError::Io("the client's connection closed".into()));
        }
        if job.sender.has_room() {
            match job.sender.try_send(body()) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(StoreError::Io("the client's connection closed".into())),
                // Another stream on the connection filled it first.
                Err(Refused::Full) => {}
            }
        }
        if since.elapsed() > STALL_LIMIT {
            return Err(StoreError::Io(format!("the client read nothing for {STALL_LIMIT:?}")));
        }
        std::thread::sleep(RETRY_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plumbing::outbox::{Notifier, Outbox};
    use crate::storage::db::CF_KV;
    use rocksdb::WriteBatch;
    use std::time::Duration;

    fn filled_db(dir: &std::path::Path) -> Arc<Db> {
        let db = Arc::new(Db::open(dir).unwrap());
        let mut b = WriteBatch::default();
        for i in 0u64..4000 {
            b.put_cf(db.cf(CF_KV), i.to_be_bytes(), vec![i as u8; 500]);
        }
        db.write(b, true).unwrap();
        db
    }

    /// Opens a stream once the thread takes it (it refuses while busy, or
    /// before it first waits).
    fn open_when_free(streams: &SnapshotStreams, sender: StreamSender) -> SnapshotStreamOwner {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match streams.open(sender.clone()) {
                Ok(owner) => return owner,
                Err(e) => assert!(Instant::now() < deadline, "the snapshot thread never took the stream: {e}"),
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn start(db: Arc<Db>) -> (SnapshotStreams, std::thread::JoinHandle<()>) {
        let (streams, run) = SnapshotStreams::new(db, Arc::new(NodeStatus::new(1, 2)));
        (streams, std::thread::spawn(run))
    }

    #[test]
    fn a_whole_image_arrives_in_order_through_a_connection_smaller_than_it() {
        let dir = tempfile::tempdir().unwrap();
        let (streams, thread) = start(filled_db(dir.path()));
        // Room for about one chunk: the stream must wait for the reader.
        let outbox = Outbox::new(1, CHUNK_BYTES + 1024, Notifier::new(|| {}));
        let _owner = open_when_free(&streams, StreamSender::new(outbox.clone(), 7));
        let mut image = Vec::new();
        let mut remaining = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        'read: loop {
            assert!(Instant::now() < deadline, "the stream did not end; got {} bytes", image.len());
            for out in outbox.drain() {
                let Some(Body::Snapshot(r)) = out.response.body else { panic!("{:?}", out.response) };
                assert_eq!(out.response.request_id, 7);
                image.extend_from_slice(&r.blob);
                remaining.push(r.remaining_bytes);
                if out.ends {
                    break 'read;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(remaining.len() > 5, "several chunks: {remaining:?}");
        assert_eq!(remaining.last(), Some(&0), "the last chunk says 0 remain");
        assert!(remaining[..remaining.len() - 1].iter().all(|&r| r > 0), "only the last says 0: {remaining:?}");
        let file = dir.path().join("image");
        std::fs::write(&file, &image).unwrap();
        let summary = crate::storage::snapshot::scan_image(&file, |_, _, _| Ok(())).unwrap();
        assert_eq!(summary.records, 4000, "every key of the state machine, nothing else");
        drop(streams);
        thread.join().unwrap();
    }

    #[test]
    fn a_client_that_goes_away_stops_its_stream_and_frees_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (streams, thread) = start(filled_db(dir.path()));
        let outbox = Outbox::new(1, 1024, Notifier::new(|| {}));
        let mut owner = open_when_free(&streams, StreamSender::new(outbox.clone(), 7));
        let deadline = Instant::now() + Duration::from_secs(10);
        while outbox.unsent() == 0 {
            assert!(Instant::now() < deadline, "nothing was streamed");
            std::thread::sleep(Duration::from_millis(1));
        }
        // While it streams, another request is refused at once.
        let other = Outbox::new(2, 64 * 1024 * 1024, Notifier::new(|| {}));
        let busy = streams.open(StreamSender::new(other.clone(), 9)).err().expect("a second snapshot is refused");
        assert_eq!(busy.code, crate::proto::raftkvpb::ErrorCode::TooManyRequests);
        // The client cancels; a stream on another connection is then taken
        // and served whole, so the first one let go of the thread.
        owner.on_end();
        let _o = open_when_free(&streams, StreamSender::new(other.clone(), 9));
        loop {
            assert!(Instant::now() < deadline, "the second stream never ended");
            if other.drain().iter().any(|o| o.ends) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(streams);
        thread.join().unwrap();
    }
}
