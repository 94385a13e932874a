//! Faults: what a misbehaving hub, or the proxy in front of it, does to a
//! request instead of answering it well, and how a request is matched to one.
//!
//! A fault is chosen per request, after authentication: first the explicit
//! rules ([`Fault`], in the order added; the first that fires wins), then the
//! random plan ([`RandomFaults`]). Hub-wide misbehaviour lives elsewhere:
//! lying pagination envelopes and idle-connection closing are
//! [`HubConfig`](super::HubConfig) settings, going down is
//! [`FakeHub::go_down`](super::FakeHub::go_down).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

/// How the hub is down between [`FakeHub::go_down`](super::FakeHub::go_down)
/// and [`FakeHub::come_back`](super::FakeHub::come_back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownMode {
    /// The port is closed: new connections are refused and open ones are
    /// closed, as when the hub process (and nothing in front of it) is gone.
    Refuse,
    /// Every request is answered at once with this status and a small HTML
    /// page, as a proxy in front of a restarting hub does (configurable-http-
    /// proxy answers 503, others 502).
    Answer(u16),
}

/// What reaches the client when a fault fires; also what the request log
/// shows (see [`RequestRecord::fault`](super::RequestRecord::fault)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The hub's own answer (the fault only adds its delay and headers).
    Normal,
    /// This answer instead of the hub's.
    Respond {
        /// Status code.
        status: u16,
        /// `Content-Type` header.
        content_type: String,
        /// Body.
        body: String,
    },
    /// No answer: the socket is closed as soon as the request is read.
    Drop,
    /// The hub's answer, without `Connection: close`, then the socket is
    /// closed at once: the client's pooled connection is dead.
    SilentClose,
    /// A `200` head announcing a JSON body that never comes; the socket is
    /// held open until the client leaves or the hub stops.
    Stall,
    /// The hub's answer with the body sent `chunk` bytes at a time and
    /// `pause` between the pieces.
    SlowBody {
        /// Bytes per piece.
        chunk: usize,
        /// Wait between two pieces.
        pause: Duration,
    },
}

/// What a fault does: a [`Delivery`] plus a delay, extra headers, and
/// whether the hub acts on the request first. Used by [`Fault`] rules and as
/// the menu of a [`RandomFaults`] plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultAction {
    /// What reaches the client.
    pub(super) delivery: Delivery,
    /// Headers added to whatever head is sent.
    pub(super) headers: Vec<(String, String)>,
    /// Wait before acting.
    pub(super) delay: Duration,
    /// The hub acts on the request even when its answer is replaced.
    pub(super) with_effect: bool,
}

impl FaultAction {
    fn new(delivery: Delivery) -> Self {
        FaultAction {
            delivery,
            headers: Vec::new(),
            delay: Duration::ZERO,
            with_effect: false,
        }
    }

    /// Answers this status, media type and body instead of the hub.
    pub fn respond(status: u16, content_type: &str, body: &str) -> Self {
        Self::new(Delivery::Respond {
            status,
            content_type: content_type.to_owned(),
            body: body.to_owned(),
        })
    }

    /// A JSON error like the hub's: `{"status": N, "message": M}`.
    pub fn error(status: u16, message: &str) -> Self {
        let body = json!({ "status": status, "message": message }).to_string();
        Self::respond(status, "application/json", &body)
    }

    /// Closes the connection once the request is read, without answering:
    /// a proxy or hub that died mid-request.
    pub fn drop_connection() -> Self {
        Self::new(Delivery::Drop)
    }

    /// Answers normally, then closes the socket without having said
    /// `Connection: close`: a server that drops kept-alive connections.
    pub fn silent_close() -> Self {
        Self::new(Delivery::SilentClose)
    }

    /// Sends a `200` status line and headers with a `Content-Length`, then
    /// nothing: a hub that hangs after its headers.
    pub fn stall() -> Self {
        Self::new(Delivery::Stall)
    }

    /// Sends the hub's answer with the body in `chunk`-byte pieces and
    /// `pause` between them: a slow link or an overloaded proxy.
    pub fn slow_body(chunk: usize, pause: Duration) -> Self {
        Self::new(Delivery::SlowBody { chunk, pause })
    }

    /// Only waits `d` before the hub answers: one slow endpoint rather than
    /// a slow hub (see [`HubConfig::latency`](super::HubConfig::latency)).
    pub fn delay(d: Duration) -> Self {
        Self::new(Delivery::Normal).delayed(d)
    }

