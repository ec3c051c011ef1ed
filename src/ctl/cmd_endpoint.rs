//! `endpoint status` and `endpoint health`: every endpoint is asked on its
//! own, as etcdctl does.
//!
//! Owns the per-endpoint checks: Status for `status`; a linearizable get of
//! key `health` (plus the alarm list, once the server serves it) for
//! `health`, run concurrently and reported in completion order. With
//! `--cluster` the endpoints are the members' client URLs (a server that
//! answers NOT_IMPLEMENTED to the member list gets the given endpoints).

use super::cli::{bool_value, EndpointArgs, HashkvArgs};
use super::exit::{CtlError, EXIT_ERROR};
use super::gofmt;
use super::print::hashkv::EpHash;
use super::print::{EpHealth, EpStatus, Output};
use super::settings::Settings;
use crate::client::ClientError;
use crate::proto::etcdserverpb::{
    alarm_request, AlarmRequest, AlarmType, HashKvRequest, MemberListRequest, RangeRequest,
};
use crate::proto::raftkvpb::{client_request, client_response, ErrorCode};
use std::time::Instant;

/// The endpoints to check: the given ones, or with `--cluster` the
/// members' client URLs.
fn endpoints(s: &Settings, a: &EndpointArgs) -> Result<Vec<String>, CtlError> {
    if !bool_value(&a.cluster, "--cluster")? {
        return Ok(s.endpoints.clone());
    }
    cluster_endpoints(s)
}

/// `--cluster`: every member's client URLs, from the member list.
pub fn cluster_endpoints(s: &Settings) -> Result<Vec<String>, CtlError> {
    let client = s.client()?;
    let body = client_request::Body::MemberList(MemberListRequest { linearizable: false });
    match client.call(body) {
        Ok(client_response::Body::MemberList(m)) => Ok(m.members.into_iter().flat_map(|m| m.client_ur_ls).collect()),
        Ok(_) => {
            Err(CtlError::new(EXIT_ERROR, "failed to fetch endpoints from etcd cluster member list: unexpected answer"))
        }
        // No member list yet on the server: the given endpoints are all we know.
        Err(ClientError::Api(e)) if e.code == ErrorCode::NotImplemented => Ok(s.endpoints.clone()),
        Err(e) => {
            Err(CtlError::new(EXIT_ERROR, format!("failed to fetch endpoints from etcd cluster member list: {e}")))
        }
    }
}

/// `endpoint hashkv [--rev N]`: each endpoint's HashKV; a failure is
/// reported on stderr, the others printed, then `Error:` and exit 1 (as
/// etcdctl).
pub fn hashkv(s: &Settings, a: &EndpointArgs, h: &HashkvArgs) -> Result<(Output, Option<CtlError>), CtlError> {
    let printer = s.printer()?;
    let mut list = Vec::new();
    let mut failures = Vec::new();
    let mut last = None;
    for ep in endpoints(s, a)? {
        let body = client_request::Body::HashKv(HashKvRequest { revision: h.rev });
        let result =
            s.client_of(std::slice::from_ref(&ep)).and_then(|c| c.call(body).map_err(|e| CtlError::request(&e)));
        match result {
            Ok(client_response::Body::HashKv(resp)) => list.push(EpHash { ep, resp }),
            Ok(_) => failures.push(format!("Failed to get the hash of endpoint {ep} (unexpected answer)\n")),
            Err(e) => {
                failures.push(format!("Failed to get the hash of endpoint {ep} ({e})\n"));
                last = Some(CtlError::new(EXIT_ERROR, e.message));
            }
        }
    }
    let mut out = printer.endpoint_hashkv(&list)?;
    out.stderr = failures.concat().into_bytes();
    Ok((out, last))
}

/// `endpoint status`: unreachable endpoints are reported on stderr and
/// left out of the output; the exit code is then 1 (without an `Error:`
/// line).
pub fn status(s: &Settings, a: &EndpointArgs) -> Result<(Output, i32), CtlError> {
    let printer = s.printer()?;
    let mut list = Vec::new();
    let mut failures = Vec::new();
    for ep in endpoints(s, a)? {
        let result = s
            .client_of(std::slice::from_ref(&ep))
            .map_err(|e| e.message)
            .and_then(|c| c.status().map_err(|e| e.to_string()));
        match result {
            Ok(resp) => list.push(EpStatus { ep, resp }),
            Err(e) => failures.push(format!("Failed to get the status of endpoint {ep} ({e})\n")),
        }
    }
    let mut out = printer.endpoint_status(&list)?;
    let mut stderr = failures.concat().into_bytes();
    stderr.append(&mut out.stderr);
    out.stderr = stderr;
    Ok((out, if failures.is_empty() { 0 } else { EXIT_ERROR }))
}

/// One endpoint's health.
fn check(s: &Settings, ep: String) -> EpHealth {
    let client = match s.client_of(std::slice::from_ref(&ep)) {
        Ok(c) => c,
        Err(e) => return EpHealth { ep, health: false, took: "0s".into(), error: e.message },
    };
    let started = Instant::now();
    let got = client.range(RangeRequest { key: "health".into(), ..Default::default() });
    let took = gofmt::format_duration(started.elapsed());
    let mut h = EpHealth { ep, health: false, took, error: String::new() };
    match got {
        // Permission denied still went through consensus.
        Ok(_) => h.health = true,
        Err(ClientError::Api(e)) if e.code == ErrorCode::PermissionDenied => h.health = true,
        Err(e) => h.error = e.to_string(),
    }
    if h.health {
        let left = s.command_timeout.saturating_sub(started.elapsed());
        let body = client_request::Body::Alarm(AlarmRequest {
            action: alarm_request::AlarmAction::Get as i32,
            member_id: 0,
            alarm: AlarmType::None as i32,
        });
        match client.call_with_timeout(body, left) {
            Ok(client_response::Body::Alarm(r)) if !r.alarms.is_empty() => {
                h.health = false;
                h.error = "Active Alarm(s): ".to_string();
                for a in r.alarms {
                    h.error.push_str(match AlarmType::try_from(a.alarm) {
                        Ok(AlarmType::Nospace) => "NOSPACE ",
                        Ok(AlarmType::Corrupt) => "CORRUPT ",
                        _ => "UNKNOWN ",
                    });
                }
            }
            Ok(_) => {}
            // No alarms on the server yet: nothing can be raised.
            Err(ClientError::Api(e)) if e.code == ErrorCode::NotImplemented => {}
            Err(_) => {
                h.health = false;
                h.error = "Unable to fetch the alarm list".to_string();
            }
        }
    }
    h
}

/// `endpoint health`: every endpoint checked at once. The output comes
/// with the final error, if any: `unhealthy cluster` (exit 1) when one
/// endpoint is not healthy.
pub fn health(s: &Settings, a: &EndpointArgs) -> Result<(Output, Option<CtlError>), CtlError> {
    let printer = s.printer()?;
    let eps = endpoints(s, a)?;
    let (tx, rx) = crossbeam_channel::bounded(eps.len().max(1));
    std::thread::scope(|scope| {
        for ep in eps.iter().cloned() {
            let tx = tx.clone();
            scope.spawn(move || {
                let _ = tx.send(check(s, ep));
            });
        }
    });
    drop(tx);
    let list: Vec<EpHealth> = rx.iter().collect();
    let unhealthy = list.iter().any(|h| !h.error.is_empty());
    let out = printer.endpoint_health(&list)?;
    Ok((out, unhealthy.then(|| CtlError::new(EXIT_ERROR, "unhealthy cluster"))))
}
