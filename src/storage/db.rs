//! The node's one RocksDB database and its column families.
//!
//! Owns opening (with a format check that refuses foreign or newer data
//! directories), the column family layout, and atomic batched writes. It
//! knows nothing of what the keys mean: `raft_log.rs`, `mvcc`, and the
//! server's state layers own their column families' contents.

use super::error::{StoreError, StoreResult};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::path::{Path, PathBuf};

/// Raft log entries: index (u64 BE) -> `raftpb::Entry`.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Raft hard state, conf state, snapshot metadata; node-local markers.
pub const CF_RAFT_STATE: &str = "raft_state";
/// MVCC revisions: (main u64 BE, sub u64 BE[, 't' for a tombstone]) -> `mvccpb::KeyValue`.
pub const CF_KV: &str = "kv";
/// Consistent index, term, compaction revisions.
pub const CF_META: &str = "meta";
/// Leases: id -> lease.
pub const CF_LEASE: &str = "lease";
/// Users, roles, enabled flag, auth revision.
pub const CF_AUTH: &str = "auth";
/// Cluster members: id -> member.
pub const CF_MEMBERS: &str = "members";

/// Active alarms: (member id u64 BE, alarm type i32 BE) -> empty.
pub const CF_ALARM: &str = "alarm";

/// Every column family, in a fixed order.
pub const ALL_CFS: [&str; 8] = [CF_RAFT_LOG, CF_RAFT_STATE, CF_KV, CF_META, CF_LEASE, CF_AUTH, CF_MEMBERS, CF_ALARM];
/// Column families added after the first format: created when a data
/// directory made before them is opened.
const LATER_CFS: [&str; 1] = [CF_ALARM];

/// The column families that make up the replicated state machine: what a
/// snapshot carries from one node to another.
pub const STATE_MACHINE_CFS: [&str; 6] = [CF_KV, CF_META, CF_LEASE, CF_AUTH, CF_MEMBERS, CF_ALARM];

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// In `raft_state`: `MAGIC` followed by the format version (u32 BE).
const FORMAT_KEY: &[u8] = b"format";
const MAGIC: &[u8] = b"raftkv";

pub struct Db {
    db: DB,
    path: PathBuf,
}

impl Db {
    /// Opens (or creates) the database in `dir`. Refuses a directory that
    /// holds anything else, or a raftkv database of a newer format.
    pub fn open(dir: &Path) -> StoreResult<Db> {
        let fresh = check_directory(dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(fresh);
        // Only the ones added later are ever missing (checked below).
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        // Bounded memory: every memtable together stays under
        // `MEMTABLE_BUDGET` (RocksDB flushes the largest when it is reached).
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(128 * 1024 * 1024);
        // Two cores shared by a whole node: a writer waiting for its group
        // sleeps instead of spinning and yielding (RocksDB's default).
        opts.set_enable_write_thread_adaptive_yield(false);
        // Compactions (and defrag's) write large files: synced as they are
        // written (a megabyte at a time), they never leave hundreds of MB of
        // dirty pages for one fsync that the WAL's next sync queues behind.
        opts.set_bytes_per_sync(1024 * 1024);
        if !fresh {
            let existing = DB::list_cf(&opts, dir).map_err(|e| StoreError::NotRaftkv(e.into_string()))?;
            for cf in ALL_CFS.iter().filter(|cf| !LATER_CFS.contains(cf)) {
                if !existing.iter().any(|c| c == cf) {
                    return Err(StoreError::NotRaftkv(format!("{} has no column family {cf:?}", dir.display())));
                }
            }
        }
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE);
        let cfs = ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &cache)));
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let db = Db { db, path: dir.to_path_buf() };
        db.check_format(fresh)?;
        Ok(db)
    }

    fn check_format(&self, fresh: bool) -> StoreResult<()> {
        match self.db.get_cf(self.cf(CF_RAFT_STATE), FORMAT_KEY)? {
            Some(v) => {
                if v.len() != MAGIC.len() + 4 || !v.starts_with(MAGIC) {
                    return Err(StoreError::NotRaftkv(format!(
                        "unrecognised format marker in {}",
                        self.path.display()
                    )));
                }
                let mut raw = [0u8; 4];
                raw.copy_from_slice(&v[MAGIC.len()..]);
                let found = u32::from_be_bytes(raw);
                if found > FORMAT_VERSION {
                    return Err(StoreError::NewerFormat { found, supported: FORMAT_VERSION });
                }
                Ok(())
            }
            None if fresh => {
                let mut v = MAGIC.to_vec();
                v.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
                let mut batch = WriteBatch::default();
                batch.put_cf(self.cf(CF_RAFT_STATE), FORMAT_KEY, v);
                self.write(batch, true)
            }
            None => Err(StoreError::NotRaftkv(format!("{} has no format marker", self.path.display()))),
        }
    }

    /// The directory the database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A column family handle. Every name in `ALL_CFS` exists once opened.
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            None => panic!("invariant: column family {name:?} exists in an open database"),
        }
    }

    /// Writes a batch atomically; `sync` waits until it is on stable storage.
    pub fn write(&self, batch: WriteBatch, sync: bool) -> StoreResult<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Makes everything written so far durable (the WAL is shared by every
    /// column family, so one sync covers all earlier unsynced writes).
    pub fn sync_wal(&self) -> StoreResult<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// The underlying RocksDB handle, for iterators and snapshots.
    pub fn raw(&self) -> &DB {
        &self.db
    }

    /// Approximate bytes on disk (SST files and memtables), for status.
    pub fn approximate_size(&self) -> u64 {
        self.approximate_size_of(&ALL_CFS)
    }

    /// The same for the replicated state machine alone (what etcd calls
    /// the backend: the quota applies to it, not to the Raft log).
    pub fn state_machine_size(&self) -> u64 {
        self.approximate_size_of(&STATE_MACHINE_CFS)
    }

    fn approximate_size_of(&self, cfs: &[&str]) -> u64 {
        let mut total = 0u64;
        for &name in cfs {
            let cf = self.cf(name);
            for prop in ["rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables"] {
                if let Ok(Some(v)) = self.db.property_int_value_cf(cf, prop) {
                    total += v;
                }
            }
        }
        total
    }
}

