//! A history-recording workload for fault tests.
//!
//! Client threads, each with its own connection, run put / linearizable
//! get / compare-and-set on a few keys with unique values, and record call
//! and return times (one monotonic clock for the whole test), inputs and
//! outputs in the linearizability checker's `Op` format. A client whose
//! connection breaks, or whose request fails or times out, moves on to the
//! next member.
//!
//! Outcome rules: a write with a success answer is `Ok` / `CasOk(_)`; a
//! write whose answer never came, or came as any error other than a
//! validation error, is `Unknown` (it may have been proposed); a write
//! refused by validation (codes 1xx) is not recorded. Reads with errors are
//! dropped. Every acknowledged write is kept with the revision it created,
//! so `verify_durable` can read it back from every member at that revision.
#![allow(dead_code)]

use super::cluster::{wait_for, CallError, Client, Cluster};
use super::linearizability::{check, Input, Op, Output, Verdict};
use raftkv::proto::etcdserverpb::{compare, request_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use raftkv::proto::raftkvpb::{client_request::Body as Req, client_response::Body as Resp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The test's monotonic clock: nanoseconds since it started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }

    /// The clock reading of `t`.
    pub fn at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.0).as_nanos() as u64
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// Unique values for the whole test process.
static NEXT_VALUE: AtomicU64 = AtomicU64::new(1);

pub fn unique_value() -> String {
    format!("v{}", NEXT_VALUE.fetch_add(1, Ordering::Relaxed))
}

/// An acknowledged write and the revision it created.
#[derive(Debug, Clone)]
pub struct AckedWrite {
    pub key: String,
    pub value: String,
    pub revision: i64,
}

/// What the clients saw.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub ops: Vec<Op>,
    pub acked: Vec<AckedWrite>,
}

impl History {
    pub fn extend(&mut self, other: History) {
        self.ops.extend(other.ops);
        self.acked.extend(other.acked);
    }

    pub fn count(&self, f: impl Fn(&Op) -> bool) -> usize {
        self.ops.iter().filter(|o| f(o)).count()
    }

    pub fn summary(&self) -> String {
        let w = |o: &Op| !matches!(o.input, Input::Get);
        format!(
            "{} ops: {} writes acknowledged, {} writes unknown, {} CAS refused, {} reads",
            self.ops.len(),
            self.acked.len(),
            self.count(|o| w(o) && o.output == Output::Unknown),
            self.count(|o| o.output == Output::CasOk(false)),
            self.count(|o| matches!(o.input, Input::Get)),
        )
    }
}

/// How an operation ended.
pub enum Outcome {
    /// Answered: the output, and the revision a write created.
    Done(Output, Option<i64>),
    /// A write with no answer (or an availability error).
    Unknown(String),
    /// Refused by validation, or a read that failed: not recorded.
    Skip(String),
}

fn is_validation_error(e: &CallError) -> bool {
    matches!(e, CallError::Server { code, .. } if (100..200).contains(code))
}

/// Runs one operation on `c`.
pub fn execute(c: &mut Client, key: &str, input: &Input, timeout: Duration) -> Outcome {
    let body = match input {
        Input::Put(v) => {
            Req::Put(PutRequest { key: key.to_string().into(), value: v.clone().into(), ..Default::default() })
        }
        Input::Get => Req::Range(RangeRequest { key: key.to_string().into(), ..Default::default() }),
        Input::Cas { expect, new } => Req::Txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Value as i32,
                key: key.to_string().into(),
                target_union: Some(compare::TargetUnion::Value(
                    expect.clone().expect("CAS always expects a value").into(),
                )),
                range_end: Default::default(),
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.to_string().into(),
                    value: new.clone().into(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        }),
    };
    let result = c.call(body, timeout);
    let revision = |h: Option<raftkv::proto::etcdserverpb::ResponseHeader>| h.map(|h| h.revision);
    match (input, result) {
        (Input::Put(_), Ok(Resp::Put(r))) => Outcome::Done(Output::Ok, revision(r.header)),
        (Input::Get, Ok(Resp::Range(r))) => {
            assert!(r.kvs.len() <= 1, "a range of one key returned {} keys", r.kvs.len());
            let v = r.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
            Outcome::Done(Output::Value(v), None)
        }
        (Input::Cas { .. }, Ok(Resp::Txn(t))) => {
            Outcome::Done(Output::CasOk(t.succeeded), if t.succeeded { revision(t.header) } else { None })
        }
        (_, Ok(other)) => panic!("{key} {input:?}: unexpected answer {other:?}"),
        (Input::Get, Err(e)) => Outcome::Skip(e.to_string()),
        (_, Err(e)) if is_validation_error(&e) => Outcome::Skip(e.to_string()),
        (_, Err(e)) => Outcome::Unknown(e.to_string()),
    }
}

