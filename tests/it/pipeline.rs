//! The culler binary end to end against the in-process fake hub.
//!
//! Each test builds a hub whose timestamps are relative to now (idle = last
//! active 2 h ago with `--timeout=3600`, busy = 1 min ago), runs one `--once`
//! pass (or a background culler, waited for through the hub's condition
//! variable) and asserts exactly what its name says. Nothing sleeps.

use std::collections::BTreeSet;
use std::net::TcpListener;

use crate::support::culler::Culler;
use crate::support::fake_hub::{
    ago, FakeServer, FakeUser, Fault, FaultAction, HubConfig, Outcome, RequestKind, Target,
};
use crate::support::scenario::*;

// ---------------------------------------------------------------- concurrency

#[test]
fn concurrency_3_is_never_exceeded_and_is_reached() {
    let hub = start(
        HubConfig::new()
            .latency(millis(20))
            .users((0..60).map(|i| idle_user(&format!("user{i:02}")))),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--concurrency=3"]).run();
    out.assert_success();
    let state = hub.state();
    assert_eq!(state.stopped_servers().len(), 60, "{out}");
    assert!(state.users().all(|u| !u.is_active()), "{out}");
    assert!(
        state.max_in_flight <= 3,
        "{} requests in flight with --concurrency=3",
        state.max_in_flight
    );
    assert_eq!(
        state.max_in_flight, 3,
        "never 3 requests in flight: the culler does not parallelise"
    );
}

/// Pages overlap: a page's stops start while an earlier page's are still
/// on the wire, so the executors do not idle waiting for a page's slowest
/// stop (`PAGES_ACTED_ON` in src/pipeline/lister.rs). Without the overlap,
/// `quick` (first page) would wait for `slow` (last page, read first).
#[test]
fn a_slow_stop_does_not_hold_back_the_next_pages_stops() {
    let mut users: Vec<FakeUser> = (0..10).map(|i| busy_user(&format!("user{i}"))).collect();
    users[1] = idle_user("quick");
    users[8] = idle_user("slow");
    let hub = start(HubConfig::new().users(users).fault(Fault::new(
        "DELETE",
        "/users/slow/server",
        FaultAction::delay(secs(600)),
    )));
    let culler = once(&hub)
        .args([TIMEOUT_1H, "--api-page-size=5", "--concurrency=3"])
        .spawn();
    let quick_stopped = hub.wait_until(secs(20), |s| {
        s.stopped_servers().iter().any(|(user, _)| user == "quick")
    });
    // Sent before the quick one, it may reach the hub a moment after the
    // quick one was answered; either way it stays on the wire, unanswered.
    let slow_on_the_wire = hub.wait_until(secs(10), |s| {
        s.requests().iter().any(|r| {
            r.kind == RequestKind::StopServer
                && r.path == "/users/slow/server"
                && r.outcome == Outcome::InProgress
        })
    });
    let out = culler.kill();
    assert!(
        quick_stopped,
        "the first page's stop waited for the last page's slow stop\n{out}"
    );
    assert!(
        slow_on_the_wire,
        "the slow stop was not on the wire meanwhile\n{out}"
    );
    assert_eq!(stopped(&hub), pairs(&[("quick", "")]), "{out}");
}

/// Memory stays bounded however slow the stops: with every stop held on
/// the wire, the culler holds 8 pages being acted on (`PAGES_ACTED_ON`)
/// plus one more, read and waiting for room, and reads no further page.
#[test]
fn pages_being_acted_on_are_bounded_while_stops_are_slow() {
    let hub = start(HubConfig::new().users(idle_users(100)).fault(Fault::new(
        "DELETE",
        "/users/*",
        FaultAction::delay(secs(600)),
    )));
    let culler = once(&hub)
        .args([TIMEOUT_1H, "--api-page-size=5", "--concurrency=200"])
        .spawn();
    // The probe (offset 0, read to learn the total, not kept), then the
    // pages from the last down.
    let expected: Vec<usize> = [0].into_iter().chain((55..=95).rev().step_by(5)).collect();
    let reached = hub.wait_until(secs(20), |s| {
        s.lists().len() >= expected.len() && s.count(RequestKind::StopServer) >= 40
    });
    // Nothing will change any more: any further page read is the bug.
    let read_more = hub.wait_until(secs(2), |s| s.lists().len() > expected.len());
    let (offsets, stops) = {
        let state = hub.state();
        let offsets: Vec<usize> = state.lists().iter().map(|l| l.offset).collect();
        (offsets, state.count(RequestKind::StopServer))
    };
    let out = culler.kill();
    assert!(
        reached,
        "pages read at offsets {offsets:?}, {stops} stops sent\n{out}"
    );
    assert!(!read_more, "pages read at offsets {offsets:?}\n{out}");
    // The probe first; the pages below the top may be read a few at once
    // (fetched ahead), so answered in any order.
    assert_eq!(offsets[0], 0, "{out}");
    let mut pages = offsets[1..].to_vec();
    pages.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(pages, expected[1..], "{out}");
    assert_eq!(stops, 40, "the stops of 8 pages of 5 idle users\n{out}");
}

/// Pages that take time to answer (a real hub with 10,000+ users takes
/// tens of ms a page) are read a few at once while the executors would
/// otherwise wait for them, and one at a time while stops keep the
/// executors busy.
#[test]
fn slow_pages_are_read_ahead_only_while_the_executors_would_idle() {
    // Quick stops, slow pages: the executors would idle between pages.
    let hub = start(
        HubConfig::new()
            .users(idle_users(60))
            .latency(millis(100))
            .delete_latency(millis(1)),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--api-page-size=5", "--concurrency=10"])
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 60, "{out}");
    let ahead = hub.state().max_lists_in_flight;
    assert!(
        (3..=5).contains(&ahead),
        "{ahead} pages read at once (one, and at most 4 ahead):\n{out}"
    );

    // Slow stops, slow pages: once the first page's stops are queued every
    // executor has work waiting, and pages are read one at a time (more
    // only at the start, before anything is queued).
    let hub = start(
        HubConfig::new()
            .users(idle_users(100))
            .latency(millis(20))
            .delete_latency(millis(50)),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--api-page-size=10", "--concurrency=2"])
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 100, "{out}");
    let requests = hub.requests();
    let together: Vec<usize> = requests
        .iter()
        .skip_while(|r| r.kind != RequestKind::StopServer)
        .filter(|r| r.kind == RequestKind::ListUsers)
        .map(|r| r.lists_in_flight)
        .collect();
    assert!(!together.is_empty(), "pages were read after the first stop");
    assert!(
        together.iter().all(|&n| n == 1),
        "pages read together while the executors had work queued: {together:?}\n{out}"
    );
}

#[test]
fn concurrency_1_never_has_two_requests_in_flight() {
    let hub = start(
        HubConfig::new()
            .latency(millis(10))
            .users((0..20).map(|i| idle_user(&format!("user{i:02}")))),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--concurrency=1"]).run();
    out.assert_success();
    let state = hub.state();
    assert_eq!(state.stopped_servers().len(), 20, "{out}");
    assert_eq!(state.max_in_flight, 1, "{out}");
}

#[test]
fn concurrency_bound_covers_list_pages_and_user_deletions() {
    let hub = start(
        HubConfig::new()
            .latency(millis(10))
            .users((0..30).map(|i| idle_user(&format!("busy-then-idle{i:02}"))))
            .users((0..20).map(|i| gone_user(&format!("gone{i:02}")))),
    );
    let out = once(&hub)
        .args([
            TIMEOUT_1H,
            "--concurrency=4",
            "--cull-users",
            "--api-page-size=5",
        ])
        .run();
    out.assert_success();
    let state = hub.state();
    assert_eq!(state.deleted_users().len(), 50, "{out}");
    assert_eq!(state.user_names(), Vec::<String>::new(), "{out}");
    assert!(
        state.max_in_flight <= 4,
        "{} requests in flight with --concurrency=4",
        state.max_in_flight
    );
}

// ----------------------------------------------------------------- pagination

#[test]
fn pagination_culls_exactly_the_idle_users_although_offsets_shift() {
    // 30 users in id order, 7 of them busy, spread over the pages: stopping
    // servers drops users out of state=ready and shifts every later page, so
    // walking forward while culling would skip users.
    let busy = [2usize, 5, 9, 14, 18, 23, 29];
    let mut config = HubConfig::new();
    let mut idle = Vec::new();
    for i in 0..30 {
        let name = format!("u{i:02}");
        if busy.contains(&i) {
            config = config.user(busy_user(&name));
        } else {
            idle.push(name.clone());
            config = config.user(idle_user(&name));
        }
    }
    assert_eq!(idle.len(), 23);
    let hub = start(config);
    let out = once(&hub).args([TIMEOUT_1H, "--api-page-size=5"]).run();
    out.assert_success();
    let expected: BTreeSet<(String, String)> =
        idle.iter().map(|n| (n.clone(), String::new())).collect();
    assert_eq!(stopped(&hub), expected, "{out}");
    assert_eq!(
        hub.deletes().len(),
        23,
        "each idle server stopped exactly once:\n{}",
        deletes_text(&hub)
    );
    for i in busy {
        assert_eq!(hub.active_servers(&format!("u{i:02}")), vec![String::new()]);
    }
    let lists = hub.lists();
    assert!(lists.iter().all(|l| l.limit == 5), "pages: {lists:?}");
}

#[test]
fn pagination_short_pages_from_the_ready_filter_do_not_end_the_walk() {
    // Every other user's only server is still spawning: active (so counted in
    // offsets and `total`) but dropped by the in-memory ready filter, so each
    // page of 4 holds only 2 users while more pages follow.
    let mut config = HubConfig::new();
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        let name = format!("u{i:02}");
        if i % 2 == 0 {
            let spawning = FakeServer::default_server()
                .idle_for(hours(2))
                .pending(Some("spawn"));
            config = config.user(FakeUser::new(&name).idle_for(hours(2)).server(spawning));
        } else {
            expected.insert((name.clone(), String::new()));
            config = config.user(idle_user(&name));
        }
    }
    let hub = start(config);
    let out = once(&hub).args([TIMEOUT_1H, "--api-page-size=4"]).run();
    out.assert_success();
    assert_eq!(stopped(&hub), expected, "{out}");
}

#[test]
fn pagination_uses_offsets_not_the_next_url_built_by_the_hub() {
    // Behind a proxy the hub's idea of its own URL differs from ours; here it
    // points at a closed port.
    let hub = start(
        HubConfig::new()
            .next_url_base("http://127.0.0.1:9/hub/api")
            .users((0..12).map(|i| idle_user(&format!("u{i:02}")))),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--api-page-size=5"]).run();
    out.assert_success();
    assert_eq!(hub.stopped_servers().len(), 12, "{out}");
}

#[test]
fn more_users_than_the_hubs_max_page_are_all_culled() {
    // Default page sizes (50, max 200): a culler reading a plain list would
    // silently get only the first 200.
    let hub = start(HubConfig::new().users((0..450).map(|i| idle_user(&format!("u{i:03}")))));
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_success();
    assert_eq!(hub.stopped_servers().len(), 450, "{out}");
}

#[test]
fn api_page_size_above_the_hubs_max_is_clamped_and_every_user_is_culled() {
    // The hub answers limit=200 to a request for 500: offsets must follow
    // what the hub says, not what was asked.
    let hub = start(HubConfig::new().users((0..450).map(|i| idle_user(&format!("u{i:03}")))));
    let out = once(&hub).args([TIMEOUT_1H, "--api-page-size=500"]).run();
    out.assert_success();
    assert_eq!(hub.stopped_servers().len(), 450, "{out}");
}

#[test]
fn inactive_users_on_several_pages_are_all_deleted() {
    // Deleting users shifts the offsets of state=inactive pages.
    let hub = start(HubConfig::new().users((0..12).map(|i| gone_user(&format!("g{i:02}")))));
    let out = once(&hub)
        .args([TIMEOUT_1H, "--cull-users", "--api-page-size=5"])
        .run();
    out.assert_success();
    assert_eq!(hub.deleted_users().len(), 12, "{out}");
    assert!(hub.user_names().is_empty(), "{out}");
}

// ------------------------------------------------------------------ slow stop

#[test]
fn slow_stop_202_user_is_not_deleted_in_that_pass_but_others_are() {
    let hub = start(
        HubConfig::new()
            .user(idle_user("quick1"))
            .user(idle_user("slow").slow_stop(true))
            .user(idle_user("quick2")),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_success();
    let deletes = hub.deletes();
    assert!(
        deletes.iter().any(|d| d.target
            == Target::Server {
                user: "slow".into(),
                server: String::new()
            }
            && d.status == 202),
        "the slow server was not asked to stop:\n{}",
        deletes_text(&hub)
    );
    assert!(
        !deletes.iter().any(|d| d.target
            == Target::User {
                user: "slow".into()
            }),
        "the slow user was deleted in the same pass:\n{}",
        deletes_text(&hub)
    );
    assert!(hub.has_user("slow"));
    assert_eq!(deleted(&hub), names(["quick1", "quick2"]), "{out}");
    assert!(
        out.stderr
            .contains("2 servers culled, 1 servers still stopping, 2 users culled"),
        "{out}"
    );
}

// --------------------------------------------------------------- old hubs

#[test]
fn pre_2_0_hub_answering_plain_lists_is_culled() {
    let hub = start(
        HubConfig::new()
            .version("1.5.0")
            .user(idle_user("idle1"))
            .user(busy_user("busy"))
            .user(idle_user("idle2"))
            .user(gone_user("gone")),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_success();
    assert_eq!(
        stopped(&hub),
        pairs(&[("idle1", ""), ("idle2", "")]),
        "{out}"
    );
    assert_eq!(deleted(&hub), names(["gone", "idle1", "idle2"]), "{out}");
    assert!(hub.lists().iter().all(|l| !l.paginated));
    assert!(
        warning_lines(&out).is_empty(),
        "a plain list is normal before 2.0:\n{out}"
    );
}

#[test]
fn a_plain_list_from_a_2_x_hub_is_culled_with_a_warning_about_the_accept_header() {
    // Something between the culler and a 6.x hub dropped the Accept header.
    let stamp = ago(hours(2)).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let body = format!(
        r#"[{{"name": "plain", "admin": false, "last_activity": "{stamp}",
            "servers": {{"": {{"name": "", "ready": true, "pending": null, "url": "/user/plain/",
            "started": "{stamp}", "last_activity": "{stamp}"}}}}}}]"#
    );
    let hub = start(
        HubConfig::new()
            .user(idle_user("plain"))
            .fault(Fault::raw("GET", "/users", 200, &body)),
    );
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("plain", "")]), "{out}");
    let warnings = warning_lines(&out);
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("plain list") && warnings[0].contains("Accept"),
        "{out}"
    );
}

