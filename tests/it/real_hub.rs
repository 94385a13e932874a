//! End-to-end tests against a real JupyterHub (see `support::real_hub`).
//!
//! They need JupyterHub, jupyter-server and configurable-http-proxy, so they
//! are ignored by default; `scripts/test` installs those and runs them with
//! `--include-ignored`. Idleness is real time: servers are started, the test
//! waits until the hub's own timestamps are older than a short `--timeout`,
//! then posts fresh activity for what must survive and runs the culler.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::dry_run::RECORD_KEYS;
use crate::support::culler::{Culler, CullerOutput, RunningCuller};
use crate::support::exposition::sample;
use crate::support::real_hub::{
    ExtraService, HubOptions, RealHub, SpawnerKind, CULLER_SCOPES, CULLER_SERVICE,
};

/// Idle timeout for the culler in these tests: short, but long enough that
/// servers given fresh activity cannot cross it during one culler pass.
const TIMEOUT_SECS: u64 = 3;
const TIMEOUT: Duration = Duration::from_secs(TIMEOUT_SECS);

fn timeout_flag() -> String {
    format!("--timeout={TIMEOUT_SECS}")
}

/// The names of a user's listed (active) servers, or `None` without user.
fn servers(hub: &RealHub, user: &str) -> Option<BTreeSet<String>> {
    hub.user(user).map(|u| server_names(&u))
}

fn server_names(user: &Value) -> BTreeSet<String> {
    user["servers"]
        .as_object()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Whether a process has ended (gone, or a zombie awaiting its parent).
fn process_ended(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Checks the harness itself without the culler: a hub starts, users with
/// awkward names are created, default and named servers spawn, activity is
/// recorded, and the culler's service token holds only the documented
/// scopes. When this fails, the other real-hub tests say nothing about the
/// culler.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn harness_drives_a_real_hub() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions {
        allow_named_servers: true,
        ..HubOptions::default()
    });
    let version = hub.api("GET", "/", None, &[200]);
    assert!(version["version"].is_string(), "{version}");

    let names = ["alice", "carol@example.org", "dave+test", "émile"];
    hub.create_users(&names);
    hub.make_admin("alice");
    assert_eq!(hub.user("alice").unwrap()["admin"], json!(true));
    for name in names {
        hub.start_server(name, "");
    }
    hub.start_server("carol@example.org", "nb-1");
    assert_eq!(servers(&hub, "carol@example.org"), Some(set(&["", "nb-1"])));

    let ready: BTreeSet<String> = hub
        .users(Some("ready"))
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ready, set(&names));

    let before = hub.user("dave+test").unwrap()["servers"][""]["last_activity"].clone();
    std::thread::sleep(Duration::from_millis(20));
    hub.post_activity("dave+test", &[""]);
    let after = hub.user("dave+test").unwrap()["servers"][""]["last_activity"].clone();
    assert_ne!(before, after, "activity was not recorded");

    hub.stop_server("carol@example.org", "nb-1");
    let carol = hub.user_with_stopped_servers("carol@example.org").unwrap();
    assert_eq!(carol["servers"]["nb-1"]["stopped"], json!(true), "{carol}");
    assert_eq!(servers(&hub, "carol@example.org"), Some(set(&[""])));
    assert!(hub.user("nobody").is_none());

    // The culler's token: can list users, cannot start servers or delete
    // users, and sees no `created` (only read:users would show it).
    let (status, body) = hub.request_as(hub.culler_token(), "GET", "/users?state=ready", None);
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    let first = &listed["items"][0];
    assert!(
        first.get("created").is_none(),
        "culler sees created: {first}"
    );
    assert!(
        first["servers"].is_object(),
        "culler cannot see servers: {first}"
    );
    let (status, body) = hub.request_as(
        hub.culler_token(),
        "POST",
        "/users/dave%2Btest/servers/x",
        None,
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = hub.request_as(hub.culler_token(), "DELETE", "/users/alice", None);
    assert_eq!(status, 403, "{body}");
    eprintln!("harness_drives_a_real_hub took {:?}", t0.elapsed());
}

/// (a) Idle default servers are stopped, active ones kept, users kept; a
/// bad token makes `--once` fail.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn idle_default_servers_are_culled_and_active_ones_kept() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions::default());
    let idle = ["idle-1", "idle-2", "carol@example.org"];
    let busy = ["busy-1", "busy+2"];
    let all: Vec<&str> = idle.iter().chain(&busy).copied().collect();
    hub.create_users(&all);
    for user in &all {
        hub.start_server(user, "");
    }
    hub.wait_until_idle(&all, TIMEOUT);
    for user in busy {
        hub.post_activity(user, &[""]);
    }

    let run = hub.cull_once(&[&timeout_flag()]);

    for user in idle {
        assert_eq!(
            servers(&hub, user),
            Some(set(&[])),
            "{user}'s idle server survived; culler log:\n{}",
            run.stderr
        );
    }
    for user in busy {
        assert_eq!(
            servers(&hub, user),
            Some(set(&[""])),
            "{user}'s active server was culled; culler log:\n{}",
            run.stderr
        );
    }

    hub.run_culler_with_token("not-a-valid-token", &[&timeout_flag()])
        .assert_failure();
    eprintln!(
        "idle_default_servers_are_culled_and_active_ones_kept took {:?} (culler pass {:?})",
        t0.elapsed(),
        run.elapsed
    );
}

