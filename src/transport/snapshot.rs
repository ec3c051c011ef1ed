//! Snapshots between members, each on its own connection and thread, so
//! Raft messages never wait behind one.
//!
//! Sender: handshake, the MsgSnap, then the state-machine image produced
//! from a consistent RocksDB snapshot at send time, in checksummed chunks;
//! the receiver's verdict becomes `report_snapshot`. Receiver: stages the
//! chunks into a file (verified as a whole), then hands the raft thread a
//! MsgSnap whose metadata is the image's own and whose data is the staged
//! file's path. Every read and write has a timeout.

use super::PeerReport;
use crate::plumbing::doorbell::RingingSender;
use crate::plumbing::framing::{encode_frame, Frame, FrameDecoder};
use crate::proto::peerpb::{hello::Kind, Hello, HelloReply, SnapshotChunk, SnapshotDone};
use crate::proto::raftpb::{Message, Snapshot};
use crate::raft::SnapshotStatus;
use crate::storage::snapshot::{write_image, Chunk, ImageReceiver, CHUNK_BYTES};
use crate::storage::{Db, StoreError};
use bytes::{Bytes, BytesMut};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Staged images kept in the snapshot directory (older ones are deleted).
const KEEP_STAGED: usize = 2;

pub struct Outgoing {
    pub msg: Message,
    pub addr: SocketAddr,
    pub cluster_id: u64,
    pub db: Arc<Db>,
    pub reports: RingingSender<PeerReport>,
}

/// Sends one snapshot and reports the outcome to the raft thread.
pub fn send(o: Outgoing) {
    let to = o.msg.to;
    let status = match send_inner(&o) {
        Ok(index) => {
            log::info!("sent a snapshot at index {index} to {to:x}");
            SnapshotStatus::Finish
        }
        Err(e) => {
            log::warn!("sending a snapshot to {to:x} failed: {e}");
            SnapshotStatus::Failure
        }
    };
    let _ = o.reports.send(PeerReport::Snapshot(to, status));
}

fn send_inner(o: &Outgoing) -> Result<u64, String> {
    let mut s = TcpStream::connect_timeout(&o.addr, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let hello = Hello {
        cluster_id: o.cluster_id,
        from: o.msg.from,
        to: o.msg.to,
        kind: Kind::Snapshot as i32,
        version: super::peer_io::VERSION,
        ..Default::default()
    };
    s.write_all(&encode_frame(&hello)).map_err(|e| format!("handshake: {e}"))?;
    let mut decoder = FrameDecoder::new(64 * 1024);
    let reply: HelloReply = read_frame(&mut s, &mut decoder)?;
    if !reply.ok {
        return Err(format!("refused: {}", reply.reason));
    }
    // The message travels without data: the image follows.
    let mut header = o.msg.clone();
    header.snapshot = None;
    s.write_all(&encode_frame(&header)).map_err(|e| format!("sending the header: {e}"))?;
    let mut out = std::io::BufWriter::new(&mut s);
    let meta = write_image(&o.db, CHUNK_BYTES, |c: Chunk| {
        let frame = encode_frame(&SnapshotChunk { seq: c.seq, data: c.data, crc: c.crc, last: c.last });
        out.write_all(&frame).map_err(|e| StoreError::Io(format!("sending a chunk: {e}")))
    })
    .map_err(|e| e.to_string())?;
    out.flush().map_err(|e| format!("sending: {e}"))?;
    drop(out);
    let done: SnapshotDone = read_frame(&mut s, &mut decoder)?;
    if !done.ok {
        return Err(format!("the receiver refused it: {}", done.reason));
    }
    Ok(meta.index)
}

fn read_frame<M: prost::Message + Default>(s: &mut TcpStream, d: &mut FrameDecoder) -> Result<M, String> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match d.next_frame() {
            Some(Frame::Message(b)) => return M::decode(b).map_err(|e| format!("undecodable frame: {e}")),
            Some(Frame::TooLarge { len, .. }) => return Err(format!("a frame of {len} bytes is over the limit")),
            None => {}
        }
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        d.push(&buf[..n]);
    }
}

/// Receives one snapshot on a handed-over connection (the handshake reply
/// not yet written, `leftover` the bytes already read after it).
pub fn receive(
    mut s: TcpStream,
    reply: BytesMut,
    leftover: BytesMut,
    from: u64,
    me: u64,
    dir: &Path,
    peer_tx: &RingingSender<Message>,
) {
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    if s.write_all(&reply).is_err() {
        return;
    }
    let result = receive_inner(&mut s, leftover, from, me, dir, peer_tx);
    let done = match &result {
        Ok(()) => SnapshotDone { ok: true, reason: String::new() },
        Err(e) => {
            log::warn!("receiving a snapshot from {from:x} failed: {e}");
            SnapshotDone { ok: false, reason: e.clone() }
        }
    };
    let _ = s.write_all(&encode_frame(&done));
}

fn receive_inner(
    s: &mut TcpStream,
    leftover: BytesMut,
    from: u64,
    me: u64,
    dir: &Path,
    peer_tx: &RingingSender<Message>,
) -> Result<(), String> {
    let mut decoder = FrameDecoder::new(CHUNK_BYTES + 64 * 1024);
    decoder.push(&leftover);
    let mut m: Message = read_frame(s, &mut decoder)?;
    if m.from != from || m.to != me || m.msg_type() != crate::proto::raftpb::MessageType::MsgSnap {
        return Err(format!("expected a MsgSnap from {from:x} to {me:x}, got {:?}", m.msg_type()));
    }
    let name = format!("from-{from:x}-term-{}", m.term);
    let mut rx = ImageReceiver::new(dir, &name).map_err(|e| e.to_string())?;
    loop {
        let c: SnapshotChunk = read_frame(s, &mut decoder)?;
        let last = rx.push(&Chunk { seq: c.seq, data: c.data, crc: c.crc, last: c.last }).map_err(|e| e.to_string())?;
        if last {
            break;
        }
    }
    let (path, meta) = rx.finish().map_err(|e| e.to_string())?;
    prune_staged(dir, &path);
    let path_str = path.to_str().ok_or("non-UTF-8 snapshot path")?.to_string();
    log::info!("received a snapshot at index {} from {from:x} into {}", meta.index, path.display());
    m.snapshot = Some(Snapshot { data: Bytes::from(path_str.into_bytes()), metadata: Some(meta) });
    peer_tx.send_timeout(m, IO_TIMEOUT).map_err(|_| "the raft thread did not take the snapshot".to_string())
}

/// Deletes staged images beyond the newest few (stale ones that Raft
/// ignored), never `keep`.
fn prune_staged(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut images: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "img") && p != keep)
        .filter_map(|p| std::fs::metadata(&p).and_then(|m| m.modified()).ok().map(|t| (t, p)))
        .collect();
    images.sort();
    let excess = images.len().saturating_sub(KEEP_STAGED - 1);
    for (_, p) in images.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}