#[test]
fn a_pre_2_0_hub_sends_thousands_of_users_in_one_body_and_all_are_judged() {
    // Several MiB in one answer: the body limit is for absurd answers only.
    let hub = start(
        HubConfig::new()
            .version("1.5.0")
            .users((0..5000).map(|i| busy_user(&format!("busy-with-a-long-name-{i}"))))
            .user(idle_user("last")),
    );
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("last", "")]), "{out}");
    assert!(out.stderr.contains("5001 users seen"), "{out}");
}

#[test]
fn pre_1_3_hub_without_state_filter_culler_filters_itself() {
    // JupyterHub 1.2 ignores `state`: every list holds every user, so the
    // culler must not delete busy users listed as "inactive", nor stop
    // servers of users who have none.
    let hub = start(
        HubConfig::new()
            .version("1.2.0")
            .user(idle_user("idle"))
            .user(busy_user("busy"))
            .user(gone_user("gone"))
            .user(FakeUser::new("fresh").idle_for(secs(60))),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]), "{out}");
    assert_eq!(deleted(&hub), names(["gone", "idle"]), "{out}");
    assert_eq!(hub.active_servers("busy"), vec![String::new()]);
    assert!(hub.has_user("fresh"));
}

#[test]
fn naive_timestamps_from_old_hubs_are_read_as_utc() {
    // In a zone 14 h ahead of UTC, reading naive times as local would make
    // the busy server look 14 h idle.
    let hub = start(
        HubConfig::new()
            .version("1.5.0")
            .naive_timestamps()
            .user(idle_user("idle"))
            .user(busy_user("busy")),
    );
    let out = once(&hub).arg(TIMEOUT_1H).env("TZ", "XST-14").run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]), "{out}");
}