    /// Waits `d` before the action (and before the hub acts on the request).
    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// Adds a header to whatever head is sent (e.g. `Retry-After: 1`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Lets the hub act on the request (stop the server, delete the user,
    /// record it) before the answer is replaced, dropped or stalled: the
    /// answer is lost, not the request. Without it those faults leave the
    /// hub untouched. (Other deliveries always let the hub act.)
    pub fn with_effect(mut self) -> Self {
        self.with_effect = true;
        self
    }

    /// Whether the hub's semantics run for this request.
    pub(super) fn hub_acts(&self) -> bool {
        match self.delivery {
            Delivery::Normal | Delivery::SilentClose | Delivery::SlowBody { .. } => true,
            Delivery::Respond { .. } | Delivery::Drop | Delivery::Stall => self.with_effect,
        }
    }
}

/// Which requests a rule or plan applies to.
#[derive(Clone, Debug)]
struct Matcher {
    /// "GET", "DELETE", … or "*" for any method.
    method: String,
    /// Decoded path below `/hub/api` (e.g. `/users/alice/server`); a
    /// trailing `*` makes it a prefix.
    path: String,
    /// If set, the raw query string must contain this.
    query_contains: Option<String>,
}

impl Matcher {
    fn new(method: &str, path: &str) -> Self {
        Matcher {
            method: method.to_owned(),
            path: path.to_owned(),
            query_contains: None,
        }
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
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
                .is_none_or(|needle| query.contains(needle))
    }
}

/// When a matching rule fires.
#[derive(Clone, Debug)]
enum Firing {
    /// Every matching request.
    Always,
    /// The first `n` matching requests (counts down).
    Times(usize),
    /// Only the `n`-th matching request (1-based), counting every matching
    /// request whether or not another rule fired for it.
    Nth { n: usize, seen: usize },
}

/// A rule: requests matching a method, a path (exact or prefix) and
/// optionally a query substring get a [`FaultAction`], always, a number of
/// times, or only the n-th time.
#[derive(Clone, Debug)]
pub struct Fault {
    matcher: Matcher,
    action: FaultAction,
    firing: Firing,
}

impl Fault {
    /// `method` ("*" for any) and `path` below `/hub/api` (decoded; a
    /// trailing `*` makes it a prefix) get `action`, every time.
    pub fn new(method: &str, path: &str, action: FaultAction) -> Self {
        Fault {
            matcher: Matcher::new(method, path),
            action,
            firing: Firing::Always,
        }
    }

    /// A JSON error like the hub's: `{"status": N, "message": M}`.
    pub fn error(method: &str, path: &str, status: u16, message: &str) -> Self {
        Self::new(method, path, FaultAction::error(status, message))
    }

    /// The hub's 403 for a token lacking `scope`.
    pub fn missing_scope(method: &str, path: &str, scope: &str) -> Self {
        let message =
            format!("Action is not authorized with current scopes; requires any of [{scope}]");
        Self::error(method, path, 403, &message)
    }

    /// An arbitrary body with a JSON content type (garbage, wrong shapes).
    pub fn raw(method: &str, path: &str, status: u16, body: &str) -> Self {
        Self::new(
            method,
            path,
            FaultAction::respond(status, "application/json", body),
        )
    }

    /// Adds a header to the answer (e.g. `Retry-After: 1`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.action = self.action.header(name, value);
        self
    }

    /// Fires only for requests whose raw query contains `needle`.
    pub fn with_query(mut self, needle: &str) -> Self {
        self.matcher.query_contains = Some(needle.to_owned());
        self
    }

    /// Fires for the first `n` matching requests, then the hub answers
    /// normally again.
    pub fn times(mut self, n: usize) -> Self {
        self.firing = Firing::Times(n);
        self
    }

    /// Fires only for the `n`-th matching request (1-based).
    pub fn nth(mut self, n: usize) -> Self {
        self.firing = Firing::Nth { n, seen: 0 };
        self
    }
}

/// A reproducible random fault plan: each matching request gets one of
/// `actions` with probability `probability`.
///
/// The draw hashes (seed, method, path, query, how many times this exact
/// request was seen before), never the arrival order, so a culler sending
/// requests in any interleaving meets the same faults; and no request
/// identity gets more than `max_in_a_row` faults in a row (2 by default), so
/// a culler that retries a bounded number of times can always get through.
#[derive(Clone, Debug)]
pub struct RandomFaults {
    matcher: Matcher,
    seed: u64,
    probability: f64,
    actions: Vec<FaultAction>,
    max_in_a_row: usize,
}

impl RandomFaults {
    /// Every request (method "*", path "*") gets one of `actions` with
    /// probability `probability`, at most 2 in a row per request identity.
    pub fn new(
        seed: u64,
        probability: f64,
        actions: impl IntoIterator<Item = FaultAction>,
    ) -> Self {
        RandomFaults {
            matcher: Matcher::new("*", "*"),
            seed,
            probability,
            actions: actions.into_iter().collect(),
            max_in_a_row: 2,
        }
    }

