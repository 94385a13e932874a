//! The Python wheel, installed the way operators install it: `scripts/test`
//! builds it (`scripts/wheel`, maturin) and installs it into a fresh
//! virtual environment together with JupyterHub and the Python culler
//! `jupyterhub-idle-culler==2.0.0`, as the zero-to-jupyterhub hub image has
//! it. These tests then use that environment as a hub operator would: the
//! hub's `c.JupyterHub.services` names the installed command, and the two
//! cullers' commands must not get in each other's way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::real_hub::{HubOptions, RealHub};

/// The command the wheel installs (and the Cargo binary's name).
const COMMAND: &str = "jupyterhub-idle-culler-rs";
/// The distribution name of the wheel on PyPI's terms.
const DISTRIBUTION: &str = "jupyterhub-idle-culler-rs";
/// The Python culler's distribution, and the console scripts it installs.
const UPSTREAM: &str = "jupyterhub-idle-culler";
const UPSTREAM_SCRIPTS: [&str; 2] = ["jupyterhub-idle-culler", "cull_idle_servers.py"];

/// A variable `scripts/test` sets, or a panic saying so (the tests are
/// ignored outside it, so reaching this without it is a set-up mistake).
fn from_env(name: &str) -> PathBuf {
    std::env::var_os(name).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{name} is not set: run these tests with scripts/test, which builds the wheel and its environment")
    })
}

/// The environment's `bin/` (`CULLER_WHEEL_ENV`).
fn env_bin() -> PathBuf {
    from_env("CULLER_WHEEL_ENV").join("bin")
}

/// Runs a program to its end; panics with its output when it cannot start.
fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("PYTHONPATH")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `pip` of the environment, which must succeed.
fn pip(args: &[&str]) {
    let python = env_bin().join("python");
    let mut all = vec!["-m", "pip", "--disable-pip-version-check", "--no-input"];
    all.extend_from_slice(args);
    let out = run(&python, &all);
    assert!(
        out.status.success(),
        "pip {args:?} failed: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The installed version of a distribution, or `None` when not installed.
fn installed_version(distribution: &str) -> Option<String> {
    let python = env_bin().join("python");
    let script = format!(
        "import importlib.metadata as m\ntry:\n    print(m.version({distribution:?}))\nexcept m.PackageNotFoundError:\n    pass"
    );
    let out = run(&python, &["-c", &script]);
    assert!(out.status.success(), "python: {}", text(&out.stderr));
    let version = text(&out.stdout).trim().to_string();
    (!version.is_empty()).then_some(version)
}

/// Asserts our command runs from the environment and says who it is.
#[track_caller]
fn assert_ours_runs() {
    let out = run(&env_bin().join(COMMAND), &["--version"]);
    assert!(out.status.success(), "{COMMAND} --version: {}", out.status);
    assert_eq!(
        text(&out.stdout),
        format!("{COMMAND} {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Asserts the Python culler's command runs from the environment and is
/// the Python one (a script for the environment's Python, its own help).
#[track_caller]
fn assert_upstream_runs() {
    let script = env_bin().join(UPSTREAM_SCRIPTS[0]);
    let head = std::fs::read(&script)
        .unwrap_or_else(|e| panic!("upstream's {} is gone: {e}", script.display()));
    assert!(
        head.starts_with(b"#!") && text(&head[..head.len().min(200)]).contains("python"),
        "{} is not the Python culler's script any more",
        script.display()
    );
    let out = run(&script, &["--help"]);
    assert!(
        out.status.success(),
        "{} --help: {}\n{}",
        script.display(),
        out.status,
        text(&out.stderr)
    );
    // Upstream's traitlets help names its configurable class.
    assert!(
        text(&out.stdout).contains("IdleCuller"),
        "not upstream's help:\n{}",
        text(&out.stdout)
    );
}

/// The whole operator's path: the wheel's command, found by name on the
/// hub's `PATH`, culls an idle server as a hub-managed service, in an
/// environment that also holds the Python culler; then uninstalling either
/// leaves the other working.
#[test]
#[ignore = "needs the wheel and its environment: run scripts/test (CULLER_WHEEL, CULLER_WHEEL_ENV)"]
fn the_wheels_command_culls_as_a_managed_service_beside_the_python_culler() {
    let t0 = Instant::now();
    let bin = env_bin();
    let wheel = from_env("CULLER_WHEEL");

    // What is installed, by name.
    assert_eq!(
        installed_version(DISTRIBUTION).as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(installed_version(UPSTREAM).as_deref(), Some("2.0.0"));
    assert_ours_runs();
    assert_upstream_runs();
    // The wheel carries exactly the release build the release-binary tests
    // run (CULLER_RELEASE_BIN), so those tests test what pip installs.
    let release = from_env("CULLER_RELEASE_BIN");
    assert!(
        std::fs::read(bin.join(COMMAND)).expect("read the installed command")
            == std::fs::read(&release).expect("read the release binary"),
        "the wheel's binary differs from {}",
        release.display()
    );

    // The hub from that environment runs the culler by its command name,
    // as the README's recipes write it.
    let timeout = Duration::from_secs(3);
    let hub = RealHub::start(HubOptions {
        python_bin: Some(bin.clone()),
        managed_culler_program: Some(COMMAND.to_string()),
        managed_culler_args: Some(vec!["--timeout=3".into(), "--cull-every=1".into()]),
        ..HubOptions::default()
    });
    hub.await_managed_cull_of_idle_beside_busy(timeout + Duration::from_secs(60));
    assert!(
        hub.has_server("busy", ""),
        "the active server was culled\nculler log:\n{}",
        hub.managed_culler_log()
    );
    // It was our culler that stopped it (the hub logs what its services
    // write; the Python culler logs differently).
    let log = hub.managed_culler_log();
    assert!(
        log.contains("Culling server idle ") && !log.contains("Culling server busy "),
        "the culler's lines in the hub log:\n{log}\nhub log tail:\n{}",
        hub.log_tail(40)
    );
    drop(hub);

    // Uninstalling ours leaves upstream's script alone...
    pip(&["uninstall", "--yes", DISTRIBUTION]);
    assert!(!bin.join(COMMAND).exists(), "uninstall left {COMMAND}");
    assert_upstream_runs();
    // ...and installing it again (offline, from the file) changes nothing of it.
    let wheel = wheel.to_str().expect("a UTF-8 wheel path");
    pip(&["install", "--no-index", "--no-deps", wheel]);
    assert_ours_runs();
    assert_upstream_runs();
    // Uninstalling upstream leaves ours alone.
    pip(&["uninstall", "--yes", UPSTREAM]);
    for script in UPSTREAM_SCRIPTS {
        assert!(!bin.join(script).exists(), "uninstall left {script}");
    }
    assert_ours_runs();
    eprintln!(
        "the_wheels_command_culls_as_a_managed_service_beside_the_python_culler took {:?}",
        t0.elapsed()
    );
}
