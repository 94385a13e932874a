//! An in-process fake of the JupyterHub REST API, faithful enough to run the
//! culler binary against it.
//!
//! Why a fake and not only a real hub: a real JupyterHub takes seconds to
//! start, cannot be told to answer 403/500/garbage or to be slow on purpose,
//! cannot move activity timestamps into the past, and does not count requests
//! in flight. This fake imitates the semantics documented in
//! `shared/JUPYTERHUB-API.md` (checked against JupyterHub 6.1.1 responses in
//! `shared/fixtures/`): users ordered by id, `state` filters, the `ready` filter
//! applied in memory after offset/limit (short pages), offsets that shift when
//! servers stop or users are deleted, the pagination envelope, plain lists for
//! old hubs, the DELETE status codes, and JSON errors.
//!
//! It is self-contained (no other test support module) because benchmarks
//! include this file with `#[path]`.
//!
//! Time is controlled by the timestamps given to users and servers (see
//! [`ago`]), never by sleeping.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// The media type that asks JupyterHub >= 2.0 for the pagination envelope.
pub const PAGINATION_MEDIA_TYPE: &str = "application/jupyterhub-pagination+json";

/// A point in time `d` before now, so tests express idleness relative to the
/// moment they run instead of sleeping.
pub fn ago(d: Duration) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(d).expect("duration fits chrono")
}

/// `ago(secs seconds)`, for brevity in tests.
pub fn secs_ago(secs: u64) -> DateTime<Utc> {
    ago(Duration::from_secs(secs))
}

/// `ago(hours hours)`, for brevity in tests.
pub fn hours_ago(hours: u64) -> DateTime<Utc> {
    ago(Duration::from_secs(hours * 3600))
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

    /// Sets `ready`.
    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
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

    /// Sets `user_options`.
    pub fn user_options(mut self, options: Value) -> Self {
        self.user_options = options;
        self
    }

    /// A stopped server that still exists (a named server kept after a stop).
    pub fn stopped(mut self) -> Self {
        self.ready = false;
        self.pending = None;
        self.started = None;
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
    /// Group names (only shown with full scopes).
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

/// A forced answer for matching requests: 403 missing scope, 500, garbage…
#[derive(Clone, Debug)]
pub struct Fault {
    /// "GET", "DELETE", … or "*" for any method.
    pub method: String,
    /// Decoded path below `/hub/api` (e.g. `/users`, `/users/alice/server`);
    /// a trailing `*` makes it a prefix.
    pub path: String,
    /// If set, the raw query string must contain this (e.g. `state=ready`).
    pub query_contains: Option<String>,
    /// Status code to answer.
    pub status: u16,
    /// Body to answer.
    pub body: String,
    /// Content-Type to answer.
    pub content_type: String,
    /// How many more times it fires; `None` = always.
    pub remaining: Option<usize>,
}

impl Fault {
    /// A JSON error like the hub's: `{"status": N, "message": M}`.
    pub fn error(method: &str, path: &str, status: u16, message: &str) -> Self {
        Fault {
            method: method.to_owned(),
            path: path.to_owned(),
            query_contains: None,
            status,
            body: json!({ "status": status, "message": message }).to_string(),
            content_type: "application/json".to_owned(),
            remaining: None,
        }
    }

    /// The hub's 403 for a token lacking `scope`.
    pub fn missing_scope(method: &str, path: &str, scope: &str) -> Self {
        Self::error(
            method,
            path,
            403,
            &format!("Action is not authorized with current scopes; requires any of [{scope}]"),
        )
    }

    /// An arbitrary body with a JSON content type (for garbage answers).
    pub fn raw(method: &str, path: &str, status: u16, body: &str) -> Self {
        Fault {
            method: method.to_owned(),
            path: path.to_owned(),
            query_contains: None,
            status,
            body: body.to_owned(),
            content_type: "application/json".to_owned(),
            remaining: None,
        }
    }

    /// Fires only for requests whose raw query contains `needle`.
    pub fn with_query(mut self, needle: &str) -> Self {
        self.query_contains = Some(needle.to_owned());
        self
    }

    /// Fires only `n` times, then the hub answers normally again.
    pub fn times(mut self, n: usize) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        if self.remaining == Some(0) {
            return false;
        }
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.path == path,
        };
        path_ok
            && self
                .query_contains
                .as_deref()
                .map_or(true, |needle| query.contains(needle))
    }
}

