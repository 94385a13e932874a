//! The culling rules: pure functions from (settings, now, hub model) to a
//! [`Decision`], with no actors and no HTTP, so every rule is tested on its
//! own and later policy features (rules by group or profile, dry-run
//! explanations) change data here, not the pipeline.
//!
//! The rules are upstream 2.0.0's, minus its known defects: a server with no
//! timestamps is skipped instead of abandoning its user, and
//! `--cull-admin-users=false` spares admins from `--max-age` too. On top of
//! them come the operator's policy rules ([`crate::rules`]): the first that
//! matches a server (or a user) sets its timeout or max age, or exempts it.

use crate::decision::{
    Action, Because, DecidedBy, Decision, Elapsed, InUse, Reason, Signal, Warning,
};
use crate::hub::Inside;
use crate::hub::{Readiness, Server, Timestamp, User};
use crate::rules::{Activity, Rule};
use chrono::{DateTime, TimeDelta, Utc};

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
    /// What a server's idleness is judged by where no rule says
    /// (`--activity`).
    pub activity: Activity,
    /// Whether open connections alone show a server in use
    /// (`--activity-connections`; off: an open tab with idle kernels is
    /// idle).
    pub activity_connections: bool,
    /// `--warn-before`: seconds before a cull that a kept server or user
    /// is warned (`None`: no warnings).
    pub warn_before_secs: Option<u64>,
    /// `--stuck-after`: seconds after which a server still stopping or
    /// spawning is reported (`None`: never).
    pub stuck_after_secs: Option<u64>,
    /// `--cull-stuck-spawns`: whether a stuck spawn is stopped.
    pub cull_stuck_spawns: bool,
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
            activity: Activity::Hub,
            activity_connections: false,
            warn_before_secs: None,
            stuck_after_secs: Some(1800),
            cull_stuck_spawns: false,
        }
    }
}

impl CullPolicy {
    /// Whether any server may be asked what runs inside it:
    /// `--activity=server`, or a rule that says so.
    pub fn asks_servers(&self) -> bool {
        self.activity == Activity::Server
            || self
                .rules
                .iter()
                .any(|rule| rule.activity == Some(Activity::Server))
    }

    /// The first rule that applies at `now` (its `when`, if any, holds)
    /// and matches, with its index. `now` is the caller's clock, as
    /// everywhere in the policy: a schedule is tested like any rule.
    fn rule_for(
        &self,
        now: DateTime<Utc>,
        matches: impl Fn(&Rule) -> bool,
    ) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.applies_at(now) && matches(rule))
    }
}

/// What decided, from the rule that matched (if any).
fn decided_by(rule: Option<(usize, &Rule)>) -> DecidedBy<'_> {
    match rule {
        Some((index, rule)) => DecidedBy::Rule { index, rule },
        None => DecidedBy::Flags,
    }
}

impl Elapsed {
    /// Seconds from `then` to `now`; a time in the future (clock skew) is 0.
    pub fn between(then: Timestamp, now: DateTime<Utc>) -> Self {
        Elapsed(u64::try_from((now - then.0).num_seconds()).unwrap_or(0))
    }
}

