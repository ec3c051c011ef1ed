//! Snapshots of the replicated state machine: a consistent point-in-time
//! image of the state-machine column families (`STATE_MACHINE_CFS`),
//! written out as a stream of chunks, received into a staged file on
//! another node, and installed there atomically; the same image, saved
//! whole, is `raftkvctl snapshot save`'s file and `snapshot restore`'s
//! input (`RaftLogStorage::restore_image`).
//!
//! Image stream: `MAGIC`, the metadata (index, term and configuration, read
//! from the image itself, so it always matches the data), then records
//! `[cf u8][key len u32][key][value len u32][value]`, then an end record
//! (`END` byte, record count u64, CRC-32 of the metadata and all record
//! bytes u32; `MAGIC_V1` images, from before, covered the records only).
//! Chunks cut the stream at arbitrary points; between members (Raft's
//! snapshots) each also carries its sequence number and a CRC-32 of its
//! payload.
//!
//! Install: a marker naming the staged file is written (synced) to
//! `raft_state` first; the state-machine families are emptied and refilled in
//! bounded batches; the last batch removes the marker and resets the Raft log
//! to the snapshot's point. A crash in between leaves the marker, and
//! [`RaftLogStorage::open`](super::RaftLogStorage::open) finishes the install
//! before anything reads the state: readers see the old state or the new.

use super::db::{Db, CF_META, CF_RAFT_STATE, STATE_MACHINE_CFS};
use super::error::{StoreError, StoreResult};
use super::raft_log::{applied_conf_state, RaftLogStorage};
use crate::proto::raftpb::SnapshotMetadata;
use crate::raft::Storage as _;
use byteorder::{BigEndian, ByteOrder, ReadBytesExt};
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RKVSNAP2";
/// The first format: its end CRC does not cover the metadata. Still read.
const MAGIC_V1: &[u8; 8] = b"RKVSNAP1";
const END: u8 = 0xFF;
/// In `raft_state`: the path of a staged image being installed.
const INSTALL_MARKER_KEY: &[u8] = b"snapshot_install";
/// In `meta`, written by the apply layer: the last applied index and term.
pub const CONSISTENT_INDEX_KEY: &[u8] = b"consistent_index";
pub const CONSISTENT_TERM_KEY: &[u8] = b"consistent_term";

/// Default payload bytes per chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Bytes of records per RocksDB batch while installing.
const INSTALL_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Keys per batch while emptying a column family.
const CLEAR_BATCH_KEYS: usize = 10_000;
/// Largest key or value accepted from an image (RocksDB's own limits are
/// far above what raftkv writes; this only stops absurd lengths).
const MAX_FIELD_BYTES: u32 = 64 * 1024 * 1024;

/// One piece of an image stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub seq: u64,
    pub data: Bytes,
    pub crc: u32,
    pub last: bool,
}

impl Chunk {
    fn new(seq: u64, data: Bytes, last: bool) -> Chunk {
        let crc = crc32fast::hash(&data);
        Chunk { seq, data, crc, last }
    }
}

fn u64_at(db: &Db, snap: &rocksdb::Snapshot<'_>, key: &[u8]) -> StoreResult<u64> {
    let mut opts = ReadOptions::default();
    opts.set_snapshot(snap);
    match db.raw().get_cf_opt(db.cf(CF_META), key, &opts)? {
        None => Ok(0),
        Some(v) if v.len() == 8 => Ok(BigEndian::read_u64(&v)),
        Some(v) => Err(StoreError::Corrupt(format!("meta {:?} has {} bytes", String::from_utf8_lossy(key), v.len()))),
    }
}

