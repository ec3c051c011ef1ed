//! Go-compatible parsing and formatting, so raftkvctl's texts match
//! etcdctl's byte for byte: `strconv.ParseInt`/`ParseBool` and their error
//! texts, `time.ParseDuration` and `Duration.String`, `strconv.Quote`
//! (`%q`), `%016x` of lease ids, `strconv.Unquote`, `encoding/json` string escaping, and
//! go-humanize's `Bytes`.
//!
//! Owns only these conversions; never does I/O.

use std::fmt::Write as _;
use std::time::Duration;

/// `strconv.ParseInt(s, base, 64)`, with Go's error text
/// (`strconv.ParseInt: parsing "abc": invalid syntax`).
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    let err = |what: &str| format!("strconv.ParseInt: parsing {}: {what}", quote(s.as_bytes()));
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(err("invalid syntax"));
    }
    let mut v: u128 = 0;
    for c in digits.chars() {
        let d = c.to_digit(base).ok_or_else(|| err("invalid syntax"))?;
        v = v.saturating_mul(base as u128).saturating_add(d as u128);
    }
    let limit = if neg { 1u128 << 63 } else { (1u128 << 63) - 1 };
    if v > limit {
        return Err(err("value out of range"));
    }
    Ok(if neg { (v as i128).wrapping_neg() as i64 } else { v as i64 })
}

/// `strconv.ParseUint(s, base, 64)`, with Go's error text
/// (`strconv.ParseUint: parsing "zz": invalid syntax`).
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    let err = |what: &str| format!("strconv.ParseUint: parsing {}: {what}", quote(s.as_bytes()));
    if s.is_empty() {
        return Err(err("invalid syntax"));
    }
    let mut v: u128 = 0;
    for c in s.chars() {
        let d = c.to_digit(base).ok_or_else(|| err("invalid syntax"))?;
        v = v.saturating_mul(base as u128).saturating_add(d as u128);
    }
    u64::try_from(v).map_err(|_| err("value out of range"))
}

/// Go's `%016x` of an int64 lease id: lowercase hex zero-padded to 16
/// characters, a negative id as `-` and 15 digits of its magnitude
/// (`-000000000000005`), not two's complement.
pub fn lease_hex(id: i64) -> String {
    if id < 0 {
        format!("-{:015x}", id.unsigned_abs())
    } else {
        format!("{id:016x}")
    }
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", quote(s.as_bytes()))),
    }
}

/// `time.ParseDuration` (`5s`, `500ms`, `1m30s`, `1.5h`, `-2s`), with Go's
/// error texts. Negative durations are clamped to zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", quote(s.as_bytes()));
    let mut rest = s;
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", quote(s.as_bytes())));
        }
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(unit.as_bytes()),
                    quote(s.as_bytes())
                ))
            }
        };
        total += value * nanos_per;
        rest = &rest[unit_len..];
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(if neg { Duration::ZERO } else { Duration::from_nanos(total as u64) })
}

/// `time.Duration.String()`: `1.517636ms`, `5.000862338s`, `2m0s`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos().min(i64::MAX as u128) as u64;
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 6));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let mut out = String::new();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{}s", frac(s * 1_000_000_000 + sub, 9));
    out
}

/// `v / 10^prec` with the fraction's trailing zeros (and a bare dot) cut.
fn frac(v: u64, prec: u32) -> String {
    let p = 10u64.pow(prec);
    let (int, fr) = (v / p, v % p);
    if fr == 0 {
        return int.to_string();
    }
    let digits = format!("{fr:0width$}", width = prec as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// `strconv.Quote` of raw bytes (Go's `%q` of a string): printable runes
/// as is, `\a \b \f \n \r \t \v \\ \"`, invalid UTF-8 as `\xNN`, other
/// non-printable runes as `\uNNNN` / `\UNNNNNNNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if is_print(c) => out.push(c),
                c if (c as u32) < 0x80 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if (c as u32) < 0x10000 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: graphic characters and the
/// ASCII space; other spaces, controls and format characters are not.
fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
            | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff
            | 0xfdd0..=0xfdef | 0xfffe | 0xffff))
}

