//! `check perf`: etcdctl's quick health check of a cluster's write path.
//!
//! Owns the workload and the verdict, as etcdctl 3.4 has them: puts of
//! 256-byte keys (a random varint under `--prefix`) and 1 KiB values, paced
//! at the load's rate by as many clients as the load names, for 60 s; then
//! the prefix deleted (in 256 ranges: etcdctl's one delete of a large
//! load's keys outlasts the request timeout), and with `--auto-compact` /
//! `--auto-defrag` the store compacted at that revision and every endpoint
//! defragmented. PASS needs
//! no error, more than 90% of the rate, no request slower than 0.5 s and a
//! standard deviation of at most 0.1 s. The progress bar goes to stderr
//! (etcdctl's writes it to stdout); the verdict lines are etcdctl's.

use super::cli::{bool_value, CheckPerfArgs};
use super::exit::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, EXIT_SUCCESS};
use super::print::Output;
use super::settings::Settings;
use crate::client::prefix_end;
use crate::proto::etcdserverpb::{CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest};
use crate::proto::raftkvpb::client_request::Body as Req;
use crossbeam_channel::bounded;
use rand::Rng as _;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// etcdctl's loads: writes per second and clients.
fn load(name: &str) -> Option<(u32, usize)> {
    match name {
        "s" | "small" => Some((150, 50)),
        "m" | "medium" => Some((1000, 200)),
        "l" | "large" => Some((8000, 500)),
        "xl" | "xLarge" => Some((15000, 1000)),
        _ => None,
    }
}

/// How late the pacing may run and still make the puts up.
const SLEEP_SLACK: Duration = Duration::from_millis(5);

/// Connections the clients share (etcdctl gives each client its own).
const CONNECTIONS: usize = 8;

/// What the run measured.
struct Stats {
    latencies: Vec<f64>,
    errors: BTreeMap<String, u64>,
    secs: f64,
}

pub fn perf(s: &Settings, a: &CheckPerfArgs) -> Result<(Output, i32), CtlError> {
    let Some((limit, clients)) = load(&a.load) else {
        return Err(CtlError::new(EXIT_BAD_FEATURE, format!("unknown load option {}", a.load)));
    };
    let auto_compact = bool_value(&a.auto_compact, "--auto-compact")?;
    let auto_defrag = bool_value(&a.auto_defrag, "--auto-defrag")?;
    let duration = Duration::from_secs(a.duration_secs);
    let prefix = a.prefix.as_bytes().to_vec();
    let conns: Vec<crate::client::Client> = (0..CONNECTIONS).map(|_| s.client()).collect::<Result<_, _>>()?;
    let first = &conns[0];
    let taken = RangeRequest {
        key: prefix.clone().into(),
        range_end: prefix_end(&prefix).into(),
        limit: 1,
        ..Default::default()
    };
    let taken = first.range(taken).map_err(|e| CtlError::request(&e))?;
    if !taken.kvs.is_empty() {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!("prefix {:?} has keys. Delete with etcdctl del --prefix {} first", a.prefix, a.prefix),
        ));
    }

    let stats = run(&conns, &prefix, limit, clients, duration);

    let revision = delete_all(first, &prefix)?;
    let mut out = String::new();
    if auto_compact {
        first.compact(CompactionRequest { revision, physical: false }).map_err(|e| CtlError::request(&e))?;
        out.push_str(&format!("compacted revision {revision}\n"));
    }
    if auto_defrag {
        for ep in &s.endpoints {
            let c = s.client_of(std::slice::from_ref(ep))?;
            match c.call(Req::Defragment(DefragmentRequest {})) {
                Ok(_) => out.push_str(&format!("Finished defragmenting etcd member[{ep}]\n")),
                Err(e) => out.push_str(&format!("Failed to defragment etcd member[{ep}] ({e})\n")),
            }
        }
    }
    let (verdict, ok) = verdict(&stats, limit);
    out.push_str(&verdict);
    Ok((Output { stdout: out.into_bytes(), stderr: Vec::new() }, if ok { EXIT_SUCCESS } else { EXIT_ERROR }))
}

/// Deletes every key under `prefix` in 256 ranges (by the byte after the
/// prefix): etcdctl deletes them in one request, which at the large loads
/// (480,000 keys) outlasts the server's request timeout. Returns the
/// revision after the last delete.
fn delete_all(client: &crate::client::Client, prefix: &[u8]) -> Result<i64, CtlError> {
    let mut revision = 0;
    for b in 0..=255u8 {
        let mut key = prefix.to_vec();
        key.push(b);
        let range_end = if b == 255 { prefix_end(prefix) } else { [prefix, &[b + 1]].concat() };
        let d = client
            .delete_range(DeleteRangeRequest { key: key.into(), range_end: range_end.into(), ..Default::default() })
            .map_err(|e| CtlError::request(&e))?;
        revision = d.header.map_or(revision, |h| h.revision);
    }
    Ok(revision)
}

