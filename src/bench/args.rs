//! raftkv-bench's command line, modeled on etcd's `benchmark` tool.
//!
//! Owns the flags and their validation; never runs a workload.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A load generator for raftkv, modeled on etcd's benchmark tool. Prints
/// one JSON line of results on stdout.
#[derive(Parser, Debug, Clone)]
#[command(name = "raftkv-bench", version)]
pub struct BenchArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub op: Op,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Endpoints, comma-separated HOST:PORT.
    #[arg(long, global = true, default_value = "127.0.0.1:2379", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// TCP connections (spread over the endpoints).
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Concurrent client threads (spread over the connections).
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Requests in all.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub total: u64,
    /// Key size in bytes.
    #[arg(long, global = true, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, global = true, default_value_t = 256)]
    pub val_size: usize,
    /// Keys are drawn from this many distinct keys (etcd's --key-space-size).
    #[arg(long, global = true, default_value_t = 1, alias = "key-space-size")]
    pub key_space: u64,
    /// Keys in order (request i uses key i mod key-space) instead of random.
    #[arg(long, global = true)]
    pub sequential_keys: bool,
    /// Bound on each request, in milliseconds.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Bound on establishing a connection, in milliseconds.
    #[arg(long, global = true, default_value_t = 2_000)]
    pub dial_timeout_ms: u64,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Op {
    /// Puts of key-size keys and val-size values.
    Put,
    /// Reads of one key, put once before the run.
    Range {
        /// Linearizable (l) or serializable (s) reads.
        #[arg(long, value_enum, default_value_t = Consistency::L)]
        consistency: Consistency,
    },
    /// Transactions of txn-ops puts each (no compares).
    TxnPut {
        /// Puts per transaction (their keys must differ: key-space >= txn-ops).
        #[arg(long, default_value_t = 1)]
        txn_ops: u64,
    },
    /// Watchers on the key space and `total` puts to it (from `clients`
    /// threads over `conns` connections): events delivered per second and
    /// put-to-event latency.
    Watch {
        /// Watchers in all, each on one key of the key space.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Connections the watchers are spread over.
        #[arg(long, default_value_t = 10)]
        watch_conns: usize,
        /// Extra connections with the same watchers that never read.
        #[arg(long, default_value_t = 0)]
        stalled_conns: usize,
        /// Every watcher watches the whole key space (one prefix).
        #[arg(long)]
        prefix: bool,
        /// Puts per second in all (0: as fast as the clients go).
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// `clients` watchers on one key, `total` sequential puts to it: the
    /// latency from just before each put to its event at every watcher.
    WatchLatency,
    /// Like etcd's `lease-keepalive`: `clients` clients (over `conns`
    /// connections) each grant a lease and renew it on a keep-alive stream
    /// as fast as the answers come back, `total` keep-alives in all.
    LeaseKeepalive {
        /// TTL of each client's lease in seconds (etcd's tool grants 100).
        #[arg(long, default_value_t = 100)]
        ttl: i64,
        /// Every keep-alive on a stream of its own, opened for it and
        /// closed after its answer (what etcd 3.4's tool does: it calls
        /// `KeepAliveOnce`).
        #[arg(long)]
        stream_per_keep_alive: bool,
    },
    /// `leases` leases granted (by `clients` threads) and kept alive for
    /// `duration-secs`, each renewed every TTL/`renewals-per-ttl` over
    /// `streams` keep-alive streams: renewal latency and whether any lease
    /// was lost.
    LeaseScale {
        #[command(flatten)]
        scale: LeaseScaleArgs,
        /// How long to keep the leases alive, in seconds (after granting).
        #[arg(long, default_value_t = 120)]
        duration_secs: u64,
        /// Renewals of each lease per TTL.
        #[arg(long, default_value_t = 3)]
        renewals_per_ttl: u32,
    },
    /// Mass expiry: `leases` leases with one key each (under `lx/`), all
    /// renewed once so they expire together, then left to expire: the time
    /// until every key is gone (`secs`: from the first lease's deadline),
    /// and the latency of background puts (`put-rate` puts/s from
    /// `put-clients` threads) from the first key gone until a second after
    /// the last (the line's percentiles) against before the first
    /// (`puts_baseline`).
    LeaseExpiry {
        #[command(flatten)]
        scale: LeaseScaleArgs,
        /// Background puts per second in all (0: none).
        #[arg(long, default_value_t = 1000)]
        put_rate: u64,
        /// Threads the background puts come from.
        #[arg(long, default_value_t = 10)]
        put_clients: usize,
        /// How often the keys left are counted, in milliseconds.
        #[arg(long, default_value_t = 100)]
        poll_ms: u64,
        /// Give up waiting this many seconds after the last lease's deadline.
        #[arg(long, default_value_t = 300)]
        max_wait_secs: u64,
    },
}

/// The flags `lease-scale` and `lease-expiry` share.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct LeaseScaleArgs {
    /// Leases in all.
    #[arg(long, default_value_t = 100_000)]
    pub leases: u64,
    /// TTL of every lease, in seconds.
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
    /// Keep-alive streams the renewals go over (spread over the connections).
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Keep-alives waiting for their answer on one stream, at most.
    #[arg(long, default_value_t = 1000)]
    pub window: usize,
}

