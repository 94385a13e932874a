//! The culler's own metrics, and their Prometheus text exposition (format
//! 0.0.4), so that a culler that stopped culling is seen from monitoring
//! rather than discovered when the cluster fills up.
//!
//! One [`Metrics`], shared as `Arc<Metrics>`, is updated by the pipeline
//! (each attempt of each request to the hub, each retry, each finished
//! pass) and read by the HTTP endpoint ([`crate::serve`]). Everything sits
//! behind one mutex, held for a few additions at a time: a render sees one
//! consistent moment (the duration histogram's count always equals the sum
//! of the passes), and there is nothing to contend for in a program that
//! makes at most `--concurrency` requests at once.
//!
//! Label values are bounded by construction: endpoints are the API's path
//! templates ([`Endpoint`]), never a user's or server's name; methods are
//! the HTTP methods (anything else is counted as `other`); statuses are
//! three-digit codes or `none`. A hub of any size gives the same handful of
//! series.
//!
//! Two choices a reader of the numbers needs to know:
//! - `jupyterhub_idle_culler_last_successful_pass_timestamp_seconds` is
//!   **0 before the first successful pass** (not absent, so that an alert
//!   on it needs no `absent()` companion, and a culler that never succeeded
//!   looks maximally stale).
//! - `jupyterhub_idle_culler_seconds_since_last_successful_pass` counts,
//!   before the first success, from the moment the metrics were created
//!   (the culler's start): "how long has this culler gone without a
//!   successful pass", which is what an alert wants.

mod health;

pub use health::{Health, HealthStatus};

use crate::hub::{Endpoint, Observer};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every metric's name starts with this.
pub const NAMESPACE: &str = "jupyterhub_idle_culler";

/// The upper bounds (seconds) of the pass duration histogram's buckets:
/// from a 10 ms pass over an empty hub to a 10 minute one over a large or
/// slow hub (`--cull-every` defaults to 10 minutes, so longer passes are a
/// problem in themselves and land in `+Inf`).
pub const PASS_DURATION_BUCKETS: [f64; 15] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The `outcome` values of `server_looks_total`: the server's word (in
/// use, idle), or why it could not be asked ([`crate::hub::LookError`]'s
/// labels).
pub const LOOK_OUTCOMES: [&str; 8] = [
    "in_use",
    "idle",
    "no_url",
    "unreachable",
    "timeout",
    "forbidden",
    "status",
    "not_jupyter",
];

/// The `outcome` values of `notify_events_total`.
pub const NOTIFY_OUTCOMES: [&str; 3] = ["sent", "failed", "dropped"];

/// The `pending` values of `servers_stuck_total`.
pub const STUCK_PENDING: [&str; 2] = ["stop", "spawn"];

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Observer for Metrics {
    fn answered(&self, method: &'static str, endpoint: Endpoint, status: Option<u16>) {
        self.request(method, endpoint, status);
    }
}

/// How a pass ended, as the caller judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PassOutcome {
    /// The pass did everything it set out to do.
    Success,
    /// Something in the pass failed (a request, a step).
    Failure,
    /// A stop signal cut the pass short. Neither a success nor a failure:
    /// it leaves the consecutive failure count as it was.
    Interrupted,
}

impl PassOutcome {
    /// Every outcome, each rendered from the start (at 0), so that a
    /// `rate()` over them has a series before the first event.
    pub const ALL: [PassOutcome; 3] = [
        PassOutcome::Success,
        PassOutcome::Failure,
        PassOutcome::Interrupted,
    ];

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            PassOutcome::Success => "success",
            PassOutcome::Failure => "failure",
            PassOutcome::Interrupted => "interrupted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one pass did, as plain numbers: the caller builds it from its own
/// tally, so this module depends on nothing in the pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassCounts {
    /// Users looked at.
    pub users_seen: u64,
    /// Servers looked at (default and named).
    pub servers_seen: u64,
    /// Servers the hub accepted to stop (stopped, or still stopping: 202).
    pub servers_stopped: u64,
    /// Named servers removed as well as stopped (`--remove-named-servers`).
    pub named_servers_removed: u64,
    /// Users deleted (`--cull-users`).
    pub users_deleted: u64,
    /// Requests or steps that failed.
    pub errors: u64,
}

