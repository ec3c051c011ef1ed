//! A node's configuration: defaults, the TOML file, command-line overrides,
//! and validation that names the offending field.
//!
//! Owns parsing and checking only; it never opens files other than the
//! config file, and never starts anything.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub addr: SocketAddr,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client: SocketAddr,
    pub listen_peer: SocketAddr,
    /// The peer address other members dial (a proxy may sit in front of
    /// `listen_peer`); the one named in `initial_cluster`.
    pub advertise_peer: SocketAddr,
    pub initial_cluster: Vec<Peer>,
    /// Whether a member with an empty data directory bootstraps a new
    /// cluster from `initial_cluster` or joins the existing one (etcd's
    /// `--initial-cluster-state new|existing`).
    pub initial_cluster_state: ClusterState,
    /// etcd's `--strict-reconfig-check` (on by default).
    pub strict_reconfig_check: bool,
    /// Learners the cluster may hold at once (etcd allows 1).
    pub max_learners: usize,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub quota_bytes: u64,
    pub max_request_bytes: usize,
    pub log_level: String,
    pub request_timeout_ms: u64,
    pub client_idle_timeout_ms: u64,
    pub max_client_connections: usize,
    /// etcd's `--experimental-watch-progress-notify-interval`.
    pub watch_progress_notify_interval_ms: u64,
    /// How often the leader compares every member's HashKV (0: never).
    pub corrupt_check_interval_ms: u64,
    /// The leader promotes learners once they are in sync.
    pub auto_promote_learners: bool,
}

/// etcd's `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterState {
    #[default]
    New,
    Existing,
}

/// A configuration error, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(field: &str, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { field: field.to_string(), message: message.into() })
}

