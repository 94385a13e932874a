//! Policy rules from the config file, end to end against the fake hub: the
//! README's examples, each culling exactly what it says, and a token that
//! cannot see what a rule matches on refused before anything is culled.

use std::path::PathBuf;

use serde_json::json;

use crate::support::culler::CullerOutput;
use crate::support::fake_hub::{FakeHub, FakeServer, FakeUser, HubConfig, RequestKind};
use crate::support::scenario::*;

/// The rules the README shows under "Policy rules", read from README.md
/// itself (the ```toml block after "word for word:"), so that what the
/// README promises is what these tests run.
fn readme_rules() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let after = readme
        .split_once("word for word:\n\n```toml\n")
        .expect("README.md shows the policy rules' example block")
        .1;
    let block = after.split_once("\n```").expect("the block ends").0;
    assert!(block.contains("[[rules]]"), "not the rules: {block}");
    format!("{block}\n")
}

/// One `--once` pass with the README's rules in a config file, `--timeout=3600`
/// and `extra` flags.
fn once_with_readme_rules(hub: &FakeHub, extra: &[&str]) -> CullerOutput {
    let (_dir, file) = config_file(&readme_rules());
    once(hub)
        .arg(format!("--config={}", file.display()))
        .arg(TIMEOUT_1H)
        .args(extra.iter().copied())
        .run()
}

/// Writes a config file for one test; the directory goes with the guard.
pub fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("culler.toml");
    std::fs::write(&path, text).expect("write the config file");
    (dir, path)
}

fn server_idle(name: &str, idle: std::time::Duration) -> FakeServer {
    FakeServer::new(name).idle_for(idle)
}

fn gpu(idle: std::time::Duration) -> FakeServer {
    server_idle("", idle).user_options(json!({"profile": "gpu"}))
}

fn cpu(idle: std::time::Duration) -> FakeServer {
    server_idle("", idle).user_options(json!({"profile": "cpu"}))
}

#[test]
fn the_readme_rules_cull_exactly_what_they_say() {
    let min = |m: u64| secs(m * 60);
    let hub = start(
        HubConfig::new()
            // GPU after 30 min: culled at 31, kept at 29.
            .user(FakeUser::new("gpu-31").server(gpu(min(31))))
            .user(FakeUser::new("gpu-29").server(gpu(min(29))))
            // Default (CPU) servers after 8 h: kept at 3 h, culled at 9 h.
            .user(FakeUser::new("cpu-3h").server(cpu(hours(3))))
            .user(FakeUser::new("cpu-9h").server(cpu(hours(9))))
            // Named servers after 2 h.
            .user(FakeUser::new("lab-3h").server(server_idle("lab", hours(3))))
            .user(FakeUser::new("lab-1h").server(server_idle("lab", hours(1))))
            // Instructors and one user: never, however idle.
            .user(
                FakeUser::new("teacher")
                    .group("instructors")
                    .server(gpu(hours(100)))
                    .server(server_idle("lab", hours(100))),
            )
            .user(FakeUser::new("director").server(cpu(hours(100)))),
    );
    let out = once_with_readme_rules(&hub, &[]);
    out.assert_success();
    assert_eq!(
        stopped(&hub),
        pairs(&[("gpu-31", ""), ("cpu-9h", ""), ("lab-3h", "lab")]),
        "{out}"
    );
    let cull = lines_with(
        &out,
        &["Culling server gpu-31 (reason: idle, inactive for 00:31:0"],
    );
    assert!(
        cull.len() == 1 && cull[0].ends_with(", rule \"GPU servers after 30 minutes\")"),
        "a rule's cull line names the rule:\n{out}"
    );
}

#[test]
fn an_exempt_group_keeps_its_users_too() {
    let hub = start(
        HubConfig::new()
            .user(gone_user("student"))
            .user(gone_user("teacher").group("instructors")),
    );
    let out = once_with_readme_rules(&hub, &["--cull-users"]);
    out.assert_success();
    assert_eq!(deleted(&hub), names(["student"]), "{out}");
}

#[test]
fn a_token_that_cannot_see_groups_is_refused_before_anything_is_culled() {
    let hub = start(
        HubConfig::new()
            .minimal_scopes()
            .user(idle_user("student"))
            .user(idle_user("teacher").group("instructors")),
    );
    let out = once_with_readme_rules(&hub, &[]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr
            .contains("rule \"instructors are never culled\" matches on groups")
            && out
                .stderr
                .contains("add read:users:groups to the culler's role"),
        "{out}"
    );
    assert!(hub.deletes().is_empty(), "{}", deletes_text(&hub));
    assert_eq!(hub.count(RequestKind::ListUsers), 0, "nothing listed");
}

#[test]
fn scopes_granted_through_a_broader_or_filtered_scope_are_enough() {
    let hub = start(
        HubConfig::new()
            .token_scopes(&[
                "list:users",
                "read:users:activity",
                "read:servers",
                "delete:servers",
                "read:users:groups!group=instructors",
            ])
            .user(idle_user("student"))
            .user(idle_user("teacher").group("instructors")),
    );
    let out = once_with_readme_rules(&hub, &[]);
    out.assert_success();
    // Default servers idle 2 h: 8 h apply, nobody is culled.
    assert!(hub.deletes().is_empty(), "{}", deletes_text(&hub));
    assert_eq!(hub.count(RequestKind::WhoAmI), 1);
}

#[test]
fn without_rules_the_token_is_not_even_asked() {
    let hub = start(HubConfig::new().minimal_scopes().user(idle_user("idle")));
    once(&hub).arg(TIMEOUT_1H).run().assert_success();
    assert_eq!(hub.count(RequestKind::WhoAmI), 0);
}

#[test]
fn users_can_go_days_after_their_servers() {
    // Servers after 1 h; users only after 3 days of inactivity.
    let hub = start(
        HubConfig::new()
            .user(
                FakeUser::new("recent")
                    .idle_for(hours(2))
                    .server(idle_server()),
            )
            .user(FakeUser::new("gone-4d").idle_for(hours(96))),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, "--cull-users", "--cull-users-timeout=259200"])
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("recent", "")]), "{out}");
    assert_eq!(deleted(&hub), names(["gone-4d"]), "{out}");
    assert!(hub.has_user("recent"));
}
