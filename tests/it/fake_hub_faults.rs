//! Self-tests of the fake hub's fault injection, driven by plain clients:
//! `ureq` where HTTP answers are enough, a raw `TcpStream` where what happens
//! to the connection is the point (closed, silent, stalled, refused).
//!
//! Waiting is done on events (`FakeHub::wait_until`, a socket's EOF); the
//! read timeouts set on raw sockets only bound a failing test. Timing
//! assertions are lower bounds only.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fake_hub::{
    ago, Delivery, DownMode, FakeHub, FakeServer, FakeUser, Fault, FaultAction, HubConfig, Outcome,
    RandomFaults, RequestKind, PAGINATION_MEDIA_TYPE, PROBE_HEADER,
};

/// Bounds every blocking read or request of a test that goes wrong.
const SAFETY: Duration = Duration::from_secs(10);

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn user(name: &str) -> FakeUser {
    FakeUser::new(name)
        .last_activity(ago(Duration::from_secs(7200)))
        .server(FakeServer::default_server().idle_for(Duration::from_secs(7200)))
}

fn users(n: usize) -> impl Iterator<Item = FakeUser> {
    (0..n).map(|i| user(&format!("u{i:02}")))
}

/// An HTTP answer as a plain client sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// One request on a fresh connection (ureq's free functions use a new
/// agent, so nothing is pooled between calls), asking for the pagination
/// envelope; HTTP error statuses are answers too, transport errors are
/// `Err` with their description.
fn call(method: &str, url: &str, body: Option<&str>) -> Result<Answer, String> {
    let agent = ureq::AgentBuilder::new().timeout(SAFETY).build();
    let request = agent
        .request(method, url)
        .set("Accept", PAGINATION_MEDIA_TYPE);
    let result = match body {
        Some(body) => request.send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => return Err(transport.to_string()),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = response.header(&n).unwrap_or_default().to_owned();
            (n, v)
        })
        .collect();
    let body = response.into_string().expect("read the body");
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn get(hub: &FakeHub, path: &str) -> Answer {
    call("GET", &format!("{}{path}", hub.url()), None).expect("the hub answers")
}

fn delete(hub: &FakeHub, path: &str) -> Answer {
    call("DELETE", &format!("{}{path}", hub.url()), None).expect("the hub answers")
}

/// A raw connection to the hub, reads bounded by [`SAFETY`].
fn connect(hub: &FakeHub) -> TcpStream {
    let stream = TcpStream::connect(hub.addr()).expect("connect to the fake hub");
    stream.set_read_timeout(Some(SAFETY)).unwrap();
    stream
}

/// Writes `METHOD /hub/api{path} HTTP/1.1` asking for the pagination
/// envelope, keep-alive implied.
fn send_raw(stream: &mut TcpStream, method: &str, path: &str) {
    let request = format!(
        "{method} /hub/api{path} HTTP/1.1\r\nHost: fake\r\nAccept: {PAGINATION_MEDIA_TYPE}\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
}

/// `read`, retried when a signal interrupts it (the suite spawns processes,
/// and std's `read` does not retry).
fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reads a status line and headers; `None` if the connection ends first.
fn read_head(stream: &mut TcpStream) -> Option<(u16, Vec<(String, String)>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match read_some(stream, &mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading a head: {e}"),
        }
    }
    let text = String::from_utf8(head).expect("an ASCII head");
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some((status, headers))
}

/// Reads a whole answer (head and `Content-Length` body).
fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let (status, headers) = read_head(stream)?;
    let mut answer = Answer {
        status,
        headers,
        body: String::new(),
    };
    let length: usize = answer
        .header("Content-Length")
        .map_or(0, |v| v.parse().expect("a numeric Content-Length"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    answer.body = String::from_utf8(body).expect("a UTF-8 body");
    Some(answer)
}

/// Whether the peer has closed the connection: the next read sees EOF (or
/// a reset) rather than data or the safety timeout.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match read_some(stream, &mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

/// The outcomes of the requests to `path`, in order.
fn outcomes(hub: &FakeHub, path: &str) -> Vec<Outcome> {
    hub.requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.outcome)
        .collect()
}

