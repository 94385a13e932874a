//! `--activity=server` end to end against the fake hub, which also plays
//! the proxy and the single-user servers behind it: what the servers say
//! keeps them or lets the cull stand, and a server that cannot be asked is
//! judged by the hub's timestamps, never as idle because it did not answer.

use serde_json::Value;

use crate::support::culler::CullerOutput;
use crate::support::fake_hub::{
    ago, FakeHub, FakeInside, FakeServer, FakeUser, HubConfig, RequestKind,
};
use crate::support::scenario::*;

/// A user whose default server the hub calls idle (2 h) and who says
/// `inside` when asked.
fn idle_by_the_hub(name: &str, inside: FakeInside) -> FakeUser {
    FakeUser::new(name).server(
        FakeServer::default_server()
            .idle_for(hours(2))
            .inside(inside),
    )
}

/// The fake hub's address as the proxy's URL.
fn proxy_url(hub: &FakeHub) -> String {
    format!("--proxy-url=http://{}", hub.addr())
}

/// One `--once` pass asking the servers, with JSON decision records.
fn asking(hub: &FakeHub, extra: &[&str]) -> CullerOutput {
    once(hub)
        .args([TIMEOUT_1H, "--activity=server", "--output=json"])
        .arg(proxy_url(hub))
        .args(extra.iter().copied())
        .run()
}

/// The lines holding every one of `needles`.
fn lines_with_all(out: &CullerOutput, needles: &[&str]) -> Vec<String> {
    out.stderr_lines()
        .into_iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// The decision records on stdout, by user.
fn records(out: &CullerOutput) -> std::collections::BTreeMap<String, Value> {
    out.stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .map(|r| (r["user"].as_str().unwrap().to_owned(), r))
        .collect()
}

#[test]
fn busy_kernels_recent_kernels_and_terminals_keep_servers_that_idle_kernels_do_not() {
    let hub = start(
        HubConfig::new()
            .user(idle_by_the_hub(
                "training",
                FakeInside::kernel("busy", ago(hours(3))),
            ))
            .user(idle_by_the_hub(
                "plotting",
                FakeInside::kernel("idle", ago(secs(180))),
            ))
            .user(idle_by_the_hub(
                "shell",
                FakeInside::terminal(ago(secs(120))),
            ))
            .user(idle_by_the_hub(
                "forgotten",
                FakeInside::kernel("idle", ago(hours(2))),
            ))
            .user(idle_by_the_hub("empty", FakeInside::idle()))
            .user(busy_user("active")),
    );
    let out = asking(&hub, &[]);
    out.assert_success();
    assert_eq!(
        stopped(&hub),
        pairs(&[("forgotten", ""), ("empty", "")]),
        "{out}"
    );
    let records = records(&out);
    let reason = |user: &str| records[user]["reason"].as_str().unwrap().to_owned();
    assert_eq!(reason("training"), "kernel busy");
    assert_eq!(reason("plotting"), "kernel active 00:03:00 ago");
    assert_eq!(reason("shell"), "terminal active 00:02:00 ago");
    for kept in ["training", "plotting", "shell"] {
        assert_eq!(records[kept]["action"], "keep", "{kept}");
        assert_eq!(records[kept]["signal"], "server", "{kept}");
    }
    assert_eq!(records["forgotten"]["signal"], "server");
    assert_eq!(records["forgotten"]["outcome"], "done");
    assert_eq!(
        records["active"]["signal"], "hub",
        "an active server is not asked"
    );
    let kept = lines_with(&out, &["Not culling server training: kernel busy"]);
    assert_eq!(
        kept.len(),
        1,
        "the kept server is named with why at INFO:\n{out}"
    );
    let culled = lines_with_all(
        &out,
        &["Culling server forgotten (", "the server says idle too)"],
    );
    assert_eq!(culled.len(), 1, "{out}");
    // Three requests per server asked (status, kernels, terminals): only
    // the five the hub's timestamps would cull.
    assert_eq!(hub.count(RequestKind::Inside), 15, "{out}");
}

#[test]
fn under_activity_hub_nothing_is_asked_and_the_busy_kernel_is_culled() {
    let hub = start(HubConfig::new().user(idle_by_the_hub(
        "training",
        FakeInside::kernel("busy", ago(hours(3))),
    )));
    let out = once(&hub).args([TIMEOUT_1H]).arg(proxy_url(&hub)).run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("training", "")]), "{out}");
    assert_eq!(hub.count(RequestKind::Inside), 0);
}

