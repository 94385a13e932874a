//! Events end to end: the culler against the fake hub, delivering to a
//! real HTTP receiver (`--notify-url`) or a command (`--notify-command`).
//! Warnings come once per idle period, events in the order things
//! happened, signed with the shared secret and never carrying the hub's
//! token; a receiver that is down, slow or full never delays a cull.

use std::time::Duration;

use crate::support::culler::{Culler, CullerOutput, RunningCuller};
use crate::support::fake_hub::{ago, FakeHub, FakeServer, FakeUser, HubConfig};
use crate::support::receiver::{Received, Receiver};
use crate::support::scenario::*;

const SECRET: &str = "a shared secret for the receiver";
const SECRET_VAR: &str = "JUPYTERHUB_IDLE_CULLER_NOTIFY_SECRET";

/// `--timeout=3600` with warnings 10 minutes ahead.
const WARN_10_MIN: &str = "--warn-before=600";

/// A user whose default server was last active `idle` ago.
fn idle_for(name: &str, idle: Duration) -> FakeUser {
    FakeUser::new(name)
        .idle_for(idle)
        .server(FakeServer::default_server().idle_for(idle))
}

/// A culler running passes every second against `hub`, sending events to
/// `receiver`, signed.
fn daemon(hub: &FakeHub, receiver: &Receiver, extra: &[&str]) -> RunningCuller {
    Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, WARN_10_MIN, "--cull-every=1"])
        .arg(format!("--notify-url={}", receiver.url()))
        .args(extra.iter().copied())
        .env(SECRET_VAR, SECRET)
        .spawn()
}

/// Waits until the hub has answered `n` listings of running users (one a
/// pass).
fn wait_for_passes(hub: &FakeHub, n: usize) {
    let listed = hub.wait_until(secs(30), |s| {
        s.lists()
            .iter()
            .filter(|l| l.state.as_deref() == Some("active"))
            .count()
            >= n
    });
    assert!(listed, "fewer than {n} passes in 30 s");
}

/// A hub with `gone`, idle for 2 h (culled), and `soon`, 300 s from its
/// timeout (warned with --warn-before=600).
fn gone_and_soon() -> FakeHub {
    start(
        HubConfig::new()
            .user(idle_user("gone"))
            .user(idle_for("soon", secs(3300))),
    )
}

fn kinds(events: &[Received], user: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.user() == user)
        .map(|e| e.kind().to_owned())
        .collect()
}

#[test]
fn a_warning_comes_once_per_idle_period_and_the_cull_after_it() {
    // 3,300 s idle of 3,600: 300 s left, within the 600 s of warning.
    let hub = start(
        HubConfig::new()
            .user(idle_for("ada", secs(3300)))
            .user(busy_user("bob")),
    );
    let receiver = Receiver::start();
    let culler = daemon(&hub, &receiver, &[]);
    let events = receiver.wait_for("warn", 1, secs(30));
    // Three more passes: the same idle period, no second warning.
    let passes = hub.lists().len();
    wait_for_passes(&hub, passes + 3);
    assert_eq!(kinds(&receiver.events(), "ada"), ["warn"], "{events:#?}");
    let first = &events[0];
    assert_eq!(first.json["server"], "");
    assert_eq!(first.json["reason"], "idle");
    let left = first.json["seconds_left"].as_u64().unwrap();
    assert!((290..=300).contains(&left), "{left}");

    // Activity: a new idle period, nearer its deadline again.
    hub.update_server("ada", "", |s| s.last_activity = Some(ago(secs(3200))));
    let events = receiver.wait_for("warn", 2, secs(30));
    let second = events.iter().filter(|e| e.kind() == "warn").nth(1).unwrap();
    assert_ne!(second.json["deadline"], first.json["deadline"]);

    // Idle past the timeout: culled, told after the warnings.
    hub.update_server("ada", "", |s| s.last_activity = Some(ago(hours(2))));
    let events = receiver.wait_for("culled", 1, secs(30));
    let output = culler.kill();
    assert_eq!(
        kinds(&events, "ada"),
        ["warn", "warn", "culled"],
        "{output}"
    );
    assert!(kinds(&events, "bob").is_empty(), "{events:#?}");
    let warned = lines_with(&output, &["Warning: server ada will be culled in"]);
    assert_eq!(warned.len(), 2, "{output}");
}

