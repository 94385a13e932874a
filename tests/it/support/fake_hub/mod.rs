//! An in-process fake of the JupyterHub REST API, faithful enough to run the
//! culler binary against it, and able to misbehave on purpose.
//!
//! Why a fake next to the real-hub tests (`tests/it/real_hub.rs`): a real
//! JupyterHub takes seconds to start and cannot be told to answer 403, 500
//! or garbage, to be slow, to lie in its pagination envelope, to drop or
//! stall a connection, or to go away and come back; it cannot move activity
//! timestamps into the past, and it does not count requests in flight. The
//! real hub proves the culler works with the real thing; this fake makes the
//! rest (scale, latency, faults) cheap, exact and reproducible.
//!
//! The semantics imitate `shared/JUPYTERHUB-API.md` (checked against
//! JupyterHub 6.1.1 responses): users ordered by id, `state` filters, the
//! `ready` filter applied in memory after offset/limit (short pages),
//! offsets that shift when servers stop or users are deleted, the
//! pagination envelope, plain lists for old hubs, the DELETE status codes,
//! and JSON errors.
//!
//! The files, by concern:
//! - this one: [`HubConfig`] (what the hub is and how it misbehaves) and
//!   [`FakeHub`] (start, stop, records, waiting, going down);
//! - `population`: [`FakeUser`], [`FakeServer`] and [`ago`];
//! - `state`: [`HubState`] and the records tests assert on;
//! - `routes`: the JupyterHub semantics;
//! - `faults`: [`Fault`] rules, [`FaultAction`]s, [`RandomFaults`];
//! - `serve`: one request from arrival to the wire;
//! - `http`: the HTTP/1.1 server, on a plain `TcpListener` because faults
//!   at the connection level need to own the socket.
//!
//! It depends on no other test support module, because benchmarks include
//! it with `#[path = "../tests/it/support/fake_hub/mod.rs"] mod fake_hub;`.
//!
//! Time is controlled by the timestamps given to users and servers (see
//! [`ago`]), never by sleeping; tests wait for the culler with
//! [`FakeHub::wait_until`].

mod faults;
mod http;
mod population;
mod routes;
mod serve;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

pub use faults::{Delivery, DownMode, Fault, FaultAction, RandomFaults};
pub use population::{ago, FakeInside, FakeServer, FakeUser};
pub use routes::{percent_encode, PAGINATION_MEDIA_TYPE};
pub use state::{HubState, ListRecord, Outcome, RequestKind, RequestRecord, Target, WriteRecord};

use faults::{PaginationLies, TotalLie};

/// A request carrying this header is a probe: served like any other, but
/// not counted in [`HubState::in_flight`], so that a benchmark can time the
/// hub during a pass without blurring the culler's concurrency.
pub const PROBE_HEADER: &str = "X-Probe";
use serve::Hub;

/// What the fake hub is and how it misbehaves; build it with the chained
/// setters, then [`FakeHub::start`] it.
#[derive(Clone, Debug)]
pub struct HubConfig {
    version: String,
    token: Option<String>,
    other_tokens: Vec<OtherToken>,
    page_default_limit: usize,
    page_max_limit: usize,
    minimal_scopes: bool,
    scopes: Option<Vec<String>>,
    naive_timestamps: bool,
    latency: Duration,
    delete_latency: Option<Duration>,
    faults: Vec<Fault>,
    random_faults: Option<RandomFaults>,
    lies: PaginationLies,
    idle_close: Option<Duration>,
    users: Vec<FakeUser>,
    next_url_base: Option<String>,
    raw_names: Vec<(String, String)>,
}

/// A token of someone other than the culler, for [`HubConfig::other_token`].
#[derive(Clone, Debug)]
pub(super) struct OtherToken {
    token: String,
    pub owner: String,
    pub scopes: Vec<String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            version: "6.1.1".to_owned(),
            token: None,
            other_tokens: Vec::new(),
            page_default_limit: 50,
            page_max_limit: 200,
            minimal_scopes: false,
            scopes: None,
            naive_timestamps: false,
            latency: Duration::ZERO,
            delete_latency: None,
            faults: Vec::new(),
            random_faults: None,
            lies: PaginationLies::default(),
            idle_close: None,
            users: Vec::new(),
            next_url_base: None,
            raw_names: Vec::new(),
        }
    }
}