/// Writes a consistent image of the state machine, as chunks of at most
/// `chunk_bytes` payload each, to `sink`. Returns the image's metadata.
pub fn write_image(
    db: &Db,
    chunk_bytes: usize,
    mut sink: impl FnMut(Chunk) -> StoreResult<()>,
) -> StoreResult<SnapshotMetadata> {
    let snap = db.raw().snapshot();
    let index = u64_at(db, &snap, CONSISTENT_INDEX_KEY)?;
    let term = u64_at(db, &snap, CONSISTENT_TERM_KEY)?;
    let conf_state = {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        match db.raw().get_cf_opt(db.cf(CF_META), super::raft_log::APPLIED_CONF_STATE_KEY, &opts)? {
            Some(v) => Some(crate::proto::raftpb::ConfState::decode(v.as_slice())?),
            None => None,
        }
    };
    let meta = SnapshotMetadata { index, term, conf_state };

    let mut out = ChunkWriter { buf: BytesMut::with_capacity(chunk_bytes), chunk_bytes, seq: 0, sink: &mut sink };
    out.put(MAGIC)?;
    let meta_bytes = meta.encode_to_vec();
    out.put(&(meta_bytes.len() as u32).to_be_bytes())?;
    out.put(&meta_bytes)?;

    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&meta_bytes);
    let mut count = 0u64;
    for (cf_id, name) in STATE_MACHINE_CFS.iter().enumerate() {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        for item in db.raw().iterator_cf_opt(db.cf(name), opts, IteratorMode::Start) {
            let (k, v) = item?;
            let mut header = [0u8; 5];
            header[0] = cf_id as u8;
            BigEndian::write_u32(&mut header[1..], k.len() as u32);
            let mut vlen = [0u8; 4];
            BigEndian::write_u32(&mut vlen, v.len() as u32);
            for part in [&header[..], &k, &vlen, &v] {
                hasher.update(part);
                out.put(part)?;
            }
            count += 1;
        }
    }
    let mut end = [0u8; 13];
    end[0] = END;
    BigEndian::write_u64(&mut end[1..9], count);
    BigEndian::write_u32(&mut end[9..], hasher.finalize());
    out.put(&end)?;
    out.finish()?;
    Ok(meta)
}

struct ChunkWriter<'a, F: FnMut(Chunk) -> StoreResult<()>> {
    buf: BytesMut,
    chunk_bytes: usize,
    seq: u64,
    sink: &'a mut F,
}