#[test]
fn each_event_is_signed_names_its_kind_and_never_carries_the_token() {
    let hub = gone_and_soon();
    let receiver = Receiver::start();
    let out = once(&hub)
        .args([TIMEOUT_1H, WARN_10_MIN])
        .arg(format!("--notify-url={}", receiver.url()))
        .env(SECRET_VAR, SECRET)
        .run();
    out.assert_success();
    let events = receiver.events();
    assert_eq!(events.len(), 2, "{events:#?}\n{out}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    for event in &events {
        assert_eq!(event.headers["x-culler-event"], event.kind());
        assert_eq!(event.headers["content-type"], "application/json");
        let signature = event.headers["x-culler-signature"]
            .strip_prefix("sha256=")
            .expect("sha256= prefix");
        let tag: Vec<u8> = (0..signature.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&signature[i..i + 2], 16).unwrap())
            .collect();
        ring::hmac::verify(&key, &event.raw, &tag).expect("the signature checks");
        // A body changed on the way does not.
        let mut forged = event.raw.clone();
        forged.push(b' ');
        assert!(ring::hmac::verify(&key, &forged, &tag).is_err());
        let everything = format!("{:?}{}", event.headers, String::from_utf8_lossy(&event.raw));
        assert!(!everything.contains(TOKEN), "{everything}");
        assert!(!event.headers.contains_key("authorization"));
        assert_eq!(
            event.json["culler"],
            format!("jupyterhub-idle-culler-rs {}", env!("CARGO_PKG_VERSION"))
        );
    }
    // The secret is not logged either.
    assert!(!out.stderr.contains(SECRET), "{out}");
    let by_user = |user: &str| events.iter().find(|e| e.user() == user).unwrap();
    assert_eq!(by_user("gone").kind(), "culled");
    assert_eq!(by_user("soon").kind(), "warn");
}

#[test]
fn without_a_secret_events_are_unsigned_and_the_operator_is_told() {
    let hub = start(HubConfig::new().user(idle_user("gone")));
    let receiver = Receiver::start();
    let out = once(&hub)
        .arg(TIMEOUT_1H)
        .arg(format!("--notify-url={}", receiver.url()))
        .run();
    out.assert_success();
    let events = receiver.events();
    assert_eq!(kinds(&events, "gone"), ["culled"]);
    assert!(!events[0].headers.contains_key("x-culler-signature"));
    let told = lines_with(&out, &["events are not signed", SECRET_VAR]);
    assert_eq!(told.len(), 1, "{out}");
}

/// One pass culling `users` idle users while the receiver holds every
/// delivery for a minute; the culler may wait 1 s for it at the end.
fn culling_with_a_slow_receiver(users: usize) -> (FakeHub, Receiver, CullerOutput) {
    let hub = start(HubConfig::new().users(idle_users(users)));
    let receiver = Receiver::start();
    receiver.delay(secs(60));
    let out = once(&hub)
        .arg(TIMEOUT_1H)
        .args(["--stop-timeout=1", "--notify-timeout=30"])
        .arg(format!("--notify-url={}", receiver.url()))
        .deadline(secs(60))
        .run();
    out.assert_success();
    assert_eq!(hub.stopped_servers().len(), users, "{out}");
    (hub, receiver, out)
}

#[test]
fn a_slow_receiver_never_delays_culling_and_the_exit_waits_only_stop_timeout() {
    let (_hub, receiver, out) = culling_with_a_slow_receiver(30);
    let finished = lines_with(&out, &["Pass finished in"]);
    let took: f64 = finished[0]
        .split("Pass finished in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("{finished:?}"));
    assert!(
        took < 5.0,
        "the pass waited for the receiver: {took} s\n{out}"
    );
    assert_eq!(
        lines_with(
            &out,
            &["Stopping with events not delivered (--stop-timeout=1 s)"]
        )
        .len(),
        1,
        "{out}"
    );
    assert!(receiver.events().is_empty());
}

#[test]
fn a_receiver_that_is_down_costs_one_warning_and_no_cull() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", closed.local_addr().unwrap());
    drop(closed);
    let hub = start(HubConfig::new().users(idle_users(20)));
    let out = once(&hub)
        .arg(TIMEOUT_1H)
        .args(["--notify-retries=1", &format!("--notify-url={url}")])
        .run();
    out.assert_success();
    assert_eq!(hub.stopped_servers().len(), 20, "{out}");
    let failures = lines_with(&out, &["Could not deliver a culled event"]);
    assert_eq!(failures.len(), 1, "{out}");
    assert!(
        failures[0].contains("could not be reached"),
        "{}",
        failures[0]
    );
    assert!(failures[0].contains("after 1 retries"), "{}", failures[0]);
    // The receiver's path is not logged (webhook URLs hold tokens).
    assert!(!out.stderr.contains("/events"), "{out}");
}