// ------------------------------------------------------------------ plain HTTP

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let hub = FakeHub::start(HubConfig::new().users(users(2)));
    let mut stream = connect(&hub);
    for path in ["/", "/users", "/users/u01"] {
        send_raw(&mut stream, "GET", path);
        let answer = read_answer(&mut stream).expect("an answer on the same connection");
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.header("Connection"), None, "{answer:?}");
    }
    assert_eq!(hub.count(RequestKind::ListUsers), 1);
    assert_eq!(hub.count(RequestKind::GetUser), 1);
}

/// A benchmark's probe is served and logged but not counted in flight, so
/// the culler's concurrency is measured alone; any other request counts.
#[test]
fn a_probe_is_logged_but_not_counted_in_flight() {
    let hub = FakeHub::start(HubConfig::new());
    let mut stream = connect(&hub);
    let probe = format!("GET /hub/api/ HTTP/1.1\r\nHost: fake\r\n{PROBE_HEADER}: 1\r\n\r\n");
    stream.write_all(probe.as_bytes()).expect("send the probe");
    assert_eq!(read_answer(&mut stream).map(|a| a.status), Some(200));
    {
        let state = hub.state();
        assert_eq!(state.requests().len(), 1, "the probe is in the log");
        assert_eq!((state.in_flight, state.max_in_flight), (0, 0));
    }
    send_raw(&mut stream, "GET", "/");
    assert_eq!(read_answer(&mut stream).map(|a| a.status), Some(200));
    let state = hub.state();
    assert_eq!((state.in_flight, state.max_in_flight), (0, 1));
}

#[test]
fn request_log_records_every_request_in_order_with_what_happened() {
    let hub = FakeHub::start(
        HubConfig::new()
            .token("t")
            .user(user("a b").server(FakeServer::named("x").idle_for(millis(1)))),
    );
    let url = hub.url();
    let stop = format!("{url}/users/a%20b/servers/x?token=t");
    let stopped = call("DELETE", &stop, Some(r#"{"remove": true}"#)).unwrap();
    let refused = call("GET", &format!("{url}/users?state=ready"), None).unwrap();
    assert_eq!((stopped.status, refused.status), (204, 403));
    let log = hub.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].method, "DELETE");
    assert_eq!(log[0].path, "/users/a b/servers/x");
    assert_eq!(log[0].raw_path, "/hub/api/users/a%20b/servers/x");
    assert_eq!(log[0].query, "token=t");
    assert_eq!(log[0].body, r#"{"remove": true}"#);
    assert_eq!(log[0].kind, RequestKind::StopServer);
    assert_eq!(log[0].fault, None);
    assert_eq!(log[0].outcome, Outcome::Answered(204));
    assert_eq!(
        (log[1].method.as_str(), log[1].path.as_str()),
        ("GET", "/users")
    );
    assert_eq!(log[1].query, "state=ready");
    assert_eq!(log[1].outcome, Outcome::Answered(403));
    assert_eq!(hub.stopped_servers(), vec![("a b".into(), "x".into())]);
}

// ------------------------------------------------------------- answer faults

#[test]
fn error_fault_answers_its_status_json_and_headers_then_the_hub_answers_again() {
    let hub = FakeHub::start(
        HubConfig::new()
            .fault(
                Fault::error("GET", "/users", 503, "busy")
                    .header("Retry-After", "1")
                    .times(1),
            )
            .users(users(1)),
    );
    let first = get(&hub, "/users");
    assert_eq!(first.status, 503);
    assert_eq!(first.header("Retry-After"), Some("1"), "{first:?}");
    assert_eq!(first.json()["message"], "busy");
    let second = get(&hub, "/users");
    assert_eq!(second.status, 200);
    assert_eq!(second.header("Retry-After"), None);
    assert_eq!(
        outcomes(&hub, "/users"),
        vec![Outcome::Faulted(503), Outcome::Answered(200)]
    );
    assert_eq!(hub.lists().len(), 1, "the faulted list reached the hub");
}

#[test]
fn missing_scope_fault_names_the_scope_in_a_403() {
    let hub = FakeHub::start(
        HubConfig::new()
            .fault(Fault::missing_scope("DELETE", "/users/u00", "delete:users"))
            .users(users(1)),
    );
    let answer = delete(&hub, "/users/u00");
    assert_eq!(answer.status, 403);
    let message = answer.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.ends_with("requires any of [delete:users]"),
        "{message}"
    );
    assert!(hub.has_user("u00"));
    assert_eq!(
        hub.deletes()[0].status,
        403,
        "recorded with the fault's status"
    );
}

