//! `watch` arguments as etcdctl 3.4 reads them: its `parseWatchArgs` (the
//! `--` exec separator, `ETCDCTL_WATCH_KEY` / `ETCDCTL_WATCH_RANGE_END`),
//! the flags of an interactive `watch ...` line (parsed like pflag, each
//! line from the defaults), and `getWatchChan`'s checks that turn the
//! arguments into a `WatchCreateRequest`.
//!
//! Owns these translations and their error texts; never talks to a server
//! and never prints. Keys and arguments are raw bytes (need not be UTF-8).

use super::exit::CtlError;
use super::gofmt;
use crate::client::prefix_end;
use crate::proto::etcdserverpb::WatchCreateRequest;

pub const ERR_BAD_ARGS_NUM: &str = "bad number of arguments";
pub const ERR_CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
pub const ERR_SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";
pub const ERR_PREFIX_AND_RANGE: &str = "`range_end` and `--prefix` are mutually exclusive";

/// The flags of one watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchFlags {
    pub prefix: bool,
    pub rev: i64,
    pub prev_kv: bool,
    /// etcd 3.5's `--progress-notify` (not in etcdctl 3.4).
    pub progress_notify: bool,
}

/// What a watch command line or line means: the key (and range end)
/// arguments, and the command to run per event (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchCall {
    pub watch_args: Vec<Vec<u8>>,
    pub exec_args: Vec<Vec<u8>>,
}

/// `ETCDCTL_WATCH_KEY` and `ETCDCTL_WATCH_RANGE_END` (empty when unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchEnv {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

impl WatchEnv {
    pub fn from_process() -> WatchEnv {
        use std::os::unix::ffi::OsStringExt;
        let var = |name: &str| std::env::var_os(name).map(|v| v.into_vec()).unwrap_or_default();
        WatchEnv { key: var("ETCDCTL_WATCH_KEY"), range_end: var("ETCDCTL_WATCH_RANGE_END") }
    }

    /// etcdctl's first check, before anything else.
    pub fn check(&self) -> Result<(), CtlError> {
        if self.key.is_empty() && !self.range_end.is_empty() {
            return Err(CtlError::bad_args(format!(
                "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
                gofmt::quote(&self.range_end)
            )));
        }
        Ok(())
    }

    /// `watchArgs` with the environment's key and range end in front.
    fn prepend(&self, args: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        if self.key.is_empty() {
            return args;
        }
        let mut out = vec![self.key.clone()];
        if !self.range_end.is_empty() {
            out.push(self.range_end.clone());
        }
        out.extend(args);
        out
    }
}

fn position_of_separator(args: &[Vec<u8>]) -> Option<usize> {
    args.iter().position(|a| a.as_slice() == b"--")
}

/// `parseWatchArgs` for the command line. `argv` is the whole raw command
/// line (program name first); `positional` the arguments the flag parser
/// left (without the `--`).
pub fn parse_command_line(argv: &[Vec<u8>], positional: &[Vec<u8>], env: &WatchEnv) -> Result<WatchCall, CtlError> {
    // The raw arguments after the command name.
    let raw: &[Vec<u8>] = match argv.iter().position(|a| a.as_slice() == b"watch") {
        Some(i) => &argv[i + 1..],
        None => argv,
    };
    let sep = position_of_separator(raw);
    if sep == Some(raw.len().wrapping_sub(1)) {
        return Err(CtlError::bad_args(ERR_SEPARATOR));
    }
    if sep.is_none() && raw.is_empty() && env.key.is_empty() {
        return Err(CtlError::bad_args(ERR_BAD_ARGS_NUM));
    }
    if let (Some(exec_idx), false) = (sep, env.key.is_empty()) {
        // `ETCDCTL_WATCH_KEY=foo watch foo -- echo 1`: a key before `--`.
        let mut ridx = raw.len() as isize - 1;
        for w in positional.iter().rev() {
            if ridx >= 0 && raw.get(ridx as usize) == Some(w) {
                ridx -= 1;
                continue;
            }
            if ridx == exec_idx as isize {
                return Err(CtlError::bad_args(ERR_CONFLICT_ENV));
            }
        }
    }
    if sep.is_none() && !positional.is_empty() && !env.key.is_empty() {
        return Err(CtlError::bad_args(ERR_CONFLICT_ENV));
    }
    Ok(finish(positional.to_vec(), raw, sep, env))
}

