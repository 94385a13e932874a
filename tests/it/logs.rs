//! What the culler writes to its log, and that the log can never stop it:
//! a closed stderr is survived, the token never appears, and the release
//! build (what ships) logs debug lines when asked.

use crate::support::culler::Culler;
use crate::support::fake_hub::{FakeUser, Fault, HubConfig};
use crate::support::scenario::*;

#[test]
fn a_closed_stderr_does_not_stop_culling() {
    let hub = start(HubConfig::new().users(idle_users(3)));
    let out = once(&hub).arg(TIMEOUT_1H).stderr_closed().run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 3, "{}", deletes_text(&hub));
}

#[test]
fn a_closed_stderr_does_not_stop_signals() {
    let hub = start(HubConfig::new().user(idle_user("first")));
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=600"])
        .stderr_closed()
        .spawn();
    let culled = hub.wait_until(secs(20), |s| s.stopped_servers().len() == 1);
    assert!(culled, "no cull with stderr closed:\n{}", culler.kill());
    culler.signal("TERM");
    let out = culler.wait(secs(10));
    out.assert_success();
}

#[test]
fn the_token_never_reaches_the_log_whatever_echoes_it() {
    // A user named like the token, an error body echoing it, and a version
    // string holding it.
    let hub = start(
        HubConfig::new()
            .user(idle_user(TOKEN))
            .user(idle_user("echo"))
            .fault(Fault::error(
                "DELETE",
                "/users/echo/server",
                400,
                &format!("bad request; headers: Authorization: token {TOKEN}"),
            )),
    );
    let out = once(&hub).args([TIMEOUT_1H, FAST_RETRIES]).run();
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(!out.stderr.contains(TOKEN), "the token was logged:\n{out}");
    assert!(out.stderr.contains("Culling server <redacted>"), "{out}");
    assert!(
        out.stderr.contains("Authorization: token <redacted>"),
        "{out}"
    );

    let echo = start(HubConfig::new().fault(Fault::raw(
        "GET",
        "/",
        200,
        &format!(r#"{{"version": "{TOKEN}"}}"#),
    )));
    let out = once(&echo).args([TIMEOUT_1H, FAST_RETRIES]).run();
    out.assert_failure();
    assert!(!out.stderr.contains(TOKEN), "the token was logged:\n{out}");
    assert!(out.stderr.contains("unreadable version"), "{out}");
}

/// The release binary the pip wheel carries, built by `scripts/test`
/// (`scripts/wheel`: maturin with zig, for glibc 2.17) and named by
/// `CULLER_RELEASE_BIN`.
fn release_binary() -> String {
    std::env::var("CULLER_RELEASE_BIN").expect(
        "CULLER_RELEASE_BIN must name the release binary: scripts/test builds it and sets it",
    )
}

#[test]
#[ignore = "needs the release binary: run scripts/test"]
fn the_release_binary_logs_debug_lines_when_asked() {
    let hub = start(
        HubConfig::new()
            .user(
                FakeUser::new("busy")
                    .idle_for(secs(60))
                    .server(busy_server()),
            )
            .user(idle_user("idle")),
    );
    for flag in ["--debug", "--log-level=DEBUG"] {
        let out = once(&hub)
            .program(&release_binary())
            .args([TIMEOUT_1H, flag])
            .run();
        out.assert_success();
        assert!(
            out.stderr.contains("DEBG Not culling server busy"),
            "{flag} printed no debug line in the release build:\n{out}"
        );
    }
    let quiet = once(&hub).program(&release_binary()).arg(TIMEOUT_1H).run();
    quiet.assert_success();
    assert!(!quiet.stderr.contains("DEBG"), "{quiet}");
}

#[test]
#[ignore = "needs the release binary: run scripts/test"]
fn the_release_binary_has_no_fault_injection() {
    let hub = start(HubConfig::new().users(idle_users(2)));
    let out = once(&hub)
        .program(&release_binary())
        .arg(TIMEOUT_1H)
        .env("CULLER_TEST_PANIC", "executor:*")
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 2, "{out}");
}

#[test]
fn a_password_in_the_url_is_refused_and_never_printed() {
    let out = Culler::against("http://admin:pa55word@127.0.0.1:8081/hub/api", TOKEN)
        .arg("--once")
        .run();
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(!out.stderr.contains("pa55word"), "{out}");
    assert!(out.stderr.contains("***@127.0.0.1:8081"), "{out}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_decision_fields() {
    let hub = start(
        HubConfig::new()
            .user(idle_user("idle"))
            .user(busy_user("busy")),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--log-format=json", "--debug"])
        .run();
    out.assert_success();
    let lines: Vec<serde_json::Value> = out
        .stderr_lines()
        .into_iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["time"].is_string() && l["level"].is_string() && l["message"].is_string()));
    let cull = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap()
                .starts_with("Culling server idle")
        })
        .unwrap_or_else(|| panic!("no cull line in {lines:#?}"));
    assert_eq!(cull["level"], "INFO");
    assert_eq!(cull["user"], "idle");
    assert_eq!(cull["server"], "");
    assert_eq!(cull["action"], "stop");
    assert_eq!(cull["reason"], "idle");
    assert_eq!(cull["rule"], "flags");
    assert!(cull["idle"].as_u64().unwrap() >= 7200 && cull["age"].as_u64().is_some());
    let kept = lines
        .iter()
        .find(|l| l["user"] == "busy" && l["action"] == "keep")
        .unwrap_or_else(|| panic!("no keep line in {lines:#?}"));
    assert_eq!(kept["level"], "DEBUG");
    assert_eq!(kept["reason"], "active");
}

#[test]
fn text_logs_stay_as_they_were_without_the_new_flags() {
    let hub = start(HubConfig::new().user(idle_user("idle")));
    let out = once(&hub).arg(TIMEOUT_1H).run();
    out.assert_success();
    let cull = lines_with(&out, &["Culling server idle"]);
    assert_eq!(cull.len(), 1, "{out}");
    // Upstream's words, nothing added (a second may tick meanwhile).
    let words = cull[0].split_once(" INFO ").map_or("", |(_, words)| words);
    let expected = "Culling server idle (reason: idle, inactive for 02:00:00, age: 02:00:00)";
    assert!(
        words.starts_with("Culling server idle (reason: idle, inactive for 02:00:0")
            && words.contains(", age: 02:00:0")
            && words.ends_with(')')
            && words.len() == expected.len(),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
}
