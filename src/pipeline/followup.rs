//! What the Evaluator remembers from one pass to the next: the warnings it
//! sent (one per idle period, `--warn-before`) and the servers it watches
//! because they did not stop, or do not finish spawning (`--stuck-after`).
//! Plain data with the clock passed in, so every rule of it is tested
//! without actors; the Evaluator owns the one instance.
//!
//! It lives in memory only: a culler that restarts has forgotten its
//! warnings, so a server in its warning window is warned once more, and
//! its watch on a server stopping starts again from when it first sees it
//! (a spawn's age comes from the hub: JupyterHub sets `started` as the
//! spawn begins).
//! What is not seen for two passes in a row (its user stopped it, or was
//! deleted) is forgotten, so the memory holds only servers near a warning
//! or pending, however large the hub.

use crate::decision::Elapsed;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// What a watched server is pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Its stop was accepted (202), or it is pending `stop`.
    Stop,
    /// It is pending `spawn`.
    Spawn,
}

impl Pending {
    /// Its word, as the hub's `pending` field and the metric's label say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Pending::Stop => "stop",
            Pending::Spawn => "spawn",
        }
    }
}

/// A server found stuck: pending this long, at least `--stuck-after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stuck {
    /// What it has been pending.
    pub pending: Pending,
    /// For how long (since the culler first saw it so, or its stop was
    /// accepted).
    pub since: Elapsed,
    /// Whether this is the first pass that finds it stuck: only that one
    /// is reported (log, event, metric, record).
    pub first: bool,
}

/// A server watched since `since`.
#[derive(Clone, Copy, Debug)]
struct Watch {
    pending: Pending,
    since: DateTime<Utc>,
    reported: bool,
    seen: u64,
}

/// A warning sent for the idle period that ends at `deadline`.
#[derive(Clone, Copy, Debug)]
struct Warned {
    deadline: DateTime<Utc>,
    seen: u64,
}

/// Values by user name, then server name: looked up by `&str`, so that
/// judging a server that is neither warned nor watched allocates nothing.
#[derive(Debug)]
struct ByServer<V>(HashMap<String, HashMap<String, V>>);

impl<V> Default for ByServer<V> {
    fn default() -> Self {
        ByServer(HashMap::new())
    }
}

impl<V> ByServer<V> {
    fn get_mut(&mut self, user: &str, server: &str) -> Option<&mut V> {
        self.0.get_mut(user)?.get_mut(server)
    }

    fn insert(&mut self, user: &str, server: &str, value: V) {
        self.0
            .entry(user.to_owned())
            .or_default()
            .insert(server.to_owned(), value);
    }

    fn remove(&mut self, user: &str, server: &str) {
        if let Some(servers) = self.0.get_mut(user) {
            servers.remove(server);
            if servers.is_empty() {
                self.0.remove(user);
            }
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.0.retain(|_, servers| {
            servers.retain(|_, value| keep(value));
            !servers.is_empty()
        });
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.values().map(HashMap::len).sum()
    }
}

/// The Evaluator's memory; see the module documentation.
#[derive(Debug)]
pub struct Followup {
    /// `--stuck-after`, in seconds (`None`: nothing is watched).
    stuck_after: Option<u64>,
    /// The pass being judged (from 1).
    pass: u64,
    warned_servers: ByServer<Warned>,
    warned_users: HashMap<String, Warned>,
    watched: ByServer<Watch>,
}

impl Followup {
    /// An empty memory; servers are stuck after `stuck_after` seconds.
    pub fn new(stuck_after: Option<u64>) -> Self {
        Followup {
            stuck_after,
            pass: 0,
            warned_servers: ByServer::default(),
            warned_users: HashMap::new(),
            watched: ByServer::default(),
        }
    }

    /// A page of pass `pass` arrived: when that is a new pass, forgets what
    /// was not seen in either of the two passes before it.
    pub fn begin(&mut self, pass: u64) {
        if pass <= self.pass {
            return;
        }
        let last = self.pass;
        let recent = |seen: u64| seen + 1 >= last;
        self.warned_servers.retain(|w| recent(w.seen));
        self.warned_users.retain(|_, w| recent(w.seen));
        self.watched.retain(|w| recent(w.seen));
        self.pass = pass;
    }

