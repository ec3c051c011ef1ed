//! `watch -i`: etcdctl's interactive watch session. Each stdin line is
//! split like a txn op line (`argify`); `watch [flags] KEY [RANGE_END] [--
//! CMD...]` starts another watch (its flags from the defaults, whatever
//! the command line said), `progress` asks every active watch for a
//! progress notification; anything else gets etcdctl's `Invalid command`
//! line on stderr and the session goes on. End of stdin ends it (exit 3).
//!
//! Threads: one reads stdin, one per watch waits for its responses; both
//! only send messages. This thread alone writes the output and runs exec
//! commands, so output of one response is never interleaved with
//! another's. Owns the session loop; never parses flags (`watch_args`) or
//! formats responses (`print`). Leaves the reader blocked on stdin when it
//! returns early (the process then exits), and stops the watch threads.

use super::cmd_watch::{open, show_cancel, show_update};
use super::exit::CtlError;
use super::print::Printer;
use super::settings::Settings;
use super::txn_parse::argify;
use super::watch_args::{self, WatchEnv};
use super::Io;
use crate::client::watch::WatchUpdate;
use crate::client::{Client, ClientError};
use crate::proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a watch thread looks for a progress request between waits.
const POLL: Duration = Duration::from_millis(20);
/// How long a wait lasts while the watch is resuming on a new connection
/// (a resume must see the server's confirmation within its wait).
const RESUME_WAIT: Duration = Duration::from_secs(2);
/// How long responses of different watches are gathered to be shown in
/// revision order (each watch has its own stream, so responses to two
/// watches can arrive in either order; etcdctl's shared stream shows them
/// in revision order).
const GATHER: Duration = Duration::from_millis(3);
/// At most this many messages are gathered at a time.
const GATHER_MAX: usize = 256;

enum Msg {
    /// A stdin line without its `\n`, or why reading ended (`EOF`).
    Line(Result<Vec<u8>, String>),
    /// A response of watch `id`.
    Update(usize, WatchUpdate),
    /// Watch `id` was canceled by the server (its cancel response if any).
    Canceled(usize, Option<WatchResponse>, ClientError),
}

/// One active watch: what it runs per event, and how to ask it for
/// progress.
struct Active {
    exec: Vec<Vec<u8>>,
    progress: Sender<()>,
}

/// Stops the watch threads when the session ends, however it ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs the session; returns the exit code.
pub fn run(s: &Settings, env: &WatchEnv, io: &mut Io<'_>) -> i32 {
    // etcdctl makes its client (and checks the format) before reading.
    let (printer, client) = match s.printer().and_then(|p| Ok((p, s.client()?))) {
        Ok(pc) => pc,
        Err(e) => return fatal(io, &e),
    };
    let (tx, rx) = channel();
    let stdin = std::mem::replace(&mut io.stdin, Box::new(std::io::empty()));
    spawn_reader(stdin, tx.clone());
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let mut session = Session { client, printer, env, tx, stop: stop.0.clone(), watches: BTreeMap::new(), next_id: 0 };
    session.serve(&rx, io)
}

fn fatal(io: &mut Io<'_>, e: &CtlError) -> i32 {
    let _ = io.stdout.flush();
    let _ = io.stderr.write_all(e.stderr_line().as_bytes());
    let _ = io.stderr.flush();
    e.code
}