#[test]
fn minimal_scopes_model_without_created_still_culls_servers() {
    let hub = start(
        HubConfig::new()
            .minimal_scopes()
            .user(idle_user("idle"))
            .user(busy_user("busy")),
    );
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]), "{out}");
}

// ------------------------------------------------------------------ users

#[test]
fn cull_users_deletes_idle_users_and_spares_recent_ones() {
    let hub = start(
        HubConfig::new()
            .user(idle_user("idle-with-server"))
            .user(gone_user("gone"))
            .user(FakeUser::new("fresh").idle_for(secs(60)))
            .user(busy_user("busy"))
            .user(FakeUser::new("never-active-old").created(ago(hours(2))))
            .user(FakeUser::new("never-active-new")),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_success();
    assert_eq!(
        deleted(&hub),
        names(["gone", "idle-with-server", "never-active-old"]),
        "{out}"
    );
    assert_eq!(stopped(&hub), pairs(&[("idle-with-server", "")]), "{out}");
    assert_eq!(
        hub.user_names(),
        vec!["fresh", "busy", "never-active-new"],
        "{out}"
    );
    assert!(
        out.stderr.contains(
            "6 users seen, 1 servers culled, 0 servers still stopping, 3 users culled, 0 errors"
        ),
        "{out}"
    );
    assert!(
        out.stderr.contains("Culling user gone (reason: idle"),
        "{out}"
    );
}

#[test]
fn without_cull_users_no_user_is_deleted() {
    let hub = start(
        HubConfig::new()
            .user(idle_user("idle"))
            .user(gone_user("gone")),
    );
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]), "{out}");
    assert!(hub.deleted_users().is_empty(), "{}", deletes_text(&hub));
    assert_eq!(hub.count(RequestKind::DeleteUser), 0);
}

