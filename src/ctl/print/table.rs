//! The table format, for the commands where etcdctl has one (endpoint
//! status and health): an emulation of the tablewriter version etcdctl 3.4
//! uses (upper-cased centred headers, right-aligned cells, one space of
//! padding, cells over 30 columns wrapped on spaces with tablewriter's
//! minimum-raggedness algorithm).
//!
//! Owns only the layout; the rows come from the callers.

use super::simple::{endpoint_status_rows, member_list_rows};
use super::{EpHealth, EpStatus};
use crate::proto::etcdserverpb::MemberListResponse;

/// Widest a cell grows before it is wrapped.
const MAX_COL_WIDTH: usize = 30;
/// tablewriter's penalty for a line longer than the limit.
const PENALTY: usize = 100_000;

fn width(s: &str) -> usize {
    s.chars().count()
}

/// tablewriter's `Title`: `_` (and `.` between letters) to spaces, trimmed,
/// upper-cased.
fn title(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let num_or_space = |c: char| c.is_ascii_digit() || c == ' ';
    let mapped: String = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| match c {
            '_' => ' ',
            '.' if (i != 0 && !num_or_space(chars[i - 1])) || (i + 1 != chars.len() && !num_or_space(chars[i + 1])) => {
                ' '
            }
            c => c,
        })
        .collect();
    let trimmed = mapped.trim();
    if trimmed.is_empty() && !name.is_empty() {
        return " ".to_string();
    }
    trimmed.to_uppercase()
}

/// tablewriter's `WrapWords`: the split of `words` into lines of at most
/// `lim` columns that minimises the sum of squared slack.
fn wrap_words(words: &[&str], lim: usize) -> Vec<String> {
    let n = words.len();
    if n == 0 {
        return vec![String::new()];
    }
    // length[i][j]: width of words i..=j joined by single spaces.
    let mut length = vec![vec![0usize; n]; n];
    for i in 0..n {
        length[i][i] = width(words[i]);
        for j in i + 1..n {
            length[i][j] = length[i][j - 1] + 1 + width(words[j]);
        }
    }
    let mut cost = vec![usize::MAX; n];
    let mut brk = vec![0usize; n];
    for i in (0..n).rev() {
        if length[i][n - 1] <= lim {
            cost[i] = 0;
            brk[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = length[i][j - 1];
            let d = lim as i64 - len as i64;
            let mut c = (d * d) as usize + cost[j];
            if len > lim {
                c += PENALTY;
            }
            if c < cost[i] {
                cost[i] = c;
                brk[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..brk[i]].join(" "));
        i = brk[i];
    }
    lines
}

/// tablewriter's `WrapString`: never splits a word, so the limit grows to
/// the longest word.
fn wrap_string(s: &str, lim: usize) -> Vec<String> {
    let flat = s.replace('\n', " ");
    let words: Vec<&str> = flat.split(' ').collect();
    let lim = words.iter().map(|w| width(w)).max().unwrap_or(0).max(lim);
    wrap_words(&words, lim)
}

/// Renders a bordered table.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h).min(MAX_COL_WIDTH)).collect();
    // Cells are measured and wrapped in order, each against the column width
    // known so far, as tablewriter does.
    let mut cells: Vec<Vec<Vec<String>>> = Vec::with_capacity(rows.len());
    for row in rows {
        let mut out = Vec::with_capacity(cols);
        for (c, cell) in row.iter().enumerate().take(cols) {
            widths[c] = widths[c].max(width(cell).min(MAX_COL_WIDTH));
            let lines = wrap_string(cell, widths[c]);
            let widest = lines.iter().map(|l| width(l)).max().unwrap_or(0);
            widths[c] = widths[c].max(widest);
            out.push(lines);
        }
        cells.push(out);
    }
    let border = {
        let mut b = String::from("+");
        for w in &widths {
            b.push_str(&"-".repeat(w + 2));
            b.push('+');
        }
        b.push('\n');
        b
    };
    let mut out = border.clone();
    out.push('|');
    for (c, h) in headers.iter().enumerate() {
        let h = title(h);
        let gap = widths[c].saturating_sub(width(&h));
        let left = gap / 2;
        out.push_str(&format!(" {}{}{} |", " ".repeat(left), h, " ".repeat(gap - left)));
    }
    out.push('\n');
    out.push_str(&border);
    for row in &cells {
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..height {
            out.push('|');
            for (c, col) in row.iter().enumerate() {
                // tablewriter pads short cells with two-space lines.
                let text = col.get(line).map(String::as_str).unwrap_or("  ");
                let gap = widths[c].saturating_sub(width(text));
                out.push_str(&format!(" {}{} |", " ".repeat(gap), text));
            }
            out.push('\n');
        }
    }
    out.push_str(&border);
    out
}

pub fn endpoint_status(list: &[EpStatus]) -> String {
    let headers = [
        "endpoint",
        "ID",
        "version",
        "db size",
        "is leader",
        "is learner",
        "raft term",
        "raft index",
        "raft applied index",
        "errors",
    ];
    render(&headers, &endpoint_status_rows(list))
}

pub fn member_list(r: &MemberListResponse) -> String {
    render(&["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"], &member_list_rows(r))
}

pub fn endpoint_health(list: &[EpHealth]) -> String {
    let rows: Vec<Vec<String>> =
        list.iter().map(|h| vec![h.ep.clone(), h.health.to_string(), h.took.clone(), h.error.clone()]).collect();
    render(&["endpoint", "health", "took", "error"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_cells_are_not_wrapped() {
        assert_eq!(wrap_string("context deadline exceeded", 25), vec!["context deadline exceeded"]);
        assert_eq!(wrap_string("", 6), vec![""]);
    }

    #[test]
    fn long_cells_wrap_on_spaces_within_thirty_columns() {
        let t = render(
            &["error"],
            &[vec!["etcdserver: request timed out, possibly due to previous leader failure".to_string()]],
        );
        for line in t.lines() {
            assert!(line.chars().count() <= MAX_COL_WIDTH + 4, "{line}");
        }
        assert!(t.lines().count() > 5, "{t}");
    }

    #[test]
    fn titles_are_upper_cased() {
        assert_eq!(title("raft applied index"), "RAFT APPLIED INDEX");
        assert_eq!(title("db_size"), "DB SIZE");
        assert_eq!(title("v1.0"), "V1.0");
    }
}
