//! The graceful stop: on SIGTERM or SIGINT nothing new starts, what is on
//! the wire finishes (within `--stop-timeout`, by default 8 s: inside the
//! 10 s JupyterHub 5 waits before its SIGTERM), the log says what was done
//! and what was left, and the exit code says whether the job was done.

use crate::support::culler::{Culler, RunningCuller};
use crate::support::fake_hub::{FakeHub, HubConfig, Outcome};
use crate::support::scenario::*;

/// A stop that takes longer than any test waits.
const STUCK: std::time::Duration = std::time::Duration::from_secs(120);

/// A daemon (or `--once`) culler with one request per executor held on the
/// wire for `latency`, returned once `on_the_wire` DELETEs are in flight.
fn culler_with_deletes_on_the_wire(
    hub: &FakeHub,
    once: bool,
    concurrency: usize,
    on_the_wire: usize,
) -> RunningCuller {
    let mut culler = Culler::against(hub.url(), TOKEN).args([
        TIMEOUT_1H.to_owned(),
        "--cull-every=600".to_owned(),
        format!("--concurrency={concurrency}"),
    ]);
    if once {
        culler = culler.arg("--once");
    }
    let running = culler.spawn();
    let sent = hub.wait_until(secs(20), |s| {
        s.requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.outcome == Outcome::InProgress)
            .count()
            == on_the_wire
    });
    assert!(sent, "the DELETEs never went out:\n{}", running.kill());
    running
}

#[test]
fn sigterm_mid_pass_lets_requests_on_the_wire_finish_and_sends_nothing_new() {
    let hub = start(
        HubConfig::new()
            .delete_latency(secs(2))
            .users(idle_users(10)),
    );
    let culler = culler_with_deletes_on_the_wire(&hub, false, 2, 2);
    culler.signal("TERM");
    let out = culler.wait(secs(20));
    out.assert_success();
    let deletes = hub.deletes();
    assert_eq!(
        deletes.len(),
        2,
        "only what was on the wire:\n{}",
        deletes_text(&hub)
    );
    assert!(
        deletes.iter().all(|d| d.status == 204),
        "{}",
        deletes_text(&hub)
    );
    assert_eq!(
        lines_with(&out, &["Culling server "]).len(),
        2,
        "'Culling server' only for requests sent:\n{out}"
    );
    assert!(out.stderr.contains("Pass interrupted by SIGTERM"), "{out}");
    assert!(out.stderr.contains("2 servers culled"), "{out}");
    assert!(out.stderr.contains("8 culls not sent"), "{out}");
}

#[test]
fn an_interrupted_once_exits_non_zero() {
    let hub = start(
        HubConfig::new()
            .delete_latency(secs(2))
            .users(idle_users(4)),
    );
    let culler = culler_with_deletes_on_the_wire(&hub, true, 1, 1);
    culler.signal("INT");
    let out = culler.wait(secs(20));
    assert_eq!(out.status.code(), Some(130), "128 + SIGINT:\n{out}");
    assert_eq!(hub.deletes().len(), 1, "{}", deletes_text(&hub));
    assert!(out.stderr.contains("3 culls not sent"), "{out}");
}

#[test]
fn a_request_stuck_past_the_stop_timeout_is_named_and_left_before_jupyterhub_5_sends_sigterm() {
    let hub = start(
        HubConfig::new()
            .delete_latency(STUCK)
            .user(idle_user("stuck")),
    );
    let culler = culler_with_deletes_on_the_wire(&hub, false, 1, 1);
    // How JupyterHub 5 stops a managed service: SIGINT, and SIGTERM 10 s
    // later (a second signal, which would end the culler at once).
    let interrupted = std::time::Instant::now();
    culler.signal("INT");
    let out = culler.wait(secs(30));
    let took = interrupted.elapsed();
    out.assert_success();
    assert!(
        took < secs(10),
        "still running {took:?} after SIGINT, past JupyterHub 5's SIGTERM:\n{out}"
    );
    assert!(
        out.stderr
            .contains("Stopping with 1 requests unanswered after 8 s: DELETE /users/stuck/server"),
        "{out}"
    );
}

#[test]
fn stop_timeout_sets_how_long_the_requests_on_the_wire_may_take() {
    let hub = start(
        HubConfig::new()
            .delete_latency(STUCK)
            .user(idle_user("stuck")),
    );
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=600", "--stop-timeout=1.5"])
        .spawn();
    let sent = hub.wait_until(secs(20), |s| {
        s.requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.outcome == Outcome::InProgress)
    });
    assert!(sent, "the DELETE never went out:\n{}", culler.kill());
    let signalled = std::time::Instant::now();
    culler.signal("TERM");
    let out = culler.wait(secs(30));
    let took = signalled.elapsed();
    out.assert_success();
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < secs(5),
        "exited {took:?} after SIGTERM:\n{out}"
    );
    assert!(
        out.stderr.contains("(at most 1.5 s)")
            && out
                .stderr
                .contains("unanswered after 1.5 s: DELETE /users/stuck/server"),
        "{out}"
    );
}

#[test]
fn a_second_signal_stops_at_once() {
    let hub = start(
        HubConfig::new()
            .delete_latency(STUCK)
            .user(idle_user("stuck")),
    );
    let culler = culler_with_deletes_on_the_wire(&hub, false, 1, 1);
    culler.signal("TERM");
    // Two signals sent at once may arrive as one: wait for the first's.
    assert!(
        culler.wait_for_log("Received SIGTERM", secs(10)),
        "{}",
        culler.stderr_so_far()
    );
    culler.signal("TERM");
    let out = culler.wait(secs(10));
    out.assert_success();
    assert!(
        out.stderr.contains("Received SIGTERM again: stopping now"),
        "{out}"
    );
}

#[test]
fn sigterm_stops_a_running_culler_with_exit_0() {
    let hub = start(HubConfig::new().user(idle_user("first")));
    let culler = running_culler(&hub, Culler::against(hub.url(), TOKEN));
    culler.signal("TERM");
    let out = culler.wait(secs(10));
    out.assert_success();
    assert!(out.stderr.contains("Received SIGTERM"), "{out}");
}

#[test]
fn sigint_stops_it_even_when_started_with_sigint_ignored() {
    // JupyterHub stops services with SIGINT; a hub started from a script
    // passes SIGINT down ignored.
    let hub = start(HubConfig::new().user(idle_user("first")));
    let culler = running_culler(&hub, Culler::against(hub.url(), TOKEN).ignoring_sigint());
    culler.signal("INT");
    let out = culler.wait(secs(10));
    out.assert_success();
    assert!(out.stderr.contains("Received SIGINT"), "{out}");
}

/// Starts a culler that keeps running, and waits for its first pass to
/// cull, so the signal arrives between passes.
fn running_culler(hub: &FakeHub, culler: Culler) -> RunningCuller {
    let running = culler.args([TIMEOUT_1H, "--cull-every=600"]).spawn();
    let culled = hub.wait_until(secs(20), |s| {
        s.stopped_servers()
            .contains(&("first".into(), String::new()))
    });
    assert!(culled, "the first pass did not cull:\n{}", running.kill());
    running
}
