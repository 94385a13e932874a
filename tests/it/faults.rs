//! The culler driven through every fault a hub, or what stands in front of
//! it, can throw: each asserted on the outcome (what was culled, the exit
//! code), on the log line an operator sees, and on the exact requests the
//! hub received.

use std::collections::BTreeSet;

use crate::support::culler::Culler;
use crate::support::fake_hub::{
    DownMode, FakeHub, FakeServer, FakeUser, Fault, FaultAction, HubConfig, Outcome, RandomFaults,
    RequestKind,
};
use crate::support::scenario::*;

/// A hub population with every kind of decision in it: idle and busy
/// default servers, named servers, idle users without servers, an admin,
/// and users spread over several pages.
fn population() -> Vec<FakeUser> {
    let mut users = Vec::new();
    for i in 0..24 {
        let user = match i % 6 {
            0 | 1 => idle_user(&format!("idle-{i}")),
            2 => busy_user(&format!("busy-{i}")),
            3 => gone_user(&format!("gone-{i}")),
            4 => FakeUser::new(&format!("named-{i}"))
                .idle_for(hours(2))
                .server(FakeServer::named("gpu").idle_for(hours(2)))
                .server(busy_server()),
            _ => gone_user(&format!("admin-{i}")).admin(true),
        };
        users.push(user);
    }
    users
}

const POPULATION_ARGS: [&str; 5] = [
    TIMEOUT_1H,
    "--cull-users",
    "--cull-admin-users=false",
    "--api-page-size=5",
    "--concurrency=4",
];

/// What a pass did: servers stopped and users deleted (sets: a retried
/// request the hub had already carried out shows up once).
fn culled(hub: &FakeHub) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    (stopped(hub), deleted(hub))
}

#[test]
fn with_a_fifth_of_requests_failing_one_pass_culls_exactly_what_a_fault_free_pass_culls() {
    let clean = start(HubConfig::new().users(population()));
    once(&clean).args(POPULATION_ARGS).run().assert_success();
    let expected = culled(&clean);
    assert!(!expected.0.is_empty() && !expected.1.is_empty());

    let menu = [
        FaultAction::error(502, "Bad Gateway"),
        FaultAction::error(500, "Internal Server Error"),
        FaultAction::error(503, "Service Unavailable").header("Retry-After", "0"),
        FaultAction::error(429, "Too Many Requests").header("Retry-After", "0"),
        FaultAction::drop_connection(),
        FaultAction::drop_connection().with_effect(),
        FaultAction::silent_close(),
        FaultAction::stall(),
        FaultAction::slow_body(64, millis(5)),
    ];
    for seed in [1, 2, 3] {
        let faulty = start(
            HubConfig::new()
                .users(population())
                .random_faults(RandomFaults::new(seed, 0.2, menu.clone())),
        );
        let out = once(&faulty)
            .args(POPULATION_ARGS)
            .args([FAST_RETRIES])
            .env("JUPYTERHUB_REQUEST_TIMEOUT", "1")
            .run();
        out.assert_success();
        assert_eq!(culled(&faulty), expected, "seed {seed}:\n{out}");
        let faulted = faulty
            .requests()
            .iter()
            .filter(|r| r.fault.is_some())
            .count();
        assert!(faulted >= 5, "seed {seed}: only {faulted} faults fired");
        assert!(
            warning_lines(&out)
                .iter()
                .filter(|l| l.contains("retry"))
                .count()
                >= faulted / 2,
            "each retry is logged at WARN:\n{out}"
        );
    }
}

#[test]
fn a_proxy_that_closes_every_idle_connection_does_not_fail_the_pass() {
    for concurrency in ["--concurrency=1", "--concurrency=5"] {
        let hub = start(
            HubConfig::new()
                .users(idle_users(40))
                .close_idle_connections_after(millis(0)),
        );
        let out = once(&hub)
            .args([TIMEOUT_1H, concurrency, FAST_RETRIES])
            .run();
        out.assert_success();
        assert_eq!(stopped(&hub).len(), 40, "{concurrency}:\n{out}");
    }
}

#[test]
fn a_dropped_connection_is_retried_and_the_request_arrives_again() {
    let hub = start(
        HubConfig::new().users(idle_users(2)).fault(
            Fault::new(
                "DELETE",
                "/users/idle-0/server",
                FaultAction::drop_connection(),
            )
            .times(1),
        ),
    );
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    out.assert_success();
    let outcomes: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.path == "/users/idle-0/server")
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [Outcome::Dropped, Outcome::Answered(204)],
        "{out}"
    );
    assert_eq!(warning_lines(&out).len(), 1, "{out}");
    assert!(warning_lines(&out)[0].contains("retry 1 of 5"), "{out}");
}

