//! What the culler decided about one server or one user, and why: the one
//! type the policy ([`crate::policy`]) returns, the Evaluator acts on, the
//! log writes as its fields and the decision records
//! ([`crate::report`]) write as JSON. Built once, so that what is done,
//! what is logged and what is recorded can never disagree.
//!
//! A decision borrows the names it is about and the rule that set its
//! limits: judging a hub's worth of servers allocates nothing.

use crate::logging::Fields;
use crate::rules::Rule;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

/// What the culler does (or, in a dry run, would do) with a server or user:
/// a closed set that decision records and JSON log lines share, so an
/// aggregator can count on it (`action="stop"` counts servers culled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Stop the server.
    Stop,
    /// Stop the named server and remove it (`--remove-named-servers`).
    Remove,
    /// Delete the user.
    Delete,
    /// Leave it: judged and not culled.
    Keep,
    /// Leave it without judging it (pending, not ready, no timestamps).
    Skip,
}

impl Action {
    /// Its name in JSON, in records and in log lines alike.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Remove => "remove",
            Action::Delete => "delete",
            Action::Keep => "keep",
            Action::Skip => "skip",
        }
    }

    /// Whether the culler sends something to the hub for it.
    pub fn culls(self) -> bool {
        matches!(self, Action::Stop | Action::Remove | Action::Delete)
    }
}

/// Why, in the words logs and records have always used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Idle for at least its timeout.
    Idle,
    /// Older than its max age.
    MaxAge,
    /// Judged: neither idle long enough nor too old.
    Active,
    /// A policy rule exempts it (`never = true`).
    Never,
    /// A server with a spawn, stop or check under way: never culled then.
    Pending(String),
    /// A server neither ready nor pending: the hub should not list it.
    NotReady,
    /// A server with neither `last_activity` nor `started`: its idleness is
    /// unknown.
    NoTimestamps,
    /// A user some of whose servers still run (or still stop).
    ServersRunning(usize),
    /// A user whose servers the token cannot see: they may be running.
    ServersUnknown,
    /// An admin, and `--cull-admin-users=false`.
    Admin,
    /// Idle by the hub's timestamps, but the server says it is in use
    /// (`--activity=server`).
    InUse(InUse),
    /// A server pending this action (`stop`, `spawn`) for longer than
    /// `--stuck-after`, or one still running that long after the hub
    /// answered its stop with 202 (`stop`).
    Stuck(String),
}

/// Why a server or user will be culled at a warning's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Because {
    /// Its idle timeout runs out then.
    Idle,
    /// Its max age is reached then.
    MaxAge,
}

impl fmt::Display for Because {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Because::Idle => "idle",
            Because::MaxAge => "max-age",
        })
    }
}

/// A cull coming within `--warn-before`: when, and why. The deadline is
/// computed from the hub's timestamps (the last activity plus the timeout,
/// or the start plus the max age), so it stays the same from pass to pass
/// until there is activity: that is what makes one warning per idle
/// period possible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Warning {
    /// When it will be culled if nothing changes.
    pub deadline: DateTime<Utc>,
    /// Why it will be.
    pub because: Because,
}

impl Warning {
    /// The time left from `now` to the deadline (0 when past).
    pub fn left(&self, now: DateTime<Utc>) -> Elapsed {
        Elapsed(u64::try_from((self.deadline - now).num_seconds()).unwrap_or(0))
    }
}

/// What a server said that shows it in use, though the hub's timestamps
/// call it idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InUse {
    /// A kernel is running code now.
    KernelBusy,
    /// A kernel was active this long ago, within the timeout.
    Kernel(Elapsed),
    /// A terminal was active this long ago, within the timeout.
    Terminal(Elapsed),
    /// This many connections are open (`--activity-connections`).
    Connections(u64),
}

impl fmt::Display for InUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InUse::KernelBusy => f.write_str("kernel busy"),
            InUse::Kernel(ago) => write!(f, "kernel active {ago} ago"),
            InUse::Terminal(ago) => write!(f, "terminal active {ago} ago"),
            InUse::Connections(1) => f.write_str("1 open connection"),
            InUse::Connections(n) => write!(f, "{n} open connections"),
        }
    }
}

/// What a server's idleness was judged by: the hub's timestamps, or the
/// server's own word (`--activity=server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The hub's timestamps (`--activity=hub`, and every decision the
    /// server's word cannot change: keeps, skips, `--max-age`, users).
    Hub,
    /// The hub's timestamps say idle; the server is to be asked first,
    /// counting activity within this many seconds (the timeout). Set by
    /// the policy; the Evaluator asks and puts one of the two below in its
    /// place ([`crate::policy::judge_inside`]).
    AskServer {
        /// The timeout in effect, in seconds.
        within: u64,
    },
    /// The server was asked, and what it said decided.
    Server,
    /// The server could not be asked: the hub's timestamps decided.
    HubFallback,
}

