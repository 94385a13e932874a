//! One event, as receivers get it: a JSON object whose schema is part of
//! the culler's interface (documented in the README, only ever grows), so
//! that an operator can turn it into a mail, a chat message or a banner
//! without reading this code.

use crate::decision::Decision;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// What happened, as the `event` field names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A server (or, with `server: null`, a user) will be culled by
    /// `deadline` unless it is used before then.
    Warn,
    /// The hub accepted to stop a server (stopped, or still stopping).
    Culled,
    /// A user was deleted (`--cull-users`).
    UserDeleted,
    /// A stop or a deletion the culler sent failed.
    StopFailed,
    /// A server has been stopping, or spawning, for longer than
    /// `--stuck-after`.
    Stuck,
}

impl EventKind {
    /// Every kind, for metrics rendered from the start.
    pub const ALL: [EventKind; 5] = [
        EventKind::Warn,
        EventKind::Culled,
        EventKind::UserDeleted,
        EventKind::StopFailed,
        EventKind::Stuck,
    ];

    /// Its name in the JSON and in metrics' labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Warn => "warn",
            EventKind::Culled => "culled",
            EventKind::UserDeleted => "user_deleted",
            EventKind::StopFailed => "stop_failed",
            EventKind::Stuck => "stuck",
        }
    }
}

/// One event; see the README's "Events" section for each field. It holds
/// names, reasons and times only: never a token, never a URL with
/// credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// The user's name.
    pub user: String,
    /// The server's name (`""` for the default server); `null` for an
    /// event about the user.
    pub server: Option<String>,
    /// Why, in the words of the decision records (`idle`, `max-age`,
    /// `stuck stop`, ...).
    pub reason: String,
    /// Seconds since the last activity (or the start, or the creation).
    pub idle_seconds: Option<u64>,
    /// Seconds since the server started (the user was created).
    pub age_seconds: Option<u64>,
    /// For `warn`: when the culler will cull it if nothing changes
    /// (RFC 3339, UTC); `null` otherwise.
    pub deadline: Option<String>,
    /// For `warn`: seconds from `time` to `deadline`.
    pub seconds_left: Option<u64>,
    /// What set the limits: a rule's label, or `flags`.
    pub rule: Option<String>,
    /// More words: the error of a failed stop, how long a stuck server has
    /// been pending, that the hub is still stopping a culled server.
    pub detail: Option<String>,
    /// When the culler saw it happen (RFC 3339, UTC).
    pub time: String,
    /// The culler and its version, so a receiver can tell which sent it.
    pub culler: &'static str,
}

/// The `culler` field of every event.
pub const CULLER: &str = concat!("jupyterhub-idle-culler-rs ", env!("CARGO_PKG_VERSION"));

/// A time as events write it: RFC 3339, UTC, whole seconds.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Event {
    /// The event `kind` about what `decision` is about, at `now`; a
    /// warning's deadline comes from the decision.
    pub fn of(kind: EventKind, decision: &Decision<'_>, now: DateTime<Utc>) -> Self {
        let warning = decision.warn.filter(|_| kind == EventKind::Warn);
        Event {
            event: kind,
            user: decision.user.to_owned(),
            server: decision.server.map(str::to_owned),
            reason: match warning {
                Some(warning) => warning.because.to_string(),
                None => decision.reason.to_string(),
            },
            idle_seconds: decision.idle.map(|e| e.0),
            age_seconds: decision.age.map(|e| e.0),
            deadline: warning.map(|w| timestamp(w.deadline)),
            seconds_left: warning.map(|w| w.left(now).0),
            rule: decision.decided_by.map(|by| by.to_string()),
            detail: None,
            time: timestamp(now),
            culler: CULLER,
        }
    }

    /// The same event with `detail`.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}
