//! A linearizability checker for a key-value store seen as independent
//! registers: put, get and compare-and-set (etcd's Txn) on single keys.
//!
//! Histories are split by key (every operation touches one key, so the whole
//! history is linearizable iff each key's is), then each key is checked with
//! the Wing–Gong search with Lowe's memoisation (as Porcupine and Knossos
//! do): walk the call/return events in time order, tentatively linearize a
//! pending call whose effect fits the register's state, backtrack on a
//! return that found its operation not linearized, and never revisit a
//! (linearized set, state) pair. An operation whose outcome is unknown (a
//! timeout, a crash) returns "at infinity": it may have taken effect at any
//! point after its call, or not at all.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// What a client did to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Put(String),
    Get,
    /// Set to `new` if the value is `expect` (`None`: the key is absent).
    Cas {
        expect: Option<String>,
        new: String,
    },
}

/// What it saw. `Unknown`: no answer (the operation may or may not have
/// happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Ok,
    Value(Option<String>),
    CasOk(bool),
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub input: Input,
    pub output: Output,
    /// When the call was made and when its answer arrived (any monotonic
    /// unit, e.g. nanoseconds since the test started). `ret` is ignored for
    /// `Output::Unknown`.
    pub call: u64,
    pub ret: u64,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = if self.output == Output::Unknown { "?".to_string() } else { self.ret.to_string() };
        write!(f, "client {} [{}, {}] {} {:?} -> {:?}", self.client, self.call, ret, self.key, self.input, self.output)
    }
}

/// The outcome for a whole history.
#[derive(Debug)]
pub enum Verdict {
    Linearizable,
    /// One key's history is not linearizable: the operations that could not
    /// be placed, around the furthest point the search reached.
    Violation {
        key: String,
        explanation: String,
    },
    /// The search budget ran out before a verdict.
    Inconclusive {
        key: String,
    },
}

type State = Option<String>;

/// Applies `op` to `state`: the new state, or `None` if `op`'s recorded
/// output is impossible from `state`.
fn step(state: &State, op: &Op) -> Option<State> {
    match (&op.input, &op.output) {
        (Input::Put(v), Output::Ok | Output::Unknown) => Some(Some(v.clone())),
        (Input::Get, Output::Value(v)) => (v == state).then(|| state.clone()),
        (Input::Get, Output::Unknown) => Some(state.clone()),
        (Input::Cas { expect, new }, Output::CasOk(true)) => (expect == state).then(|| Some(new.clone())),
        (Input::Cas { expect, .. }, Output::CasOk(false)) => (expect != state).then(|| state.clone()),
        (Input::Cas { expect, new }, Output::Unknown) => {
            Some(if expect == state { Some(new.clone()) } else { state.clone() })
        }
        _ => None,
    }
}

/// Checks a whole history. `budget` bounds the search steps per key.
pub fn check(history: &[Op], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        // A read with no answer says nothing.
        if op.input == Input::Get && op.output == Output::Unknown {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        match check_key(&ops, budget) {
            KeyVerdict::Ok => {}
            KeyVerdict::Violation(explanation) => return Verdict::Violation { key: key.to_string(), explanation },
            KeyVerdict::OutOfBudget => return Verdict::Inconclusive { key: key.to_string() },
        }
    }
    Verdict::Linearizable
}

enum KeyVerdict {
    Ok,
    Violation(String),
    OutOfBudget,
}

#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

/// A doubly linked list over the events, so linearized operations can be
/// lifted out and put back in O(1).
struct Events {
    ev: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Index of each op's return event.
    ret_of: Vec<usize>,
}

const HEAD: usize = usize::MAX;

impl Events {
    fn first(&self) -> usize {
        self.next[self.ev.len()]
    }

    fn after(&self, i: usize) -> usize {
        self.next[i]
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = n;
        if n != HEAD {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        if n != HEAD {
            self.prev[n] = i;
        }
    }
}

fn check_key(ops: &[&Op], budget: u64) -> KeyVerdict {
    let n = ops.len();
    // Events in time order; at equal times calls come after returns (an
    // operation that returned at t precedes one called at t).
    let mut ev: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        ev.push((op.call, 1, i));
        let ret = if op.output == Output::Unknown { u64::MAX } else { op.ret.max(op.call) };
        ev.push((ret, 0, i));
    }
    ev.sort();
    let events: Vec<Event> = ev.iter().map(|&(_, kind, op)| Event { op, is_call: kind == 1 }).collect();
    // Sentinel node at index len: the list head.
    let len = events.len();
    let mut next = vec![HEAD; len + 1];
    let mut prev = vec![len; len + 1];
    for i in 0..len {
        next[i] = if i + 1 < len { i + 1 } else { HEAD };
        prev[i] = if i == 0 { len } else { i - 1 };
    }
    next[len] = if len > 0 { 0 } else { HEAD };
    let mut ret_of = vec![0; n];
    for (i, e) in events.iter().enumerate() {
        if !e.is_call {
            ret_of[e.op] = i;
        }
    }
    let mut list = Events { ev: events, next, prev, ret_of };

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut state: State = None;
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut furthest = 0usize;
    let mut furthest_state: State = None;
    // The operation whose return blocked the search at its deepest point.
    let mut blocker: Option<usize> = None;
    let mut steps = 0u64;
    let mut entry = list.first();
    while entry != HEAD {
        steps += 1;
        if steps > budget {
            return KeyVerdict::OutOfBudget;
        }
        let e = list.ev[entry];
        if e.is_call {
            if let Some(new_state) = step(&state, ops[e.op]) {
                let mut lin = linearized.clone();
                lin[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((lin.clone(), new_state.clone())) {
                    stack.push((entry, state.clone()));
                    state = new_state;
                    linearized = lin;
                    if stack.len() > furthest {
                        furthest = stack.len();
                        furthest_state = state.clone();
                    }
                    let ret = list.ret_of[e.op];
                    list.unlink(ret);
                    list.unlink(entry);
                    entry = list.first();
                    continue;
                }
            }
            entry = list.after(entry);
        } else {
            // An operation returned before it could be linearized: undo the
            // last choice and try the next candidate.
            if stack.len() >= furthest {
                blocker = Some(e.op);
            }
            let Some((call_entry, old_state)) = stack.pop() else {
                let stuck = blocker.unwrap_or(e.op);
                return KeyVerdict::Violation(explain(ops, stuck, furthest, &furthest_state));
            };
            let op = list.ev[call_entry].op;
            linearized[op / 64] &= !(1 << (op % 64));
            state = old_state;
            list.relink(call_entry);
            list.relink(list.ret_of[op]);
            entry = list.after(call_entry);
        }
    }
    KeyVerdict::Ok
}

fn explain(ops: &[&Op], stuck: usize, furthest: usize, state: &State) -> String {
    let op = ops[stuck];
    // The operations overlapping the one that could not be placed.
    let mut around: Vec<&Op> =
        ops.iter().copied().filter(|o| o.call <= op.ret && (o.output == Output::Unknown || o.ret >= op.call)).collect();
    around.sort_by_key(|o| o.call);
    around.truncate(20);
    let mut s = format!(
        "at most {furthest} operations could be linearized (register then {state:?}); \
         this operation returned before any order could include it:\n  {op}\nconcurrent operations:\n"
    );
    for o in around {
        s.push_str(&format!("  {o}\n"));
    }
    s
}
