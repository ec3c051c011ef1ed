use super::*;
use crate::server::cluster_view::PeerProgress;

fn member(id: u64, name: &str, port: u16, learner: bool) -> Member {
    Member {
        id,
        name: name.into(),
        peer_ur_ls: vec![format!("http://127.0.0.1:{port}")],
        client_ur_ls: Vec::new(),
        is_learner: learner,
    }
}

/// Three started voters (1 leads), all answering.
fn three() -> Vec<Member> {
    vec![member(1, "a", 1001, false), member(2, "b", 1002, false), member(3, "c", 1003, false)]
}

fn leader_view(active: &[u64], matched: &[(u64, u64)], last_index: u64) -> ClusterView {
    let mut v = ClusterView { member_id: 1, is_leader: true, last_index, ..Default::default() };
    for &(id, m) in matched {
        v.progress.insert(id, PeerProgress { matched: m, active: active.contains(&id), is_learner: false });
    }
    v
}

fn code(r: Result<(), ApiError>) -> ErrorCode {
    r.expect_err("refused").code
}

#[test]
fn peer_urls_are_accepted_as_etcd_tools_write_them_and_bare() {
    assert_eq!(peer_urls(&["http://127.0.0.1:2380".into()]).unwrap(), vec!["http://127.0.0.1:2380"]);
    assert_eq!(peer_urls(&["127.0.0.1:2380/".into()]).unwrap(), vec!["http://127.0.0.1:2380"]);
    for bad in [vec![], vec!["".to_string()], vec!["http://nohost".into()], vec!["ftp://1.2.3.4:5".into()]] {
        assert_eq!(peer_urls(&bad).unwrap_err().code, ErrorCode::MemberBadUrls, "{bad:?}");
    }
    let twice = vec!["127.0.0.1:1".to_string(), "http://127.0.0.1:1".into()];
    assert_eq!(peer_urls(&twice).unwrap_err().code, ErrorCode::MemberBadUrls);
}

#[test]
fn an_add_whose_url_is_taken_is_refused() {
    let v = leader_view(&[1, 2, 3], &[(1, 10), (2, 10), (3, 10)], 10);
    let urls = peer_urls(&["127.0.0.1:1002".into()]).unwrap();
    assert_eq!(code(check_add(&three(), &v, &urls, false, Rules::default())), ErrorCode::PeerUrlExist);
    assert_eq!(code(check_add(&three(), &v, &urls, true, Rules::default())), ErrorCode::PeerUrlExist);
}

#[test]
fn a_voter_is_added_only_while_a_quorum_of_the_larger_cluster_has_started() {
    let urls = peer_urls(&["127.0.0.1:1004".into()]).unwrap();
    let all = leader_view(&[1, 2, 3], &[(1, 10), (2, 10), (3, 10)], 10);
    assert!(check_add(&three(), &all, &urls, false, Rules::default()).is_ok());
    // Every voter must answer (etcd: "unhealthy cluster").
    let one_down = leader_view(&[1, 2], &[(1, 10), (2, 10), (3, 5)], 10);
    assert_eq!(code(check_add(&three(), &one_down, &urls, false, Rules::default())), ErrorCode::Unhealthy);
    assert_eq!(code(check_add(&three(), &one_down, &urls, true, Rules::default())), ErrorCode::Unhealthy);
    // 4 members need 3 started: two that never published a name are not.
    let mut members = three();
    members[1].name.clear();
    members[2].name.clear();
    assert_eq!(code(check_add(&members, &all, &urls, false, Rules::default())), ErrorCode::NotEnoughStarted);
    // Without the strict check it goes through.
    let lax = Rules { strict: false, ..Rules::default() };
    assert!(check_add(&three(), &one_down, &urls, false, lax).is_ok());
    // A second member for a one-member cluster is always allowed.
    let solo = vec![member(1, "a", 1001, false)];
    assert!(check_add(&solo, &leader_view(&[1], &[(1, 10)], 10), &urls, false, Rules::default()).is_ok());
}

