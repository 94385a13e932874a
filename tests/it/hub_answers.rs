//! Every answer the hub can give a request, handled exactly: success, "still
//! stopping", "already gone", "not yet", refusals, failures that a retry may
//! mend and failures it cannot, each asserted on the log and on the exact
//! requests the hub received.

use crate::support::fake_hub::{Fault, HubConfig, RequestKind};
use crate::support::scenario::*;

/// The DELETEs the hub received for one path.
fn deletes_of(hub: &crate::support::fake_hub::FakeHub, path: &str) -> usize {
    hub.deletes().iter().filter(|d| d.path == path).count()
}

#[test]
fn a_stop_failing_with_500_is_retried_then_reported_and_the_others_go_on() {
    let hub = start(HubConfig::new().users(idle_users(3)).fault(Fault::error(
        "DELETE",
        "/users/idle-1/server",
        500,
        "spawner exploded",
    )));
    let out = once(&hub)
        .args([TIMEOUT_1H, FAST_RETRIES, "--retries=2", "--cull-users"])
        .run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert_eq!(
        deleted(&hub),
        names(["idle-0", "idle-2"]),
        "a user whose server did not stop is kept"
    );
    assert_eq!(
        deletes_of(&hub, "/users/idle-1/server"),
        3,
        "{}",
        deletes_text(&hub)
    );
    assert_eq!(
        stopped(&hub),
        pairs(&[("idle-0", ""), ("idle-2", "")]),
        "{}",
        deletes_text(&hub)
    );
    assert_eq!(warning_lines(&out).len(), 2, "one line per retry:\n{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("idle-1")
            && errors[0].contains("500")
            && errors[0].contains("spawner exploded")
            && errors[0].contains("gave up after 3 attempts"),
        "{out}"
    );
}

#[test]
fn a_stop_that_fails_once_with_502_is_retried_and_the_pass_succeeds() {
    let hub = start(
        HubConfig::new()
            .users(idle_users(2))
            .fault(Fault::error("DELETE", "/users/idle-0/server", 502, "Bad Gateway").times(1)),
    );
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 2, "{}", deletes_text(&hub));
    let warnings = warning_lines(&out);
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("502") && warnings[0].contains("retry 1 of 5"),
        "{out}"
    );
    assert!(out.stderr.contains("succeeded on retry 1"), "{out}");
}

#[test]
fn stops_refused_with_4xx_are_errors_and_not_retried() {
    for (status, message) in [
        (400, "Named servers are not enabled."),
        (405, "Method Not Allowed"),
        (409, "conflict"),
    ] {
        let hub = start(HubConfig::new().users(idle_users(2)).fault(Fault::error(
            "DELETE",
            "/users/idle-0/server",
            status,
            message,
        )));
        let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
        assert_eq!(out.status.code(), Some(1), "{status}: {out}");
        assert_eq!(
            deletes_of(&hub, "/users/idle-0/server"),
            1,
            "{status}: not retried"
        );
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "{status}: {out}");
        assert!(errors[0].contains(message), "{status}: {out}");
        assert_eq!(stopped(&hub), pairs(&[("idle-1", "")]), "{status}");
    }
}

#[test]
fn a_stop_answered_404_is_already_gone_not_an_error() {
    let hub = start(HubConfig::new().users(idle_users(2)).fault(Fault::error(
        "DELETE",
        "/users/idle-0/server",
        404,
        "no such user",
    )));
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    out.assert_success();
    assert!(
        out.stderr.contains("Server idle-0 was already gone"),
        "{out}"
    );
    assert!(out.stderr.contains("0 errors"), "{out}");
}

#[test]
fn a_missing_scope_is_logged_once_per_pass_not_once_per_user() {
    let hub = start(
        HubConfig::new()
            .users(idle_users(5))
            .fault(Fault::missing_scope("DELETE", "/users/*", "delete:servers")),
    );
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("requires any of [delete:servers]")
            && errors[0].contains("give the culler's role"),
        "{out}"
    );
    assert_eq!(hub.deletes().len(), 5, "refusals are not retried");
    assert!(out.stderr.contains("5 refused for missing scopes"), "{out}");
}

#[test]
fn a_user_the_hub_will_not_delete_yet_is_kept_for_the_next_pass_without_error() {
    let hub = start(
        HubConfig::new()
            .user(gone_user("gone"))
            .user(gone_user("stopping"))
            .fault(Fault::error(
                "DELETE",
                "/users/stopping",
                400,
                "stopping's server is in the process of stopping, please wait.",
            )),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, FAST_RETRIES, "--cull-users"])
        .run();
    out.assert_success();
    assert_eq!(deleted(&hub), names(["gone"]));
    assert!(hub.has_user("stopping"));
    assert!(
        out.stderr.contains("User stopping not deleted yet")
            && out.stderr.contains("1 users not deletable yet"),
        "{out}"
    );
}

#[test]
fn a_401_is_a_refusal_logged_once_and_not_retried() {
    // Older hubs answer a token they do not accept with 401.
    let hub = start(HubConfig::new().users(idle_users(2)).fault(Fault::error(
        "GET",
        "/users",
        401,
        "Unauthorized",
    )));
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("refused by the hub: Unauthorized"),
        "{out}"
    );
    assert_eq!(hub.count(RequestKind::ListUsers), 1, "not retried:\n{out}");
    assert!(hub.deletes().is_empty(), "{}", deletes_text(&hub));
}

#[test]
fn a_user_deletion_refused_with_400_for_another_reason_is_an_error() {
    // Only "still stopping" means "not yet"; this 400 would come back on
    // every pass.
    let hub = start(
        HubConfig::new()
            .user(gone_user("gone"))
            .user(gone_user("self"))
            .fault(Fault::error(
                "DELETE",
                "/users/self",
                400,
                "Cannot delete yourself!",
            )),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, FAST_RETRIES, "--cull-users"])
        .run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert_eq!(deleted(&hub), names(["gone"]));
    assert!(hub.has_user("self"));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("Failed to delete user self")
            && errors[0].contains("400: Cannot delete yourself!"),
        "{out}"
    );
    assert!(!out.stderr.contains("not deletable yet"), "{out}");
    assert_eq!(
        deletes_of(&hub, "/users/self"),
        1,
        "not retried: {}",
        deletes_text(&hub)
    );
}

#[test]
fn a_server_whose_ready_is_null_is_not_stopped() {
    let stamp = "2020-01-01T00:00:00.000000Z";
    let body = format!(
        r#"{{"items": [{{"name": "nully", "admin": false, "last_activity": "{stamp}",
            "servers": {{"": {{"name": "", "ready": null, "pending": null, "url": "/user/nully/",
            "started": "{stamp}", "last_activity": "{stamp}"}}}}}}],
            "_pagination": {{"offset": 0, "limit": 50, "total": 1, "next": null}}}}"#
    );
    let hub = start(HubConfig::new().fault(Fault::raw("GET", "/users", 200, &body)));
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    out.assert_success();
    assert!(hub.deletes().is_empty(), "{}", deletes_text(&hub));
    assert!(
        out.stderr.contains("Not culling server nully: not ready"),
        "{out}"
    );
}
