//! The raftkv server: `raftkv --config config/single.toml [flags]`.
//!
//! Flags override the file. SIGTERM or SIGINT stops the node in order
//! (no new requests, requests in flight finish, everything flushed) and the
//! process exits 0; a failure of the node's storage exits 1.

use clap::Parser;
use raftkv::node::Node;
use raftkv::server::config::RawConfig;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "raftkv", version, about = "A strongly consistent key-value store with etcd v3 semantics")]
struct Args {
    /// TOML configuration file; flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Member name.
    #[arg(long)]
    name: Option<String>,
    /// Data directory (relative paths are relative to the working directory).
    #[arg(long)]
    data_dir: Option<String>,
    /// Address for clients, HOST:PORT.
    #[arg(long)]
    listen_client: Option<String>,
    /// Address for peers, HOST:PORT.
    #[arg(long)]
    listen_peer: Option<String>,
    /// Peer address other members dial, if not listen-peer (e.g. a proxy).
    #[arg(long)]
    advertise_peer: Option<String>,
    /// Initial cluster: NAME=HOST:PORT,...
    #[arg(long)]
    initial_cluster: Option<String>,
    /// "new" to bootstrap a new cluster from --initial-cluster, "existing"
    /// to join a running one (after `raftkvctl member add`).
    #[arg(long)]
    initial_cluster_state: Option<String>,
    /// Refuse membership changes that would leave too few started members
    /// for a quorum (true or false).
    #[arg(long)]
    strict_reconfig_check: Option<bool>,
    /// Learners the cluster may hold at once.
    #[arg(long)]
    max_learners: Option<u64>,
    /// Heartbeat interval in milliseconds (one Raft tick).
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Election timeout in milliseconds.
    #[arg(long)]
    election_ms: Option<u64>,
    /// Applied entries between log compactions.
    #[arg(long)]
    snapshot_count: Option<u64>,
    /// Entries kept after a log compaction for slow followers.
    #[arg(long)]
    snapshot_catchup_entries: Option<u64>,
    /// Backend size quota in bytes.
    #[arg(long)]
    quota_bytes: Option<u64>,
    /// Largest client request in bytes.
    #[arg(long)]
    max_request_bytes: Option<u64>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long)]
    log_level: Option<String>,
    /// Time a request may take before it fails, in milliseconds.
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Idle client connections are closed after this many milliseconds.
    #[arg(long)]
    client_idle_timeout_ms: Option<u64>,
    /// Idle watchers that asked for progress notifications get one this
    /// often, in milliseconds (etcd's default: 10 minutes).
    #[arg(long)]
    watch_progress_notify_interval_ms: Option<u64>,
    /// How often the leader compares every member's HashKV, in
    /// milliseconds (0: never; a mismatch raises the CORRUPT alarm).
    #[arg(long)]
    corrupt_check_interval_ms: Option<u64>,
    /// The leader promotes a learner once it is in sync (true or false).
    #[arg(long)]
    auto_promote_learners: Option<bool>,
}

impl Args {
    fn flags(&self) -> RawConfig {
        RawConfig {
            name: self.name.clone(),
            data_dir: self.data_dir.clone(),
            listen_client: self.listen_client.clone(),
            listen_peer: self.listen_peer.clone(),
            advertise_peer: self.advertise_peer.clone(),
            initial_cluster: self.initial_cluster.clone(),
            initial_cluster_state: self.initial_cluster_state.clone(),
            strict_reconfig_check: self.strict_reconfig_check,
            max_learners: self.max_learners,
            heartbeat_ms: self.heartbeat_ms,
            election_ms: self.election_ms,
            snapshot_count: self.snapshot_count,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            quota_bytes: self.quota_bytes,
            max_request_bytes: self.max_request_bytes,
            log_level: self.log_level.clone(),
            request_timeout_ms: self.request_timeout_ms,
            client_idle_timeout_ms: self.client_idle_timeout_ms,
            max_client_connections: None,
            watch_progress_notify_interval_ms: self.watch_progress_notify_interval_ms,
            corrupt_check_interval_ms: self.corrupt_check_interval_ms,
            auto_promote_learners: self.auto_promote_learners,
        }
    }
}

fn main() -> ExitCode {
    // glibc gives each busy thread its own malloc arena and keeps freed
    // memory in them; a handful of arenas keeps resident memory close to
    // what is actually used.
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let args = Args::parse();
    let file = match &args.config {
        Some(path) => match RawConfig::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("raftkv: {e}");
                return ExitCode::from(2);
            }
        },
        None => RawConfig::default(),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let cfg = match file.overridden_by(args.flags()).validate(&cwd) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftkv: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(&cfg.log_level))
        .format_timestamp_millis()
        .init();

    let signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("raftkv: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    let node = match Node::start(&cfg) {
        Ok(n) => n,
        Err(e) => {
            log::error!("cannot start: {e}");
            eprintln!("raftkv: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let (sig_tx, sig_rx) = crossbeam_channel::bounded(1);
    let handle = signals.handle();
    std::thread::spawn(move || {
        let mut signals = signals;
        if let Some(sig) = signals.forever().next() {
            let _ = sig_tx.send(sig);
        }
    });
    let code = crossbeam_channel::select! {
        recv(sig_rx) -> sig => {
            log::info!("signal {} received: stopping", sig.unwrap_or(0));
            ExitCode::SUCCESS
        }
        recv(node.failures()) -> why => {
            log::error!("stopping after a failure: {}", why.unwrap_or_default());
            ExitCode::from(1)
        }
    };
    handle.close();
    node.stop();
    code
}
