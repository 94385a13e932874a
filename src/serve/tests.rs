//! The endpoint over real sockets: what is served where, in which type,
//! and who may read it. (How connections are read and limited is
//! actix-web's, tested there.)

use super::*;
use crate::metrics::{PassCounts, PassOutcome};
use awc::http::Method;
use std::net::SocketAddr;

#[test]
fn prefixes_are_normalized() {
    assert_eq!(Routes::new(None, 3).prefix(), "/");
    assert_eq!(Routes::new(Some(""), 3).prefix(), "/");
    assert_eq!(Routes::new(Some("/"), 3).prefix(), "/");
    let service = "/services/idle-culler/";
    assert_eq!(Routes::new(Some(service), 3).prefix(), service);
    assert_eq!(
        Routes::new(Some("services/idle-culler"), 3).prefix(),
        service
    );
    assert_eq!(Routes::new(None, 0).max_failures(), 1);
    assert_eq!(Routes::new(None, 5).max_failures(), 5);
}

/// Starts a server on 127.0.0.1:0 in this test's system.
fn start(metrics: &Arc<Metrics>, routes: Routes, access: Access) -> SocketAddr {
    let address = BindAddress {
        addr: "127.0.0.1:0".parse().unwrap(),
        origin: BindOrigin::Flag,
    };
    let listener = bind(&address).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(
        listener,
        Arc::clone(metrics),
        routes,
        access,
        Log::discard(),
    )
    .unwrap();
    actix_rt::spawn(server);
    addr
}

/// An answer, whole.
struct Reply {
    status: u16,
    content_type: Option<String>,
    cache_control: Option<String>,
    allow: Option<String>,
    length: Option<String>,
    body: String,
}

async fn request(addr: SocketAddr, method: Method, path: &str, token: Option<&str>) -> Reply {
    let client = awc::Client::default();
    let mut request = client.request(method, format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("token {token}")));
    }
    let mut response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (content_type, cache_control, allow, length) = (
        header("Content-Type"),
        header("Cache-Control"),
        header("Allow"),
        header("Content-Length"),
    );
    let body = response.body().await.unwrap();
    Reply {
        status: response.status().as_u16(),
        content_type,
        cache_control,
        allow,
        length,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, Method::GET, path, None).await
}

#[actix_rt::test]
async fn metrics_are_served_at_both_paths() {
    let metrics = Metrics::new();
    metrics.pass_finished(
        PassOutcome::Success,
        Duration::from_secs(1),
        PassCounts::default(),
    );
    let routes = Routes::new(Some("/services/idle-culler/"), 3);
    let addr = start(&metrics, routes, Access::Open);
    for path in [
        "/metrics",
        "/services/idle-culler/metrics",
        "/metrics?name[]=x",
    ] {
        let reply = get(addr, path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.content_type.as_deref(), Some(CONTENT_TYPE));
        assert_eq!(reply.cache_control.as_deref(), Some("no-store"));
        assert!(
            reply
                .body
                .contains("jupyterhub_idle_culler_passes_total{outcome=\"success\"} 1\n"),
            "{}",
            reply.body
        );
    }
}

#[actix_rt::test]
async fn health_is_200_until_too_many_failures_then_503() {
    let metrics = Metrics::new();
    let routes = Routes::new(Some("/services/idle-culler/"), 2);
    let addr = start(&metrics, routes, Access::Open);
    let health = |reply: &Reply| -> serde_json::Value {
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        serde_json::from_str(&reply.body).unwrap()
    };

    let reply = get(addr, "/health").await;
    assert_eq!(reply.status, 200);
    assert_eq!(health(&reply)["status"], "starting");

    metrics.pass_finished(PassOutcome::Success, Duration::ZERO, PassCounts::default());
    metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, PassCounts::default());
    let reply = get(addr, "/services/idle-culler/health").await;
    assert_eq!(reply.status, 200);
    let json = health(&reply);
    assert_eq!(json["status"], "ok");
    assert_eq!(json["consecutive_failed_passes"], 1);
    assert!(json["last_success"].is_string(), "{json}");

    metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, PassCounts::default());
    let reply = get(addr, "/health").await;
    assert_eq!(reply.status, 503);
    let json = health(&reply);
    assert_eq!(json["status"], "failing");
    assert_eq!(json["consecutive_failed_passes"], 2);
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("2 passes in a row failed"),
        "{json}"
    );

    metrics.pass_finished(PassOutcome::Success, Duration::ZERO, PassCounts::default());
    assert_eq!(get(addr, "/health").await.status, 200);
}