#[test]
fn cull_admin_users_false_spares_admins_even_past_max_age() {
    let hub = start(
        HubConfig::new()
            .user(gone_user("admin-idle").admin(true).created(ago(hours(240))))
            .user(
                idle_user("admin-with-server")
                    .admin(true)
                    .created(ago(hours(240))),
            )
            .user(
                FakeUser::new("admin-old-busy")
                    .admin(true)
                    .created(ago(hours(240)))
                    .idle_for(secs(60)),
            )
            .user(gone_user("plain")),
    );
    let out = once(&hub)
        .args([
            TIMEOUT_1H,
            "--cull-users",
            "--cull-admin-users=false",
            "--max-age=86400",
        ])
        .run();
    out.assert_success();
    assert_eq!(deleted(&hub), names(["plain"]), "{out}");
    assert_eq!(stopped(&hub), pairs(&[("admin-with-server", "")]), "{out}");
    assert_eq!(
        hub.user_names(),
        vec!["admin-idle", "admin-with-server", "admin-old-busy"]
    );
}

#[test]
fn admins_are_deleted_with_cull_users_by_default() {
    let hub = start(HubConfig::new().user(gone_user("admin").admin(true)));
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_success();
    assert_eq!(deleted(&hub), names(["admin"]), "{out}");
}

