//! The culling rules: pure functions from (settings, now, hub model) to a
//! verdict, with no actors and no HTTP, so every rule is tested on its own
//! and later policy features (rules by group or profile, dry-run
//! explanations) change data here, not the pipeline.
//!
//! The rules are upstream 2.0.0's, minus its known defects: a server with no
//! timestamps is skipped instead of abandoning its user, and
//! `--cull-admin-users=false` spares admins from `--max-age` too. On top of
//! them come the operator's policy rules ([`crate::rules`]): the first that
//! matches a server (or a user) sets its timeout or max age, or exempts it.

use crate::hub::{Readiness, Server, Timestamp, User};
use crate::rules::Rule;
use chrono::{DateTime, Utc};
use std::fmt;

/// The rules an operator chose with the command line and the config file.
#[derive(Clone, Debug, PartialEq)]
pub struct CullPolicy {
    /// `--timeout`: idle seconds after which servers (and users) are culled.
    pub timeout_secs: u64,
    /// `--max-age`: seconds after which servers (and users) are culled even
    /// when active; `None` when 0 (off).
    pub max_age_secs: Option<u64>,
    /// `--cull-default-servers`: whether idle default servers may be culled.
    pub cull_default_servers: bool,
    /// `--cull-named-servers`: whether idle named servers may be culled.
    pub cull_named_servers: bool,
    /// `--cull-users`: whether users whose servers are all stopped are deleted.
    pub cull_users: bool,
    /// `--cull-admin-users`: whether admins may be deleted by `--cull-users`.
    pub cull_admin_users: bool,
    /// `--remove-named-servers`: whether culled named servers are removed too.
    pub remove_named_servers: bool,
    /// `--cull-users-timeout` (default: `--timeout`): idle seconds after
    /// which a user whose servers are all stopped is deleted, so that users
    /// can go days after their servers (JupyterHub issue #1708).
    pub user_timeout_secs: u64,
    /// `--cull-users-max-age` (default: `--max-age`); `None` when 0 (off).
    pub user_max_age_secs: Option<u64>,
    /// The config file's rules, in order: the first that matches decides.
    pub rules: Vec<Rule>,
}

impl Default for CullPolicy {
    /// Upstream's defaults.
    fn default() -> Self {
        CullPolicy {
            timeout_secs: 600,
            max_age_secs: None,
            cull_default_servers: true,
            cull_named_servers: true,
            cull_users: false,
            cull_admin_users: true,
            remove_named_servers: false,
            user_timeout_secs: 600,
            user_max_age_secs: None,
            rules: Vec::new(),
        }
    }
}

impl CullPolicy {
    /// What decided, for logs and decision records: a rule's label, or
    /// "flags" when no rule matched.
    pub fn decided_by(&self, rule: Option<usize>) -> String {
        match rule {
            Some(index) => self.rules[index].label(index),
            None => "flags".to_owned(),
        }
    }
}

/// A span of time since something happened, shown as HH:MM:SS in logs
/// (the format operators grep upstream's logs for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Elapsed(pub u64);

impl Elapsed {
    /// Seconds from `then` to `now`; a time in the future (clock skew) is 0.
    pub fn between(then: Timestamp, now: DateTime<Utc>) -> Self {
        Elapsed(u64::try_from((now - then.0).num_seconds()).unwrap_or(0))
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    }
}

/// Shows an optional span as upstream does ("unknown" when absent).
pub struct MaybeElapsed(pub Option<Elapsed>);

impl fmt::Display for MaybeElapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(elapsed) => elapsed.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// Why something is culled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CullReason {
    /// Idle for at least `--timeout`.
    Idle,
    /// Older than `--max-age`.
    MaxAge,
}

impl fmt::Display for CullReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CullReason::Idle => "idle",
            CullReason::MaxAge => "max-age",
        })
    }
}

/// Why a server is not even considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A spawn, stop or check is under way.
    Pending(String),
    /// Neither ready nor pending: the hub should not list it, so leave it.
    NotReady,
    /// Neither `last_activity` nor `started`: its idleness is unknown.
    NoTimestamps,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Pending(action) => write!(f, "pending {action}"),
            SkipReason::NotReady => f.write_str("not ready and not pending"),
            SkipReason::NoTimestamps => f.write_str("no last_activity and no started time"),
        }
    }
}

/// The verdict on one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerVerdict {
    /// Left alone without judging it.
    Skip(SkipReason),
    /// Exempt by a rule (`never = true`).
    Exempt {
        /// The rule's index in [`CullPolicy::rules`].
        rule: usize,
    },
    /// Judged and kept.
    Keep {
        /// Time since its last activity (or start).
        idle: Option<Elapsed>,
        /// Time since it started.
        age: Option<Elapsed>,
        /// The rule that set the limits, `None` for the flags.
        rule: Option<usize>,
    },
    /// To be stopped.
    Cull {
        /// Which limit culls it.
        reason: CullReason,
        /// Time since its last activity (or start).
        idle: Option<Elapsed>,
        /// Time since it started.
        age: Option<Elapsed>,
        /// The rule that set the limits, `None` for the flags.
        rule: Option<usize>,
    },
}