    /// Whether a warning of a cull at `deadline` for `user`'s `server`
    /// (`None`: the user) is the first of its idle period, remembering it.
    /// Activity moves the deadline, which begins a new period.
    pub fn warn(&mut self, user: &str, server: Option<&str>, deadline: DateTime<Utc>) -> bool {
        let pass = self.pass;
        let known = match server {
            Some(server) => self.warned_servers.get_mut(user, server),
            None => self.warned_users.get_mut(user),
        };
        if let Some(warned) = known {
            warned.seen = pass;
            if warned.deadline == deadline {
                return false;
            }
            warned.deadline = deadline;
            return true;
        }
        let warned = Warned {
            deadline,
            seen: pass,
        };
        match server {
            Some(server) => self.warned_servers.insert(user, server, warned),
            None => {
                self.warned_users.insert(user.to_owned(), warned);
            }
        }
        true
    }

    /// `user`'s `server` (`None`: the user) was judged with no warning due:
    /// the next one it is due begins a new period.
    pub fn unwarned(&mut self, user: &str, server: Option<&str>) {
        match server {
            Some(server) if !self.warned_servers.is_empty() => {
                self.warned_servers.remove(user, server)
            }
            None if !self.warned_users.is_empty() => {
                self.warned_users.remove(user);
            }
            _ => {}
        }
    }

    /// The hub accepted to stop `user`'s `server` but is still stopping it
    /// (202) at `now`: watched until it is gone.
    pub fn stop_accepted(&mut self, user: &str, server: &str, now: DateTime<Utc>) {
        if self.stuck_after.is_none() {
            return;
        }
        self.watched.insert(
            user,
            server,
            Watch {
                pending: Pending::Stop,
                since: now,
                reported: false,
                seen: self.pass,
            },
        );
    }

    /// `user`'s `server` was listed at `now`, pending `pending` (the hub's
    /// field: `spawn`, `stop`, `check`, or none) and started at `started`.
    /// Says whether it is stuck: pending `spawn` (since `started`, which
    /// JupyterHub sets as the spawn begins) or `stop` (since the culler
    /// first saw it so), or still listed after its stop was accepted, for
    /// at least `--stuck-after`. A server that started after its stop was
    /// accepted is a new one.
    pub fn observe(
        &mut self,
        user: &str,
        server: &str,
        pending: Option<&str>,
        started: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<Stuck> {
        let after = self.stuck_after?;
        let pending = match pending {
            Some("spawn") => Some(Pending::Spawn),
            Some("stop") => Some(Pending::Stop),
            _ => None,
        };
        if pending.is_none() && self.watched.is_empty() {
            return None;
        }
        let pass = self.pass;
        let watch = match (self.watched.get_mut(user, server), pending) {
            (Some(watch), Some(pending)) if watch.pending == pending => watch,
            // A stop accepted earlier, and the server still listed.
            (Some(watch), None)
                if watch.pending == Pending::Stop && started.is_none_or(|s| s <= watch.since) =>
            {
                watch
            }
            (_, None) => {
                self.watched.remove(user, server);
                return None;
            }
            (_, Some(pending)) => {
                // JupyterHub sets `started` as a spawn begins: a spawn's
                // age is known at first sight, even in a single pass. A
                // stop's beginning is not in the model.
                let since = match (pending, started) {
                    (Pending::Spawn, Some(started)) if started <= now => started,
                    _ => now,
                };
                let watch = Watch {
                    pending,
                    since,
                    reported: false,
                    seen: pass,
                };
                self.watched.insert(user, server, watch);
                self.watched.get_mut(user, server)?
            }
        };
        watch.seen = pass;
        let since = Elapsed(u64::try_from((now - watch.since).num_seconds()).unwrap_or(0));
        if since.0 < after {
            return None;
        }
        let first = !watch.reported;
        watch.reported = true;
        Some(Stuck {
            pending: watch.pending,
            since,
            first,
        })
    }

    /// How many servers and users it remembers (for tests of its bound).
    pub fn len(&self) -> usize {
        self.warned_servers.len() + self.warned_users.len() + self.watched.len()
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