/// How the fake hub behaves; build with the chained setters.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Reported by `GET /hub/api/`; decides features (state filter >= 1.3,
    /// pagination >= 2.0). Parsed leniently like PEP 440 (`6.0.0b2`).
    pub version: String,
    /// If set, every request but the version needs `Authorization: token T`
    /// (or `Bearer T`), else 403 "Missing or invalid credentials.".
    pub token: Option<String>,
    /// `c.JupyterHub.api_page_default_limit` (50).
    pub page_default_limit: usize,
    /// `c.JupyterHub.api_page_max_limit` (200).
    pub page_max_limit: usize,
    /// Model fields as seen with the documented minimal scopes: no `created`,
    /// `groups`, `server`, `pending`.
    pub minimal_scopes: bool,
    /// Timestamps without `Z`, like some older hubs (meant as UTC).
    pub naive_timestamps: bool,
    /// `c.JupyterHub.allow_named_servers` (else 400 on named-server DELETE).
    pub allow_named_servers: bool,
    /// Artificial latency of every request (except `GET /hub/api/`).
    pub latency: Duration,
    /// Latency of DELETE requests, overriding `latency` for them.
    pub delete_latency: Option<Duration>,
    /// Forced answers, checked in order after authentication.
    pub faults: Vec<Fault>,
    /// Initial users, in id order.
    pub users: Vec<FakeUser>,
    /// actix worker threads serving the API.
    pub workers: usize,
    /// The hub's own idea of its API URL, used to build `next.url` (behind a
    /// proxy it differs from the one the culler uses). `None`: from `Host`.
    pub next_url_base: Option<String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            version: "6.1.1".to_owned(),
            token: None,
            page_default_limit: 50,
            page_max_limit: 200,
            minimal_scopes: false,
            naive_timestamps: false,
            allow_named_servers: true,
            latency: Duration::ZERO,
            delete_latency: None,
            faults: Vec::new(),
            users: Vec::new(),
            workers: 2,
            next_url_base: None,
        }
    }
}

impl HubConfig {
    /// A JupyterHub 6.1.1 with no users, no token required, default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the reported version.
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Requires this API token.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Sets the default and maximum page sizes.
    pub fn page_limits(mut self, default: usize, max: usize) -> Self {
        self.page_default_limit = default;
        self.page_max_limit = max;
        self
    }

    /// Answers user models as with the documented minimal scopes.
    pub fn minimal_scopes(mut self) -> Self {
        self.minimal_scopes = true;
        self
    }

    /// Sends timestamps without a zone, like older hubs.
    pub fn naive_timestamps(mut self) -> Self {
        self.naive_timestamps = true;
        self
    }

    /// Sets `allow_named_servers`.
    pub fn allow_named_servers(mut self, allow: bool) -> Self {
        self.allow_named_servers = allow;
        self
    }

    /// Delays every API request (but the version) by `d`.
    pub fn latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    /// Delays every DELETE by `d` (instead of `latency`).
    pub fn delete_latency(mut self, d: Duration) -> Self {
        self.delete_latency = Some(d);
        self
    }

    /// Adds a forced answer.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Adds a user (ids follow the order of addition).
    pub fn user(mut self, user: FakeUser) -> Self {
        self.users.push(user);
        self
    }

    /// Adds users (ids follow the order of iteration).
    pub fn users(mut self, users: impl IntoIterator<Item = FakeUser>) -> Self {
        self.users.extend(users);
        self
    }

    /// Sets the number of actix workers.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets the base used to build `next.url` in pagination envelopes.
    pub fn next_url_base(mut self, base: &str) -> Self {
        self.next_url_base = Some(base.to_owned());
        self
    }
}