#[test]
fn raw_fault_answers_garbage_with_a_200() {
    let hub = FakeHub::start(
        HubConfig::new()
            .fault(Fault::raw("GET", "/users", 200, "<html>oops</html>"))
            .fault(Fault::new(
                "GET",
                "/",
                FaultAction::respond(200, "text/plain", "not json"),
            )),
    );
    let list = get(&hub, "/users");
    assert_eq!(
        (list.status, list.body.as_str()),
        (200, "<html>oops</html>")
    );
    assert_eq!(list.header("Content-Type"), Some("application/json"));
    let version = get(&hub, "/");
    assert_eq!(version.body, "not json");
    assert_eq!(version.header("Content-Type"), Some("text/plain"));
}

#[test]
fn nth_fault_fires_only_on_the_nth_matching_request() {
    let hub = FakeHub::start(
        HubConfig::new().fault(
            Fault::error("GET", "/users", 500, "second ready list")
                .with_query("state=ready")
                .nth(2),
        ),
    );
    let statuses: Vec<u16> = [
        "/users?state=ready",
        "/users?state=inactive",
        "/users?state=ready",
        "/users?state=ready",
    ]
    .iter()
    .map(|p| get(&hub, p).status)
    .collect();
    assert_eq!(statuses, vec![200, 200, 500, 200]);
}

#[test]
fn prefix_paths_and_any_method_match_only_what_they_name() {
    let hub = FakeHub::start(
        HubConfig::new()
            .fault(Fault::error("*", "/users/*", 500, "below /users/"))
            .users(users(1)),
    );
    assert_eq!(get(&hub, "/users").status, 200);
    assert_eq!(get(&hub, "/users/u00").status, 500);
    assert_eq!(delete(&hub, "/users/u00/server").status, 500);
    assert!(hub.stopped_servers().is_empty());
}

// --------------------------------------------------------- connection faults

#[test]
fn dropped_connection_reads_the_request_and_answers_nothing() {
    let hub = FakeHub::start(
        HubConfig::new()
            .fault(Fault::new(
                "DELETE",
                "/users/*",
                FaultAction::drop_connection(),
            ))
            .users(users(1)),
    );
    let mut stream = connect(&hub);
    send_raw(&mut stream, "DELETE", "/users/u00/server");
    assert!(read_head(&mut stream).is_none(), "an answer came");
    assert!(hub.wait_until(SAFETY, |s| s.in_flight == 0));
    let log = hub.requests();
    assert_eq!(log[0].fault, Some(Delivery::Drop));
    assert_eq!(log[0].outcome, Outcome::Dropped);
    assert_eq!(hub.max_in_flight(), 1);
    assert!(
        hub.deletes().is_empty(),
        "a dropped request reached the hub"
    );
    assert_eq!(hub.active_servers("u00"), vec![String::new()]);
}

#[test]
fn drop_with_effect_applies_the_request_but_loses_the_answer() {
    let hub = FakeHub::start(
        HubConfig::new()
            .fault(Fault::new(
                "DELETE",
                "/users/u00/server",
                FaultAction::drop_connection().with_effect(),
            ))
            .users(users(1)),
    );
    let lost = call("DELETE", &format!("{}/users/u00/server", hub.url()), None);
    assert!(lost.is_err(), "answered: {lost:?}");
    assert_eq!(hub.stopped_servers(), vec![("u00".into(), String::new())]);
    assert_eq!(outcomes(&hub, "/users/u00/server"), vec![Outcome::Dropped]);
}

