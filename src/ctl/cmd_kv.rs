//! The key-value commands: `put`, `get`, `del`, `compaction`.
//!
//! Owns each command's sequence, in etcdctl's order: argument checks, the
//! output-format check, the request, then format-specific checks and
//! printing (so `-w table` fails after a write was applied, as etcdctl
//! does). Never formats output itself.

use super::cli::{bool_value, raw_args, CompactionArgs, DelArgs, GetArgs, PutArgs};
use super::exit::{CtlError, EXIT_ERROR};
use super::gofmt;
use super::ops;
use super::print::{Format, Output};
use super::settings::Settings;
use crate::proto::etcdserverpb::CompactionRequest;
use std::io::Read;

pub fn put(s: &Settings, a: &PutArgs, stdin: &mut dyn Read) -> Result<Output, CtlError> {
    let flags = a.flags()?;
    let req = ops::put_request(&raw_args(&a.args), &flags, Some(stdin))?;
    let printer = s.printer()?;
    let resp = s.client()?.put(req).map_err(|e| CtlError::request(&e))?;
    printer.put(&resp)
}

pub fn get(s: &Settings, a: &GetArgs) -> Result<Output, CtlError> {
    let flags = a.flags()?;
    let req = ops::range_request(&raw_args(&a.args), &flags)?;
    let printer = s.printer()?;
    let resp = s.client()?.range(req).map_err(|e| CtlError::request(&e))?;
    if flags.count_only && printer.format != Format::Fields {
        return Err(CtlError::bad_args("--count-only is only for `--write-out=fields`"));
    }
    if flags.print_value_only && printer.format != Format::Simple {
        return Err(CtlError::bad_args("print-value-only is only for `--write-out=simple`"));
    }
    printer.get(&resp, flags.print_value_only)
}

pub fn del(s: &Settings, a: &DelArgs) -> Result<Output, CtlError> {
    let req = ops::delete_request(&raw_args(&a.args), &a.flags()?)?;
    let printer = s.printer()?;
    let resp = s.client()?.delete_range(req).map_err(|e| CtlError::request(&e))?;
    printer.del(&resp)
}

/// Prints `compacted revision N` whatever the output format (etcdctl
/// ignores `-w` here, though an unknown format is still an error).
pub fn compaction(s: &Settings, a: &CompactionArgs) -> Result<Output, CtlError> {
    if a.args.len() != 1 {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    }
    let arg = a.args[0].to_string_lossy();
    let revision = gofmt::parse_int(&arg, 10).map_err(|e| CtlError::new(EXIT_ERROR, e))?;
    let physical = bool_value(&a.physical, "--physical")?;
    s.printer()?;
    s.client()?.compact(CompactionRequest { revision, physical }).map_err(|e| CtlError::request(&e))?;
    Ok(Output { stdout: format!("compacted revision {revision}\n").into_bytes(), stderr: Vec::new() })
}
