//! `watch`: etcdctl 3.4's `watch` command (plus etcd 3.5's
//! `--progress-notify`), streaming each response as it arrives.
//!
//! Owns the command's order of checks (flags, `ETCDCTL_WATCH_*`, the
//! arguments, the output format, `getWatchChan`'s checks), the endless
//! loop of one watch, and how every response is shown: the `progress
//! notify: N` line, the printer's output (flushed at once), the exec
//! command per event, and the `watch was canceled (...)` line. The
//! interactive session is in `watch_session`. Never exits the process
//! itself: a watch ends only by a server cancel, a failing exec command or
//! an unsupported format; otherwise it runs until the process is killed
//! (no signal handler, as etcdctl).

use super::cli::{raw_args, WatchArgs};
use super::exit::{CtlError, EXIT_ERROR, EXIT_INTERRUPTED};
use super::print::Printer;
use super::settings::Settings;
use super::watch_args::{self, WatchEnv};
use super::{watch_exec, watch_session, Io};
use crate::client::watch::{Watch, WatchUpdate};
use crate::client::{Client, ClientError};
use crate::proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use crate::proto::raftkvpb::ErrorCode;
use std::ffi::OsString;
use std::time::{Duration, Instant};

/// Pause between attempts to set a watch up while no endpoint answers
/// (etcdctl keeps trying, silently, until it is killed).
const OPEN_RETRY: Duration = Duration::from_millis(500);
/// How long one wait for the next response lasts before waiting again.
const WAIT_SLICE: Duration = Duration::from_secs(3600);

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

/// Runs `watch`; returns the exit code (only when the watch ended).
pub fn watch(s: &Settings, a: &WatchArgs, argv: &[OsString], io: &mut Io<'_>) -> i32 {
    match start(s, a, argv, io) {
        Ok(code) => code,
        Err(e) => fail(io, &e),
    }
}

fn start(s: &Settings, a: &WatchArgs, argv: &[OsString], io: &mut Io<'_>) -> Result<i32, CtlError> {
    let (interactive, flags) = a.flags()?;
    let env = WatchEnv::from_process();
    env.check()?;
    if interactive {
        return Ok(watch_session::run(s, &env, io));
    }
    let call = watch_args::parse_command_line(&raw_args(argv), &raw_args(&a.args), &env)?;
    let printer = s.printer()?;
    let req = watch_args::create_request(&call.watch_args, &flags)?;
    let client = s.client()?;
    let mut w = match open(&client, req) {
        Ok(w) => w,
        Err(e) => {
            if let Err(code) = show_cancel(io, &printer, None, &e) {
                return Ok(code);
            }
            return Err(canceled_by_server());
        }
    };
    loop {
        match w.next(Instant::now() + WAIT_SLICE) {
            Ok(None) => {}
            Ok(Some(update)) => {
                if let Err(code) = show_update(io, &printer, &update, &call.exec_args) {
                    return Ok(code);
                }
            }
            Err(e) => {
                if let Err(code) = show_cancel(io, &printer, w.cancel_response(), &e) {
                    return Ok(code);
                }
                return Err(canceled_by_server());
            }
        }
    }
}

fn canceled_by_server() -> CtlError {
    CtlError::new(EXIT_INTERRUPTED, "watch is canceled by the server")
}

fn fail(io: &mut Io<'_>, e: &CtlError) -> i32 {
    let _ = io.stdout.flush();
    let _ = io.stderr.write_all(e.stderr_line().as_bytes());
    let _ = io.stderr.flush();
    e.code
}

/// Sets a watch up, trying again for as long as the cluster cannot be
/// reached. Fails only when the server refuses the watch.
pub fn open(client: &Client, req: WatchCreateRequest) -> Result<Watch, ClientError> {
    loop {
        match client.watch(req.clone()) {
            Ok(w) => return Ok(w),
            Err(ClientError::Api(e)) if !e.is_retryable() => return Err(ClientError::Api(e)),
            Err(e) => {
                log::debug!("watch: set-up failed, trying again: {e}");
                std::thread::sleep(OPEN_RETRY);
            }
        }
    }
}