impl HubConfig {
    /// A JupyterHub 6.1.1 with no users, no token required, default page
    /// limits (50, max 200), honest and prompt.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the version reported by `GET /hub/api/`; it decides features
    /// (state filter from 1.3, pagination from 2.0) and model fields. Parsed
    /// leniently like PEP 440 (`6.0.0b2`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Requires this API token (`Authorization: token T`, `Bearer T` or
    /// `?token=T`) on every request but the version, else 403 "Missing or
    /// invalid credentials.".
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Knows another token, of the service `owner`, with these scopes:
    /// `GET /user` with it says so (a Prometheus token with
    /// `read:metrics`, say, shown to the culler's `/metrics`).
    pub fn other_token(mut self, token: &str, owner: &str, scopes: &[&str]) -> Self {
        self.other_tokens.push(OtherToken {
            token: token.to_owned(),
            owner: owner.to_owned(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// The other token `token`, if the hub knows it.
    pub(super) fn other(&self, token: Option<&str>) -> Option<&OtherToken> {
        let token = token?;
        self.other_tokens.iter().find(|other| other.token == token)
    }

    /// Sets `c.JupyterHub.api_page_default_limit` and `api_page_max_limit`,
    /// to get many pages from few users.
    pub fn page_limits(mut self, default: usize, max: usize) -> Self {
        self.page_default_limit = default;
        self.page_max_limit = max;
        self
    }

    /// Answers user models as with the documented minimal scopes: no
    /// `created`, `groups`, `server`, `pending`.
    pub fn minimal_scopes(mut self) -> Self {
        self.minimal_scopes = true;
        self
    }

    /// Sets the scopes `GET /user` reports for the token (by default those
    /// the models are shown with: the documented culler scopes, plus
    /// `read:users:groups` unless [`HubConfig::minimal_scopes`]).
    pub fn token_scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
        self
    }

    /// The scopes `GET /user` reports.
    pub(super) fn scopes(&self) -> Vec<String> {
        if let Some(scopes) = &self.scopes {
            return scopes.clone();
        }
        let mut scopes = vec![
            "delete:servers",
            "list:users",
            "read:servers",
            "read:users:activity",
        ];
        if !self.minimal_scopes {
            scopes.push("read:users:groups");
            scopes.push("access:servers");
        }
        scopes.into_iter().map(str::to_owned).collect()
    }

    /// Sends timestamps without a zone, like some older hubs (meant as UTC).
    pub fn naive_timestamps(mut self) -> Self {
        self.naive_timestamps = true;
        self
    }

    /// Delays every API request but the version by `d`: a slow hub.
    pub fn latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    /// Delays every DELETE by `d` instead of `latency`: a hub whose spawners
    /// take their time to stop.
    pub fn delete_latency(mut self, d: Duration) -> Self {
        self.delete_latency = Some(d);
        self
    }

    /// Adds a fault rule; rules are checked in order after the token check.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Sets the random fault plan, consulted when no rule fires.
    pub fn random_faults(mut self, plan: RandomFaults) -> Self {
        self.random_faults = Some(plan);
        self
    }

    /// Pagination envelopes claim this `total` whatever the truth (e.g.
    /// `u64::MAX`, sent as the JSON number 18446744073709551615).
    pub fn lie_total(mut self, total: u64) -> Self {
        self.lies.total = Some(TotalLie::Fixed(total));
        self
    }

    /// Pagination envelopes claim the true `total` plus `delta` (negative:
    /// too small; floored at 0).
    pub fn lie_total_by(mut self, delta: i64) -> Self {
        self.lies.total = Some(TotalLie::Shifted(delta));
        self
    }

    /// Pagination envelopes claim this `limit` while pages hold the real
    /// one (e.g. claim 50 with `page_limits(20, 20)`).
    pub fn claim_limit(mut self, limit: usize) -> Self {
        self.lies.claimed_limit = Some(limit);
        self
    }

    /// `GET /users` ignores `offset`: every page holds the first users, while
    /// the envelope echoes the offset asked for.
    pub fn ignore_offset(mut self) -> Self {
        self.lies.ignore_offset = true;
        self
    }

    /// Closes, without a word, every kept-alive connection that waits `d`
    /// for its next request (a proxy dropping idle connections);
    /// `Duration::ZERO` closes right after every answer.
    pub fn close_idle_connections_after(mut self, d: Duration) -> Self {
        self.idle_close = Some(d);
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

    /// Writes the name of user `name` in user lists as this raw JSON text
    /// instead (e.g. `"bad\ud800"`, a lone surrogate escape, as Python's
    /// `json` writes a name holding one): text serde cannot produce from a
    /// string. The hub itself still knows the user as `name`.
    pub fn raw_name(mut self, name: &str, json: &str) -> Self {
        self.raw_names.push((name.to_owned(), json.to_owned()));
        self
    }

    /// Sets the hub's own idea of its API URL, used to build `next.url`
    /// (behind a proxy it differs from the one the culler uses); by default
    /// it comes from `Host`.
    pub fn next_url_base(mut self, base: &str) -> Self {
        self.next_url_base = Some(base.to_owned());
        self
    }
}

/// A running fake hub on `127.0.0.1`; stops (and joins its threads) on drop.
pub struct FakeHub {
    url: String,
    hub: Arc<Hub>,
    server: http::Server,
}

impl FakeHub {
    /// Starts the hub on a free port and returns once it accepts
    /// connections.
    pub fn start(config: HubConfig) -> FakeHub {
        let hub = Arc::new(Hub::new(HubState::new(config)));
        let server = http::Server::start(Arc::clone(&hub) as Arc<dyn http::Service>)
            .expect("start the fake hub");
        FakeHub {
            url: format!("http://{}/hub/api", server.addr()),
            hub,
            server,
        }
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/hub/api`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The socket address, for tests that talk raw TCP to see what happens
    /// to connections.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Locks the state to read or change it (keep the guard short: the hub
    /// waits for it).
    pub fn state(&self) -> MutexGuard<'_, HubState> {
        self.hub.lock()
    }

    /// Waits until `pred` holds (re-checked whenever the hub changes its
    /// state: a request arrives, is answered, dropped or stalled, or ends),
    /// or `timeout` passes; returns whether it held. This is how tests wait
    /// for a culler running in the background, instead of sleeping.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&HubState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.hub.lock();
        loop {
            if pred(&guard) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .hub
                .changed()
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes the hub down: connections refused, or every request answered
    /// with a proxy's error status; requests waiting out a latency end at
    /// once the same way. Returns once it is down.
    pub fn go_down(&self, mode: DownMode) {
        self.hub.update(|s| s.down = Some(mode));
        match mode {
            DownMode::Refuse => self.server.close(),
            DownMode::Answer(_) => self.server.interrupt(),
        }
    }

    /// Restores normal service on the same URL (listening again on the same
    /// port if it was closed). Returns once it serves. Panics if something
    /// else took the port while it was closed (it is an ephemeral port, so
    /// possible in principle; not seen in practice).
    pub fn come_back(&self) {
        self.server
            .reopen()
            .expect("fake hub: listen again on its port");
        self.hub.update(|s| s.down = None);
    }

    /// Adds a user while the hub runs.
    pub fn add_user(&self, user: FakeUser) {
        self.state().add_user(user);
    }

    /// Changes a user's server while the hub runs (activity, a spawn
    /// that finishes); panics if there is no such server.
    pub fn update_server(&self, user: &str, server: &str, change: impl FnOnce(&mut FakeServer)) {
        self.hub.update(|s| {
            let u = s.user_mut(user).expect("no such user");
            change(u.servers.get_mut(server).expect("no such server"));
        });
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

    /// Every DELETE whose answer the hub decided so far, in order.
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

    /// Every `GET /users` answered with a list so far.
    pub fn lists(&self) -> Vec<ListRecord> {
        self.state().lists().to_vec()
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests().to_vec()
    }

    /// The most requests ever in flight at once.
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
        self.server.stop();
    }
}