#[test]
fn a_server_that_hangs_answers_html_or_is_gone_is_judged_by_the_hubs_timestamps() {
    let hub = start(
        HubConfig::new()
            .user(idle_by_the_hub("hung", FakeInside::Hangs(secs(30))))
            .user(idle_by_the_hub("streamlit", FakeInside::Html))
            .user(idle_by_the_hub("crashed", FakeInside::Gone)),
    );
    let started = std::time::Instant::now();
    let out = asking(&hub, &["--activity-timeout=0.5"]);
    out.assert_success();
    assert!(
        started.elapsed() < secs(20),
        "a hung server held the pass for {:?}",
        started.elapsed()
    );
    assert_eq!(
        stopped(&hub),
        pairs(&[("hung", ""), ("streamlit", ""), ("crashed", "")]),
        "the hub's timestamps say idle, and a failed look changes nothing:\n{out}"
    );
    let records = records(&out);
    for user in ["hung", "streamlit", "crashed"] {
        assert_eq!(records[user]["signal"], "hub-fallback", "{user}");
    }
    for (user, why) in [
        ("hung", "no answer within 0.5 s"),
        ("streamlit", "not jupyter-server's API"),
        ("crashed", "answered 503"),
    ] {
        let warned = lines_with_all(
            &out,
            &[
                "WARN",
                &format!("Could not ask server {user} what runs inside it"),
                why,
            ],
        );
        assert_eq!(warned.len(), 1, "{user}: {why}\n{out}");
    }
}

#[test]
fn a_failed_look_never_culls_a_server_the_hub_calls_active() {
    let hub = start(
        HubConfig::new().user(
            FakeUser::new("reading").server(
                FakeServer::default_server()
                    .idle_for(secs(60))
                    .inside(FakeInside::Gone),
            ),
        ),
    );
    let out = asking(&hub, &[]);
    out.assert_success();
    assert!(stopped(&hub).is_empty(), "{out}");
    assert_eq!(
        hub.count(RequestKind::Inside),
        0,
        "an active server is not asked"
    );
}

#[test]
fn open_connections_keep_a_server_only_with_activity_connections() {
    let tab_open = FakeInside::Jupyter {
        kernels: vec![("idle".to_owned(), ago(hours(2)))],
        terminals: None,
        connections: 1,
    };
    let config = HubConfig::new().user(idle_by_the_hub("tab", tab_open));
    let hub = start(config.clone());
    asking(&hub, &[]).assert_success();
    assert_eq!(
        stopped(&hub),
        pairs(&[("tab", "")]),
        "a tab with idle kernels is idle"
    );
    let hub = start(config);
    let out = asking(&hub, &["--activity-connections"]);
    out.assert_success();
    assert!(stopped(&hub).is_empty(), "{out}");
    assert_eq!(records(&out)["tab"]["reason"], "1 open connection");
}

#[test]
fn max_age_culls_without_asking() {
    let hub = start(
        HubConfig::new().user(
            FakeUser::new("old").server(
                FakeServer::default_server()
                    .idle_for(hours(2))
                    .started(ago(hours(30)))
                    .inside(FakeInside::kernel("busy", ago(secs(1)))),
            ),
        ),
    );
    let out = asking(&hub, &["--max-age=86400"]);
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("old", "")]), "{out}");
    assert_eq!(hub.count(RequestKind::Inside), 0);
}

#[test]
fn a_token_without_access_servers_is_one_clear_error_before_anything_is_culled() {
    let hub = start(
        HubConfig::new()
            // The documented culler scopes, without access:servers.
            .minimal_scopes()
            .user(idle_by_the_hub(
                "training",
                FakeInside::kernel("busy", ago(secs(1))),
            )),
    );
    let out = asking(&hub, &[]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(stopped(&hub).is_empty(), "{out}");
    let errors = error_lines(&out);
    assert!(
        errors.iter().any(|l| l.contains("--activity=server")
            && l.contains("add access:servers to the culler's role")),
        "{out}"
    );
    assert_eq!(hub.count(RequestKind::Inside), 0);
}

#[test]
fn an_unreachable_proxy_is_one_warning_not_one_per_server() {
    let hub =
        start(HubConfig::new().users(
            (0..20).map(|i| {
                idle_by_the_hub(&format!("u{i}"), FakeInside::kernel("busy", ago(secs(1))))
            }),
        ));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("--proxy-url=http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = once(&hub)
        .args([TIMEOUT_1H, "--activity=server", &nowhere])
        .run();
    out.assert_success();
    assert_eq!(
        stopped(&hub).len(),
        20,
        "the hub's timestamps decide:\n{out}"
    );
    let warned = lines_with_all(&out, &["WARN", "what runs inside it", "--proxy-url"]);
    assert_eq!(warned.len(), 1, "{out}");
}

#[test]
fn activity_server_without_a_proxy_url_is_refused_at_start() {
    let hub = start(HubConfig::new().user(idle_user("ada")));
    let out = once(&hub).args([TIMEOUT_1H, "--activity=server"]).run();
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains("give --proxy-url"), "{out}");
    assert_eq!(hub.requests().len(), 0, "nothing was asked of the hub");
}

#[test]
fn a_rule_asks_only_for_what_it_matches() {
    let (_dir, file) = crate::policy_rules::config_file(
        "[[rules]]\nname = \"GPU\"\nuser_options = { profile = \"gpu\" }\nactivity = \"server\"\n",
    );
    let gpu = |name: &str| {
        FakeUser::new(name).server(
            FakeServer::default_server()
                .idle_for(hours(2))
                .user_options(serde_json::json!({"profile": "gpu"}))
                .inside(FakeInside::kernel("busy", ago(hours(1)))),
        )
    };
    let hub = start(
        HubConfig::new()
            .user(gpu("gpu-training"))
            .user(idle_by_the_hub(
                "cpu-training",
                FakeInside::kernel("busy", ago(hours(1))),
            )),
    );
    let out = once(&hub)
        .args([TIMEOUT_1H, &proxy_url(&hub)])
        .arg(format!("--config={}", file.display()))
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("cpu-training", "")]), "{out}");
    assert_eq!(hub.count(RequestKind::Inside), 3);
}

