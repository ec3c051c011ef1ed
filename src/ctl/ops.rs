//! Requests built from `get`, `put` and `del` arguments and flags, with
//! etcdctl's checks, error texts and exit codes, in etcdctl's order
//! (`getGetOp`, `getPutOp`, `getDelOp`). Shared by the top-level commands
//! and by txn op lines.
//!
//! Owns the translation to `RangeRequest` / `PutRequest` /
//! `DeleteRangeRequest` (mirroring clientv3's `OpOption`s); never sends.

use super::exit::CtlError;
use super::gofmt;
use crate::client::prefix_end;
use crate::proto::etcdserverpb::{range_request, DeleteRangeRequest, PutRequest, RangeRequest};
use std::io::Read;

/// `get`'s flags, as given.
#[derive(Debug, Clone, Default)]
pub struct GetFlags {
    pub consistency: String,
    pub order: String,
    pub sort_by: String,
    pub limit: i64,
    pub prefix: bool,
    pub from_key: bool,
    pub rev: i64,
    pub keys_only: bool,
    pub count_only: bool,
    pub print_value_only: bool,
}

/// `put`'s flags, as given.
#[derive(Debug, Clone, Default)]
pub struct PutFlags {
    pub lease: String,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

/// `del`'s flags, as given.
#[derive(Debug, Clone, Default)]
pub struct DelFlags {
    pub prefix: bool,
    pub prev_kv: bool,
    pub from_key: bool,
}

const PREFIX_AND_FROM_KEY: &str = "`--prefix` and `--from-key` cannot be set at the same time, choose one";
const TOO_MANY_WITH_PREFIX: &str =
    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set";

/// etcdctl's `getGetOp`.
pub fn range_request(args: &[Vec<u8>], f: &GetFlags) -> Result<RangeRequest, CtlError> {
    if args.is_empty() {
        return Err(CtlError::bad_args("get command needs one argument as key and an optional argument as range_end"));
    }
    if f.prefix && f.from_key {
        return Err(CtlError::bad_args(PREFIX_AND_FROM_KEY));
    }
    if f.keys_only && f.count_only {
        return Err(CtlError::bad_args("`--keys-only` and `--count-only` cannot be set at the same time, choose one"));
    }
    let serializable = match f.consistency.as_str() {
        "s" => true,
        "l" => false,
        other => {
            return Err(CtlError::bad_feature(format!("unknown consistency flag {}", gofmt::quote(other.as_bytes()))))
        }
    };
    let mut req = RangeRequest { key: args[0].clone().into(), serializable, ..Default::default() };
    if args.len() > 1 {
        if f.prefix || f.from_key {
            return Err(CtlError::bad_args(TOO_MANY_WITH_PREFIX));
        }
        req.range_end = args[1].clone().into();
    }
    req.limit = f.limit;
    if f.rev > 0 {
        req.revision = f.rev;
    }
    let order = match f.order.to_uppercase().as_str() {
        "ASCEND" => range_request::SortOrder::Ascend,
        "DESCEND" => range_request::SortOrder::Descend,
        "" => range_request::SortOrder::None,
        _ => return Err(CtlError::bad_feature(format!("bad sort order {}", f.order))),
    };
    let target = match f.sort_by.to_uppercase().as_str() {
        "CREATE" => range_request::SortTarget::Create,
        "KEY" | "" => range_request::SortTarget::Key,
        "MODIFY" => range_request::SortTarget::Mod,
        "VALUE" => range_request::SortTarget::Value,
        "VERSION" => range_request::SortTarget::Version,
        _ => return Err(CtlError::bad_feature(format!("bad sort target {}", f.sort_by))),
    };
    // clientv3's WithSort: the server returns keys ascending anyway, so
    // KEY + ASCEND is sent as no sort at all.
    let order = if target == range_request::SortTarget::Key && order == range_request::SortOrder::Ascend {
        range_request::SortOrder::None
    } else {
        order
    };
    req.sort_order = order as i32;
    req.sort_target = target as i32;
    let (key, end) = key_range(&args[0], f.prefix, f.from_key);
    req.key = key.into();
    if let Some(end) = end {
        req.range_end = end.into();
    }
    req.keys_only = f.keys_only;
    req.count_only = f.count_only;
    Ok(req)
}

/// Key and range end for `--prefix` / `--from-key` (clientv3's
/// `WithPrefix` / `WithFromKey`, and etcdctl's `\x00` for an empty key).
fn key_range(key: &[u8], prefix: bool, from_key: bool) -> (Vec<u8>, Option<Vec<u8>>) {
    if (prefix || from_key) && key.is_empty() {
        return (vec![0], Some(vec![0]));
    }
    if prefix {
        return (key.to_vec(), Some(prefix_end(key)));
    }
    if from_key {
        return (key.to_vec(), Some(vec![0]));
    }
    (key.to_vec(), None)
}

/// etcdctl's `getPutOp`. `stdin` supplies the value when it is not an
/// argument (`None` inside a txn, where stdin carries the txn itself).
pub fn put_request(args: &[Vec<u8>], f: &PutFlags, stdin: Option<&mut dyn Read>) -> Result<PutRequest, CtlError> {
    const NEEDS: &str = "put command needs 1 argument and input from stdin or 2 arguments";
    if args.is_empty() {
        return Err(CtlError::bad_args(NEEDS));
    }
    if f.ignore_value && args.len() > 1 {
        return Err(CtlError::bad_args("put command needs only 1 argument when 'ignore-value' is set"));
    }
    let mut value = Vec::new();
    if !f.ignore_value {
        if let Some(v) = args.get(1) {
            value = v.clone();
        } else {
            // The whole of stdin, trailing newline included; empty stdin
            // (or none) is an argument error.
            let Some(stdin) = stdin else { return Err(CtlError::bad_args(NEEDS)) };
            if stdin.read_to_end(&mut value).is_err() || value.is_empty() {
                return Err(CtlError::bad_args(NEEDS));
            }
        }
    }
    let lease = gofmt::parse_int(&f.lease, 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: args[0].clone().into(),
        value: value.into(),
        lease,
        prev_kv: f.prev_kv,
        ignore_value: f.ignore_value,
        ignore_lease: f.ignore_lease,
    })
}