/// Decides about server `name` ("" for the default server) of `user`.
pub fn judge_server<'a>(
    policy: &'a CullPolicy,
    now: DateTime<Utc>,
    user: &'a User,
    name: &'a str,
    server: &Server,
) -> Decision<'a> {
    let decision = |action, reason, idle, age, decided_by| Decision {
        user: &user.name,
        server: Some(name),
        action,
        reason,
        idle,
        age,
        decided_by,
        signal: Signal::Hub,
        warn: None,
    };
    if let Some(action) = server.pending.as_deref().filter(|a| !a.is_empty()) {
        let reason = Reason::Pending(action.to_owned());
        return decision(Action::Skip, reason, None, None, None);
    }
    let ready = match server.ready {
        Readiness::Ready => true,
        Readiness::NotReady => false,
        // Pre-0.9 hubs: a URL meant ready.
        Readiness::Unstated => server.url.as_deref().is_some_and(|url| !url.is_empty()),
    };
    if !ready {
        return decision(Action::Skip, Reason::NotReady, None, None, None);
    }
    let rule = policy.rule_for(now, |r| r.matches_server(user, name, server));
    let by = Some(decided_by(rule));
    if rule.is_some_and(|(_, r)| r.never) {
        return decision(Action::Keep, Reason::Never, None, None, by);
    }
    let (idle, age) = clocks(server.last_activity, server.started, now);
    if idle.is_none() {
        return decision(Action::Skip, Reason::NoTimestamps, None, None, None);
    }
    let kind_allowed = if name.is_empty() {
        policy.cull_default_servers
    } else {
        policy.cull_named_servers
    };
    // A rule's own timeout applies whatever the default/named switches say:
    // it names what it is about.
    let timeout = match rule.and_then(|(_, r)| r.timeout) {
        Some(timeout) => Some(timeout),
        None => kind_allowed.then_some(policy.timeout_secs),
    };
    let max_age = limits_max_age(rule.map(|(_, r)| r), policy.max_age_secs);
    match reason_to_cull(timeout, max_age, idle, age) {
        Some(reason) => {
            let remove = policy.remove_named_servers && !name.is_empty();
            let action = if remove { Action::Remove } else { Action::Stop };
            let mut decision = decision(action, reason, idle, age, by);
            let activity = rule
                .and_then(|(_, r)| r.activity)
                .unwrap_or(policy.activity);
            let too_old = max_age.is_some_and(|max| age.is_some_and(|a| a.0 >= max));
            if let (Activity::Server, Reason::Idle, false, Some(within)) =
                (activity, &decision.reason, too_old, timeout)
            {
                decision.signal = Signal::AskServer { within };
            }
            decision
        }
        None => Decision {
            warn: warning(
                policy.warn_before_secs,
                timeout,
                max_age,
                server.last_activity,
                server.started,
                now,
            ),
            ..decision(Action::Keep, Reason::Active, idle, age, by)
        },
    }
}

/// The warning due for a server or user kept now (`--warn-before`): the
/// earlier of its two deadlines (its last activity, else its beginning,
/// plus `timeout`; its beginning plus `max_age`), when that is at most
/// `warn_before` away.
fn warning(
    warn_before: Option<u64>,
    timeout: Option<u64>,
    max_age: Option<u64>,
    last_activity: Option<Timestamp>,
    beginning: Option<Timestamp>,
    now: DateTime<Utc>,
) -> Option<Warning> {
    let warn_before = i64::try_from(warn_before?).unwrap_or(i64::MAX);
    let after = |from: Option<Timestamp>, secs: Option<u64>| {
        let delta = TimeDelta::try_seconds(i64::try_from(secs?).ok()?)?;
        from?.0.checked_add_signed(delta)
    };
    let idle = after(last_activity.or(beginning), timeout).map(|at| (at, Because::Idle));
    let old = after(beginning, max_age).map(|at| (at, Because::MaxAge));
    let (deadline, because) = [idle, old]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at)?;
    ((deadline - now).num_seconds() <= warn_before).then_some(Warning { deadline, because })
}

/// A rule's `max_age` (0: none) where it gives one, else the flags'.
fn limits_max_age(rule: Option<&Rule>, flags: Option<u64>) -> Option<u64> {
    match rule.and_then(|r| r.max_age) {
        Some(0) => None,
        Some(max_age) => Some(max_age),
        None => flags,
    }
}