impl LeaseScaleArgs {
    fn validate(&self) -> Result<(), String> {
        if self.leases == 0 || self.streams == 0 || self.window == 0 {
            return Err("--leases, --streams and --window must be at least 1".into());
        }
        if self.ttl < 1 {
            return Err("--ttl must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    L,
    S,
}

impl BenchArgs {
    /// The `op` field of the result line.
    pub fn op_name(&self) -> &'static str {
        match self.op {
            Op::Put => "put",
            Op::Range { consistency: Consistency::L } => "range-linearizable",
            Op::Range { consistency: Consistency::S } => "range-serializable",
            Op::TxnPut { .. } => "txn-put",
            Op::Watch { .. } => "watch",
            Op::WatchLatency => "watch-latency",
            Op::LeaseKeepalive { stream_per_keep_alive: false, .. } => "lease-keepalive",
            Op::LeaseKeepalive { stream_per_keep_alive: true, .. } => "lease-keepalive-once",
            Op::LeaseScale { .. } => "lease-scale",
            Op::LeaseExpiry { .. } => "lease-expiry",
        }
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.common;
        if c.conns == 0 || c.clients == 0 {
            return Err("--conns and --clients must be at least 1".into());
        }
        if c.key_space == 0 {
            return Err("--key-space must be at least 1".into());
        }
        if c.key_size == 0 {
            return Err("--key-size must be at least 1".into());
        }
        if c.endpoints.iter().all(|e| e.trim().is_empty()) {
            return Err("--endpoints is empty".into());
        }
        if let Op::Watch { watchers, watch_conns, .. } = self.op {
            if watchers == 0 || watch_conns == 0 {
                return Err("--watchers and --watch-conns must be at least 1".into());
            }
        }
        match &self.op {
            Op::LeaseKeepalive { ttl, .. } if *ttl < 1 => return Err("--ttl must be at least 1".into()),
            Op::LeaseScale { scale, renewals_per_ttl, .. } => {
                scale.validate()?;
                if *renewals_per_ttl < 2 {
                    return Err("--renewals-per-ttl must be at least 2 (one renewal per TTL loses leases)".into());
                }
            }
            Op::LeaseExpiry { scale, put_rate, put_clients, poll_ms, .. } => {
                scale.validate()?;
                if *put_rate > 0 && *put_clients == 0 {
                    return Err("--put-clients must be at least 1 with a --put-rate".into());
                }
                if *poll_ms == 0 {
                    return Err("--poll-ms must be at least 1".into());
                }
            }
            _ => {}
        }
        if let Op::TxnPut { txn_ops } = self.op {
            if txn_ops == 0 {
                return Err("--txn-ops must be at least 1".into());
            }
            if txn_ops > c.key_space {
                return Err(format!(
                    "--txn-ops {txn_ops} needs --key-space of at least {txn_ops} (keys in a txn must differ)"
                ));
            }
        }
        Ok(())
    }
}
