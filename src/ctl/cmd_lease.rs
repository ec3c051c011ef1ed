//! `lease grant|revoke|timetolive|list|keep-alive`: etcdctl 3.4's lease
//! commands, with its help texts, error texts and exit codes.
//!
//! Owns each subcommand's order of checks (flags, arguments, output
//! format, request, printing: so `-w table` fails after the request, as in
//! etcdctl), the wording of request failures (`failed to grant lease
//! (...)`, exit 1, or the bare error with exit 2, per command), and the
//! endless loop of a continuous keep-alive, which prints each renewal as
//! it comes and ends, exit 0, when the lease is lost. Installs no signal
//! handler: like etcdctl, a keep-alive runs until it is killed. Never
//! formats a response itself (`print` does).

use super::cli::bool_value;
use super::exit::{CtlError, EXIT_BAD_CONNECTION, EXIT_ERROR, EXIT_SUCCESS};
use super::lease_args::{self, KeepAliveArgs, LeaseArgs, LeaseCommand, LeaseOneArg, TimeToLiveArgs};
use super::print::{simple, Format, Output, Printer};
use super::settings::Settings;
use super::{emit, fail, lease_help, Io};
use crate::client::{KeepAliveEvent, KeepAliveRecvError};
use std::time::Duration;

/// How long one wait for the next renewal lasts before waiting again.
const WAIT_SLICE: Duration = Duration::from_secs(3600);

const PROGRAM: &str = "raftkvctl";

/// Runs a `lease` command line; returns the exit code.
pub fn lease(s: &Settings, a: &LeaseArgs, io: &mut Io<'_>) -> i32 {
    match run(s, a, io) {
        Ok(code) => code,
        Err(e) => fail(io, &e),
    }
}

fn run(s: &Settings, a: &LeaseArgs, io: &mut Io<'_>) -> Result<i32, CtlError> {
    let help = |io: &mut Io<'_>, text: String| {
        emit(io, &Output { stdout: text.into_bytes(), stderr: Vec::new() });
        Ok(EXIT_SUCCESS)
    };
    let parent_help = lease_args::wants_help(&a.help)?;
    let Some(cmd) = a.command.as_ref().filter(|_| !parent_help) else {
        return help(io, lease_help::lease(PROGRAM));
    };
    // cobra shows the parent's help for an unknown subcommand, exit 0.
    let Some((name, sub_help)) = cmd.name_and_help() else { return help(io, lease_help::lease(PROGRAM)) };
    if lease_args::wants_help(sub_help)? {
        return help(io, lease_help::subcommand(PROGRAM, name).unwrap_or_default());
    }
    let out = match cmd {
        LeaseCommand::Grant(a) => grant(s, a)?,
        LeaseCommand::Revoke(a) => revoke(s, a)?,
        LeaseCommand::Timetolive(a) => time_to_live(s, a)?,
        LeaseCommand::List(_) => list(s)?,
        LeaseCommand::KeepAlive(a) => return keep_alive(s, a, io),
        LeaseCommand::Other(_) => return help(io, lease_help::lease(PROGRAM)),
    };
    emit(io, &out);
    Ok(EXIT_SUCCESS)
}

fn grant(s: &Settings, a: &LeaseOneArg) -> Result<Output, CtlError> {
    let ttl = lease_args::grant_ttl(&a.args)?;
    let printer = s.printer()?;
    let resp = s
        .client()?
        .lease_grant(ttl, 0)
        .map_err(|e| CtlError::new(EXIT_ERROR, format!("failed to grant lease ({e})")))?;
    printer.lease_grant(&resp)
}

fn revoke(s: &Settings, a: &LeaseOneArg) -> Result<Output, CtlError> {
    let id = lease_args::one_id(&a.args, "lease revoke command needs 1 argument")?;
    let printer = s.printer()?;
    let resp =
        s.client()?.lease_revoke(id).map_err(|e| CtlError::new(EXIT_ERROR, format!("failed to revoke lease ({e})")))?;
    printer.lease_revoke(id, &resp)
}

fn time_to_live(s: &Settings, a: &TimeToLiveArgs) -> Result<Output, CtlError> {
    let keys = bool_value(&a.keys, "--keys")?;
    let id = lease_args::one_id(&a.args, "lease timetolive command needs lease ID as argument")?;
    let printer = s.printer()?;
    let resp =
        s.client()?.lease_time_to_live(id, keys).map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.to_string()))?;
    printer.lease_time_to_live(&resp, keys)
}

/// Extra arguments are ignored, as etcdctl does.
fn list(s: &Settings) -> Result<Output, CtlError> {
    let printer = s.printer()?;
    let resp = s.client()?.lease_leases().map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.to_string()))?;
    printer.lease_leases(&resp)
}

fn keep_alive(s: &Settings, a: &KeepAliveArgs, io: &mut Io<'_>) -> Result<i32, CtlError> {
    let once = bool_value(&a.once, "--once")?;
    let id = lease_args::one_id(&a.args, "lease keep-alive command needs lease ID as argument")?;
    let printer = s.printer()?;
    let client = s.client()?;
    if once {
        // A lease that is gone comes back as "requested lease not found".
        let resp = client.lease_keep_alive_once(id).map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.to_string()))?;
        emit(io, &Output { stdout: printer.lease_keep_alive(&resp)?, stderr: Vec::new() });
        return Ok(EXIT_SUCCESS);
    }
    let ka = client.keep_alive(id).map_err(|e| CtlError::new(EXIT_BAD_CONNECTION, e.to_string()))?;
    loop {
        match ka.recv_timeout(WAIT_SLICE) {
            Ok(KeepAliveEvent::Renewed(r)) => {
                let line = printer.lease_keep_alive(&r)?;
                if io.stdout.write_all(&line).and_then(|()| io.stdout.flush()).is_err() {
                    // Nobody reads any more (etcdctl would die of SIGPIPE).
                    return Ok(EXIT_ERROR);
                }
            }
            Ok(KeepAliveEvent::Lost(why)) => return Ok(lost(io, &printer, id, &why)),
            Err(KeepAliveRecvError::Ended) => return Ok(lost(io, &printer, id, "keep-alive ended")),
            Err(KeepAliveRecvError::Timeout) => {}
        }
    }
}

/// clientv3 closes its keep-alive channel, for whatever reason, and
/// etcdctl says so in the simple format only; exit 0 either way.
fn lost(io: &mut Io<'_>, printer: &Printer, id: i64, why: &str) -> i32 {
    log::debug!("lease {id:x}: keep-alive ended: {why}");
    if printer.format == Format::Simple {
        let _ = io.stdout.write_all(&simple::lease_keep_alive_lost(id));
        let _ = io.stdout.flush();
    }
    EXIT_SUCCESS
}
