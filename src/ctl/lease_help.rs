//! The help texts of `lease` and its subcommands, in etcdctl 3.4's layout
//! (its cobra usage template, laid out by Go's `text/tabwriter` with tab
//! padding), which is what `lease`, `lease bogus` and `lease ... --help`
//! print.
//!
//! Owns only these texts. They match etcdctl's byte for byte (with the
//! program's name) except the GLOBAL OPTIONS section, which lists the
//! global flags raftkvctl has, in etcdctl's words, rather than etcdctl's
//! TLS, auth and discovery flags that raftkvctl does not accept.

/// `(flag column, usage)` of the global flags raftkvctl accepts, in
/// etcdctl's (alphabetical) order and wording.
const GLOBALS: &[FlagLine] = &[
    ("      --command-timeout=5s", "timeout for short running command (excluding dial timeout)"),
    ("      --dial-timeout=2s", "dial timeout for client connections"),
    ("      --endpoints=[127.0.0.1:2379]", "gRPC endpoints"),
    ("      --hex[=false]", "print byte strings as hex encoded strings"),
    ("  -w, --write-out=\"simple\"", "set the output format (fields, json, protobuf, simple, table)"),
];

/// A flag's help line: the flag column and the usage text.
type FlagLine = (&'static str, &'static str);

/// The `lease` subcommands: name, usage line arguments, short text, and
/// their own flags (besides `--help`).
const SUBCOMMANDS: &[(&str, &str, &str, &[FlagLine])] = &[
    ("grant", "<ttl>", "Creates leases", &[]),
    (
        "keep-alive",
        "[options] <leaseID>",
        "Keeps leases alive (renew)",
        &[("      --once[=false]", "Resets the keep-alive time to its original value and exits immediately")],
    ),
    ("list", "", "List all active leases", &[]),
    ("revoke", "<leaseID>", "Revokes leases", &[]),
    (
        "timetolive",
        "<leaseID> [options]",
        "Get lease information",
        &[("      --keys[=false]", "Get keys attached to this lease")],
    ),
];

/// Go's `tabwriter.NewWriter(w, 0, 8, 1, '\t', 0)` on a block of rows of
/// two cells: the first cell padded with tabs to a multiple of 8 columns
/// wider than the widest first cell.
fn tab_block(rows: &[(&str, &str)]) -> String {
    let widest = rows.iter().map(|(a, _)| a.chars().count()).max().unwrap_or(0);
    let cell = (widest + 1).div_ceil(8) * 8;
    let mut out = String::new();
    for (a, b) in rows {
        let pad = cell - a.chars().count();
        out.push_str(a);
        out.push_str(&"\t".repeat(pad.div_ceil(8)));
        out.push_str(b);
        out.push('\n');
    }
    out
}

fn options_and_globals(help_for: &str, own: &[(&str, &str)]) -> String {
    let help_text = format!("help for {help_for}");
    let mut options = vec![("  -h, --help[=false]", help_text.as_str())];
    options.extend_from_slice(own);
    format!("OPTIONS:\n{}\nGLOBAL OPTIONS:\n{}\n", tab_block(&options), tab_block(GLOBALS))
}

/// The help of `lease` itself (also shown for no or an unknown subcommand).
pub fn lease(program: &str) -> String {
    // Each row starts with an empty cell, which tabwriter pads to one tab.
    let rows: Vec<(&str, &str)> = SUBCOMMANDS.iter().map(|(name, _, short, _)| (*name, *short)).collect();
    let commands: String = tab_block(&rows).lines().map(|l| format!("\t{l}\n")).collect();
    format!(
        "NAME:\n\tlease - Lease related commands\n\nUSAGE:\n\t{program} lease <subcommand> [flags]\n\n\
         API VERSION:\n\t3.4\n\n\nCOMMANDS:\n{commands}\n{}",
        options_and_globals("lease", &[])
    )
}

/// The help of `lease NAME`, or `None` for an unknown subcommand.
pub fn subcommand(program: &str, name: &str) -> Option<String> {
    let (name, args, short, own) = SUBCOMMANDS.iter().find(|(n, ..)| *n == name)?;
    let usage = if args.is_empty() {
        format!("{program} lease {name} [flags]")
    } else {
        format!("{program} lease {name} {args} [flags]")
    };
    Some(format!("NAME:\n\tlease {name} - {short}\n\nUSAGE:\n\t{usage}\n\n{}", options_and_globals(name, own)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_padding_follows_tabwriter() {
        // The widest cell (10) + 1 rounds up to 16: "grant" gets 2 tabs,
        // "keep-alive" 1.
        assert_eq!(tab_block(&[("grant", "a"), ("keep-alive", "b")]), "grant\t\ta\nkeep-alive\tb\n");
        // Exactly a multiple of 8 still gets a tab (the padding of 1).
        assert_eq!(tab_block(&[("12345678", "x")]), "12345678\tx\n");
    }

    #[test]
    fn lease_help_lists_the_subcommands() {
        let h = lease("raftkvctl");
        assert!(h.contains("COMMANDS:\n\tgrant\t\tCreates leases\n\tkeep-alive\tKeeps leases alive (renew)\n"), "{h}");
        assert!(h.ends_with("table)\n\n"), "{h}");
        assert!(subcommand("raftkvctl", "bogus").is_none());
    }
}