#[test]
fn an_answer_lost_after_the_hub_acted_is_retried_and_found_done() {
    let hub = start(
        HubConfig::new().user(gone_user("gone")).fault(
            Fault::new(
                "DELETE",
                "/users/gone",
                FaultAction::drop_connection().with_effect(),
            )
            .times(1),
        ),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, FAST_RETRIES, "--cull-users"])
        .run();
    out.assert_success();
    assert!(!hub.has_user("gone"));
    assert!(out.stderr.contains("User gone was already gone"), "{out}");
}

#[test]
fn retry_after_is_waited_for() {
    let hub = start(
        HubConfig::new().user(idle_user("idle")).fault(
            Fault::error("DELETE", "/users/idle/server", 429, "slow down")
                .header("Retry-After", "1")
                .times(1),
        ),
    );
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 1);
    let warnings = warning_lines(&out);
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("429") && warnings[0].contains("in 1.0 s"),
        "{out}"
    );
    assert!(out.elapsed >= secs(1), "{out}");
}

#[test]
fn a_slow_body_within_the_timeout_is_just_slow() {
    let hub = start(HubConfig::new().users(idle_users(3)).fault(Fault::new(
        "GET",
        "/users",
        FaultAction::slow_body(100, millis(10)),
    )));
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 3);
    assert!(warning_lines(&out).is_empty(), "{out}");
    assert!(!out.stderr.contains("retry"), "nothing was retried:\n{out}");
}

#[test]
fn an_absurd_total_is_walked_by_the_pages_not_by_the_claim() {
    let hub = start(HubConfig::new().users(idle_users(12)).lie_total(u64::MAX));
    let out = once(&hub).args([TIMEOUT_1H, "--api-page-size=5"]).run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 12, "{out}");
    let lists = hub.count(RequestKind::ListUsers);
    assert!(lists < 80, "{lists} pages requested");
    let warnings = warning_lines(&out);
    assert!(
        warnings.iter().any(|w| w.contains("18446744073709551615")),
        "the absurd total is named:\n{out}"
    );
}