/// (a) The same with the real single-user server: the culled server's
/// process really ends.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn idle_jupyter_server_is_culled() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions {
        spawner: SpawnerKind::JupyterServer,
        ..HubOptions::default()
    });
    hub.create_users(&["alice"]);
    hub.start_server("alice", "");
    let alice = hub.user("alice").unwrap();
    let pid = alice["servers"][""]["state"]["pid"]
        .as_u64()
        .unwrap_or_else(|| hub.fail(format!("no pid in the spawner state: {alice}")));
    assert!(!process_ended(pid), "jupyter-server {pid} is not running");

    hub.wait_until_idle(&["alice"], TIMEOUT);
    let run = hub.cull_once(&[&timeout_flag()]);

    assert_eq!(
        servers(&hub, "alice"),
        Some(set(&[])),
        "the idle jupyter-server survived; culler log:\n{}",
        run.stderr
    );
    hub.wait_for(
        "the culled jupyter-server process to end",
        Duration::from_secs(30),
        || process_ended(pid),
    );
    eprintln!("idle_jupyter_server_is_culled took {:?}", t0.elapsed());
}

/// Starts, for named-server tests: `nina` with an idle default server and
/// two idle named ones, `olga` with an active named one. Returns the hub
/// after the idle timeout has passed and `olga` has been active.
fn named_servers_hub() -> RealHub {
    let hub = RealHub::start(HubOptions {
        allow_named_servers: true,
        ..HubOptions::default()
    });
    hub.create_users(&["nina", "olga"]);
    hub.start_server("nina", "");
    hub.start_server("nina", "one");
    hub.start_server("nina", "two");
    hub.start_server("olga", "busy");
    hub.wait_until_idle(&["nina", "olga"], TIMEOUT);
    hub.post_activity("olga", &["busy"]);
    hub
}

/// (b) Without `--remove-named-servers` idle named servers are stopped but
/// stay defined (visible with `include_stopped_servers`).
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn idle_named_servers_are_stopped_and_kept() {
    let t0 = Instant::now();
    let hub = named_servers_hub();

    let run = hub.cull_once(&[&timeout_flag()]);

    let log = &run.stderr;
    assert_eq!(servers(&hub, "nina"), Some(set(&[])), "culler log:\n{log}");
    let nina = hub.user_with_stopped_servers("nina").unwrap();
    for name in ["one", "two"] {
        let server = &nina["servers"][name];
        assert_eq!(
            server["stopped"],
            json!(true),
            "named server {name} should be stopped but kept: {nina}\nculler log:\n{log}"
        );
    }
    assert_eq!(
        servers(&hub, "olga"),
        Some(set(&["busy"])),
        "culler log:\n{log}"
    );
    eprintln!(
        "idle_named_servers_are_stopped_and_kept took {:?}",
        t0.elapsed()
    );
}

/// (b) With `--remove-named-servers` idle named servers are deleted too.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn idle_named_servers_are_removed_with_remove_named_servers() {
    let t0 = Instant::now();
    let hub = named_servers_hub();

    let run = hub.cull_once(&[&timeout_flag(), "--remove-named-servers"]);

    let log = &run.stderr;
    assert_eq!(servers(&hub, "nina"), Some(set(&[])), "culler log:\n{log}");
    let nina = hub.user_with_stopped_servers("nina").unwrap();
    let left = server_names(&nina);
    assert!(
        !left.contains("one") && !left.contains("two"),
        "named servers should be removed: {nina}\nculler log:\n{log}"
    );
    assert_eq!(
        servers(&hub, "olga"),
        Some(set(&["busy"])),
        "culler log:\n{log}"
    );
    eprintln!(
        "idle_named_servers_are_removed_with_remove_named_servers took {:?}",
        t0.elapsed()
    );
}

/// (c) `--cull-users --cull-admin-users=false`: idle non-admin users go,
/// with or without a server, whatever their names need in a URL; idle
/// admins lose their servers but stay; active users stay.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn idle_users_are_deleted_but_admins_and_active_users_kept() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions {
        culler_may_delete_users: true,
        ..HubOptions::default()
    });
    let idle_with_server = ["carol@example.org", "frank"];
    let idle_without_server = ["dave+test", "never-started", "émile"];
    let admins = ["admin-with-server", "admin-without-server"];
    let busy_with_server = "busy";
    let busy_without_server = "busy+no-server";
    let mut all: Vec<&str> = Vec::new();
    all.extend(idle_with_server);
    all.extend(idle_without_server);
    all.extend(admins);
    all.extend([busy_with_server, busy_without_server]);
    hub.create_users(&all);
    for admin in admins {
        hub.make_admin(admin);
    }
    for user in idle_with_server
        .iter()
        .chain(&["admin-with-server", busy_with_server])
    {
        hub.start_server(user, "");
    }
    hub.wait_until_idle(&all, TIMEOUT);
    hub.post_activity(busy_with_server, &[""]);
    hub.post_activity(busy_without_server, &[]);

    let run = hub.cull_once(&[&timeout_flag(), "--cull-users", "--cull-admin-users=false"]);

    let log = &run.stderr;
    for user in idle_with_server.iter().chain(&idle_without_server) {
        assert!(
            hub.user(user).is_none(),
            "idle user {user:?} was not deleted; culler log:\n{log}"
        );
    }
    assert_eq!(
        servers(&hub, "admin-with-server"),
        Some(set(&[])),
        "the idle admin's server should be stopped, the admin kept; culler log:\n{log}"
    );
    assert_eq!(
        servers(&hub, "admin-without-server"),
        Some(set(&[])),
        "the idle admin without server should be kept; culler log:\n{log}"
    );
    assert_eq!(
        servers(&hub, busy_with_server),
        Some(set(&[""])),
        "culler log:\n{log}"
    );
    assert_eq!(
        servers(&hub, busy_without_server),
        Some(set(&[])),
        "culler log:\n{log}"
    );
    let mut left = hub.user_names();
    left.sort();
    let mut expected = vec![
        "admin-with-server",
        "admin-without-server",
        busy_with_server,
        busy_without_server,
    ];
    expected.sort();
    assert_eq!(left, expected, "culler log:\n{log}");
    eprintln!(
        "idle_users_are_deleted_but_admins_and_active_users_kept took {:?}",
        t0.elapsed()
    );
}

