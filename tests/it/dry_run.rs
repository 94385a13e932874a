//! `--dry-run` and `--output=json`: see what the culler would do, and why,
//! before it does anything.

use serde_json::Value;

use crate::support::fake_hub::{FakeServer, FakeUser, HubConfig};
use crate::support::scenario::*;

/// The keys every decision record has, as the README documents them
/// (sorted).
pub const RECORD_KEYS: [&str; 10] = [
    "action",
    "age_seconds",
    "dry_run",
    "idle_seconds",
    "outcome",
    "reason",
    "rule",
    "server",
    "signal",
    "user",
];

/// A hub with one of each decision.
fn mixed_hub() -> crate::support::fake_hub::FakeHub {
    start(
        HubConfig::new()
            .user(idle_user("idle"))
            .user(busy_user("busy"))
            .user(gone_user("gone"))
            .user(
                // Listed (its lab is ready), its default server spawning
                // for a minute (a spawn pending longer than --stuck-after
                // is stuck: tests/it/stuck.rs).
                FakeUser::new("spawning")
                    .idle_for(hours(2))
                    .server(
                        FakeServer::default_server()
                            .idle_for(secs(60))
                            .pending(Some("spawn")),
                    )
                    .server(FakeServer::named("lab").idle_for(secs(60))),
            )
            .user(gone_user("admin").admin(true)),
    )
}

fn records(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn find<'a>(records: &'a [Value], user: &str, server: Option<&str>) -> &'a Value {
    records
        .iter()
        .find(|r| r["user"] == user && r["server"] == server.map_or(Value::Null, Value::from))
        .unwrap_or_else(|| panic!("no record for {user} {server:?} in {records:#?}"))
}

/// The README's schema table (under "See before it culls") names every
/// key of a record, and no other: the schema operators read is the one
/// the culler writes.
#[test]
fn the_readme_documents_exactly_the_record_keys() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let section = readme
        .split_once("## See before it culls")
        .expect("the dry-run section")
        .1;
    let section = section.split_once("\n## ").map_or(section, |(s, _)| s);
    let mut documented: Vec<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| cell.split_once(" |").map(|(keys, _)| keys))
        .flat_map(|keys| keys.split(", "))
        .map(|key| key.trim_matches('`').to_owned())
        .collect();
    documented.sort();
    assert_eq!(documented, RECORD_KEYS);
}

#[test]
fn a_dry_run_sends_no_stop_and_no_delete_and_says_what_it_would_do() {
    let hub = mixed_hub();
    let out = once(&hub)
        .args([
            TIMEOUT_1H,
            "--dry-run",
            "--cull-users",
            "--cull-admin-users=false",
        ])
        .run();
    out.assert_success();
    assert!(hub.deletes().is_empty(), "{}", deletes_text(&hub));
    assert!(
        out.stderr.contains("Would cull server idle (reason: idle"),
        "{out}"
    );
    assert!(
        out.stderr.contains("Would cull user gone (reason: idle"),
        "{out}"
    );
    // Its server would be stopped, so the user would go too.
    assert!(
        out.stderr.contains("Would cull user idle (reason: idle"),
        "{out}"
    );
    assert!(!out.stderr.contains("Culling server "), "{out}");
    assert!(
        out.stderr.contains("Dry run finished in")
            && out
                .stderr
                .contains("1 servers would be culled, 2 users would be culled"),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "no records without --output=json");
}

#[test]
fn output_json_explains_every_decision() {
    let hub = mixed_hub();
    let out = once(&hub)
        .args([
            TIMEOUT_1H,
            "--dry-run",
            "--output=json",
            "--cull-users",
            "--cull-admin-users=false",
        ])
        .run();
    out.assert_success();
    let records = records(&out.stdout);
    let idle = find(&records, "idle", Some(""));
    assert_eq!(idle["action"], "stop");
    assert_eq!(idle["reason"], "idle");
    assert_eq!(idle["rule"], "flags");
    assert_eq!(idle["dry_run"], true);
    assert_eq!(idle["outcome"], Value::Null);
    assert!(idle["idle_seconds"].as_u64().unwrap() >= 7200);
    let busy = find(&records, "busy", Some(""));
    assert_eq!(
        (busy["action"].as_str(), busy["reason"].as_str()),
        (Some("keep"), Some("active"))
    );
    let spawning = find(&records, "spawning", Some(""));
    assert_eq!(spawning["action"], "skip");
    assert_eq!(spawning["reason"], "pending spawn");
    assert_eq!(spawning["rule"], Value::Null);
    let admin = find(&records, "admin", None);
    assert_eq!(
        (admin["action"].as_str(), admin["reason"].as_str()),
        (Some("keep"), Some("admin"))
    );
    let gone = find(&records, "gone", None);
    assert_eq!(gone["action"], "delete");
    let busy_user = find(&records, "busy", None);
    assert_eq!(busy_user["reason"], "servers running");
    // Exactly the documented keys, on every line.
    for record in &records {
        let mut keys: Vec<_> = record.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, RECORD_KEYS, "{record}");
    }
}

#[test]
fn output_json_of_a_real_pass_reports_what_became_of_each_request() {
    let hub = start(
        HubConfig::new()
            .user(idle_user("idle"))
            .user(idle_user("slow").slow_stop(true)),
    );
    let out = once(&hub).args([TIMEOUT_1H, "--output=json"]).run();
    out.assert_success();
    let records = records(&out.stdout);
    assert_eq!(find(&records, "idle", Some(""))["outcome"], "done");
    assert_eq!(
        find(&records, "slow", Some(""))["outcome"],
        "still-stopping"
    );
    assert_eq!(find(&records, "idle", Some(""))["dry_run"], false);
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]));
}

#[test]
fn output_json_needs_once() {
    let hub = mixed_hub();
    let out = crate::support::culler::Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--output=json"])
        .run();
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains("--output=json") && out.stderr.contains("--once"),
        "{out}"
    );
}
