//! `member list|add|remove|update|promote` and `move-leader`: the cluster's
//! members as the server knows them, and changes to them.
//!
//! Owns each command's sequence (argument checks with etcdctl's messages
//! and exit codes, the request, what `member add` prints after its line);
//! the texts of the answers are the printers'.

use super::cli::{bool_value, IdArgs, MemberAddArgs, MemberUpdateArgs};
use super::exit::{CtlError, EXIT_BAD_ARGS, EXIT_ERROR};
use super::print::cluster::Change;
use super::print::{Format, Output};
use super::settings::Settings;
use crate::proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberListResponse, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest, MoveLeaderRequest,
};
use crate::proto::raftkvpb::client_request::Body as Req;
use crate::proto::raftkvpb::client_response::Body as Resp;

fn unexpected(what: &str) -> CtlError {
    CtlError::new(EXIT_ERROR, format!("unexpected answer to a {what} request"))
}

fn call(s: &Settings, body: Req) -> Result<Resp, CtlError> {
    s.client()?.call(body).map_err(|e| CtlError::request(&e))
}

pub fn list(s: &Settings) -> Result<Output, CtlError> {
    let printer = s.printer()?;
    // etcdctl 3.4 asks without linearizability (the member serves it locally).
    match call(s, Req::MemberList(MemberListRequest { linearizable: false }))? {
        Resp::MemberList(r) => printer.member_list(&r),
        _ => Err(unexpected("member list")),
    }
}

/// The one `<memberID>` argument, in hex, as etcdctl parses it.
fn member_id(args: &[String]) -> Result<u64, CtlError> {
    let [arg] = args else { return Err(CtlError::bad_args("member ID is not provided")) };
    super::gofmt::parse_uint(arg, 16)
        .map_err(|e| CtlError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

/// `--peer-urls` split and checked as clientv3 checks them (etcd's
/// `types.NewURLs`); a bare `host:port` is accepted too.
fn peer_urls(flag: &Option<String>) -> Result<Vec<String>, CtlError> {
    let Some(list) = flag.as_deref().filter(|l| !l.is_empty()) else {
        return Err(CtlError::bad_args("member peer urls not provided"));
    };
    let urls: Vec<String> = list.split(',').map(|u| u.trim().to_string()).collect();
    for u in &urls {
        check_url(u).map_err(|e| CtlError::new(EXIT_ERROR, e))?;
    }
    Ok(urls)
}

fn check_url(u: &str) -> Result<(), String> {
    if crate::server::reconfig::parse_peer_url(u).is_some() && !u.contains("://") {
        return Ok(());
    }
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(format!("URL scheme must be http, https, unix, or unixs: {u}"));
    };
    if !["http", "https", "unix", "unixs"].contains(&scheme) {
        return Err(format!("URL scheme must be http, https, unix, or unixs: {u}"));
    }
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let port_ok = host.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() || !p.is_empty());
    if !port_ok {
        return Err(format!("URL address does not have the form \"host:port\": {u}"));
    }
    if !path.is_empty() {
        return Err(format!("URL must not contain a path: {u}"));
    }
    Ok(())
}

pub fn add(s: &Settings, a: &MemberAddArgs) -> Result<Output, CtlError> {
    let printer = s.printer()?;
    let name = match a.args.as_slice() {
        [] => return Err(CtlError::bad_args("member name not provided")),
        [name] => name.clone(),
        many => {
            let mut ev = "too many arguments".to_string();
            for arg in many.iter().filter(|x| x.to_lowercase().starts_with("http")) {
                ev.push_str(&format!(", did you mean --peer-urls={arg}"));
            }
            return Err(CtlError::bad_args(ev));
        }
    };
    let urls = peer_urls(&a.peer_urls)?;
    let learner = bool_value(&a.learner, "learner")?;
    let client = s.client()?;
    let body = Req::MemberAdd(MemberAddRequest { peer_ur_ls: urls, is_learner: learner });
    let Resp::MemberAdd(r) = client.call(body).map_err(|e| CtlError::request(&e))? else {
        return Err(unexpected("member add"));
    };
    let mut out = printer.cluster_change(Change::Add(&r))?;
    if printer.format != Format::Simple {
        return Ok(out);
    }
    // What the new member needs to start (read linearizably: the member
    // that answered may not have applied the change yet).
    let list = Req::MemberList(MemberListRequest { linearizable: true });
    let Resp::MemberList(l) = client.call(list).map_err(|e| CtlError::request(&e))? else {
        return Err(unexpected("member list"));
    };
    let new_id = r.member.as_ref().map_or(0, |m| m.id);
    let flag = a.peer_urls.as_deref().unwrap_or_default();
    out.stdout.extend_from_slice(start_settings(&l, new_id, &name, flag).as_bytes());
    Ok(out)
}