/// Writes to stdout and flushes (a closed stdout is not reported, as for
/// the other commands).
fn out(io: &mut Io<'_>, bytes: &[u8]) {
    let _ = io.stdout.write_all(bytes);
    let _ = io.stdout.flush();
}

/// Shows one response: `progress notify: N` for a progress notification,
/// the printer's output, then the exec command once per event. `Err` is
/// the exit code of a fatal failure, already reported on stderr.
pub fn show_update(io: &mut Io<'_>, printer: &Printer, update: &WatchUpdate, exec: &[Vec<u8>]) -> Result<(), i32> {
    let r = match update {
        WatchUpdate::Progress(r) => {
            let rev = r.header.as_ref().map_or(0, |h| h.revision);
            out(io, format!("progress notify: {rev}\n").as_bytes());
            r
        }
        WatchUpdate::Events(r) => r,
    };
    display(io, printer, r)?;
    if exec.is_empty() {
        return Ok(());
    }
    let rev = r.header.as_ref().map_or(0, |h| h.revision);
    for ev in &r.events {
        let _ = io.stdout.flush();
        if let Err(text) = watch_exec::run(exec, rev, ev) {
            let _ = io.stderr.write_all(watch_exec::failure_line(exec, &text).as_bytes());
            let _ = io.stderr.flush();
            return Err(EXIT_ERROR);
        }
    }
    Ok(())
}

fn display(io: &mut Io<'_>, printer: &Printer, r: &WatchResponse) -> Result<(), i32> {
    match printer.watch(r) {
        Ok(bytes) => {
            out(io, &bytes);
            Ok(())
        }
        Err(e) => Err(fail(io, &e)),
    }
}

/// A watch the server canceled: `watch was canceled (reason)` on stderr,
/// then the cancel response in the output format (JSON shows it; simple
/// shows nothing). `Err` as for `show_update`.
pub fn show_cancel(
    io: &mut Io<'_>,
    printer: &Printer,
    resp: Option<&WatchResponse>,
    err: &ClientError,
) -> Result<(), i32> {
    let _ = io.stderr.write_all(format!("watch was canceled ({})\n", cancel_reason(resp, err)).as_bytes());
    let _ = io.stderr.flush();
    let fallback = WatchResponse { canceled: true, ..Default::default() };
    display(io, printer, resp.unwrap_or(&fallback))
}

/// clientv3's `WatchResponse.Err()` text.
fn cancel_reason(resp: Option<&WatchResponse>, err: &ClientError) -> String {
    match (resp, err) {
        (Some(r), _) if r.compact_revision != 0 => COMPACTED.to_string(),
        (Some(r), _) if !r.cancel_reason.is_empty() => r.cancel_reason.clone(),
        (Some(_), _) => FUTURE_REV.to_string(),
        (None, ClientError::Api(e)) if e.code == ErrorCode::Compacted => COMPACTED.to_string(),
        (None, e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plumbing::errors::ApiError;

    #[test]
    fn cancel_reasons_follow_clientv3() {
        let e = ClientError::Api(ApiError::of(ErrorCode::Compacted));
        let compacted = WatchResponse { canceled: true, compact_revision: 80, ..Default::default() };
        assert_eq!(cancel_reason(Some(&compacted), &e), COMPACTED);
        let below_initial = WatchResponse { canceled: true, compact_revision: -1, ..Default::default() };
        assert_eq!(cancel_reason(Some(&below_initial), &e), COMPACTED);
        let reason =
            WatchResponse { canceled: true, cancel_reason: "etcdserver: no leader".into(), ..Default::default() };
        assert_eq!(cancel_reason(Some(&reason), &e), "etcdserver: no leader");
        assert_eq!(cancel_reason(None, &e), COMPACTED);
    }
}
