//! The server as a real process: every acknowledged write survives
//! `kill -9` at a random moment, and SIGTERM stops it cleanly with exit
//! code 0. Seeds are printed; `RAFTKV_CRASH_SEED` replays one.

mod common;

use common::*;
use raftkv::proto::etcdserverpb::{PutRequest, RangeRequest};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;
const ROUNDS: usize = 3;

/// Reads every key under `prefix`.
fn read_all(addr: std::net::SocketAddr, prefix: &str) -> BTreeMap<String, String> {
    let mut c = RawClient::connect(addr);
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    match c.call(Req::Range(RangeRequest {
        key: prefix.to_string().into(),
        range_end: end.into(),
        ..Default::default()
    })) {
        Resp::Range(r) => r
            .kvs
            .iter()
            .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), String::from_utf8_lossy(&kv.value).into_owned()))
            .collect(),
        other => panic!("range failed: {other:?}"),
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let seed: u64 = std::env::var("RAFTKV_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("seed {seed} (replay with RAFTKV_CRASH_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::start(dir.path());
    // key -> value of every acknowledged write; every key ever sent.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let sent: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();

    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (stop, acked, sent, addr) = (stop.clone(), acked.clone(), sent.clone(), node.client);
                std::thread::spawn(move || {
                    let mut c = RawClient::connect(addr);
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        // Keys are rewritten across rounds: the last acked value must win.
                        let key = format!("crash/{w}/{}", i % 50);
                        let value = format!("r{round}-w{w}-i{i}");
                        sent.lock().unwrap().entry(key.clone()).or_default().push(value.clone());
                        let Some(id) = c.try_send(Req::Put(PutRequest {
                            key: key.clone().into(),
                            value: value.clone().into(),
                            ..Default::default()
                        })) else {
                            return;
                        };
                        match c.recv() {
                            Some(r) if r.request_id == id && matches!(r.body, Some(Resp::Put(_))) => {
                                acked.lock().unwrap().insert(key, value);
                            }
                            // Killed mid-request: unknown outcome.
                            _ => return,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        node.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            let _ = w.join();
        }
        node.restart();
        let got = read_all(node.client, "crash/");
        let acked = acked.lock().unwrap();
        let sent = sent.lock().unwrap();
        assert!(!acked.is_empty(), "round {round}: nothing was acknowledged before the kill (seed {seed})");
        for (k, v) in acked.iter() {
            let now = got.get(k).unwrap_or_else(|| panic!("round {round}: acknowledged key {k} lost (seed {seed})"));
            // A later unacknowledged write to the same key may have landed;
            // it must be one that was sent after the acknowledged one.
            let history = &sent[k];
            let acked_at = history.iter().position(|x| x == v).expect("acked value was sent");
            let now_at = history.iter().position(|x| x == now);
            assert!(
                matches!(now_at, Some(p) if p >= acked_at),
                "round {round}: {k} is {now:?}, older than its acknowledged value {v:?} (seed {seed})"
            );
        }
        for k in got.keys() {
            assert!(sent.contains_key(k), "round {round}: {k} was never written (seed {seed})");
        }
    }
}

#[test]
fn sigterm_stops_cleanly_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = ChildNode::start(dir.path());
    let mut c = RawClient::connect(node.client);
    for i in 0..20 {
        let r = c.call(Req::Put(PutRequest { key: format!("t/{i}").into(), value: "v".into(), ..Default::default() }));
        assert!(matches!(r, Resp::Put(_)), "{r:?}");
    }
    node.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = node.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "raftkv did not exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");
    node.restart();
    assert_eq!(read_all(node.client, "t/").len(), 20);
    node.signal(libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = node.child.try_wait().expect("wait") {
            assert_eq!(s.code(), Some(0), "exit code after SIGINT");
            break;
        }
        assert!(Instant::now() < deadline, "raftkv did not exit within 10 s of SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}