/// Decides about one server of `user`. `name` is "" for the default server.
pub fn judge_server(
    policy: &CullPolicy,
    now: DateTime<Utc>,
    user: &User,
    name: &str,
    server: &Server,
) -> ServerVerdict {
    if let Some(action) = server.pending.as_deref().filter(|a| !a.is_empty()) {
        return ServerVerdict::Skip(SkipReason::Pending(action.to_owned()));
    }
    let ready = match server.ready {
        Readiness::Ready => true,
        Readiness::NotReady => false,
        // Pre-0.9 hubs: a URL meant ready.
        Readiness::Unstated => server.url.as_deref().is_some_and(|url| !url.is_empty()),
    };
    if !ready {
        return ServerVerdict::Skip(SkipReason::NotReady);
    }
    let rule = policy
        .rules
        .iter()
        .position(|r| r.matches_server(user, name, server));
    let chosen = rule.map(|index| &policy.rules[index]);
    if let (Some(index), Some(true)) = (rule, chosen.map(|r| r.never)) {
        return ServerVerdict::Exempt { rule: index };
    }
    let (idle, age) = clocks(server.last_activity, server.started, now);
    if idle.is_none() {
        return ServerVerdict::Skip(SkipReason::NoTimestamps);
    }
    let kind_allowed = if name.is_empty() {
        policy.cull_default_servers
    } else {
        policy.cull_named_servers
    };
    // A rule's own timeout applies whatever the default/named switches say:
    // it names what it is about.
    let timeout = match chosen.and_then(|r| r.timeout) {
        Some(timeout) => Some(timeout),
        None => kind_allowed.then_some(policy.timeout_secs),
    };
    let max_age = limits_max_age(chosen, policy.max_age_secs);
    match reason_to_cull(timeout, max_age, idle, age) {
        Some(reason) => ServerVerdict::Cull {
            reason,
            idle,
            age,
            rule,
        },
        None => ServerVerdict::Keep { idle, age, rule },
    }
}

/// A rule's `max_age` (0: none) where it gives one, else the flags'.
fn limits_max_age(rule: Option<&Rule>, flags: Option<u64>) -> Option<u64> {
    match rule.and_then(|r| r.max_age) {
        Some(0) => None,
        Some(max_age) => Some(max_age),
        None => flags,
    }
}

/// Why a user is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepUser {
    /// `--cull-users` is off.
    UserCullingOff,
    /// Some servers are still running (or still stopping).
    ServersAlive(usize),
    /// The token cannot see the user's servers, so they may be running.
    ServersUnknown,
    /// An admin, and `--cull-admin-users=false`.
    Admin,
    /// Exempt by a rule (`never = true`); its index.
    Exempt(usize),
    /// Neither idle long enough nor too old.
    Recent {
        /// Time since the user's last activity (or creation).
        idle: Option<Elapsed>,
        /// Time since the user was created.
        age: Option<Elapsed>,
        /// The rule that set the limits, `None` for the flags.
        rule: Option<usize>,
    },
}

/// The verdict on a user, once their servers have been dealt with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserVerdict {
    /// Left in place.
    Keep(KeepUser),
    /// To be deleted.
    Cull {
        /// Which limit culls them.
        reason: CullReason,
        /// Time since the user's last activity (or creation).
        idle: Option<Elapsed>,
        /// Time since the user was created.
        age: Option<Elapsed>,
        /// The rule that set the limits, `None` for the flags.
        rule: Option<usize>,
    },
}

/// Decides about a user after their servers were handled. `servers_alive` is
/// how many of their servers are still running after this pass's stops, or
/// `None` when the token cannot see their servers.
pub fn judge_user(
    policy: &CullPolicy,
    now: DateTime<Utc>,
    user: &User,
    servers_alive: Option<usize>,
) -> UserVerdict {
    if !policy.cull_users {
        return UserVerdict::Keep(KeepUser::UserCullingOff);
    }
    match servers_alive {
        None => return UserVerdict::Keep(KeepUser::ServersUnknown),
        Some(0) => {}
        Some(alive) => return UserVerdict::Keep(KeepUser::ServersAlive(alive)),
    }
    // Unknown admin status counts as admin: sparing admins must not fail open.
    if user.admin != Some(false) && !policy.cull_admin_users {
        return UserVerdict::Keep(KeepUser::Admin);
    }
    // Rules about servers (their name, their options) say nothing of users.
    let rule = policy
        .rules
        .iter()
        .position(|r| !r.is_about_servers() && r.matches_user(user));
    let chosen = rule.map(|index| &policy.rules[index]);
    if let (Some(index), Some(true)) = (rule, chosen.map(|r| r.never)) {
        return UserVerdict::Keep(KeepUser::Exempt(index));
    }
    let timeout = chosen
        .and_then(|r| r.timeout)
        .unwrap_or(policy.user_timeout_secs);
    let max_age = limits_max_age(chosen, policy.user_max_age_secs);
    let (idle, age) = clocks(user.last_activity, user.created, now);
    match reason_to_cull(Some(timeout), max_age, idle, age) {
        Some(reason) => UserVerdict::Cull {
            reason,
            idle,
            age,
            rule,
        },
        None => UserVerdict::Keep(KeepUser::Recent { idle, age, rule }),
    }
}

/// Idle time (since the last activity, or else since the beginning) and age
/// (since the beginning: a server's start, a user's creation).
fn clocks(
    last_activity: Option<Timestamp>,
    beginning: Option<Timestamp>,
    now: DateTime<Utc>,
) -> (Option<Elapsed>, Option<Elapsed>) {
    let age = beginning.map(|t| Elapsed::between(t, now));
    let idle = last_activity.map(|t| Elapsed::between(t, now)).or(age);
    (idle, age)
}

/// The limit both servers and users follow: idle past `timeout` (`None`:
/// idleness does not cull), else older than `max_age`. Unknown clocks never
/// cull.
fn reason_to_cull(
    timeout: Option<u64>,
    max_age: Option<u64>,
    idle: Option<Elapsed>,
    age: Option<Elapsed>,
) -> Option<CullReason> {
    if timeout.is_some_and(|timeout| idle.is_some_and(|i| i.0 >= timeout)) {
        Some(CullReason::Idle)
    } else if max_age.is_some_and(|max| age.is_some_and(|a| a.0 >= max)) {
        Some(CullReason::MaxAge)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
