//! Unit tests of the linearizability checker used by the fault tests.
mod common;

use common::linearizability::*;

fn op(client: usize, input: Input, output: Output, call: u64, ret: u64) -> Op {
    Op { client, key: "k".into(), input, output, call, ret }
}

fn put(v: &str) -> Input {
    Input::Put(v.into())
}

fn val(v: Option<&str>) -> Output {
    Output::Value(v.map(String::from))
}

fn ok(h: &[Op]) -> bool {
    matches!(check(h, 1_000_000), Verdict::Linearizable)
}

#[test]
fn sequential_history() {
    let h = vec![op(0, put("1"), Output::Ok, 0, 1), op(1, Input::Get, val(Some("1")), 2, 3)];
    assert!(ok(&h));
    let stale = vec![op(0, put("1"), Output::Ok, 0, 1), op(1, Input::Get, val(None), 2, 3)];
    assert!(!ok(&stale), "a read after a completed write must see it");
}

#[test]
fn concurrent_reads_may_see_either() {
    let h = vec![
        op(0, put("1"), Output::Ok, 0, 10),
        op(1, Input::Get, val(None), 1, 2),
        op(2, Input::Get, val(Some("1")), 3, 4),
    ];
    assert!(ok(&h));
    // ...but not go back in time.
    let h = vec![
        op(0, put("1"), Output::Ok, 0, 10),
        op(1, Input::Get, val(Some("1")), 1, 2),
        op(2, Input::Get, val(None), 3, 4),
    ];
    assert!(!ok(&h), "once a read saw the write, a later read cannot miss it");
}

#[test]
fn unknown_writes_may_or_may_not_apply() {
    let h = vec![op(0, put("1"), Output::Unknown, 0, 0), op(1, Input::Get, val(None), 5, 6)];
    assert!(ok(&h));
    let h = vec![op(0, put("1"), Output::Unknown, 0, 0), op(1, Input::Get, val(Some("1")), 5, 6)];
    assert!(ok(&h));
    let h = vec![op(0, put("1"), Output::Unknown, 10, 0), op(1, Input::Get, val(Some("1")), 5, 6)];
    assert!(!ok(&h), "a write cannot be seen before it was made");
}

#[test]
fn compare_and_set() {
    let cas = |e: Option<&str>, n: &str| Input::Cas { expect: e.map(String::from), new: n.into() };
    let h = vec![
        op(0, put("a"), Output::Ok, 0, 1),
        op(1, cas(Some("a"), "b"), Output::CasOk(true), 2, 3),
        op(2, cas(Some("a"), "c"), Output::CasOk(false), 4, 5),
        op(0, Input::Get, val(Some("b")), 6, 7),
    ];
    assert!(ok(&h));
    let h = vec![
        op(0, put("a"), Output::Ok, 0, 1),
        op(1, cas(Some("a"), "b"), Output::CasOk(true), 2, 3),
        op(2, cas(Some("a"), "c"), Output::CasOk(true), 4, 5),
    ];
    assert!(!ok(&h), "two successful CAS from the same value");
}

#[test]
fn keys_are_independent_and_violations_are_explained() {
    let mut h = vec![op(0, put("1"), Output::Ok, 0, 1), op(1, Input::Get, val(None), 2, 3)];
    h[0].key = "x".into();
    h[1].key = "y".into();
    assert!(ok(&h), "different keys do not constrain each other");
    let bad = vec![op(0, put("1"), Output::Ok, 0, 1), op(1, Input::Get, val(Some("2")), 2, 3)];
    match check(&bad, 1000) {
        Verdict::Violation { key, explanation } => {
            assert_eq!(key, "k");
            assert!(explanation.contains("client 1"), "{explanation}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn many_concurrent_writers_stay_fast() {
    // 12 clients, 600 operations, heavy overlap: memoisation keeps it quick.
    let mut h = Vec::new();
    let mut t = 0;
    for round in 0..50u64 {
        for c in 0..12 {
            h.push(op(c, put(&format!("{round}-{c}")), Output::Ok, t + c as u64, t + 20 + c as u64));
        }
        t += 10;
    }
    assert!(ok(&h));
}
