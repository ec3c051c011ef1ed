//! raftkvctl: an etcdctl for raftkv, with etcdctl's command names, flags,
//! output formats, error texts and exit codes.
//!
//! Owns the run of one command line: parse, dispatch, write stdout and
//! stderr, return the exit code. Layout: `cli` (flags), `settings`
//! (global flags, clients), `ops` (requests from get/put/del flags),
//! `txn_parse` (the txn grammar), `print` (output formats), `gofmt` (Go
//! texts), `exit` (codes), and one module per command group (`cmd_kv`,
//! `cmd_txn`, `cmd_endpoint`, `cmd_member`, `cmd_snapshot`, `cmd_check`, `cmd_watch` with
//! `watch_args`, `watch_exec` and `watch_session`, `cmd_lease` with
//! `lease_args` and `lease_help`).

pub mod cli;
pub mod cmd_check;
pub mod cmd_endpoint;
pub mod cmd_kv;
pub mod cmd_lease;
pub mod cmd_maintenance;
pub mod cmd_member;
pub mod cmd_snapshot;
pub mod cmd_txn;
pub mod cmd_watch;
pub mod exit;
pub mod gofmt;
pub mod lease_args;
pub mod lease_help;
pub mod ops;
pub mod print;
pub mod settings;
pub mod txn_parse;
pub mod watch_args;
pub mod watch_exec;
pub mod watch_session;

use cli::{AlarmCommand, CheckCommand, Command, EndpointCommand, MemberCommand, Parsed, SnapshotCommand};
use exit::{CtlError, EXIT_SUCCESS};
use print::Output;
use settings::Settings;
use std::ffi::OsString;
use std::io::{BufRead, Write};

/// The process's standard streams, or buffers in tests. Stdin is owned so
/// that `watch -i` can read it on a thread of its own.
pub struct Io<'a> {
    pub stdin: Box<dyn BufRead + Send>,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// raftkvctl's `main`: runs the process's command line, returns the exit
/// code.
pub fn main() -> i32 {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let stdin = Box::new(std::io::BufReader::new(std::io::stdin()));
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    let stderr = std::io::stderr();
    let mut stderr = stderr.lock();
    run(argv, &mut Io { stdin, stdout: &mut stdout, stderr: &mut stderr })
}

/// Runs one command line (program name first).
pub fn run(argv: Vec<OsString>, io: &mut Io<'_>) -> i32 {
    let cli = match cli::parse(argv.clone()) {
        Parsed::Run(cli) => cli,
        Parsed::Info(text) => {
            let _ = io.stdout.write_all(text.as_bytes());
            return EXIT_SUCCESS;
        }
        Parsed::Fail(e) => return fail(io, &e),
    };
    let settings = match Settings::from_args(&cli.global) {
        Ok(s) => s,
        Err(e) => return fail(io, &e),
    };
    // Each command gives its output, an error to print after it (if any),
    // and the exit code.
    let result: Result<(Output, Option<CtlError>, i32), CtlError> = match &cli.command {
        Command::Put(a) => cmd_kv::put(&settings, a, &mut *io.stdin).map(|o| (o, None, EXIT_SUCCESS)),
        Command::Get(a) => cmd_kv::get(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
        Command::Del(a) => cmd_kv::del(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
        Command::Compaction(a) => cmd_kv::compaction(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
        Command::Txn(a) => cmd_txn::txn(&settings, a, &mut *io.stdin, &mut *io.stdout).map(|o| (o, None, EXIT_SUCCESS)),
        Command::Endpoint(a) => match &a.command {
            EndpointCommand::Status => cmd_endpoint::status(&settings, a).map(|(o, code)| (o, None, code)),
            EndpointCommand::Hashkv(h) => cmd_endpoint::hashkv(&settings, a, h).map(|(o, e)| {
                let code = e.as_ref().map_or(EXIT_SUCCESS, |e| e.code);
                (o, e, code)
            }),
            EndpointCommand::Health => cmd_endpoint::health(&settings, a).map(|(o, e)| {
                let code = e.as_ref().map_or(EXIT_SUCCESS, |e| e.code);
                (o, e, code)
            }),
        },
        Command::Member(a) => match &a.command {
            MemberCommand::List => cmd_member::list(&settings).map(|o| (o, None, EXIT_SUCCESS)),
            MemberCommand::Add(a) => cmd_member::add(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
            MemberCommand::Remove(a) => cmd_member::remove(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
            MemberCommand::Update(a) => cmd_member::update(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
            MemberCommand::Promote(a) => cmd_member::promote(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
        },
        Command::Alarm(a) => match &a.command {
            AlarmCommand::List(a) => cmd_maintenance::alarm_list(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
            AlarmCommand::Disarm(a) => cmd_maintenance::alarm_disarm(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
        },
        Command::Defrag(a) => cmd_maintenance::defrag(&settings, a).map(|(o, code)| (o, None, code)),
        Command::MoveLeader(a) => cmd_member::move_leader(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
        Command::Check(a) => match &a.command {
            CheckCommand::Perf(a) => cmd_check::perf(&settings, a).map(|(o, code)| (o, None, code)),
        },
        Command::Snapshot(a) => match &a.command {
            SnapshotCommand::Save(a) => cmd_snapshot::save(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
            SnapshotCommand::Status(a) => cmd_snapshot::status(&settings, a).map(|o| (o, None, EXIT_SUCCESS)),
            SnapshotCommand::Restore(a) => cmd_snapshot::restore(a).map(|o| (o, None, EXIT_SUCCESS)),
        },
        // `lease` prints its own help texts, and `lease keep-alive` streams.
        Command::Lease(a) => return cmd_lease::lease(&settings, a, io),
        // `watch` streams its output as it comes, until it ends.
        Command::Watch(a) => return cmd_watch::watch(&settings, a, &argv, io),
        Command::Version => Ok((
            Output {
                stdout: format!("raftkvctl version: {}\nAPI version: 3.4\n", env!("CARGO_PKG_VERSION")).into_bytes(),
                stderr: Vec::new(),
            },
            None,
            EXIT_SUCCESS,
        )),
    };
    match result {
        Ok((out, err, code)) => {
            emit(io, &out);
            if let Some(e) = err {
                let _ = io.stderr.write_all(e.stderr_line().as_bytes());
            }
            code
        }
        Err(e) => fail(io, &e),
    }
}

fn emit(io: &mut Io<'_>, out: &Output) {
    // A closed stdout (`| head`) is not an error worth reporting.
    let _ = io.stdout.write_all(&out.stdout);
    let _ = io.stdout.flush();
    let _ = io.stderr.write_all(&out.stderr);
}

fn fail(io: &mut Io<'_>, e: &CtlError) -> i32 {
    let _ = io.stdout.flush();
    let _ = io.stderr.write_all(e.stderr_line().as_bytes());
    e.code
}