/// What a request was, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `GET /hub/api/`.
    Version,
    /// `GET /hub/api/users`.
    ListUsers,
    /// `GET /hub/api/users/{name}`.
    GetUser,
    /// `DELETE /hub/api/users/{name}/server` or `…/servers/{server}`.
    StopServer,
    /// `DELETE /hub/api/users/{name}`.
    DeleteUser,
    /// Anything else (answered 404/405).
    Other,
}

/// What a write request aimed at, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A server of a user (`""` = default server).
    Server {
        /// Decoded user name.
        user: String,
        /// Decoded server name.
        server: String,
    },
    /// A user.
    User {
        /// Decoded user name.
        user: String,
    },
    /// Something else.
    Other,
}

/// One non-GET request, recorded in the order its effect was applied.
#[derive(Clone, Debug)]
pub struct WriteRecord {
    /// HTTP method ("DELETE" normally).
    pub method: String,
    /// Path below `/hub/api`, each segment percent-decoded.
    pub path: String,
    /// The path exactly as sent (to check percent-encoding).
    pub raw_path: String,
    /// Request body as text (empty when none).
    pub body: String,
    /// What it aimed at.
    pub target: Target,
    /// Status answered.
    pub status: u16,
}

impl WriteRecord {
    /// The body parsed as JSON, `None` if empty or not JSON.
    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The body asks to remove the named server (`{"remove": true}`).
    pub fn asks_remove(&self) -> bool {
        self.json_body()
            .and_then(|v| v.get("remove").and_then(Value::as_bool))
            .unwrap_or(false)
    }
}

/// One `GET /users` answered with a list (errors and faults are only
/// counted), as understood by the hub.
#[derive(Clone, Debug)]
pub struct ListRecord {
    /// The `state` filter as sent (even where the hub ignores it).
    pub state: Option<String>,
    /// Effective offset.
    pub offset: usize,
    /// Effective limit.
    pub limit: usize,
    /// Answered with the pagination envelope.
    pub paginated: bool,
    /// Users returned.
    pub returned: usize,
    /// Users matching the query before the `ready` filter.
    pub total: usize,
}

/// Everything the fake hub knows: users and instrumentation.
#[derive(Debug)]
pub struct HubState {
    /// The configuration (faults are consumed from here).
    pub config: HubConfig,
    users: BTreeMap<u64, FakeUser>,
    ids: HashMap<String, u64>,
    next_id: u64,
    /// Every non-GET request, in the order applied.
    pub writes: Vec<WriteRecord>,
    /// Every `GET /users` answered with users, in order.
    pub lists: Vec<ListRecord>,
    /// Requests being handled now.
    pub in_flight: usize,
    /// The most requests ever handled at once.
    pub max_in_flight: usize,
    /// DELETE requests being handled now.
    pub deletes_in_flight: usize,
    /// The most DELETE requests ever handled at once.
    pub max_deletes_in_flight: usize,
    /// Requests received, by kind.
    pub counts: HashMap<RequestKind, usize>,
}

impl HubState {
    fn new(mut config: HubConfig) -> Self {
        let users = std::mem::take(&mut config.users);
        let mut state = HubState {
            config,
            users: BTreeMap::new(),
            ids: HashMap::new(),
            next_id: 1,
            writes: Vec::new(),
            lists: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
            deletes_in_flight: 0,
            max_deletes_in_flight: 0,
            counts: HashMap::new(),
        };
        for user in users {
            state.add_user(user);
        }
        state
    }

