//! Kill-and-reopen test of the durable Raft log: a child process appends
//! synced batches (some rewriting a conflicting suffix) and reports each one
//! once acknowledged; the parent kills it with SIGKILL at a random moment,
//! reopens the log, and requires it to be exactly the state after the last
//! acknowledged batch, or after one more batch (written, not yet reported):
//! every acknowledged batch is there, nothing half-written is visible.
//! The parent replays the child's deterministic batch sequence on an
//! in-memory model to know both states. Several rounds reuse one directory.
//! The seed is printed; `RAFTKV_CRASH_SEED` replays it.

use raftkv::proto::raftpb::{Entry, HardState};
use raftkv::raft::Storage;
use raftkv::storage::{Db, RaftLogStorage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

const CHILD_DIR_ENV: &str = "RAFTKV_CRASH_CHILD_DIR";
const CHILD_SEED_ENV: &str = "RAFTKV_CRASH_CHILD_SEED";
const ROUNDS: u64 = 6;

/// What the log holds: entries 1..=len and the hard state.
#[derive(Debug, Clone, PartialEq)]
struct Model {
    log: Vec<Entry>,
    hs: HardState,
}

impl Model {
    fn last(&self) -> u64 {
        self.log.len() as u64
    }

    /// The next batch the writer produces from this state, and applies it.
    fn next_batch(&mut self, rng: &mut ChaCha8Rng) -> (Vec<Entry>, HardState) {
        let last = self.last();
        let last_term = self.log.last().map_or(0, |e| e.term).max(self.hs.term);
        // Now and then rewrite a conflicting suffix with a newer term, often
        // shorter than what it replaces (the log must shrink on disk too).
        let (start, term, n) = if last > 3 && rng.random_bool(0.4) {
            (last - rng.random_range(0..3), last_term + 1, rng.random_range(1..=3))
        } else {
            (last + 1, last_term.max(1), rng.random_range(1..=40))
        };
        let start = start.max(self.hs.commit + 1);
        let entries: Vec<Entry> = (start..start + n)
            .map(|index| Entry {
                index,
                term,
                data: format!("{index}:{term}").into_bytes().into(),
                ..Default::default()
            })
            .collect();
        let new_last = start + n - 1;
        let hs = HardState { term, vote: 1, commit: self.hs.commit.max(new_last.saturating_sub(5)) };
        self.log.truncate((start - 1) as usize);
        self.log.extend(entries.iter().cloned());
        self.hs = hs;
        (entries, hs)
    }
}

fn load(dir: &std::path::Path) -> Model {
    let db = Arc::new(Db::open(dir).expect("open db"));
    let log = RaftLogStorage::open(db).expect("open log");
    let last = log.last_index();
    let entries = if last == 0 { Vec::new() } else { log.entries(1, last + 1, u64::MAX).expect("read the whole log") };
    Model { log: entries, hs: log.hard_state() }
}

/// The child: appends batches forever, printing `acked` after each synced write.
#[test]
#[ignore = "run as a child process by crashes_never_lose_acknowledged_batches"]
fn crash_child_writer() {
    let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR_ENV), std::env::var(CHILD_SEED_ENV)) else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(seed.parse().expect("child seed"));
    let mut model = load(std::path::Path::new(&dir));
    let db = Arc::new(Db::open(std::path::Path::new(&dir)).expect("open db"));
    let mut log = RaftLogStorage::open(db).expect("open log");
    loop {
        let (entries, hs) = model.next_batch(&mut rng);
        log.persist(&entries, Some(hs), true).expect("persist");
        println!("acked");
    }
}

#[test]
fn crashes_never_lose_acknowledged_batches() {
    let seed: u64 = std::env::var("RAFTKV_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("crash test seed: {seed} (replay with RAFTKV_CRASH_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");

    for round in 0..ROUNDS {
        let before = load(dir.path());
        let child_seed = seed ^ (round + 1).wrapping_mul(0x9E37_79B9);
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_writer", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_SEED_ENV, child_seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
        let kill_after = rng.random_range(1..150usize);
        let mut acked = 0usize;
        while acked < kill_after {
            match lines.next() {
                // libtest prints "test crash_child_writer ... " without a
                // newline before the first acknowledgement.
                Some(Ok(l)) if l.ends_with("acked") => acked += 1,
                Some(Ok(_)) => {}
                _ => panic!("round {round}: the child stopped before being killed (seed {seed})"),
            }
        }
        child.kill().expect("SIGKILL the child");
        let _ = child.wait();
        // Acknowledgements already in the pipe count too.
        acked += lines.map_while(Result::ok).filter(|l| l.ends_with("acked")).count();

        let mut expected = before;
        let mut replay = ChaCha8Rng::seed_from_u64(child_seed);
        for _ in 0..acked {
            expected.next_batch(&mut replay);
        }
        let mut one_more = expected.clone();
        one_more.next_batch(&mut replay);

        let got = load(dir.path());
        assert!(
            got == expected || got == one_more,
            "round {round}: after {acked} acknowledged batches the log is neither the acknowledged state \
             (last {}, commit {}) nor one batch later (last {}, commit {}); found last {}, commit {} (seed {seed})",
            expected.last(),
            expected.hs.commit,
            one_more.last(),
            one_more.hs.commit,
            got.last(),
            got.hs.commit
        );
    }
}
