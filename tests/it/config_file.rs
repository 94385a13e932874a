//! The config file end to end: `--generate-config` prints a file the culler
//! takes back, settings come from the file unless a flag says otherwise, and
//! a key the culler does not know stops it at start, naming the key.

use crate::support::culler::Culler;
use crate::support::fake_hub::HubConfig;
use crate::support::scenario::*;

use super::policy_rules::config_file;

#[test]
fn the_generated_config_is_printed_and_taken_back() {
    let generated = Culler::new().arg("--generate-config").run();
    generated.assert_success();
    assert!(generated.stdout.contains("timeout = 600"), "{generated}");
    assert!(generated.stdout.contains("# [[rules]]"), "{generated}");
    let hub = start(
        HubConfig::new()
            .user(idle_user("idle"))
            .user(busy_user("busy")),
    );
    let (_dir, file) = config_file(&generated.stdout);
    let out = once(&hub).arg(format!("--config={}", file.display())).run();
    out.assert_success();
    // The defaults: a 600 s timeout stops the idle server only.
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]), "{out}");
}

#[test]
fn settings_come_from_the_file_and_flags_win() {
    let hub = start(HubConfig::new().user(idle_user("idle")));
    let (_dir, file) = config_file(&format!(
        "url = \"{}\"\ntimeout = 36000\ndry_run = true\n",
        hub.url()
    ));
    // From the file alone: a 10 h timeout, and a dry run anyway.
    let out = Culler::new()
        .env("JUPYTERHUB_API_TOKEN", TOKEN)
        .args(["--once".to_owned(), format!("--config={}", file.display())])
        .run();
    out.assert_success();
    assert!(out.stderr.contains("idle for 36000 s"), "{out}");
    assert!(hub.deletes().is_empty());
    // A flag wins over the file.
    let out = Culler::new()
        .env("JUPYTERHUB_API_TOKEN", TOKEN)
        .args([
            "--once".to_owned(),
            format!("--config={}", file.display()),
            TIMEOUT_1H.to_owned(),
            "--dry-run=false".to_owned(),
        ])
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub), pairs(&[("idle", "")]), "{out}");
}

#[test]
fn an_unknown_key_stops_the_culler_naming_the_key_and_the_file() {
    let (_dir, file) = config_file("timeout = 3600\ncull_admin_user = false\n");
    let out = Culler::against("http://127.0.0.1:1/hub/api", TOKEN)
        .args(["--once".to_owned(), format!("--config={}", file.display())])
        .run();
    assert_eq!(out.status.code(), Some(2), "{out}");
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("cull_admin_user") && errors[0].contains(&file.display().to_string()),
        "{out}"
    );
}

#[test]
fn a_python_config_file_is_still_refused() {
    let out = Culler::against("http://127.0.0.1:1/hub/api", TOKEN)
        .args(["--once", "--config=idle_culler_config.py"])
        .run();
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains("Python config files are not supported"),
        "{out}"
    );
}
