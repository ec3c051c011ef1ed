//! etcdctl's txn grammar: compares, then success ops, then failure ops, one
//! per line, each section ended by an empty line.
//!
//! Owns reading the sections (with the interactive prompts), parsing a
//! compare the way etcdctl's `fmt.Sscanf(rest, "%q) %s %q")` does (so the
//! error texts match, partial results included), splitting op lines like
//! etcdctl's `argify`, and parsing them with the `put`/`get`/`del` flags.
//! Where etcdctl panics (`lease(...)` compares, unknown operators) this
//! gives an error and exit code 3 instead; `lease("k")` compares work, with
//! a hex lease ID as in etcd 3.5.

use super::cli::{raw_args, DelArgs, GetArgs, PutArgs};
use super::exit::CtlError;
use super::gofmt;
use super::ops;
use crate::proto::etcdserverpb::{compare, request_op, Compare, RequestOp, TxnRequest};
use clap::Parser;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStringExt;

pub const PROMPT_COMPARES: &str = "compares:";
pub const PROMPT_SUCCESS: &str = "success requests (get, put, del):";
pub const PROMPT_FAILURE: &str = "failure requests (get, put, del):";

/// Reads a whole transaction from `input`. With `interactive`, each
/// section's prompt is written to `prompts` before the section is read.
pub fn read_txn(input: &mut dyn BufRead, interactive: bool, prompts: &mut dyn Write) -> Result<TxnRequest, CtlError> {
    let mut prompt = |text: &str| -> Result<(), CtlError> {
        if interactive {
            writeln!(prompts, "{text}")
                .and_then(|_| prompts.flush())
                .map_err(|e| CtlError::invalid_input(e.to_string()))?;
        }
        Ok(())
    };
    prompt(PROMPT_COMPARES)?;
    let mut compares = Vec::new();
    while let Some(line) = next_line(input)? {
        compares.push(parse_compare(&line)?);
    }
    prompt(PROMPT_SUCCESS)?;
    let mut success = Vec::new();
    while let Some(line) = next_line(input)? {
        success.push(parse_op(&line)?);
    }
    prompt(PROMPT_FAILURE)?;
    let mut failure = Vec::new();
    while let Some(line) = next_line(input)? {
        failure.push(parse_op(&line)?);
    }
    Ok(TxnRequest { compare: compares, success, failure })
}

/// The next trimmed line of a section, `None` at the empty line that ends
/// it. Like Go's `ReadString('\n')`, a last line without a newline (or no
/// line at all) is `EOF`, an error (exit 3).
fn next_line(input: &mut dyn BufRead) -> Result<Option<Vec<u8>>, CtlError> {
    let mut line = Vec::new();
    input.read_until(b'\n', &mut line).map_err(|e| CtlError::invalid_input(e.to_string()))?;
    if line.last() != Some(&b'\n') {
        return Err(CtlError::invalid_input("EOF"));
    }
    let trimmed = trim_space(&line);
    Ok((!trimmed.is_empty()).then(|| trimmed.to_vec()))
}

/// Go's `strings.TrimSpace`: Unicode white space at both ends (ASCII white
/// space only when the line is not valid UTF-8).
fn trim_space(b: &[u8]) -> &[u8] {
    if let Ok(s) = std::str::from_utf8(b) {
        let start = s.len() - s.trim_start().len();
        return &b[start..start + s.trim().len()];
    }
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &b[start..end]
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What `fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)` yields: how many
/// values were scanned, and the values.
struct Scanned {
    n: usize,
    key: Vec<u8>,
    op: Vec<u8>,
    val: Vec<u8>,
}

/// A reader over runes, as Go's scanner sees the input (invalid UTF-8
/// bytes read as U+FFFD).
struct Runes<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Runes<'_> {
    fn peek(&self) -> Option<(char, usize)> {
        let rest = self.s.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let len = match rest[0] {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
        match rest.get(..len).and_then(|r| std::str::from_utf8(r).ok()).and_then(|s| s.chars().next()) {
            Some(c) => Some((c, len)),
            None => Some((char::REPLACEMENT_CHARACTER, 1)),
        }
    }

    fn next(&mut self) -> Option<char> {
        let (c, len) = self.peek()?;
        self.pos += len;
        Some(c)
    }

    fn skip_space(&mut self) {
        while let Some((c, len)) = self.peek() {
            if !is_go_space(c) {
                break;
            }
            self.pos += len;
        }
    }

    /// Go's `%q`: a back-quoted or double-quoted string.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.skip_space();
        match self.next()? {
            '`' => {
                let mut out = String::new();
                loop {
                    match self.next()? {
                        '`' => return Some(out.into_bytes()),
                        c => out.push(c),
                    }
                }
            }
            '"' => {
                let mut raw = String::from("\"");
                loop {
                    let c = self.next()?;
                    raw.push(c);
                    if c == '\\' {
                        raw.push(self.next()?);
                    } else if c == '"' {
                        break;
                    }
                }
                gofmt::unquote_double(raw.as_bytes())
            }
            _ => None,
        }
    }

    /// Go's `%s`: a run of non-space runes.
    fn word(&mut self) -> Option<Vec<u8>> {
        self.skip_space();
        let start = self.pos;
        while let Some((c, len)) = self.peek() {
            if is_go_space(c) {
                break;
            }
            self.pos += len;
        }
        (self.pos > start).then(|| self.s[start..self.pos].to_vec())
    }

    /// A space in a Go scan format: one or more spaces, or the end.
    fn format_space(&mut self) -> bool {
        match self.peek() {
            None => true,
            Some((c, _)) if is_go_space(c) => {
                self.skip_space();
                true
            }
            _ => false,
        }
    }
}

