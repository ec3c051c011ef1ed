//! `alarm list|disarm` and `defrag`: etcd's maintenance commands.
//!
//! Owns each command's sequence (as clientv3 and etcdctl do it: disarm
//! lists the alarms, then deactivates each; defrag asks every endpoint in
//! turn and goes on after a failure); texts are the printers'.

use super::cli::{bool_value, DefragArgs, IdArgs};
use super::exit::{CtlError, EXIT_ERROR};
use super::print::Output;
use super::settings::Settings;
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest,
};
use crate::proto::raftkvpb::client_request::Body as Req;
use crate::proto::raftkvpb::client_response::Body as Resp;

fn alarm_call(client: &crate::client::Client, req: AlarmRequest) -> Result<AlarmResponse, CtlError> {
    match client.call(Req::Alarm(req)).map_err(|e| CtlError::request(&e))? {
        Resp::Alarm(r) => Ok(r),
        _ => Err(CtlError::new(EXIT_ERROR, "unexpected answer to an alarm request")),
    }
}

pub fn alarm_list(s: &Settings, a: &IdArgs) -> Result<Output, CtlError> {
    if !a.args.is_empty() {
        return Err(CtlError::bad_args("alarm list command accepts no arguments"));
    }
    let printer = s.printer()?;
    let client = s.client()?;
    let all = AlarmRequest { action: AlarmAction::Get as i32, member_id: 0, alarm: AlarmType::None as i32 };
    printer.alarms(&alarm_call(&client, all)?)
}

pub fn alarm_disarm(s: &Settings, a: &IdArgs) -> Result<Output, CtlError> {
    if !a.args.is_empty() {
        return Err(CtlError::bad_args("alarm disarm command accepts no arguments"));
    }
    let printer = s.printer()?;
    let client = s.client()?;
    let all = AlarmRequest { action: AlarmAction::Get as i32, member_id: 0, alarm: AlarmType::None as i32 };
    let active = alarm_call(&client, all)?;
    let mut disarmed = AlarmResponse::default();
    for m in active.alarms {
        let off = AlarmRequest { action: AlarmAction::Deactivate as i32, member_id: m.member_id, alarm: m.alarm };
        let r = alarm_call(&client, off)?;
        disarmed.header = r.header.or(disarmed.header);
        disarmed.alarms.extend(r.alarms);
    }
    printer.alarms(&disarmed)
}

/// Each endpoint (or every member's client URLs with `--cluster`) in turn:
/// `Finished defragmenting etcd member[EP]` on stdout, or the failure on
/// stderr and exit 1 at the end.
pub fn defrag(s: &Settings, a: &DefragArgs) -> Result<(Output, i32), CtlError> {
    let endpoints = if bool_value(&a.cluster, "--cluster")? {
        super::cmd_endpoint::cluster_endpoints(s)?
    } else {
        s.endpoints.clone()
    };
    let mut out = Output { stdout: Vec::new(), stderr: Vec::new() };
    let mut failed = false;
    for ep in endpoints {
        let r = s
            .client_of(std::slice::from_ref(&ep))
            .and_then(|c| c.call(Req::Defragment(DefragmentRequest {})).map_err(|e| CtlError::request(&e)));
        match r {
            Ok(_) => out.stdout.extend_from_slice(format!("Finished defragmenting etcd member[{ep}]\n").as_bytes()),
            Err(e) => {
                failed = true;
                out.stderr.extend_from_slice(format!("Failed to defragment etcd member[{ep}] ({e})\n").as_bytes());
            }
        }
    }
    Ok((out, if failed { EXIT_ERROR } else { 0 }))
}