#[test]
fn learners_are_limited_and_do_not_need_started_members() {
    let urls = peer_urls(&["127.0.0.1:1004".into()]).unwrap();
    let all = leader_view(&[1, 2, 3], &[(1, 10), (2, 10), (3, 10)], 10);
    let mut members = three();
    members[1].name.clear();
    members[2].name.clear();
    assert!(check_add(&members, &all, &urls, true, Rules::default()).is_ok());
    let mut members = three();
    members.push(member(4, "d", 1005, true));
    assert_eq!(code(check_add(&members, &all, &urls, true, Rules::default())), ErrorCode::TooManyLearners);
    assert!(check_add(&members, &all, &urls, true, Rules { max_learners: 2, ..Rules::default() }).is_ok());
}

#[test]
fn a_removal_must_leave_a_quorum_answering() {
    let all = leader_view(&[1, 2, 3], &[(1, 10), (2, 10), (3, 10)], 10);
    assert!(check_remove(&three(), &all, 3, Rules::default()).is_ok());
    assert_eq!(code(check_remove(&three(), &all, 9, Rules::default())), ErrorCode::MemberNotFound);
    // Member 3 is down: removing it is safe; removing 2 would leave 1 of 2.
    let one_down = leader_view(&[1, 2], &[(1, 10), (2, 10), (3, 5)], 10);
    assert!(check_remove(&three(), &one_down, 3, Rules::default()).is_ok());
    assert_eq!(code(check_remove(&three(), &one_down, 2, Rules::default())), ErrorCode::NotEnoughStarted);
    // A learner leaves whatever the others do.
    let mut members = three();
    members.push(member(4, "d", 1004, true));
    assert!(check_remove(&members, &one_down, 4, Rules::default()).is_ok());
}

#[test]
fn only_a_learner_in_sync_with_the_leader_is_promoted() {
    let mut members = three();
    members.push(member(4, "d", 1004, true));
    let behind = leader_view(&[1, 2, 3, 4], &[(1, 100), (2, 100), (3, 100), (4, 89)], 100);
    assert_eq!(code(check_promote(&members, &behind, 4, Rules::default())), ErrorCode::LearnerNotReady);
    let in_sync = leader_view(&[1, 2, 3, 4], &[(1, 100), (2, 100), (3, 100), (4, 90)], 100);
    assert!(check_promote(&members, &in_sync, 4, Rules::default()).is_ok());
    assert_eq!(code(check_promote(&members, &in_sync, 2, Rules::default())), ErrorCode::MemberNotLearner);
    assert_eq!(code(check_promote(&members, &in_sync, 9, Rules::default())), ErrorCode::MemberNotFound);
    let follower = ClusterView { member_id: 2, ..Default::default() };
    assert_eq!(code(check_promote(&members, &follower, 4, Rules::default())), ErrorCode::NotLeader);
}

#[test]
fn an_update_may_keep_its_own_urls_but_not_take_anothers() {
    let own = peer_urls(&["127.0.0.1:1002".into()]).unwrap();
    assert!(check_update(&three(), 2, &own).is_ok());
    let taken = peer_urls(&["127.0.0.1:1003".into()]).unwrap();
    assert_eq!(code(check_update(&three(), 2, &taken)), ErrorCode::PeerUrlExist);
    assert_eq!(code(check_update(&three(), 9, &own)), ErrorCode::MemberNotFound);
}

#[test]
fn new_member_ids_are_never_zero_or_taken() {
    let members = three();
    let urls = vec!["http://127.0.0.1:1004".to_string()];
    let a = new_member_id(&members, &urls, 7, 1);
    assert!(a != 0 && members.iter().all(|m| m.id != a));
    assert_ne!(a, new_member_id(&members, &urls, 7, 2), "the time makes re-added members distinct");
}
