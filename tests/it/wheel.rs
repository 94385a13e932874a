//! The Python wheel, installed the way operators install it: `scripts/test`
//! builds it (`scripts/wheel`, maturin) and installs it into a fresh
//! virtual environment together with JupyterHub and the newest Python
//! culler, `jupyterhub-idle-culler==2.0.0` (the zero-to-jupyterhub 4.4.0
//! hub image ships 1.4.0, which takes the same flags). These tests then use that environment as a hub operator would: the
//! hub's `c.JupyterHub.services` names the installed command, and the two
//! cullers' commands must not get in each other's way.
//!
//! The wheel is manylinux2014 (`scripts/wheel` links with zig against glibc
//! 2.17), and these tests read its tag and its binary's needs; the sdist
//! `scripts/wheel` also builds is compiled by `pip install` into a second
//! fresh environment (`scripts/test` does that before the tests run), whose
//! command must then cull.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::fake_hub::HubConfig;
use crate::support::real_hub::{HubOptions, RealHub};
use crate::support::scenario::{idle_users, once, start, stopped, TIMEOUT_1H};

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

/// The manylinux platform tags the wheel must carry: glibc 2.17, in the
/// PEP 600 spelling and the older PEP 599 alias pip also knows.
fn manylinux2014_tags() -> [String; 2] {
    let arch = std::env::consts::ARCH;
    [
        format!("manylinux2014_{arch}"),
        format!("manylinux_2_17_{arch}"),
    ]
}

/// The file name `scripts/wheel` gives the wheel, which the README names.
fn wheel_file_name() -> String {
    let [old, new] = manylinux2014_tags();
    format!(
        "jupyterhub_idle_culler_rs-{}-py3-none-{old}.{new}.whl",
        env!("CARGO_PKG_VERSION")
    )
}

/// The wheel's files, unpacked with the environment's Python (its
/// `zipfile`, as pip reads a wheel) into a temporary directory.
fn unpacked_wheel() -> tempfile::TempDir {
    let wheel = from_env("CULLER_WHEEL");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = run(
        &env_bin().join("python"),
        &[
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
            wheel.to_str().expect("a UTF-8 wheel path"),
            dir.path().to_str().expect("a UTF-8 temporary path"),
        ],
    );
    assert!(
        out.status.success(),
        "cannot unpack the wheel: {}",
        text(&out.stderr)
    );
    dir
}

/// The `Tag:` lines of a dist-info `WHEEL` file.
fn wheel_tags(wheel_metadata: &str) -> Vec<String> {
    let mut tags: Vec<String> = wheel_metadata
        .lines()
        .filter_map(|line| line.strip_prefix("Tag:"))
        .map(|tag| tag.trim().to_string())
        .collect();
    tags.sort();
    tags
}

/// The wheel's name and its own metadata both say manylinux2014 (glibc
/// 2.17), so pip installs it on Debian 9+, Ubuntu 18.04+ and RHEL 7+; and
/// the README names that very file.
#[test]
#[ignore = "needs the wheel: run scripts/test (CULLER_WHEEL, CULLER_WHEEL_ENV)"]
fn the_wheel_is_tagged_manylinux2014_in_its_name_and_metadata() {
    let wheel = from_env("CULLER_WHEEL");
    let name = wheel
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name");
    assert_eq!(
        name,
        wheel_file_name(),
        "scripts/wheel built {}",
        wheel.display()
    );

    // {distribution}-{version}-{python}-{abi}-{platform[.platform]}.whl
    let stem = name.strip_suffix(".whl").expect("a .whl file");
    let parts: Vec<&str> = stem.split('-').collect();
    assert_eq!(parts.len(), 5, "not a wheel name: {name}");
    let mut expected: Vec<String> = parts[4]
        .split('.')
        .map(|platform| format!("{}-{}-{platform}", parts[2], parts[3]))
        .collect();
    expected.sort();
    let mut manylinux: Vec<String> = manylinux2014_tags()
        .iter()
        .map(|platform| format!("py3-none-{platform}"))
        .collect();
    manylinux.sort();
    assert_eq!(expected, manylinux, "the name's tags");

    let unpacked = unpacked_wheel();
    let metadata = unpacked
        .path()
        .join(format!(
            "jupyterhub_idle_culler_rs-{}.dist-info",
            env!("CARGO_PKG_VERSION")
        ))
        .join("WHEEL");
    let metadata = std::fs::read_to_string(&metadata)
        .unwrap_or_else(|e| panic!("the wheel has no {}: {e}", metadata.display()));
    assert_eq!(
        wheel_tags(&metadata),
        manylinux,
        "the WHEEL file:\n{metadata}"
    );

    // Every wheel file name in the README is this one.
    let readme = include_str!("../../README.md");
    let named: Vec<&str> = readme
        .split(|c: char| c.is_whitespace() || "`()[]".contains(c))
        .filter_map(|word| word.rsplit('/').next())
        .filter(|word| word.starts_with("jupyterhub_idle_culler_rs-") && word.ends_with(".whl"))
        .collect();
    assert!(!named.is_empty(), "the README names no wheel file");
    for file in named {
        assert_eq!(
            file, name,
            "the README names a wheel scripts/wheel does not build"
        );
    }
}

