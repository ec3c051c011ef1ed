//! The answers of the commands that change the cluster (`member add`,
//! `remove`, `update`, `promote`, `move-leader`), as etcdctl 3.4 prints
//! them: a line in simple, the response in json and protobuf, and "not
//! supported" in table and fields (etcdctl has no such printers for them).
//!
//! Owns these texts only; pure (answers in, bytes out).

use super::{json, unsupported, Format, Output, Printer};
use crate::ctl::exit::CtlError;
use crate::proto::etcdserverpb::{
    Member, MemberAddResponse, MemberPromoteResponse, MemberRemoveResponse, MemberUpdateResponse, MoveLeaderResponse,
    ResponseHeader,
};
use prost::Message;

/// One command's answer.
pub enum Change<'a> {
    Add(&'a MemberAddResponse),
    /// The id asked for (the answer does not name it).
    Remove(u64, &'a MemberRemoveResponse),
    Update(u64, &'a MemberUpdateResponse),
    Promote(u64, &'a MemberPromoteResponse),
    /// From the leader the command found, to the target.
    MoveLeader {
        from: u64,
        to: u64,
        resp: &'a MoveLeaderResponse,
    },
}

fn cluster_id(h: &Option<ResponseHeader>) -> u64 {
    h.as_ref().map_or(0, |h| h.cluster_id)
}

/// etcdctl's `%16x`: hex, padded with spaces to 16.
fn id16(id: u64) -> String {
    format!("{id:16x}")
}

fn simple(c: &Change<'_>) -> String {
    match c {
        // etcdctl 3.4 says "added" for a learner too (no " as learner ").
        Change::Add(r) => {
            let id = r.member.as_ref().map_or(0, |m| m.id);
            format!("Member {} added to cluster {}\n", id16(id), id16(cluster_id(&r.header)))
        }
        Change::Remove(id, r) => format!("Member {} removed from cluster {}\n", id16(*id), id16(cluster_id(&r.header))),
        Change::Update(id, r) => format!("Member {} updated in cluster {}\n", id16(*id), id16(cluster_id(&r.header))),
        Change::Promote(id, r) => format!("Member {} promoted in cluster {}\n", id16(*id), id16(cluster_id(&r.header))),
        Change::MoveLeader { from, to, .. } => format!("Leadership transferred from {from:x} to {to:x}\n"),
    }
}

fn json_of(c: &Change<'_>) -> String {
    let (header, member, members): (&Option<ResponseHeader>, Option<&Member>, &[Member]) = match c {
        Change::Add(r) => (&r.header, r.member.as_ref(), &r.members),
        Change::Remove(_, r) => (&r.header, None, &r.members),
        Change::Update(_, r) => (&r.header, None, &r.members),
        Change::Promote(_, r) => (&r.header, None, &r.members),
        Change::MoveLeader { resp, .. } => (&resp.header, None, &[]),
    };
    json::members_answer(header.as_ref(), member, members)
}

fn protobuf(c: &Change<'_>) -> Vec<u8> {
    match c {
        Change::Add(r) => r.encode_to_vec(),
        Change::Remove(_, r) => r.encode_to_vec(),
        Change::Update(_, r) => r.encode_to_vec(),
        Change::Promote(_, r) => r.encode_to_vec(),
        Change::MoveLeader { resp, .. } => resp.encode_to_vec(),
    }
}

impl Printer {
    pub fn cluster_change(&self, c: Change<'_>) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple(&c).into_bytes(),
            Format::Json => json_of(&c).into_bytes(),
            Format::Protobuf => protobuf(&c),
            Format::Table | Format::Fields => return Err(unsupported(self.format)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Option<ResponseHeader> {
        Some(ResponseHeader { cluster_id: 0xcdf8_1819_4e3a_8c32, member_id: 1, revision: 5, raft_term: 2 })
    }

    #[test]
    fn simple_lines_pad_ids_to_sixteen_as_etcdctl_does() {
        let add = MemberAddResponse {
            header: header(),
            member: Some(Member { id: 0x8e9e_05c5_2164_694d, is_learner: true, ..Default::default() }),
            members: Vec::new(),
        };
        assert_eq!(simple(&Change::Add(&add)), "Member 8e9e05c52164694d added to cluster cdf818194e3a8c32\n");
        let rm = MemberRemoveResponse { header: header(), members: Vec::new() };
        assert_eq!(
            simple(&Change::Remove(0xabc, &rm)),
            "Member              abc removed from cluster cdf818194e3a8c32\n"
        );
        let mv = MoveLeaderResponse { header: header() };
        assert_eq!(
            simple(&Change::MoveLeader { from: 0x1a, to: 0x2b, resp: &mv }),
            "Leadership transferred from 1a to 2b\n"
        );
    }
}