impl Signal {
    /// Its name in decision records and JSON log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Hub | Signal::AskServer { .. } => "hub",
            Signal::Server => "server",
            Signal::HubFallback => "hub-fallback",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Idle => f.write_str("idle"),
            Reason::MaxAge => f.write_str("max-age"),
            Reason::Active => f.write_str("active"),
            Reason::Never => f.write_str("never"),
            Reason::Pending(action) => write!(f, "pending {action}"),
            Reason::NotReady => f.write_str("not ready and not pending"),
            Reason::NoTimestamps => f.write_str("no last_activity and no started time"),
            Reason::ServersRunning(_) => f.write_str("servers running"),
            Reason::ServersUnknown => f.write_str("servers unknown"),
            Reason::Admin => f.write_str("admin"),
            Reason::InUse(in_use) => in_use.fmt(f),
            Reason::Stuck(action) => write!(f, "stuck {action}"),
        }
    }
}

/// A span of time since something happened, shown as HH:MM:SS in logs
/// (the format operators grep upstream's logs for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Elapsed(pub u64);

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

/// What set the limits a decision was made on.
#[derive(Clone, Copy, Debug)]
pub enum DecidedBy<'a> {
    /// The flags (`--timeout`, `--max-age`, ...): no rule matched.
    Flags,
    /// The operator's policy rule number `index` (from 0).
    Rule {
        /// Its place in the config file's list.
        index: usize,
        /// The rule.
        rule: &'a Rule,
    },
}

/// Two are the same when they name the same rule (by its place).
impl PartialEq for DecidedBy<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (DecidedBy::Flags, DecidedBy::Flags) => true,
            (DecidedBy::Rule { index: a, .. }, DecidedBy::Rule { index: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for DecidedBy<'_> {}

impl fmt::Display for DecidedBy<'_> {
    /// `flags`, or the rule's label: `rule "NAME"`, or `rule N` (from 1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecidedBy::Flags => f.write_str("flags"),
            DecidedBy::Rule { index, rule } => f.write_str(&rule.label(*index)),
        }
    }
}

/// How a server or user is named in the log, written straight into the
/// line (see [`Decision::label`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label<'a> {
    user: &'a str,
    /// A named server's name; `None` for a default server or a user.
    server: Option<&'a str>,
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.server {
            Some(server) => write!(f, "{}/{server}", self.user),
            None => f.write_str(self.user),
        }
    }
}

/// The parenthesis of a cull's log line, written straight into the line
/// (see [`Decision::why`]): the reason, the spans, and the rule when one
/// set the limits.
pub struct Why<'a> {
    /// Why.
    pub reason: &'a Reason,
    /// Time since the last activity.
    pub idle: Option<Elapsed>,
    /// Time since the start or creation.
    pub age: Option<Elapsed>,
    /// The rule that set the limits; `None` for the flags, which the line
    /// does not name (so that lines without rules read as upstream's).
    pub rule: Option<&'a dyn fmt::Display>,
    /// What judged the idleness: named only when the server was asked, or
    /// was to be and could not be (so that other lines read as upstream's).
    pub signal: Signal,
}

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reason: {}, inactive for {}, age: {}",
            self.reason,
            MaybeElapsed(self.idle),
            MaybeElapsed(self.age)
        )?;
        if let Some(rule) = self.rule {
            write!(f, ", {rule}")?;
        }
        match self.signal {
            Signal::Server => f.write_str(", the server says idle too"),
            Signal::HubFallback => f.write_str(", the server could not be asked"),
            Signal::Hub | Signal::AskServer { .. } => Ok(()),
        }
    }
}

/// One decision about a server (`server` is its name, `""` for the
/// default one) or, with `server` `None`, about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// The user's name.
    pub user: &'a str,
    /// The server's name; `None` for a decision about the user.
    pub server: Option<&'a str>,
    /// What is done.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// Time since the last activity (or the start, or the creation).
    pub idle: Option<Elapsed>,
    /// Time since the server started (or the user was created).
    pub age: Option<Elapsed>,
    /// What set the limits; `None` for a decision made before any limit
    /// (a skip, a user whose servers run, an admin).
    pub decided_by: Option<DecidedBy<'a>>,
    /// What the idleness was judged by.
    pub signal: Signal,
    /// For a kept server or user (`--warn-before`): the cull coming soon
    /// if nothing changes.
    pub warn: Option<Warning>,
}

impl<'a> Decision<'a> {
    /// `user` for a default server or a user, `user/name` for a named
    /// server, as upstream logs them.
    pub fn label(&self) -> Label<'a> {
        Label {
            user: self.user,
            server: self.server.filter(|server| !server.is_empty()),
        }
    }

    /// Why a cull is made, as the log line says it: `reason: idle,
    /// inactive for 01:02:03, age: 05:00:00`, and the rule when one set
    /// the limits.
    pub fn why(&self) -> Why<'_> {
        Why {
            reason: &self.reason,
            idle: self.idle,
            age: self.age,
            rule: match &self.decided_by {
                Some(rule @ DecidedBy::Rule { .. }) => Some(rule),
                _ => None,
            },
            signal: self.signal,
        }
    }

    /// The decision as the JSON log's fields (built only for a line that
    /// is written in that format).
    pub fn fields(&self) -> Fields<'_> {
        let mut fields = Fields::new()
            .user(self.user)
            .action(self.action.as_str())
            .reason(self.reason.to_string())
            .idle(self.idle.map(|e| e.0))
            .age(self.age.map(|e| e.0));
        if let Some(server) = self.server {
            fields = fields.server(server);
        }
        if let Some(by) = self.decided_by {
            fields = fields.rule(by.to_string());
        }
        if self.signal != Signal::Hub {
            fields = fields.signal(self.signal.as_str());
        }
        fields
    }
}