impl<F: FnMut(Chunk) -> StoreResult<()>> ChunkWriter<'_, F> {
    fn put(&mut self, mut data: &[u8]) -> StoreResult<()> {
        while !data.is_empty() {
            let room = self.chunk_bytes - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == self.chunk_bytes {
                let chunk = Chunk::new(self.seq, self.buf.split().freeze(), false);
                self.seq += 1;
                (self.sink)(chunk)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> StoreResult<()> {
        let chunk = Chunk::new(self.seq, self.buf.split().freeze(), true);
        (self.sink)(chunk)
    }
}

/// Receives an image's chunks into a staged file. Chunks must arrive in
/// order; a bad checksum or sequence aborts (the caller retries the whole
/// snapshot).
pub struct ImageReceiver {
    dir: PathBuf,
    tmp: PathBuf,
    file: BufWriter<File>,
    next_seq: u64,
}

impl ImageReceiver {
    /// Starts receiving into `dir` (created if needed).
    pub fn new(dir: &Path, name: &str) -> StoreResult<ImageReceiver> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{name}.partial"));
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(&tmp)?;
        Ok(ImageReceiver { dir: dir.to_path_buf(), tmp, file: BufWriter::new(file), next_seq: 0 })
    }

    /// Adds a chunk. Returns true after the last one.
    pub fn push(&mut self, chunk: &Chunk) -> StoreResult<bool> {
        if chunk.seq != self.next_seq {
            return Err(StoreError::Corrupt(format!(
                "snapshot chunk {} arrived, expected {}",
                chunk.seq, self.next_seq
            )));
        }
        if crc32fast::hash(&chunk.data) != chunk.crc {
            return Err(StoreError::Corrupt(format!("snapshot chunk {} fails its checksum", chunk.seq)));
        }
        self.file.write_all(&chunk.data)?;
        self.next_seq += 1;
        Ok(chunk.last)
    }

    /// Verifies the whole image and makes it durable under its final name.
    /// Returns its path and metadata.
    pub fn finish(mut self) -> StoreResult<(PathBuf, SnapshotMetadata)> {
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        let meta = verify_image(&self.tmp)?;
        let path = self.dir.join(format!("snap-{:016x}-{:016x}.img", meta.term, meta.index));
        std::fs::rename(&self.tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        Ok((path, meta))
    }
}

/// One record of an image.
struct Record {
    cf: u8,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Reads an image file: its metadata, then records on demand.
struct ImageReader {
    r: BufReader<File>,
    hasher: crc32fast::Hasher,
    count: u64,
    done: bool,
}

impl ImageReader {
    fn open(path: &Path) -> StoreResult<(ImageReader, SnapshotMetadata)> {
        let mut r = BufReader::new(File::open(path)?);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|_| StoreError::Corrupt("snapshot image is truncated".into()))?;
        if &magic != MAGIC && &magic != MAGIC_V1 {
            return Err(StoreError::Corrupt("not a raftkv snapshot image".into()));
        }
        let len = r.read_u32::<BigEndian>().map_err(truncated)?;
        if len > MAX_FIELD_BYTES {
            return Err(StoreError::Corrupt("snapshot metadata length is absurd".into()));
        }
        let mut meta = vec![0u8; len as usize];
        r.read_exact(&mut meta).map_err(truncated)?;
        let mut hasher = crc32fast::Hasher::new();
        if &magic == MAGIC {
            hasher.update(&meta);
        }
        let meta = SnapshotMetadata::decode(meta.as_slice())?;
        Ok((ImageReader { r, hasher, count: 0, done: false }, meta))
    }

    /// The next record, or `None` after a verified end record.
    fn next(&mut self) -> StoreResult<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let cf = self.r.read_u8().map_err(truncated)?;
        if cf == END {
            let count = self.r.read_u64::<BigEndian>().map_err(truncated)?;
            let crc = self.r.read_u32::<BigEndian>().map_err(truncated)?;
            if count != self.count || crc != self.hasher.clone().finalize() {
                return Err(StoreError::Corrupt("snapshot image fails its final checksum".into()));
            }
            let mut rest = [0u8; 1];
            if self.r.read(&mut rest)? != 0 {
                return Err(StoreError::Corrupt("snapshot image has bytes after its end".into()));
            }
            self.done = true;
            return Ok(None);
        }
        if cf as usize >= STATE_MACHINE_CFS.len() {
            return Err(StoreError::Corrupt(format!("snapshot record names column family {cf}")));
        }
        let key = self.field()?;
        let value = self.field()?;
        let mut header = [0u8; 5];
        header[0] = cf;
        BigEndian::write_u32(&mut header[1..], key.len() as u32);
        self.hasher.update(&header);
        self.hasher.update(&key);
        self.hasher.update(&(value.len() as u32).to_be_bytes());
        self.hasher.update(&value);
        self.count += 1;
        Ok(Some(Record { cf, key, value }))
    }

    fn field(&mut self) -> StoreResult<Vec<u8>> {
        let len = self.r.read_u32::<BigEndian>().map_err(truncated)?;
        if len > MAX_FIELD_BYTES {
            return Err(StoreError::Corrupt(format!("snapshot record field of {len} bytes")));
        }
        let mut v = vec![0u8; len as usize];
        self.r.read_exact(&mut v).map_err(truncated)?;
        Ok(v)
    }
}

fn truncated(_: std::io::Error) -> StoreError {
    StoreError::Corrupt("snapshot image is truncated".into())
}

/// Reads a whole image file and checks every record and the final checksum.
pub fn verify_image(path: &Path) -> StoreResult<SnapshotMetadata> {
    scan_image(path, |_, _, _| Ok(())).map(|s| s.meta)
}

/// Makes a rename or a new entry in `path`'s directory durable (best
/// effort: some filesystems refuse to sync a directory).
pub fn sync_parent_dir(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// What a verified image holds, as `raftkvctl snapshot status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub meta: SnapshotMetadata,
    /// Records (keys of every column family).
    pub records: u64,
    /// The image's own CRC-32 (of its metadata and all its records).
    pub crc: u32,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Reads a whole image file, showing each record to `visit` (column
/// family name, key, value), and checks the final checksum: a truncated or
/// altered file is an error, whatever `visit` saw before.
pub fn scan_image(
    path: &Path,
    mut visit: impl FnMut(&str, &[u8], &[u8]) -> StoreResult<()>,
) -> StoreResult<ImageSummary> {
    let bytes = std::fs::metadata(path)?.len();
    let (mut reader, meta) = ImageReader::open(path)?;
    while let Some(rec) = reader.next()? {
        visit(STATE_MACHINE_CFS[rec.cf as usize], &rec.key, &rec.value)?;
    }
    Ok(ImageSummary { meta, records: reader.count, crc: reader.hasher.clone().finalize(), bytes })
}

impl RaftLogStorage {
    /// Installs a verified image: replaces the state machine and resets the
    /// Raft log to the image's point, atomically with respect to crashes
    /// (see the module documentation). Returns the image's metadata.
    pub fn install_image(&mut self, path: &Path) -> StoreResult<SnapshotMetadata> {
        let meta = verify_image(path)?;
        let db = self.db().clone();
        let mut marker = WriteBatch::default();
        let path_bytes = path.to_str().ok_or_else(|| StoreError::Io(format!("non-UTF-8 path {}", path.display())))?;
        marker.put_cf(db.cf(CF_RAFT_STATE), INSTALL_MARKER_KEY, path_bytes.as_bytes());
        db.write(marker, true)?;
        self.finish_install(path, meta)
    }

    fn finish_install(&mut self, path: &Path, expected: SnapshotMetadata) -> StoreResult<SnapshotMetadata> {
        let db = self.db().clone();
        for name in STATE_MACHINE_CFS {
            clear_cf(&db, name)?;
        }
        let meta = load_records(&db, path, &[])?;
        if meta != expected {
            return Err(StoreError::Corrupt("snapshot image changed while being installed".into()));
        }
        // The last step removes the marker and resets the log together.
        self.apply_snapshot_with(&meta, |b, db| b.delete_cf(db.cf(CF_RAFT_STATE), INSTALL_MARKER_KEY))?;
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("could not remove installed snapshot image {}: {e}", path.display());
        }
        let applied = applied_conf_state(&db)?;
        if applied != meta.conf_state {
            return Err(StoreError::Corrupt("installed image's configuration does not match its metadata".into()));
        }
        Ok(meta)
    }

    /// Finishes an install interrupted by a crash, if any. Called by `open`.
    pub(crate) fn recover_install(&mut self) -> StoreResult<()> {
        let Some(path) = self.db().get(CF_RAFT_STATE, INSTALL_MARKER_KEY)? else { return Ok(()) };
        let path = PathBuf::from(
            String::from_utf8(path).map_err(|_| StoreError::Corrupt("snapshot install marker is not a path".into()))?,
        );
        log::warn!("finishing the snapshot install interrupted by a crash ({})", path.display());
        let meta = verify_image(&path).map_err(|e| {
            StoreError::Corrupt(format!("an interrupted snapshot install cannot finish: {} ({e})", path.display()))
        })?;
        self.finish_install(&path, meta).map(|_| ())
    }
}

/// Writes an image's records into `db` in bounded batches, leaving out the
/// column families in `skip`. Returns the image's metadata.
fn load_records(db: &Db, path: &Path, skip: &[&str]) -> StoreResult<SnapshotMetadata> {
    let (mut reader, meta) = ImageReader::open(path)?;
    let mut batch = WriteBatch::default();
    let mut bytes = 0usize;
    while let Some(rec) = reader.next()? {
        let name = STATE_MACHINE_CFS[rec.cf as usize];
        if skip.contains(&name) {
            continue;
        }
        bytes += rec.key.len() + rec.value.len();
        batch.put_cf(db.cf(name), &rec.key, &rec.value);
        if bytes >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch), false)?;
            bytes = 0;
        }
    }
    db.write(batch, false)?;
    Ok(meta)
}

