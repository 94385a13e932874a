//! Two cullers on one hub at once: a rolling update (the old and the new
//! hub pod's cullers overlap), or a CronJob run overlapping the managed
//! service. Each walks the same users and sends the same stops and
//! deletions; whichever comes second finds the work done. Nothing wrong
//! may be stopped or deleted, and each must read the other's work as
//! done (204 for a default server already stopped, 404 for a named server
//! removed or a user deleted, 202 for a stop already under way), not as
//! an error.

use std::collections::BTreeSet;

use crate::support::fake_hub::{FakeServer, FakeUser, HubConfig, Outcome, RequestKind};
use crate::support::scenario::*;

/// Idle users with default servers, busy ones, idle users with a named
/// server to remove, idle users whose servers are slow to stop (202), users
/// without servers (deleted with --cull-users) and admins without servers
/// (spared by --cull-admin-users=false).
fn hub_for_two() -> HubConfig {
    let mut config = HubConfig::new().delete_latency(millis(200));
    for i in 0..12 {
        config = config.user(idle_user(&format!("idle-{i}")));
    }
    for i in 0..4 {
        config = config.user(busy_user(&format!("busy-{i}")));
    }
    for i in 0..4 {
        config = config.user(
            FakeUser::new(&format!("named-{i}"))
                .idle_for(hours(2))
                .server(FakeServer::named("lab").idle_for(hours(2))),
        );
    }
    for i in 0..3 {
        config = config.user(idle_user(&format!("slow-{i}")).slow_stop(true));
    }
    for i in 0..6 {
        config = config.user(gone_user(&format!("gone-{i}")));
    }
    for i in 0..2 {
        config = config.user(gone_user(&format!("admin-{i}")).admin(true));
    }
    config
}

const ARGS: [&str; 6] = [
    TIMEOUT_1H,
    "--cull-users",
    "--cull-admin-users=false",
    "--remove-named-servers",
    "--api-page-size=5",
    "--concurrency=4",
];

#[test]
fn two_cullers_at_once_cull_exactly_what_one_would_and_both_end_cleanly() {
    let hub = start(hub_for_two());
    // Started together, they see the same hub and send the same requests
    // at nearly the same moment: the hub answers whichever comes second
    // with what the first left.
    let first = once(&hub).args(ARGS).spawn();
    let second = once(&hub).args(ARGS).spawn();
    let (first, second) = (first.wait(secs(60)), second.wait(secs(60)));
    for out in [&first, &second] {
        out.assert_success();
        assert!(error_lines(out).is_empty(), "{out}");
    }

    let idle: BTreeSet<_> = (0..12)
        .map(|i| (format!("idle-{i}"), String::new()))
        .chain((0..4).map(|i| (format!("named-{i}"), "lab".to_owned())))
        .collect();
    assert_eq!(stopped(&hub), idle, "{first}\n{second}");
    for i in 0..4 {
        assert_eq!(hub.active_servers(&format!("busy-{i}")), [""]);
    }
    // Deleted: the users without servers and those whose named server
    // was removed, never an admin, never a user whose server is still
    // stopping.
    let expected: BTreeSet<_> = (0..6)
        .map(|i| format!("gone-{i}"))
        .chain((0..12).map(|i| format!("idle-{i}")))
        .chain((0..4).map(|i| format!("named-{i}")))
        .collect();
    assert_eq!(deleted(&hub), expected, "{first}\n{second}");
    for name in ["admin-0", "admin-1", "slow-0", "slow-1", "slow-2"] {
        assert!(hub.has_user(name), "{name} deleted:\n{first}\n{second}");
    }
    // No user was deleted before each of their servers was seen stopped.
    let requests = hub.requests();
    for (at, request) in requests.iter().enumerate() {
        if request.kind != RequestKind::DeleteUser {
            continue;
        }
        let user = request.path.trim_start_matches("/users/");
        let stops: Vec<_> = requests[..at]
            .iter()
            .filter(|r| {
                r.kind == RequestKind::StopServer && r.path.starts_with(&format!("/users/{user}/"))
            })
            .collect();
        if user.starts_with("gone-") {
            continue;
        }
        assert!(
            stops
                .iter()
                .any(|r| matches!(r.outcome, Outcome::Answered(204 | 404))),
            "{user} deleted before a stop of theirs was answered: {stops:?}"
        );
    }

    // The second to come read the first's work right: already gone (404),
    // still stopping (202), not deletable yet (400), never an error.
    let both = format!("{}\n{}", first.stderr, second.stderr);
    let answered = |status: u16| {
        requests
            .iter()
            .filter(|r| r.method == "DELETE" && r.outcome == Outcome::Answered(status))
            .count()
    };
    assert!(answered(404) >= 1, "no 404 met:\n{both}");
    assert!(answered(202) >= 3, "no 202 met:\n{both}");
    assert_eq!(
        lines_with(&first, &["already gone"]).len() + lines_with(&second, &["already gone"]).len(),
        answered(404),
        "each 404 read as already gone:\n{both}"
    );
    assert_eq!(
        lines_with(&first, &["is slow to stop"]).len()
            + lines_with(&second, &["is slow to stop"]).len(),
        answered(202),
        "each 202 read as still stopping:\n{both}"
    );
}
