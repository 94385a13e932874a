//! The options of warnings, events and stuck servers.

use super::*;

fn secret() -> Vec<(&'static str, &'static str)> {
    let mut env = HUB.to_vec();
    env.push(("JUPYTERHUB_IDLE_CULLER_NOTIFY_SECRET", "s3cret"));
    env
}

#[test]
fn nothing_is_notified_and_stuck_servers_are_watched_by_default() {
    let s = settings(&[], HUB).unwrap();
    assert!(s.notify.is_none());
    assert_eq!(s.policy.warn_before_secs, None);
    assert_eq!(s.policy.stuck_after_secs, Some(1800));
    assert!(!s.policy.cull_stuck_spawns);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_notify_url_takes_its_timeout_retries_and_the_secret_from_the_environment() {
    let s = settings(
        &[
            "--notify-url=http://127.0.0.1:8000/events",
            "--notify-timeout=2.5",
            "--notify-retries=4",
            "--warn-before=300",
        ],
        &secret(),
    )
    .unwrap();
    let notify = s.notify.expect("events go somewhere");
    let receivers = &notify.receivers;
    assert_eq!(
        receivers.url.as_deref(),
        Some("http://127.0.0.1:8000/events")
    );
    assert_eq!(receivers.command, None);
    assert_eq!(receivers.timeout, Duration::from_millis(2500));
    assert_eq!(receivers.retries, 4);
    assert_eq!(
        receivers.secret.as_ref().map(|k| k.sign(b"x")),
        Some(crate::notify::Secret::new("s3cret").sign(b"x"))
    );
    assert_eq!(notify.secret.as_deref(), Some("s3cret"));
    assert!(notify.tls.is_none());
    assert_eq!(s.policy.warn_before_secs, Some(300));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_command_alone_needs_no_secret_and_no_url() {
    let s = settings(&["--notify-command=logger -t culler"], HUB).unwrap();
    let notify = s.notify.unwrap();
    assert_eq!(
        notify.receivers.command.as_deref(),
        Some("logger -t culler")
    );
    assert_eq!(notify.receivers.url, None);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn what_is_accepted_but_probably_not_meant_is_a_warning() {
    // An unsigned URL.
    let s = settings(&["--notify-url=http://127.0.0.1:8000/"], HUB).unwrap();
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("not signed"), "{:?}", s.warnings);
    // Warnings with nowhere to send them.
    let s = settings(&["--warn-before=60"], HUB).unwrap();
    assert!(s.notify.is_none());
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("only logged"), "{:?}", s.warnings);
    // A secret with nowhere to send events.
    let s = settings(&[], &secret()).unwrap();
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("ignored"), "{:?}", s.warnings);
    // Warning as soon as a server is idle.
    let s = settings(&["--warn-before=600", "--notify-command=true"], HUB).unwrap();
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].contains("as soon as they are idle"),
        "{:?}",
        s.warnings
    );
    let s = settings(&["--warn-before=599", "--notify-command=true"], HUB).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn bad_values_name_their_flag() {
    let bad = |args: &[&str]| settings(args, HUB).unwrap_err().to_string();
    assert!(bad(&["--notify-url=ftp://x/"]).contains("ftp://x/"));
    assert!(bad(&["--notify-url=http://x/", "--notify-timeout=0"]).contains("--notify-timeout"));
    assert!(bad(&["--notify-url=http://x/", "--notify-retries=21"]).contains("--notify-retries"));
    assert!(bad(&["--warn-before=soon"]).contains("--warn-before"));
    assert!(bad(&["--stuck-after=-1"]).contains("--stuck-after"));
    assert!(bad(&["--cull-stuck-spawns=maybe"]).contains("--cull-stuck-spawns"));
}

#[test]
fn stuck_after_0_watches_nothing_and_cull_stuck_spawns_is_a_switch() {
    let s = settings(&["--stuck-after=0", "--cull-stuck-spawns"], HUB).unwrap();
    assert_eq!(s.policy.stuck_after_secs, None);
    assert!(s.policy.cull_stuck_spawns);
    let s = settings(&["--stuck-after=60"], HUB).unwrap();
    assert_eq!(s.policy.stuck_after_secs, Some(60));
}

#[test]
fn an_https_receiver_is_checked_with_the_system_roots() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.pem");
    let mut env = HUB.to_vec();
    let missing = missing.to_string_lossy().into_owned();
    env.push(("SSL_CERT_FILE", missing.as_str()));
    let err = settings(&["--notify-url=https://hooks.example.com/x"], &env).unwrap_err();
    assert!(matches!(err, SettingsError::SystemRoots(_)), "{err}");
}