/// The common end of `parseWatchArgs`: the exec command after `--`, the
/// environment's key in front, and the exec command's words cut off the
/// key arguments.
fn finish(args: Vec<Vec<u8>>, with_sep: &[Vec<u8>], sep: Option<usize>, env: &WatchEnv) -> WatchCall {
    let exec_args: Vec<Vec<u8>> = sep.map(|i| with_sep[i + 1..].to_vec()).unwrap_or_default();
    let mut watch_args = env.prepend(args);
    if let Some(first) = exec_args.first() {
        // The last occurrence of the command's name ends the key arguments.
        let end = watch_args.iter().rposition(|a| a == first).unwrap_or(0);
        watch_args.truncate(end);
    }
    WatchCall { watch_args, exec_args }
}

/// An interactive `watch ...` line, already split by `argify` (`words[0]`
/// is `watch`). Flags start from their defaults on every line. Errors here
/// end the session (exit 128), as in etcdctl.
pub fn parse_line(words: &[Vec<u8>], env: &WatchEnv) -> Result<(WatchFlags, WatchCall), CtlError> {
    let args = words.get(1..).unwrap_or_default();
    let sep = position_of_separator(args);
    if sep.is_some() && sep == Some(args.len() - 1) {
        return Err(CtlError::bad_args(ERR_SEPARATOR));
    }
    let (flags, positional) = parse_flags(args).map_err(CtlError::bad_args)?;
    if sep.is_none() && env.key.is_empty() && positional.is_empty() {
        return Err(CtlError::bad_args(ERR_BAD_ARGS_NUM));
    }
    if sep.is_none() && !positional.is_empty() && !env.key.is_empty() {
        return Err(CtlError::bad_args(ERR_CONFLICT_ENV));
    }
    Ok((flags, finish(positional, args, sep, env)))
}

/// pflag's parse of the watch flags: interspersed flags and arguments,
/// `--` ends the flags (the rest are arguments), `--flag=value`,
/// `--flag value` for `--rev`, `-i` (also in clusters). Returns the
/// flags and the arguments, or pflag's error text.
pub fn parse_flags(args: &[Vec<u8>]) -> Result<(WatchFlags, Vec<Vec<u8>>), String> {
    let mut f = WatchFlags::default();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg.as_slice() == b"--" {
            positional.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix(b"--") {
            let text = String::from_utf8_lossy(long).into_owned();
            let (name, value) = match text.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (text.clone(), None),
            };
            let bool_flag = |v: Option<String>, shown: &str| -> Result<bool, String> {
                match v {
                    None => Ok(true),
                    Some(v) => gofmt::parse_bool(&v).map_err(|e| invalid(&v, shown, &e)),
                }
            };
            match name.as_str() {
                "prefix" => f.prefix = bool_flag(value, "--prefix")?,
                "prev-kv" => f.prev_kv = bool_flag(value, "--prev-kv")?,
                "progress-notify" => f.progress_notify = bool_flag(value, "--progress-notify")?,
                "interactive" => {
                    bool_flag(value, "-i, --interactive")?;
                }
                "rev" => {
                    let v = match value {
                        Some(v) => v,
                        None => {
                            let Some(next) = args.get(i) else { return Err("flag needs an argument: --rev".into()) };
                            i += 1;
                            String::from_utf8_lossy(next).into_owned()
                        }
                    };
                    f.rev = gofmt::parse_int(&v, 10).map_err(|e| invalid(&v, "--rev", &e))?;
                }
                "help" => return Err("pflag: help requested".into()),
                _ => return Err(format!("unknown flag: --{name}")),
            }
            continue;
        }
        if arg.len() > 1 && arg[0] == b'-' {
            let text = String::from_utf8_lossy(arg).into_owned();
            let shorts = &text[1..];
            for (pos, c) in shorts.char_indices() {
                match c {
                    'i' => {
                        if let Some(v) = shorts[pos + 1..].strip_prefix('=') {
                            gofmt::parse_bool(v).map_err(|e| invalid(v, "-i, --interactive", &e))?;
                            break;
                        }
                    }
                    'h' => return Err("pflag: help requested".into()),
                    c => return Err(format!("unknown shorthand flag: '{c}' in {text}")),
                }
            }
            continue;
        }
        positional.push(arg.clone());
    }
    Ok((f, positional))
}