impl RaftLogStorage {
    /// Makes a new cluster's starting point from an image (`snapshot
    /// restore`): the storage must be empty; the image's state machine is
    /// loaded without the column families in `skip` (the old membership,
    /// say), and the log starts at the image's point with `conf_state`;
    /// `extra` adds what replaces them, in the same final write.
    pub fn restore_image(
        &mut self,
        path: &Path,
        skip: &[&str],
        conf_state: crate::proto::raftpb::ConfState,
        extra: impl FnOnce(&mut WriteBatch, &Db),
    ) -> StoreResult<SnapshotMetadata> {
        if self.last_index() != 0 || self.hard_state() != Default::default() {
            return Err(StoreError::Corrupt("refusing to restore over an existing raft log".into()));
        }
        // A bad image fails at its end record, before the final write: the
        // caller discards the half-loaded storage.
        let db = self.db().clone();
        let mut meta = load_records(&db, path, skip)?;
        meta.conf_state = Some(conf_state.clone());
        self.apply_snapshot_with(&meta, |b, db| {
            super::raft_log::put_applied_conf_state(db, b, &conf_state);
            extra(b, db)
        })?;
        Ok(meta)
    }
}

/// Deletes every key of a column family, in bounded batches.
fn clear_cf(db: &Db, name: &str) -> StoreResult<()> {
    loop {
        let mut batch = WriteBatch::default();
        let mut n = 0;
        for item in db.raw().iterator_cf(db.cf(name), IteratorMode::Start) {
            let (k, _) = item?;
            batch.delete_cf(db.cf(name), k);
            n += 1;
            if n == CLEAR_BATCH_KEYS {
                break;
            }
        }
        if n == 0 {
            return Ok(());
        }
        db.write(batch, false)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::raftpb::ConfState;
    use crate::raft::Storage;
    use crate::storage::db::{CF_AUTH, CF_KV, CF_LEASE, CF_MEMBERS};
    use crate::storage::raft_log::put_applied_conf_state;
    use std::sync::Arc;

    fn fill(db: &Db, keys: usize, index: u64) {
        let mut b = WriteBatch::default();
        for i in 0..keys {
            b.put_cf(db.cf(CF_KV), format!("key-{i:06}"), vec![i as u8; 300]);
        }
        b.put_cf(db.cf(CF_LEASE), 7u64.to_be_bytes(), b"lease");
        b.put_cf(db.cf(CF_AUTH), b"enabled", b"0");
        b.put_cf(db.cf(CF_MEMBERS), u64::MAX.to_be_bytes(), b"member with a 0xff id");
        b.put_cf(db.cf(CF_META), CONSISTENT_INDEX_KEY, index.to_be_bytes());
        b.put_cf(db.cf(CF_META), CONSISTENT_TERM_KEY, 3u64.to_be_bytes());
        put_applied_conf_state(db, &mut b, &ConfState { voters: vec![1, 2, 3], ..Default::default() });
        db.write(b, true).unwrap();
    }

    fn dump(db: &Db) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for name in STATE_MACHINE_CFS {
            for item in db.raw().iterator_cf(db.cf(name), IteratorMode::Start) {
                let (k, v) = item.unwrap();
                out.push((name.to_string(), k.to_vec(), v.to_vec()));
            }
        }
        out
    }

    fn stream(db: &Db, chunk_bytes: usize) -> (Vec<Chunk>, SnapshotMetadata) {
        let mut chunks = Vec::new();
        let meta = write_image(db, chunk_bytes, |c| {
            chunks.push(c);
            Ok(())
        })
        .unwrap();
        (chunks, meta)
    }

    #[test]
    fn round_trip_replaces_the_state_and_resets_the_log() {
        let src_dir = tempfile::tempdir().unwrap();
        let src = Db::open(src_dir.path()).unwrap();
        fill(&src, 2000, 42);
        let (chunks, meta) = stream(&src, 64 * 1024);
        assert!(chunks.len() > 5, "the image was cut into chunks");
        assert_eq!((meta.index, meta.term), (42, 3));

        let dst_dir = tempfile::tempdir().unwrap();
        let dst = Arc::new(Db::open(&dst_dir.path().join("db")).unwrap());
        {
            let mut b = WriteBatch::default();
            b.put_cf(dst.cf(CF_KV), b"stale", b"gone after install");
            dst.write(b, true).unwrap();
        }
        let mut log = RaftLogStorage::open(dst.clone()).unwrap();
        log.persist(&[crate::proto::raftpb::Entry { index: 1, term: 1, ..Default::default() }], None, true).unwrap();

        let mut rx = ImageReceiver::new(&dst_dir.path().join("snap"), "from-1").unwrap();
        for c in &chunks {
            rx.push(c).unwrap();
        }
        let (path, got) = rx.finish().unwrap();
        assert_eq!(got, meta);
        log.install_image(&path).unwrap();
        assert_eq!(dump(&src), dump(&dst), "the state machine is an exact copy");
        assert_eq!((log.first_index(), log.last_index()), (43, 42));
        assert_eq!(log.term(42), Ok(3));
        assert!(!path.exists(), "the staged image is removed once installed");
    }

    #[test]
    fn corrupted_or_reordered_chunks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        fill(&db, 300, 9);
        let (mut chunks, _) = stream(&db, 4096);
        let mut rx = ImageReceiver::new(&dir.path().join("snap"), "a").unwrap();
        assert!(rx.push(&chunks[1]).is_err(), "out of order");
        let mut rx = ImageReceiver::new(&dir.path().join("snap"), "b").unwrap();
        let mut bad = chunks[0].clone();
        let mut data = bad.data.to_vec();
        data[20] ^= 1;
        bad.data = data.into();
        assert!(rx.push(&bad).is_err(), "checksum");
        // A truncated stream fails verification at finish.
        chunks.pop();
        let mut rx = ImageReceiver::new(&dir.path().join("snap"), "c").unwrap();
        for c in &chunks {
            rx.push(c).unwrap();
        }
        assert!(rx.finish().is_err());
    }

    #[test]
    fn interrupted_install_is_finished_on_open() {
        let src_dir = tempfile::tempdir().unwrap();
        let src = Db::open(src_dir.path()).unwrap();
        fill(&src, 500, 77);
        let (chunks, _) = stream(&src, 8192);
        let dst_dir = tempfile::tempdir().unwrap();
        let db_path = dst_dir.path().join("db");
        let image = {
            let dst = Arc::new(Db::open(&db_path).unwrap());
            let mut rx = ImageReceiver::new(&dst_dir.path().join("snap"), "x").unwrap();
            for c in &chunks {
                rx.push(c).unwrap();
            }
            let (path, _) = rx.finish().unwrap();
            // Simulate a crash after the marker and half of the records.
            let mut b = WriteBatch::default();
            b.put_cf(dst.cf(CF_RAFT_STATE), INSTALL_MARKER_KEY, path.to_str().unwrap().as_bytes());
            b.put_cf(dst.cf(CF_KV), b"key-000001", b"half-written");
            dst.write(b, true).unwrap();
            path
        };
        let dst = Arc::new(Db::open(&db_path).unwrap());
        let log = RaftLogStorage::open(dst.clone()).unwrap();
        assert_eq!(dump(&src), dump(&dst), "the install was finished before anything read");
        assert_eq!(log.last_index(), 77);
        assert!(!image.exists());
        assert_eq!(dst.get(CF_RAFT_STATE, INSTALL_MARKER_KEY).unwrap(), None);
    }
}
