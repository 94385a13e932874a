//! The vocabulary the fake-hub tests share: a hub that requires the test
//! token, users idle for two hours or busy a minute ago against
//! `--timeout=3600`, one `--once` run, and readers of what the hub saw.

use std::collections::BTreeSet;
use std::time::Duration;

use super::culler::{Culler, CullerOutput};
use super::fake_hub::{FakeHub, FakeServer, FakeUser, HubConfig};

/// The token every fake hub of these tests requires.
pub const TOKEN: &str = "culler-test-token";
/// Idle means two hours here, busy one minute: far from this either way.
pub const TIMEOUT_1H: &str = "--timeout=3600";
/// Retries that wait milliseconds, for tests about what fails, not when.
pub const FAST_RETRIES: &str = "--retry-delay=0.01";

/// `n` seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `n` hours.
pub fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

/// `n` milliseconds.
pub fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A hub that requires [`TOKEN`].
pub fn start(config: HubConfig) -> FakeHub {
    FakeHub::start(config.token(TOKEN))
}

/// One `--once` pass against `hub` with the right token.
pub fn once(hub: &FakeHub) -> Culler {
    Culler::against(hub.url(), TOKEN).arg("--once")
}

/// A default server idle for 2 h.
pub fn idle_server() -> FakeServer {
    FakeServer::default_server().idle_for(hours(2))
}

/// A default server used a minute ago.
pub fn busy_server() -> FakeServer {
    FakeServer::default_server().idle_for(secs(60))
}

/// A user idle for 2 h with an idle default server.
pub fn idle_user(name: &str) -> FakeUser {
    FakeUser::new(name).idle_for(hours(2)).server(idle_server())
}

/// A user active a minute ago with a busy default server.
pub fn busy_user(name: &str) -> FakeUser {
    FakeUser::new(name).idle_for(secs(60)).server(busy_server())
}

/// A user with no server, last active 2 h ago.
pub fn gone_user(name: &str) -> FakeUser {
    FakeUser::new(name).idle_for(hours(2))
}

/// `idle-0`, `idle-1`, ... : `n` idle users.
pub fn idle_users(n: usize) -> impl Iterator<Item = FakeUser> {
    (0..n).map(|i| idle_user(&format!("idle-{i}")))
}

/// A set of names.
pub fn names<I, S>(items: I) -> BTreeSet<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    items.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

/// `(user, server)` pairs as a set.
pub fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(u, s)| (u.to_string(), s.to_string()))
        .collect()
}

/// The servers the hub stopped (204), as a set.
pub fn stopped(hub: &FakeHub) -> BTreeSet<(String, String)> {
    hub.stopped_servers().into_iter().collect()
}

/// The users the hub deleted (204), as a set.
pub fn deleted(hub: &FakeHub) -> BTreeSet<String> {
    hub.deleted_users().into_iter().collect()
}

/// Every DELETE the hub received, one per line, for assertion messages.
pub fn deletes_text(hub: &FakeHub) -> String {
    hub.deletes()
        .iter()
        .map(|d| format!("  {} {} {:?} -> {}", d.method, d.raw_path, d.body, d.status))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines logged at error level or above (slog-term's `ERRO`/`CRIT`) or
/// written as `error:` by the command-line front end.
pub fn error_lines(out: &CullerOutput) -> Vec<String> {
    lines_with(out, &[" ERRO ", " CRIT ", "error:"])
}

/// The lines logged at warning level.
pub fn warning_lines(out: &CullerOutput) -> Vec<String> {
    lines_with(out, &[" WARN "])
}

/// The lines holding any of `needles`.
pub fn lines_with(out: &CullerOutput, needles: &[&str]) -> Vec<String> {
    out.stderr_lines()
        .into_iter()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}
