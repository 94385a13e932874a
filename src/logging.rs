//! Log set-up and the logging calls the rest of the crate uses; the only
//! module that knows slog, so a move to `tracing` touches this file alone.
//!
//! Two formats (`--log-format`), one line per call either way:
//! - **text** (the default) goes through slog-term:
//!   `Nov 25 22:40:01.123 INFO message`, exactly as before JSON existed.
//! - **json** writes one JSON object per line for log aggregators:
//!   `{"time":"2026-12-01T16:00:00.123456Z","level":"INFO","message":"...","user":"ada","server":"","action":"stop","reason":"idle","idle":3723,"age":18000}`,
//!   with the typed [`Fields`] of a line after the message and absent
//!   fields omitted. The text format never prints the fields: its messages
//!   already say everything.
//!
//! Four promises, each tested in both formats:
//! - **Logging never takes the culler down.** A line that cannot be written
//!   (stderr's reader went away: a log shipper restarting, `2>&1 | head`) is
//!   dropped and counted; culling and signal handling go on. (slog's usual
//!   `fuse()` would turn that write error into a panic in every log call.)
//! - **Secrets never reach a line.** Every line is scrubbed of the API token
//!   whatever put it there (an error body, a version string, a user name),
//!   in the message and, in JSON, in every field value.
//! - **A line below the level costs nothing**: it is dropped before its
//!   message is formatted or its fields serialized.
//! - **`--debug` works in release builds** (see the slog features in
//!   Cargo.toml: slog otherwise compiles debug lines out of them).

use chrono::{SecondsFormat, Utc};
use serde::ser::{SerializeMap, Serializer as _};
use slog::{o, Drain};
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// How much to log, in upstream's (Python logging's) vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Every decision, including servers kept.
    Debug,
    /// Culls, pass summaries, warnings and errors (the default).
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

impl FromStr for LogLevel {
    type Err = String;

    /// Accepts Python logging's names (any case) and numbers.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_uppercase().as_str() {
            "DEBUG" | "10" | "TRACE" => Ok(LogLevel::Debug),
            "INFO" | "20" => Ok(LogLevel::Info),
            "WARN" | "WARNING" | "30" => Ok(LogLevel::Warn),
            "ERROR" | "40" | "CRITICAL" | "FATAL" | "50" => Ok(LogLevel::Error),
            _ => Err(format!(
                "--log-level={text:?} is not a log level; use DEBUG, INFO, WARN, ERROR or CRITICAL"
            )),
        }
    }
}

/// How lines are written (`--log-format`): for people reading a terminal or
/// grepping a file, or for a log aggregator that wants fields, not prose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `Nov 25 22:40:01.123 INFO message` (the default, and the only format
    /// before `--log-format` existed: unchanged byte for byte).
    #[default]
    Text,
    /// One JSON object a line: time, level, message and the line's [`Fields`].
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    /// Accepts `text` and `json`, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "--log-format={text:?} is not a log format; use text or json"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    /// The flag's spelling, so a format shown (in a usage message, in a
    /// settings dump) parses back to itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The structured side of a line, for the JSON format: which user and
/// server a decision was about, what was done and why, and the spans it was
/// judged on. A closed set of keys (not a free-form map) so every line that
/// carries, say, `idle` carries it in seconds under that name; the values
/// are plain text and numbers, so the log knows nothing of the decisions
/// it writes ([`crate::decision::Decision::fields`] fills them).
///
/// Every field is optional and an absent one is omitted from the line. The
/// text format ignores fields (its messages already say all of it). Built
/// with chained setters, and only for a line that is written in the JSON
/// format (the `*_fields!` macros build them lazily); [`Fields::into_owned`]
/// keeps one beyond the strings it borrows.
///
/// ```
/// # use jupyterhub_idle_culler_rs::logging::Fields;
/// let fields = Fields::new()
///     .user("ada")
///     .server("")
///     .action("stop")
///     .reason("idle")
///     .idle(Some(3723))
///     .age(Some(18000));
/// # let _ = fields;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    user: Option<Cow<'a, str>>,
    server: Option<Cow<'a, str>>,
    action: Option<&'static str>,
    reason: Option<Cow<'a, str>>,
    idle: Option<u64>,
    age: Option<u64>,
    rule: Option<Cow<'a, str>>,
    signal: Option<&'static str>,
}

impl<'a> Fields<'a> {
    /// No fields: a line that has them all absent.
    pub fn new() -> Self {
        Self::default()
    }

