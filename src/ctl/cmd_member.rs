//! `member list`: the cluster's members as the server knows them.
//!
//! Owns the command's sequence only (format check, request, print); the
//! texts are the printers'.

use super::exit::CtlError;
use super::print::Output;
use super::settings::Settings;
use crate::proto::etcdserverpb::MemberListRequest;
use crate::proto::raftkvpb::{client_request, client_response};

pub fn list(s: &Settings) -> Result<Output, CtlError> {
    let printer = s.printer()?;
    // etcdctl 3.4 asks without linearizability (the member serves it locally).
    let body = client_request::Body::MemberList(MemberListRequest { linearizable: false });
    match s.client()?.call(body).map_err(|e| CtlError::request(&e))? {
        client_response::Body::MemberList(r) => printer.member_list(&r),
        _ => Err(CtlError::new(super::exit::EXIT_ERROR, "unexpected answer to a member list request")),
    }
}