/// (d) Stopping servers shifts the hub's `state=ready` pages; one pass with
/// small pages must still see every user: 23 idle servers culled, 7 active
/// kept, out of 30.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn one_pass_culls_every_page() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions::default());
    let names: Vec<String> = (0..30).map(|i| format!("user-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    // Spread over the pages of 5, including first and last positions.
    let active_idx = [0, 6, 11, 14, 18, 23, 29];
    let active: BTreeSet<String> = active_idx.iter().map(|&i| names[i].clone()).collect();
    hub.create_users(&refs);
    for name in &refs {
        hub.start_server(name, "");
    }
    hub.wait_until_idle(&refs, TIMEOUT);
    for name in &active {
        hub.post_activity(name, &[""]);
    }

    let run = hub.cull_once(&[&timeout_flag(), "--api-page-size=5"]);

    let ready: BTreeSet<String> = hub
        .users(Some("ready"))
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ready, active,
        "exactly the 7 active servers should survive one pass; culler log:\n{}",
        run.stderr
    );
    assert_eq!(hub.user_names().len(), 30, "no user may be deleted");
    eprintln!(
        "one_pass_culls_every_page took {:?} (culler pass {:?})",
        t0.elapsed(),
        run.elapsed
    );
}

/// (e) The culler as a hub-managed service: started by the hub from
/// `c.JupyterHub.services` with the hub's token and URL in its environment
/// and a role holding only the documented scopes, it culls an idle server
/// while an active one (kept active by the test) survives.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn managed_service_culls_while_the_hub_runs() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions {
        managed_culler_args: Some(vec![timeout_flag(), "--cull-every=1".into()]),
        ..HubOptions::default()
    });
    let started = hub.await_managed_cull_of_idle_beside_busy(TIMEOUT + Duration::from_secs(60));
    let took = started.elapsed();
    assert!(
        took >= TIMEOUT - Duration::from_millis(500),
        "culled after {took:?}, before it was {TIMEOUT:?} idle"
    );
    assert_eq!(
        servers(&hub, "busy"),
        Some(set(&[""])),
        "the active server was culled\nhub log tail:\n{}",
        hub.log_tail(40)
    );
    // The hub gives every managed service a URL (a random loopback port
    // when it has no `url`) but a prefix only to one with a `url`: a
    // culler without one serves nothing there, and says nothing of it.
    let culler = hub
        .managed_culler_process()
        .unwrap_or_else(|| hub.fail("the hub's culler process is not running"));
    let service_url = culler.env("JUPYTERHUB_SERVICE_URL");
    assert!(
        service_url
            .as_deref()
            .is_some_and(|url| url.starts_with("http://127.0.0.1:")),
        "the hub gave its service no URL: {service_url:?}"
    );
    assert_eq!(culler.env("JUPYTERHUB_SERVICE_PREFIX"), None);
    assert_eq!(
        culler.listening_ports(),
        Vec::<u16>::new(),
        "the culler listens (its service URL: {service_url:?})"
    );
    let log = hub.managed_culler_log();
    assert!(!log.contains("/metrics"), "{log}");
    eprintln!(
        "managed_service_culls_while_the_hub_runs took {:?} (culled {took:?} after spawn)",
        t0.elapsed()
    );
}

/// (f) `internal_ssl`: the hub API is HTTPS with client certificates; the
/// culler with `--ssl-enabled --internal-certs-location` culls through it.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn culls_through_internal_ssl() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions {
        internal_ssl: true,
        ..HubOptions::default()
    });
    assert!(hub.api_url().starts_with("https://127.0.0.1:"));
    hub.create_users(&["idle", "busy"]);
    hub.start_server("idle", "");
    hub.start_server("busy", "");
    hub.wait_until_idle(&["idle", "busy"], TIMEOUT);
    hub.post_activity("busy", &[""]);
    let certs: &Path = hub.certs_dir().expect("internal SSL certs");

    let run = hub.cull_once(&[
        &timeout_flag(),
        "--ssl-enabled",
        &format!("--internal-certs-location={}", certs.display()),
    ]);

    let log = &run.stderr;
    assert_eq!(servers(&hub, "idle"), Some(set(&[])), "culler log:\n{log}");
    assert_eq!(
        servers(&hub, "busy"),
        Some(set(&[""])),
        "culler log:\n{log}"
    );
    eprintln!("culls_through_internal_ssl took {:?}", t0.elapsed());
}

/// A server whose stop outlasts the hub's `slow_stop_timeout` (202) still
/// counts as alive: its idle user is not deleted in that pass (the hub would
/// refuse with 400 anyway), and is deleted by a later pass once the server
/// has stopped and the user has been idle again for the timeout (the hub
/// records the end of a stop as the user's activity).
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn user_with_a_slow_stopping_server_is_deleted_only_by_a_later_pass() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions {
        culler_may_delete_users: true,
        light_stop_seconds: 3.0,
        slow_stop_timeout: Some(0.5),
        ..HubOptions::default()
    });
    hub.create_users(&["slow"]);
    hub.start_server("slow", "");
    hub.wait_until_idle(&["slow"], TIMEOUT);
    let args = [timeout_flag(), "--cull-users".to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let first = hub.cull_once(&args);

    let user = hub
        .user("slow")
        .unwrap_or_else(|| hub.fail(format!("deleted while its server was stopping:\n{first}")));
    assert_eq!(
        user["servers"][""]["pending"],
        json!("stop"),
        "the server should still be stopping: {user}\n{first}"
    );
    assert!(
        !hub.log().contains("DELETE /hub/api/users/slow ("),
        "the culler tried to delete a user whose server was still stopping:\n{first}"
    );
    hub.wait_for("the slow stop to finish", Duration::from_secs(30), || {
        servers(&hub, "slow") == Some(set(&[]))
    });
    // Stopping a server sets the user's last_activity to the end of the
    // stop: the user has to be idle for the timeout again.
    hub.wait_until_idle(&["slow"], TIMEOUT);

    let second = hub.cull_once(&args);

    assert!(
        hub.user("slow").is_none(),
        "the idle user should be deleted once its server has stopped:\n{second}"
    );
    eprintln!(
        "user_with_a_slow_stopping_server_is_deleted_only_by_a_later_pass took {:?}",
        t0.elapsed()
    );
}

