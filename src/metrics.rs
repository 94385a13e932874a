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

use crate::logging::Log;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
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

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The JupyterHub API endpoints the culler calls, as the path templates
/// that label `jupyterhub_idle_culler_requests_total`: a label holding the
/// real path would make one series per user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `GET /`: the hub's version.
    Root,
    /// `GET /users`: a page of users.
    Users,
    /// `GET /user`: the token's owner and scopes (checked once for rules).
    TokenOwner,
    /// `DELETE /users/{name}/server`: stop a user's default server.
    UserServer,
    /// `DELETE /users/{name}/servers/{server}`: stop (or remove) a named server.
    NamedServer,
    /// `DELETE /users/{name}`: delete a user.
    User,
}

impl Endpoint {
    /// Every endpoint, in the order they are listed here.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Root,
        Endpoint::Users,
        Endpoint::TokenOwner,
        Endpoint::UserServer,
        Endpoint::NamedServer,
        Endpoint::User,
    ];

    /// The path template, relative to the API's base URL: the label value.
    pub fn template(self) -> &'static str {
        match self {
            Endpoint::Root => "/",
            Endpoint::Users => "/users",
            Endpoint::TokenOwner => "/user",
            Endpoint::UserServer => "/users/{name}/server",
            Endpoint::NamedServer => "/users/{name}/servers/{server}",
            Endpoint::User => "/users/{name}",
        }
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

/// Whether the culler is doing its job, for `/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// No pass has succeeded or failed yet: healthy, it has just started.
    Starting,
    /// Fewer than `max_failures` passes failed in a row.
    Ok,
    /// At least `max_failures` passes failed in a row.
    Failing,
}

impl HealthStatus {
    /// The `status` field of `/health`'s JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Ok => "ok",
            HealthStatus::Failing => "failing",
        }
    }
}

/// The answer to "is the culler healthy, and why (not)?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
    /// Passes failed in a row since the last success (or since the start).
    pub consecutive_failed_passes: u64,
    /// The limit the verdict was made with (at least 1).
    pub max_failures: u32,
    /// When the last successful pass finished.
    pub last_success: Option<SystemTime>,
}

impl Health {
    /// Whether to answer 200 (starting or ok) rather than 503.
    pub fn is_healthy(&self) -> bool {
        self.status != HealthStatus::Failing
    }

    /// One sentence for an operator reading a probe's failure.
    pub fn reason(&self) -> String {
        let last = match self.last_success {
            Some(at) => format!("the last successful pass finished at {}", rfc3339(at)),
            None => "no pass has succeeded since the culler started".to_owned(),
        };
        let failed = match self.consecutive_failed_passes {
            1 => "1 pass in a row failed".to_owned(),
            n => format!("{n} passes in a row failed"),
        };
        match self.status {
            HealthStatus::Starting => "no pass has finished yet".to_owned(),
            HealthStatus::Ok if self.consecutive_failed_passes == 0 => {
                format!("the last pass succeeded; {last}")
            }
            HealthStatus::Ok => format!("{failed} (unhealthy at {}); {last}", self.max_failures),
            HealthStatus::Failing => format!(
                "{failed} (unhealthy at {}); {last}; see the culler's log for why",
                self.max_failures
            ),
        }
    }

    /// The `/health` body: `{"status": ..., "consecutive_failed_passes": ...,
    /// "last_success": RFC 3339 or null, "max_failures": ..., "reason": ...}`.
    pub fn to_json(&self) -> String {
        /// The body's fields, in the order a reader wants them.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            status: &'a str,
            consecutive_failed_passes: u64,
            last_success: Option<String>,
            max_failures: u32,
            reason: String,
        }
        let body = Body {
            status: self.status.as_str(),
            consecutive_failed_passes: self.consecutive_failed_passes,
            last_success: self.last_success.map(rfc3339),
            max_failures: self.max_failures,
            reason: self.reason(),
        };
        // Plain strings and numbers: serializing cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// A time as `2026-05-01T12:00:00Z`.
fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The culler's metrics registry; see the module documentation.
pub struct Metrics {
    state: Mutex<State>,
    /// The log whose dropped-line counter is exported, read at render time.
    log: Mutex<Option<Log>>,
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
            log: Mutex::new(None),
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

