//! The exec form of `watch` (`watch KEY -- CMD ARGS...`): runs CMD once per
//! event, as etcdctl does with Go's `os/exec`, with the inherited standard
//! streams and environment plus `ETCD_WATCH_REVISION`,
//! `ETCD_WATCH_EVENT_TYPE`, `ETCD_WATCH_KEY` and `ETCD_WATCH_VALUE` (Go
//! `%q` quoting), and Go's texts for a command that fails.
//!
//! Owns the child process of one event; never prints watch output and
//! never decides the exit code (the caller does, from the error).

use super::gofmt;
use super::print::simple::event_type_name;
use crate::proto::mvccpb::Event;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The environment etcdctl adds for one event: the response's header
/// revision (for a replayed history, the revision the replay was sent at),
/// and the event's type, key and value (a delete's value is empty).
pub fn event_env(revision: i64, ev: &Event) -> Vec<(String, String)> {
    let kv = ev.kv.clone().unwrap_or_default();
    vec![
        ("ETCD_WATCH_REVISION".into(), revision.to_string()),
        ("ETCD_WATCH_EVENT_TYPE".into(), gofmt::quote(event_type_name(ev.r#type).as_bytes())),
        ("ETCD_WATCH_KEY".into(), gofmt::quote(&kv.key)),
        ("ETCD_WATCH_VALUE".into(), gofmt::quote(&kv.value)),
    ]
}

/// etcdctl's line for a failed command: `command ["false"] error (exit
/// status 1)` (Go's `%q` of the argument list, then the error).
pub fn failure_line(args: &[Vec<u8>], error: &str) -> String {
    let quoted: Vec<String> = args.iter().map(|a| gofmt::quote(a)).collect();
    format!("command [{}] error ({error})\n", quoted.join(" "))
}

/// Runs the command for one event and waits for it. `Err` carries Go's
/// error text (`exit status 1`, `fork/exec /x: no such file or directory`,
/// `exec: "x": executable file not found in $PATH`).
pub fn run(args: &[Vec<u8>], revision: i64, ev: &Event) -> Result<(), String> {
    let Some(name) = args.first() else { return Err("exec: no command".into()) };
    let name_os = OsString::from_vec(name.clone());
    // Go's exec.Command looks a bare name up in $PATH first.
    let path = if name.contains(&b'/') { PathBuf::from(&name_os) } else { look_path(name)? };
    let mut cmd = Command::new(&path);
    cmd.arg0(&name_os)
        .args(args[1..].iter().map(|a| OsString::from_vec(a.clone())))
        .envs(event_env(revision, ev))
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let status = cmd.status().map_err(|e| format!("fork/exec {}: {}", path.display(), go_errno_text(&e)))?;
    if status.success() {
        return Ok(());
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => Err(format!("exit status {code}")),
        (None, Some(sig)) => Err(format!("signal: {}", go_signal_name(sig))),
        (None, None) => Err(format!("{status}")),
    }
}

/// Go's `exec.LookPath`: the first executable regular file named `name`
/// in a directory of `$PATH` (an empty entry is the current directory).
fn look_path(name: &[u8]) -> Result<PathBuf, String> {
    let not_found = || format!("exec: {}: executable file not found in $PATH", gofmt::quote(name));
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let mut candidate = PathBuf::from(OsString::from_vec(dir.to_vec()));
        candidate.push(OsString::from_vec(name.to_vec()));
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(not_found())
}

/// Go's text of an errno: the C library's, lower-cased at the start
/// (`no such file or directory`, `permission denied`).
fn go_errno_text(e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(n) => {
            let full = std::io::Error::from_raw_os_error(n).to_string();
            full.split(" (os error").next().unwrap_or(&full).to_string()
        }
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => text,
    }
}

/// Go's `syscall.Signal.String()` for the common signals.
fn go_signal_name(sig: i32) -> String {
    match sig {
        libc::SIGHUP => "hangup".into(),
        libc::SIGINT => "interrupt".into(),
        libc::SIGQUIT => "quit".into(),
        libc::SIGABRT => "aborted".into(),
        libc::SIGKILL => "killed".into(),
        libc::SIGSEGV => "segmentation fault".into(),
        libc::SIGPIPE => "broken pipe".into(),
        libc::SIGTERM => "terminated".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    fn put(key: &[u8], value: &[u8]) -> Event {
        Event {
            kv: Some(KeyValue { key: key.to_vec().into(), value: value.to_vec().into(), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn env_is_go_quoted_as_captured() {
        // exec_env / exec_env_binary
        let env = event_env(86, &put(b"foo", b"a \"q\" b"));
        let want: Vec<(String, String)> = vec![
            ("ETCD_WATCH_REVISION".into(), "86".into()),
            ("ETCD_WATCH_EVENT_TYPE".into(), "\"PUT\"".into()),
            ("ETCD_WATCH_KEY".into(), "\"foo\"".into()),
            ("ETCD_WATCH_VALUE".into(), "\"a \\\"q\\\" b\"".into()),
        ];
        assert_eq!(env, want);
        assert_eq!(event_env(93, &put(b"foo", b"\x01\xff\tz"))[3].1, "\"\\x01\\xff\\tz\"");
        let del = Event {
            r#type: 1,
            kv: Some(KeyValue { key: b"foo".to_vec().into(), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(event_env(87, &del)[1].1, "\"DELETE\"");
        assert_eq!(event_env(87, &del)[3].1, "\"\"");
    }

    #[test]
    fn failures_read_like_go() {
        let ev = put(b"foo", b"bar");
        assert_eq!(run(&[b"true".to_vec()], 1, &ev), Ok(()));
        let e = run(&[b"false".to_vec()], 1, &ev).expect_err("false fails");
        assert_eq!(failure_line(&[b"false".to_vec()], &e), "command [\"false\"] error (exit status 1)\n");
        let e = run(&[b"/nonexistent/cmd".to_vec()], 1, &ev).expect_err("missing");
        assert_eq!(e, "fork/exec /nonexistent/cmd: no such file or directory");
        let e = run(&[b"no-such-command-raftkv".to_vec()], 1, &ev).expect_err("not in PATH");
        assert_eq!(e, "exec: \"no-such-command-raftkv\": executable file not found in $PATH");
        let args = [b"sh".to_vec(), b"-c".to_vec(), b"exit 3".to_vec()];
        let e = run(&args, 1, &ev).expect_err("exit 3");
        assert_eq!(failure_line(&args, &e), "command [\"sh\" \"-c\" \"exit 3\"] error (exit status 3)\n");
    }
}
