//! MVCC keyspace benchmarks: figures, not assertions.
//!
//! `cargo bench --bench mvcc` prints: put throughput (1 and 64 requests per
//! commit), point-read and 100-key prefix-range throughput, the key index's
//! memory for 1,000,000 keys (bytes per key, key bytes excluded, measured
//! with a counting global allocator), and point-read latency (median, p99)
//! with 1,000,000 keys loaded.

use bytes::Bytes;
use raftkv::mvcc::{IdxRev, KeyIndex, KvStore, Revision};
use raftkv::proto::etcdserverpb::{PutRequest, RangeRequest};
use raftkv::storage::Db;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        LIVE.fetch_add(new, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const KEYS: usize = 1_000_000;

fn key(i: usize) -> String {
    format!("/registry/pods/ns{:05}/pod-{:02}", i / 100, i % 100)
}

fn put(k: &str, v: &[u8]) -> PutRequest {
    PutRequest { key: Bytes::copy_from_slice(k.as_bytes()), value: Bytes::copy_from_slice(v), ..Default::default() }
}

/// Cheap deterministic pseudo-random numbers (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn open(dir: &std::path::Path) -> KvStore {
    let db = Arc::new(Db::open(dir).expect("open db"));
    KvStore::open(db).expect("open store")
}

fn put_throughput(per_commit: usize, total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("db"));
    let value = vec![b'v'; 256];
    let start = Instant::now();
    let mut ci = 0;
    let mut done = 0;
    while done < total {
        let mut b = store.begin();
        for _ in 0..per_commit {
            b.put(&put(&key(done % KEYS), &value)).unwrap();
            done += 1;
        }
        ci += 1;
        b.commit(ci, 1).unwrap();
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn index_memory_direct() -> (f64, usize) {
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let key_bytes: usize = keys.iter().map(|k| k.len()).sum();
    let before = LIVE.load(Ordering::Relaxed);
    let mut ix = KeyIndex::new();
    for (i, k) in keys.iter().enumerate() {
        ix.append(k.as_bytes(), IdxRev::new(Revision::new(i as i64 + 2, 0), false));
    }
    let used = LIVE.load(Ordering::Relaxed) - before;
    assert_eq!(ix.len(), KEYS);
    ((used - key_bytes) as f64 / KEYS as f64, key_bytes)
}

fn main() {
    let profile = if cfg!(debug_assertions) { "dev profile" } else { "release profile" };
    println!("mvcc benchmarks ({profile}); {} keys of ~{} bytes where loaded", KEYS, key(0).len());

    // -------------------------------------------------------------- index memory
    let (direct, key_bytes) = index_memory_direct();
    println!("key index memory (KeyIndex alone, 1M keys x 1 revision): {direct:.1} bytes/key excluding {key_bytes} key bytes");

    // -------------------------------------------------------------- puts
    let p1 = put_throughput(1, 20_000);
    println!("put throughput, 1 request per commit: {p1:.0} puts/s (256-byte values)");
    let p64 = put_throughput(64, 200_000);
    println!("put throughput, 64 requests per commit: {p64:.0} puts/s (256-byte values)");

    // -------------------------------------------------------------- load 1M keys
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = open(&path);
        let value = vec![b'v'; 128];
        let t = Instant::now();
        let mut ci = 0;
        for chunk in 0..KEYS / 1000 {
            let mut b = store.begin();
            for i in chunk * 1000..(chunk + 1) * 1000 {
                b.put(&put(&key(i), &value)).unwrap();
            }
            ci += 1;
            b.commit(ci, 1).unwrap();
        }
        println!("loaded {KEYS} keys in {:.1} s", t.elapsed().as_secs_f64());
    }
    // Reopen: the index is rebuilt from RocksDB; count what it keeps.
    let before = LIVE.load(Ordering::Relaxed);
    let t = Instant::now();
    let store = open(&path);
    let rebuild = t.elapsed();
    let used = LIVE.load(Ordering::Relaxed) - before;
    let key_bytes: usize = (0..KEYS).map(|i| key(i).len()).sum();
    println!(
        "key index memory after rebuild (KvStore::open, 1M keys x 1 revision): {:.1} bytes/key excluding key bytes; rebuild took {:.1} s",
        (used as f64 - key_bytes as f64) / KEYS as f64,
        rebuild.as_secs_f64()
    );
    assert_eq!(store.index_len(), KEYS);

    // -------------------------------------------------------------- point-read latency
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for _ in 0..50_000 {
        let k = key(rng.next() as usize % KEYS);
        let req = RangeRequest { key: Bytes::from(k), ..Default::default() };
        let t = Instant::now();
        let r = store.range(&req).unwrap();
        hist.record(t.elapsed().as_nanos() as u64).unwrap();
        assert_eq!(r.kvs.len(), 1);
    }
    println!(
        "point read latency, latest revision, 1M keys: median {:.1} us, p99 {:.1} us, max {:.1} us",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );

    // -------------------------------------------------------------- read throughput
    let run = |what: &str, f: &mut dyn FnMut(&mut Rng) -> usize| {
        let mut rng = Rng(42);
        let start = Instant::now();
        let (mut ops, mut kvs) = (0u64, 0usize);
        while start.elapsed() < Duration::from_secs(3) {
            for _ in 0..100 {
                kvs += f(&mut rng);
                ops += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{what}: {:.0} ranges/s ({:.0} key-values/s)", ops as f64 / secs, kvs as f64 / secs);
    };
    run("point reads (1M keys)", &mut |rng| {
        let req = RangeRequest { key: Bytes::from(key(rng.next() as usize % KEYS)), ..Default::default() };
        store.range(&req).unwrap().kvs.len()
    });
    run("100-key prefix ranges (1M keys)", &mut |rng| {
        let p = rng.next() as usize % (KEYS / 100);
        let req = RangeRequest {
            key: Bytes::from(format!("/registry/pods/ns{p:05}/")),
            range_end: Bytes::from(format!("/registry/pods/ns{p:05}0")),
            ..Default::default()
        };
        let n = store.range(&req).unwrap().kvs.len();
        assert_eq!(n, 100);
        n
    });
}