#[test]
fn looks_count_against_the_concurrency_bound() {
    let hub =
        start(HubConfig::new().users(
            (0..10).map(|i| idle_by_the_hub(&format!("u{i}"), FakeInside::Hangs(millis(100)))),
        ));
    let out = asking(&hub, &["--concurrency=2"]);
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 10, "{out}");
    assert_eq!(hub.count(RequestKind::Inside), 30);
    assert_eq!(
        hub.max_in_flight(),
        2,
        "slow looks overlap up to the bound and no further"
    );
}

#[test]
fn a_dry_run_asks_too_and_the_json_log_and_metrics_carry_what_decided() {
    let hub = start(
        HubConfig::new()
            .user(idle_by_the_hub(
                "training",
                FakeInside::kernel("busy", ago(hours(3))),
            ))
            .user(idle_by_the_hub("forgotten", FakeInside::idle()))
            .user(idle_by_the_hub("crashed", FakeInside::Gone)),
    );
    let dry = asking(&hub, &["--dry-run", "--log-format=json"]);
    dry.assert_success();
    assert!(stopped(&hub).is_empty(), "a dry run stops nothing:\n{dry}");
    let records = records(&dry);
    assert_eq!(records["training"]["reason"], "kernel busy");
    assert_eq!(records["forgotten"]["action"], "stop");
    assert_eq!(records["forgotten"]["dry_run"], true);
    let kept: Vec<Value> = dry
        .stderr_lines()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["user"] == "training")
        .collect();
    assert_eq!(kept.len(), 1, "{dry}");
    assert_eq!(
        (&kept[0]["reason"], &kept[0]["signal"], &kept[0]["action"]),
        (
            &Value::from("kernel busy"),
            &Value::from("server"),
            &Value::from("keep")
        )
    );

    let culler = crate::support::culler::Culler::against(hub.url(), TOKEN)
        .args([
            TIMEOUT_1H,
            "--cull-every=600",
            "--activity=server",
            "--metrics-bind=127.0.0.1:0",
        ])
        .arg(proxy_url(&hub))
        .arg("--metrics-auth=false")
        .spawn();
    let base = crate::metrics::metrics_url(&culler);
    assert!(
        culler.wait_for_log("Pass finished", secs(20)),
        "{}",
        culler.stderr_so_far()
    );
    let (status, body) = crate::support::exposition::get(&format!("{base}/metrics"));
    assert_eq!(status, 200, "{body}");
    let looks = "jupyterhub_idle_culler_server_looks_total";
    for outcome in ["in_use", "idle", "status"] {
        let count = crate::support::exposition::sample(&body, looks, &[("outcome", outcome)]);
        assert_eq!(count, Some(1.0), "{outcome}\n{body}");
    }
    culler.signal("TERM");
    culler.wait(secs(30)).assert_success();
}

#[test]
fn the_json_cull_line_says_what_decided_and_only_when_a_server_was_asked() {
    let hub = start(
        HubConfig::new()
            .user(idle_by_the_hub("forgotten", FakeInside::idle()))
            .user(idle_by_the_hub("crashed", FakeInside::Gone)),
    );
    let out = asking(&hub, &["--log-format=json"]);
    out.assert_success();
    let culls: std::collections::BTreeMap<String, Value> = out
        .stderr_lines()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Culling server"))
        })
        .map(|l| (l["user"].as_str().unwrap_or_default().to_owned(), l))
        .collect();
    assert_eq!(culls["forgotten"]["signal"], "server", "{out}");
    assert_eq!(culls["crashed"]["signal"], "hub-fallback", "{out}");
    let hub = start(HubConfig::new().user(idle_by_the_hub("plain", FakeInside::idle())));
    let out = once(&hub).args([TIMEOUT_1H, "--log-format=json"]).run();
    out.assert_success();
    let line = out
        .stderr_lines()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["user"] == "plain")
        .unwrap_or_else(|| panic!("no cull line:\n{out}"));
    assert_eq!(line["action"], "stop");
    assert!(
        line.get("signal").is_none(),
        "lines read as before without --activity=server: {line}"
    );
}