fn is_go_space(c: char) -> bool {
    c.is_whitespace()
}

fn scan_compare(rest: &[u8]) -> Scanned {
    let mut r = Runes { s: rest, pos: 0 };
    let mut out = Scanned { n: 0, key: Vec::new(), op: Vec::new(), val: Vec::new() };
    let Some(key) = r.quoted() else { return out };
    out.key = key;
    out.n = 1;
    if r.next() != Some(')') || !r.format_space() {
        return out;
    }
    let Some(op) = r.word() else { return out };
    out.op = op;
    out.n = 2;
    if !r.format_space() {
        return out;
    }
    let Some(val) = r.quoted() else { return out };
    out.val = val;
    out.n = 3;
    out
}

/// One compare line: `<target>("<key>") <op> "<value>"`.
pub fn parse_compare(line: &[u8]) -> Result<Compare, CtlError> {
    let text = lossy(line);
    let Some(paren) = line.iter().position(|&b| b == b'(') else {
        return Err(CtlError::invalid_input(format!("malformed comparison: {text}")));
    };
    let target = &line[..paren];
    let s = scan_compare(&line[paren + 1..]);
    if s.n != 3 {
        return Err(CtlError::invalid_input(format!(
            "malformed comparison: {text}; got {}({}) {} {}",
            lossy(target),
            gofmt::quote(&s.key),
            lossy(&s.op),
            gofmt::quote(&s.val)
        )));
    }
    let val_text = lossy(&s.val);
    let bad_request = || CtlError::invalid_input(format!("invalid txn compare request: {text}"));
    use compare::{CompareTarget as T, TargetUnion as U};
    let (target_kind, union) = match target {
        b"ver" | b"version" => (T::Version, U::Version(gofmt::parse_int(&val_text, 10).map_err(|_| bad_request())?)),
        b"c" | b"create" => (T::Create, U::CreateRevision(gofmt::parse_int(&val_text, 10).map_err(|_| bad_request())?)),
        b"m" | b"mod" => (T::Mod, U::ModRevision(gofmt::parse_int(&val_text, 10).map_err(|_| bad_request())?)),
        b"val" | b"value" => (T::Value, U::Value(s.val.clone().into())),
        // etcdctl 3.4 panics here; etcd 3.5 reads the lease ID in hex.
        b"lease" => (T::Lease, U::Lease(gofmt::parse_int(&val_text, 16).map_err(|_| bad_request())?)),
        _ => {
            return Err(CtlError::invalid_input(format!(
                "malformed comparison: {text} (unknown target {})",
                lossy(target)
            )))
        }
    };
    let result = match s.op.as_slice() {
        b"=" => compare::CompareResult::Equal,
        b"!=" => compare::CompareResult::NotEqual,
        b">" => compare::CompareResult::Greater,
        b"<" => compare::CompareResult::Less,
        // etcdctl panics ("Unknown result op").
        other => {
            return Err(CtlError::invalid_input(format!(
                "malformed comparison: {text} (unknown operator {}: use =, !=, > or <)",
                lossy(other)
            )))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target_kind as i32,
        key: s.key.into(),
        range_end: Default::default(),
        target_union: Some(union),
    })
}

