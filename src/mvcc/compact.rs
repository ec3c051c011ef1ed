//! Physical compaction: the background worker that removes from RocksDB the
//! revisions a compaction made unreachable.
//!
//! Owns the worker thread, its progress (`finished_compact_rev`), waiting
//! for it, pausing it, and its clean shutdown. It scans `kv` in ascending
//! revision order in bounded batches (`Options::compaction_batch_size`), and
//! for each batch takes the index lock only to decide what goes, so reads and
//! writes are never blocked for long. Must never delete a revision that a
//! compaction keeps: the decision (`KeyIndex::is_kept`) is exact whether or
//! not the in-memory index was compacted yet, and deleting in ascending order
//! means a crash half way leaves a state that a rebuild plus an index
//! compaction reads exactly as before.

use super::error::MvccError;
use super::revision::{decode_kv, decode_rev_key, encode_i64, rev_key_lower_bound, META_FINISHED_COMPACT};
use super::store::Inner;
use crate::storage::db::{CF_KV, CF_META};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Progress {
    /// Highest compaction revision scheduled.
    pub target: i64,
    /// Highest compaction revision physically completed.
    pub finished: i64,
    /// Bumped by `reload`: a run of an older epoch is abandoned.
    pub epoch: u64,
    pub stop: bool,
    /// Test hook fired: the worker does nothing more (as if crashed).
    pub halted: bool,
    /// Batches written since open (for the test hook and for tests).
    pub batches: u64,
    /// The last failure and the target it was for.
    pub failed: Option<(i64, MvccError)>,
}

pub(crate) struct Compactor {
    progress: Mutex<Progress>,
    changed: Condvar,
    /// Held by the worker for each batch, and by a pause.
    batch_lock: Mutex<()>,
}

impl Compactor {
    pub fn new(target: i64, finished: i64) -> Compactor {
        Compactor {
            progress: Mutex::new(Progress {
                target,
                finished,
                epoch: 0,
                stop: false,
                halted: false,
                batches: 0,
                failed: None,
            }),
            changed: Condvar::new(),
            batch_lock: Mutex::new(()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pause(&self) -> MutexGuard<'_, ()> {
        self.batch_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn schedule(&self, rev: i64) {
        let mut p = self.lock();
        if rev > p.target {
            p.target = rev;
        }
        self.changed.notify_all();
    }

    /// After a reload: forget the old run, continue from what is on disk.
    pub fn reset(&self, target: i64, finished: i64) {
        let mut p = self.lock();
        p.target = target;
        p.finished = finished;
        p.epoch += 1;
        p.failed = None;
        self.changed.notify_all();
    }

    pub fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }

    pub fn wait(&self, rev: i64, timeout: Duration) -> Result<(), MvccError> {
        let deadline = Instant::now() + timeout;
        let mut p = self.lock();
        loop {
            if p.finished >= rev {
                return Ok(());
            }
            if let Some((t, e)) = &p.failed {
                if *t >= rev {
                    return Err(e.clone());
                }
            }
            if p.stop {
                return Err(MvccError::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(MvccError::Timeout);
            }
            p = self.changed.wait_timeout(p, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

enum Outcome {
    Done,
    Interrupted,
}

/// The worker thread's body: waits for a target above `finished`, runs it.
pub(crate) fn worker(inner: Arc<Inner>) {
    loop {
        let (target, epoch) = {
            let mut p = inner.compactor.lock();
            loop {
                if p.stop {
                    return;
                }
                let failed_at = p.failed.as_ref().map(|(t, _)| *t).unwrap_or(i64::MIN);
                if !p.halted && p.target > p.finished && p.target > failed_at {
                    break (p.target, p.epoch);
                }
                p = inner.compactor.changed.wait(p).unwrap_or_else(|e| e.into_inner());
            }
        };
        match run(&inner, target, epoch) {
            Ok(Outcome::Done) => {
                let _batch = inner.compactor.pause();
                let mut p = inner.compactor.lock();
                if p.epoch == epoch {
                    let mut wb = WriteBatch::default();
                    wb.put_cf(inner.db.cf(CF_META), META_FINISHED_COMPACT, encode_i64(target));
                    match inner.db.write(wb, false) {
                        Ok(()) => p.finished = p.finished.max(target),
                        Err(e) => {
                            log::error!("mvcc: recording finished compaction at {target}: {e}");
                            p.failed = Some((target, e.into()));
                        }
                    }
                }
                inner.compactor.changed.notify_all();
            }
            Ok(Outcome::Interrupted) => {}
            Err(e) => {
                log::error!("mvcc: physical compaction at {target} failed: {e}");
                let mut p = inner.compactor.lock();
                p.failed = Some((target, e));
                inner.compactor.changed.notify_all();
            }
        }
    }
}

fn run(inner: &Inner, target: i64, epoch: u64) -> Result<Outcome, MvccError> {
    let end = rev_key_lower_bound(target.saturating_add(1));
    let mut from = rev_key_lower_bound(0);
    let batch_size = inner.opts.compaction_batch_size.max(1);
    loop {
        let _batch = inner.compactor.pause();
        {
            let p = inner.compactor.lock();
            if p.stop || p.halted || p.epoch != epoch {
                return Ok(Outcome::Interrupted);
            }
        }
        // Read a batch of revisions at or below the target.
        let mut scanned = Vec::with_capacity(batch_size);
        let kv_cf = inner.db.cf(CF_KV);
        for item in inner.db.raw().iterator_cf(kv_cf, IteratorMode::From(&from, Direction::Forward)) {
            let (k, v) = item?;
            if k.as_ref() >= end.as_slice() {
                break;
            }
            let (rev, tomb) = decode_rev_key(&k)?;
            let kv = decode_kv(rev, tomb, &v)?;
            scanned.push((k, kv.key, rev, tomb));
            if scanned.len() == batch_size {
                break;
            }
        }
        let Some(last) = scanned.last().map(|s| s.0.clone()) else {
            return Ok(Outcome::Done);
        };
        let mut wb = WriteBatch::default();
        {
            let st = inner.read_state();
            for (k, key, rev, tomb) in &scanned {
                if *tomb || !st.index.is_kept(key, *rev, target) {
                    wb.delete_cf(kv_cf, k);
                }
            }
        }
        if !wb.is_empty() {
            inner.db.write(wb, false)?;
        }
        from = last.to_vec();
        from.push(0);
        let mut p = inner.compactor.lock();
        p.batches += 1;
        if inner.opts.compaction_stop_after_batches.is_some_and(|n| p.batches >= n) {
            p.halted = true;
            inner.compactor.changed.notify_all();
            return Ok(Outcome::Interrupted);
        }
    }
}