/// `--cull-every` of the background culler in the hub-restart test.
const CULL_EVERY_SECS: u64 = 1;

/// How many error lines one failed pass may log before it counts as a
/// flood (loose on purpose: retries within a pass may log a few).
const MAX_ERROR_LINES_PER_FAILED_PASS: usize = 5;

/// A background culler whose log is printed when the test panics anywhere
/// (e.g. inside the harness), not only in the assertions that show it.
struct Daemon(Option<RunningCuller>);

impl Daemon {
    fn culler(&mut self) -> &mut RunningCuller {
        self.0.as_mut().expect("the culler is running")
    }

    fn stderr(&self) -> String {
        self.0
            .as_ref()
            .map(RunningCuller::stderr_so_far)
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- the background culler's stderr ---\n{}", self.stderr());
        }
    }
}

/// What a failing assertion of the hub-restart test shows: the culler's log
/// so far and the hub log's tail.
fn explain(hub: &RealHub, daemon: &Daemon) -> String {
    format!(
        "\n--- culler stderr so far ---\n{}\n--- hub log ({}), last lines ---\n{}",
        daemon.stderr(),
        hub.log_path().display(),
        hub.log_tail(40)
    )
}

/// Polls `check` until it holds; fails with `what` and [`explain`] after
/// `deadline`.
fn await_state(
    hub: &RealHub,
    daemon: &Daemon,
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> bool,
) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() <= deadline,
            "timed out after {deadline:?} waiting for {what}{}",
            explain(hub, daemon)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lines at error level: slog's `ERRO` and the usual `ERROR` alike.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("ERRO")).collect()
}

