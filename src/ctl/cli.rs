//! raftkvctl's command line: etcdctl's command names and flag spellings,
//! parsed with clap, and clap's errors turned into cobra's texts.
//!
//! Owns the flag definitions and their Go-style value parsing (`--limit`
//! as `strconv.ParseInt`, durations as `time.ParseDuration`, booleans as
//! pflag does: `--prefix`, `--prefix=false`). Never runs a command.
//!
//! Flags are taken as strings and converted afterwards, so a bad value gets
//! pflag's message (`invalid argument "abc" for "--limit" flag: ...`).

use super::exit::{CtlError, EXIT_ERROR};
use super::gofmt;
use super::lease_args::LeaseArgs;
use super::ops::{DelFlags, GetFlags, PutFlags};
use super::watch_args::WatchFlags;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

/// An etcdctl look-alike for raftkv.
#[derive(Parser, Debug)]
#[command(name = "raftkvctl", version, about = "A simple command line client for raftkv (etcdctl compatible)")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// etcdctl's global flags (accepted before or after the command).
#[derive(Args, Debug, Default)]
pub struct GlobalArgs {
    /// gRPC endpoints (comma-separated HOST:PORT) [default: 127.0.0.1:2379]
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "ENDPOINTS")]
    pub endpoints: Vec<String>,
    /// dial timeout for client connections [default: 2s]
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "DURATION")]
    pub dial_timeout: Option<String>,
    /// timeout for short running command (excluding dial timeout) [default: 5s]
    #[arg(long, global = true, allow_hyphen_values = true, value_name = "DURATION")]
    pub command_timeout: Option<String>,
    /// set the output format (fields, json, protobuf, simple, table) [default: simple]
    #[arg(short = 'w', long, global = true, allow_hyphen_values = true, value_name = "FORMAT")]
    pub write_out: Option<String>,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub hex: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Puts the given key into the store
    Put(PutArgs),
    /// Gets the key or a range of keys
    Get(GetArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(TxnArgs),
    /// Compacts the event history in etcd
    Compaction(CompactionArgs),
    /// Watches events stream on keys or prefixes
    #[command(
        override_usage = "raftkvctl watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]"
    )]
    Watch(WatchArgs),
    /// Lease related commands
    #[command(disable_help_flag = true)]
    Lease(LeaseArgs),
    /// Endpoint related commands
    Endpoint(EndpointArgs),
    /// Membership related commands
    Member(MemberArgs),
    /// Alarm related commands
    Alarm(AlarmArgs),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag(DefragArgs),
    /// Transfers leadership to another etcd cluster member.
    #[command(override_usage = "raftkvctl move-leader <transferee-member-id>")]
    MoveLeader(IdArgs),
    /// Manages etcd node snapshots
    Snapshot(SnapshotArgs),
    /// commands for checking properties of the etcd cluster
    Check(CheckArgs),
    /// Prints the version of raftkvctl
    Version,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PutArgs {
    /// <key> [value] (the value is read from stdin when omitted)
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// lease ID (in hexadecimal) to attach to the key [default: 0]
    #[arg(long, allow_hyphen_values = true, value_name = "ID")]
    pub lease: Option<String>,
    /// return the previous key-value pair before modification
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prev_kv: Option<String>,
    /// updates the key using its current value
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ignore_value: Option<String>,
    /// updates the key using its current lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ignore_lease: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct GetArgs {
    /// <key> [range_end]
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// Linearizable(l) or Serializable(s) [default: l]
    #[arg(long, allow_hyphen_values = true, value_name = "l|s")]
    pub consistency: Option<String>,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, allow_hyphen_values = true, value_name = "ORDER")]
    pub order: Option<String>,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, allow_hyphen_values = true, value_name = "TARGET")]
    pub sort_by: Option<String>,
    /// Maximum number of results [default: 0]
    #[arg(long, allow_hyphen_values = true, value_name = "N")]
    pub limit: Option<String>,
    /// Specify the kv revision [default: 0]
    #[arg(long, allow_hyphen_values = true, value_name = "REV")]
    pub rev: Option<String>,
    /// Get keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prefix: Option<String>,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub from_key: Option<String>,
    /// Get only the keys
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub keys_only: Option<String>,
    /// Get only the count (with --write-out=fields, as etcdctl 3.5)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub count_only: Option<String>,
    /// Only write values when using the "simple" output format
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub print_value_only: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DelArgs {
    /// <key> [range_end]
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// delete keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prefix: Option<String>,
    /// return deleted key-value pairs
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prev_kv: Option<String>,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub from_key: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct TxnArgs {
    /// (none: the transaction is read from stdin)
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// Input transaction in interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub interactive: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct WatchArgs {
    /// [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// Interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub interactive: Option<String>,
    /// Watch on a prefix if prefix is set
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prefix: Option<String>,
    /// Revision to start watching [default: 0]
    #[arg(long, allow_hyphen_values = true, value_name = "REV")]
    pub rev: Option<String>,
    /// get the previous key-value pair before the event happens
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prev_kv: Option<String>,
    /// get periodic watch progress notification from server (as etcdctl 3.5)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub progress_notify: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CompactionArgs {
    /// <revision>
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub physical: Option<String>,
}

#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub cluster: Option<String>,
    #[command(subcommand)]
    pub command: EndpointCommand,
}