/// etcdctl's `argify`: words, `"double-quoted"` (Go escapes) and
/// `'single-quoted'` strings, with the regexp
/// `"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?`.
pub fn argify(line: &[u8]) -> Result<Vec<Vec<u8>>, CtlError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c == b'"' {
            let mut j = i + 1;
            let mut end = None;
            while j < line.len() {
                match line[j] {
                    b'\\' if j + 1 < line.len() => j += 2,
                    b'"' => {
                        end = Some(j);
                        break;
                    }
                    _ => j += 1,
                }
            }
            match end {
                Some(e) => {
                    let v =
                        gofmt::unquote_double(&line[i..=e]).ok_or_else(|| CtlError::invalid_input("invalid syntax"))?;
                    args.push(v);
                    i = e + 1;
                }
                // No closing quote: the regexp skips the quote character.
                None => i += 1,
            }
        } else if c == b'\'' {
            match line[i + 1..].iter().position(|&b| b == b'\'') {
                Some(off) => {
                    // etcdctl 3.4 cuts this string at a wrong length (it
                    // slices by the number of arguments); the quotes are
                    // simply removed here.
                    args.push(line[i + 1..i + 1 + off].to_vec());
                    i = i + 2 + off;
                }
                None => i += 1,
            }
        } else if is_regex_space(c) {
            i += 1;
        } else {
            let end = line[i..].iter().position(|&b| is_regex_space(b)).map_or(line.len(), |o| i + o);
            args.push(line[i..end].to_vec());
            i = end;
        }
    }
    Ok(args)
}

/// RE2's `\s`: ASCII white space only.
fn is_regex_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0c' | b'\r')
}

