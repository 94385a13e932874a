//! The hub's population: users and their servers, built in a test's words
//! ("idle for 2 h", "pending spawn"), with times relative to now.
//!
//! Time is controlled by the timestamps given here (see [`ago`]), never by
//! sleeping: a server "idle for 2 h" was last active two hours before the
//! test started.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// A point in time `d` before now, so tests express idleness relative to the
/// moment they run instead of sleeping.
pub fn ago(d: Duration) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(d).expect("duration fits chrono")
}

/// One server (spawner) of a user, as the hub reports it.
///
/// A server is *active* when it is ready or pending; only active servers
/// appear in the user model and make a user part of `state=active`.
#[derive(Clone, Debug)]
pub struct FakeServer {
    /// `""` for the default server.
    pub name: String,
    /// The server answered and is usable.
    pub ready: bool,
    /// `None`, or "spawn", "stop", "check".
    pub pending: Option<String>,
    /// When it was started; `None` is legal and seen in the wild.
    pub started: Option<DateTime<Utc>>,
    /// Last activity seen by the hub; `None` is legal.
    pub last_activity: Option<DateTime<Utc>>,
    /// What the user chose at spawn (e.g. KubeSpawner's profile).
    pub user_options: Value,
    /// What the server itself says when asked through the proxy
    /// (jupyter-server's `api/status`, `api/kernels`, `api/terminals`).
    pub inside: FakeInside,
}

/// A single-user server as the culler meets it through the proxy with
/// `--activity=server`.
#[derive(Clone, Debug, PartialEq)]
pub enum FakeInside {
    /// A jupyter-server with these kernels (`execution_state`,
    /// `last_activity`), terminals (`last_activity`) and open connections.
    Jupyter {
        /// Its kernels.
        kernels: Vec<(String, DateTime<Utc>)>,
        /// Its terminals; `None`: no terminals extension (404).
        terminals: Option<Vec<DateTime<Utc>>>,
        /// Open connections, as `api/status` counts them.
        connections: u64,
    },
    /// Answers nothing for this long, then as an idle jupyter-server.
    Hangs(Duration),
    /// Another application: a 200 with an HTML page.
    Html,
    /// Gone (a crashed pod): the proxy answers 503.
    Gone,
}

impl FakeInside {
    /// A jupyter-server with nothing running.
    pub fn idle() -> Self {
        FakeInside::Jupyter {
            kernels: Vec::new(),
            terminals: Some(Vec::new()),
            connections: 0,
        }
    }

    /// A jupyter-server whose one kernel is `state` since `at`.
    pub fn kernel(state: &str, at: DateTime<Utc>) -> Self {
        FakeInside::Jupyter {
            kernels: vec![(state.to_owned(), at)],
            terminals: Some(Vec::new()),
            connections: 0,
        }
    }

    /// A jupyter-server with one idle kernel long idle and one terminal
    /// last active `at`.
    pub fn terminal(at: DateTime<Utc>) -> Self {
        FakeInside::Jupyter {
            kernels: vec![("idle".to_owned(), ago(Duration::from_secs(86_400)))],
            terminals: Some(vec![at]),
            connections: 0,
        }
    }
}

impl FakeServer {
    /// A ready server started and active just now (not idle).
    pub fn new(name: &str) -> Self {
        let now = Utc::now();
        FakeServer {
            name: name.to_owned(),
            ready: true,
            pending: None,
            started: Some(now),
            last_activity: Some(now),
            user_options: json!({}),
            inside: FakeInside::idle(),
        }
    }

    /// The user's default server (name `""`), ready and not idle.
    pub fn default_server() -> Self {
        Self::new("")
    }

    /// A named server, ready and not idle.
    pub fn named(name: &str) -> Self {
        Self::new(name)
    }

    /// Ready and idle for `d`: started and last active `d` ago.
    pub fn idle_for(mut self, d: Duration) -> Self {
        self.started = Some(ago(d));
        self.last_activity = Some(ago(d));
        self
    }

