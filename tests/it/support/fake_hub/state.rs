//! What the fake hub knows: its users in id order, and every record a test
//! may assert on (requests received, writes applied, lists answered, requests
//! in flight).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::faults::{Delivery, DownMode, FaultBook};
use super::population::FakeUser;
use super::HubConfig;

/// What a request was, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `GET /hub/api/`.
    Version,
    /// `GET /hub/api/users`.
    ListUsers,
    /// `GET /hub/api/user`.
    WhoAmI,
    /// `GET /hub/api/users/{name}`.
    GetUser,
    /// `DELETE /hub/api/users/{name}/server` or `…/servers/{server}`.
    StopServer,
    /// `DELETE /hub/api/users/{name}`.
    DeleteUser,
    /// `GET /user/{name}/[{server}/]api/…`: a single-user server asked
    /// through the proxy.
    Inside,
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

/// One non-GET request whose answer the hub decided, in the order its effect
/// was applied: answered by the hub (or by a fault with its status, the hub
/// untouched). Requests a fault dropped or stalled without effect are only
/// in the request log.
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
    /// Status decided (whether it reached the client is in the request log).
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

/// What became of a request on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still being handled: waiting out a latency, or sending a slow body.
    InProgress,
    /// The hub's own answer with this status was sent whole (possibly late,
    /// slowly, or followed by a silent close: see the record's `fault`).
    Answered(u16),
    /// A fault's answer with this status was sent whole instead of the hub's.
    Faulted(u16),
    /// The hub was down ([`DownMode::Answer`]): this status was sent whole.
    Down(u16),
    /// The connection was closed after the request was read, with no answer
    /// (a drop fault, or the hub went down meanwhile).
    Dropped,
    /// The head was sent and the body withheld until the client left.
    Stalled,
    /// An answer with this status was started but the connection ended
    /// before it was whole (the client gave up, or the hub went down).
    Cut(u16),
}

/// One request received, whatever became of it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Method as sent.
    pub method: String,
    /// Path below `/hub/api`, each segment percent-decoded (the whole
    /// decoded path for requests outside `/hub/api`).
    pub path: String,
    /// The path exactly as sent.
    pub raw_path: String,
    /// The query string exactly as sent (empty when none).
    pub query: String,
    /// Body as text (empty when none).
    pub body: String,
    /// What it asked for.
    pub kind: RequestKind,
    /// The fault that fired for it, if any.
    pub fault: Option<Delivery>,
    /// What happened on the wire.
    pub outcome: Outcome,
    /// For a `GET /users`: how many were in flight once it arrived, itself
    /// included (pages read together); 0 for other requests.
    pub lists_in_flight: usize,
}

/// Everything the fake hub knows: users and instrumentation. Tests read it
/// through [`FakeHub::state`](super::FakeHub::state) and
/// [`FakeHub::wait_until`](super::FakeHub::wait_until).
pub struct HubState {
    /// The configuration (users, faults and random plan moved out).
    pub(super) config: HubConfig,
    /// The fault rules and random plan with their counters.
    pub(super) faults: FaultBook,
    /// `Some` between `go_down` and `come_back`.
    pub(super) down: Option<DownMode>,
    users: BTreeMap<u64, FakeUser>,
    ids: HashMap<String, u64>,
    next_id: u64,
    /// Every non-GET request whose answer was decided, in order.
    pub(super) writes: Vec<WriteRecord>,
    /// Every `GET /users` answered with a list, in order.
    pub(super) lists: Vec<ListRecord>,
    requests: Vec<RequestRecord>,
    /// Requests being handled now (from the moment the whole request is read
    /// until the answer is sent, the connection dropped, or a stalled client
    /// leaves), but for probes (requests with the [`PROBE_HEADER`]
    /// header, which a benchmark sends to time the hub while the culler
    /// works: they are logged, not counted here).
    ///
    /// [`PROBE_HEADER`]: super::PROBE_HEADER
    pub in_flight: usize,
    /// The most requests ever in flight at once.
    pub max_in_flight: usize,
    /// `GET /users` requests being handled now (counted as `in_flight`).
    pub lists_in_flight: usize,
    /// The most `GET /users` ever in flight at once: pages read together.
    pub max_lists_in_flight: usize,
    /// Requests received, by kind.
    pub counts: HashMap<RequestKind, usize>,
}

impl HubState {
    /// The state of a hub starting with `config`.
    pub(super) fn new(mut config: HubConfig) -> Self {
        let users = std::mem::take(&mut config.users);
        let faults = FaultBook::new(
            std::mem::take(&mut config.faults),
            config.random_faults.take(),
        );
        let mut state = HubState {
            config,
            faults,
            down: None,
            users: BTreeMap::new(),
            ids: HashMap::new(),
            next_id: 1,
            writes: Vec::new(),
            lists: Vec::new(),
            requests: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
            lists_in_flight: 0,
            max_lists_in_flight: 0,
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

    /// The user of that name, to change.
    pub(super) fn user_mut(&mut self, name: &str) -> Option<&mut FakeUser> {
        let id = *self.ids.get(name)?;
        self.users.get_mut(&id)
    }

    /// Deletes the user of that name, if any.
    pub(super) fn remove_user(&mut self, name: &str) {
        if let Some(id) = self.ids.remove(name) {
            self.users.remove(&id);
        }
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

    /// Every request received, in order of arrival (requests the HTTP
    /// layer refuses to read, malformed or chunked, are not in it).
    pub fn requests(&self) -> &[RequestRecord] {
        &self.requests
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

    /// Every DELETE whose answer the hub decided, in order.
    pub fn deletes(&self) -> Vec<WriteRecord> {
        self.writes
            .iter()
            .filter(|w| w.method == "DELETE")
            .cloned()
            .collect()
    }

    /// Every `GET /users` answered with a list, in order.
    pub fn lists(&self) -> &[ListRecord] {
        &self.lists
    }

    /// Counts a request that was just read (in flight too when `counted`);
    /// returns its index in the log.
    pub(super) fn arrive(&mut self, record: RequestRecord, counted: bool) -> usize {
        *self.counts.entry(record.kind).or_insert(0) += 1;
        if counted {
            self.in_flight += 1;
            self.max_in_flight = self.max_in_flight.max(self.in_flight);
            if record.kind == RequestKind::ListUsers {
                self.lists_in_flight += 1;
                self.max_lists_in_flight = self.max_lists_in_flight.max(self.lists_in_flight);
            }
        }
        let mut record = record;
        if record.kind == RequestKind::ListUsers {
            record.lists_in_flight = self.lists_in_flight;
        }
        self.requests.push(record);
        self.requests.len() - 1
    }

    /// Notes the fault that fired for a request.
    pub(super) fn set_fault(&mut self, index: usize, fault: Delivery) {
        self.requests[index].fault = Some(fault);
    }

    /// Notes what became of a request.
    pub(super) fn set_outcome(&mut self, index: usize, outcome: Outcome) {
        self.requests[index].outcome = outcome;
    }

    /// Request number `index` no longer occupies the hub.
    pub(super) fn leave(&mut self, index: usize) {
        self.in_flight -= 1;
        if self.requests[index].kind == RequestKind::ListUsers {
            self.lists_in_flight -= 1;
        }
    }
}