// ------------------------------------------------------------ named servers

fn alice_with_named_server() -> FakeUser {
    idle_user("alice").server(
        FakeServer::named("gpu")
            .idle_for(hours(2))
            .user_options(serde_json::json!({ "profile": "gpu" })),
    )
}

#[test]
fn named_servers_are_stopped_and_kept_without_remove_named_servers() {
    let hub = start(HubConfig::new().user(alice_with_named_server()));
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_success();
    assert_eq!(
        stopped(&hub),
        pairs(&[("alice", ""), ("alice", "gpu")]),
        "{out}"
    );
    for d in hub.deletes() {
        assert!(!d.asks_remove(), "asked to remove: {d:?}");
    }
    let state = hub.state();
    let alice = state.user("alice").expect("alice exists");
    let gpu = alice.servers.get("gpu").expect("gpu kept");
    assert!(!gpu.is_active());
}

#[test]
fn remove_named_servers_sends_remove_true_for_named_servers_only() {
    let hub = start(HubConfig::new().user(alice_with_named_server()));
    let out = once(&hub)
        .args([TIMEOUT_1H, "--remove-named-servers"])
        .run();
    out.assert_success();
    let deletes = hub.deletes();
    assert_eq!(deletes.len(), 2, "{}", deletes_text(&hub));
    for d in &deletes {
        assert_eq!(d.status, 204, "{d:?}");
        match &d.target {
            Target::Server { server, .. } if server == "gpu" => {
                assert_eq!(d.path, "/users/alice/servers/gpu");
                assert_eq!(
                    d.json_body(),
                    Some(serde_json::json!({ "remove": true })),
                    "{d:?}"
                );
            }
            Target::Server { server, .. } if server.is_empty() => {
                assert!(!d.asks_remove(), "{d:?}");
            }
            other => panic!("unexpected DELETE {other:?}"),
        }
    }
    let state = hub.state();
    assert!(!state.user("alice").unwrap().servers.contains_key("gpu"));
}

#[test]
fn cull_default_servers_false_stops_only_named_servers_and_keeps_their_users() {
    let hub = start(
        HubConfig::new()
            .user(alice_with_named_server())
            .user(idle_user("bob")),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--cull-default-servers=false", "--cull-users"])
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("alice", "gpu")]), "{out}");
    assert!(hub.deleted_users().is_empty(), "{}", deletes_text(&hub));
}

#[test]
fn cull_named_servers_false_stops_only_default_servers_and_keeps_their_users() {
    let hub = start(
        HubConfig::new()
            .user(alice_with_named_server())
            .user(idle_user("bob")),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--cull-named-servers=false", "--cull-users"])
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("alice", ""), ("bob", "")]), "{out}");
    assert_eq!(deleted(&hub), names(["bob"]), "{out}");
}

#[test]
fn pending_server_of_a_ready_user_is_not_stopped() {
    let hub = start(
        HubConfig::new().user(
            idle_user("alice").server(
                FakeServer::named("gpu")
                    .idle_for(hours(2))
                    .pending(Some("spawn")),
            ),
        ),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("alice", "")]), "{out}");
    assert!(hub.has_user("alice"), "{}", deletes_text(&hub));
}

