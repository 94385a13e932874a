use super::deliver::{origin, Secret};
use super::event::{Event, EventKind, CULLER};
use crate::decision::{Action, Because, DecidedBy, Decision, Elapsed, Reason, Signal, Warning};
use chrono::{TimeZone, Utc};

fn kept<'a>() -> Decision<'a> {
    Decision {
        user: "ada",
        server: Some(""),
        action: Action::Keep,
        reason: Reason::Active,
        idle: Some(Elapsed(3000)),
        age: Some(Elapsed(7200)),
        decided_by: Some(DecidedBy::Flags),
        signal: Signal::Hub,
        warn: Some(Warning {
            deadline: Utc.with_ymd_and_hms(2026, 12, 3, 10, 10, 0).unwrap(),
            because: Because::Idle,
        }),
    }
}

#[test]
fn a_warning_event_has_every_documented_field_and_its_deadline() {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
    let event = Event::of(EventKind::Warn, &kept(), now);
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "event": "warn",
            "user": "ada",
            "server": "",
            "reason": "idle",
            "idle_seconds": 3000,
            "age_seconds": 7200,
            "deadline": "2026-12-03T10:10:00Z",
            "seconds_left": 600,
            "rule": "flags",
            "detail": null,
            "time": "2026-12-03T10:00:00Z",
            "culler": CULLER,
        })
    );
    assert!(CULLER.starts_with("jupyterhub-idle-culler-rs "), "{CULLER}");
}

#[test]
fn only_a_warning_carries_a_deadline_and_other_events_say_the_decisions_reason() {
    let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
    let culled = Decision {
        action: Action::Stop,
        reason: Reason::MaxAge,
        warn: None,
        server: None,
        ..kept()
    };
    let event = Event::of(EventKind::Culled, &culled, now).with_detail("gone");
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["event"], "culled");
    assert_eq!(json["reason"], "max-age");
    assert_eq!(json["server"], serde_json::Value::Null);
    assert_eq!(json["deadline"], serde_json::Value::Null);
    assert_eq!(json["seconds_left"], serde_json::Value::Null);
    assert_eq!(json["detail"], "gone");
    // A decision that carries a warning still says its own reason in
    // another kind of event.
    let other = Event::of(EventKind::Stuck, &kept(), now);
    assert_eq!(other.reason, "active");
    assert_eq!(other.deadline, None);
}

#[test]
fn event_kinds_are_named_as_the_readme_says() {
    let names: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        ["warn", "culled", "user_deleted", "stop_failed", "stuck"]
    );
    for kind in EventKind::ALL {
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::Value::String(kind.as_str().to_owned())
        );
    }
}

#[test]
fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
    // RFC 4231, test case 2: key "Jefe".
    let secret = Secret::new("Jefe");
    assert_eq!(
        secret.sign(b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_ne!(secret.sign(b"a"), secret.sign(b"b"));
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
}

#[test]
fn a_receivers_origin_never_shows_its_path_or_credentials() {
    assert_eq!(
        origin("https://hooks.example.com/services/T000/B000/XXXX"),
        "https://hooks.example.com"
    );
    assert_eq!(
        origin("http://user:pass@127.0.0.1:8000/events"),
        "http://127.0.0.1:8000"
    );
    assert_eq!(origin("not a url"), "the --notify-url");
}