#[actix_rt::test]
async fn head_gets_the_headers_of_get_without_the_body() {
    let metrics = Metrics::new();
    let addr = start(&metrics, Routes::new(None, 3), Access::Open);
    let full = get(addr, "/health").await;
    let head = request(addr, Method::HEAD, "/health", None).await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.content_type.as_deref(), Some("application/json"));
    assert_eq!(head.length, full.length);
    assert_eq!(
        full.length,
        Some(full.body.len().to_string()),
        "{:?}",
        full.body
    );
    let head = request(addr, Method::HEAD, "/metrics", None).await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.content_type.as_deref(), Some(CONTENT_TYPE));
}

#[actix_rt::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let metrics = Metrics::new();
    let routes = Routes::new(Some("/services/idle-culler/"), 3);
    let addr = start(&metrics, routes, Access::Open);
    for path in [
        "/",
        "/metricsx",
        "/metrics/",
        "/services/idle-culler/",
        "/services/other/metrics",
    ] {
        let reply = get(addr, path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(
            reply.body.contains("/services/idle-culler/metrics"),
            "{}",
            reply.body
        );
    }
    for method in [Method::POST, Method::DELETE, Method::PUT, Method::OPTIONS] {
        for path in ["/metrics", "/services/idle-culler/health"] {
            let reply = request(addr, method.clone(), path, None).await;
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.allow.as_deref(), Some("GET, HEAD"));
        }
    }
    // Another method on an unknown path is still not found.
    assert_eq!(
        request(addr, Method::POST, "/nothing", None).await.status,
        404
    );
}

#[actix_rt::test]
async fn garbage_gets_no_answer_but_an_error_and_the_server_goes_on() {
    use std::io::{Read, Write};
    let metrics = Metrics::new();
    let addr = start(&metrics, Routes::new(None, 3), Access::Open);
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"\x00\xff\xfe garbage\n\n",
        b"hello\r\n\r\n",
    ] {
        let raw = actix_rt::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            stream.write_all(garbage).unwrap();
            let mut raw = Vec::new();
            let _ = stream.read_to_end(&mut raw);
            raw
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(
            raw.is_empty() || text.starts_with("HTTP/1.1 4"),
            "{garbage:?}: {text}"
        );
    }
    assert_eq!(get(addr, "/metrics").await.status, 200);
}

#[actix_rt::test]
async fn metrics_behind_a_token_check_are_503_while_the_hub_cannot_be_asked_and_health_stays_open()
{
    let metrics = Metrics::new();
    let hub = crate::hub::HubConfig {
        // Nothing listens on loopback's port 9 (discard is never enabled).
        base_url: "http://127.0.0.1:9/hub/api".into(),
        token: crate::hub::ApiToken::new("culler".into()),
        request_timeout: Duration::from_secs(2),
        tls: None,
        proxy: None,
    };
    let access = Access::HubToken {
        hub,
        observer: Arc::new(crate::hub::Unobserved),
    };
    let addr = start(&metrics, Routes::new(None, 3), access);
    let refused = get(addr, "/metrics").await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("read:metrics"), "{}", refused.body);
    let unknown = request(addr, Method::GET, "/metrics", Some("t")).await;
    assert_eq!(unknown.status, 503, "{}", unknown.body);
    assert!(unknown.body.contains("try again later"), "{}", unknown.body);
    assert_eq!(get(addr, "/health").await.status, 200);
}