/// The culler as a long-running daemon rides out a restart of the hub. It
/// culls idle servers while the hub runs; while the hub is down it keeps
/// running, its passes fail without flooding its log; once the hub is back
/// it culls, without being restarted, the servers that went idle during
/// the outage, and keeps the active one; SIGTERM then ends it with exit 0.
/// The hub leaves its servers running when it stops (`cleanup_servers =
/// False`), so the restarted hub finds them still running.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn culler_rides_out_a_hub_restart() {
    let t0 = Instant::now();
    let mut hub = RealHub::start(HubOptions {
        cleanup_servers: false,
        ..HubOptions::default()
    });
    let early = ["early-1", "early-2"];
    let late = ["late-1", "late-2"];
    let busy = "busy";
    let mut all: Vec<&str> = early.iter().chain(&late).copied().collect();
    all.push(busy);
    hub.create_users(&all);
    for user in early.iter().chain([&busy]) {
        hub.start_server(user, "");
    }
    // Nobody can post activity while the hub is down, and a restart takes
    // longer than the timeout: the busy server's activity is stamped ahead
    // (the hub accepts up to 59 minutes), so it stays active throughout.
    let busy_until = SystemTime::now() + Duration::from_secs(600);
    hub.post_activity_at(busy, &[""], busy_until);

    let mut daemon = Daemon(Some(
        Culler::against(hub.api_url(), hub.culler_token())
            .args([timeout_flag(), format!("--cull-every={CULL_EVERY_SECS}")])
            .spawn(),
    ));
    let culler_started = Instant::now();
    let culler_pid = daemon.culler().id();

    // 1. While the hub runs, the idle servers are culled.
    await_state(
        &hub,
        &daemon,
        "the culler to cull the first idle servers",
        TIMEOUT + Duration::from_secs(60),
        || early.iter().all(|u| servers(&hub, u) == Some(set(&[]))),
    );
    assert_eq!(
        servers(&hub, busy),
        Some(set(&[""])),
        "the active server was culled{}",
        explain(&hub, &daemon)
    );

    // 2. More servers, which go idle while the hub is down. Their activity
    // is stamped a little ahead so that even a slow stop of the hub cannot
    // let the culler see them idle before the hub is down.
    for user in late {
        hub.start_server(user, "");
        hub.post_activity_at(user, &[""], SystemTime::now() + TIMEOUT);
    }
    let late_idle_at = hub.idle_at(&late, TIMEOUT);
    for user in late.iter().chain([&busy]) {
        assert!(
            hub.proxy_routes_to_server(user, ""),
            "the proxy does not route to {user}'s server{}",
            explain(&hub, &daemon)
        );
    }

    // 3. The hub goes down; the culler keeps running and its passes fail.
    let stderr_at_stop = daemon.stderr().len();
    let outage = Instant::now();
    let hub_status = hub.stop_hub();
    let since_stop = |daemon: &Daemon| {
        let log = daemon.stderr();
        log.get(stderr_at_stop..).unwrap_or_default().to_string()
    };
    await_state(
        &hub,
        &daemon,
        "the culler to log a failed pass while the hub is down",
        Duration::from_secs(60),
        || !error_lines(&since_stop(&daemon)).is_empty(),
    );
    // The late servers go idle while the hub is down.
    if let Ok(left) = late_idle_at.duration_since(SystemTime::now()) {
        std::thread::sleep(left);
    }
    assert!(
        !daemon.culler().has_exited(),
        "the culler exited while the hub was down (hub exited with {hub_status}){}",
        explain(&hub, &daemon)
    );
    let log_before_restart = hub.log();

    // 4. The hub comes back on the same ports, database and tokens.
    hub.start_hub();
    let outage = outage.elapsed();
    let during_outage = since_stop(&daemon);
    let errors = error_lines(&during_outage);
    // At most one pass starts per --cull-every, plus the one running at
    // the stop and one starting as the hub came back.
    let max_passes = (outage.as_secs_f64() / CULL_EVERY_SECS as f64).ceil() as usize + 2;
    assert!(
        errors.len() <= MAX_ERROR_LINES_PER_FAILED_PASS * max_passes,
        "{} error lines in a {outage:?} outage (at most {max_passes} passes): a flood{}",
        errors.len(),
        explain(&hub, &daemon)
    );
    await_state(
        &hub,
        &daemon,
        "the restarted hub's proxy to route to the busy server again",
        Duration::from_secs(30),
        || hub.proxy_routes_to_server(busy, ""),
    );

    // 5. The same culler process culls what went idle, keeps what is active.
    await_state(
        &hub,
        &daemon,
        "the culler to cull the servers that went idle while the hub was down",
        Duration::from_secs(60),
        || late.iter().all(|u| servers(&hub, u) == Some(set(&[]))),
    );
    assert_eq!(
        servers(&hub, busy),
        Some(set(&[""])),
        "the active server did not survive the restart, or was culled{}",
        explain(&hub, &daemon)
    );
    for user in early {
        assert_eq!(
            servers(&hub, user),
            Some(set(&[])),
            "{user}'s culled server came back with the hub{}",
            explain(&hub, &daemon)
        );
        assert!(
            !hub.proxy_routes_to_server(user, ""),
            "the proxy still routes to {user}'s culled server{}",
            explain(&hub, &daemon)
        );
    }
    // The late servers were running when the hub went down, and it is the
    // culler that stopped them after the restart (the hub logs each request).
    let log_after_restart = hub
        .log()
        .get(log_before_restart.len()..)
        .unwrap_or_default()
        .to_string();
    for user in early {
        let delete = format!("DELETE /hub/api/users/{user}/server");
        assert!(
            log_before_restart.contains(&delete),
            "no {delete} in the hub log before the restart{}",
            explain(&hub, &daemon)
        );
    }
    for user in late {
        let delete = format!("DELETE /hub/api/users/{user}/server");
        assert!(
            !log_before_restart.contains(&delete) && log_after_restart.contains(&delete),
            "{delete} should be in the hub log after the restart only{}",
            explain(&hub, &daemon)
        );
    }
    assert!(
        !daemon.culler().has_exited() && daemon.culler().id() == culler_pid,
        "the culler did not keep running{}",
        explain(&hub, &daemon)
    );

    // 6. SIGTERM ends it cleanly.
    let culler = daemon.0.take().expect("the culler is running");
    culler.signal("TERM");
    // `wait`'s deadline counts from the culler's start.
    let out = culler.wait(culler_started.elapsed() + Duration::from_secs(30));
    assert!(
        out.success(),
        "the culler should exit 0 on SIGTERM:\n{out}\n--- hub log, last lines ---\n{}",
        hub.log_tail(40)
    );
    eprintln!(
        "culler_rides_out_a_hub_restart took {:?} (hub down {outage:?}, hub exit {hub_status}, \
         {} error lines while down)",
        t0.elapsed(),
        errors.len()
    );
}

/// What a failing assertion about a `--once` run shows: the run (command,
/// status, stdout, stderr) and the hub log's tail.
fn explain_run(hub: &RealHub, run: &CullerOutput) -> String {
    format!(
        "\n{run}\n--- hub log ({}), last lines ---\n{}",
        hub.log_path().display(),
        hub.log_tail(40)
    )
}

/// The decision records of a `--output=json` run, one JSON object a line.
fn decision_records(hub: &RealHub, run: &CullerOutput) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "stdout line {line:?} is not JSON ({e}){}",
                    explain_run(hub, run)
                )
            })
        })
        .collect()
}

/// The record about `user`'s server `server` ("" is the default server).
fn server_record<'a>(
    hub: &RealHub,
    run: &CullerOutput,
    records: &'a [Value],
    user: &str,
    server: &str,
) -> &'a Value {
    let mut found = records
        .iter()
        .filter(|r| r["user"] == user && r["server"] == server);
    let record = found.next().unwrap_or_else(|| {
        panic!(
            "no decision record for {user:?}/{server:?}{}",
            explain_run(hub, run)
        )
    });
    assert!(
        found.next().is_none(),
        "two records for {user:?}/{server:?}{}",
        explain_run(hub, run)
    );
    record
}

/// The README's policy rules with seconds for the real hub: instructors
/// (a hub group) and one user never, GPU servers (`user_options.profile`)
/// and named servers after [`TIMEOUT_SECS`]; everything else by the flags.
fn rules_for_a_real_hub() -> String {
    format!(
        r#"
[[rules]]
name = "instructors are never culled"
group = "instructors"
never = true

[[rules]]
name = "one user exempt"
user = "director"
never = true

[[rules]]
name = "GPU servers after {TIMEOUT_SECS} seconds"
user_options = {{ profile = "gpu" }}
timeout = {TIMEOUT_SECS}

[[rules]]
name = "named servers after {TIMEOUT_SECS} seconds"
server = "named"
timeout = {TIMEOUT_SECS}
"#
    )
}