/// Decides about a user after their servers were handled: `None` when
/// users are not culled at all (`--cull-users` off: nothing to report).
/// `servers_alive` is how many of their servers are still running after
/// this pass's stops, or `None` when the token cannot see their servers.
pub fn judge_user<'a>(
    policy: &'a CullPolicy,
    now: DateTime<Utc>,
    user: &'a User,
    servers_alive: Option<usize>,
) -> Option<Decision<'a>> {
    if !policy.cull_users {
        return None;
    }
    let decision = |action, reason, idle, age, decided_by| Decision {
        user: &user.name,
        server: None,
        action,
        reason,
        idle,
        age,
        decided_by,
        signal: Signal::Hub,
        warn: None,
    };
    let keep = |reason| Some(decision(Action::Keep, reason, None, None, None));
    match servers_alive {
        None => return keep(Reason::ServersUnknown),
        Some(0) => {}
        Some(alive) => return keep(Reason::ServersRunning(alive)),
    }
    // Unknown admin status counts as admin: sparing admins must not fail open.
    if user.admin != Some(false) && !policy.cull_admin_users {
        return keep(Reason::Admin);
    }
    // Rules about servers (their name, their options) say nothing of users.
    let rule = policy.rule_for(now, |r| !r.is_about_servers() && r.matches_user(user));
    let by = Some(decided_by(rule));
    if rule.is_some_and(|(_, r)| r.never) {
        return Some(decision(Action::Keep, Reason::Never, None, None, by));
    }
    let timeout = rule
        .and_then(|(_, r)| r.timeout)
        .unwrap_or(policy.user_timeout_secs);
    let max_age = limits_max_age(rule.map(|(_, r)| r), policy.user_max_age_secs);
    let (idle, age) = clocks(user.last_activity, user.created, now);
    Some(match reason_to_cull(Some(timeout), max_age, idle, age) {
        Some(reason) => decision(Action::Delete, reason, idle, age, by),
        None => Decision {
            warn: warning(
                policy.warn_before_secs,
                Some(timeout),
                max_age,
                user.last_activity,
                user.created,
                now,
            ),
            ..decision(Action::Keep, Reason::Active, idle, age, by)
        },
    })
}

/// Judges again, with what the server said about itself, a decision
/// the hub's timestamps made and that asks for the server's word
/// ([`Signal::AskServer`]): a busy kernel, or kernel or terminal activity
/// within the timeout (or, with `--activity-connections`, an open
/// connection) keeps the server; otherwise the cull stands, now on the
/// server's word. A server that could not be asked (`inside` is `None`)
/// is judged by the hub's timestamps, as if not asked: a failed look never
/// makes a server look idle, and never hides one that is. Any other
/// decision is returned as it is.
pub fn judge_inside<'a>(
    policy: &CullPolicy,
    now: DateTime<Utc>,
    decision: Decision<'a>,
    inside: Option<&Inside>,
) -> Decision<'a> {
    let Signal::AskServer { within } = decision.signal else {
        return decision;
    };
    let Some(inside) = inside else {
        return Decision {
            signal: Signal::HubFallback,
            ..decision
        };
    };
    match in_use(inside, now, within, policy.activity_connections) {
        Some(in_use) => Decision {
            action: Action::Keep,
            reason: Reason::InUse(in_use),
            signal: Signal::Server,
            ..decision
        },
        None => Decision {
            signal: Signal::Server,
            ..decision
        },
    }
}

/// What, inside a server, shows it in use: a busy kernel first, then the
/// most recent kernel or terminal activity within `within` seconds, then
/// open connections when they count.
fn in_use(inside: &Inside, now: DateTime<Utc>, within: u64, connections: bool) -> Option<InUse> {
    if inside.kernels.iter().any(|k| k.busy()) {
        return Some(InUse::KernelBusy);
    }
    let recent = |then: Option<Timestamp>| {
        then.map(|t| Elapsed::between(t, now))
            .filter(|ago| ago.0 < within)
    };
    let kernel = inside
        .kernels
        .iter()
        .filter_map(|k| recent(k.last_activity))
        .min();
    let terminal = inside
        .terminals
        .iter()
        .filter_map(|t| recent(t.last_activity))
        .min();
    match (kernel, terminal) {
        (Some(k), Some(t)) if t < k => return Some(InUse::Terminal(t)),
        (Some(k), _) => return Some(InUse::Kernel(k)),
        (None, Some(t)) => return Some(InUse::Terminal(t)),
        (None, None) => {}
    }
    (connections && inside.connections > 0).then_some(InUse::Connections(inside.connections))
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
) -> Option<Reason> {
    if timeout.is_some_and(|timeout| idle.is_some_and(|i| i.0 >= timeout)) {
        Some(Reason::Idle)
    } else if max_age.is_some_and(|max| age.is_some_and(|a| a.0 >= max)) {
        Some(Reason::MaxAge)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