/// A decision to cull, owned, to log as `Culling server ada/lab (reason:
/// idle, ...)` when its request goes on the wire (which may be after the
/// page it came from is gone): its parts are kept and the line is
/// formatted only when written, straight into the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    user: String,
    server: Option<String>,
    action: Action,
    reason: Reason,
    idle: Option<Elapsed>,
    age: Option<Elapsed>,
    /// What set the limits: `Some(None)` the flags, `Some(Some(label))` a rule.
    decided_by: Option<Option<String>>,
    signal: Signal,
}

impl Announce {
    /// The announcement of `decision`.
    pub fn of(decision: &Decision<'_>) -> Announce {
        Announce {
            user: decision.user.to_owned(),
            server: decision.server.map(str::to_owned),
            action: decision.action,
            reason: decision.reason.clone(),
            idle: decision.idle,
            age: decision.age,
            decided_by: decision.decided_by.map(|by| match by {
                DecidedBy::Flags => None,
                DecidedBy::Rule { .. } => Some(by.to_string()),
            }),
            signal: decision.signal,
        }
    }

    /// The line's fields for the JSON log, as [`Decision::fields`] gives them.
    pub fn fields(&self) -> Fields<'_> {
        let mut fields = Fields::new()
            .user(self.user.as_str())
            .action(self.action.as_str())
            .reason(self.reason.to_string())
            .idle(self.idle.map(|e| e.0))
            .age(self.age.map(|e| e.0));
        if let Some(server) = &self.server {
            fields = fields.server(server.as_str());
        }
        if self.signal != Signal::Hub {
            fields = fields.signal(self.signal.as_str());
        }
        match &self.decided_by {
            Some(Some(label)) => fields.rule(label.as_str()),
            Some(None) => fields.rule("flags"),
            None => fields,
        }
    }
}

impl fmt::Display for Announce {
    /// `Culling server LABEL (WHY)` or `Culling user NAME (WHY)`, as
    /// upstream words it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = &self.user;
        match self.server.as_deref() {
            Some("") => write!(f, "Culling server {user}")?,
            Some(server) => write!(f, "Culling server {user}/{server}")?,
            None => write!(f, "Culling user {user}")?,
        }
        let why = Why {
            reason: &self.reason,
            idle: self.idle,
            age: self.age,
            rule: match &self.decided_by {
                Some(Some(label)) => Some(label as &dyn fmt::Display),
                _ => None,
            },
            signal: self.signal,
        };
        write!(f, " ({why})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_hours_minutes_seconds() {
        assert_eq!(Elapsed(3723).to_string(), "01:02:03");
        assert_eq!(Elapsed(100 * 3600).to_string(), "100:00:00");
        assert_eq!(MaybeElapsed(None).to_string(), "unknown");
    }

    #[test]
    fn reasons_read_as_logs_and_records_have_always_said_them() {
        let words: Vec<String> = [
            Reason::Idle,
            Reason::MaxAge,
            Reason::Active,
            Reason::Never,
            Reason::Pending("spawn".into()),
            Reason::NotReady,
            Reason::NoTimestamps,
            Reason::ServersRunning(2),
            Reason::ServersUnknown,
            Reason::Admin,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            words,
            [
                "idle",
                "max-age",
                "active",
                "never",
                "pending spawn",
                "not ready and not pending",
                "no last_activity and no started time",
                "servers running",
                "servers unknown",
                "admin"
            ]
        );
    }

    #[test]
    fn a_decision_names_its_server_and_what_decided() {
        let rule: Rule = toml::from_str("name = \"gpu\"\ntimeout = 60").unwrap();
        let decision = Decision {
            user: "ada",
            server: Some("lab"),
            action: Action::Stop,
            reason: Reason::Idle,
            idle: Some(Elapsed(3723)),
            age: None,
            decided_by: Some(DecidedBy::Rule {
                index: 0,
                rule: &rule,
            }),
            signal: Signal::Hub,
            warn: None,
        };
        assert_eq!(decision.label().to_string(), "ada/lab");
        assert_eq!(
            decision.why().to_string(),
            "reason: idle, inactive for 01:02:03, age: unknown, rule \"gpu\""
        );
        let default = Decision {
            server: Some(""),
            decided_by: Some(DecidedBy::Flags),
            ..decision.clone()
        };
        assert_eq!(default.label().to_string(), "ada");
        assert_eq!(
            default.why().to_string(),
            "reason: idle, inactive for 01:02:03, age: unknown",
            "the flags are not named in the line"
        );
        assert!(Action::Delete.culls() && !Action::Keep.culls() && !Action::Skip.culls());
    }
}