#[test]
fn server_without_last_activity_or_started_is_never_culled_and_the_rest_continues() {
    // Upstream raises on such a server and abandons the rest of its user.
    let odd = FakeUser::new("odd")
        .idle_for(hours(2))
        .server(
            FakeServer::default_server()
                .started(None)
                .last_activity(None),
        )
        .server(FakeServer::named("gpu").idle_for(hours(2)));
    let hub = start(HubConfig::new().user(odd).user(idle_user("plain")));
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    assert_eq!(
        stopped(&hub),
        pairs(&[("odd", "gpu"), ("plain", "")]),
        "{out}"
    );
    assert_eq!(deleted(&hub), names(["plain"]), "{out}");
    assert_eq!(hub.active_servers("odd"), vec![String::new()], "{out}");
}

// ---------------------------------------------------------------- encoding

#[test]
fn user_names_are_percent_encoded_in_every_delete() {
    let all = ["carol@example.org", "a b", "ünï", "x+y"];
    let hub = start(
        HubConfig::new()
            .users(all.iter().map(|n| idle_user(n)))
            .user(idle_user("c d").server(FakeServer::named("lab-1").idle_for(hours(2)))),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_success();
    let mut expected = names(all);
    expected.insert("c d".into());
    assert_eq!(deleted(&hub), expected, "{}", deletes_text(&hub));
    for d in hub.deletes() {
        assert_eq!(d.status, 204, "{d:?}");
        assert!(
            d.raw_path.is_ascii() && !d.raw_path.contains(' '),
            "not percent-encoded: {:?}",
            d.raw_path
        );
    }
    assert!(hub.deletes().iter().any(|d| d.raw_path.contains("a%20b")));
    assert!(hub
        .deletes()
        .iter()
        .any(|d| d.raw_path.contains("%C3%BCn%C3%AF") || d.raw_path.contains("%c3%bcn%c3%af")));
    assert!(hub.user_names().is_empty(), "{out}");
}

// ----------------------------------------------------------------- max age

#[test]
fn max_age_stops_servers_started_long_ago_even_if_active() {
    let old = FakeServer::default_server()
        .started(ago(hours(3)))
        .last_activity(ago(secs(60)));
    let young = FakeServer::default_server()
        .started(ago(secs(1800)))
        .last_activity(ago(secs(60)));
    let hub = start(
        HubConfig::new()
            .user(FakeUser::new("old").idle_for(secs(60)).server(old))
            .user(FakeUser::new("young").idle_for(secs(60)).server(young)),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--max-age=7200"]).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("old", "")]), "{out}");
}

#[test]
fn max_age_deletes_users_created_long_ago_with_cull_users() {
    let hub = start(
        HubConfig::new()
            .user(
                FakeUser::new("old")
                    .created(ago(hours(72)))
                    .last_activity(ago(secs(60))),
            )
            .user(
                FakeUser::new("young")
                    .created(ago(hours(1)))
                    .last_activity(ago(secs(60))),
            ),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--cull-users", "--max-age=86400"])
        .run();
    out.assert_success();
    assert_eq!(deleted(&hub), names(["old"]), "{out}");
}

// ------------------------------------------------------------------ failures

#[test]
fn hub_down_once_exits_non_zero_with_one_error_naming_the_url() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("http://127.0.0.1:{port}/hub/api");
    let out = Culler::against(&url, TOKEN)
        .args(["--once", TIMEOUT_1H, FAST_RETRIES])
        .run();
    out.assert_failure();
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "one error expected:\n{out}");
    assert!(errors[0].contains("gave up after 6 attempts"), "{out}");
    assert!(
        errors[0].contains(&format!("127.0.0.1:{port}")),
        "the error does not name the URL:\n{out}"
    );
}

#[test]
fn missing_list_users_scope_exits_non_zero_naming_the_scope() {
    let hub = start(
        HubConfig::new()
            .fault(Fault::missing_scope("GET", "/users", "list:users"))
            .user(idle_user("idle")),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_failure();
    assert!(
        out.stderr.contains("requires any of [list:users]"),
        "the hub's message naming the scope is not shown:\n{out}"
    );
    assert!(hub.deletes().is_empty(), "{}", deletes_text(&hub));
}

#[test]
fn wrong_token_exits_non_zero_and_deletes_nothing() {
    let hub = start(
        HubConfig::new()
            .user(idle_user("idle"))
            .user(gone_user("gone")),
    );
    let out = Culler::against(hub.url(), "not-the-token")
        .args(["--once", TIMEOUT_1H, "--cull-users"])
        .run();
    out.assert_failure();
    assert!(
        out.stderr.contains("Missing or invalid credentials"),
        "the hub's 403 message is not shown:\n{out}"
    );
    assert!(hub.deletes().is_empty(), "{}", deletes_text(&hub));
}

#[test]
fn malformed_user_lists_exit_non_zero_and_delete_nothing() {
    // A body cut short or a proxy's HTML page may read well on another
    // try, so it is retried (--retries=2); JSON of the wrong shape is not.
    for (body, tries) in [
        ("{\"items\": [{\"name\": ", 3),
        ("{\"unexpected\": true}", 1),
        ("<html>oops</html>", 3),
    ] {
        let hub = start(
            HubConfig::new()
                .fault(Fault::raw("GET", "/users", 200, body))
                .user(idle_user("idle"))
                .user(gone_user("gone")),
        );
        let out = once(&hub)
            .args([TIMEOUT_1H, "--cull-users", FAST_RETRIES, "--retries=2"])
            .run();
        out.assert_failure();
        assert!(
            out.stderr.contains("not what JupyterHub sends"),
            "{body}: {out}"
        );
        assert!(hub.deletes().is_empty(), "{body}: {}", deletes_text(&hub));
        // Each listing (inactive, then ready) asks for its first page.
        assert_eq!(
            hub.count(RequestKind::ListUsers),
            2 * tries,
            "{body}: {out}"
        );
    }
}

#[test]
fn one_unreadable_user_is_skipped_and_the_rest_of_the_page_is_culled() {
    let two_hours_ago = ago(hours(2)).to_rfc3339();
    let server = |stamp: &str| {
        serde_json::json!({"": {"name": "", "ready": true, "pending": null, "url": "/user/x/",
                                "started": stamp, "last_activity": stamp}})
    };
    let page = serde_json::json!({
        "items": [
            {"name": "bad", "admin": false, "last_activity": "whenever", "servers": server(&two_hours_ago)},
            {"name": "good", "admin": false, "last_activity": two_hours_ago, "servers": server(&two_hours_ago)},
        ],
        "_pagination": {"offset": 0, "limit": 50, "total": 2, "next": null},
    });
    let hub = start(
        HubConfig::new()
            .fault(Fault::raw("GET", "/users", 200, &page.to_string()))
            .user(idle_user("bad"))
            .user(idle_user("good")),
    );
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_failure();
    assert_eq!(stopped(&hub), pairs(&[("good", "")]), "{out}");
    assert!(out.stderr.contains("Skipping user bad"), "{out}");
    assert!(out.stderr.contains("whenever"), "{out}");
}

#[test]
fn request_timeout_env_bounds_a_hung_hub() {
    let hub = start(HubConfig::new().latency(secs(30)).user(idle_user("idle")));
    let out = once(&hub)
        .args([TIMEOUT_1H, FAST_RETRIES, "--retries=1"])
        .env("JUPYTERHUB_REQUEST_TIMEOUT", "1")
        .deadline(secs(20))
        .run();
    out.assert_failure();
    assert!(out.elapsed < secs(10), "{out}");
    assert_eq!(
        hub.count(RequestKind::ListUsers),
        2,
        "one try and one retry"
    );
    assert!(hub.deletes().is_empty(), "{}", deletes_text(&hub));
}

#[test]
fn request_timeout_covers_a_hub_that_stalls_after_its_headers() {
    // Headers, then a body that never finishes: the timeout must cover the
    // whole answer, or one stalled request would hold the pass for ever.
    let hub = start(
        HubConfig::new()
            .fault(Fault::new("*", "*", FaultAction::stall()))
            .user(idle_user("idle")),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, FAST_RETRIES, "--retries=1"])
        .env("JUPYTERHUB_REQUEST_TIMEOUT", "1")
        .deadline(secs(20))
        .run();
    out.assert_failure();
    assert!(out.stderr.contains("no answer within 1 s"), "{out}");
    let stalled = hub
        .requests()
        .iter()
        .filter(|r| r.outcome == Outcome::Stalled)
        .count();
    assert_eq!(stalled, 2, "one try and one retry: {:?}", hub.requests());
}

#[test]
fn missing_token_env_exits_non_zero_naming_the_variable() {
    let hub = start(HubConfig::new().user(idle_user("idle")));
    let out = Culler::new()
        .args([format!("--url={}", hub.url()), "--once".into()])
        .run();
    out.assert_failure();
    assert!(
        out.stderr.contains("JUPYTERHUB_API_TOKEN"),
        "the variable is not named:\n{out}"
    );
    assert!(hub.deletes().is_empty());
}

/// Runs with one bad flag and checks the one-line rejection; no request may
/// reach the hub.
fn assert_rejected(flag: &str, named: &str) {
    let hub = start(HubConfig::new().user(idle_user("idle")));
    let out = once(&hub).arg(flag).run();
    out.assert_failure();
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line expected:\n{out}");
    assert!(lines[0].contains(named), "{named:?} not named:\n{out}");
    let state = hub.state();
    assert!(
        state.counts.values().all(|n| *n == 0),
        "the hub was contacted: {:?}",
        state.counts
    );
}

#[test]
fn timeout_abc_is_rejected_with_one_line_naming_it() {
    assert_rejected("--timeout=abc", "timeout");
}

#[test]
fn negative_timeout_is_rejected_with_one_line_naming_it() {
    assert_rejected("--timeout=-5", "timeout");
}

#[test]
fn unknown_flag_is_rejected_with_one_line_naming_it() {
    assert_rejected("--bogus", "bogus");
}

// ------------------------------------------------------- deployed command lines

#[test]
fn zero_to_jupyterhub_command_line_is_accepted_and_culls() {
    let hub = start(
        HubConfig::new()
            .user(alice_with_named_server())
            .user(busy_user("busy"))
            .user(gone_user("admin").admin(true)),
    );
    let out = Culler::new()
        .env("JUPYTERHUB_API_TOKEN", TOKEN)
        .args([
            format!("--url={}", hub.url()).as_str(),
            "--timeout=3600",
            "--cull-every=600",
            "--concurrency=10",
            "--cull-users",
            "--cull-admin-users=false",
            "--remove-named-servers",
            "--max-age=86400",
            "--once",
        ])
        .run();
    out.assert_success();
    assert_eq!(
        stopped(&hub),
        pairs(&[("alice", ""), ("alice", "gpu")]),
        "{out}"
    );
    assert_eq!(deleted(&hub), names(["alice"]), "{out}");
    assert_eq!(hub.user_names(), vec!["busy", "admin"]);
}

#[test]
fn littlest_jupyterhub_command_line_with_url_from_env_is_accepted_and_culls() {
    let hub = start(
        HubConfig::new()
            .user(
                FakeUser::new("idle")
                    .idle_for(secs(1200))
                    .server(FakeServer::default_server().idle_for(secs(1200))),
            )
            .user(busy_user("busy")),
    );
    let out = Culler::new()
        .env("JUPYTERHUB_API_TOKEN", TOKEN)
        .env("JUPYTERHUB_API_URL", hub.url())
        .args([
            "--timeout=600",
            "--cull-every=60",
            "--concurrency=5",
            "--max-age=0",
            "--cull-users",
            "--remove-named-servers",
            "--once",
        ])
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]), "{out}");
    assert_eq!(deleted(&hub), names(["idle"]), "{out}");
}