/// etcdctl's `getDelOp`.
pub fn delete_request(args: &[Vec<u8>], f: &DelFlags) -> Result<DeleteRangeRequest, CtlError> {
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::bad_args("del command needs one argument as key and an optional argument as range_end"));
    }
    if f.prefix && f.from_key {
        return Err(CtlError::bad_args(PREFIX_AND_FROM_KEY));
    }
    let mut req = DeleteRangeRequest { key: args[0].clone().into(), prev_kv: f.prev_kv, ..Default::default() };
    if args.len() > 1 {
        if f.prefix || f.from_key {
            return Err(CtlError::bad_args(TOO_MANY_WITH_PREFIX));
        }
        req.range_end = args[1].clone().into();
    }
    let (key, end) = key_range(&args[0], f.prefix, f.from_key);
    req.key = key.into();
    if let Some(end) = end {
        req.range_end = end.into();
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::exit::{EXIT_BAD_ARGS, EXIT_BAD_FEATURE};

    fn args(a: &[&str]) -> Vec<Vec<u8>> {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn get_flags() -> GetFlags {
        GetFlags { consistency: "l".into(), ..Default::default() }
    }

    #[test]
    fn get_builds_ranges_like_clientv3() {
        let r = range_request(&args(&["a"]), &GetFlags { prefix: true, ..get_flags() }).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"a"[..], &b"b"[..]));
        let r = range_request(&args(&[""]), &GetFlags { prefix: true, ..get_flags() }).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"\0"[..], &b"\0"[..]));
        let r = range_request(&args(&[""]), &GetFlags { from_key: true, ..get_flags() }).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"\0"[..], &b"\0"[..]));
        let r = range_request(&args(&["c"]), &GetFlags { from_key: true, ..get_flags() }).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"c"[..], &b"\0"[..]));
        let r = range_request(&args(&["a", "c"]), &get_flags()).unwrap();
        assert_eq!(&r.range_end[..], b"c");
        let r = range_request(&args(&["a", "b", "c"]), &get_flags()).unwrap();
        assert_eq!(&r.range_end[..], b"b", "etcdctl ignores a third argument");
        let r = range_request(&args(&["a"]), &GetFlags { consistency: "s".into(), rev: -1, limit: -1, ..get_flags() })
            .unwrap();
        assert!(r.serializable);
        assert_eq!((r.revision, r.limit), (0, -1));
    }

    #[test]
    fn get_sorting_follows_with_sort() {
        let sorted = |by: &str, order: &str| {
            let r = range_request(&args(&["a"]), &GetFlags { sort_by: by.into(), order: order.into(), ..get_flags() })
                .unwrap();
            (r.sort_target, r.sort_order)
        };
        use range_request::{SortOrder as O, SortTarget as T};
        assert_eq!(sorted("", ""), (T::Key as i32, O::None as i32));
        assert_eq!(sorted("KEY", "ASCEND"), (T::Key as i32, O::None as i32));
        assert_eq!(sorted("", "descend"), (T::Key as i32, O::Descend as i32));
        assert_eq!(sorted("value", ""), (T::Value as i32, O::None as i32));
        assert_eq!(sorted("MODIFY", "ASCEND"), (T::Mod as i32, O::Ascend as i32));
    }

    #[test]
    fn get_errors_match_etcdctl() {
        let err = |a: &[&str], f: GetFlags| range_request(&args(a), &f).unwrap_err();
        assert_eq!(
            err(&[], get_flags()),
            CtlError::new(EXIT_BAD_ARGS, "get command needs one argument as key and an optional argument as range_end")
        );
        assert_eq!(err(&["a"], GetFlags { prefix: true, from_key: true, ..get_flags() }).code, EXIT_BAD_ARGS);
        assert_eq!(
            err(&["a", "c"], GetFlags { prefix: true, ..get_flags() }).message,
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"
        );
        assert_eq!(
            err(&["a"], GetFlags { consistency: "x".into(), ..get_flags() }),
            CtlError::new(EXIT_BAD_FEATURE, "unknown consistency flag \"x\"")
        );
        assert_eq!(err(&["a"], GetFlags { sort_by: "FOO".into(), ..get_flags() }).message, "bad sort target FOO");
        assert_eq!(err(&["a"], GetFlags { order: "UP".into(), ..get_flags() }).message, "bad sort order UP");
    }

    #[test]
    fn put_reads_value_and_lease_like_etcdctl() {
        let f = PutFlags { lease: "0".into(), ..Default::default() };
        let mut stdin: &[u8] = b"from stdin\n";
        let p = put_request(&args(&["k"]), &f, Some(&mut stdin)).unwrap();
        assert_eq!(&p.value[..], b"from stdin\n");
        let mut empty: &[u8] = b"";
        assert_eq!(put_request(&args(&["k"]), &f, Some(&mut empty)).unwrap_err().code, EXIT_BAD_ARGS);
        assert_eq!(put_request(&args(&["k"]), &f, None).unwrap_err().code, EXIT_BAD_ARGS);
        let p = put_request(&args(&["a", "b", "c"]), &f, None).unwrap();
        assert_eq!(&p.value[..], b"b", "extra arguments are ignored");
        let p = put_request(&args(&["k", "v"]), &PutFlags { lease: "1234abcd".into(), ..f.clone() }, None).unwrap();
        assert_eq!(p.lease, 0x1234abcd);
        assert_eq!(
            put_request(&args(&["k", "v"]), &PutFlags { lease: "xyz".into(), ..f.clone() }, None).unwrap_err(),
            CtlError::bad_args("bad lease ID (strconv.ParseInt: parsing \"xyz\": invalid syntax), expecting ID in Hex")
        );
        assert_eq!(
            put_request(&args(&["k", "v"]), &PutFlags { ignore_value: true, ..f.clone() }, None).unwrap_err().message,
            "put command needs only 1 argument when 'ignore-value' is set"
        );
        let p = put_request(&args(&["k"]), &PutFlags { ignore_value: true, ..f }, None).unwrap();
        assert!(p.ignore_value && p.value.is_empty());
    }

    #[test]
    fn del_builds_ranges_and_checks_arguments() {
        let d =
            delete_request(&args(&["dp/"]), &DelFlags { prefix: true, prev_kv: true, ..Default::default() }).unwrap();
        assert_eq!((&d.key[..], &d.range_end[..], d.prev_kv), (&b"dp/"[..], &b"dp0"[..], true));
        let d = delete_request(&args(&[""]), &DelFlags { from_key: true, ..Default::default() }).unwrap();
        assert_eq!((&d.key[..], &d.range_end[..]), (&b"\0"[..], &b"\0"[..]));
        assert_eq!(delete_request(&args(&["a", "b", "c"]), &DelFlags::default()).unwrap_err().code, EXIT_BAD_ARGS);
        assert_eq!(delete_request(&args(&[]), &DelFlags::default()).unwrap_err().code, EXIT_BAD_ARGS);
    }
}