#[derive(Args, Debug)]
pub struct MemberArgs {
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Lists all members in the cluster
    List,
    /// Adds a member into the cluster
    #[command(override_usage = "raftkvctl member add <memberName> [options]")]
    Add(MemberAddArgs),
    /// Removes a member from the cluster
    #[command(override_usage = "raftkvctl member remove <memberID>")]
    Remove(IdArgs),
    /// Updates a member in the cluster
    #[command(override_usage = "raftkvctl member update <memberID> [options]")]
    Update(MemberUpdateArgs),
    /// Promotes a non-voting member in the cluster
    #[command(override_usage = "raftkvctl member promote <memberID>")]
    Promote(IdArgs),
}

#[derive(Args, Debug)]
pub struct AlarmArgs {
    #[command(subcommand)]
    pub command: AlarmCommand,
}

#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Disarms all alarms
    Disarm(IdArgs),
    /// Lists all alarms
    List(IdArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub cluster: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct HashkvArgs {
    /// maximum revision to hash (default: all revisions)
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(subcommand)]
    pub command: CheckCommand,
}

#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// Check the performance of the etcd cluster
    #[command(override_usage = "raftkvctl check perf [options]")]
    Perf(CheckPerfArgs),
}

#[derive(Args, Debug, Clone)]
pub struct CheckPerfArgs {
    /// The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
    #[arg(long, default_value = "s")]
    pub load: String,
    /// The prefix for writing the performance check's keys.
    #[arg(long, default_value = "/etcdctl-check-perf/")]
    pub prefix: String,
    /// Compact storage with last revision after test is finished.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub auto_compact: Option<String>,
    /// Defragment storage after test is finished.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub auto_defrag: Option<String>,
    /// How long the load runs (raftkv's, for tests; etcdctl's is 60 s).
    #[arg(long, default_value_t = 60, hide = true)]
    pub duration_secs: u64,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Restores an etcd member snapshot to an etcd directory
    #[command(override_usage = "raftkvctl snapshot restore <filename> [options]")]
    Restore(SnapshotRestoreArgs),
    /// Stores an etcd node backend snapshot to a given file
    #[command(override_usage = "raftkvctl snapshot save <filename>")]
    Save(IdArgs),
    /// Gets backend snapshot status of a given file
    #[command(override_usage = "raftkvctl snapshot status <filename>")]
    Status(IdArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct SnapshotRestoreArgs {
    pub args: Vec<String>,
    /// Path to the data directory
    #[arg(long, default_value = "")]
    pub data_dir: String,
    /// Path to the WAL directory (use --data-dir if none given)
    #[arg(long, default_value = "")]
    pub wal_dir: String,
    /// Initial cluster configuration for restore bootstrap
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Human-readable name for this member
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub skip_hash_check: Option<String>,
}

/// Positional arguments checked by the command (etcdctl's messages).
#[derive(Args, Debug, Clone, Default)]
pub struct IdArgs {
    pub args: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct MemberAddArgs {
    pub args: Vec<String>,
    /// comma separated peer URLs for the new member.
    #[arg(long)]
    pub peer_urls: Option<String>,
    /// indicates if the new member is raft learner
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub learner: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct MemberUpdateArgs {
    pub args: Vec<String>,
    /// comma separated peer URLs for the updated member.
    #[arg(long)]
    pub peer_urls: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv(HashkvArgs),
}

/// pflag's message for a value that does not parse.
fn invalid(value: &str, flag: &str, err: String) -> CtlError {
    CtlError::new(EXIT_ERROR, format!("invalid argument {} for \"{flag}\" flag: {err}", gofmt::quote(value.as_bytes())))
}

pub fn bool_value(v: &Option<String>, flag: &str) -> Result<bool, CtlError> {
    match v {
        None => Ok(false),
        Some(s) => gofmt::parse_bool(s).map_err(|e| invalid(s, flag, e)),
    }
}

fn int_value(v: &Option<String>, flag: &str) -> Result<i64, CtlError> {
    match v {
        None => Ok(0),
        Some(s) => gofmt::parse_int(s, 10).map_err(|e| invalid(s, flag, e)),
    }
}

pub fn duration_value(v: &Option<String>, flag: &str, default: Duration) -> Result<Duration, CtlError> {
    match v {
        None => Ok(default),
        Some(s) => gofmt::parse_duration(s).map_err(|e| invalid(s, flag, e)),
    }
}

/// Positional arguments as raw bytes (keys and values need not be UTF-8).
pub fn raw_args(args: &[OsString]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.clone().into_vec()).collect()
}

impl GetArgs {
    pub fn flags(&self) -> Result<GetFlags, CtlError> {
        Ok(GetFlags {
            consistency: self.consistency.clone().unwrap_or_else(|| "l".to_string()),
            order: self.order.clone().unwrap_or_default(),
            sort_by: self.sort_by.clone().unwrap_or_default(),
            limit: int_value(&self.limit, "--limit")?,
            prefix: bool_value(&self.prefix, "--prefix")?,
            from_key: bool_value(&self.from_key, "--from-key")?,
            rev: int_value(&self.rev, "--rev")?,
            keys_only: bool_value(&self.keys_only, "--keys-only")?,
            count_only: bool_value(&self.count_only, "--count-only")?,
            print_value_only: bool_value(&self.print_value_only, "--print-value-only")?,
        })
    }
}

impl PutArgs {
    pub fn flags(&self) -> Result<PutFlags, CtlError> {
        Ok(PutFlags {
            lease: self.lease.clone().unwrap_or_else(|| "0".to_string()),
            prev_kv: bool_value(&self.prev_kv, "--prev-kv")?,
            ignore_value: bool_value(&self.ignore_value, "--ignore-value")?,
            ignore_lease: bool_value(&self.ignore_lease, "--ignore-lease")?,
        })
    }
}

impl WatchArgs {
    /// The flags, checked as pflag does while parsing (exit 1).
    pub fn flags(&self) -> Result<(bool, WatchFlags), CtlError> {
        Ok((
            bool_value(&self.interactive, "--interactive")?,
            WatchFlags {
                prefix: bool_value(&self.prefix, "--prefix")?,
                rev: int_value(&self.rev, "--rev")?,
                prev_kv: bool_value(&self.prev_kv, "--prev-kv")?,
                progress_notify: bool_value(&self.progress_notify, "--progress-notify")?,
            },
        ))
    }
}

impl DelArgs {
    pub fn flags(&self) -> Result<DelFlags, CtlError> {
        Ok(DelFlags {
            prefix: bool_value(&self.prefix, "--prefix")?,
            prev_kv: bool_value(&self.prev_kv, "--prev-kv")?,
            from_key: bool_value(&self.from_key, "--from-key")?,
        })
    }
}

/// What parsing the command line gave.
pub enum Parsed {
    Run(Box<Cli>),
    /// `--help` / `--version`: print this to stdout, exit 0.
    Info(String),
    Fail(CtlError),
}

/// Parses `argv` (program name first).
pub fn parse(argv: Vec<OsString>) -> Parsed {
    match Cli::try_parse_from(argv.clone()) {
        Ok(cli) => Parsed::Run(Box::new(cli)),
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Parsed::Info(e.to_string()),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
                Parsed::Info(e.render().to_string())
            }
            _ => Parsed::Fail(cobra_error(&e, &argv, "raftkvctl")),
        },
    }
}

fn context(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => v.first().cloned(),
        other => Some(other.to_string()),
    }
}