#[test]
fn underscore_cull_every_is_accepted() {
    let hub = start(HubConfig::new().user(idle_user("idle")));
    let out = once(&hub).args([TIMEOUT_1H, "--cull_every=600"]).run();
    out.assert_success();
}

#[test]
fn underscore_cull_users_is_applied() {
    // Upstream 2.0 silently ignores underscore spellings; we honour them.
    let hub = start(HubConfig::new().user(gone_user("gone")));
    let out = once(&hub).args([TIMEOUT_1H, "--cull_users"]).run();
    out.assert_success();
    assert_eq!(deleted(&hub), names(["gone"]), "{out}");
}

#[test]
fn idle_culler_dotted_timeout_is_accepted() {
    let hub = start(HubConfig::new().user(idle_user("idle")));
    let out = once(&hub).arg("--IdleCuller.timeout=600").run();
    out.assert_success();
}

#[test]
fn idle_culler_dotted_timeout_is_applied() {
    // Idle 2 h: the default 600 s would cull it, 3 h does not.
    let hub = start(HubConfig::new().user(idle_user("idle")));
    let out = once(&hub).arg("--IdleCuller.timeout=10800").run();
    out.assert_success();
    assert!(hub.stopped_servers().is_empty(), "{}", deletes_text(&hub));
}

// ------------------------------------------------------------- periodic mode

#[test]
fn without_once_it_keeps_culling_on_every_pass_until_killed() {
    let hub = start(HubConfig::new().user(idle_user("first")));
    let mut culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=1"])
        .spawn();
    let first = hub.wait_until(secs(20), |s| {
        s.stopped_servers()
            .contains(&("first".into(), String::new()))
    });
    assert!(first, "first pass did not cull:\n{}", culler.kill());
    hub.add_user(idle_user("second"));
    let second = hub.wait_until(secs(20), |s| {
        s.stopped_servers()
            .contains(&("second".into(), String::new()))
    });
    assert!(second, "a later pass did not cull:\n{}", culler.kill());
    assert!(!culler.has_exited(), "exited without --once");
    let out = culler.kill();
    assert!(!out.stderr.contains("panicked"), "{out}");
}