    /// Exports `log`'s count of lines it could not write
    /// ([`Log::dropped`]), read afresh at each render: a culler whose log
    /// pipe broke keeps culling silently, and this is where it shows.
    pub fn track_log(&self, log: &Log) {
        *self.log.lock().unwrap_or_else(PoisonError::into_inner) = Some(log.clone());
    }

    fn log_lines_dropped(&self) -> u64 {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, Log::dropped)
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

        out.family(
            "passes_total",
            "counter",
            "Culling passes finished, by outcome (interrupted: cut short by a stop signal).",
        );
        for outcome in PassOutcome::ALL {
            out.sample(
                "passes_total",
                &[("outcome", outcome.label())],
                state.passes[outcome.index()],
            );
        }

        out.family(
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
            out.sample("pass_duration_seconds_bucket", &[("le", &le)], cumulative);
        }
        out.sample("pass_duration_seconds_sum", &[], float(state.duration_sum));
        out.sample("pass_duration_seconds_count", &[], cumulative);

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

        out.family(
            "requests_total",
            "counter",
            "Attempts of requests to the JupyterHub API, by method, endpoint template \
             and HTTP status (none: no answer, as when the hub cannot be reached or \
             does not answer in time).",
        );
        for (&(endpoint, method, status), &count) in &state.requests {
            let status = status.to_string();
            out.sample(
                "requests_total",
                &[
                    ("endpoint", endpoint.template()),
                    ("method", method),
                    ("status", &status),
                ],
                count,
            );
        }

        out.family(
            "retries_total",
            "counter",
            "Requests to the hub sent again after a failure that may pass on a second try.",
        );
        out.sample("retries_total", &[], state.retries);

        let since_epoch = |at: SystemTime| at.duration_since(UNIX_EPOCH).unwrap_or_default();
        out.family(
            "last_successful_pass_timestamp_seconds",
            "gauge",
            "When the last successful pass finished, in Unix time; 0 before the first.",
        );
        out.sample(
            "last_successful_pass_timestamp_seconds",
            &[],
            float(
                state
                    .last_success
                    .map_or(0.0, |at| since_epoch(at).as_secs_f64()),
            ),
        );
        out.family(
            "seconds_since_last_successful_pass",
            "gauge",
            "Seconds since the last successful pass finished (before the first: since the culler started).",
        );
        let since = state.last_success.or(state.started).unwrap_or(now);
        out.sample(
            "seconds_since_last_successful_pass",
            &[],
            float(now.duration_since(since).unwrap_or_default().as_secs_f64()),
        );

        out.family(
            "consecutive_failed_passes",
            "gauge",
            "Passes that failed in a row since the last successful one.",
        );
        out.sample("consecutive_failed_passes", &[], state.consecutive_failures);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::{info, LogFormat, LogLevel};