/// etcdctl's lines after `member add`: the new member's name, the initial
/// cluster (every member's peer URLs as stored, named), its URLs as the
/// `--peer-urls` flag gave them (spaces kept), state "existing".
fn start_settings(l: &MemberListResponse, new_id: u64, name: &str, peer_urls_flag: &str) -> String {
    let mut conf = Vec::new();
    for m in &l.members {
        let n = if m.id == new_id { name } else { m.name.as_str() };
        for u in &m.peer_ur_ls {
            conf.push(format!("{n}={u}"));
        }
    }
    let q = |v: &str| super::gofmt::quote(v.as_bytes());
    format!(
        "\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        q(name),
        q(&conf.join(",")),
        q(peer_urls_flag)
    )
}

pub fn remove(s: &Settings, a: &IdArgs) -> Result<Output, CtlError> {
    let printer = s.printer()?;
    let id = member_id(&a.args)?;
    match call(s, Req::MemberRemove(MemberRemoveRequest { id }))? {
        Resp::MemberRemove(r) => printer.cluster_change(Change::Remove(id, &r)),
        _ => Err(unexpected("member remove")),
    }
}

pub fn update(s: &Settings, a: &MemberUpdateArgs) -> Result<Output, CtlError> {
    let printer = s.printer()?;
    let id = member_id(&a.args)?;
    let urls = peer_urls(&a.peer_urls)?;
    match call(s, Req::MemberUpdate(MemberUpdateRequest { id, peer_ur_ls: urls }))? {
        Resp::MemberUpdate(r) => printer.cluster_change(Change::Update(id, &r)),
        _ => Err(unexpected("member update")),
    }
}

pub fn promote(s: &Settings, a: &IdArgs) -> Result<Output, CtlError> {
    let printer = s.printer()?;
    let id = member_id(&a.args)?;
    match call(s, Req::MemberPromote(MemberPromoteRequest { id }))? {
        Resp::MemberPromote(r) => printer.cluster_change(Change::Promote(id, &r)),
        _ => Err(unexpected("member promote")),
    }
}

/// As etcdctl: finds the leader among the endpoints (by their status) and
/// asks it.
pub fn move_leader(s: &Settings, a: &IdArgs) -> Result<Output, CtlError> {
    let printer = s.printer()?;
    let [arg] = a.args.as_slice() else {
        return Err(CtlError::bad_args("move-leader command needs 1 argument"));
    };
    let to = super::gofmt::parse_uint(arg, 16).map_err(|e| CtlError::new(EXIT_BAD_ARGS, e))?;
    for ep in &s.endpoints {
        let client = s.client_of(std::slice::from_ref(ep))?;
        let status = client.status().map_err(|e| CtlError::request(&e))?;
        let me = status.header.as_ref().map_or(0, |h| h.member_id);
        if me != status.leader {
            continue;
        }
        let body = Req::MoveLeader(MoveLeaderRequest { target_id: to });
        let Resp::MoveLeader(r) = client.call(body).map_err(|e| CtlError::request(&e))? else {
            return Err(unexpected("move-leader"));
        };
        return printer.cluster_change(Change::MoveLeader { from: me, to, resp: &r });
    }
    Err(CtlError::bad_args(format!("no leader endpoint given at [{}]", s.endpoints.join(" "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_as_clientv3_checks_them_and_bare_ones_pass() {
        assert!(check_url("http://127.0.0.1:2380").is_ok());
        assert!(check_url("127.0.0.1:2380").is_ok());
        assert_eq!(check_url("nohost").unwrap_err(), "URL scheme must be http, https, unix, or unixs: nohost");
        assert_eq!(
            check_url("http://nohost").unwrap_err(),
            "URL address does not have the form \"host:port\": http://nohost"
        );
        assert_eq!(check_url("http://1.2.3.4:5/x").unwrap_err(), "URL must not contain a path: http://1.2.3.4:5/x");
    }

    #[test]
    fn start_settings_name_the_new_member_and_keep_the_flag_as_given() {
        use crate::proto::etcdserverpb::Member;
        let m = |id: u64, name: &str, url: &str| Member {
            id,
            name: name.into(),
            peer_ur_ls: vec![url.into()],
            ..Default::default()
        };
        let l = MemberListResponse { header: None, members: vec![m(1, "a", "http://h:1"), m(2, "", "http://h:2")] };
        assert_eq!(
            start_settings(&l, 2, "b", "http://h:2, http://h:3"),
            "\nETCD_NAME=\"b\"\nETCD_INITIAL_CLUSTER=\"a=http://h:1,b=http://h:2\"\n\
             ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://h:2, http://h:3\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"
        );
    }

    #[test]
    fn member_ids_are_hex_with_etcdctls_messages() {
        assert_eq!(member_id(&["8e9e05c52164694d".into()]).unwrap(), 0x8e9e_05c5_2164_694d);
        assert_eq!(member_id(&[]).unwrap_err().message, "member ID is not provided");
        assert_eq!(member_id(&[]).unwrap_err().code, EXIT_BAD_ARGS);
        let bad = member_id(&["zz".into()]).unwrap_err();
        assert_eq!(
            bad.message,
            "bad member ID arg (strconv.ParseUint: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
    }
}