/// pflag's `invalid argument "v" for "--flag" flag: ...`.
fn invalid(value: &str, shown: &str, err: &str) -> String {
    format!("invalid argument {} for {} flag: {err}", gofmt::quote(value.as_bytes()), gofmt::quote(shown.as_bytes()))
}

/// etcdctl's `getWatchChan`: key, optional range end (a third argument is
/// ignored, as etcdctl does), and the flags as clientv3 options.
pub fn create_request(args: &[Vec<u8>], f: &WatchFlags) -> Result<WatchCreateRequest, CtlError> {
    let Some(key) = args.first() else { return Err(CtlError::bad_args(ERR_BAD_ARGS_NUM)) };
    let mut req = WatchCreateRequest {
        key: key.clone().into(),
        start_revision: f.rev,
        prev_kv: f.prev_kv,
        progress_notify: f.progress_notify,
        ..Default::default()
    };
    if args.len() == 2 {
        if f.prefix {
            return Err(CtlError::bad_args(ERR_PREFIX_AND_RANGE));
        }
        req.range_end = args[1].clone().into();
    }
    if f.prefix {
        // clientv3's WithPrefix: an empty key means every key.
        if key.is_empty() {
            req.key = vec![0].into();
            req.range_end = vec![0].into();
        } else {
            req.range_end = prefix_end(key).into();
        }
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Vec<u8>> {
        s.split_whitespace().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn cmd(argv: &str, positional: &str, env: &WatchEnv) -> Result<WatchCall, String> {
        let mut all = words("etcdctl --endpoints=127.0.0.1:22479");
        all.extend(words(argv));
        parse_command_line(&all, &words(positional), env).map_err(|e| format!("{} {}", e.code, e.message))
    }

    fn call(watch: &str, exec: &str) -> Result<WatchCall, String> {
        Ok(WatchCall { watch_args: words(watch), exec_args: words(exec) })
    }

    fn env(key: &str, range_end: &str) -> WatchEnv {
        WatchEnv { key: key.into(), range_end: range_end.into() }
    }

    #[test]
    fn command_lines_split_like_etcdctl() {
        let none = WatchEnv::default();
        assert_eq!(cmd("watch foo", "foo", &none), call("foo", ""));
        assert_eq!(cmd("watch foo fop fzz", "foo fop fzz", &none), call("foo fop fzz", ""));
        assert_eq!(cmd("watch foo -- echo hello", "foo echo hello", &none), call("foo", "echo hello"));
        // The exec command repeats the key: the last "echo" ends the keys.
        assert_eq!(cmd("watch foo -- echo foo", "foo echo foo", &none), call("foo", "echo foo"));
        assert_eq!(cmd("watch foo --prev-kv -- echo hi", "foo echo hi", &none), call("foo", "echo hi"));
        assert_eq!(cmd("watch foo fop -- echo hi", "foo fop echo hi", &none), call("foo fop", "echo hi"));
        assert_eq!(cmd("watch -w json", "", &none), call("", ""));
    }

    #[test]
    fn command_line_errors_match_the_captures() {
        let none = WatchEnv::default();
        let sep = format!("128 {ERR_SEPARATOR}");
        assert_eq!(cmd("watch foo --", "foo", &none), Err(sep.clone()), "sep_no_cmd");
        assert_eq!(cmd("watch --", "", &none), Err(sep), "key_dashdash_only");
        assert_eq!(cmd("watch", "", &none), Err(format!("128 {ERR_BAD_ARGS_NUM}")), "no_key");
        // sep_no_key: parsing passes, getWatchChan finds no key.
        let c = cmd("watch -- echo hi", "echo hi", &none).expect("parses");
        assert_eq!(c, call("", "echo hi").expect("call"));
        assert_eq!(
            create_request(&c.watch_args, &WatchFlags::default()).map_err(|e| e.message),
            Err(ERR_BAD_ARGS_NUM.into())
        );
    }

    #[test]
    fn environment_keys_match_the_captures() {
        let foo = env("foo", "");
        assert_eq!(cmd("watch", "", &foo), call("foo", ""), "env_key");
        assert_eq!(cmd("watch", "", &env("foo", "fop")), call("foo fop", ""), "env_key_range");
        assert_eq!(cmd("watch -- echo hi", "echo hi", &foo), call("foo", "echo hi"), "env_key_exec");
        let conflict = Err(format!("128 {ERR_CONFLICT_ENV}"));
        assert_eq!(cmd("watch foo", "foo", &foo), conflict, "env_key_conflict");
        assert_eq!(cmd("watch foo -- echo hi", "foo echo hi", &foo), conflict, "env_key_conflict_exec");
        let e = env("", "fop").check().expect_err("range end without key");
        assert_eq!(
            (e.code, e.message.as_str()),
            (128, "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=\"fop\"")
        );
        assert!(env("foo", "fop").check().is_ok());
    }

    fn line(s: &str, env: &WatchEnv) -> Result<(WatchFlags, WatchCall), String> {
        parse_line(&words(s), env).map_err(|e| format!("{} {}", e.code, e.message))
    }

    #[test]
    fn interactive_lines_start_from_default_flags() {
        let none = WatchEnv::default();
        let (f, c) = line("watch --prev-kv --prefix fo", &none).expect("parses");
        assert_eq!(f, WatchFlags { prefix: true, prev_kv: true, ..Default::default() });
        assert_eq!(c, call("fo", "").expect("call"));
        let (f, _) = line("watch --rev 5 foo", &none).expect("parses");
        assert_eq!(f.rev, 5);
        let (f, _) = line("watch --rev=-1 foo", &none).expect("parses");
        assert_eq!(f.rev, -1);
        let (f, c) = line("watch foo -- sh -c --prefix", &none).expect("parses");
        assert!(!f.prefix, "flags after -- belong to the command");
        assert_eq!(c, call("foo", "sh -c --prefix").expect("call"));
        let (f, c) = line("watch", &env("foo", "")).expect("env key");
        assert_eq!((f, c), (WatchFlags::default(), call("foo", "").expect("call")));
    }

    #[test]
    fn interactive_line_errors_are_pflag_texts() {
        let none = WatchEnv::default();
        assert_eq!(line("watch --bogus foo", &none), Err("128 unknown flag: --bogus".into()));
        assert_eq!(line("watch -x foo", &none), Err("128 unknown shorthand flag: 'x' in -x".into()));
        assert_eq!(line("watch foo --", &none), Err(format!("128 {ERR_SEPARATOR}")));
        assert_eq!(line("watch --prefix", &none), Err(format!("128 {ERR_BAD_ARGS_NUM}")));
        assert_eq!(line("watch foo --rev", &none), Err("128 flag needs an argument: --rev".into()));
        assert_eq!(
            line("watch --rev abc foo", &none),
            Err("128 invalid argument \"abc\" for \"--rev\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax"
                .into())
        );
        assert_eq!(
            line("watch --prefix=maybe foo", &none),
            Err("128 invalid argument \"maybe\" for \"--prefix\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax"
                .into())
        );
        assert_eq!(line("watch foo", &env("foo", "")), Err(format!("128 {ERR_CONFLICT_ENV}")));
    }

    #[test]
    fn requests_follow_get_watch_chan() {
        let f = WatchFlags::default();
        let r = create_request(&words("foo"), &f).expect("key");
        assert_eq!((&r.key[..], &r.range_end[..], r.start_revision), (&b"foo"[..], &b""[..], 0));
        let r = create_request(&words("foo fop"), &f).expect("range");
        assert_eq!(&r.range_end[..], b"fop");
        let r = create_request(&words("foo fop fzz"), &f).expect("three arguments");
        assert_eq!(&r.range_end[..], b"", "a third argument means no range end");
        let p = WatchFlags { prefix: true, prev_kv: true, rev: 7, progress_notify: true };
        let r = create_request(&words("fo"), &p).expect("prefix");
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"fo"[..], &b"fp"[..]));
        assert!(r.prev_kv && r.progress_notify && r.start_revision == 7);
        let r = create_request(&[Vec::new()], &p).expect("empty prefix");
        assert_eq!((&r.key[..], &r.range_end[..]), (&[0u8][..], &[0u8][..]));
        let e = create_request(&words("foo bar"), &p).expect_err("prefix and range");
        assert_eq!((e.code, e.message.as_str()), (128, ERR_PREFIX_AND_RANGE));
        assert_eq!(create_request(&[], &f).expect_err("no key").message, ERR_BAD_ARGS_NUM);
    }
}
