//! Settings from a config file, and how they layer with flags and the
//! environment.

use super::*;

/// A config file in a temporary directory, for one test.
fn config_file(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let (_dir, path) = config_file(
        "culler.toml",
        "url = \"http://from-file:8081/hub/api\"\ntimeout = 3600\ncull_every = 60\nconcurrency = 4\n",
    );
    let config = format!("--config={path}");
    let token = &[("JUPYTERHUB_API_TOKEN", "t")];
    let s = settings(&[&config, "--timeout=7200"], token).unwrap();
    assert_eq!(s.policy.timeout_secs, 7200, "the flag wins");
    assert_eq!(s.cull_every, Duration::from_secs(60), "the file fills in");
    assert_eq!(s.concurrency, 4);
    assert_eq!(s.hub.base_url, "http://from-file:8081/hub/api");
    let s = settings(&[&config], HUB).unwrap();
    assert_eq!(
        s.hub.base_url, "http://127.0.0.1:8081/hub/api",
        "env wins over the file"
    );
    let s = settings(&[&config, "--url=http://flag/hub/api"], HUB).unwrap();
    assert_eq!(
        s.hub.base_url, "http://flag/hub/api",
        "the flag wins over env"
    );
}

#[test]
fn the_generated_config_means_the_defaults() {
    let (_dir, path) = config_file("culler.toml", &crate::config::generate());
    let from_file = settings(&[&format!("--config={path}")], HUB).unwrap();
    let defaults = settings(&[], HUB).unwrap();
    assert_eq!(from_file.policy, defaults.policy);
    assert_eq!(from_file.cull_every, defaults.cull_every);
    assert_eq!(from_file.concurrency, defaults.concurrency);
    assert_eq!(from_file.retry, defaults.retry);
    assert_eq!(from_file.api_page_size, defaults.api_page_size);
    assert_eq!(from_file.metrics, defaults.metrics);
    assert_eq!(from_file.health_failures, defaults.health_failures);
    assert_eq!(from_file.log_level, defaults.log_level);
    assert_eq!(from_file.stop_timeout, defaults.stop_timeout);
    assert_eq!(
        (from_file.dry_run, from_file.log_format),
        (defaults.dry_run, defaults.log_format)
    );
}

#[test]
fn config_files_that_cannot_be_used_are_named_with_the_problem() {
    let (_dir, path) = config_file("culler.toml", "timeout = 600\ncull_evry = 60\n");
    let err = settings(&[&format!("--config={path}")], HUB).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path) && text.contains("cull_evry"), "{text}");
    let missing = settings(&["--config=/nonexistent/culler.toml"], HUB).unwrap_err();
    assert!(missing.to_string().contains("cannot read it"), "{missing}");
    let (_dir, json) = config_file("culler.json", r#"{"timeout": 60, "bogus": 1}"#);
    let err = settings(&[&format!("--config={json}")], HUB).unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
    let (_dir, json) = config_file("culler.json", r#"{"timeout": 60, "cull_users": true}"#);
    let s = settings(&[&format!("--config={json}")], HUB).unwrap();
    assert!(s.policy.cull_users && s.policy.timeout_secs == 60);
}

#[test]
fn rules_come_from_the_file() {
    let (_dir, path) = config_file(
        "culler.toml",
        "[[rules]]\ngroup = \"instructors\"\nnever = true\n",
    );
    let s = settings(&[&format!("--config={path}")], HUB).unwrap();
    assert_eq!(s.policy.rules.len(), 1);
    assert!(s.policy.rules[0].never);
}

#[test]
fn user_limits_default_to_the_server_limits() {
    let s = settings(&["--timeout=3600", "--max-age=86400"], HUB).unwrap();
    assert_eq!(s.policy.user_timeout_secs, 3600);
    assert_eq!(s.policy.user_max_age_secs, Some(86400));
    let s = settings(
        &[
            "--timeout=3600",
            "--max-age=86400",
            "--cull-users-timeout=259200",
            "--cull-users-max-age=0",
        ],
        HUB,
    )
    .unwrap();
    assert_eq!(s.policy.user_timeout_secs, 259_200);
    assert_eq!(s.policy.user_max_age_secs, None);
}