    /// `"user"`: the user's name.
    pub fn user(mut self, user: impl Into<Cow<'a, str>>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// `"server"`: the server's name as the hub spells it, `""` for the
    /// default server (leave it out for lines about a user as a whole).
    pub fn server(mut self, server: impl Into<Cow<'a, str>>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// `"action"`: what the line reports was done or decided (`stop`,
    /// `remove`, `delete`, `keep`, `skip`).
    pub fn action(mut self, action: &'static str) -> Self {
        self.action = Some(action);
        self
    }

    /// `"reason"`: why, in the message's words (`idle`, `max-age`,
    /// `pending spawn`...).
    pub fn reason(mut self, reason: impl Into<Cow<'a, str>>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// `"idle"`: seconds since the last activity; `None` (unknown) leaves
    /// the field out.
    pub fn idle(mut self, idle: Option<u64>) -> Self {
        self.idle = idle;
        self
    }

    /// `"age"`: seconds since the server started or the user was created;
    /// `None` (unknown) leaves the field out.
    pub fn age(mut self, age: Option<u64>) -> Self {
        self.age = age;
        self
    }

    /// `"rule"`: what set the limits the decision was made on: a policy
    /// rule's label, or `flags`.
    pub fn rule(mut self, rule: impl Into<Cow<'a, str>>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// `"signal"`: what the idleness was judged by (`hub`, `server`,
    /// `hub-fallback`); left out for decisions made before any judging.
    pub fn signal(mut self, signal: &'static str) -> Self {
        self.signal = Some(signal);
        self
    }

    /// The same fields, owning their strings: for a line logged later than
    /// the strings live (a cull announced when its request is sent).
    pub fn into_owned(self) -> Fields<'static> {
        fn own(text: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            text.map(|text| Cow::Owned(text.into_owned()))
        }
        Fields {
            user: own(self.user),
            server: own(self.server),
            action: self.action,
            reason: own(self.reason),
            idle: self.idle,
            age: self.age,
            rule: own(self.rule),
            signal: self.signal,
        }
    }
}

/// A cheap-to-clone handle every actor logs through; `Send + Sync` so the
/// panic hook can hold one too.
#[derive(Clone)]
pub struct Log {
    logger: slog::Logger,
    /// Lines below this are not even formatted.
    level: LogLevel,
    /// Whether lines carry their fields (JSON) or not (text).
    format: LogFormat,
    /// Strings never to print (the API token), replaced by `<redacted>`.
    secrets: Arc<[String]>,
    /// Lines that could not be written.
    dropped: Arc<AtomicU64>,
}

impl Log {
    /// Logs to stderr at `level` and above in `format`, never printing any
    /// of `secrets`.
    pub fn stderr(level: LogLevel, format: LogFormat, secrets: Vec<String>) -> Self {
        Self::to_writer(io::stderr(), level, format, secrets)
    }

    /// Logs to any writer; stderr in the program, a failing or capturing
    /// writer in tests.
    pub fn to_writer<W: io::Write + Send + 'static>(
        writer: W,
        level: LogLevel,
        format: LogFormat,
        secrets: Vec<String>,
    ) -> Self {
        let dropped = Arc::new(AtomicU64::new(0));
        let secrets: Arc<[String]> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        let logger = match format {
            LogFormat::Text => {
                let decorator = slog_term::PlainSyncDecorator::new(writer);
                let drain = DropFailures {
                    inner: slog_term::FullFormat::new(decorator).build(),
                    dropped: Arc::clone(&dropped),
                };
                slog::Logger::root(drain, o!())
            }
            LogFormat::Json => {
                let drain = DropFailures {
                    inner: JsonLines {
                        writer: Mutex::new(writer),
                        secrets: Arc::clone(&secrets),
                    },
                    dropped: Arc::clone(&dropped),
                };
                slog::Logger::root(drain, o!())
            }
        };
        Log {
            logger,
            level,
            format,
            secrets,
            dropped,
        }
    }

    /// Drops everything; for unit tests of code that logs.
    pub fn discard() -> Self {
        Log {
            logger: slog::Logger::root(slog::Discard, o!()),
            level: LogLevel::Error,
            format: LogFormat::Text,
            secrets: Arc::from(Vec::new()),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Writes one line; use the `debug!`, `info!`, `warning!` and `error!` macros.
    pub fn write(&self, level: LogLevel, message: fmt::Arguments<'_>) {
        self.write_fields(level, Fields::new, message);
    }

    /// Writes one line with structured fields (printed by the JSON format
    /// only, and built only then); use the `debug_fields!`, `info_fields!`,
    /// `warning_fields!` and `error_fields!` macros.
    pub fn write_fields<'f>(
        &self,
        level: LogLevel,
        fields: impl FnOnce() -> Fields<'f>,
        message: fmt::Arguments<'_>,
    ) {
        if level < self.level {
            // Skipped before formatting: a hub's worth of "not culling"
            // lines costs nothing at the default level.
            return;
        }
        let message = message.to_string();
        let text = scrub(&self.secrets, &message);
        // Text lines never carry fields: slog-term would print them after
        // the message, and the text format must stay as it always was.
        let fields = match self.format {
            LogFormat::Text => None,
            LogFormat::Json => Some(fields()),
        };
        let kv = FieldsKv(fields.as_ref());
        match level {
            LogLevel::Debug => slog::debug!(self.logger, "{}", text; kv),
            LogLevel::Info => slog::info!(self.logger, "{}", text; kv),
            LogLevel::Warn => slog::warn!(self.logger, "{}", text; kv),
            LogLevel::Error => slog::error!(self.logger, "{}", text; kv),
        }
    }

    /// How many lines could not be written so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The counter of lines that could not be written, shared: the
    /// metrics read it at each scrape without knowing the log.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// Routes panic reports through this log (scrubbed, in its format, and
    /// never failing on a closed stderr), replacing Rust's default message.
    /// The actor that panicked logs which actor it was and that it is being
    /// restarted.
    pub fn install_panic_hook(&self) {
        let log = self.clone();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "an unknown place".to_owned());
            log.write(
                LogLevel::Error,
                format_args!("Bug: panic at {location}: {}", panic_text(info.payload())),
            );
        }));
    }
}