/// cobra's text for a command-line error (exit code 1).
pub fn cobra_error(e: &clap::Error, argv: &[OsString], program: &str) -> CtlError {
    let arg = context(e, ContextKind::InvalidArg).unwrap_or_default();
    // clap names the argument as "--flag <VALUE>": keep the flag.
    let flag = arg.split([' ', '=']).next().unwrap_or("").to_string();
    let message = match e.kind() {
        ErrorKind::UnknownArgument => unknown_flag(&flag, argv),
        ErrorKind::InvalidSubcommand => {
            let cmd = context(e, ContextKind::InvalidSubcommand).unwrap_or(arg);
            format!(
                "unknown command {} for {}\nRun '{program} --help' for usage.",
                gofmt::quote(cmd.as_bytes()),
                gofmt::quote(program.as_bytes())
            )
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::WrongNumberOfValues => {
            if let Some(short) = short_form(&flag, argv) {
                format!("flag needs an argument: '{short}' in -{short}")
            } else {
                format!("flag needs an argument: {flag}")
            }
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("").trim_start_matches("error: ").to_string();
            first
        }
    };
    CtlError::new(EXIT_ERROR, message)
}

/// The short spelling the user typed for `flag`, if any (`-w` for
/// `--write-out`).
fn short_form(flag: &str, argv: &[OsString]) -> Option<char> {
    let short = match flag {
        "--write-out" => 'w',
        "--interactive" => 'i',
        f if f.len() == 2 && f.starts_with('-') => f.chars().nth(1)?,
        _ => return None,
    };
    argv.iter().any(|a| a.to_str() == Some(&format!("-{short}"))).then_some(short)
}

/// cobra's `unknown flag: --bogus` / `unknown shorthand flag: 'l' in
/// -leadingdash` (clap reports only the first letter of a short cluster).
fn unknown_flag(flag: &str, argv: &[OsString]) -> String {
    if flag.starts_with("--") {
        return format!("unknown flag: {flag}");
    }
    let letter = flag.trim_start_matches('-').chars().next().unwrap_or('?');
    let whole = argv
        .iter()
        .filter_map(|a| a.to_str())
        .find(|a| a.starts_with('-') && !a.starts_with("--") && a[1..].contains(letter))
        .unwrap_or(flag);
    format!("unknown shorthand flag: '{letter}' in {whole}")
}