fn spawn_reader(mut stdin: Box<dyn BufRead + Send>, tx: Sender<Msg>) {
    std::thread::spawn(move || loop {
        let mut line = Vec::new();
        // Go's ReadString('\n'): a last line without a newline is EOF.
        let msg = match stdin.read_until(b'\n', &mut line) {
            Ok(_) if line.last() == Some(&b'\n') => {
                line.pop();
                Ok(line)
            }
            Ok(_) => Err("EOF".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let done = msg.is_err();
        if tx.send(Msg::Line(msg)).is_err() || done {
            return;
        }
    });
}

struct Session<'a> {
    client: Client,
    printer: Printer,
    env: &'a WatchEnv,
    tx: Sender<Msg>,
    stop: Arc<AtomicBool>,
    watches: BTreeMap<usize, Active>,
    next_id: usize,
}

impl Session<'_> {
    fn serve(&mut self, rx: &Receiver<Msg>, io: &mut Io<'_>) -> i32 {
        loop {
            // The session holds a sender itself, so this never fails.
            let Ok(first) = rx.recv() else { return 0 };
            for msg in gather(first, rx) {
                if let Err(code) = self.handle(msg, io) {
                    return code;
                }
            }
        }
    }

    /// One message. `Err` is the exit code of a message that ends the
    /// session, already reported.
    fn handle(&mut self, msg: Msg, io: &mut Io<'_>) -> Result<(), i32> {
        match msg {
            Msg::Line(Ok(line)) => self.line(&line, io),
            Msg::Line(Err(e)) => {
                Err(fatal(io, &CtlError::invalid_input(format!("Error reading watch request line: {e}"))))
            }
            Msg::Update(id, update) => match self.watches.get(&id) {
                Some(w) => show_update(io, &self.printer, &update, &w.exec),
                None => Ok(()),
            },
            Msg::Canceled(id, resp, err) => {
                self.watches.remove(&id);
                show_cancel(io, &self.printer, resp.as_ref(), &err)
            }
        }
    }

    /// One stdin line. `Err` is the exit code of a line that ends the
    /// session, already reported.
    fn line(&mut self, line: &[u8], io: &mut Io<'_>) -> Result<(), i32> {
        let shown = String::from_utf8_lossy(line).into_owned();
        let words = argify(line).map_err(|e| fatal(io, &e))?;
        let Some(first) = words.first() else {
            return invalid(io, &format!("Invalid command: {shown} (watch and progress supported)"));
        };
        match first.as_slice() {
            b"watch" => {
                if words.len() < 2 && self.env.key.is_empty() {
                    return invalid(io, &format!("Invalid command {shown} (command type or key is not provided)"));
                }
                let (flags, call) = watch_args::parse_line(&words, self.env).map_err(|e| fatal(io, &e))?;
                match watch_args::create_request(&call.watch_args, &flags) {
                    Ok(req) => {
                        self.start(req, call.exec_args);
                        Ok(())
                    }
                    Err(e) => invalid(io, &format!("Invalid command {shown} ({})", e.message)),
                }
            }
            b"progress" => {
                for w in self.watches.values() {
                    let _ = w.progress.send(());
                }
                Ok(())
            }
            _ => invalid(io, &format!("Invalid command {shown} (only support watch)")),
        }
    }

    fn start(&mut self, req: WatchCreateRequest, exec: Vec<Vec<u8>>) {
        let id = self.next_id;
        self.next_id += 1;
        let (progress_tx, progress_rx) = channel();
        self.watches.insert(id, Active { exec, progress: progress_tx });
        let (client, tx, stop) = (self.client.clone(), self.tx.clone(), self.stop.clone());
        std::thread::spawn(move || watch_thread(id, &client, req, &tx, &progress_rx, &stop));
    }
}

/// `first` and what arrives right after it, with the watch responses
/// among them in revision order (each watch's own responses keep their
/// order: a stable sort of increasing revisions); other messages keep
/// their places.
fn gather(first: Msg, rx: &Receiver<Msg>) -> Vec<Msg> {
    let mut batch = vec![first];
    if !matches!(batch[0], Msg::Update(..)) {
        return batch;
    }
    let until = Instant::now() + GATHER;
    while batch.len() < GATHER_MAX {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(m) => batch.push(m),
            Err(_) => break,
        }
    }
    let revision = |m: &Msg| match m {
        Msg::Update(_, WatchUpdate::Events(r) | WatchUpdate::Progress(r)) => {
            r.header.as_ref().map_or(0, |h| h.revision)
        }
        _ => 0,
    };
    let mut updates: Vec<Msg> = Vec::new();
    let mut rest: Vec<Option<Msg>> = Vec::with_capacity(batch.len());
    for m in batch {
        if matches!(m, Msg::Update(..)) {
            updates.push(m);
            rest.push(None);
        } else {
            rest.push(Some(m));
        }
    }
    updates.sort_by_key(revision);
    let mut updates = updates.into_iter();
    rest.into_iter().filter_map(|m| m.or_else(|| updates.next())).collect()
}

fn invalid(io: &mut Io<'_>, text: &str) -> Result<(), i32> {
    let _ = io.stderr.write_all(format!("{text}\n").as_bytes());
    let _ = io.stderr.flush();
    Ok(())
}

/// One watch's thread: set it up (retrying while the cluster is
/// unreachable), then pass every response on, and progress requests in,
/// until it is canceled or the session ends.
fn watch_thread(
    id: usize,
    client: &Client,
    req: WatchCreateRequest,
    tx: &Sender<Msg>,
    progress: &Receiver<()>,
    stop: &AtomicBool,
) {
    let mut w = match open(client, req) {
        Ok(w) => w,
        Err(e) => {
            let _ = tx.send(Msg::Canceled(id, None, e));
            return;
        }
    };
    while !stop.load(Ordering::SeqCst) {
        while progress.try_recv().is_ok() {
            if let Err(e) = w.request_progress() {
                log::debug!("watch: progress request failed: {e}");
            }
        }
        let wait = if w.endpoint().is_some() { POLL } else { RESUME_WAIT };
        match w.next(Instant::now() + wait) {
            Ok(None) => {}
            Ok(Some(update)) => {
                if tx.send(Msg::Update(id, update)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Msg::Canceled(id, w.cancel_response().cloned(), e));
                return;
            }
        }
    }
}