/// The file's and the flags' shape: everything optional, kebab-case keys,
/// unknown keys refused.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawConfig {
    pub name: Option<String>,
    pub data_dir: Option<String>,
    pub listen_client: Option<String>,
    pub listen_peer: Option<String>,
    pub advertise_peer: Option<String>,
    pub initial_cluster: Option<String>,
    pub initial_cluster_state: Option<String>,
    pub strict_reconfig_check: Option<bool>,
    pub max_learners: Option<u64>,
    pub heartbeat_ms: Option<u64>,
    pub election_ms: Option<u64>,
    pub snapshot_count: Option<u64>,
    pub snapshot_catchup_entries: Option<u64>,
    pub quota_bytes: Option<u64>,
    pub max_request_bytes: Option<u64>,
    pub log_level: Option<String>,
    pub request_timeout_ms: Option<u64>,
    pub client_idle_timeout_ms: Option<u64>,
    pub max_client_connections: Option<u64>,
    pub watch_progress_notify_interval_ms: Option<u64>,
    pub corrupt_check_interval_ms: Option<u64>,
    pub auto_promote_learners: Option<bool>,
}

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { field: "config".into(), message: format!("{}: {e}", path.display()) })?;
        RawConfig::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            // toml points at the offending value (or key): name the key of
            // that line.
            let field = e
                .span()
                .map(|span| {
                    let line_start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
                    let line = &text[line_start..];
                    let line = line.split('\n').next().unwrap_or(line);
                    line.split('=').next().unwrap_or(line).trim().to_string()
                })
                .filter(|f| !f.is_empty() && f.len() < 64)
                .unwrap_or_else(|| "config".into());
            ConfigError { field, message: e.message().to_string() }
        })
    }

    /// `self` with every field set in `over` replaced.
    pub fn overridden_by(self, over: RawConfig) -> RawConfig {
        macro_rules! pick {
            ($($f:ident),*) => { RawConfig { $($f: over.$f.or(self.$f)),* } };
        }
        pick!(
            name,
            data_dir,
            listen_client,
            listen_peer,
            advertise_peer,
            initial_cluster,
            initial_cluster_state,
            strict_reconfig_check,
            max_learners,
            heartbeat_ms,
            election_ms,
            snapshot_count,
            snapshot_catchup_entries,
            quota_bytes,
            max_request_bytes,
            log_level,
            request_timeout_ms,
            client_idle_timeout_ms,
            max_client_connections,
            watch_progress_notify_interval_ms,
            corrupt_check_interval_ms,
            auto_promote_learners
        )
    }

    /// Applies defaults and checks every field. A relative data dir is
    /// resolved against `cwd`.
    pub fn validate(self, cwd: &Path) -> Result<Config, ConfigError> {
        let name = self.name.unwrap_or_else(|| "default".into());
        if name.is_empty() || name.contains(['=', ',']) || name.chars().any(char::is_whitespace) {
            return err("name", format!("{name:?} must be non-empty, without '=', ',' or spaces"));
        }
        let data_dir = PathBuf::from(self.data_dir.unwrap_or_else(|| format!("{name}.raftkv")));
        if data_dir.as_os_str().is_empty() {
            return err("data-dir", "must not be empty");
        }
        let data_dir = if data_dir.is_absolute() { data_dir } else { cwd.join(data_dir) };
        let listen_client = parse_addr("listen-client", self.listen_client.as_deref().unwrap_or("127.0.0.1:2379"))?;
        let listen_peer = parse_addr("listen-peer", self.listen_peer.as_deref().unwrap_or("127.0.0.1:2380"))?;
        if listen_client == listen_peer {
            return err("listen-peer", format!("{listen_peer} is also the client address"));
        }
        let advertise_peer = match self.advertise_peer.as_deref() {
            Some(a) => parse_addr("advertise-peer", a)?,
            None => listen_peer,
        };
        let initial_cluster = match self.initial_cluster {
            Some(s) => parse_cluster(&s)?,
            None => vec![Peer { name: name.clone(), addr: advertise_peer }],
        };
        match initial_cluster.iter().find(|p| p.name == name) {
            None => return err("initial-cluster", format!("has no member named {name:?} (this node's name)")),
            Some(me) if me.addr != advertise_peer => {
                return err(
                    "initial-cluster",
                    format!("member {name:?} is at {} but this node advertises {advertise_peer}", me.addr),
                )
            }
            Some(_) => {}
        }
        let initial_cluster_state = match self.initial_cluster_state.as_deref().unwrap_or("new") {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => return err("initial-cluster-state", format!("{other:?} is not \"new\" or \"existing\"")),
        };
        let strict_reconfig_check = self.strict_reconfig_check.unwrap_or(true);
        let max_learners = self.max_learners.unwrap_or(1);
        if max_learners > 64 {
            return err("max-learners", format!("{max_learners} is above the maximum of 64"));
        }

        let heartbeat_ms = self.heartbeat_ms.unwrap_or(100);
        if heartbeat_ms == 0 || heartbeat_ms > 10_000 {
            return err("heartbeat-ms", format!("{heartbeat_ms} must be between 1 and 10000"));
        }
        let election_ms = self.election_ms.unwrap_or(1000);
        if election_ms < 5 * heartbeat_ms {
            return err("election-ms", format!("{election_ms} must be at least 5 times heartbeat-ms ({heartbeat_ms})"));
        }
        if election_ms > 50_000 {
            return err("election-ms", format!("{election_ms} is above the maximum of 50000"));
        }
        let snapshot_count = self.snapshot_count.unwrap_or(10_000);
        if snapshot_count == 0 {
            return err("snapshot-count", "must be at least 1");
        }
        let snapshot_catchup_entries = self.snapshot_catchup_entries.unwrap_or(5_000);
        let quota_bytes = self.quota_bytes.unwrap_or(2 * 1024 * 1024 * 1024);
        if quota_bytes < 1024 * 1024 {
            return err("quota-bytes", format!("{quota_bytes} is below the minimum of 1 MiB"));
        }
        let max_request_bytes = self.max_request_bytes.unwrap_or(1_572_864);
        if !(1024..=64 * 1024 * 1024).contains(&max_request_bytes) {
            return err("max-request-bytes", format!("{max_request_bytes} must be between 1 KiB and 64 MiB"));
        }
        let log_level = self.log_level.unwrap_or_else(|| "info".into());
        if !["error", "warn", "info", "debug", "trace", "off"].contains(&log_level.as_str()) {
            return err("log-level", format!("{log_level:?} is not one of error, warn, info, debug, trace, off"));
        }
        let request_timeout_ms = self.request_timeout_ms.unwrap_or(5000 + 2 * election_ms);
        if request_timeout_ms < heartbeat_ms {
            return err("request-timeout-ms", format!("{request_timeout_ms} is shorter than heartbeat-ms"));
        }
        let client_idle_timeout_ms = self.client_idle_timeout_ms.unwrap_or(300_000);
        if client_idle_timeout_ms == 0 {
            return err("client-idle-timeout-ms", "must be at least 1");
        }
        let max_client_connections = self.max_client_connections.unwrap_or(4096);
        if max_client_connections == 0 {
            return err("max-client-connections", "must be at least 1");
        }
        let watch_progress_notify_interval_ms = self.watch_progress_notify_interval_ms.unwrap_or(600_000);
        if watch_progress_notify_interval_ms == 0 {
            return err("watch-progress-notify-interval-ms", "must be at least 1");
        }
        let corrupt_check_interval_ms = self.corrupt_check_interval_ms.unwrap_or(60_000);
        Ok(Config {
            corrupt_check_interval_ms,
            auto_promote_learners: self.auto_promote_learners.unwrap_or(false),
            name,
            data_dir,
            listen_client,
            listen_peer,
            advertise_peer,
            initial_cluster,
            initial_cluster_state,
            strict_reconfig_check,
            max_learners: max_learners as usize,
            heartbeat_ms,
            election_ms,
            snapshot_count,
            snapshot_catchup_entries,
            quota_bytes,
            max_request_bytes: max_request_bytes as usize,
            log_level,
            request_timeout_ms,
            client_idle_timeout_ms,
            max_client_connections: max_client_connections as usize,
            watch_progress_notify_interval_ms,
        })
    }
}

