//! `snapshot status` as etcdctl 3.4 prints it: `hash, revision, total keys,
//! total size` in simple (hash in hex, size as go-humanize's SI bytes), a
//! `HASH | REVISION | TOTAL KEYS | TOTAL SIZE` table, `{"hash":..,
//! "revision":..,"totalKey":..,"totalSize":..}` in json, etcd's fields
//! lines; protobuf is not supported.
//!
//! Owns these texts only; pure.

use super::{table, unsupported, Format, Output, Printer};
use crate::ctl::exit::CtlError;
use crate::ctl::gofmt::humanize_bytes;

/// What `snapshot status` reports about a file. The hash is the image's
/// own CRC-32 (etcd's is a CRC-32 of its bolt buckets: the figures are
/// raftkv's, the shapes etcd's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

fn row(s: &SnapshotStatus) -> Vec<String> {
    vec![format!("{:x}", s.hash), s.revision.to_string(), s.total_key.to_string(), humanize_bytes(s.total_size)]
}

impl Printer {
    pub fn snapshot_status(&self, s: &SnapshotStatus) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => format!("{}\n", row(s).join(", ")).into_bytes(),
            Format::Json => format!(
                "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
                s.hash, s.revision, s.total_key, s.total_size
            )
            .into_bytes(),
            Format::Table => table::render(&["hash", "revision", "total keys", "total size"], &[row(s)]).into_bytes(),
            Format::Fields => format!(
                "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
                s.hash, s.revision, s.total_key, s.total_size
            )
            .into_bytes(),
            Format::Protobuf => return Err(unsupported(self.format)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_prints_as_etcdctl_prints_it() {
        // tests/captures/etcdctl/snapshot/status_*.
        let s = SnapshotStatus { hash: 839391495, revision: 14, total_key: 17, total_size: 20480 };
        let p = |format| String::from_utf8(Printer { format, hex: false }.snapshot_status(&s).unwrap().stdout).unwrap();
        assert_eq!(p(Format::Simple), "32081907, 14, 17, 20 kB\n");
        assert_eq!(p(Format::Json), "{\"hash\":839391495,\"revision\":14,\"totalKey\":17,\"totalSize\":20480}\n");
        assert_eq!(
            p(Format::Table),
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | 32081907 |       14 |         17 |      20 kB |\n\
             +----------+----------+------------+------------+\n"
        );
        assert_eq!(p(Format::Fields), "\"Hash\" : 839391495\n\"Revision\" : 14\n\"Keys\" : 17\n\"Size\" : 20480\n");
        let e = Printer { format: Format::Protobuf, hex: false }.snapshot_status(&s).unwrap_err();
        assert_eq!(e.stderr_line(), "Error: protobuf not supported as output format\n");
    }
}