#[test]
fn silent_close_answers_without_connection_close_then_closes_the_socket() {
    let hub = FakeHub::start(
        HubConfig::new()
            .fault(Fault::new("GET", "/users", FaultAction::silent_close()))
            .users(users(1)),
    );
    let mut stream = connect(&hub);
    send_raw(&mut stream, "GET", "/users");
    let answer = read_answer(&mut stream).expect("the hub's answer");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["items"][0]["name"], "u00");
    assert_eq!(answer.header("Connection"), None, "the close was announced");
    assert!(closed_by_peer(&mut stream), "the socket stayed open");
    assert_eq!(outcomes(&hub, "/users"), vec![Outcome::Answered(200)]);
    assert_eq!(hub.requests()[0].fault, Some(Delivery::SilentClose));
}

#[test]
fn idle_kept_alive_connections_are_closed_silently_after_the_idle_limit() {
    let limit = millis(300);
    let hub = FakeHub::start(HubConfig::new().close_idle_connections_after(limit));
    let mut stream = connect(&hub);
    // The hub's idle clock starts after its answer, so after this.
    let sent = Instant::now();
    send_raw(&mut stream, "GET", "/");
    let answer = read_answer(&mut stream).expect("an answer");
    assert_eq!(answer.header("Connection"), None, "the close was announced");
    assert!(
        closed_by_peer(&mut stream),
        "the idle connection stayed open"
    );
    assert!(
        sent.elapsed() >= limit,
        "closed {:?} after the request",
        sent.elapsed()
    );
}

#[test]
fn idle_limit_zero_closes_silently_after_every_answer() {
    let hub = FakeHub::start(HubConfig::new().close_idle_connections_after(Duration::ZERO));
    for _ in 0..2 {
        let mut stream = connect(&hub);
        send_raw(&mut stream, "GET", "/");
        let answer = read_answer(&mut stream).expect("an answer");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("Connection"), None, "the close was announced");
        assert!(closed_by_peer(&mut stream), "the connection stayed open");
    }
}

#[test]
fn stalled_body_sends_headers_then_holds_until_the_client_leaves() {
    let hub =
        FakeHub::start(HubConfig::new().fault(Fault::new("GET", "/users", FaultAction::stall())));
    let mut stream = connect(&hub);
    send_raw(&mut stream, "GET", "/users");
    let (status, headers) = read_head(&mut stream).expect("a head");
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "Content-Length" && v != "0"),
        "{headers:?}"
    );
    assert!(hub.wait_until(SAFETY, |s| {
        s.in_flight == 1 && s.requests()[0].outcome == Outcome::Stalled
    }));
    // The stall holds no lock: the hub answers others meanwhile.
    assert_eq!(get(&hub, "/").status, 200);
    assert_eq!(hub.max_in_flight(), 2, "the stalled request is in flight");
    stream.set_read_timeout(Some(millis(200))).unwrap();
    let mut byte = [0u8; 1];
    let read = read_some(&mut stream, &mut byte);
    assert!(
        matches!(&read, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the stalled body sent something or closed: {read:?}"
    );
    drop(stream);
    assert!(
        hub.wait_until(SAFETY, |s| s.in_flight == 0),
        "the stall outlived its client"
    );
}

#[test]
fn slow_body_arrives_in_pieces_and_whole() {
    let (chunk, pause) = (200, millis(30));
    let hub = FakeHub::start(
        HubConfig::new()
            .fault(Fault::new(
                "GET",
                "/users",
                FaultAction::slow_body(chunk, pause),
            ))
            .users(users(4)),
    );
    let mut stream = connect(&hub);
    let started = Instant::now();
    send_raw(&mut stream, "GET", "/users");
    let (status, headers) = read_head(&mut stream).expect("a head");
    assert_eq!(status, 200);
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "Content-Length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a Content-Length");
    let pieces = length.div_ceil(chunk);
    assert!(pieces >= 5, "too short a body to see pieces: {length}");
    let mut body = vec![0u8; length];
    let first = read_some(&mut stream, &mut body).expect("a first piece");
    assert!(first < length, "the whole body came at once");
    stream.read_exact(&mut body[first..]).expect("the rest");
    let value: Value = serde_json::from_slice(&body).expect("a whole JSON body");
    assert_eq!(value["items"].as_array().map(Vec::len), Some(4));
    let least = pause * (pieces as u32 - 1);
    assert!(
        started.elapsed() >= least,
        "{:?} < {least:?}",
        started.elapsed()
    );
    assert!(hub.wait_until(SAFETY, |s| s.in_flight == 0));
    assert_eq!(outcomes(&hub, "/users"), vec![Outcome::Answered(200)]);
}