    /// Adds a user with the next id (replaces a user of the same name).
    pub fn add_user(&mut self, user: FakeUser) {
        if let Some(id) = self.ids.get(&user.name) {
            self.users.insert(*id, user);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(user.name.clone(), id);
        self.users.insert(id, user);
    }

    /// The user of that name, if they exist.
    pub fn user(&self, name: &str) -> Option<&FakeUser> {
        self.ids.get(name).and_then(|id| self.users.get(id))
    }

    /// The user of that name, mutable.
    pub fn user_mut(&mut self, name: &str) -> Option<&mut FakeUser> {
        let id = *self.ids.get(name)?;
        self.users.get_mut(&id)
    }

    /// All users in id order.
    pub fn users(&self) -> impl Iterator<Item = &FakeUser> {
        self.users.values()
    }

    /// Names of all users in id order.
    pub fn user_names(&self) -> Vec<String> {
        self.users.values().map(|u| u.name.clone()).collect()
    }

    /// Requests received of that kind.
    pub fn count(&self, kind: RequestKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// `(user, server)` of every successful (204) server stop, in order.
    pub fn stopped_servers(&self) -> Vec<(String, String)> {
        self.writes
            .iter()
            .filter(|w| w.status == 204)
            .filter_map(|w| match &w.target {
                Target::Server { user, server } => Some((user.clone(), server.clone())),
                _ => None,
            })
            .collect()
    }

    /// Names of users deleted successfully (204), in order.
    pub fn deleted_users(&self) -> Vec<String> {
        self.writes
            .iter()
            .filter(|w| w.status == 204)
            .filter_map(|w| match &w.target {
                Target::User { user } => Some(user.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every DELETE, whatever its answer, in order.
    pub fn deletes(&self) -> Vec<WriteRecord> {
        self.writes
            .iter()
            .filter(|w| w.method == "DELETE")
            .cloned()
            .collect()
    }

    fn version(&self) -> (u64, u64) {
        parse_version(&self.config.version)
    }

    fn take_fault(&mut self, method: &str, path: &str, query: &str) -> Option<Fault> {
        let fault = self
            .config
            .faults
            .iter_mut()
            .find(|f| f.matches(method, path, query))?;
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        Some(fault.clone())
    }
}

/// Major and minor of a PEP 440 version, leniently (`6.0.0b2` → (6, 0)).
fn parse_version(version: &str) -> (u64, u64) {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u64>()
            .unwrap_or(0)
    });
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<HubState>>,
    changed: Arc<Condvar>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake hub; stops (and joins its thread) on drop.
pub struct FakeHub {
    url: String,
    shared: Shared,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    /// Starts the hub on `127.0.0.1:<free port>` in its own thread with its
    /// own actix System, and returns once it accepts connections.
    pub fn start(config: HubConfig) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake hub");
        let port = listener.local_addr().expect("fake hub address").port();
        let workers = config.workers;
        let shared = Shared {
            state: Arc::new(Mutex::new(HubState::new(config))),
            changed: Arc::new(Condvar::new()),
        };
        let data = web::Data::new(shared.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("fake-hub-{port}"))
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .default_service(web::to(handle))
                    })
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("fake hub listen")
                    .run();
                    let _ = tx.send(server.handle());
                    let _ = server.await;
                });
            })
            .expect("spawn fake hub thread");
        let handle = rx.recv().expect("fake hub did not start");
        FakeHub {
            url: format!("http://127.0.0.1:{port}/hub/api"),
            shared,
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/hub/api`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The shared state, for tests that need the raw handle.
    pub fn state_handle(&self) -> Arc<Mutex<HubState>> {
        self.shared.state.clone()
    }

    /// Locks the state to read or change it (keep the guard short: the hub
    /// waits for it).
    pub fn state(&self) -> MutexGuard<'_, HubState> {
        self.shared.lock()
    }

    /// Waits until `pred` holds (re-checked whenever a request finishes), or
    /// `timeout` passes; returns whether it held. This is how tests wait for a
    /// culler running in the background, instead of sleeping.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&HubState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.shared.lock();
        loop {
            if pred(&guard) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .shared
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Adds a user while the hub runs.
    pub fn add_user(&self, user: FakeUser) {
        self.state().add_user(user);
    }

    /// Whether the user still exists.
    pub fn has_user(&self, name: &str) -> bool {
        self.state().user(name).is_some()
    }

    /// Names of the user's active servers now (empty if no such user).
    pub fn active_servers(&self, name: &str) -> Vec<String> {
        self.state()
            .user(name)
            .map(FakeUser::active_server_names)
            .unwrap_or_default()
    }

    /// Names of all users in id order.
    pub fn user_names(&self) -> Vec<String> {
        self.state().user_names()
    }

    /// Every DELETE so far, in order.
    pub fn deletes(&self) -> Vec<WriteRecord> {
        self.state().deletes()
    }

    /// `(user, server)` of every successful server stop, in order.
    pub fn stopped_servers(&self) -> Vec<(String, String)> {
        self.state().stopped_servers()
    }

    /// Names of users deleted successfully, in order.
    pub fn deleted_users(&self) -> Vec<String> {
        self.state().deleted_users()
    }

    /// Every `GET /users` so far.
    pub fn lists(&self) -> Vec<ListRecord> {
        self.state().lists.clone()
    }

    /// The most requests ever handled at once.
    pub fn max_in_flight(&self) -> usize {
        self.state().max_in_flight
    }

    /// Requests received of that kind.
    pub fn count(&self, kind: RequestKind) -> usize {
        self.state().count(kind)
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // The stop command is sent at once; the returned future only
            // waits for completion, which joining the thread does too.
            drop(handle.stop(false));
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts a request in flight for as long as it lives (also when the client
/// goes away and actix drops the handler), and wakes waiters when it ends.
struct InFlight {
    shared: Shared,
    is_delete: bool,
}

impl InFlight {
    fn enter(shared: &Shared, kind: RequestKind, is_delete: bool) -> Self {
        let mut s = shared.lock();
        *s.counts.entry(kind).or_insert(0) += 1;
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        if is_delete {
            s.deletes_in_flight += 1;
            s.max_deletes_in_flight = s.max_deletes_in_flight.max(s.deletes_in_flight);
        }
        InFlight {
            shared: shared.clone(),
            is_delete,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut s = self.shared.lock();
            s.in_flight -= 1;
            if self.is_delete {
                s.deletes_in_flight -= 1;
            }
        }
        self.shared.changed.notify_all();
    }
}

/// The single actix handler: routes by hand so that the fake controls path
/// decoding and records exactly what was sent.
async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let raw_path = req.uri().path().to_owned();
    let query = req.query_string().to_owned();
    let Some(rel_raw) = raw_path.strip_prefix("/hub/api") else {
        return error(404, Some("Not Found"));
    };
    let segments: Vec<String> = rel_raw
        .split('/')
        .skip(1)
        .map(|s| percent_decode(s, false))
        .collect();
    let path = format!("/{}", segments.join("/"));
    let route = Route::parse(&method, &segments);
    let kind = route.kind();
    let is_delete = method == "DELETE";
    let _in_flight = InFlight::enter(&shared, kind, is_delete);

    let latency = {
        let s = shared.lock();
        match kind {
            RequestKind::Version => Duration::ZERO,
            _ if is_delete => s.config.delete_latency.unwrap_or(s.config.latency),
            _ => s.config.latency,
        }
    };
    if !latency.is_zero() {
        actix_rt::time::sleep(latency).await;
    }

    let mut s = shared.lock();
    let (status, response) = answer(&mut s, &req, &route, &method, &path, &query, &body);
    if method != "GET" && method != "HEAD" {
        let target = route.target();
        s.writes.push(WriteRecord {
            method,
            path,
            raw_path,
            body: String::from_utf8_lossy(&body).into_owned(),
            target,
            status,
        });
    }
    response
}

/// The request routed to the hub's handlers, names decoded.
enum Route {
    Version,
    ListUsers,
    GetUser(String),
    DeleteUser(String),
    StopServer { user: String, server: String },
    NotFound,
    MethodNotAllowed,
}

impl Route {
    fn parse(method: &str, segments: &[String]) -> Route {
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (route, allowed): (Route, &[&str]) = match segs.as_slice() {
            [] | [""] => (Route::Version, &["GET"]),
            ["users"] | ["users", ""] => (Route::ListUsers, &["GET"]),
            ["users", name] => {
                if method == "DELETE" {
                    (Route::DeleteUser(name.to_string()), &["DELETE"])
                } else {
                    (Route::GetUser(name.to_string()), &["GET"])
                }
            }
            ["users", name, "server"] => (
                Route::StopServer {
                    user: name.to_string(),
                    server: String::new(),
                },
                &["DELETE"],
            ),
            ["users", name, "servers", server] => (
                Route::StopServer {
                    user: name.to_string(),
                    server: server.to_string(),
                },
                &["DELETE"],
            ),
            _ => return Route::NotFound,
        };
        if allowed.contains(&method) {
            route
        } else {
            Route::MethodNotAllowed
        }
    }

    fn kind(&self) -> RequestKind {
        match self {
            Route::Version => RequestKind::Version,
            Route::ListUsers => RequestKind::ListUsers,
            Route::GetUser(_) => RequestKind::GetUser,
            Route::DeleteUser(_) => RequestKind::DeleteUser,
            Route::StopServer { .. } => RequestKind::StopServer,
            Route::NotFound | Route::MethodNotAllowed => RequestKind::Other,
        }
    }

    fn target(&self) -> Target {
        match self {
            Route::DeleteUser(user) => Target::User { user: user.clone() },
            Route::StopServer { user, server } => Target::Server {
                user: user.clone(),
                server: server.clone(),
            },
            _ => Target::Other,
        }
    }
}

/// Authenticates, applies faults, then the hub's semantics.
fn answer(
    s: &mut HubState,
    req: &HttpRequest,
    route: &Route,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> (u16, HttpResponse) {
    if !matches!(route, Route::Version) {
        if let Some(expected) = s.config.token.clone() {
            if presented_token(req, query).as_deref() != Some(expected.as_str()) {
                return (403, error(403, Some("Missing or invalid credentials.")));
            }
        }
    }
    if let Some(fault) = s.take_fault(method, path, query) {
        let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::BAD_GATEWAY);
        return (
            fault.status,
            HttpResponse::build(status)
                .content_type(fault.content_type)
                .body(fault.body),
        );
    }
    let (status, response) = match route {
        Route::Version => (
            200,
            HttpResponse::Ok().json(json!({ "version": s.config.version })),
        ),
        Route::ListUsers => list_users(s, req, query),
        Route::GetUser(name) => match s.user(name) {
            Some(user) => (200, HttpResponse::Ok().json(user_model(&s.config, user))),
            None => (404, error(404, None)),
        },
        Route::DeleteUser(name) => delete_user(s, name),
        Route::StopServer { user, server } => stop_server(s, user, server, body),
        Route::NotFound => (404, error(404, Some("Not Found"))),
        Route::MethodNotAllowed => (405, error(405, Some("Method Not Allowed"))),
    };
    (status, response)
}

/// The token from `Authorization: token T` / `Bearer T` or `?token=T`.
fn presented_token(req: &HttpRequest, query: &str) -> Option<String> {
    if let Some(value) = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or("");
        let token = parts.next().unwrap_or("").trim();
        if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
            return Some(token.to_owned());
        }
        return None;
    }
    parse_query(query)
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// `GET /users`: state filter, offset/limit, ready post-filter, envelope.
fn list_users(s: &mut HubState, req: &HttpRequest, query: &str) -> (u16, HttpResponse) {
    let version = s.version();
    let params = parse_query(query);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let sent_state = get("state");
    // Hubs before 1.3 do not know the filter and ignore it.
    let state = if version >= (1, 3) {
        sent_state.clone()
    } else {
        None
    };
    if let Some(other) = state
        .as_deref()
        .filter(|st| !matches!(*st, "active" | "ready" | "inactive"))
    {
        let message = format!("Unrecognized state filter: '{other}'");
        return (400, error(400, Some(&message)));
    }
    let paging = version >= (2, 0);
    let accepts_pagination = paging
        && req
            .headers()
            .get_all("Accept")
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(PAGINATION_MEDIA_TYPE));

    let (offset, limit) = if paging {
        let max = s.config.page_max_limit.max(1);
        let default = if accepts_pagination {
            s.config.page_default_limit
        } else {
            max
        };
        let parse = |v: Option<String>, default: usize| -> Option<usize> {
            match v {
                None => Some(default),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .map(|n| n.unsigned_abs() as usize),
            }
        };
        match (parse(get("offset"), 0), parse(get("limit"), default)) {
            (Some(offset), Some(limit)) => (offset, limit.clamp(1, max)),
            _ => {
                return (
                    400,
                    error(
                        400,
                        Some("Invalid argument type, offset and limit must be integers"),
                    ),
                )
            }
        }
    } else {
        (0, usize::MAX)
    };

    let base: fn(&FakeUser) -> bool = match state.as_deref() {
        Some("active") | Some("ready") => FakeUser::is_active,
        Some("inactive") => |u: &FakeUser| !u.is_active(),
        _ => |_: &FakeUser| true,
    };
    let post_ready = state.as_deref() == Some("ready");
    let end = offset.saturating_add(limit);
    let mut total = 0usize;
    let mut items = Vec::new();
    for user in s.users.values() {
        if !base(user) {
            continue;
        }
        if total >= offset && total < end && (!post_ready || user.is_ready()) {
            items.push(user_model(&s.config, user));
        }
        total += 1;
    }
    let returned = items.len();
    s.lists.push(ListRecord {
        state: sent_state,
        offset,
        limit: if paging { limit } else { 0 },
        paginated: accepts_pagination,
        returned,
        total,
    });

    let body = if accepts_pagination {
        let next = if end < total {
            let base_url = s.config.next_url_base.clone().unwrap_or_else(|| {
                let host = req
                    .headers()
                    .get("Host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("127.0.0.1");
                format!("http://{host}/hub/api")
            });
            let mut pairs = params.clone();
            set_param(&mut pairs, "offset", end.to_string());
            set_param(&mut pairs, "limit", limit.to_string());
            let qs = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            json!({ "offset": end, "limit": limit, "url": format!("{base_url}/users?{qs}") })
        } else {
            Value::Null
        };
        json!({
            "items": items,
            "_pagination": { "offset": offset, "limit": limit, "total": total, "next": next },
        })
    } else {
        Value::Array(items)
    };
    (200, HttpResponse::Ok().json(body))
}

fn set_param(pairs: &mut Vec<(String, String)>, key: &str, value: String) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(pair) => pair.1 = value,
        None => pairs.push((key.to_owned(), value)),
    }
}

/// `DELETE /users/{name}/server[s/{server}]` with the hub's status codes.
fn stop_server(s: &mut HubState, user: &str, server: &str, body: &[u8]) -> (u16, HttpResponse) {
    let allow_named = s.config.allow_named_servers;
    let Some(u) = s.user_mut(user) else {
        return (404, error(404, None));
    };
    let remove = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => v.get("remove").and_then(Value::as_bool).unwrap_or(false),
            Err(_) => return (400, error(400, Some("Invalid JSON in body of request"))),
        }
    };
    if !server.is_empty() {
        if !allow_named {
            return (400, error(400, Some("Named servers are not enabled.")));
        }
        if !u.servers.contains_key(server) {
            let message = format!("{user} has no server named '{server}'");
            return (404, error(404, Some(&message)));
        }
    } else if remove {
        return (400, error(400, Some("Cannot delete the default server")));
    }
    let slow = u.slow_stop;
    let Some(srv) = u.servers.get_mut(server) else {
        // A default server never started: nothing to stop.
        return (204, HttpResponse::NoContent().finish());
    };
    if srv.pending.as_deref() == Some("stop") {
        return (202, HttpResponse::Accepted().finish());
    }
    if srv.is_active() {
        if slow {
            srv.ready = false;
            srv.pending = Some("stop".to_owned());
            return (202, HttpResponse::Accepted().finish());
        }
        srv.ready = false;
        srv.pending = None;
        srv.started = None;
    }
    if remove {
        u.servers.remove(server);
    }
    (204, HttpResponse::NoContent().finish())
}

/// `DELETE /users/{name}`: the hub stops running servers itself first, and
/// refuses (400) while one is still stopping.
fn delete_user(s: &mut HubState, name: &str) -> (u16, HttpResponse) {
    let Some(u) = s.user_mut(name) else {
        return (404, error(404, None));
    };
    let stopping = format!("{name}'s server is in the process of stopping, please wait.");
    let slow = u.slow_stop;
    if u.servers
        .values()
        .any(|srv| srv.pending.as_deref() == Some("stop"))
    {
        return (400, error(400, Some(&stopping)));
    }
    for srv in u.servers.values_mut().filter(|srv| srv.is_active()) {
        if slow {
            srv.ready = false;
            srv.pending = Some("stop".to_owned());
        } else {
            srv.ready = false;
            srv.pending = None;
            srv.started = None;
        }
    }
    if slow && u.is_active() {
        return (400, error(400, Some(&stopping)));
    }
    if let Some(id) = s.ids.remove(name) {
        s.users.remove(&id);
    }
    (204, HttpResponse::NoContent().finish())
}

fn timestamp(config: &HubConfig, at: Option<DateTime<Utc>>) -> Value {
    match at {
        None => Value::Null,
        Some(at) if config.naive_timestamps => {
            Value::String(at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        }
        Some(at) => Value::String(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    }
}

/// The user model as the hub serialises it for a token with the culler's
/// scopes (or the minimal ones).
fn user_model(config: &HubConfig, user: &FakeUser) -> Value {
    let (major, _) = parse_version(&config.version);
    let escaped = url_segment(&user.name);
    let mut m = Map::new();
    if !config.minimal_scopes {
        let default = user.servers.get("");
        m.insert(
            "pending".into(),
            default
                .and_then(|d| d.pending.clone())
                .map_or(Value::Null, Value::String),
        );
        m.insert(
            "server".into(),
            if default.is_some_and(|d| d.ready) {
                Value::String(format!("/user/{escaped}/"))
            } else {
                Value::Null
            },
        );
        m.insert("groups".into(), json!(user.groups));
        m.insert("created".into(), timestamp(config, Some(user.created)));
    }
    m.insert("name".into(), Value::String(user.name.clone()));
    m.insert(
        "last_activity".into(),
        timestamp(config, user.last_activity),
    );
    m.insert("kind".into(), Value::String("user".into()));
    if !config.minimal_scopes {
        if major >= 2 {
            m.insert("roles".into(), json!(["user"]));
        }
        m.insert("auth_state".into(), Value::Null);
    }
    m.insert("admin".into(), Value::Bool(user.admin));
    let mut servers = Map::new();
    for srv in user.servers.values().filter(|s| s.is_active()) {
        servers.insert(srv.name.clone(), server_model(config, user, &escaped, srv));
    }
    m.insert("servers".into(), Value::Object(servers));
    if major >= 5 {
        m.insert("user_info".into(), Value::Null);
    }
    Value::Object(m)
}

fn server_model(config: &HubConfig, user: &FakeUser, escaped: &str, srv: &FakeServer) -> Value {
    let (major, _) = parse_version(&config.version);
    let (url, progress) = if srv.name.is_empty() {
        (
            format!("/user/{escaped}/"),
            format!("/hub/api/users/{escaped}/server/progress"),
        )
    } else {
        let s = url_segment(&srv.name);
        (
            format!("/user/{escaped}/{s}/"),
            format!("/hub/api/users/{escaped}/servers/{s}/progress"),
        )
    };
    let mut m = Map::new();
    m.insert("name".into(), Value::String(srv.name.clone()));
    if major >= 6 {
        m.insert("display_name".into(), Value::String(srv.name.clone()));
    }
    m.insert(
        "full_name".into(),
        Value::String(format!("{}/{}", user.name, srv.name)),
    );
    m.insert("last_activity".into(), timestamp(config, srv.last_activity));
    m.insert("started".into(), timestamp(config, srv.started));
    m.insert(
        "pending".into(),
        srv.pending.clone().map_or(Value::Null, Value::String),
    );
    m.insert("ready".into(), Value::Bool(srv.ready));
    m.insert("stopped".into(), Value::Bool(!srv.is_active()));
    m.insert("url".into(), Value::String(url));
    m.insert("user_options".into(), srv.user_options.clone());
    m.insert("progress_url".into(), Value::String(progress));
    m.insert("full_url".into(), Value::Null);
    m.insert("full_progress_url".into(), Value::Null);
    Value::Object(m)
}

/// A hub-style JSON error body.
fn error(status: u16, message: Option<&str>) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code).json(json!({ "status": status, "message": message }))
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`, for
/// queries); invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A name as the hub writes it into the `url` fields (`@` left as is, as in
/// the 6.1.1 fixtures).
fn url_segment(name: &str) -> String {
    percent_encode(name).replace("%40", "@")
}

/// `a=1&b=x+y` → `[("a","1"), ("b","x y")]`, in order.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}