#[test]
fn a_total_too_small_skips_no_one_and_says_so() {
    let hub = start(
        HubConfig::new()
            .users((0..12).map(|i| gone_user(&format!("gone-{i}"))))
            .lie_total_by(-6),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--api-page-size=5", "--cull-users"])
        .run();
    out.assert_success();
    assert_eq!(deleted(&hub).len(), 12, "{out}");
    assert!(!warning_lines(&out).is_empty(), "{out}");
}

#[test]
fn a_limit_larger_than_the_pages_skips_no_one_and_says_so() {
    let hub = start(
        HubConfig::new()
            .users((0..50).map(|i| gone_user(&format!("gone-{i}"))))
            .page_limits(20, 20)
            .claim_limit(50),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--cull-users"]).run();
    out.assert_success();
    assert_eq!(deleted(&hub).len(), 50, "{out}");
    assert!(!warning_lines(&out).is_empty(), "{out}");
}

#[test]
fn a_limit_past_the_total_with_next_set_skips_no_one_and_says_so() {
    // The hub pages by 5 but claims a limit of 2^64-1 with a total of 12:
    // taken at its word, the first page would be the only one.
    let hub = start(
        HubConfig::new()
            .users(idle_users(12))
            .page_limits(5, 5)
            .claim_limit(usize::MAX),
    );
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 12, "{out}");
    let warnings = warning_lines(&out);
    assert_eq!(warnings.len(), 1, "{out}");
    for figure in ["18446744073709551615", "12", "offset 5", "by 5"] {
        assert!(warnings[0].contains(figure), "{figure}: {out}");
    }
}

#[test]
fn a_lone_surrogate_in_one_name_loses_only_that_user() {
    // Python's json writes a name holding a lone surrogate as "\ud800":
    // valid JSON, but no string. Only that user is lost, on a middle page.
    let hub = start(
        HubConfig::new()
            .users(idle_users(11))
            .raw_name("idle-7", r#""idle-7\ud800""#),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--api-page-size=5"]).run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    let expected: BTreeSet<_> = (0..11)
        .filter(|&i| i != 7)
        .map(|i| (format!("idle-{i}"), String::new()))
        .collect();
    assert_eq!(stopped(&hub), expected, "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains(r#""idle-7\ud800""#) && errors[0].contains("unreadable"),
        "{out}"
    );
}

#[test]
fn a_page_that_never_reads_is_retried_then_skipped_and_the_other_pages_culled() {
    // The page at offset 5 is a proxy's HTML page, every time.
    let hub = start(
        HubConfig::new().users(idle_users(15)).fault(
            Fault::new(
                "GET",
                "/users",
                FaultAction::respond(200, "text/html", "<html>502 Bad Gateway</html>"),
            )
            .with_query("offset=5&"),
        ),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--api-page-size=5", FAST_RETRIES, "--retries=2"])
        .run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    let expected: BTreeSet<_> = (0..15)
        .filter(|i| !(5..10).contains(i))
        .map(|i| (format!("idle-{i}"), String::new()))
        .collect();
    assert_eq!(stopped(&hub), expected, "{out}");
    let sent_at_5 = hub
        .requests()
        .iter()
        .filter(|r| r.kind == RequestKind::ListUsers && r.query.contains("offset=5&"))
        .count();
    assert_eq!(sent_at_5, 3, "one try and two retries:\n{out}");
    assert_eq!(lines_with(&out, &["retry 1 of 2"]).len(), 1, "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("skipping the page at offset 5")
            && errors[0].contains("not what JupyterHub sends"),
        "{out}"
    );
    assert!(out.stderr.contains("not every user was seen"), "{out}");
}

#[test]
fn a_200_that_is_not_json_once_is_retried_and_the_pass_succeeds() {
    for path in ["/", "/users"] {
        let hub = start(
            HubConfig::new().users(idle_users(3)).fault(
                Fault::new(
                    "GET",
                    path,
                    FaultAction::respond(200, "text/html", "<html>upstream timed out</html>"),
                )
                .times(1),
            ),
        );
        let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
        out.assert_success();
        assert_eq!(stopped(&hub).len(), 3, "{path}: {out}");
        let warnings = warning_lines(&out);
        assert_eq!(warnings.len(), 1, "{path}: {out}");
        assert!(
            warnings[0].contains("not what JupyterHub sends")
                && warnings[0].contains("retry 1 of 5"),
            "{path}: {out}"
        );
    }
}

#[test]
fn a_hub_ignoring_offset_is_an_error_not_an_endless_walk() {
    let hub = start(HubConfig::new().users(idle_users(12)).ignore_offset());
    let out = once(&hub).args([TIMEOUT_1H, "--api-page-size=5"]).run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(errors[0].contains("offset"), "{out}");
    assert!(hub.count(RequestKind::ListUsers) <= 4, "{out}");
}

#[test]
fn a_hub_down_at_start_is_waited_for_with_one_error_per_failed_pass() {
    let hub = start(HubConfig::new().users(idle_users(3)));
    hub.go_down(DownMode::Refuse);
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=1", FAST_RETRIES, "--retries=2"])
        .spawn();
    assert!(
        culler.wait_for_log("Pass finished", secs(20)),
        "{}",
        culler.stderr_so_far()
    );
    hub.come_back();
    let culled = hub.wait_until(secs(20), |s| s.stopped_servers().len() == 3);
    culler.signal("TERM");
    let out = culler.wait(secs(60));
    assert!(culled, "nothing culled once the hub came back:\n{out}");
    out.assert_success();
    let failed_passes = lines_with(&out, &["Pass finished"])
        .iter()
        .filter(|l| !l.contains(" 0 errors"))
        .count();
    assert!(failed_passes >= 1, "{out}");
    assert_eq!(
        error_lines(&out).len(),
        failed_passes,
        "one error line per failed pass:\n{out}"
    );
}

#[test]
fn a_hub_restarting_behind_its_proxy_mid_pass_is_ridden_out_by_retries() {
    let hub = start(HubConfig::new().users(idle_users(6)));
    hub.go_down(DownMode::Answer(503));
    let culler = once(&hub).args([TIMEOUT_1H, "--retry-delay=0.2"]).spawn();
    let refused = hub.wait_until(secs(20), |s| {
        s.requests()
            .iter()
            .filter(|r| r.outcome == Outcome::Down(503))
            .count()
            >= 2
    });
    hub.come_back();
    let out = culler.wait(secs(60));
    assert!(refused, "{out}");
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 6, "{out}");
}