/// `text` with every secret replaced by `<redacted>`; borrowed (no copy)
/// when there is nothing to replace, the usual case.
fn scrub<'t>(secrets: &[String], text: &'t str) -> Cow<'t, str> {
    let mut text = Cow::Borrowed(text);
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = Cow::Owned(text.replace(secret.as_str(), "<redacted>"));
        }
    }
    text
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A drain that never fails: a line its inner drain cannot write is dropped
/// and counted instead of becoming an error (which `fuse()` would turn into
/// a panic in the caller).
struct DropFailures<D> {
    inner: D,
    dropped: Arc<AtomicU64>,
}

impl<D: Drain> Drain for DropFailures<D> {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> Result<(), slog::Never> {
        if self.inner.log(record, values).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A line's [`Fields`] as slog key-values, for the JSON drain; `None` (the
/// text format) gives none, so slog-term prints exactly the message.
struct FieldsKv<'f, 'a>(Option<&'f Fields<'a>>);

impl slog::KV for FieldsKv<'_, '_> {
    fn serialize(&self, _: &slog::Record, out: &mut dyn slog::Serializer) -> slog::Result {
        let Some(fields) = self.0 else {
            return Ok(());
        };
        // The order the keys appear in on the line.
        if let Some(user) = &fields.user {
            out.emit_str("user", user)?;
        }
        if let Some(server) = &fields.server {
            out.emit_str("server", server)?;
        }
        if let Some(action) = fields.action {
            out.emit_str("action", action)?;
        }
        if let Some(reason) = &fields.reason {
            out.emit_str("reason", reason)?;
        }
        if let Some(idle) = fields.idle {
            out.emit_u64("idle", idle)?;
        }
        if let Some(age) = fields.age {
            out.emit_u64("age", age)?;
        }
        if let Some(rule) = &fields.rule {
            out.emit_str("rule", rule)?;
        }
        if let Some(signal) = fields.signal {
            out.emit_str("signal", signal)?;
        }
        Ok(())
    }
}

/// The JSON format's drain: one object a line, written whole in a single
/// `write_all` under a lock so concurrent lines never interleave. Errors
/// (the writer's) go to [`DropFailures`], as the text drain's do.
struct JsonLines<W> {
    writer: Mutex<W>,
    /// Scrubbed from every field value (the message is scrubbed already).
    secrets: Arc<[String]>,
}

impl<W: io::Write> Drain for JsonLines<W> {
    type Ok = ();
    type Err = io::Error;

    fn log(&self, record: &slog::Record, values: &slog::OwnedKVList) -> io::Result<()> {
        let line = self.line(record, values)?;
        // A panic elsewhere while holding the lock leaves the writer usable.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer.write_all(&line)?;
        writer.flush()
    }
}

impl<W> JsonLines<W> {
    /// The line's bytes, newline included. serde_json does all the escaping,
    /// so whatever a message holds (quotes, newlines, control characters,
    /// a hub's error page) the line is one valid JSON object.
    fn line(&self, record: &slog::Record, values: &slog::OwnedKVList) -> io::Result<Vec<u8>> {
        let mut line = Vec::with_capacity(256);
        let mut json = serde_json::Serializer::new(&mut line);
        let mut map = json.serialize_map(None)?;
        map.serialize_entry(
            "time",
            &Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        )?;
        map.serialize_entry("level", python_level_name(record.level()))?;
        map.serialize_entry("message", record.msg())?;
        let mut fields = JsonFields {
            map: &mut map,
            secrets: &self.secrets,
        };
        slog::KV::serialize(&record.kv(), record, &mut fields)?;
        slog::KV::serialize(values, record, &mut fields)?;
        map.end()?;
        line.push(b'\n');
        Ok(line)
    }
}

/// Python logging's level names, not slog's: JupyterHub and upstream's
/// culler log through Python's `logging`, so the dashboards, alerts and
/// parsers that operators already run on JupyterHub logs match `WARNING`
/// (slog would say `WARN`) and `CRITICAL`. The same names `--log-level`
/// accepts.
fn python_level_name(level: slog::Level) -> &'static str {
    match level {
        slog::Level::Critical => "CRITICAL",
        slog::Level::Error => "ERROR",
        slog::Level::Warning => "WARNING",
        slog::Level::Info => "INFO",
        slog::Level::Debug | slog::Level::Trace => "DEBUG",
    }
}

/// Writes slog key-values into the line's JSON object, scrubbing every value.
struct JsonFields<'m, M> {
    map: &'m mut M,
    secrets: &'m [String],
}

