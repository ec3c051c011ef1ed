//! The global settings of one raftkvctl run: endpoints, timeouts, output
//! format and `--hex`, from flags, then `ETCDCTL_*` environment variables
//! (as etcdctl reads them), then defaults. Makes the clients.
//!
//! Owns only the settings; never sends a request.

use super::cli::{bool_value, duration_value, GlobalArgs};
use super::exit::{CtlError, EXIT_BAD_CONNECTION};
use super::print::{Format, Printer};
use crate::client::{Client, ClientOptions};
use std::time::Duration;

pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";

#[derive(Debug, Clone)]
pub struct Settings {
    /// As given (an `http://` prefix is kept for display).
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub write_out: String,
    pub hex: bool,
}

/// A flag's value, or the `ETCDCTL_<NAME>` environment variable when the
/// flag is absent.
fn or_env(flag: &Option<String>, env: &str) -> Option<String> {
    flag.clone().or_else(|| std::env::var(env).ok())
}

impl Settings {
    pub fn from_args(g: &GlobalArgs) -> Result<Settings, CtlError> {
        let listed: Vec<String> = if g.endpoints.is_empty() {
            std::env::var("ETCDCTL_ENDPOINTS").map(|v| vec![v]).unwrap_or_else(|_| vec![DEFAULT_ENDPOINT.to_string()])
        } else {
            g.endpoints.clone()
        };
        // pflag's string slices: comma-separated, repeatable.
        let endpoints = listed.iter().flat_map(|e| e.split(',')).map(str::to_string).collect();
        Ok(Settings {
            endpoints,
            dial_timeout: duration_value(
                &or_env(&g.dial_timeout, "ETCDCTL_DIAL_TIMEOUT"),
                "--dial-timeout",
                Duration::from_secs(2),
            )?,
            command_timeout: duration_value(
                &or_env(&g.command_timeout, "ETCDCTL_COMMAND_TIMEOUT"),
                "--command-timeout",
                Duration::from_secs(5),
            )?,
            write_out: or_env(&g.write_out, "ETCDCTL_WRITE_OUT").unwrap_or_else(|| "simple".to_string()),
            hex: bool_value(&or_env(&g.hex, "ETCDCTL_HEX"), "--hex")?,
        })
    }

    /// The printer; an unknown format fails here (exit 4), before any
    /// request, as etcdctl checks it when making its client.
    pub fn printer(&self) -> Result<Printer, CtlError> {
        Ok(Printer { format: Format::parse(&self.write_out)?, hex: self.hex })
    }

    /// A client of every endpoint. It dials lazily: an unreachable cluster
    /// shows as `context deadline exceeded` after `--command-timeout`, as
    /// with etcdctl.
    pub fn client(&self) -> Result<Client, CtlError> {
        self.client_of(&self.endpoints)
    }

    /// A client of the given endpoints only.
    pub fn client_of(&self, endpoints: &[String]) -> Result<Client, CtlError> {
        let opts = ClientOptions {
            dial_timeout: self.dial_timeout,
            request_timeout: self.command_timeout,
            ..ClientOptions::default()
        };
        Client::new_lazy(endpoints, opts).map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.to_string()))
    }
}
