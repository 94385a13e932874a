//! `/metrics` and `/health` served by the running culler: scraped with a
//! real Prometheus text-format parser, counting what the fake hub saw, by
//! a scraper whose hub token holds `read:metrics`.

use crate::support::culler::{Culler, RunningCuller};
use crate::support::exposition::{get, get_as, sample};
use crate::support::fake_hub::{DownMode, FakeServer, FakeUser, HubConfig, RequestKind};
use crate::support::scenario::*;

/// The token of the hub's `prometheus` service, which holds `read:metrics`.
const SCRAPER: &str = "prometheus-token";

/// The token of a service that lacks `read:metrics`.
const NOSY: &str = "nosy-token";

/// Waits for the culler to say where it serves, and returns that base URL.
pub fn metrics_url(culler: &RunningCuller) -> String {
    assert!(
        culler.wait_for_log("Serving /metrics and /health at ", secs(20)),
        "{}",
        culler.stderr_so_far()
    );
    let log = culler.stderr_so_far();
    let line = log
        .lines()
        .find(|l| l.contains("Serving /metrics and /health at "))
        .unwrap();
    let url = line
        .split("at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    url.trim_end_matches('/').to_owned()
}

#[test]
fn metrics_count_the_passes_and_the_requests_the_hub_saw() {
    let hub = start(
        HubConfig::new()
            .users(idle_users(3))
            .user(busy_user("busy"))
            .user(idle_user("slow").slow_stop(true))
            .user(
                FakeUser::new("lab")
                    .idle_for(secs(60))
                    .server(FakeServer::named("lab").idle_for(hours(2))),
            )
            .other_token(SCRAPER, "prometheus", &["read:metrics"]),
    );
    let culler = Culler::against(hub.url(), TOKEN)
        .args([
            TIMEOUT_1H,
            "--cull-every=600",
            "--metrics-bind=127.0.0.1:0",
            "--remove-named-servers",
        ])
        .spawn();
    let base = metrics_url(&culler);
    assert!(
        culler.wait_for_log("Pass finished", secs(20)),
        "{}",
        culler.stderr_so_far()
    );
    let (status, text) = get_as(&format!("{base}/metrics"), Some(SCRAPER));
    assert_eq!(status, 200, "{text}");
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, &format!("jupyterhub_idle_culler_{name}"), labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(value("passes_total", &[("outcome", "success")]), 1.0);
    assert_eq!(value("passes_total", &[("outcome", "failure")]), 0.0);
    assert_eq!(value("users_seen_total", &[]), 6.0);
    assert_eq!(value("servers_seen_total", &[]), 6.0);
    // Stopped (4) and still stopping (1: the hub accepted it, 202).
    assert_eq!(value("servers_stopped_total", &[]), 5.0);
    assert_eq!(value("named_servers_removed_total", &[]), 1.0);
    assert_eq!(
        value(
            "requests_total",
            &[
                ("method", "DELETE"),
                ("endpoint", "/users/{name}/server"),
                ("status", "204")
            ]
        ),
        3.0
    );
    assert_eq!(
        value(
            "requests_total",
            &[
                ("method", "DELETE"),
                ("endpoint", "/users/{name}/servers/{server}"),
                ("status", "204")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            "requests_total",
            &[("method", "GET"), ("endpoint", "/"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(value("consecutive_failed_passes", &[]), 0.0);
    assert!(value("last_successful_pass_timestamp_seconds", &[]) > 1.7e9);
    let (status, body) = get(&format!("{base}/health"));
    assert_eq!(status, 200, "{body}");
    culler.signal("TERM");
    culler.wait(secs(30)).assert_success();
}

/// `/metrics` needs a hub token whose owner holds `read:metrics`; the hub
/// is asked about each token once and its word is kept, so scraping often
/// costs the hub nothing more. `/health` needs no token.
#[test]
fn metrics_need_a_hub_token_with_read_metrics_and_the_hub_is_asked_once_per_token() {
    let hub = start(
        HubConfig::new()
            .users(idle_users(1))
            .other_token(SCRAPER, "prometheus", &["read:metrics"])
            .other_token(NOSY, "nosy", &["read:users"]),
    );
    let culler = Culler::against(hub.url(), TOKEN)
        .args([TIMEOUT_1H, "--cull-every=600", "--metrics-bind=127.0.0.1:0"])
        .spawn();
    let base = metrics_url(&culler);
    assert!(
        culler.wait_for_log("Pass finished", secs(20)),
        "{}",
        culler.stderr_so_far()
    );
    let metrics = format!("{base}/metrics");
    // (The culler may have asked about its own token at start.)
    let asked_at_start = hub.count(RequestKind::WhoAmI);
    for _ in 0..2 {
        let (status, body) = get(&metrics);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("read:metrics"), "{body}");
        let (status, body) = get_as(&metrics, Some("unknown-token"));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("does not know"), "{body}");
        let (status, body) = get_as(&metrics, Some(NOSY));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("\"nosy\" lacks the read:metrics"), "{body}");
        // The culler's own token does not hold it either.
        let (status, _) = get_as(&metrics, Some(TOKEN));
        assert_eq!(status, 403);
        let (status, body) = get_as(&metrics, Some(SCRAPER));
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("jupyterhub_idle_culler_passes_total"),
            "{body}"
        );
    }
    // One question per token, however often it is shown (no token: none).
    assert_eq!(hub.count(RequestKind::WhoAmI), asked_at_start + 4);
    let (status, body) = get(&format!("{base}/health"));
    assert_eq!(status, 200, "{body}");
    culler.signal("TERM");
    culler.wait(secs(30)).assert_success();
}

/// `--metrics-auth=false` with a loopback `--metrics-bind`: anyone on this
/// machine scrapes without a token, and the hub is never asked.
#[test]
fn metrics_on_loopback_can_be_open() {
    let hub = start(HubConfig::new().users(idle_users(1)));
    let culler = Culler::against(hub.url(), TOKEN)
        .args([
            TIMEOUT_1H,
            "--cull-every=600",
            "--metrics-bind=127.0.0.1:0",
            "--metrics-auth=false",
        ])
        .spawn();
    let base = metrics_url(&culler);
    assert!(culler.stderr_so_far().contains("--metrics-auth=false"));
    assert!(
        culler.wait_for_log("Pass finished", secs(20)),
        "{}",
        culler.stderr_so_far()
    );
    let asked = hub.count(RequestKind::WhoAmI);
    let (status, body) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(hub.count(RequestKind::WhoAmI), asked, "the hub was asked");
    culler.signal("TERM");
    culler.wait(secs(30)).assert_success();
}

#[test]
fn health_turns_503_after_the_failed_passes_allowed_and_back_to_200() {
    let hub = start(HubConfig::new().users(idle_users(2)));
    hub.go_down(DownMode::Answer(503));
    let culler = Culler::against(hub.url(), TOKEN)
        .args([
            TIMEOUT_1H,
            "--cull-every=1",
            "--retries=0",
            "--health-failures=2",
            "--metrics-bind=127.0.0.1:0",
        ])
        .spawn();
    let base = metrics_url(&culler);
    let failed = |line: &str| line.contains("Pass finished") && !line.contains(" 0 errors");
    assert!(
        culler.wait_for_lines(1, secs(20), failed),
        "{}",
        culler.stderr_so_far()
    );
    // (That one failed pass of two allowed still answers 200 is the unit
    // tests' business: here a second pass may end at any moment.)
    assert!(
        culler.wait_for_lines(2, secs(20), failed),
        "{}",
        culler.stderr_so_far()
    );
    let (status, body) = get(&format!("{base}/health"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"status\":\"failing\""), "{body}");
    hub.come_back();
    let culled = hub.wait_until(secs(20), |s| s.stopped_servers().len() == 2);
    assert!(culled, "{}", culler.stderr_so_far());
    assert!(culler.wait_for_log(" 2 servers culled", secs(20)));
    let (status, body) = get(&format!("{base}/health"));
    assert_eq!(status, 200, "healthy again after a good pass: {body}");
    culler.signal("TERM");
    culler.wait(secs(60)).assert_success();
}

#[test]
fn a_port_in_use_stops_the_culler_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Culler::against("http://127.0.0.1:1/hub/api", TOKEN)
        .args([
            "--once".to_owned(),
            format!("--metrics-bind=127.0.0.1:{port}"),
        ])
        .run();
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains(&port.to_string()), "{out}");
}
