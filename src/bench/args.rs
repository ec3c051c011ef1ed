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