/// The culler's metrics registry; see the module documentation.
pub struct Metrics {
    state: Mutex<State>,
    /// The log's count of lines it could not write, read at render time.
    dropped_lines: Mutex<Option<Arc<AtomicU64>>>,
}

/// One series of `requests_total`: (endpoint, method, status), the label
/// names' alphabetical order, so the map's order is the rendered order.
type RequestKey = (Endpoint, &'static str, Status);

/// An HTTP status, or none (no answer). Sorted codes first, then none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Code(u16),
    None,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Code(code) => write!(f, "{code}"),
            Status::None => f.write_str("none"),
        }
    }
}

#[derive(Default)]
struct State {
    /// When the metrics were created: the base of "seconds since the last
    /// success" before there is one.
    started: Option<SystemTime>,
    passes: [u64; 3],
    /// Passes per bucket (not cumulative; the last is `+Inf`).
    duration_buckets: [u64; PASS_DURATION_BUCKETS.len() + 1],
    duration_sum: f64,
    totals: PassCounts,
    requests: BTreeMap<RequestKey, u64>,
    retries: u64,
    /// Servers asked what runs inside them, by outcome.
    looks: BTreeMap<&'static str, u64>,
    /// Events, by (event, outcome).
    events: BTreeMap<(&'static str, &'static str), u64>,
    /// Servers found stuck, by what they were pending.
    stuck: BTreeMap<&'static str, u64>,
    last_success: Option<SystemTime>,
    consecutive_failures: u64,
}

impl Metrics {
    /// An empty registry, created when the culler starts.
    pub fn new() -> Arc<Metrics> {
        Self::started_at(SystemTime::now())
    }