/// Paces puts at `limit` per second for `duration` to `clients` worker
/// threads, which take turns on the connections.
fn run(conns: &[crate::client::Client], prefix: &[u8], limit: u32, clients: usize, duration: Duration) -> Stats {
    let bar = indicatif::ProgressBar::new(duration.as_secs());
    let (tx, rx) = bounded::<PutRequest>(clients);
    let (done_tx, done_rx) = bounded::<Result<f64, String>>(clients * 4);
    let started = Instant::now();
    let stats = std::thread::scope(|scope| {
        for i in 0..clients {
            let (rx, done_tx, client) = (rx.clone(), done_tx.clone(), &conns[i % conns.len()]);
            scope.spawn(move || {
                for put in rx.iter() {
                    let t = Instant::now();
                    let r = client.put(put).map(|_| t.elapsed().as_secs_f64()).map_err(|e| e.to_string());
                    if done_tx.send(r).is_err() {
                        return;
                    }
                }
            });
        }
        drop((rx, done_tx));
        scope.spawn(move || {
            let mut rng = rand::rng();
            let every = Duration::from_secs_f64(1.0 / f64::from(limit));
            // Never ahead of the rate and nothing sent after the duration,
            // however few puts went out. Lateness up to `SLEEP_SLACK` is
            // made up (a thread's sleep overshoots by tens of microseconds
            // here, against 125 us between puts at load l); a longer stall
            // is not (it would hide a server that stalled).
            let mut next = Instant::now();
            loop {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                }
                if Instant::now() >= started + duration {
                    break;
                }
                let now = Instant::now();
                next = (next + every).max(now.checked_sub(SLEEP_SLACK).unwrap_or(now));
                bar.set_position(started.elapsed().as_secs().min(duration.as_secs()));
                // etcd's key: a varint of a random number in 256 bytes.
                let mut key = prefix.to_vec();
                let mut k = [0u8; 256];
                put_varint(&mut k, rng.random_range(0..i64::MAX));
                key.extend_from_slice(&k);
                let put = PutRequest { key: key.into(), value: vec![0u8; 1024].into(), ..Default::default() };
                if tx.send(put).is_err() {
                    break;
                }
            }
            bar.finish_and_clear();
        });
        let mut stats = Stats { latencies: Vec::new(), errors: BTreeMap::new(), secs: 0.0 };
        for r in done_rx.iter() {
            match r {
                Ok(secs) => stats.latencies.push(secs),
                Err(e) => *stats.errors.entry(e).or_default() += 1,
            }
        }
        stats
    });
    Stats { secs: started.elapsed().as_secs_f64(), ..stats }
}

/// Go's `binary.PutVarint` (zig-zag, then 7 bits per byte).
fn put_varint(buf: &mut [u8; 256], v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut i = 0;
    while u >= 0x80 {
        buf[i] = (u as u8) | 0x80;
        u >>= 7;
        i += 1;
    }
    buf[i] = u as u8;
}

/// etcdctl's verdict lines, and whether it passed.
fn verdict(s: &Stats, limit: u32) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    if !s.errors.is_empty() {
        out.push_str("FAIL: too many errors\n");
        for (e, n) in &s.errors {
            out.push_str(&format!("FAIL: ERROR({e}) -> {n}\n"));
        }
        ok = false;
    }
    let rps = if s.secs > 0.0 { s.latencies.len() as f64 / s.secs } else { 0.0 };
    if rps / f64::from(limit) <= 0.9 {
        out.push_str(&format!("FAIL: Throughput too low: {} writes/s\n", rps as i64 + 1));
        ok = false;
    } else {
        out.push_str(&format!("PASS: Throughput is {} writes/s\n", rps as i64 + 1));
    }
    let slowest = s.latencies.iter().copied().fold(0.0, f64::max);
    if slowest > 0.5 {
        out.push_str(&format!("Slowest request took too long: {slowest:.6}s\n"));
        ok = false;
    } else {
        out.push_str(&format!("PASS: Slowest request took {slowest:.6}s\n"));
    }
    let n = s.latencies.len().max(1) as f64;
    let mean = s.latencies.iter().sum::<f64>() / n;
    let stddev = (s.latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt();
    if stddev > 0.1 {
        out.push_str(&format!("Stddev too high: {stddev:.6}s\n"));
        ok = false;
    } else {
        out.push_str(&format!("PASS: Stddev is {stddev:.6}s\n"));
    }
    out.push_str(if ok { "PASS\n" } else { "FAIL\n" });
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_reads_as_etcdctls() {
        let good = Stats { latencies: vec![0.002; 9_000], errors: BTreeMap::new(), secs: 60.0 };
        let (text, ok) = verdict(&good, 150);
        assert!(ok);
        assert_eq!(
            text,
            "PASS: Throughput is 151 writes/s\nPASS: Slowest request took 0.002000s\nPASS: Stddev is 0.000000s\nPASS\n"
        );
        let mut latencies = vec![0.002; 100];
        latencies.push(0.9);
        let bad = Stats { latencies, errors: BTreeMap::from([("boom".to_string(), 2)]), secs: 60.0 };
        let (text, ok) = verdict(&bad, 150);
        assert!(!ok);
        assert!(
            text.starts_with("FAIL: too many errors\nFAIL: ERROR(boom) -> 2\nFAIL: Throughput too low: 2 writes/s\n")
        );
        assert!(text.contains("Slowest request took too long: 0.900000s\n"), "{text}");
        assert!(text.ends_with("FAIL\n"));
    }

    #[test]
    fn keys_are_go_varints() {
        let mut k = [0u8; 256];
        put_varint(&mut k, 1);
        assert_eq!(&k[..2], &[2, 0]);
        put_varint(&mut k, 300);
        assert_eq!(&k[..3], &[0xd8, 0x04, 0]);
    }
}