impl<M: SerializeMap<Error = serde_json::Error>> JsonFields<'_, M> {
    fn text(&mut self, key: slog::Key, value: &str) -> slog::Result {
        let value = scrub(self.secrets, value);
        self.map
            .serialize_entry(key, &value)
            .map_err(|err| slog::Error::Io(err.into()))
    }
}

impl<M: SerializeMap<Error = serde_json::Error>> slog::Serializer for JsonFields<'_, M> {
    /// Every value type without its own method below comes here as text.
    fn emit_arguments(&mut self, key: slog::Key, value: &fmt::Arguments<'_>) -> slog::Result {
        self.text(key, &value.to_string())
    }

    fn emit_str(&mut self, key: slog::Key, value: &str) -> slog::Result {
        self.text(key, value)
    }

    /// A number stays a JSON number, unless its digits hold a secret (only
    /// possible with an all-digit token): then it is written as the
    /// scrubbed string, the one case a number field is not a number.
    fn emit_u64(&mut self, key: slog::Key, value: u64) -> slog::Result {
        let digits = value.to_string();
        if let Cow::Owned(scrubbed) = scrub(self.secrets, &digits) {
            return self.text(key, &scrubbed);
        }
        self.map
            .serialize_entry(key, &value)
            .map_err(|err| slog::Error::Io(err.into()))
    }

    /// An absent value is left out, not written as `null`.
    fn emit_none(&mut self, _: slog::Key) -> slog::Result {
        Ok(())
    }
}

/// Logs at debug level: `debug!(log, "format", args...)`.
macro_rules! debug {
    ($log:expr, $($arg:tt)+) => {
        $log.write($crate::logging::LogLevel::Debug, format_args!($($arg)+))
    };
}

/// Logs at info level: `info!(log, "format", args...)`.
macro_rules! info {
    ($log:expr, $($arg:tt)+) => {
        $log.write($crate::logging::LogLevel::Info, format_args!($($arg)+))
    };
}

/// Logs at warning level: `warning!(log, "format", args...)`.
macro_rules! warning {
    ($log:expr, $($arg:tt)+) => {
        $log.write($crate::logging::LogLevel::Warn, format_args!($($arg)+))
    };
}

/// Logs at error level: `error!(log, "format", args...)`.
macro_rules! error {
    ($log:expr, $($arg:tt)+) => {
        $log.write($crate::logging::LogLevel::Error, format_args!($($arg)+))
    };
}

/// Logs at debug level with [`Fields`]: `debug_fields!(log, fields, "format", args...)`.
macro_rules! debug_fields {
    ($log:expr, $fields:expr, $($arg:tt)+) => {
        $log.write_fields($crate::logging::LogLevel::Debug, || $fields, format_args!($($arg)+))
    };
}

/// Logs at info level with [`Fields`]: `info_fields!(log, fields, "format", args...)`.
macro_rules! info_fields {
    ($log:expr, $fields:expr, $($arg:tt)+) => {
        $log.write_fields($crate::logging::LogLevel::Info, || $fields, format_args!($($arg)+))
    };
}

/// Logs at warning level with [`Fields`]: `warning_fields!(log, fields, "format", args...)`.
macro_rules! warning_fields {
    ($log:expr, $fields:expr, $($arg:tt)+) => {
        $log.write_fields($crate::logging::LogLevel::Warn, || $fields, format_args!($($arg)+))
    };
}

/// Logs at error level with [`Fields`]: `error_fields!(log, fields, "format", args...)`.
macro_rules! error_fields {
    ($log:expr, $fields:expr, $($arg:tt)+) => {
        $log.write_fields($crate::logging::LogLevel::Error, || $fields, format_args!($($arg)+))
    };
}

pub(crate) use {debug, error, info, warning};
pub(crate) use {debug_fields, error_fields, info_fields, warning_fields};

#[cfg(test)]
mod tests;