/// Policy rules against a real hub: a real group made through the API,
/// `user_options` the hub stored from the spawn request's body, named
/// servers. Every server is idle past the rules' timeouts and far below
/// the flags' `--timeout=3600`: only the rules can cull. A culler whose
/// role lacks `read:users:groups` (the hub would hide the groups, and the
/// instructors' rule would silently never match) is refused at start with
/// exit 2, before anything is culled; with the scope, exactly the GPU and
/// the named server go.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn policy_rules_decide_on_a_real_hub() {
    let t0 = Instant::now();
    let without_groups = "culler-without-groups";
    let hub = RealHub::start(HubOptions {
        allow_named_servers: true,
        culler_extra_scopes: vec!["read:users:groups".into()],
        extra_services: vec![ExtraService::new(without_groups, CULLER_SCOPES)],
        ..HubOptions::default()
    });
    let users = [
        "gpu-student",
        "cpu-student",
        "lab-student",
        "teacher",
        "director",
    ];
    hub.create_users(&users);
    hub.create_group("instructors", &["teacher"]);
    let gpu = json!({ "profile": "gpu" });
    let cpu = json!({ "profile": "cpu" });
    hub.start_server_with_options("gpu-student", "", &gpu);
    hub.start_server_with_options("cpu-student", "", &cpu);
    hub.start_server("lab-student", "");
    hub.start_server("lab-student", "lab");
    hub.start_server_with_options("teacher", "", &gpu);
    hub.start_server("teacher", "lab");
    hub.start_server_with_options("director", "", &gpu);
    // What the rules match on is what the culler's token sees: the hub
    // shows groups only with read:users:groups.
    let teacher_as = |token: &str| -> Value {
        let (status, body) = hub.request_as(token, "GET", "/users/teacher", None);
        serde_json::from_str(&body)
            .unwrap_or_else(|e| hub.fail(format!("GET /users/teacher: {status} {body}: {e}")))
    };
    let teacher = teacher_as(hub.culler_token());
    assert_eq!(teacher["groups"], json!(["instructors"]), "{teacher}");
    assert_eq!(teacher["servers"][""]["user_options"], gpu, "{teacher}");
    let hidden = teacher_as(hub.service_token(without_groups));
    assert!(hidden.get("groups").is_none(), "{hidden}");
    assert_eq!(hidden["servers"][""]["user_options"], gpu, "{hidden}");
    let all_servers = |hub: &RealHub| -> Vec<Option<BTreeSet<String>>> {
        users.iter().map(|user| servers(hub, user)).collect()
    };
    let started = all_servers(&hub);
    hub.wait_until_idle(&users, TIMEOUT);
    let rules = hub.dir().join("rules.toml");
    std::fs::write(&rules, rules_for_a_real_hub()).expect("write rules.toml");
    let args = [
        format!("--config={}", rules.display()),
        "--timeout=3600".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // 1. A role without read:users:groups: refused before anything is sent.
    let refused = hub.run_culler_with_token(hub.service_token(without_groups), &args);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a group rule without read:users:groups must stop the culler at start{}",
        explain_run(&hub, &refused)
    );
    assert!(
        refused
            .stderr
            .contains("rule \"instructors are never culled\" matches on groups")
            && refused
                .stderr
                .contains("add read:users:groups to the culler's role"),
        "the refusal should name the rule and the scope{}",
        explain_run(&hub, &refused)
    );
    assert_eq!(
        all_servers(&hub),
        started,
        "the refused culler stopped a server{}",
        explain_run(&hub, &refused)
    );
    assert!(
        !hub.log().contains("DELETE /hub/api/"),
        "the refused culler sent a DELETE{}",
        explain_run(&hub, &refused)
    );
    assert!(
        !hub.log().contains("GET /hub/api/users?"),
        "the refused culler listed users before checking its scopes{}",
        explain_run(&hub, &refused)
    );

    // 2. With the scope, the rules decide.
    let mut args = args;
    args.push("--output=json");
    let run = hub.cull_once(&args);
    let expect = [
        ("gpu-student", set(&[])),
        ("cpu-student", set(&[""])),
        ("lab-student", set(&[""])),
        ("teacher", set(&["", "lab"])),
        ("director", set(&[""])),
    ];
    for (user, left) in expect {
        assert_eq!(
            servers(&hub, user),
            Some(left),
            "{user}'s servers after the pass{}",
            explain_run(&hub, &run)
        );
    }
    let lab = hub
        .user_with_stopped_servers("lab-student")
        .unwrap_or_else(|| hub.fail("lab-student vanished"));
    assert_eq!(
        lab["servers"]["lab"]["stopped"],
        json!(true),
        "the named server is stopped, not removed: {lab}{}",
        explain_run(&hub, &run)
    );

    // 3. The records say which rule decided.
    let records = decision_records(&hub, &run);
    let gpu_rule = format!("rule \"GPU servers after {TIMEOUT_SECS} seconds\"");
    let named_rule = format!("rule \"named servers after {TIMEOUT_SECS} seconds\"");
    let instructors = "rule \"instructors are never culled\"";
    let exempt = "rule \"one user exempt\"";
    for (user, server, action, reason, rule) in [
        ("gpu-student", "", "stop", "idle", gpu_rule.as_str()),
        ("cpu-student", "", "keep", "active", "flags"),
        ("lab-student", "", "keep", "active", "flags"),
        ("lab-student", "lab", "stop", "idle", named_rule.as_str()),
        ("teacher", "", "keep", "never", instructors),
        ("teacher", "lab", "keep", "never", instructors),
        ("director", "", "keep", "never", exempt),
    ] {
        let record = server_record(&hub, &run, &records, user, server);
        let outcome = (action == "stop").then_some("done");
        assert_eq!(
            (
                record["action"].as_str(),
                record["reason"].as_str(),
                record["rule"].as_str(),
                record["outcome"].as_str(),
            ),
            (Some(action), Some(reason), Some(rule), outcome),
            "{user}/{server}: {record}{}",
            explain_run(&hub, &run)
        );
    }
    assert_eq!(
        records.len(),
        7,
        "one record per server{}",
        explain_run(&hub, &run)
    );
    let cull_line = run
        .stderr
        .lines()
        .find(|line| line.contains("Culling server gpu-student (reason: idle"));
    assert!(
        cull_line.is_some_and(|line| line.contains(&gpu_rule)),
        "the cull line names the rule{}",
        explain_run(&hub, &run)
    );
    eprintln!(
        "policy_rules_decide_on_a_real_hub: without read:users:groups: {}, stderr:\n{}",
        refused.status,
        refused.stderr.trim_end()
    );
    eprintln!("policy_rules_decide_on_a_real_hub: decision records:");
    for line in run.stdout.lines() {
        eprintln!("  {line}");
    }
    eprintln!(
        "policy_rules_decide_on_a_real_hub took {:?} (refused run {:?}, pass {:?})",
        t0.elapsed(),
        refused.elapsed,
        run.elapsed
    );
}

