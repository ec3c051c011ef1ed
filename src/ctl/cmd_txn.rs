//! The `txn` command: reads the transaction from stdin (with prompts in
//! interactive mode), commits it, prints the result.
//!
//! Owns the command's sequence only; the grammar is `txn_parse`'s, the
//! output the printers'.

use super::cli::{bool_value, TxnArgs};
use super::exit::CtlError;
use super::print::Output;
use super::settings::Settings;
use super::txn_parse;
use std::io::{BufRead, Write};

pub fn txn(s: &Settings, a: &TxnArgs, stdin: &mut dyn BufRead, stdout: &mut dyn Write) -> Result<Output, CtlError> {
    if !a.args.is_empty() {
        return Err(CtlError::bad_args("txn command does not accept argument"));
    }
    let interactive = bool_value(&a.interactive, "--interactive")?;
    let printer = s.printer()?;
    let client = s.client()?;
    let req = txn_parse::read_txn(stdin, interactive, stdout)?;
    let resp = client.txn(req).map_err(|e| CtlError::request(&e))?;
    printer.txn(&resp)
}
