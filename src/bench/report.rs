//! The result of a run: latencies in an HDR histogram and the one JSON
//! line raftkv-bench prints.
//!
//! Owns the histogram bounds (1 µs to 60 s, 3 significant digits: a fixed
//! size whatever the number of requests) and the line's fields and order.
//! Never measures anything itself.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Latencies in microseconds.
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Latencies {
    pub fn new() -> Latencies {
        // Constant bounds, valid by hdrhistogram's rules (low >= 1,
        // high >= 2 * low, sigfig <= 5): this cannot fail.
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid");
        Latencies { hist }
    }

    pub fn record(&mut self, d: Duration) {
        self.hist.saturating_record(d.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    fn ms_at(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        round3(self.hist.value_at_quantile(q) as f64 / 1000.0)
    }

    fn max_ms(&self) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        round3(self.hist.max() as f64 / 1000.0)
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The JSON line, fields in this order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub op: String,
    pub conns: usize,
    pub clients: usize,
    pub total: u64,
    pub secs: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    /// Fields of one workload's own, after the common ones (the lease
    /// workloads'); none for the others.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// `ops_per_sec` counts successful requests only.
    pub fn new(
        op: &str,
        conns: usize,
        clients: usize,
        total: u64,
        elapsed: Duration,
        lat: &Latencies,
        errors: u64,
    ) -> Report {
        let secs = elapsed.as_secs_f64();
        let ok = lat.count();
        Report {
            op: op.to_string(),
            conns,
            clients,
            total,
            secs: round3(secs),
            ops_per_sec: if secs > 0.0 { (ok as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
            p50_ms: lat.ms_at(0.5),
            p90_ms: lat.ms_at(0.9),
            p99_ms: lat.ms_at(0.99),
            p999_ms: lat.ms_at(0.999),
            max_ms: lat.max_ms(),
            errors,
            extra: serde_json::Map::new(),
        }
    }

    /// Adds a field of the workload's own at the end of the line.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Report {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// The same percentiles as the line's, for a field of `with`.
    pub fn summary_ms(lat: &Latencies) -> serde_json::Value {
        serde_json::json!({
            "count": lat.count(),
            "p50_ms": lat.ms_at(0.5),
            "p99_ms": lat.ms_at(0.99),
            "max_ms": lat.max_ms(),
        })
    }

    pub fn json_line(&self) -> String {
        // Serialising plain numbers and a string cannot fail.
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_every_field_in_order() {
        let mut lat = Latencies::new();
        for ms in 1..=1000u64 {
            lat.record(Duration::from_micros(ms * 1000));
        }
        let r = Report::new("put", 10, 100, 1000, Duration::from_secs(2), &lat, 0);
        let line = r.json_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let keys: Vec<String> =
            serde_json::from_str::<serde_json::Value>(&line).unwrap().as_object().unwrap().keys().cloned().collect();
        let order = [
            "op",
            "conns",
            "clients",
            "total",
            "secs",
            "ops_per_sec",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "errors",
        ];
        // serde_json's map sorts keys; check the set here and the order in the text.
        assert_eq!(keys.len(), order.len());
        let positions: Vec<usize> = order.iter().map(|k| line.find(&format!("\"{k}\":")).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
        assert_eq!(r.ops_per_sec, 500.0);
        assert!((r.p50_ms - 500.0).abs() < 1.0, "{}", r.p50_ms);
        assert!((r.p99_ms - 990.0).abs() < 1.5, "{}", r.p99_ms);
        assert!((r.max_ms - 1000.0).abs() < 1.5, "{}", r.max_ms);
    }

    #[test]
    fn extra_fields_follow_the_common_ones() {
        let mut lat = Latencies::new();
        lat.record(Duration::from_millis(2));
        let r = Report::new("lease-scale", 1, 4, 10, Duration::from_secs(1), &lat, 0)
            .with("leases", 100_000)
            .with("grant", Report::summary_ms(&lat));
        let line = r.json_line();
        assert!(line.find("\"errors\":").unwrap() < line.find("\"leases\":100000").unwrap(), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["grant"]["count"], 1);
        assert_eq!(v["grant"]["p99_ms"], 2.0);
    }

    #[test]
    fn an_empty_run_reports_zeros() {
        let r = Report::new("range-serializable", 1, 1, 0, Duration::ZERO, &Latencies::new(), 0);
        assert_eq!((r.ops_per_sec, r.p50_ms, r.max_ms), (0.0, 0.0, 0.0));
    }
}