#[test]
fn a_receiver_answering_errors_is_retried_then_given_up_on() {
    let hub = start(HubConfig::new().user(idle_user("gone")));
    let receiver = Receiver::start();
    receiver.answer_with(503);
    let out = once(&hub)
        .arg(TIMEOUT_1H)
        .args([
            "--notify-retries=2",
            &format!("--notify-url={}", receiver.url()),
        ])
        .run();
    out.assert_success();
    assert_eq!(receiver.refused(), 3, "one try and two retries\n{out}");
    let failures = lines_with(&out, &["Could not deliver a culled event", "answered 503"]);
    assert_eq!(failures.len(), 1, "{out}");
}

#[test]
fn a_full_queue_drops_the_events_past_it_counts_them_and_culls_everyone() {
    // 1,100 culls; the receiver holds the first 4 deliveries (the most at
    // once) for a minute, the queue keeps 1,000: 96 are dropped.
    let (_hub, _receiver, out) = culling_with_a_slow_receiver(1100);
    let dropping = lines_with(&out, &["Dropping events: 1000 are waiting"]);
    assert_eq!(dropping.len(), 1, "{out}");
    let summary = lines_with(
        &out,
        &["This pass's events: 96 dropped because the queue of 1000 was full"],
    );
    assert_eq!(summary.len(), 1, "{out}");
}

#[test]
fn a_command_gets_each_event_on_stdin_with_its_kind_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    // One file per event: deliveries run side by side.
    let command = format!(
        "f=$(mktemp '{}/event.XXXXXX') && printf '%s ' \"$CULLER_EVENT\" > \"$f\" && cat >> \"$f\"",
        dir.path().display()
    );
    let hub = gone_and_soon();
    let out = once(&hub)
        .args([TIMEOUT_1H, WARN_10_MIN])
        .arg(format!("--notify-command={command}"))
        .run();
    out.assert_success();
    let mut lines: Vec<(String, serde_json::Value)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .map(|text| {
            let (kind, json) = text.split_once(' ').unwrap();
            (kind.to_owned(), serde_json::from_str(json).unwrap())
        })
        .collect();
    let text = format!("{lines:?}");
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(lines.len(), 2, "{text}\n{out}");
    assert_eq!(lines[0].0, "culled");
    assert_eq!(lines[0].1["user"], "gone");
    assert_eq!(lines[1].0, "warn");
    assert_eq!(lines[1].1["user"], "soon");
    assert!(lines[1].1["deadline"].is_string());
}

#[test]
fn a_failing_command_is_named_with_what_it_said() {
    let hub = start(HubConfig::new().user(idle_user("gone")));
    let out = once(&hub)
        .args([TIMEOUT_1H, "--notify-retries=0"])
        .arg("--notify-command=echo mail server refused >&2; exit 3")
        .run();
    out.assert_success();
    assert_eq!(hub.stopped_servers().len(), 1);
    let failures = lines_with(
        &out,
        &["--notify-command exited with", "mail server refused"],
    );
    assert_eq!(failures.len(), 1, "{out}");
}

#[test]
fn a_dry_run_tells_no_one_but_logs_who_would_be_warned() {
    let hub = gone_and_soon();
    let receiver = Receiver::start();
    let out = once(&hub)
        .args([TIMEOUT_1H, WARN_10_MIN, "--dry-run"])
        .arg(format!("--notify-url={}", receiver.url()))
        .run();
    out.assert_success();
    assert!(receiver.events().is_empty());
    assert_eq!(
        lines_with(&out, &["Would warn: server soon will be culled in"]).len(),
        1,
        "{out}"
    );
}

#[test]
fn a_restarted_culler_warns_once_more_and_then_not_again() {
    let hub = start(HubConfig::new().user(idle_for("ada", secs(3300))));
    let receiver = Receiver::start();
    let first = daemon(&hub, &receiver, &[]);
    receiver.wait_for("warn", 1, secs(30));
    let passes = hub.lists().len();
    wait_for_passes(&hub, passes + 2);
    first.kill();
    assert_eq!(kinds(&receiver.events(), "ada"), ["warn"]);
    // The memory of warnings was the process's: the new one warns again,
    // once.
    let second = daemon(&hub, &receiver, &[]);
    receiver.wait_for("warn", 2, secs(30));
    let passes = hub.lists().len();
    wait_for_passes(&hub, passes + 2);
    let output = second.kill();
    assert_eq!(
        kinds(&receiver.events(), "ada"),
        ["warn", "warn"],
        "{output}"
    );
}