/// An op line parsed with the flags of `put`, `get` and `del`.
#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_help_subcommand = true)]
enum OpLine {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

/// One op line: `put k v [--prev-kv] [--lease=ID]`, `get k [flags]`,
/// `del k [flags]`.
pub fn parse_op(line: &[u8]) -> Result<RequestOp, CtlError> {
    let text = lossy(line);
    let args = argify(line)?;
    if args.len() < 2 {
        // (sic) etcdctl's text for a one-word op line.
        return Err(CtlError::invalid_input(format!("invalid txn compare request: {text}")));
    }
    let os_args: Vec<OsString> = args.into_iter().map(OsString::from_vec).collect();
    let op =
        OpLine::try_parse_from(os_args).map_err(|_| CtlError::invalid_input(format!("invalid txn request: {text}")))?;
    let request = match op {
        OpLine::Put(p) => request_op::Request::RequestPut(ops::put_request(&raw_args(&p.args), &p.flags()?, None)?),
        OpLine::Get(g) => request_op::Request::RequestRange(ops::range_request(&raw_args(&g.args), &g.flags()?)?),
        OpLine::Del(d) => {
            request_op::Request::RequestDeleteRange(ops::delete_request(&raw_args(&d.args), &d.flags()?)?)
        }
    };
    Ok(RequestOp { request: Some(request) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::exit::{EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_INVALID_INPUT};
    use crate::proto::etcdserverpb::{compare::CompareResult as R, compare::CompareTarget as T};

    fn cmp(line: &str) -> Result<Compare, CtlError> {
        parse_compare(line.as_bytes())
    }

    fn cmp_err(line: &str) -> String {
        let e = cmp(line).unwrap_err();
        assert_eq!(e.code, EXIT_INVALID_INPUT, "{line}");
        e.message
    }

    #[test]
    fn compares_of_every_target() {
        let c = cmp(r#"value("t1") = "v1c""#).unwrap();
        assert_eq!((c.target, c.result, &c.key[..]), (T::Value as i32, R::Equal as i32, &b"t1"[..]));
        assert_eq!(c.target_union, Some(compare::TargetUnion::Value("v1c".into())));
        let c = cmp(r#"val("t1") != "x""#).unwrap();
        assert_eq!((c.target, c.result), (T::Value as i32, R::NotEqual as i32));
        let c = cmp(r#"version("t1") > "0""#).unwrap();
        assert_eq!(
            (c.target, c.result, c.target_union),
            (T::Version as i32, R::Greater as i32, Some(compare::TargetUnion::Version(0)))
        );
        let c = cmp(r#"ver("t1") = "-1""#).unwrap();
        assert_eq!(c.target_union, Some(compare::TargetUnion::Version(-1)));
        let c = cmp(r#"create("t1") < "5""#).unwrap();
        assert_eq!(
            (c.target, c.result, c.target_union),
            (T::Create as i32, R::Less as i32, Some(compare::TargetUnion::CreateRevision(5)))
        );
        let c = cmp(r#"c("t1") = "60""#).unwrap();
        assert_eq!(c.target, T::Create as i32);
        let c = cmp(r#"mod("t1") = "63""#).unwrap();
        assert_eq!(c.target_union, Some(compare::TargetUnion::ModRevision(63)));
        let c = cmp(r#"m("t1") != "3""#).unwrap();
        assert_eq!((c.target, c.result), (T::Mod as i32, R::NotEqual as i32));
        let c = cmp(r#"lease("lk1") = "1eeea20a6bc90c28""#).unwrap();
        assert_eq!(c.target_union, Some(compare::TargetUnion::Lease(0x1eeea20a6bc90c28)));
    }

    #[test]
    fn compare_quoting_follows_go_scanf() {
        assert_eq!(&cmp(r#"value("t\x31") = "v1c""#).unwrap().key[..], b"t1");
        let c = cmp("value(`t1`) = `v1c`").unwrap();
        assert_eq!((&c.key[..], c.target_union), (&b"t1"[..], Some(compare::TargetUnion::Value("v1c".into()))));
        // Anything after the value is ignored.
        assert!(cmp(r#"value("t1") = "v1c" extra"#).is_ok());
        assert!(cmp(r#"value("t1") = "v1c"x"#).is_ok());
        assert_eq!(&cmp(r#"value("a\xffb") = "x""#).unwrap().key[..], b"a\xffb");
    }

    #[test]
    fn compare_errors_match_etcdctl_texts() {
        // The texts of the txn_cmp_* captures.
        assert_eq!(cmp_err(r#"value("t1")="v1c""#), r#"malformed comparison: value("t1")="v1c"; got value("t1")  """#);
        assert_eq!(
            cmp_err(r#"value( "t1" ) = "v1c""#),
            r#"malformed comparison: value( "t1" ) = "v1c"; got value("t1")  """#
        );
        assert_eq!(cmp_err(r#"value(t1) = "v1c""#), r#"malformed comparison: value(t1) = "v1c"; got value("")  """#);
        assert_eq!(cmp_err(r#"value("t1") = v1c"#), r#"malformed comparison: value("t1") = v1c; got value("t1") = """#);
        assert_eq!(cmp_err("value('t1') = 'v1c'"), r#"malformed comparison: value('t1') = 'v1c'; got value("")  """#);
        assert_eq!(
            cmp_err(r#"value("t1" = "v1c""#),
            r#"malformed comparison: value("t1" = "v1c"; got value("t1")  """#
        );
        assert_eq!(cmp_err("garbage"), "malformed comparison: garbage");
        assert_eq!(cmp_err(r#"foo("t1") = "1""#), r#"malformed comparison: foo("t1") = "1" (unknown target foo)"#);
        assert_eq!(
            cmp_err(r#"VALUE("t1") = "v1c""#),
            r#"malformed comparison: VALUE("t1") = "v1c" (unknown target VALUE)"#
        );
        assert_eq!(cmp_err(r#"version("t1") = "abc""#), r#"invalid txn compare request: version("t1") = "abc""#);
        assert_eq!(cmp_err(r#"value("t1")"#), r#"malformed comparison: value("t1"); got value("t1")  """#);
    }

    #[test]
    fn where_etcdctl_panics_there_is_a_clear_error() {
        let e = cmp_err(r#"value("t1") == "v1c""#);
        assert!(e.contains("unknown operator =="), "{e}");
        let e = cmp_err(r#"value("t1") >= "v1c""#);
        assert!(e.contains("unknown operator >="), "{e}");
        assert_eq!(cmp_err(r#"lease("t1") = "xyz""#), r#"invalid txn compare request: lease("t1") = "xyz""#);
    }

    #[test]
    fn argify_splits_like_etcdctl() {
        let a = |s: &str| argify(s.as_bytes()).unwrap();
        assert_eq!(a(r#"put tq "hello world""#), vec![b"put".to_vec(), b"tq".to_vec(), b"hello world".to_vec()]);
        assert_eq!(a("put tq2 'single quoted'"), vec![b"put".to_vec(), b"tq2".to_vec(), b"single quoted".to_vec()]);
        assert_eq!(a(r#"put k "a\"b" --prev-kv"#)[2], b"a\"b");
        assert_eq!(a("put k v --lease=1234").len(), 4);
        assert_eq!(a(r#"put k "unterminated"#), vec![b"put".to_vec(), b"k".to_vec(), b"unterminated".to_vec()]);
        assert_eq!(argify(br#"put k "a\qb""#).unwrap_err(), CtlError::invalid_input("invalid syntax"));
    }

    #[test]
    fn op_lines_use_the_command_flags() {
        let op = |s: &str| parse_op(s.as_bytes());
        match op("put tq \"again\" --prev-kv").unwrap().request {
            Some(request_op::Request::RequestPut(p)) => {
                assert_eq!((&p.key[..], &p.value[..], p.prev_kv), (&b"tq"[..], &b"again"[..], true))
            }
            other => panic!("{other:?}"),
        }
        match op("get tp/ --prefix --keys-only").unwrap().request {
            Some(request_op::Request::RequestRange(r)) => {
                assert_eq!((&r.key[..], &r.range_end[..], r.keys_only), (&b"tp/"[..], &b"tp0"[..], true))
            }
            other => panic!("{other:?}"),
        }
        match op("get td2 --rev=5").unwrap().request {
            Some(request_op::Request::RequestRange(r)) => assert_eq!(r.revision, 5),
            other => panic!("{other:?}"),
        }
        match op("del tp/ --prefix --prev-kv").unwrap().request {
            Some(request_op::Request::RequestDeleteRange(d)) => assert!(d.prev_kv && !d.range_end.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn op_line_errors_match_etcdctl() {
        let err = |s: &str| parse_op(s.as_bytes()).unwrap_err();
        assert_eq!(err("get"), CtlError::invalid_input("invalid txn compare request: get"));
        assert_eq!(err("put"), CtlError::invalid_input("invalid txn compare request: put"));
        assert_eq!(err("foo k"), CtlError::invalid_input("invalid txn request: foo k"));
        assert_eq!(err("put k v --bogus"), CtlError::invalid_input("invalid txn request: put k v --bogus"));
        assert_eq!(
            err("put tq3"),
            CtlError::new(EXIT_BAD_ARGS, "put command needs 1 argument and input from stdin or 2 arguments")
        );
        assert_eq!(err("get b --consistency=x"), CtlError::new(EXIT_BAD_FEATURE, "unknown consistency flag \"x\""));
        assert_eq!(err("get a --prefix --from-key").code, EXIT_BAD_ARGS);
        assert_eq!(err("del a b c").code, EXIT_BAD_ARGS);
    }

    fn read(input: &str, interactive: bool) -> (Result<TxnRequest, CtlError>, String) {
        let mut prompts = Vec::new();
        let r = read_txn(&mut input.as_bytes(), interactive, &mut prompts);
        (r, String::from_utf8(prompts).unwrap())
    }

    #[test]
    fn sections_end_with_empty_lines() {
        let (t, prompts) = read("value(\"t1\") = \"v1\"\n\nput t1 v1b\nget t1\ndel t2\n\nput t1 failed\n\n", false);
        let t = t.unwrap();
        assert_eq!((t.compare.len(), t.success.len(), t.failure.len()), (1, 3, 1));
        assert_eq!(prompts, "");
        let (t, _) = read("\n\n\n", false);
        assert_eq!(t.unwrap(), TxnRequest::default());
        // Lines are trimmed.
        let (t, _) = read("  value(\"t1\") = \"v1c\"  \n \n\t\n\n", false);
        assert_eq!(t.unwrap().compare.len(), 1);
    }

    #[test]
    fn eof_before_the_last_empty_line_is_an_error() {
        let cases = [
            "",                                      // txn_eof_stdin_null
            "value(\"t1\") = \"v1c\"\n\nget t1\n",   // txn_eof_no_blank, txn_no_trailing_newline
            "value(\"t1\") = \"v1c\"\n\nget t1\n\n", // no end of the failure section
            "\n\n\nextra",                           // fine: the rest is never read
        ];
        for input in &cases[..3] {
            let (t, _) = read(input, false);
            assert_eq!(t.unwrap_err(), CtlError::invalid_input("EOF"), "{input:?}");
        }
        assert!(read(cases[3], false).0.is_ok());
    }

    #[test]
    fn interactive_prompts_come_before_each_section() {
        let (t, prompts) = read("mod(\"t1\") > \"0\"\n\nput t5 v5\n\nput t5 other\n\n", true);
        assert!(t.is_ok());
        assert_eq!(prompts, "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n");
        // An error in the success section leaves only the prompts before it.
        let (t, prompts) = read("\nput k\n\n\n", true);
        assert_eq!(t.unwrap_err().code, EXIT_BAD_ARGS);
        assert_eq!(prompts, "compares:\nsuccess requests (get, put, del):\n");
    }
}