/// The glibc symbol versions an ELF file needs (its `.gnu.version_r`
/// entries), read by binutils' `readelf`, as `[major, minor, patch]`.
fn glibc_versions_needed(elf: &Path) -> Vec<Vec<u32>> {
    let out = Command::new("readelf")
        .args(["--version-info", "--wide"])
        .arg(elf)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run readelf ({e}): this test needs GNU binutils (apt-get install binutils)"
            )
        });
    assert!(
        out.status.success(),
        "readelf {}: {}\n{}",
        elf.display(),
        out.status,
        text(&out.stderr)
    );
    let listing = text(&out.stdout);
    let mut in_needs = false;
    let mut versions = Vec::new();
    for line in listing.lines() {
        if line.contains(" section '") {
            in_needs = line.starts_with("Version needs section");
            continue;
        }
        if !in_needs {
            continue;
        }
        let Some((_, rest)) = line.split_once("Name: GLIBC_") else {
            continue;
        };
        let version = rest.split_whitespace().next().unwrap_or_default();
        let parts: Vec<u32> = version
            .split('.')
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| panic!("odd version GLIBC_{version} in:\n{listing}"))
            })
            .collect();
        versions.push(parts);
    }
    versions.sort();
    versions.dedup();
    versions
}

/// The binary the wheel carries links no glibc symbol newer than 2.17, so
/// the manylinux2014 tag tells the truth: it runs where pip installs it.
#[test]
#[ignore = "needs the wheel: run scripts/test (CULLER_WHEEL, CULLER_WHEEL_ENV)"]
fn the_wheels_binary_needs_glibc_2_17_at_most() {
    let unpacked = unpacked_wheel();
    let binary = unpacked
        .path()
        .join(format!(
            "jupyterhub_idle_culler_rs-{}.data",
            env!("CARGO_PKG_VERSION")
        ))
        .join("scripts")
        .join(COMMAND);
    assert!(binary.is_file(), "the wheel has no {}", binary.display());
    let needed = glibc_versions_needed(&binary);
    // A dynamically linked Rust binary needs at least GLIBC_2.2.5 (x86_64's
    // first): none found means the listing was not read, not a pass.
    assert!(
        !needed.is_empty(),
        "no GLIBC_ version needs found in {}",
        binary.display()
    );
    let show = |v: &Vec<u32>| {
        let parts: Vec<String> = v.iter().map(u32::to_string).collect();
        format!("GLIBC_{}", parts.join("."))
    };
    let highest = needed.last().expect("not empty");
    assert!(
        highest.as_slice() <= [2, 17].as_slice(),
        "the wheel's binary needs {} (manylinux2014 allows GLIBC_2.17 at most); all: {:?}",
        show(highest),
        needed.iter().map(show).collect::<Vec<_>>()
    );
    eprintln!("the wheel's binary needs {} at most", show(highest));
}

/// `pip install` of the sdist (what an arm64 host does) compiled the
/// culler from the sdist's own sources, and the command it installed culls.
/// `scripts/test` ran that install in a fresh environment before the tests
/// (CULLER_SDIST_ENV, log in CULLER_SDIST_LOG).
#[test]
#[ignore = "needs the sdist compiled by pip: run scripts/test (CULLER_SDIST, CULLER_SDIST_ENV, CULLER_SDIST_LOG)"]
fn the_sdist_compiles_with_pip_into_a_command_that_culls() {
    let version = env!("CARGO_PKG_VERSION");
    let sdist = from_env("CULLER_SDIST");
    assert_eq!(
        sdist.file_name().and_then(|n| n.to_str()),
        Some(format!("jupyterhub_idle_culler_rs-{version}.tar.gz").as_str())
    );
    let env = from_env("CULLER_SDIST_ENV").join("bin");
    let log = std::fs::read_to_string(from_env("CULLER_SDIST_LOG")).expect("read the pip log");

    // Cargo compiled this crate, from the unpacked sdist, not the checkout.
    let compiled = format!("Compiling {COMMAND} v{version} (");
    let from = log
        .lines()
        .find_map(|line| {
            line.split_once(&compiled)
                .map(|(_, rest)| rest.trim_end_matches(')'))
        })
        .unwrap_or_else(|| panic!("pip did not compile the culler:\n{log}"));
    assert_ne!(
        Path::new(from),
        Path::new(env!("CARGO_MANIFEST_DIR")),
        "compiled from the checkout, not the sdist"
    );

    // What pip recorded: installed from that file, as a wheel built here
    // (not the manylinux one).
    let script = format!(
        "import importlib.metadata as m\nd = m.distribution({DISTRIBUTION:?})\nprint(d.read_text('direct_url.json'))\nprint(d.read_text('WHEEL'))"
    );
    let out = run(&env.join("python"), &["-c", &script]);
    assert!(out.status.success(), "python: {}", text(&out.stderr));
    let record = text(&out.stdout);
    let (direct_url, wheel_metadata) = record.split_once('\n').expect("two records");
    let direct_url: serde_json::Value = serde_json::from_str(direct_url)
        .unwrap_or_else(|e| panic!("direct_url.json: {e}\n{record}"));
    let sdist_url = format!(
        "file://{}",
        sdist.canonicalize().expect("the sdist's path").display()
    );
    assert_eq!(direct_url["url"], sdist_url.as_str(), "{record}");
    let tags = wheel_tags(wheel_metadata);
    assert!(
        !tags.is_empty() && tags.iter().all(|tag| !tag.contains("manylinux")),
        "not a wheel built from the sdist: {tags:?}"
    );

    // The command is there, says who it is, and culls.
    let command = env.join(COMMAND);
    let out = run(&command, &["--version"]);
    assert!(out.status.success(), "{COMMAND} --version: {}", out.status);
    assert_eq!(text(&out.stdout), format!("{COMMAND} {version}\n"));
    let hub = start(HubConfig::new().users(idle_users(2)));
    let out = once(&hub)
        .program(command.to_str().expect("a UTF-8 path"))
        .arg(TIMEOUT_1H)
        .run();
    out.assert_success();
    assert_eq!(stopped(&hub).len(), 2, "{out}");
}
