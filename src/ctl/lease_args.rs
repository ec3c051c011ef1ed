//! `lease`'s command line: the subcommands and their flags as clap
//! structs, with cobra's own `-h/--help` (a pflag boolean, so the help
//! text is etcdctl's, from `lease_help`), and etcdctl's argument checks
//! and texts (`leaseFromArgs`, the TTL's `strconv.ParseInt`).
//!
//! Owns parsing only; never sends a request.

use super::cli::bool_value;
use super::exit::CtlError;
use super::gofmt;
use clap::{Args, Subcommand};
use std::ffi::OsString;

/// `lease` (`help` is cobra's `--help[=false]`).
#[derive(Args, Debug)]
pub struct LeaseArgs {
    /// help for lease
    #[arg(short = 'h', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub help: Option<String>,
    #[command(subcommand)]
    pub command: Option<LeaseCommand>,
}

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Creates leases
    #[command(disable_help_flag = true)]
    Grant(LeaseOneArg),
    /// Revokes leases
    #[command(disable_help_flag = true)]
    Revoke(LeaseOneArg),
    /// Get lease information
    #[command(disable_help_flag = true)]
    Timetolive(TimeToLiveArgs),
    /// List all active leases
    #[command(disable_help_flag = true)]
    List(LeaseOneArg),
    /// Keeps leases alive (renew)
    #[command(name = "keep-alive", disable_help_flag = true)]
    KeepAlive(KeepAliveArgs),
    /// An unknown subcommand: cobra shows `lease`'s help.
    #[command(external_subcommand)]
    Other(Vec<OsString>),
}

#[derive(Args, Debug, Default)]
pub struct LeaseOneArg {
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    #[arg(short = 'h', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub help: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct TimeToLiveArgs {
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    #[arg(short = 'h', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub help: Option<String>,
    /// Get keys attached to this lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub keys: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct KeepAliveArgs {
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
    #[arg(short = 'h', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub help: Option<String>,
    /// Resets the keep-alive time to its original value and exits immediately
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub once: Option<String>,
}

impl LeaseCommand {
    /// The subcommand's name and its `--help` value, if it has one.
    pub fn name_and_help(&self) -> Option<(&'static str, &Option<String>)> {
        Some(match self {
            LeaseCommand::Grant(a) => ("grant", &a.help),
            LeaseCommand::Revoke(a) => ("revoke", &a.help),
            LeaseCommand::Timetolive(a) => ("timetolive", &a.help),
            LeaseCommand::List(a) => ("list", &a.help),
            LeaseCommand::KeepAlive(a) => ("keep-alive", &a.help),
            LeaseCommand::Other(_) => return None,
        })
    }
}

/// `--help` given (and true).
pub fn wants_help(v: &Option<String>) -> Result<bool, CtlError> {
    bool_value(v, "--help")
}

fn text(a: &OsString) -> String {
    a.to_string_lossy().into_owned()
}

/// etcdctl's `leaseFromArgs`: a hex id (sign allowed, no `0x`).
pub fn lease_id(arg: &OsString) -> Result<i64, CtlError> {
    gofmt::parse_int(&text(arg), 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

/// `lease grant`'s single decimal TTL.
pub fn grant_ttl(args: &[OsString]) -> Result<i64, CtlError> {
    let [ttl] = args else { return Err(CtlError::bad_args("lease grant command needs TTL argument")) };
    gofmt::parse_int(&text(ttl), 10).map_err(|e| CtlError::bad_args(format!("bad TTL ({e})")))
}

/// The one lease id of `revoke`, `timetolive` and `keep-alive` (`missing`
/// is each command's text for a wrong argument count).
pub fn one_id(args: &[OsString], missing: &str) -> Result<i64, CtlError> {
    let [id] = args else { return Err(CtlError::bad_args(missing)) };
    lease_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::exit::EXIT_BAD_ARGS;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn ids_and_ttls_parse_as_etcdctl_does() {
        assert_eq!(one_id(&os(&["168CA2516D549020"]), "x"), Ok(0x168ca2516d549020));
        assert_eq!(one_id(&os(&["-000000000000005"]), "x"), Ok(-5));
        assert_eq!(
            one_id(&os(&["0x10"]), "x").unwrap_err().message,
            "bad lease ID arg (strconv.ParseInt: parsing \"0x10\": invalid syntax), expecting ID in Hex"
        );
        assert_eq!(one_id(&os(&["1", "2"]), "needs 1").unwrap_err(), CtlError::new(EXIT_BAD_ARGS, "needs 1"));
        assert_eq!(grant_ttl(&os(&["-5"])), Ok(-5));
        assert_eq!(grant_ttl(&os(&["10", "20"])).unwrap_err().message, "lease grant command needs TTL argument");
        assert_eq!(
            grant_ttl(&os(&["9223372036854775808"])).unwrap_err().message,
            "bad TTL (strconv.ParseInt: parsing \"9223372036854775808\": value out of range)"
        );
    }
}
