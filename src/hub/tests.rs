use super::*;

#[test]
fn path_segments_are_percent_encoded() {
    assert_eq!(path_segment("alice"), "alice");
    assert_eq!(path_segment("carol@example.org"), "carol%40example.org");
    assert_eq!(path_segment("a b+c/d"), "a%20b%2Bc%2Fd");
    assert_eq!(path_segment("ünï"), "%C3%BCn%C3%AF");
    assert_eq!(path_segment("x-y_z.~"), "x-y_z.~");
}

#[test]
fn forbidden_names_the_scopes_or_the_token() {
    let scope = status_error(
        "GET u".into(),
        StatusCode::FORBIDDEN,
        br#"{"status": 403, "message": "Action is not authorized with current scopes; requires any of [list:users]"}"#,
        None,
        None,
    );
    let text = scope.to_string();
    assert!(text.contains("requires any of [list:users]"), "{text}");
    assert!(text.contains("read:servers"), "{text}");
    let token = status_error(
        "GET u".into(),
        StatusCode::FORBIDDEN,
        br#"{"status": 403, "message": "Missing or invalid credentials."}"#,
        None,
        None,
    );
    assert!(token.to_string().contains("JUPYTERHUB_API_TOKEN"));
}

#[test]
fn other_statuses_keep_the_message_or_the_body() {
    let json = status_error(
        "DELETE u".into(),
        StatusCode::BAD_REQUEST,
        br#"{"message": "still stopping"}"#,
        None,
        None,
    );
    assert_eq!(json.status(), Some(400));
    assert!(json.to_string().contains("still stopping"));
    let html = status_error(
        "GET u".into(),
        StatusCode::BAD_GATEWAY,
        b"<html>bad gateway</html>",
        None,
        None,
    );
    assert!(html.to_string().contains("<html>bad gateway"));
    let empty = status_error(
        "GET u".into(),
        StatusCode::INTERNAL_SERVER_ERROR,
        b"",
        None,
        None,
    );
    assert!(empty.to_string().contains("Internal Server Error"));
}

#[test]
fn redirects_say_where_and_what_url_to_give() {
    let moved = status_error(
        "GET http://hub:8081/users".into(),
        StatusCode::FOUND,
        b"",
        Some("/hub/users"),
        None,
    );
    let text = moved.to_string();
    assert!(text.contains("redirected to /hub/users"), "{text}");
    assert!(text.contains("/hub/api"), "{text}");
}

#[test]
fn failures_without_an_answer_are_told_apart() {
    use awc::error::{ConnectError, SendRequestError};
    use std::io::{Error, ErrorKind};
    let second = Duration::from_secs(3);
    let io = |text: &str| {
        SendRequestError::Connect(ConnectError::Io(Error::new(ErrorKind::InvalidData, text)))
    };
    assert_eq!(
        send_error("GET u".into(), second, SendRequestError::Timeout),
        HubError::Timeout {
            request: "GET u".into(),
            seconds: 3
        }
    );
    assert!(matches!(
        send_error(
            "GET u".into(),
            second,
            SendRequestError::Connect(ConnectError::Timeout)
        ),
        HubError::Timeout { .. }
    ));
    let untrusted = send_error(
        "GET u".into(),
        second,
        io("invalid peer certificate: UnknownIssuer"),
    );
    assert!(
        matches!(untrusted, HubError::Untrusted { .. }),
        "{untrusted}"
    );
    assert!(!untrusted.is_transient());
    let refused = send_error("GET u".into(), second, io("Connection refused"));
    assert!(matches!(refused, HubError::Unreachable { .. }), "{refused}");
    assert!(refused.is_transient());
}

#[test]
fn stop_statuses_read_exactly() {
    assert_eq!(
        read_stop(StatusCode::NO_CONTENT),
        Some(StopOutcome::Stopped)
    );
    assert_eq!(read_stop(StatusCode::OK), Some(StopOutcome::Stopped));
    assert_eq!(
        read_stop(StatusCode::ACCEPTED),
        Some(StopOutcome::StillStopping)
    );
    assert_eq!(read_stop(StatusCode::NOT_FOUND), Some(StopOutcome::Gone));
    for failure in [400, 401, 403, 405, 429, 500, 502, 503] {
        let status = StatusCode::from_u16(failure).unwrap();
        assert_eq!(read_stop(status), None, "{failure}");
    }
}

#[test]
fn delete_statuses_read_exactly() {
    let busy = br#"{"status": 400, "message": "carol's server is in the process of stopping, please wait."}"#;
    assert_eq!(
        read_delete(StatusCode::NO_CONTENT, b""),
        Some(DeleteOutcome::Deleted)
    );
    assert_eq!(
        read_delete(StatusCode::NOT_FOUND, b""),
        Some(DeleteOutcome::Gone)
    );
    assert_eq!(
        read_delete(StatusCode::BAD_REQUEST, busy),
        Some(DeleteOutcome::Busy {
            message: "carol's server is in the process of stopping, please wait.".into()
        })
    );
    for failure in [401, 403, 409, 500, 503] {
        let status = StatusCode::from_u16(failure).unwrap();
        assert_eq!(read_delete(status, b""), None, "{failure}");
    }
    // A 400 that is not about a server stopping is a failure: it would
    // answer the same on every pass.
    for other in [
        br#"{"status": 400, "message": "Cannot delete yourself!"}"#.as_slice(),
        b"",
        b"<html>Bad Request</html>",
    ] {
        assert_eq!(
            read_delete(StatusCode::BAD_REQUEST, other),
            None,
            "{}",
            String::from_utf8_lossy(other)
        );
    }
}

#[test]
fn retry_after_in_seconds_is_read_and_dates_are_left_to_the_backoff() {
    assert_eq!(retry_after_secs(" 7 "), Some(Duration::from_secs(7)));
    assert_eq!(retry_after_secs("Wed, 21 Oct 2026 07:28:00 GMT"), None);
    let limited = status_error(
        "GET u".into(),
        StatusCode::TOO_MANY_REQUESTS,
        b"",
        None,
        Some(Duration::from_secs(7)),
    );
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
    assert!(limited.is_transient());
}

#[test]
fn token_is_never_in_debug_output() {
    let token = ApiToken::new("s3cret".into());
    assert_eq!(format!("{token:?}"), "ApiToken(<redacted>)");
}