#[test]
fn fault_delays_and_delete_latency_hold_the_answer() {
    let d = millis(200);
    let hub = FakeHub::start(
        HubConfig::new()
            .delete_latency(d)
            .fault(Fault::new("GET", "/users", FaultAction::delay(d)))
            .fault(Fault::new(
                "GET",
                "/users/u00",
                FaultAction::error(503, "later").delayed(d),
            ))
            .users(users(1)),
    );
    for (method, path, status) in [
        ("GET", "/users", 200),
        ("GET", "/users/u00", 503),
        ("DELETE", "/users/u00/server", 204),
    ] {
        let started = Instant::now();
        let answer = call(method, &format!("{}{path}", hub.url()), None).unwrap();
        assert_eq!(answer.status, status, "{method} {path}");
        assert!(
            started.elapsed() >= d,
            "{method} {path} after {:?}",
            started.elapsed()
        );
    }
    assert_eq!(hub.requests()[0].fault, Some(Delivery::Normal));
}

// ------------------------------------------------------------ lying envelopes

/// `GET /users` with the envelope; returns the body.
fn page(hub: &FakeHub, query: &str) -> Value {
    let answer = get(hub, &format!("/users?{query}"));
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn lying_envelope_claims_a_huge_total_and_a_limit_it_does_not_serve() {
    let hub = FakeHub::start(
        HubConfig::new()
            .page_limits(20, 20)
            .claim_limit(50)
            .lie_total(u64::MAX)
            .users(users(45)),
    );
    let raw = get(&hub, "/users?state=ready&limit=50").body;
    assert!(raw.contains("\"total\":18446744073709551615"), "{raw}");
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["_pagination"]["total"].as_u64(), Some(u64::MAX));
    assert_eq!(body["_pagination"]["limit"], 50);
    assert_eq!(body["items"].as_array().unwrap().len(), 20);
    let list = &hub.lists()[0];
    assert_eq!((list.limit, list.returned, list.total), (20, 20, 45));
    assert_eq!(list.state.as_deref(), Some("ready"));
}

#[test]
fn lying_total_can_be_too_small_or_too_large() {
    for (delta, claimed) in [(-5, 40), (7, 52), (-100, 0)] {
        let hub = FakeHub::start(HubConfig::new().lie_total_by(delta).users(users(45)));
        let body = page(&hub, "offset=0");
        assert_eq!(body["_pagination"]["total"], claimed, "delta {delta}");
        assert_eq!(hub.lists()[0].total, 45);
    }
}

#[test]
fn ignore_offset_serves_the_first_page_for_every_offset() {
    let hub = FakeHub::start(
        HubConfig::new()
            .page_limits(5, 5)
            .ignore_offset()
            .users(users(12)),
    );
    let first = page(&hub, "offset=0");
    let third = page(&hub, "offset=10");
    assert_eq!(names(&third), names(&first));
    assert_eq!(names(&first)[0], "u00");
    assert_eq!(
        third["_pagination"]["offset"], 10,
        "the asked offset is echoed"
    );
    let lists = hub.lists();
    assert_eq!(lists[1].offset, 0, "the hub served offset 0");
}

// ---------------------------------------------------------------- random plan

/// The fault pattern each request identity met, in its own order.
fn pattern(hub: &FakeHub) -> std::collections::BTreeMap<String, Vec<bool>> {
    let mut seen = std::collections::BTreeMap::<String, Vec<bool>>::new();
    for r in hub.requests() {
        seen.entry(format!("{} {}?{}", r.method, r.path, r.query))
            .or_default()
            .push(r.fault.is_some());
    }
    seen
}

