//! Following up what did not stop: a stop the hub answered 202 is watched
//! on later passes, and a server still stopping, or spawning, for longer
//! than `--stuck-after` is reported once (WARN line, `stuck` event, metric,
//! a decision record with `outcome: "stuck"`); `--cull-stuck-spawns`
//! cancels a hung spawn. Against the fake hub, which keeps a slow stop
//! pending for as long as a test wants.

use serde_json::Value;

use crate::metrics::metrics_url;
use crate::support::culler::Culler;
use crate::support::exposition::{get, sample};
use crate::support::fake_hub::{ago, FakeServer, FakeUser, HubConfig};
use crate::support::receiver::Receiver;
use crate::support::scenario::*;

/// A user whose default server is pending a spawn that began `d` ago (the
/// hub sets `started` as a spawn begins).
fn spawning_for(name: &str, d: std::time::Duration) -> FakeUser {
    FakeUser::new(name).idle_for(d).server(
        FakeServer::default_server()
            .pending(Some("spawn"))
            .started(ago(d))
            .last_activity(ago(d)),
    )
}

fn records(stdout: &str) -> std::collections::BTreeMap<String, Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|r| (r["user"].as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
fn a_stop_still_pending_past_stuck_after_is_reported_once_with_an_event_and_a_metric() {
    let hub = start(HubConfig::new().user(idle_user("slow").slow_stop(true)));
    let receiver = Receiver::start();
    let culler = Culler::against(hub.url(), TOKEN)
        .args([
            TIMEOUT_1H,
            "--cull-every=1",
            "--stuck-after=2",
            "--metrics-bind=127.0.0.1:0",
            "--metrics-auth=false",
        ])
        .arg(format!("--notify-url={}", receiver.url()))
        .spawn();
    let events = receiver.wait_for("stuck", 1, secs(30));
    // Two more passes: still stuck, not reported again.
    let passes = hub.lists().len();
    assert!(hub.wait_until(secs(30), |s| s.lists().len() >= passes + 2));
    let (status, text) = get(&format!("{}/metrics", metrics_url(&culler)));
    let output = culler.kill();
    assert_eq!(status, 200);
    let kinds: Vec<_> = receiver
        .events()
        .iter()
        .map(|e| e.kind().to_owned())
        .collect();
    assert_eq!(kinds, ["culled", "stuck"], "{output}");
    assert_eq!(events[0].json["detail"], "the hub is still stopping it");
    let stuck = &events[1].json;
    assert_eq!(stuck["reason"], "stuck stop");
    assert!(
        stuck["detail"]
            .as_str()
            .unwrap()
            .starts_with("still stopping for 00:00:0"),
        "{stuck}"
    );
    let warned = lines_with(&output, &["Server slow is stuck: still stopping for"]);
    assert_eq!(warned.len(), 1, "{output}");
    assert_eq!(
        sample(
            &text,
            "jupyterhub_idle_culler_servers_stuck_total",
            &[("pending", "stop")]
        ),
        Some(1.0),
        "{text}"
    );
    // Listed with state=active, so a user whose only server is stopping
    // is still seen.
    assert!(hub
        .lists()
        .iter()
        .all(|l| l.state.as_deref() == Some("active")));
}

#[test]
fn a_spawn_hung_past_stuck_after_is_reported_in_one_pass_and_left_by_default() {
    let hub = start(
        HubConfig::new()
            .user(spawning_for("hung", hours(2)))
            .user(spawning_for("fresh", secs(60))),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--output=json"]).run();
    out.assert_success();
    assert!(hub.stopped_servers().is_empty(), "{out}");
    let records = records(&out.stdout);
    assert_eq!(records["hung"]["action"], "skip");
    assert_eq!(records["hung"]["reason"], "stuck spawn");
    assert_eq!(records["hung"]["outcome"], "stuck");
    assert_eq!(records["fresh"]["reason"], "pending spawn");
    assert_eq!(records["fresh"]["outcome"], Value::Null);
    let warned = lines_with(&out, &["Server hung is stuck: still spawning for 02:00:0"]);
    assert_eq!(warned.len(), 1, "{out}");
    assert!(warned[0].contains("--cull-stuck-spawns would cancel the spawn"));
    // A spawn under way is normal: not a warning.
    assert!(
        lines_with(&out, &["fresh"])
            .iter()
            .all(|l| !l.contains("WARN")),
        "{out}"
    );
}

#[test]
fn cull_stuck_spawns_cancels_a_hung_spawn_and_leaves_a_fresh_one() {
    let hub = start(
        HubConfig::new()
            .user(spawning_for("hung", hours(2)))
            .user(spawning_for("fresh", secs(60))),
    );
    let receiver = Receiver::start();
    let out = once(&hub)
        .args([TIMEOUT_1H, "--output=json", "--cull-stuck-spawns"])
        .arg(format!("--notify-url={}", receiver.url()))
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("hung", "")]), "{out}");
    let records = records(&out.stdout);
    assert_eq!(records["hung"]["action"], "stop");
    assert_eq!(records["hung"]["reason"], "stuck spawn");
    assert_eq!(records["hung"]["outcome"], "done");
    let kinds: Vec<_> = receiver
        .events()
        .iter()
        .map(|e| e.kind().to_owned())
        .collect();
    assert_eq!(kinds, ["stuck", "culled"], "{out}");
    let warned = lines_with(
        &out,
        &["Server hung is stuck", "stopping it (--cull-stuck-spawns)"],
    );
    assert_eq!(warned.len(), 1, "{out}");
}

#[test]
fn with_stuck_after_0_only_ready_users_are_listed_as_upstream_does() {
    let hub = start(
        HubConfig::new()
            .user(idle_user("idle"))
            .user(spawning_for("hung", hours(2))),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--stuck-after=0"]).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]));
    assert!(hub
        .lists()
        .iter()
        .all(|l| l.state.as_deref() == Some("ready")));
    assert!(lines_with(&out, &["stuck"]).is_empty(), "{out}");
}

#[test]
fn a_server_still_running_after_its_stop_was_accepted_is_reported_as_stuck() {
    let hub = start(HubConfig::new().user(idle_user("lost").slow_stop(true)));
    let receiver = Receiver::start();
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=1", "--stuck-after=2"])
        .arg(format!("--notify-url={}", receiver.url()))
        .spawn();
    receiver.wait_for("culled", 1, secs(30));
    // The spawner lost the stop: the server is back, ready and in use,
    // with the start it had.
    hub.update_server("lost", "", |s| {
        s.pending = None;
        s.ready = true;
        s.last_activity = Some(ago(secs(1)));
    });
    let events = receiver.wait_for("stuck", 1, secs(30));
    let output = culler.kill();
    let stuck = &events.iter().find(|e| e.kind() == "stuck").unwrap().json;
    assert_eq!(stuck["reason"], "stuck stop");
    let detail = stuck["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("still running after the hub accepted to stop it for"),
        "{detail}"
    );
    let warned = lines_with(
        &output,
        &[
            "Server lost is stuck: still running after the hub accepted to stop it",
            "its spawner may have lost it",
        ],
    );
    assert_eq!(warned.len(), 1, "{output}");
    // In use: kept, not stopped again.
    assert_eq!(hub.deletes().len(), 1, "{output}");
}