/// `--once --dry-run --output=json` against a real hub with idle and
/// active servers: nothing is stopped (the hub's state and its request log
/// agree), and stdout holds one decision record per server with the
/// documented fields, the idle ones `"action": "stop"` and
/// `"dry_run": true`.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn dry_run_reports_and_stops_nothing_on_a_real_hub() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions {
        allow_named_servers: true,
        ..HubOptions::default()
    });
    let idle = ["idle-1", "carol@example.org"];
    let busy = ["busy-1", "busy+2"];
    let all: Vec<&str> = idle.iter().chain(&busy).copied().collect();
    hub.create_users(&all);
    for user in &all {
        hub.start_server(user, "");
    }
    hub.start_server("idle-1", "lab");
    hub.start_server("busy-1", "lab");
    hub.wait_until_idle(&all, TIMEOUT);
    hub.post_activity("busy-1", &["", "lab"]);
    hub.post_activity("busy+2", &[""]);
    let before: Vec<_> = all.iter().map(|user| servers(&hub, user)).collect();
    let log_before = hub.log().len();

    let run = hub.cull_once(&[&timeout_flag(), "--dry-run", "--output=json"]);

    let after: Vec<_> = all.iter().map(|user| servers(&hub, user)).collect();
    assert_eq!(
        after,
        before,
        "a dry run changed the hub's servers{}",
        explain_run(&hub, &run)
    );
    assert!(
        !hub.log_since(log_before).contains("DELETE /hub/api/"),
        "a dry run sent a DELETE{}",
        explain_run(&hub, &run)
    );
    let records = decision_records(&hub, &run);
    for record in &records {
        let mut keys: Vec<&str> = record
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(keys, RECORD_KEYS, "{record}{}", explain_run(&hub, &run));
        assert_eq!(
            record["dry_run"],
            json!(true),
            "{record}{}",
            explain_run(&hub, &run)
        );
        assert_eq!(
            record["outcome"],
            Value::Null,
            "nothing was sent: {record}{}",
            explain_run(&hub, &run)
        );
    }
    let expected = [
        ("idle-1", "", "stop", "idle"),
        ("idle-1", "lab", "stop", "idle"),
        ("carol@example.org", "", "stop", "idle"),
        ("busy-1", "", "keep", "active"),
        ("busy-1", "lab", "keep", "active"),
        ("busy+2", "", "keep", "active"),
    ];
    assert_eq!(
        records.len(),
        expected.len(),
        "one record per server, none about users without --cull-users{}",
        explain_run(&hub, &run)
    );
    for (user, server, action, reason) in expected {
        let record = server_record(&hub, &run, &records, user, server);
        assert_eq!(
            (record["action"].as_str(), record["reason"].as_str()),
            (Some(action), Some(reason)),
            "{user}/{server}: {record}{}",
            explain_run(&hub, &run)
        );
        assert_eq!(
            record["rule"],
            "flags",
            "{record}{}",
            explain_run(&hub, &run)
        );
        let idle_seconds = record["idle_seconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("no idle_seconds: {record}{}", explain_run(&hub, &run)));
        let age_seconds = record["age_seconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("no age_seconds: {record}{}", explain_run(&hub, &run)));
        assert!(
            (action == "stop") == (idle_seconds >= TIMEOUT_SECS) && age_seconds >= TIMEOUT_SECS,
            "{record}{}",
            explain_run(&hub, &run)
        );
    }
    assert!(
        run.stderr
            .contains("Would cull server idle-1 (reason: idle")
            && !run.stderr.contains("Culling server "),
        "the log says what would be culled, and culls nothing{}",
        explain_run(&hub, &run)
    );
    eprintln!("dry_run_reports_and_stops_nothing_on_a_real_hub: stdout of the culler:");
    for line in run.stdout.lines() {
        eprintln!("  {line}");
    }
    eprintln!(
        "dry_run_reports_and_stops_nothing_on_a_real_hub took {:?} (culler pass {:?})",
        t0.elapsed(),
        run.elapsed
    );
}

/// The culler as a managed service with a `url`: JupyterHub gives it
/// `JUPYTERHUB_SERVICE_URL` and `JUPYTERHUB_SERVICE_PREFIX`, waits at start
/// until it answers HTTP there, and routes `/services/culler/` on its proxy
/// to it. The proxy forwards anyone's requests there, so `/metrics` asks
/// for a hub token with `read:metrics`, as the hub's own does: a scrape
/// with no token, or with a token whose owner lacks the scope, is refused
/// (403); one with the token of a service whose role holds `read:metrics`
/// parses as Prometheus text and, once the culler has culled an idle
/// server, counts the pass, the stop and the `DELETE` the hub answered 204.
/// `/health` through the proxy answers 200 without a token; and the culler
/// saw the full path, prefix included.
#[test]
#[ignore = "needs a real JupyterHub: run scripts/test"]
fn metrics_are_scraped_through_the_hubs_proxy() {
    let t0 = Instant::now();
    let hub = RealHub::start(HubOptions {
        managed_culler_args: Some(vec![
            timeout_flag(),
            "--cull-every=1".into(),
            "--log-level=DEBUG".into(),
        ]),
        managed_culler_url: true,
        extra_services: vec![
            ExtraService::new("prometheus", &["read:metrics"]),
            ExtraService::new("nosy", &["read:users"]),
        ],
        ..HubOptions::default()
    });
    let url = hub.managed_culler_url().expect("the culler has a url");
    let prefix = format!("/services/{CULLER_SERVICE}/");
    // (`hub.fail`, and so `hub.wait_for`, show the same.)
    let explain = |hub: &RealHub| {
        format!(
            "\n--- the managed culler's lines of the hub log ---\n{}\n--- hub log ({}), last lines ---\n{}",
            hub.managed_culler_log(),
            hub.log_path().display(),
            hub.log_tail(40)
        )
    };
    // `start` returned once the hub had routed the service's prefix, which
    // JupyterHub 6 does only after the service answered HTTP at its url.
    assert_eq!(
        hub.proxy_route_target(&prefix).as_deref(),
        Some(url),
        "the proxy's route for {prefix}{}",
        explain(&hub)
    );
    hub.await_managed_cull_of_idle_beside_busy(TIMEOUT + Duration::from_secs(60));
    // It listens where its `url` says, and nowhere else.
    let port: u16 = url
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("the url's port");
    let culler = hub
        .managed_culler_process()
        .unwrap_or_else(|| hub.fail("the hub's culler process is not running"));
    assert_eq!(culler.listening_ports(), [port], "{}", explain(&hub));

    // The pass that stopped it ends after the hub's answer: scrape until
    // the counters show it.
    let metrics_path = format!("{prefix}metrics");
    let value = |text: &str, name: &str, labels: &[(&str, &str)]| {
        sample(text, &format!("jupyterhub_idle_culler_{name}"), labels)
    };
    for (token, who) in [
        (None, "no token"),
        (Some("not-a-token"), "a token the hub does not know"),
        (
            Some(hub.service_token("nosy")),
            "a token without read:metrics",
        ),
    ] {
        let (status, text) = hub.public_get_as(&metrics_path, token);
        assert_eq!(
            status,
            403,
            "GET {metrics_path} through the proxy with {who}: {text}{}",
            explain(&hub)
        );
        assert!(
            !text.contains("jupyterhub_idle_culler_"),
            "{who} was shown metrics: {text}"
        );
    }
    let scraper = Some(hub.service_token("prometheus"));
    let mut scrape = String::new();
    hub.wait_for(
        "a scrape through the proxy to count a successful pass and a stop",
        Duration::from_secs(30),
        || {
            let (status, text) = hub.public_get_as(&metrics_path, scraper);
            assert_eq!(
                status,
                200,
                "GET {metrics_path} through the proxy: {text}{}",
                explain(&hub)
            );
            scrape = text;
            value(&scrape, "passes_total", &[("outcome", "success")]).unwrap_or(0.0) >= 1.0
                && value(&scrape, "servers_stopped_total", &[]).unwrap_or(0.0) >= 1.0
        },
    );
    let deletes = value(
        &scrape,
        "requests_total",
        &[
            ("method", "DELETE"),
            ("endpoint", "/users/{name}/server"),
            ("status", "204"),
        ],
    );
    assert!(
        deletes.is_some_and(|n| n >= 1.0),
        "no DELETE /users/{{name}}/server 204 counted in\n{scrape}{}",
        explain(&hub)
    );
    assert_eq!(
        servers(&hub, "busy"),
        Some(set(&[""])),
        "the active server was culled{}",
        explain(&hub)
    );
    let health_path = format!("{prefix}health");
    let (status, health) = hub.public_get(&health_path);
    assert_eq!(
        status,
        200,
        "GET {health_path} through the proxy: {health}{}",
        explain(&hub)
    );
    // The proxy forwards the whole path: the culler logs (at DEBUG) the
    // request as it received it.
    let seen = format!("GET \"{metrics_path}\" -> 200");
    hub.wait_for(
        "the culler to log the scrape it answered",
        Duration::from_secs(10),
        || hub.managed_culler_log().contains(&seen),
    );

    eprintln!(
        "metrics_are_scraped_through_the_hubs_proxy: GET {health_path} -> {status} {}",
        health.trim()
    );
    eprintln!("metrics_are_scraped_through_the_hubs_proxy: GET {metrics_path} (without the histogram's buckets):");
    for line in scrape.lines().filter(|l| !l.contains("_bucket{")) {
        eprintln!("  {line}");
    }
    eprintln!("metrics_are_scraped_through_the_hubs_proxy: the culler's endpoint lines:");
    for line in hub
        .managed_culler_log()
        .lines()
        .filter(|l| l.contains("Serving") || l.contains("Metrics endpoint"))
    {
        eprintln!("  {line}");
    }
    eprintln!(
        "metrics_are_scraped_through_the_hubs_proxy took {:?}",
        t0.elapsed()
    );
}