    /// Sets `pending` ("spawn", "stop", "check"); a pending server is not ready.
    pub fn pending(mut self, pending: Option<&str>) -> Self {
        self.pending = pending.map(str::to_owned);
        if self.pending.is_some() {
            self.ready = false;
        }
        self
    }

    /// Sets `started` (`None` allowed).
    pub fn started(mut self, at: impl Into<Option<DateTime<Utc>>>) -> Self {
        self.started = at.into();
        self
    }

    /// Sets `last_activity` (`None` allowed).
    pub fn last_activity(mut self, at: impl Into<Option<DateTime<Utc>>>) -> Self {
        self.last_activity = at.into();
        self
    }

    /// Sets what the server says about itself when asked.
    pub fn inside(mut self, inside: FakeInside) -> Self {
        self.inside = inside;
        self
    }

    /// Sets what the user chose at spawn.
    pub fn user_options(mut self, options: Value) -> Self {
        self.user_options = options;
        self
    }

    /// Ready or pending: what the hub calls active.
    pub fn is_active(&self) -> bool {
        self.ready || self.pending.is_some()
    }
}

/// One hub user.
#[derive(Clone, Debug)]
pub struct FakeUser {
    /// The user name; any Unicode, may need percent-encoding.
    pub name: String,
    /// Admin flag (`--cull-admin-users=false` spares them).
    pub admin: bool,
    /// Creation time (absent from the model with minimal scopes).
    pub created: DateTime<Utc>,
    /// Last activity of the user; `None` for a user never seen.
    pub last_activity: Option<DateTime<Utc>>,
    /// Servers by name, active or stopped.
    pub servers: BTreeMap<String, FakeServer>,
    /// The groups the user belongs to (shown only with full scopes, as
    /// `read:users:groups` does).
    pub groups: Vec<String>,
    /// Fault: stopping any of this user's servers answers 202 and leaves the
    /// server pending "stop" (still active), like a spawner slower than the
    /// hub's `slow_stop_timeout`.
    pub slow_stop: bool,
}

impl FakeUser {
    /// A user created just now, never active, with no server.
    pub fn new(name: &str) -> Self {
        FakeUser {
            name: name.to_owned(),
            admin: false,
            created: Utc::now(),
            last_activity: None,
            servers: BTreeMap::new(),
            groups: Vec::new(),
            slow_stop: false,
        }
    }

    /// Last active `d` ago (and created no later than that).
    pub fn idle_for(mut self, d: Duration) -> Self {
        let at = ago(d);
        self.last_activity = Some(at);
        if self.created > at {
            self.created = at;
        }
        self
    }

    /// Sets `admin`.
    pub fn admin(mut self, admin: bool) -> Self {
        self.admin = admin;
        self
    }

    /// Sets `created`.
    pub fn created(mut self, at: DateTime<Utc>) -> Self {
        self.created = at;
        self
    }

    /// Sets `last_activity` (`None` allowed).
    pub fn last_activity(mut self, at: impl Into<Option<DateTime<Utc>>>) -> Self {
        self.last_activity = at.into();
        self
    }

    /// Adds (or replaces) a server.
    pub fn server(mut self, server: FakeServer) -> Self {
        self.servers.insert(server.name.clone(), server);
        self
    }

    /// Adds a group membership.
    pub fn group(mut self, group: &str) -> Self {
        self.groups.push(group.to_owned());
        self
    }

    /// Makes every stop of this user's servers slow (202, stays active).
    pub fn slow_stop(mut self, slow: bool) -> Self {
        self.slow_stop = slow;
        self
    }

    /// Has a ready or pending server: member of `state=active`.
    pub fn is_active(&self) -> bool {
        self.servers.values().any(FakeServer::is_active)
    }

    /// Has a ready server: member of `state=ready`.
    pub fn is_ready(&self) -> bool {
        self.servers.values().any(|s| s.ready)
    }

    /// Names of the servers that are active now.
    pub fn active_server_names(&self) -> Vec<String> {
        self.servers
            .values()
            .filter(|s| s.is_active())
            .map(|s| s.name.clone())
            .collect()
    }
}
