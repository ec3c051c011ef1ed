//! `endpoint hashkv` as etcdctl 3.4 prints it: `ENDPOINT, HASH` lines in
//! simple, an `ENDPOINT | HASH` table, and in json each endpoint's answer
//! (`[{"Endpoint":..,"HashKV":{"header":..,"hash":..,"compact_revision":..}}]`).
//!
//! Owns these texts only; pure.

use super::{json, table, unsupported, Format, Output, Printer};
use crate::ctl::exit::CtlError;
use crate::ctl::gofmt::json_string;
use crate::proto::etcdserverpb::HashKvResponse;

/// One endpoint's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct EpHash {
    pub ep: String,
    pub resp: HashKvResponse,
}

fn rows(list: &[EpHash]) -> Vec<Vec<String>> {
    list.iter().map(|h| vec![h.ep.clone(), h.resp.hash.to_string()]).collect()
}

fn json_of(list: &[EpHash]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|h| {
            let mut o = String::from("{");
            if let Some(hd) = &h.resp.header {
                o.push_str(&format!("\"header\":{},", json::header(hd)));
            }
            o.push_str(&format!("\"hash\":{},\"compact_revision\":{}}}", h.resp.hash, h.resp.compact_revision));
            format!("{{\"Endpoint\":{},\"HashKV\":{o}}}", json_string(h.ep.as_bytes()))
        })
        .collect();
    format!("[{}]\n", items.join(","))
}

impl Printer {
    pub fn endpoint_hashkv(&self, list: &[EpHash]) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => rows(list).iter().map(|r| format!("{}\n", r.join(", "))).collect::<String>().into_bytes(),
            Format::Json => json_of(list).into_bytes(),
            Format::Table => table::render(&["endpoint", "hash"], &rows(list)).into_bytes(),
            Format::Fields | Format::Protobuf => return Err(unsupported(self.format)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::ResponseHeader;

    #[test]
    fn hashes_print_as_etcdctl_prints_them() {
        let h = EpHash {
            ep: "127.0.0.1:22701".into(),
            resp: HashKvResponse {
                header: Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 1, raft_term: 2 }),
                hash: 1084519789,
                compact_revision: -1,
                hash_revision: 0,
            },
        };
        let printer = |format| Printer { format, hex: false };
        assert_eq!(
            printer(Format::Simple).endpoint_hashkv(std::slice::from_ref(&h)).unwrap().stdout,
            b"127.0.0.1:22701, 1084519789\n"
        );
        assert_eq!(
            String::from_utf8(printer(Format::Json).endpoint_hashkv(&[h]).unwrap().stdout).unwrap(),
            "[{\"Endpoint\":\"127.0.0.1:22701\",\"HashKV\":{\"header\":{\"cluster_id\":1,\"member_id\":2,\"revision\":1,\"raft_term\":2},\"hash\":1084519789,\"compact_revision\":-1}}]\n"
        );
    }
}