    /// Restricts the plan to `method` and `path` (same syntax as [`Fault`]).
    pub fn only(mut self, method: &str, path: &str) -> Self {
        self.matcher = Matcher::new(method, path);
        self
    }

    /// Sets the most faults one request identity gets in a row.
    pub fn max_in_a_row(mut self, n: usize) -> Self {
        self.max_in_a_row = n;
        self
    }

    /// The draw for the `seen`-th sighting of a request: `Some(index)` of
    /// the action when it faults (before the cap is applied).
    fn draw(&self, method: &str, path: &str, query: &str, seen: u64) -> Option<usize> {
        if self.actions.is_empty() {
            return None;
        }
        let mut h = Fnv::new();
        h.write(&self.seed.to_le_bytes());
        for part in [method, path, query] {
            h.write(part.as_bytes());
            h.write(&[0xff]);
        }
        h.write(&seen.to_le_bytes());
        let roll = mix(h.0);
        let unit = (roll >> 11) as f64 / (1u64 << 53) as f64;
        (unit < self.probability)
            .then(|| (mix(roll ^ 0x9e37_79b9_7f4a_7c15) % self.actions.len() as u64) as usize)
    }
}

/// FNV-1a, 64 bits: stable across Rust versions, unlike std's hasher.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// splitmix64's finaliser, to spread FNV's weak low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Per request identity: sightings and the current run of faults.
#[derive(Default)]
struct Streak {
    seen: u64,
    in_a_row: usize,
}

/// The hub's faults while it runs: the rules with their counters and the
/// random plan with its per-request history.
#[derive(Default)]
pub(super) struct FaultBook {
    rules: Vec<Fault>,
    random: Option<RandomFaults>,
    streaks: HashMap<(String, String, String), Streak>,
}

impl FaultBook {
    /// The book of a hub starting with these rules and plan.
    pub(super) fn new(rules: Vec<Fault>, random: Option<RandomFaults>) -> Self {
        FaultBook {
            rules,
            random,
            streaks: HashMap::new(),
        }
    }

    /// The action for this request, if a rule fires or the plan draws one;
    /// updates the counters either way.
    pub(super) fn choose(&mut self, method: &str, path: &str, query: &str) -> Option<FaultAction> {
        let mut chosen = None;
        for rule in &mut self.rules {
            if !rule.matcher.matches(method, path, query) {
                continue;
            }
            let fires = match &mut rule.firing {
                Firing::Always => true,
                Firing::Times(left) => *left > 0,
                Firing::Nth { n, seen } => {
                    *seen += 1;
                    *seen == *n
                }
            };
            if fires && chosen.is_none() {
                if let Firing::Times(left) = &mut rule.firing {
                    *left -= 1;
                }
                chosen = Some(rule.action.clone());
            }
        }
        if chosen.is_some() {
            return chosen;
        }
        let plan = self.random.as_ref()?;
        if !plan.matcher.matches(method, path, query) {
            return None;
        }
        let key = (method.to_owned(), path.to_owned(), query.to_owned());
        let streak = self.streaks.entry(key).or_default();
        let drawn = plan.draw(method, path, query, streak.seen);
        streak.seen += 1;
        match drawn {
            Some(index) if streak.in_a_row < plan.max_in_a_row => {
                streak.in_a_row += 1;
                Some(plan.actions[index].clone())
            }
            _ => {
                streak.in_a_row = 0;
                None
            }
        }
    }
}

/// How `GET /users` envelopes lie (hub-wide; see the `HubConfig` setters).
/// Only the named fields lie: `next` stays what an honest hub would send.
#[derive(Clone, Debug, Default)]
pub(super) struct PaginationLies {
    /// A false `_pagination.total`.
    pub(super) total: Option<TotalLie>,
    /// A false `_pagination.limit`.
    pub(super) claimed_limit: Option<usize>,
    /// Serve the first page whatever the `offset`.
    pub(super) ignore_offset: bool,
}

/// A false `_pagination.total`.
#[derive(Clone, Copy, Debug)]
pub(super) enum TotalLie {
    /// Always this number.
    Fixed(u64),
    /// The true total plus this (floored at 0).
    Shifted(i64),
}

impl PaginationLies {
    /// The `total` to claim for a true `total`.
    pub(super) fn total(&self, real: usize) -> u64 {
        match self.total {
            None => real as u64,
            Some(TotalLie::Fixed(n)) => n,
            Some(TotalLie::Shifted(delta)) => (real as i128 + i128::from(delta)).max(0) as u64,
        }
    }
}
