//! `alarm list|disarm` as etcdctl 3.4 prints them: `%+v` of each alarm in
//! simple (`memberID:<id> alarm:<NAME> `), the response in json (the
//! alarm type as its number) and protobuf, etcd's fields lines; table is
//! not supported.
//!
//! Owns these texts only; pure.

use super::{unsupported, Format, Output, Printer};
use crate::ctl::exit::CtlError;
use crate::proto::etcdserverpb::AlarmResponse;
use crate::server::alarms::{alarm_name, alarm_text};
use prost::Message;
use std::fmt::Write as _;

fn simple(r: &AlarmResponse) -> String {
    r.alarms.iter().map(|a| format!("{}\n", alarm_text(a))).collect()
}

fn json(r: &AlarmResponse) -> String {
    if r.alarms.is_empty() {
        return "{}\n".into();
    }
    let alarms: Vec<String> =
        r.alarms.iter().map(|a| format!("{{\"memberID\":{},\"alarm\":{}}}", a.member_id, a.alarm)).collect();
    format!("{{\"alarms\":[{}]}}\n", alarms.join(","))
}

fn fields(r: &AlarmResponse) -> String {
    let h = r.header.unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "\"ClusterID\" : {}", h.cluster_id);
    let _ = writeln!(out, "\"MemberID\" : {}", h.member_id);
    let _ = writeln!(out, "\"Revision\" : {}", h.revision);
    let _ = writeln!(out, "\"RaftTerm\" : {}", h.raft_term);
    for a in &r.alarms {
        let name = alarm_name(a.alarm);
        let _ = writeln!(out, "\"MemberID\" : {}", a.member_id);
        let _ = writeln!(out, "\"AlarmType\" : {name}");
    }
    out
}

impl Printer {
    pub fn alarms(&self, r: &AlarmResponse) -> Result<Output, CtlError> {
        Ok(Output::out(match self.format {
            Format::Simple => simple(r).into_bytes(),
            Format::Json => json(r).into_bytes(),
            Format::Fields => fields(r).into_bytes(),
            Format::Protobuf => r.encode_to_vec(),
            Format::Table => return Err(unsupported(self.format)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::AlarmMember;

    #[test]
    fn alarms_print_as_etcdctl_prints_them() {
        let r = AlarmResponse { header: None, alarms: vec![AlarmMember { member_id: 7625796443459403584, alarm: 1 }] };
        assert_eq!(simple(&r), "memberID:7625796443459403584 alarm:NOSPACE \n");
        assert_eq!(json(&r), "{\"alarms\":[{\"memberID\":7625796443459403584,\"alarm\":1}]}\n");
        assert_eq!(json(&AlarmResponse::default()), "{}\n");
        assert_eq!(simple(&AlarmResponse::default()), "");
    }
}