/// Bytes of memtables across every column family.
const MEMTABLE_BUDGET: usize = 16 * 1024 * 1024;
/// Bytes of the block cache shared by every column family.
const BLOCK_CACHE: usize = 16 * 1024 * 1024;

fn cf_options(name: &str, cache: &rocksdb::Cache) -> Options {
    let mut o = Options::default();
    o.set_write_buffer_size(4 * 1024 * 1024);
    o.set_max_write_buffer_number(2);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    o.set_block_based_table_factory(&table);
    if name == CF_KV || name == CF_RAFT_LOG {
        o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    }
    o
}

/// Decides whether `dir` is a new database (absent or empty) or an existing
/// one, and refuses anything else.
fn check_directory(dir: &Path) -> StoreResult<bool> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("creating {}: {e}", dir.display())))?;
            Ok(true)
        }
        Err(e) => Err(StoreError::Io(format!("reading {}: {e}", dir.display()))),
        Ok(mut entries) => {
            if entries.next().is_none() {
                return Ok(true);
            }
            if dir.join("CURRENT").is_file() {
                Ok(false)
            } else {
                Err(StoreError::NotRaftkv(format!(
                    "{} is not empty and holds no database; refusing to touch it",
                    dir.display()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = Db::open(&path).unwrap();
            let mut b = WriteBatch::default();
            b.put_cf(db.cf(CF_KV), b"k", b"v");
            db.write(b, true).unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.get(CF_KV, b"k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn refuses_foreign_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        match Db::open(dir.path()) {
            Err(StoreError::NotRaftkv(_)) => {}
            other => panic!("expected NotRaftkv, got {:?}", other.err()),
        }
    }

    #[test]
    fn refuses_foreign_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut o = Options::default();
            o.create_if_missing(true);
            let db = DB::open(&o, dir.path()).unwrap();
            db.put(b"x", b"y").unwrap();
        }
        match Db::open(dir.path()) {
            Err(StoreError::NotRaftkv(why)) => assert!(why.contains("column family"), "{why}"),
            other => panic!("expected NotRaftkv, got {:?}", other.err()),
        }
    }

    #[test]
    fn refuses_newer_format() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&(FORMAT_VERSION + 1).to_be_bytes());
            let mut b = WriteBatch::default();
            b.put_cf(db.cf(CF_RAFT_STATE), FORMAT_KEY, v);
            db.write(b, true).unwrap();
        }
        match Db::open(dir.path()) {
            Err(StoreError::NewerFormat { found, supported }) => {
                assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION))
            }
            other => panic!("expected NewerFormat, got {:?}", other.err()),
        }
    }
}