#[test]
fn random_plan_decides_by_request_identity_not_arrival_order() {
    let plan = || {
        RandomFaults::new(
            42,
            0.3,
            [
                FaultAction::error(503, "flaky"),
                FaultAction::drop_connection(),
            ],
        )
    };
    let names: Vec<String> = (0..8).map(|i| format!("u{i:02}")).collect();
    let forward = FakeHub::start(HubConfig::new().random_faults(plan()).users(users(8)));
    for _ in 0..6 {
        for name in &names {
            let _ = call("GET", &format!("{}/users/{name}", forward.url()), None);
        }
    }
    let backward = FakeHub::start(HubConfig::new().random_faults(plan()).users(users(8)));
    for name in names.iter().rev() {
        for _ in 0..6 {
            let _ = call("GET", &format!("{}/users/{name}", backward.url()), None);
        }
    }
    let forward = pattern(&forward);
    assert_eq!(forward, pattern(&backward));
    let faults = forward.values().flatten().filter(|f| **f).count();
    assert!(
        (1..48).contains(&faults),
        "{faults} faults in 48 requests: {forward:?}"
    );
}

#[test]
fn random_plan_never_faults_one_request_more_than_the_cap_in_a_row() {
    let hub = FakeHub::start(
        HubConfig::new()
            .random_faults(
                RandomFaults::new(7, 1.0, [FaultAction::error(500, "always")])
                    .only("GET", "/users/*")
                    .max_in_a_row(2),
            )
            .users(users(1)),
    );
    let statuses: Vec<u16> = (0..9).map(|_| get(&hub, "/users/u00").status).collect();
    assert_eq!(statuses, [500, 500, 200].repeat(3));
    assert_eq!(get(&hub, "/users").status, 200, "outside the plan");
}

// ------------------------------------------------------------ down and back

#[test]
fn go_down_refusing_closes_the_port_and_open_connections_then_serves_again_on_the_same_port() {
    let hub = FakeHub::start(HubConfig::new());
    let mut kept = connect(&hub);
    send_raw(&mut kept, "GET", "/");
    assert!(read_answer(&mut kept).is_some());
    hub.go_down(DownMode::Refuse);
    assert!(closed_by_peer(&mut kept), "an open connection survived");
    let refused = TcpStream::connect(hub.addr());
    assert_eq!(
        refused.map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionRefused)
    );
    hub.come_back();
    assert!(hub.url().contains(&hub.addr().port().to_string()));
    assert_eq!(get(&hub, "/").status, 200);
}

#[test]
fn go_down_answering_502_answers_every_request_then_come_back_serves_again() {
    let hub = FakeHub::start(HubConfig::new().users(users(1)));
    hub.go_down(DownMode::Answer(502));
    let down = get(&hub, "/users");
    assert_eq!(down.status, 502);
    assert_eq!(down.header("Content-Type"), Some("text/html"));
    assert_eq!(delete(&hub, "/users/u00/server").status, 502);
    assert!(hub.deletes().is_empty(), "a request reached the downed hub");
    hub.come_back();
    assert_eq!(get(&hub, "/users").status, 200);
    assert_eq!(
        outcomes(&hub, "/users"),
        vec![Outcome::Down(502), Outcome::Answered(200)]
    );
}

#[test]
fn go_down_ends_requests_waiting_out_a_latency() {
    let hub = FakeHub::start(HubConfig::new().latency(Duration::from_secs(60)));
    let url = format!("{}/users", hub.url());
    let waiting = std::thread::spawn(move || call("GET", &url, None).map(|a| a.status));
    assert!(hub.wait_until(SAFETY, |s| s.in_flight == 1));
    hub.go_down(DownMode::Answer(503));
    assert_eq!(waiting.join().unwrap().ok(), Some(503));
    assert_eq!(outcomes(&hub, "/users"), vec![Outcome::Down(503)]);
}