/// `strconv.Unquote` for a double-quoted Go string, to raw bytes (escapes
/// like `\xff` give single bytes). `None` on invalid syntax.
pub fn unquote_double(s: &[u8]) -> Option<Vec<u8>> {
    let inner = s.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        match b {
            b'"' | b'\n' => return None,
            b'\\' => {
                let e = *inner.get(i + 1)?;
                i += 2;
                match e {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'x' => {
                        let h = std::str::from_utf8(inner.get(i..i + 2)?).ok()?;
                        out.push(u8::from_str_radix(h, 16).ok()?);
                        i += 2;
                    }
                    b'0'..=b'7' => {
                        let o = std::str::from_utf8(inner.get(i - 1..i + 2)?).ok()?;
                        let v = u32::from_str_radix(o, 8).ok()?;
                        out.push(u8::try_from(v).ok()?);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if e == b'u' { 4 } else { 8 };
                        let h = std::str::from_utf8(inner.get(i..i + n)?).ok()?;
                        let c = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += n;
                    }
                    _ => return None,
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// A JSON string as Go's `encoding/json` writes it: HTML-sensitive
/// characters and U+2028/U+2029 escaped, invalid UTF-8 replaced by U+FFFD,
/// control characters other than `\n \r \t` as `\u00XX`.
pub fn json_string(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        if !chunk.invalid().is_empty() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
    out
}

/// go-humanize's `Bytes`: SI units, one decimal below 10 (`15 MB`,
/// `25 kB`, `9.5 kB`, `512 B`).
pub fn humanize_bytes(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let e = ((s as f64).ln() / 1000f64.ln()).floor();
    let suffix = SIZES[(e as usize).min(SIZES.len() - 1)];
    let val = ((s as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    // Rust's `{:.N}` rounds ties to even, like Go's `%.Nf`.
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_hex_matches_go_016x() {
        assert_eq!(lease_hex(0x168ca2516d549006), "168ca2516d549006");
        assert_eq!(lease_hex(0x1234abcd), "000000001234abcd");
        assert_eq!(lease_hex(0), "0000000000000000");
        assert_eq!(lease_hex(-5), "-000000000000005");
        assert_eq!(lease_hex(i64::MIN), "-8000000000000000");
    }

    #[test]
    fn parse_int_matches_go() {
        assert_eq!(parse_int("1234abcd", 16), Ok(0x1234abcd));
        assert_eq!(parse_int("-5", 10), Ok(-5));
        assert_eq!(parse_int("+7", 10), Ok(7));
        assert_eq!(parse_int("xyz", 16), Err("strconv.ParseInt: parsing \"xyz\": invalid syntax".into()));
        assert_eq!(parse_int("0x12", 16), Err("strconv.ParseInt: parsing \"0x12\": invalid syntax".into()));
        assert_eq!(
            parse_int("99999999999999999999", 10),
            Err("strconv.ParseInt: parsing \"99999999999999999999\": value out of range".into())
        );
        assert_eq!(parse_int("-9223372036854775808", 10), Ok(i64::MIN));
        assert!(parse_int("", 10).is_err());
        assert!(parse_int("-", 10).is_err());
    }

    #[test]
    fn durations_parse_and_print_like_go() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("abc"), Err("time: invalid duration \"abc\"".into()));
        assert_eq!(parse_duration("1"), Err("time: missing unit in duration \"1\"".into()));
        assert_eq!(parse_duration("1x"), Err("time: unknown unit \"x\" in duration \"1x\"".into()));
        assert_eq!(format_duration(Duration::from_nanos(1_517_636)), "1.517636ms");
        assert_eq!(format_duration(Duration::from_nanos(5_000_862_338)), "5.000862338s");
        assert_eq!(format_duration(Duration::from_nanos(5_000_830_000)), "5.00083s");
        assert_eq!(format_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(format_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(format_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote(b"a"), "\"a\"");
        assert_eq!(quote(b"x\"y\\z"), "\"x\\\"y\\\\z\"");
        assert_eq!(quote(b"line1\nline2\t"), "\"line1\\nline2\\t\"");
        assert_eq!(quote(b"a\x01\xff\xfeb"), "\"a\\x01\\xff\\xfeb\"");
        assert_eq!(quote("é".as_bytes()), "\"é\"");
        assert_eq!(quote("\u{200b}".as_bytes()), "\"\\u200b\"");
    }

    #[test]
    fn unquote_handles_go_escapes() {
        assert_eq!(unquote_double(br#""t\x31""#), Some(b"t1".to_vec()));
        assert_eq!(unquote_double(br#""a\"b""#), Some(b"a\"b".to_vec()));
        assert_eq!(unquote_double(br#""\xff\101""#), Some(vec![0xff, b'A']));
        assert_eq!(unquote_double(br#""\u00e9""#), Some("é".as_bytes().to_vec()));
        assert_eq!(unquote_double(br#""a\qb""#), None);
        assert_eq!(unquote_double(br#""a'b""#), Some(b"a'b".to_vec()));
        assert_eq!(unquote_double(br#""\'""#), None, "\\' is not valid in a double-quoted Go string");
    }

    #[test]
    fn json_strings_escape_like_go() {
        assert_eq!(json_string(b"127.0.0.1:2379"), "\"127.0.0.1:2379\"");
        assert_eq!(json_string(b"<a&b>"), "\"\\u003ca\\u0026b\\u003e\"");
        assert_eq!(json_string(b"\x01\n"), "\"\\u0001\\n\"");
        assert_eq!(json_string(b"a\xffb"), "\"a\\ufffdb\"");
    }

    #[test]
    fn humanize_matches_go_humanize() {
        assert_eq!(humanize_bytes(15278080), "15 MB");
        assert_eq!(humanize_bytes(24576), "25 kB");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(9500), "9.5 kB");
        assert_eq!(humanize_bytes(512), "512 B");
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(1000), "1.0 kB");
    }
}
