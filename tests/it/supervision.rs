//! Supervision that really restarts: an actor that panics is restarted with
//! fresh state, the work it held is reported (and done by the next pass),
//! and a crash loop ends the process so that its own supervisor (JupyterHub,
//! Kubernetes) starts a fresh one.
//!
//! Panics are injected with `CULLER_TEST_PANIC`, which only builds with the
//! `fault-injection` feature understand (`scripts/test` turns it on; see
//! `src/pipeline/chaos.rs`).

use crate::support::culler::Culler;
use crate::support::fake_hub::HubConfig;
use crate::support::scenario::*;

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: run scripts/test"
)]
fn a_panicking_executor_is_restarted_and_only_its_request_is_lost() {
    let hub = start(HubConfig::new().users(idle_users(12)));
    // One executor: every request after the panic goes through it again,
    // so the pass can only finish if the restart really happened.
    let out = once(&hub)
        .args([TIMEOUT_1H, "--concurrency=1"])
        .env("CULLER_TEST_PANIC", "executor:5")
        .run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the lost stop is an error:\n{out}"
    );
    assert!(
        out.stderr
            .contains("The executor 1 failed (panic: injected by CULLER_TEST_PANIC"),
        "{out}"
    );
    let lost = lines_with(&out, &["Failed to stop server"]);
    assert_eq!(lost.len(), 1, "{out}");
    assert_eq!(stopped(&hub).len(), 11, "{}", deletes_text(&hub));
    assert_eq!(hub.deletes().len(), 11, "the lost stop was never sent");
    assert!(out.stderr.contains("11 servers culled"), "{out}");

    // Reported, not lost: the next pass stops it.
    once(&hub).arg(TIMEOUT_1H).run().assert_success();
    assert_eq!(stopped(&hub).len(), 12, "{}", deletes_text(&hub));
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: run scripts/test"
)]
fn an_evaluator_panic_fails_only_the_page_it_held() {
    // Pages of 5 walked last to first: the first page judged holds idle-10
    // and idle-11, and its work dies with the evaluator.
    let hub = start(HubConfig::new().users(idle_users(12)));
    let out = once(&hub)
        .args([TIMEOUT_1H, "--api-page-size=5"])
        .env("CULLER_TEST_PANIC", "evaluator:1")
        .run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(out.stderr.contains("The evaluator failed (panic"), "{out}");
    let expected: Vec<_> = (0..10).map(|i| format!("idle-{i}")).collect();
    let culled: Vec<_> = stopped(&hub).into_iter().map(|(user, _)| user).collect();
    assert_eq!(names(&culled), names(&expected), "{out}");
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: run scripts/test"
)]
fn a_lister_panic_fails_one_pass_and_the_next_pass_culls() {
    let hub = start(HubConfig::new().users(idle_users(3)));
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=1"])
        .env("CULLER_TEST_PANIC", "lister:1")
        .spawn();
    let culled = hub.wait_until(secs(20), |s| s.stopped_servers().len() == 3);
    culler.signal("TERM");
    let out = culler.wait(secs(20));
    assert!(culled, "the restarted lister did not cull:\n{out}");
    out.assert_success();
    assert!(out.stderr.contains("The lister failed (panic"), "{out}");
    let passes = lines_with(&out, &["Pass finished"]);
    assert!(
        passes[0].contains("0 users seen") && passes[0].contains("1 errors"),
        "{out}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: run scripts/test"
)]
fn a_scheduler_that_fails_finishing_a_pass_is_restarted_and_passes_go_on() {
    // The first pass culls, then the scheduler fails before logging it; the
    // restarted scheduler must not think that pass still runs.
    let hub = start(HubConfig::new().users(idle_users(3)));
    let out = once(&hub)
        .arg(TIMEOUT_1H)
        .env("CULLER_TEST_PANIC", "scheduler:1")
        .run();
    out.assert_success();
    assert!(out.stderr.contains("The scheduler failed (panic"), "{out}");
    assert_eq!(stopped(&hub).len(), 3, "{out}");
    let passes = lines_with(&out, &["Pass finished"]);
    assert_eq!(passes.len(), 1, "{out}");
    assert!(
        passes[0].contains("0 users seen"),
        "the restarted scheduler ran the next pass:\n{out}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: run scripts/test"
)]
fn a_crash_loop_of_any_actor_spends_the_restart_budget_and_exits_3() {
    let hubs: Vec<_> = (0..4)
        .map(|_| start(HubConfig::new().users(idle_users(20))))
        .collect();
    // All at once: a lister or executor loop crashes once per pass.
    let running: Vec<_> = ["executor", "evaluator", "lister", "scheduler"]
        .into_iter()
        .zip(&hubs)
        .map(|(site, hub)| {
            let culler = Culler::against(hub.url(), TOKEN)
                .args([TIMEOUT_1H, "--cull-every=1", "--api-page-size=1"])
                .env("CULLER_TEST_PANIC", &format!("{site}:*"))
                .spawn();
            (site, culler)
        })
        .collect();
    for ((site, culler), hub) in running.into_iter().zip(&hubs) {
        let out = culler.wait(secs(30));
        assert_eq!(out.status.code(), Some(3), "{site}:\n{out}");
        let gave_up = lines_with(&out, &["failed again: more than 5 restarts in 60 s"]);
        assert!(
            gave_up.len() == 1 && gave_up[0].contains(&format!("The {site}")),
            "{site}: the reason is not logged:\n{out}"
        );
        let crashes = lines_with(&out, &["failed (panic"]);
        assert_eq!(crashes.len(), 6, "{site}:\n{out}");
        // Executors and listers that fail first thing never get to cull.
        if site == "executor" || site == "lister" {
            assert!(hub.deletes().is_empty(), "{site}: {}", deletes_text(hub));
        }
    }
}