/// Records `outcome` of `input` on `key` into `h`; whether it was recorded.
pub fn record(h: &mut History, client: usize, key: &str, input: Input, call: u64, ret: u64, outcome: &Outcome) -> bool {
    let output = match outcome {
        Outcome::Done(out, rev) => {
            let written = match (&input, out) {
                (Input::Put(v), Output::Ok) => Some(v.clone()),
                (Input::Cas { new, .. }, Output::CasOk(true)) => Some(new.clone()),
                _ => None,
            };
            if let Some(value) = written {
                let revision = rev.unwrap_or_else(|| panic!("{key}: an acknowledged write without a revision"));
                h.acked.push(AckedWrite { key: key.to_string(), value, revision });
            }
            out.clone()
        }
        Outcome::Unknown(_) => Output::Unknown,
        Outcome::Skip(_) => return false,
    };
    h.ops.push(Op { client, key: key.to_string(), input, output, call, ret });
    true
}

#[derive(Debug, Clone)]
pub struct WorkloadOpts {
    pub clients: usize,
    pub keys: Vec<String>,
    /// Client-side bound on one request (beyond the server's own timeout).
    pub op_timeout: Duration,
    /// Pause between a client's operations.
    pub think: Duration,
    pub seed: u64,
    /// Client numbers start here (unique across the test's workloads).
    pub first_client: usize,
}

impl WorkloadOpts {
    pub fn new(seed: u64, clients: usize, keys: usize) -> WorkloadOpts {
        WorkloadOpts {
            clients,
            keys: (0..keys).map(|k| format!("reg/{k}")).collect(),
            op_timeout: Duration::from_secs(6),
            think: Duration::from_millis(2),
            seed,
            first_client: 0,
        }
    }
}

/// Running client threads; `stop` returns their history.
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<History>>,
    acked: Arc<AtomicU64>,
    last_ack: Arc<Mutex<Option<Instant>>>,
}