    /// An empty registry whose "start" is `started` (tests use fixed times).
    fn started_at(started: SystemTime) -> Arc<Metrics> {
        Arc::new(Metrics {
            state: Mutex::new(State {
                started: Some(started),
                ..State::default()
            }),
            dropped_lines: Mutex::new(None),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code holding the lock can panic, but if something ever did,
        // the counts are still counts: monitoring must not die with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one attempt of one request to the hub: `status` is the HTTP
    /// status of the answer, `None` when there was none (no connection,
    /// connection broken, timeout). `method` is an HTTP method (any case);
    /// anything else is counted as `other`.
    pub fn request(&self, method: &str, endpoint: Endpoint, status: Option<u16>) {
        let status = status.map_or(Status::None, Status::Code);
        let key = (endpoint, known_method(method), status);
        *self.state().requests.entry(key).or_insert(0) += 1;
    }

    /// Counts one retry: a request sent again after a failure that may pass.
    pub fn retry(&self) {
        self.state().retries += 1;
    }

    /// Counts one server asked what runs inside it (`--activity=server`),
    /// by `outcome`: `in_use`, `idle`, or why it could not be asked (a
    /// fixed word, never a name).
    pub fn server_look(&self, outcome: &'static str) {
        *self.state().looks.entry(outcome).or_insert(0) += 1;
    }

    /// Counts one event (`warn`, `culled`, ...) by `outcome`: `sent`,
    /// `failed` (every retry failed) or `dropped` (the queue was full).
    pub fn notify_event(&self, event: &'static str, outcome: &'static str) {
        *self.state().events.entry((event, outcome)).or_insert(0) += 1;
    }

    /// Counts one server found stuck (`--stuck-after`), by what it was
    /// pending: `stop` or `spawn` (fixed words, never a name).
    pub fn server_stuck(&self, pending: &'static str) {
        *self.state().stuck.entry(pending).or_insert(0) += 1;
    }

    /// Records a finished pass: its outcome, how long it took and what it
    /// did. A success resets the consecutive failure count and is the new
    /// "last success"; a failure adds one to the count; an interrupted pass
    /// changes neither (the culler is stopping). The duration and the
    /// counts are recorded whatever the outcome: the work was done.
    pub fn pass_finished(&self, outcome: PassOutcome, duration: Duration, counts: PassCounts) {
        self.record_pass(outcome, duration, counts, SystemTime::now());
    }

    fn record_pass(
        &self,
        outcome: PassOutcome,
        duration: Duration,
        counts: PassCounts,
        finished: SystemTime,
    ) {
        let mut state = self.state();
        state.passes[outcome.index()] += 1;
        let seconds = duration.as_secs_f64();
        let bucket = PASS_DURATION_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(PASS_DURATION_BUCKETS.len());
        state.duration_buckets[bucket] += 1;
        state.duration_sum += seconds;
        let totals = &mut state.totals;
        totals.users_seen += counts.users_seen;
        totals.servers_seen += counts.servers_seen;
        totals.servers_stopped += counts.servers_stopped;
        totals.named_servers_removed += counts.named_servers_removed;
        totals.users_deleted += counts.users_deleted;
        totals.errors += counts.errors;
        match outcome {
            PassOutcome::Success => {
                state.consecutive_failures = 0;
                state.last_success = Some(finished);
            }
            PassOutcome::Failure => state.consecutive_failures += 1,
            PassOutcome::Interrupted => {}
        }
    }

    /// Exports a count of log lines that could not be written (the log's
    /// own counter), read afresh at each render: a culler whose log pipe
    /// broke keeps culling silently, and this is where it shows.
    pub fn count_dropped_lines(&self, counter: Arc<AtomicU64>) {
        *self
            .dropped_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(counter);
    }

    fn log_lines_dropped(&self) -> u64 {
        self.dropped_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }

    /// Whether the culler is healthy: unhealthy once `max_failures` passes
    /// (0 counts as 1) failed in a row; starting (healthy) until a pass
    /// succeeded or failed.
    pub fn health(&self, max_failures: u32) -> Health {
        let max_failures = max_failures.max(1);
        let state = self.state();
        let judged =
            state.passes[PassOutcome::Success.index()] + state.passes[PassOutcome::Failure.index()];
        let status = if judged == 0 {
            HealthStatus::Starting
        } else if state.consecutive_failures >= u64::from(max_failures) {
            HealthStatus::Failing
        } else {
            HealthStatus::Ok
        };
        Health {
            status,
            consecutive_failed_passes: state.consecutive_failures,
            max_failures,
            last_success: state.last_success,
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, in a
    /// fixed order with sorted labels; `now` is the scrape's time, for
    /// `seconds_since_last_successful_pass`.
    pub fn render(&self, now: SystemTime) -> String {
        let dropped = self.log_lines_dropped();
        let state = self.state();
        let mut out = Exposition(String::with_capacity(4096));

        out.passes(&state);

        let totals = &state.totals;
        for (name, help, value) in [
            (
                "users_seen_total",
                "Users looked at by culling passes.",
                totals.users_seen,
            ),
            (
                "servers_seen_total",
                "Servers (default and named) looked at by culling passes.",
                totals.servers_seen,
            ),
            (
                "servers_stopped_total",
                "Servers the hub accepted to stop (stopped, or still stopping).",
                totals.servers_stopped,
            ),
            (
                "named_servers_removed_total",
                "Named servers removed as well as stopped (--remove-named-servers).",
                totals.named_servers_removed,
            ),
            (
                "users_deleted_total",
                "Users deleted (--cull-users).",
                totals.users_deleted,
            ),
            (
                "errors_total",
                "Requests or steps of culling passes that failed.",
                totals.errors,
            ),
        ] {
            out.family(name, "counter", help);
            out.sample(name, &[], value);
        }

        out.requests(&state);
        out.freshness(&state, now);

        out.family(
            "log_lines_dropped_total",
            "counter",
            "Log lines that could not be written (the log's reader went away); culling goes on.",
        );
        out.sample("log_lines_dropped_total", &[], dropped);

        out.family("build_info", "gauge", "The culler's version; always 1.");
        out.sample(
            "build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1_u64,
        );
        out.0
    }
}

/// An HTTP method as a label value: the standard ones upper-cased, anything
/// else `other` (a label must never take unbounded values).
fn known_method(method: &str) -> &'static str {
    const METHODS: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    METHODS
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(method))
        .unwrap_or("other")
}

/// A number as the format writes floats: `+Inf`, `-Inf`, `NaN`, or Rust's
/// shortest exact decimal (never an exponent, which the format allows too).
fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a `# HELP` text: backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The text being built.
struct Exposition(String);

impl Exposition {
    /// `# HELP` and `# TYPE` of `NAMESPACE_name`.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            self.0,
            "# HELP {NAMESPACE}_{name} {}\n# TYPE {NAMESPACE}_{name} {kind}",
            escape_help(help)
        );
    }

    /// One sample line, its labels sorted by name.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        let _ = write!(self.0, "{NAMESPACE}_{name}");
        if !labels.is_empty() {
            let mut labels = labels.to_vec();
            labels.sort_unstable_by_key(|&(label, _)| label);
            self.0.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label_value(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// The families of the exposition that take more than one sample.
impl Exposition {
    /// Passes by outcome, and the histogram of their durations.
    fn passes(&mut self, state: &State) {
        self.family(
            "passes_total",
            "counter",
            "Culling passes finished, by outcome (interrupted: cut short by a stop signal).",
        );
        for outcome in PassOutcome::ALL {
            self.sample(
                "passes_total",
                &[("outcome", outcome.label())],
                state.passes[outcome.index()],
            );
        }

        self.family(
            "pass_duration_seconds",
            "histogram",
            "How long culling passes took, whatever their outcome.",
        );
        let mut cumulative = 0;
        for (index, count) in state.duration_buckets.iter().enumerate() {
            cumulative += count;
            let le = PASS_DURATION_BUCKETS
                .get(index)
                .map_or_else(|| "+Inf".to_owned(), |&le| float(le));
            self.sample("pass_duration_seconds_bucket", &[("le", &le)], cumulative);
        }
        self.sample("pass_duration_seconds_sum", &[], float(state.duration_sum));
        self.sample("pass_duration_seconds_count", &[], cumulative);
    }

    /// Every attempt to the hub, by endpoint, method and status.
    fn requests(&mut self, state: &State) {
        self.family(
            "requests_total",
            "counter",
            "Attempts of requests to the JupyterHub API, by method, endpoint template \
             and HTTP status (none: no answer, as when the hub cannot be reached or \
             does not answer in time).",
        );
        for (&(endpoint, method, status), &count) in &state.requests {
            let status = status.to_string();
            self.sample(
                "requests_total",
                &[
                    ("endpoint", endpoint.template()),
                    ("method", method),
                    ("status", &status),
                ],
                count,
            );
        }

        self.family(
            "retries_total",
            "counter",
            "Requests to the hub sent again after a failure that may pass on a second try.",
        );
        self.sample("retries_total", &[], state.retries);

        self.family(
            "server_looks_total",
            "counter",
            "Servers asked what runs inside them (--activity=server), by outcome: in_use, idle, or why they could not be asked.",
        );
        for (&outcome, &count) in &state.looks {
            self.sample("server_looks_total", &[("outcome", outcome)], count);
        }

        self.family(
            "notify_events_total",
            "counter",
            "Events for --notify-url and --notify-command, by event and outcome: sent, failed (after its retries) or dropped (the queue was full).",
        );
        for (&(event, outcome), &count) in &state.events {
            self.sample(
                "notify_events_total",
                &[("event", event), ("outcome", outcome)],
                count,
            );
        }

        self.family(
            "servers_stuck_total",
            "counter",
            "Servers found stopping or spawning for longer than --stuck-after, by what they were pending (stop, spawn).",
        );
        for (&pending, &count) in &state.stuck {
            self.sample("servers_stuck_total", &[("pending", pending)], count);
        }
    }

    /// When the last pass succeeded, how long ago, and the failures since.
    fn freshness(&mut self, state: &State, now: SystemTime) {
        let since_epoch = |at: SystemTime| at.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.family(
            "last_successful_pass_timestamp_seconds",
            "gauge",
            "When the last successful pass finished, in Unix time; 0 before the first.",
        );
        self.sample(
            "last_successful_pass_timestamp_seconds",
            &[],
            float(
                state
                    .last_success
                    .map_or(0.0, |at| since_epoch(at).as_secs_f64()),
            ),
        );
        self.family(
            "seconds_since_last_successful_pass",
            "gauge",
            "Seconds since the last successful pass finished (before the first: since the culler started).",
        );
        let since = state.last_success.or(state.started).unwrap_or(now);
        self.sample(
            "seconds_since_last_successful_pass",
            &[],
            float(now.duration_since(since).unwrap_or_default().as_secs_f64()),
        );

        self.family(
            "consecutive_failed_passes",
            "gauge",
            "Passes that failed in a row since the last successful one.",
        );
        self.sample("consecutive_failed_passes", &[], state.consecutive_failures);
    }
}

#[cfg(test)]
mod tests;