    /// A fixed start: 2026-01-01T00:00:00Z.
    fn epoch_2026() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600)
    }

    fn counts(n: u64) -> PassCounts {
        PassCounts {
            users_seen: n,
            servers_seen: n + 1,
            servers_stopped: n + 2,
            named_servers_removed: n + 3,
            users_deleted: n + 4,
            errors: n + 5,
        }
    }

    /// The value of the one line that starts with `series ` (the whole name
    /// and label set), as text.
    fn value_of<'a>(text: &'a str, series: &str) -> &'a str {
        let lines: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .collect();
        assert_eq!(lines.len(), 1, "{series} in\n{text}");
        lines[0]
    }

    #[test]
    fn an_empty_registry_renders_every_family_with_zeros() {
        let metrics = Metrics::started_at(epoch_2026());
        let text = metrics.render(epoch_2026() + Duration::from_secs(42));
        for outcome in ["success", "failure", "interrupted"] {
            let series = format!("jupyterhub_idle_culler_passes_total{{outcome=\"{outcome}\"}}");
            assert_eq!(value_of(&text, &series), "0");
        }
        for name in [
            "users_seen_total",
            "servers_seen_total",
            "servers_stopped_total",
            "named_servers_removed_total",
            "users_deleted_total",
            "errors_total",
            "retries_total",
            "pass_duration_seconds_count",
            "pass_duration_seconds_sum",
            "last_successful_pass_timestamp_seconds",
            "consecutive_failed_passes",
            "log_lines_dropped_total",
        ] {
            assert_eq!(
                value_of(&text, &format!("{NAMESPACE}_{name}")),
                "0",
                "{name}"
            );
        }
        // Before any success, counted from the start.
        assert_eq!(
            value_of(
                &text,
                "jupyterhub_idle_culler_seconds_since_last_successful_pass"
            ),
            "42"
        );
        assert_eq!(
            value_of(
                &text,
                &format!(
                    "jupyterhub_idle_culler_build_info{{version=\"{}\"}}",
                    env!("CARGO_PKG_VERSION")
                )
            ),
            "1"
        );
        // No request yet: the family is declared, with no series.
        assert!(text.contains("# TYPE jupyterhub_idle_culler_requests_total counter\n"));
        assert!(!text.contains("requests_total{"), "{text}");
    }

    #[test]
    fn passes_are_counted_by_outcome_and_their_counts_summed() {
        let metrics = Metrics::started_at(epoch_2026());
        let at = |s| epoch_2026() + Duration::from_secs(s);
        metrics.record_pass(
            PassOutcome::Success,
            Duration::from_millis(5),
            counts(10),
            at(60),
        );
        metrics.record_pass(
            PassOutcome::Failure,
            Duration::from_secs(3),
            counts(100),
            at(120),
        );
        metrics.record_pass(
            PassOutcome::Interrupted,
            Duration::from_secs(700),
            PassCounts::default(),
            at(180),
        );
        let text = metrics.render(at(200));
        let value = |name: &str| value_of(&text, &format!("{NAMESPACE}_{name}")).to_owned();
        assert_eq!(value("passes_total{outcome=\"success\"}"), "1");
        assert_eq!(value("passes_total{outcome=\"failure\"}"), "1");
        assert_eq!(value("passes_total{outcome=\"interrupted\"}"), "1");
        assert_eq!(value("users_seen_total"), "110");
        assert_eq!(value("servers_seen_total"), "112");
        assert_eq!(value("servers_stopped_total"), "114");
        assert_eq!(value("named_servers_removed_total"), "116");
        assert_eq!(value("users_deleted_total"), "118");
        assert_eq!(value("errors_total"), "120");
        // The failure counts; the interrupted pass leaves the count alone.
        assert_eq!(value("consecutive_failed_passes"), "1");
        assert_eq!(
            value("last_successful_pass_timestamp_seconds"),
            "1767225660"
        );
        assert_eq!(value("seconds_since_last_successful_pass"), "140");
        // 5 ms falls in the first bucket, 3 s in le=5, 700 s only in +Inf.
        assert_eq!(value("pass_duration_seconds_bucket{le=\"0.01\"}"), "1");
        assert_eq!(value("pass_duration_seconds_bucket{le=\"2.5\"}"), "1");
        assert_eq!(value("pass_duration_seconds_bucket{le=\"5\"}"), "2");
        assert_eq!(value("pass_duration_seconds_bucket{le=\"600\"}"), "2");
        assert_eq!(value("pass_duration_seconds_bucket{le=\"+Inf\"}"), "3");
        assert_eq!(value("pass_duration_seconds_count"), "3");
        let sum: f64 = value("pass_duration_seconds_sum").parse().unwrap();
        assert!((sum - 703.005).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn a_bucket_bound_is_inclusive() {
        let metrics = Metrics::started_at(epoch_2026());
        metrics.pass_finished(PassOutcome::Success, Duration::from_secs(1), counts(0));
        let text = metrics.render(SystemTime::now());
        assert_eq!(
            value_of(
                &text,
                "jupyterhub_idle_culler_pass_duration_seconds_bucket{le=\"0.5\"}"
            ),
            "0"
        );
        assert_eq!(
            value_of(
                &text,
                "jupyterhub_idle_culler_pass_duration_seconds_bucket{le=\"1\"}"
            ),
            "1"
        );
    }

    #[test]
    fn requests_are_counted_by_method_endpoint_and_status_in_sorted_order() {
        let metrics = Metrics::started_at(epoch_2026());
        metrics.request("DELETE", Endpoint::User, Some(204));
        metrics.request("get", Endpoint::Users, Some(200));
        metrics.request("GET", Endpoint::Users, Some(200));
        metrics.request("GET", Endpoint::Users, None);
        metrics.request("GET", Endpoint::Root, Some(503));
        metrics.request("BREW", Endpoint::Root, Some(418));
        metrics.retry();
        metrics.retry();
        let text = metrics.render(epoch_2026());
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("jupyterhub_idle_culler_requests_total{"))
            .collect();
        assert_eq!(
            lines,
            [
                r#"jupyterhub_idle_culler_requests_total{endpoint="/",method="GET",status="503"} 1"#,
                r#"jupyterhub_idle_culler_requests_total{endpoint="/",method="other",status="418"} 1"#,
                r#"jupyterhub_idle_culler_requests_total{endpoint="/users",method="GET",status="200"} 2"#,
                r#"jupyterhub_idle_culler_requests_total{endpoint="/users",method="GET",status="none"} 1"#,
                r#"jupyterhub_idle_culler_requests_total{endpoint="/users/{name}",method="DELETE",status="204"} 1"#,
            ]
        );
        assert_eq!(value_of(&text, "jupyterhub_idle_culler_retries_total"), "2");
    }

    #[test]
    fn rendering_is_stable() {
        let metrics = Metrics::started_at(epoch_2026());
        for endpoint in Endpoint::ALL.into_iter().rev() {
            metrics.request("DELETE", endpoint, Some(404));
            metrics.request("GET", endpoint, None);
        }
        let now = epoch_2026() + Duration::from_secs(1);
        assert_eq!(metrics.render(now), metrics.render(now));
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let metrics = Metrics::started_at(epoch_2026());
        metrics.request("GET", Endpoint::Root, Some(200));
        let text = metrics.render(epoch_2026());
        let mut declared: Vec<String> = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                let kind = lines.next().unwrap();
                assert!(kind.starts_with(&format!("# TYPE {name} ")), "{kind}");
                assert!(!declared.contains(&name.to_owned()), "{name} twice");
                declared.push(name.to_owned());
            } else {
                let family = declared.last().expect("a sample before any # HELP");
                assert!(line.starts_with(family.as_str()), "{line} under {family}");
            }
        }
        assert_eq!(declared.len(), 15, "{declared:?}");
        assert!(declared
            .iter()
            .all(|n| n.starts_with("jupyterhub_idle_culler_")));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("two\nlines"), "two\\nlines");
        assert_eq!(escape_label_value("/users/{name}"), "/users/{name}");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }

    #[test]
    fn health_follows_consecutive_failures() {
        let metrics = Metrics::started_at(epoch_2026());
        let health = metrics.health(3);
        assert_eq!(health.status, HealthStatus::Starting);
        assert!(health.is_healthy());
        // An interrupted pass judges nothing.
        metrics.pass_finished(PassOutcome::Interrupted, Duration::ZERO, counts(0));
        assert_eq!(metrics.health(3).status, HealthStatus::Starting);

        let at = epoch_2026() + Duration::from_secs(600);
        metrics.record_pass(PassOutcome::Success, Duration::ZERO, counts(0), at);
        let health = metrics.health(3);
        assert_eq!(health.status, HealthStatus::Ok);
        assert_eq!(health.last_success, Some(at));
        assert_eq!(
            health.reason(),
            "the last pass succeeded; the last successful pass finished at 2026-01-01T00:10:00Z"
        );
        for failed in 1..=2 {
            metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, counts(0));
            let health = metrics.health(3);
            assert_eq!(health.status, HealthStatus::Ok, "{failed}");
            assert_eq!(health.consecutive_failed_passes, failed);
            if failed == 1 {
                assert!(
                    health.reason().starts_with("1 pass in a row failed"),
                    "{health:?}"
                );
            }
        }
        metrics.pass_finished(PassOutcome::Interrupted, Duration::ZERO, counts(0));
        metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, counts(0));
        let health = metrics.health(3);
        assert_eq!(health.status, HealthStatus::Failing);
        assert!(!health.is_healthy());
        assert_eq!(health.consecutive_failed_passes, 3);
        let reason = health.reason();
        assert!(reason.contains("3 passes in a row failed"), "{reason}");
        assert!(reason.contains("2026-01-01T00:10:00Z"), "{reason}");
        // A higher limit tolerates it; 0 means 1.
        assert!(metrics.health(4).is_healthy());
        assert_eq!(metrics.health(0).max_failures, 1);

        metrics.pass_finished(PassOutcome::Success, Duration::ZERO, counts(0));
        let health = metrics.health(3);
        assert_eq!(health.status, HealthStatus::Ok);
        assert_eq!(health.consecutive_failed_passes, 0);
    }

    #[test]
    fn failing_from_the_start_is_unhealthy_and_says_never() {
        let metrics = Metrics::started_at(epoch_2026());
        metrics.pass_finished(PassOutcome::Failure, Duration::ZERO, counts(0));
        let health = metrics.health(1);
        assert_eq!(health.status, HealthStatus::Failing);
        assert!(
            health.reason().contains("no pass has succeeded"),
            "{}",
            health.reason()
        );
    }

    #[test]
    fn health_json_has_the_documented_fields() {
        let metrics = Metrics::started_at(epoch_2026());
        let json: serde_json::Value = serde_json::from_str(&metrics.health(3).to_json()).unwrap();
        assert_eq!(json["status"], "starting");
        assert_eq!(json["consecutive_failed_passes"], 0);
        assert_eq!(json["max_failures"], 3);
        assert!(json["last_success"].is_null());
        assert_eq!(json["reason"], "no pass has finished yet");
        assert!(metrics
            .health(3)
            .to_json()
            .starts_with(r#"{"status":"starting","#));

        let at = epoch_2026() + Duration::from_secs(1);
        metrics.record_pass(PassOutcome::Success, Duration::ZERO, counts(0), at);
        let json: serde_json::Value = serde_json::from_str(&metrics.health(3).to_json()).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(json["last_success"], "2026-01-01T00:00:01Z");
    }

    #[test]
    fn the_logs_dropped_lines_are_read_at_render_time() {
        struct Broken;
        impl std::io::Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        let log = Log::to_writer(Broken, LogLevel::Info, LogFormat::Text, Vec::new());
        let metrics = Metrics::started_at(epoch_2026());
        metrics.track_log(&log);
        info!(log, "lost");
        info!(log, "lost too");
        let text = metrics.render(epoch_2026());
        assert_eq!(
            value_of(&text, "jupyterhub_idle_culler_log_lines_dropped_total"),
            "2"
        );
    }

    #[test]
    fn floats_are_written_as_the_format_reads_them() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(600.0), "600");
        assert_eq!(float(0.025), "0.025");
        assert_eq!(float(1_767_225_600.5), "1767225600.5");
    }

    /// The exposition read back by an independent, grammar-based parser of
    /// the Prometheus text format (openmetrics-parser, a dev-dependency).
    mod parsed {
        use super::*;
        use openmetrics_parser::prometheus::parse_prometheus;
        use openmetrics_parser::{PrometheusType, PrometheusValue};

        /// A registry after a few of everything: four users' servers stopped
        /// and their deletions failing without an answer.
        fn busy() -> Arc<Metrics> {
            let metrics = Metrics::started_at(epoch_2026());
            for _user in 0..4 {
                metrics.request("GET", Endpoint::Users, Some(200));
                metrics.request("DELETE", Endpoint::UserServer, Some(204));
                metrics.request("DELETE", Endpoint::NamedServer, Some(202));
                metrics.request("DELETE", Endpoint::User, None);
            }
            metrics.request("GET", Endpoint::Root, Some(200));
            metrics.retry();
            let at = |s| epoch_2026() + Duration::from_secs(s);
            metrics.record_pass(
                PassOutcome::Success,
                Duration::from_millis(80),
                counts(4),
                at(10),
            );
            metrics.record_pass(
                PassOutcome::Failure,
                Duration::from_secs(45),
                counts(1),
                at(20),
            );
            metrics.record_pass(
                PassOutcome::Success,
                Duration::from_secs(2),
                counts(2),
                at(30),
            );
            metrics.record_pass(
                PassOutcome::Interrupted,
                Duration::from_secs(900),
                PassCounts::default(),
                at(40),
            );
            metrics
        }

        fn number(value: &PrometheusValue) -> f64 {
            match value {
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Gauge(g) | PrometheusValue::Unknown(g) => g.as_f64(),
                other => panic!("not a number: {other:?}"),
            }
        }

        #[test]
        fn every_family_parses_with_its_type_labels_and_values() {
            let text = busy().render(epoch_2026() + Duration::from_secs(100));
            let parsed = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            let families = &parsed.families;
            let name = |short: &str| format!("{NAMESPACE}_{short}");
            let expected: [(&str, PrometheusType, &[&str]); 15] = [
                ("passes_total", PrometheusType::Counter, &["outcome"]),
                ("pass_duration_seconds", PrometheusType::Histogram, &[]),
                ("users_seen_total", PrometheusType::Counter, &[]),
                ("servers_seen_total", PrometheusType::Counter, &[]),
                ("servers_stopped_total", PrometheusType::Counter, &[]),
                ("named_servers_removed_total", PrometheusType::Counter, &[]),
                ("users_deleted_total", PrometheusType::Counter, &[]),
                ("errors_total", PrometheusType::Counter, &[]),
                (
                    "requests_total",
                    PrometheusType::Counter,
                    &["endpoint", "method", "status"],
                ),
                ("retries_total", PrometheusType::Counter, &[]),
                (
                    "last_successful_pass_timestamp_seconds",
                    PrometheusType::Gauge,
                    &[],
                ),
                (
                    "seconds_since_last_successful_pass",
                    PrometheusType::Gauge,
                    &[],
                ),
                ("consecutive_failed_passes", PrometheusType::Gauge, &[]),
                ("log_lines_dropped_total", PrometheusType::Counter, &[]),
                ("build_info", PrometheusType::Gauge, &["version"]),
            ];
            assert_eq!(families.len(), expected.len(), "{:?}", families.keys());
            for (short, kind, labels) in &expected {
                let family = families
                    .get(&name(short))
                    .unwrap_or_else(|| panic!("{short} missing"));
                assert_eq!(&family.family_type, kind, "{short}");
                assert!(!family.help.is_empty(), "{short} has no help");
                let mut names = family.get_label_names().to_vec();
                names.sort();
                assert_eq!(names, *labels, "{short}");
            }

            let single = |short: &str| {
                let family = &families[&name(short)];
                let samples: Vec<_> = family.iter_samples().collect();
                assert_eq!(samples.len(), 1, "{short}");
                number(&samples[0].value)
            };
            assert_eq!(single("users_seen_total"), 7.0);
            assert_eq!(single("servers_seen_total"), 10.0);
            assert_eq!(single("servers_stopped_total"), 13.0);
            assert_eq!(single("named_servers_removed_total"), 16.0);
            assert_eq!(single("users_deleted_total"), 19.0);
            assert_eq!(single("errors_total"), 22.0);
            assert_eq!(single("retries_total"), 1.0);
            assert_eq!(single("consecutive_failed_passes"), 0.0);
            assert_eq!(
                single("last_successful_pass_timestamp_seconds"),
                1_767_225_630.0
            );
            assert_eq!(single("seconds_since_last_successful_pass"), 70.0);
            assert_eq!(single("log_lines_dropped_total"), 0.0);
            assert_eq!(single("build_info"), 1.0);

            let passes = &families[&name("passes_total")];
            for (outcome, count) in [("success", 2.0), ("failure", 1.0), ("interrupted", 1.0)] {
                let sample = passes
                    .get_sample_by_label_values(&[outcome.to_owned()])
                    .unwrap_or_else(|| panic!("{outcome}"));
                assert_eq!(number(&sample.value), count, "{outcome}");
            }

            let requests = &families[&name("requests_total")];
            let mut seen = Vec::new();
            for sample in requests.iter_samples() {
                let labels = sample.get_labelset().unwrap();
                let get = |label| labels.get_label_value(label).unwrap().to_owned();
                seen.push((
                    get("endpoint"),
                    get("method"),
                    get("status"),
                    number(&sample.value),
                ));
            }
            seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let row = |e: &str, m: &str, s: &str, n| (e.to_owned(), m.to_owned(), s.to_owned(), n);
            assert_eq!(
                seen,
                [
                    row("/", "GET", "200", 1.0),
                    row("/users", "GET", "200", 4.0),
                    row("/users/{name}", "DELETE", "none", 4.0),
                    row("/users/{name}/server", "DELETE", "204", 4.0),
                    row("/users/{name}/servers/{server}", "DELETE", "202", 4.0),
                ]
            );
        }

        #[test]
        fn the_histogram_is_cumulative_and_ends_in_its_count() {
            let text = busy().render(epoch_2026());
            let parsed = parse_prometheus(&text).unwrap();
            let family = &parsed.families[&format!("{NAMESPACE}_pass_duration_seconds")];
            let samples: Vec<_> = family.iter_samples().collect();
            assert_eq!(samples.len(), 1);
            let PrometheusValue::Histogram(histogram) = &samples[0].value else {
                panic!("{:?}", samples[0].value);
            };
            let bounds: Vec<f64> = histogram.buckets.iter().map(|b| b.upper_bound).collect();
            let mut expected = PASS_DURATION_BUCKETS.to_vec();
            expected.push(f64::INFINITY);
            assert_eq!(bounds, expected);
            let counts: Vec<f64> = histogram.buckets.iter().map(|b| b.count.as_f64()).collect();
            assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
            // 80 ms, 2 s, 45 s and 900 s.
            assert_eq!(counts[..4], [0.0, 0.0, 0.0, 1.0]);
            assert_eq!(*counts.last().unwrap(), 4.0);
            assert_eq!(histogram.count, Some(4));
            let sum = histogram.sum.map(|s| s.as_f64()).unwrap();
            assert!((sum - 947.08).abs() < 1e-9, "{sum}");
        }

        /// Every label value comes from a small fixed set, so no user or
        /// server name can be among them (the API takes none: requests are
        /// counted by [`Endpoint`], whose values are the path templates).
        #[test]
        fn label_values_come_only_from_bounded_sets() {
            let text = busy().render(epoch_2026());
            let parsed = parse_prometheus(&text).unwrap();
            for family in parsed.families.values() {
                for sample in family.iter_samples() {
                    let labels = sample.get_labelset().unwrap();
                    for (label, value) in labels.iter() {
                        let allowed = match label.as_str() {
                            "outcome" => {
                                ["success", "failure", "interrupted"].contains(&value.as_str())
                            }
                            "endpoint" => Endpoint::ALL.iter().any(|e| e.template() == value),
                            "method" => ["GET", "DELETE"].contains(&value.as_str()),
                            "status" => value == "none" || value.parse::<u16>().is_ok(),
                            "version" => value == env!("CARGO_PKG_VERSION"),
                            _ => false,
                        };
                        assert!(allowed, "{label}={value:?}");
                    }
                }
            }
        }

        /// The parser is strict where these tests lean on it; otherwise
        /// passing them would prove little.
        #[test]
        fn the_parser_rejects_what_prometheus_rejects() {
            for bad in [
                // Buckets that go down.
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                // No +Inf bucket.
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
                // An unescaped quote in a label value.
                "# TYPE x gauge\nx{v=\"a\"b\"} 1\n",
                // Two label sets in one family.
                "# TYPE x counter\nx{a=\"1\"} 1\nx{b=\"1\"} 1\n",
            ] {
                assert!(parse_prometheus(bad).is_err(), "accepted:\n{bad}");
            }
        }

        #[test]
        fn an_empty_registry_parses_too() {
            let text = Metrics::new().render(SystemTime::now());
            parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        }

        #[test]
        fn escaped_label_values_read_back_as_written() {
            for value in [r#"a\b"#, r#"say "hi""#, "two\nlines", "{braces}", "ünï"] {
                let text = format!(
                    "# TYPE x gauge\nx{{v=\"{}\"}} 1\n",
                    escape_label_value(value)
                );
                let parsed = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
                let sample = parsed.families["x"].iter_samples().next().unwrap();
                let labels = sample.get_labelset().unwrap();
                assert_eq!(labels.get_label_value("v"), Some(value));
            }
        }
    }
}