impl Workload {
    /// Writes every key once (so compare-and-set always has a value to
    /// expect), recorded, then starts the clients.
    pub fn start(endpoints: Vec<SocketAddr>, opts: WorkloadOpts, clock: Clock) -> (Workload, History) {
        let init = init_keys(&endpoints, &opts.keys, clock, opts.first_client + opts.clients);
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let last_ack = Arc::new(Mutex::new(None));
        let threads = (0..opts.clients)
            .map(|i| {
                let (stop, acked, last_ack) = (stop.clone(), acked.clone(), last_ack.clone());
                let (endpoints, opts) = (endpoints.clone(), opts.clone());
                std::thread::Builder::new()
                    .name(format!("client-{i}"))
                    .spawn(move || client_loop(i, endpoints, opts, clock, stop, acked, last_ack))
                    .expect("spawn client")
            })
            .collect();
        (Workload { stop, threads, acked, last_ack }, init)
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// When the newest write was acknowledged.
    pub fn last_ack(&self) -> Option<Instant> {
        *self.last_ack.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `more` further writes are acknowledged, at most `within`.
    pub fn wait_progress(&self, more: u64, within: Duration, what: &str) {
        let start = self.acked();
        wait_for(within, format!("{more} more acknowledged writes ({what})"), || {
            let now = self.acked();
            if now >= start + more {
                Ok(())
            } else {
                Err(format!("{} acknowledged since", now - start))
            }
        });
    }

    pub fn stop(self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        let mut h = History::default();
        for t in self.threads {
            match t.join() {
                Ok(part) => h.extend(part),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        h
    }
}

/// Puts an initial value in every key, retrying on any member until
/// acknowledged; the attempts are recorded as client `client`.
pub fn init_keys(endpoints: &[SocketAddr], keys: &[String], clock: Clock, client: usize) -> History {
    let mut h = History::default();
    for key in keys {
        let mut member = 0;
        wait_for(Duration::from_secs(30), format!("an initial write of {key}"), || {
            let addr = endpoints[member % endpoints.len()];
            member += 1;
            let mut c = Client::connect(addr, Duration::from_millis(500))?;
            let input = Input::Put(unique_value());
            let call = clock.now();
            let outcome = execute(&mut c, key, &input, Duration::from_secs(6));
            let ret = clock.now();
            record(&mut h, client, key, input, call, ret, &outcome);
            match outcome {
                Outcome::Done(..) => Ok(()),
                Outcome::Unknown(e) | Outcome::Skip(e) => Err(e),
            }
        });
    }
    h
}

fn client_loop(
    i: usize,
    endpoints: Vec<SocketAddr>,
    opts: WorkloadOpts,
    clock: Clock,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    last_ack: Arc<Mutex<Option<Instant>>>,
) -> History {
    let client = opts.first_client + i;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ ((client as u64 + 1) << 32));
    let mut h = History::default();
    let mut member = i % endpoints.len();
    let mut conn: Option<Client> = None;
    // The newest value this client saw per key, for compare-and-set.
    let mut seen: Vec<Option<String>> = vec![None; opts.keys.len()];
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Client::connect(endpoints[member], Duration::from_millis(500)) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    member = (member + 1) % endpoints.len();
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            },
        };
        let k = rng.random_range(0..opts.keys.len());
        let key = &opts.keys[k];
        let roll = rng.random_range(0..100);
        let input = if roll < 35 {
            Input::Put(unique_value())
        } else if roll < 70 || seen[k].is_none() {
            Input::Get
        } else {
            Input::Cas { expect: seen[k].clone(), new: unique_value() }
        };
        let call = clock.now();
        let outcome = execute(c, key, &input, opts.op_timeout);
        let ret = clock.now();
        match &outcome {
            Outcome::Done(Output::Value(v), _) => seen[k] = v.clone(),
            Outcome::Done(Output::Ok, _) => {
                if let Input::Put(v) = &input {
                    seen[k] = Some(v.clone());
                }
            }
            Outcome::Done(Output::CasOk(true), _) => {
                if let Input::Cas { new, .. } = &input {
                    seen[k] = Some(new.clone());
                }
            }
            Outcome::Unknown(_) | Outcome::Skip(_) => {
                // Unavailable here: try the next member.
                conn = None;
                member = (member + 1) % endpoints.len();
            }
            _ => {}
        }
        let before = h.acked.len();
        record(&mut h, client, key, input, call, ret, &outcome);
        if h.acked.len() > before {
            acked.fetch_add(1, Ordering::Relaxed);
            *last_ack.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        if !opts.think.is_zero() {
            std::thread::sleep(opts.think);
        }
    }
    h
}

/// A linearizable read of every key once the cluster is healed, recorded
/// (so the check covers the final state).
pub fn final_reads(endpoints: &[SocketAddr], keys: &[String], clock: Clock, client: usize) -> History {
    let mut h = History::default();
    for key in keys {
        let mut member = 0;
        wait_for(Duration::from_secs(30), format!("a final read of {key}"), || {
            let addr = endpoints[member % endpoints.len()];
            member += 1;
            let mut c = Client::connect(addr, Duration::from_millis(500))?;
            let call = clock.now();
            let outcome = execute(&mut c, key, &Input::Get, Duration::from_secs(6));
            let ret = clock.now();
            record(&mut h, client, key, Input::Get, call, ret, &outcome);
            match outcome {
                Outcome::Done(..) => Ok(()),
                Outcome::Unknown(e) | Outcome::Skip(e) => Err(e),
            }
        });
    }
    h
}

/// Every acknowledged write is readable, on every running member, at the
/// revision it created (a serializable read at that revision: the key's
/// value there is exactly the write, with that mod revision).
pub fn verify_durable(cluster: &Cluster, acked: &[AckedWrite], seed: u64) {
    const WINDOW: usize = 64;
    let mut report = Vec::new();
    for m in cluster.members.iter() {
        if !m.is_running() {
            continue;
        }
        let mut c = Client::connect(m.client, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("durability check on {}: {e}", m.name));
        let mut lost = Vec::new();
        for chunk in acked.chunks(WINDOW) {
            let mut ids = Vec::new();
            for w in chunk {
                let id = c
                    .send(Req::Range(RangeRequest {
                        key: w.key.clone().into(),
                        revision: w.revision,
                        serializable: true,
                        ..Default::default()
                    }))
                    .unwrap_or_else(|e| panic!("durability check on {}: {e}", m.name));
                ids.push(id);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut answers = std::collections::HashMap::new();
            while answers.len() < ids.len() {
                match c.recv(deadline) {
                    Ok(Some(r)) => {
                        answers.insert(r.request_id, r.body);
                    }
                    Ok(None) => panic!("durability check on {}: no answer within 20 s", m.name),
                    Err(e) => panic!("durability check on {}: {e}", m.name),
                }
            }
            for (w, id) in chunk.iter().zip(ids) {
                match answers.remove(&id).flatten() {
                    Some(Resp::Range(r)) => {
                        let got =
                            r.kvs.first().map(|kv| (String::from_utf8_lossy(&kv.value).into_owned(), kv.mod_revision));
                        if got != Some((w.value.clone(), w.revision)) {
                            lost.push(format!("{} = {} at revision {}: found {got:?}", w.key, w.value, w.revision));
                        }
                    }
                    other => lost.push(format!("{} = {} at revision {}: {other:?}", w.key, w.value, w.revision)),
                }
            }
        }
        if !lost.is_empty() {
            report.push(format!(
                "{} of {} acknowledged writes missing on {}, e.g.:\n  {}",
                lost.len(),
                acked.len(),
                m.name,
                lost.iter().take(10).cloned().collect::<Vec<_>>().join("\n  ")
            ));
        }
    }
    assert!(report.is_empty(), "seed {seed}: {}", report.join("\n"));
}

/// Checks the history; on failure saves it under /tmp and panics with the
/// seed and the checker's explanation.
pub fn check_history(h: &History, seed: u64, scenario: &str) {
    let started = Instant::now();
    let verdict = check(&h.ops, 50_000_000);
    println!("{scenario}: history checked in {:?} ({})", started.elapsed(), h.summary());
    let save = || {
        let path = std::env::temp_dir().join(format!("raftkv-history-{scenario}-{seed}.txt"));
        let mut ops = h.ops.clone();
        ops.sort_by_key(|o| o.call);
        let text: String = ops.iter().map(|o| format!("{o}\n")).collect();
        let _ = std::fs::write(&path, text);
        path
    };
    match verdict {
        Verdict::Linearizable => {}
        Verdict::Violation { key, explanation } => {
            let path = save();
            panic!(
                "{scenario}: seed {seed} (replay with RAFTKV_FAULT_SEED={seed}): the history of {key} is not \
                 linearizable (whole history in {}):\n{explanation}",
                path.display()
            )
        }
        Verdict::Inconclusive { key } => {
            let path = save();
            panic!("{scenario}: seed {seed}: the checker's budget ran out on {key} (history in {})", path.display())
        }
    }
}
