//! Recovery: how soon the culler culls again after the hub comes back, or
//! after a pass that could not see every user. Zero-to-jupyterhub runs it
//! with `--cull-every=600`: waiting a whole `--cull-every` after an outage
//! would leave idle servers running for ten minutes more.
//!
//! The outages here last real seconds (5, 30 and 90): how long the hub is
//! down is the scenario itself, not a wait standing in for an event; the
//! culler's side is awaited on the fake hub's own events.

use std::time::{Duration, Instant};

use crate::support::culler::Culler;
use crate::support::fake_hub::{DownMode, Fault, HubConfig, RequestKind};
use crate::support::scenario::*;

/// Culling resumes within this long after the hub answers again.
const RESUMES_WITHIN: Duration = Duration::from_secs(10);

/// The hub is down (refusing connections) when a `--cull-every=600`
/// culler starts, stays down `down`, and comes back: every idle server is
/// stopped within [`RESUMES_WITHIN`] of its return, and the culler wrote a
/// bounded number of lines about it meanwhile.
fn culls_soon_after_an_outage_of(down: Duration) {
    let hub = start(
        HubConfig::new()
            .users(idle_users(6))
            .user(busy_user("busy")),
    );
    hub.go_down(DownMode::Refuse);
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=600"])
        .deadline(down + secs(60))
        .spawn();
    assert!(
        culler.wait_for_log("The hub is not answering", secs(30)),
        "{}",
        culler.stderr_so_far()
    );
    // The outage itself.
    std::thread::sleep(down.saturating_sub(secs(1)));
    hub.come_back();
    let back = Instant::now();
    let culled = hub.wait_until(RESUMES_WITHIN, |s| s.stopped_servers().len() == 6);
    let took = back.elapsed();
    culler.signal("TERM");
    // (The deadline counts from the culler's start.)
    let out = culler.wait(down + secs(60));
    assert!(
        culled,
        "not every idle server stopped {took:?} after the hub came back (down {down:?}):\n{out}"
    );
    out.assert_success();
    assert_eq!(stopped(&hub), names_with_default_server(6), "{out}");
    assert_eq!(
        lines_with(&out, &["The hub is not answering"]).len(),
        1,
        "said once:\n{out}"
    );
    // Passes during the outage come 2, 4, 8, ... s apart: a handful, each
    // one ERROR line, not one per probe.
    let failed = lines_with(&out, &["Cannot start the pass"]).len();
    let bound = (down.as_secs_f64() / 2.0).log2().ceil() as usize + 2;
    assert!(
        (1..=bound).contains(&failed),
        "{failed} failed passes in {down:?} (at most {bound}):\n{out}"
    );
    assert_eq!(error_lines(&out).len(), failed, "{out}");
    eprintln!("down {down:?}: culled {took:?} after the hub came back");
}

/// `(idle-0, "")`, ... : the default servers of `n` idle users.
fn names_with_default_server(n: usize) -> std::collections::BTreeSet<(String, String)> {
    (0..n)
        .map(|i| (format!("idle-{i}"), String::new()))
        .collect()
}

#[test]
fn culling_resumes_within_10_s_of_a_hub_down_5_s_at_start() {
    culls_soon_after_an_outage_of(secs(5));
}

#[test]
fn culling_resumes_within_10_s_of_a_hub_down_30_s_at_start() {
    culls_soon_after_an_outage_of(secs(30));
}

#[test]
fn culling_resumes_within_10_s_of_a_hub_down_90_s_at_start() {
    culls_soon_after_an_outage_of(secs(90));
}

#[test]
fn a_hub_that_is_down_is_probed_every_2_s_and_a_pass_starts_as_soon_as_it_answers() {
    let hub = start(HubConfig::new().users(idle_users(2)));
    hub.go_down(DownMode::Refuse);
    // No retries: each pass fails at once, and they come 2, 4, 8, 16 s
    // apart; after the fourth the next is 16 s away.
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=600", "--retries=0"])
        .spawn();
    assert!(
        culler.wait_for_lines(4, secs(40), |line| line.contains("Cannot start the pass")),
        "{}",
        culler.stderr_so_far()
    );
    hub.come_back();
    let culled = hub.wait_until(secs(4), |s| s.stopped_servers().len() == 2);
    culler.signal("TERM");
    let out = culler.wait(secs(90));
    assert!(culled, "not culled within 4 s of the hub's return:\n{out}");
    out.assert_success();
    let back = lines_with(&out, &["The hub answers again (JupyterHub 6.1.1) after"]);
    assert_eq!(
        back.len(),
        1,
        "the probe, not a pass, found it back:\n{out}"
    );
    assert!(back[0].contains("starting a pass"), "{out}");
    assert_eq!(
        lines_with(&out, &["Cannot start the pass"]).len(),
        4,
        "{out}"
    );
}

#[test]
fn a_pass_that_could_not_list_is_followed_within_seconds_not_cull_every() {
    // The hub answers, but its user list fails (500) for the first pass.
    let hub = start(
        HubConfig::new()
            .users(idle_users(3))
            .fault(Fault::error("GET", "/users", 500, "Internal Server Error").times(3)),
    );
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=600", FAST_RETRIES, "--retries=2"])
        .spawn();
    let culled = hub.wait_until(secs(10), |s| s.stopped_servers().len() == 3);
    culler.signal("TERM");
    let out = culler.wait(secs(30));
    assert!(culled, "{out}");
    out.assert_success();
    assert!(
        out.stderr
            .contains("Not every user was seen; the next pass starts in 2 s"),
        "{out}"
    );
    // Two passes: the one that could not list, and the one 2 s later.
    assert_eq!(lines_with(&out, &["Pass finished"]).len(), 2, "{out}");
    assert_eq!(
        hub.count(RequestKind::Version),
        2,
        "no probing: the hub answered"
    );
}