#[test]
fn users_are_warned_before_cull_users_deletes_them_and_told_when_it_does() {
    // A user with no server, idle 3,300 s of 3,600; another idle for 2 h.
    let hub = start(
        HubConfig::new()
            .user(FakeUser::new("soon").idle_for(secs(3300)))
            .user(FakeUser::new("gone").idle_for(hours(2))),
    );
    let receiver = Receiver::start();
    let out = once(&hub)
        .args([TIMEOUT_1H, WARN_10_MIN, "--cull-users"])
        .arg(format!("--notify-url={}", receiver.url()))
        .run();
    out.assert_success();
    let events = receiver.events();
    assert_eq!(kinds(&events, "soon"), ["warn"], "{out}");
    assert_eq!(kinds(&events, "gone"), ["user_deleted"], "{out}");
    for event in &events {
        assert!(event.json["server"].is_null(), "{:?}", event.json);
    }
}

#[test]
fn a_stop_that_fails_or_is_refused_is_told_with_the_error_and_the_others_culled() {
    use crate::support::fake_hub::Fault;
    let hub = start(
        HubConfig::new()
            .user(idle_user("broken"))
            .user(idle_user("locked"))
            .user(idle_user("fine"))
            .fault(Fault::error(
                "DELETE",
                "/users/broken/server",
                500,
                "spawner crashed",
            ))
            .fault(Fault::missing_scope(
                "DELETE",
                "/users/locked/server",
                "delete:servers",
            )),
    );
    let receiver = Receiver::start();
    let out = once(&hub)
        .args([TIMEOUT_1H, "--retries=1", FAST_RETRIES])
        .arg(format!("--notify-url={}", receiver.url()))
        .run();
    out.assert_failure();
    let events = receiver.events();
    assert_eq!(kinds(&events, "fine"), ["culled"], "{out}");
    assert_eq!(kinds(&events, "broken"), ["stop_failed"], "{out}");
    assert_eq!(kinds(&events, "locked"), ["stop_failed"], "{out}");
    let detail = |user: &str| {
        let event = events.iter().find(|e| e.user() == user).unwrap();
        event.json["detail"].as_str().unwrap().to_owned()
    };
    assert!(detail("broken").contains("500"), "{}", detail("broken"));
    assert!(
        detail("locked").contains("delete:servers"),
        "{}",
        detail("locked")
    );
}

/// A culler between passes, its 5 culls' events held by a receiver that
/// answers after a minute.
fn waiting_on_a_slow_receiver(stop_timeout: &str) -> (FakeHub, Receiver, RunningCuller) {
    let hub = start(HubConfig::new().users(idle_users(5)));
    let receiver = Receiver::start();
    receiver.delay(secs(60));
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=600"])
        .arg(format!("--stop-timeout={stop_timeout}"))
        .arg(format!("--notify-url={}", receiver.url()))
        .spawn();
    assert!(
        culler.wait_for_log("Pass finished", secs(20)),
        "{}",
        culler.stderr_so_far()
    );
    (hub, receiver, culler)
}

#[test]
fn a_stop_signal_waits_for_a_slow_receiver_only_within_stop_timeout() {
    let (_hub, _receiver, culler) = waiting_on_a_slow_receiver("2");
    culler.signal("TERM");
    let out = culler.wait(secs(20));
    out.assert_success();
    assert!(out.elapsed < secs(15), "{out}");
    assert_eq!(
        lines_with(
            &out,
            &["Stopping with events not delivered (--stop-timeout=2 s)"]
        )
        .len(),
        1,
        "{out}"
    );
}

#[test]
fn a_second_stop_signal_ends_the_wait_for_a_slow_receiver_at_once() {
    let (_hub, _receiver, culler) = waiting_on_a_slow_receiver("60");
    culler.signal("TERM");
    assert!(
        culler.wait_for_log("between passes; stopping", secs(10)),
        "{}",
        culler.stderr_so_far()
    );
    culler.signal("TERM");
    let out = culler.wait(secs(20));
    out.assert_success();
    assert!(out.elapsed < secs(15), "waited for the receiver: {out}");
    assert_eq!(lines_with(&out, &["again: stopping now"]).len(), 1, "{out}");
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature: run scripts/test"
)]
fn a_culler_that_gives_up_does_not_wait_for_the_receiver() {
    // The scheduler fails as each pass ends, after its culls were told:
    // the restart budget runs out with events still on their way.
    let hub = start(HubConfig::new().users(idle_users(20)));
    let receiver = Receiver::start();
    receiver.delay(secs(60));
    let out = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=1", "--stop-timeout=60"])
        .arg(format!("--notify-url={}", receiver.url()))
        .env("CULLER_TEST_PANIC", "scheduler:*")
        .deadline(secs(40))
        .run();
    assert_eq!(out.status.code(), Some(3), "{out}");
    assert_eq!(hub.stopped_servers().len(), 20, "{out}");
    assert!(out.elapsed < secs(30), "it waited for the receiver: {out}");
    assert!(
        lines_with(&out, &["events not delivered"]).is_empty(),
        "{out}"
    );
}