fn parse_addr(field: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    let s = s.trim().trim_start_matches("http://");
    s.parse().map_err(|_| ConfigError { field: field.into(), message: format!("{s:?} is not a HOST:PORT address") })
}

/// Parses `NAME=HOST:PORT,...`.
pub fn parse_cluster(s: &str) -> Result<Vec<Peer>, ConfigError> {
    let mut out: Vec<Peer> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, addr)) = part.split_once('=') else {
            return err("initial-cluster", format!("{part:?} is not NAME=HOST:PORT"));
        };
        let name = name.trim();
        if name.is_empty() {
            return err("initial-cluster", format!("{part:?} has an empty name"));
        }
        let addr = parse_addr("initial-cluster", addr)?;
        if out.iter().any(|p| p.name == name) {
            return err("initial-cluster", format!("member {name:?} appears twice"));
        }
        if out.iter().any(|p| p.addr == addr) {
            return err("initial-cluster", format!("address {addr} appears twice"));
        }
        out.push(Peer { name: name.to_string(), addr });
    }
    if out.is_empty() {
        return err("initial-cluster", "is empty");
    }
    Ok(out)
}

impl Config {
    /// Ticks per election timeout (at least 2 more than a heartbeat).
    pub fn election_ticks(&self) -> usize {
        ((self.election_ms / self.heartbeat_ms) as usize).max(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cwd() -> PathBuf {
        PathBuf::from("/work")
    }

    #[test]
    fn defaults_make_a_single_node() {
        let c = RawConfig::default().validate(&cwd()).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("/work/default.raftkv"));
        assert_eq!(c.initial_cluster, vec![Peer { name: "default".into(), addr: c.listen_peer }]);
        assert_eq!(c.election_ticks(), 10);
        assert_eq!(c.max_request_bytes, 1_572_864);
    }

    #[test]
    fn flags_override_the_file() {
        let file = RawConfig::from_toml("name = \"n1\"\ndata-dir = \"d\"\nheartbeat-ms = 50\n").unwrap();
        let flags = RawConfig { data_dir: Some("/abs".into()), ..Default::default() };
        let c = file.overridden_by(flags).validate(&cwd()).unwrap();
        assert_eq!(c.name, "n1");
        assert_eq!(c.data_dir, PathBuf::from("/abs"));
        assert_eq!(c.heartbeat_ms, 50);
    }

    #[test]
    fn errors_name_the_field() {
        let e = RawConfig::from_toml("heartbeat-ms = \"fast\"\n").unwrap_err();
        assert_eq!(e.field, "heartbeat-ms", "{e}");
        let e = RawConfig::from_toml("hartbeat-ms = 5\n").unwrap_err();
        assert!(e.message.contains("hartbeat-ms"), "{e}");
        let e = RawConfig::from_toml("name = \"a\"\nelection-ms = 100\n").unwrap().validate(&cwd()).unwrap_err();
        assert_eq!(e.field, "election-ms");
        let raw =
            RawConfig { name: Some("n1".into()), initial_cluster: Some("n2=127.0.0.1:1".into()), ..Default::default() };
        assert_eq!(raw.validate(&cwd()).unwrap_err().field, "initial-cluster");
        let raw = RawConfig { listen_client: Some("nowhere".into()), ..Default::default() };
        assert_eq!(raw.validate(&cwd()).unwrap_err().field, "listen-client");
        let raw = RawConfig { log_level: Some("loud".into()), ..Default::default() };
        assert_eq!(raw.validate(&cwd()).unwrap_err().field, "log-level");
    }

    #[test]
    fn cluster_strings() {
        let p = parse_cluster("a=127.0.0.1:1, b=127.0.0.1:2").unwrap();
        assert_eq!(p.len(), 2);
        assert!(parse_cluster("a=127.0.0.1:1,a=127.0.0.1:2").is_err());
        assert!(parse_cluster("a=127.0.0.1:1,b=127.0.0.1:1").is_err());
        assert!(parse_cluster("a127.0.0.1:1").is_err());
        assert!(parse_cluster("").is_err());
    }
}
