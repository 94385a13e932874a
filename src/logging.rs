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

use crate::policy::Elapsed;
pub use crate::report::Action;
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
/// judged on. A closed set of typed keys (not a free-form map) so every
/// line that carries, say, `idle` carries it in seconds under that name.
///
/// Every field is optional and an absent one is omitted from the line. The
/// text format ignores fields (its messages already say all of it). Built
/// with chained setters; borrows its strings, so building one for a line
/// that the level drops costs no allocation; [`Fields::into_owned`] keeps
/// one beyond the borrowed strings (to log later, from another actor).
///
/// ```
/// # use jupyterhub_idle_culler_rs::logging::{Action, Fields};
/// # use jupyterhub_idle_culler_rs::policy::Elapsed;
/// let fields = Fields::new()
///     .user("ada")
///     .server("")
///     .action(Action::Stop)
///     .reason("idle")
///     .idle(Some(Elapsed(3723)))
///     .age(Some(Elapsed(18000)));
/// # let _ = fields;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    user: Option<Cow<'a, str>>,
    server: Option<Cow<'a, str>>,
    action: Option<Action>,
    reason: Option<Cow<'a, str>>,
    idle: Option<Elapsed>,
    age: Option<Elapsed>,
    rule: Option<Cow<'a, str>>,
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

    /// `"action"`: what the line reports was done or decided.
    pub fn action(mut self, action: Action) -> Self {
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
    pub fn idle(mut self, idle: Option<Elapsed>) -> Self {
        self.idle = idle;
        self
    }

    /// `"age"`: seconds since the server started or the user was created;
    /// `None` (unknown) leaves the field out.
    pub fn age(mut self, age: Option<Elapsed>) -> Self {
        self.age = age;
        self
    }

    /// `"rule"`: what set the limits the decision was made on: a policy
    /// rule's label, or `flags`.
    pub fn rule(mut self, rule: impl Into<Cow<'a, str>>) -> Self {
        self.rule = Some(rule.into());
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
        self.write_fields(level, &Fields::new(), message);
    }

    /// Writes one line with structured fields (printed by the JSON format
    /// only); use the `debug_fields!`, `info_fields!`, `warning_fields!` and
    /// `error_fields!` macros.
    pub fn write_fields(&self, level: LogLevel, fields: &Fields<'_>, message: fmt::Arguments<'_>) {
        if level < self.level {
            // Skipped before formatting: a hub's worth of "not culling"
            // lines costs nothing at the default level.
            return;
        }
        let message = message.to_string();
        let text = scrub(&self.secrets, &message);
        // Text lines never carry fields: slog-term would print them after
        // the message, and the text format must stay as it always was.
        let kv = FieldsKv(match self.format {
            LogFormat::Text => None,
            LogFormat::Json => Some(fields),
        });
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
            out.emit_str("action", action.as_str())?;
        }
        if let Some(reason) = &fields.reason {
            out.emit_str("reason", reason)?;
        }
        if let Some(Elapsed(idle)) = fields.idle {
            out.emit_u64("idle", idle)?;
        }
        if let Some(Elapsed(age)) = fields.age {
            out.emit_u64("age", age)?;
        }
        if let Some(rule) = &fields.rule {
            out.emit_str("rule", rule)?;
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
        $log.write_fields($crate::logging::LogLevel::Debug, &$fields, format_args!($($arg)+))
    };
}

/// Logs at info level with [`Fields`]: `info_fields!(log, fields, "format", args...)`.
macro_rules! info_fields {
    ($log:expr, $fields:expr, $($arg:tt)+) => {
        $log.write_fields($crate::logging::LogLevel::Info, &$fields, format_args!($($arg)+))
    };
}

/// Logs at warning level with [`Fields`]: `warning_fields!(log, fields, "format", args...)`.
macro_rules! warning_fields {
    ($log:expr, $fields:expr, $($arg:tt)+) => {
        $log.write_fields($crate::logging::LogLevel::Warn, &$fields, format_args!($($arg)+))
    };
}

/// Logs at error level with [`Fields`]: `error_fields!(log, fields, "format", args...)`.
macro_rules! error_fields {
    ($log:expr, $fields:expr, $($arg:tt)+) => {
        $log.write_fields($crate::logging::LogLevel::Error, &$fields, format_args!($($arg)+))
    };
}

pub(crate) use {debug, error, info, warning};
pub(crate) use {debug_fields, error_fields, info_fields, warning_fields};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn python_level_names_and_numbers() {
        assert_eq!("debug".parse(), Ok(LogLevel::Debug));
        assert_eq!("INFO".parse(), Ok(LogLevel::Info));
        assert_eq!("Warning".parse(), Ok(LogLevel::Warn));
        assert_eq!("CRITICAL".parse(), Ok(LogLevel::Error));
        assert_eq!("30".parse(), Ok(LogLevel::Warn));
        assert!("loud".parse::<LogLevel>().unwrap_err().contains("loud"));
    }

    /// A writer like a pipe whose reader has gone away.
    struct BrokenPipe;

    impl io::Write for BrokenPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[test]
    fn a_line_that_cannot_be_written_is_dropped_and_counted_not_a_panic() {
        let log = Log::to_writer(BrokenPipe, LogLevel::Debug, LogFormat::Text, Vec::new());
        info!(log, "one");
        error!(log, "two");
        assert_eq!(log.dropped(), 2);
    }

    #[test]
    fn secrets_are_scrubbed_from_every_line() {
        let out = Captured::default();
        let log = Log::to_writer(
            out.clone(),
            LogLevel::Info,
            LogFormat::Text,
            vec!["s3cr3t-token".into()],
        );
        info!(log, "version \"s3cr3t-token\" and again s3cr3t-token.");
        let text = out.text();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(text.matches("<redacted>").count(), 2, "{text}");
    }

    #[test]
    fn lines_below_the_level_are_not_written() {
        let out = Captured::default();
        let log = Log::to_writer(out.clone(), LogLevel::Warn, LogFormat::Text, Vec::new());
        info!(log, "quiet");
        warning!(log, "loud");
        let text = out.text();
        assert!(
            !text.contains("quiet") && text.contains("WARN loud"),
            "{text}"
        );
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn panic_payloads_of_both_kinds_give_their_text() {
        let owned: Box<dyn std::any::Any + Send> = Box::new(String::from("owned"));
        let borrowed: Box<dyn std::any::Any + Send> = Box::new("borrowed");
        let other: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(panic_text(owned.as_ref()), "owned");
        assert_eq!(panic_text(borrowed.as_ref()), "borrowed");
        assert_eq!(panic_text(other.as_ref()), "(no message)");
    }
    #[test]
    fn log_formats_in_any_case_and_errors_that_name_the_flag() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("TEXT".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("Json".parse(), Ok(LogFormat::Json));
        assert_eq!(" json ".parse(), Ok(LogFormat::Json));
        assert_eq!(LogFormat::default(), LogFormat::Text);
        for format in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(format.to_string().parse(), Ok(format));
        }
        for wrong in ["yaml", "", "jsonl", "text json"] {
            let err = wrong.parse::<LogFormat>().unwrap_err();
            assert!(
                err.contains("--log-format")
                    && err.contains(&format!("{wrong:?}"))
                    && err.contains("text")
                    && err.contains("json"),
                "{err}"
            );
        }
    }

    /// A JSON log at `level` writing to a buffer.
    fn json_log(level: LogLevel, secrets: &[&str]) -> (Log, Captured) {
        let out = Captured::default();
        let secrets = secrets.iter().map(|s| s.to_string()).collect();
        let log = Log::to_writer(out.clone(), level, LogFormat::Json, secrets);
        (log, out)
    }

    #[test]
    fn any_other_slog_value_is_scrubbed_text_and_an_absent_one_is_left_out() {
        let (log, out) = json_log(LogLevel::Info, &["s3cr3t"]);
        slog::info!(log.logger, "m"; "flag" => true, "said" => format_args!("a s3cr3t b"), "missing" => None::<u64>);
        let lines = json_lines(&out);
        assert_eq!(lines[0]["flag"], "true");
        assert_eq!(lines[0]["said"], "a <redacted> b");
        assert!(lines[0].get("missing").is_none(), "{}", lines[0]);
    }

    /// Every line written, each parsed as one JSON object.
    fn json_lines(out: &Captured) -> Vec<Value> {
        let text = out.text();
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.split_terminator('\n')
            .map(|line| {
                assert!(line.starts_with("{\"time\":\""), "{line}");
                let value: Value =
                    serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
                assert!(value.is_object(), "{line}");
                value
            })
            .collect()
    }

    /// The line without its `time`, after checking that `time` is now in
    /// UTC RFC 3339 with microseconds.
    fn without_time(mut line: Value) -> Value {
        let time = line["time"].as_str().expect("a time").to_owned();
        assert_eq!(time.len(), "2026-12-01T16:00:00.123456Z".len(), "{time}");
        assert!(time.ends_with('Z'), "{time}");
        let parsed = chrono::DateTime::parse_from_rfc3339(&time).expect("RFC 3339");
        let skew = (Utc::now() - parsed.with_timezone(&Utc)).num_seconds();
        assert!(skew.abs() < 60, "{time}");
        line.as_object_mut().unwrap().remove("time");
        line
    }

    /// The text line without slog-term's local time (`Nov 25 22:40:01.123 `),
    /// after checking its shape.
    fn without_text_time(line: &str) -> &str {
        let (time, rest) = line.split_at(20);
        let shape: String = time
            .chars()
            .map(|c| match c {
                '0'..='9' => '9',
                'A'..='Z' | 'a'..='z' => 'a',
                c => c,
            })
            .collect();
        assert_eq!(shape, "aaa 99 99:99:99.999 ", "{line:?}");
        rest
    }

    /// Every field, as a server cull has them.
    fn culled_server() -> Fields<'static> {
        Fields::new()
            .user("ada")
            .server("")
            .action(Action::Stop)
            .reason("idle")
            .idle(Some(Elapsed(3723)))
            .age(Some(Elapsed(18000)))
    }

    #[test]
    fn json_lines_have_exactly_the_expected_keys_and_values() {
        let (log, out) = json_log(LogLevel::Debug, &[]);
        info_fields!(
            log,
            culled_server(),
            "Culling server {} (reason: idle, inactive for {}, age: {})",
            "ada",
            Elapsed(3723),
            Elapsed(18000)
        );
        debug!(log, "plain {}", 1);
        warning_fields!(
            log,
            Fields::new()
                .user("bob")
                .server("gpu")
                .action(Action::Skip)
                .reason("pending spawn"),
            "Not culling server bob/gpu: pending spawn"
        );
        error!(log, "Failed to stop server bob/gpu: 500");
        let lines: Vec<Value> = json_lines(&out).into_iter().map(without_time).collect();
        assert_eq!(
            lines,
            [
                json!({
                    "level": "INFO",
                    "message": "Culling server ada (reason: idle, inactive for 01:02:03, age: 05:00:00)",
                    "user": "ada",
                    "server": "",
                    "action": "stop",
                    "reason": "idle",
                    "idle": 3723,
                    "age": 18000,
                }),
                json!({"level": "DEBUG", "message": "plain 1"}),
                json!({
                    "level": "WARNING",
                    "message": "Not culling server bob/gpu: pending spawn",
                    "user": "bob",
                    "server": "gpu",
                    "action": "skip",
                    "reason": "pending spawn",
                }),
                json!({"level": "ERROR", "message": "Failed to stop server bob/gpu: 500"}),
            ]
        );
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn json_keys_come_in_a_fixed_order() {
        let (log, out) = json_log(LogLevel::Info, &[]);
        info_fields!(log, culled_server(), "m");
        let text = out.text();
        let positions: Vec<usize> = [
            "time", "level", "message", "user", "server", "action", "reason", "idle", "age",
        ]
        .iter()
        .map(|key| text.find(&format!("\"{key}\":")).expect(key))
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn every_action_has_its_json_name() {
        let (log, out) = json_log(LogLevel::Info, &[]);
        let actions = [
            Action::Stop,
            Action::Remove,
            Action::Delete,
            Action::Keep,
            Action::Skip,
        ];
        for action in actions {
            info_fields!(log, Fields::new().action(action), "{action:?}");
        }
        let names: Vec<Value> = json_lines(&out)
            .into_iter()
            .map(|line| line["action"].clone())
            .collect();
        assert_eq!(names, ["stop", "remove", "delete", "keep", "skip"]);
    }

    #[test]
    fn absent_fields_are_omitted_not_null() {
        let (log, out) = json_log(LogLevel::Info, &[]);
        info_fields!(
            log,
            Fields::new().user("ada").idle(None).age(None),
            "User ada: idle and age unknown"
        );
        info_fields!(log, Fields::new(), "no fields at all");
        assert!(!out.text().contains("null"), "{}", out.text());
        let lines: Vec<Value> = json_lines(&out).into_iter().map(without_time).collect();
        assert_eq!(
            lines,
            [
                json!({"level": "INFO", "message": "User ada: idle and age unknown", "user": "ada"}),
                json!({"level": "INFO", "message": "no fields at all"}),
            ]
        );
    }

    #[test]
    fn text_lines_with_fields_are_byte_identical_to_lines_without() {
        let out = Captured::default();
        let log = Log::to_writer(out.clone(), LogLevel::Debug, LogFormat::Text, Vec::new());
        let message = "Culling server ada (reason: idle, inactive for 01:02:03, age: 05:00:00)";
        info_fields!(log, culled_server(), "{message}");
        info!(log, "{message}");
        warning_fields!(
            log,
            Fields::new().user("bob").reason("pending spawn"),
            "{message}"
        );
        warning!(log, "{message}");
        let text = out.text();
        let lines: Vec<&str> = text.split_inclusive('\n').map(without_text_time).collect();
        assert_eq!(
            lines,
            [
                format!("INFO {message}\n"),
                format!("INFO {message}\n"),
                format!("WARN {message}\n"),
                format!("WARN {message}\n"),
            ],
            "{text}"
        );
    }

    /// Counts how often it is formatted.
    #[derive(Default)]
    struct CountsFormatting(AtomicUsize);

    impl fmt::Display for CountsFormatting {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fetch_add(1, Ordering::Relaxed);
            f.write_str("formatted")
        }
    }

    #[test]
    fn the_level_is_checked_before_formatting_in_both_formats() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = Captured::default();
            let log = Log::to_writer(out.clone(), LogLevel::Warn, format, Vec::new());
            let counter = CountsFormatting::default();
            debug!(log, "{counter}");
            info!(log, "{counter}");
            info_fields!(log, culled_server(), "{counter}");
            assert_eq!(counter.0.load(Ordering::Relaxed), 0, "{format}");
            assert_eq!(out.text(), "", "{format}");
            warning_fields!(log, culled_server(), "{counter}");
            assert_eq!(counter.0.load(Ordering::Relaxed), 1, "{format}: once");
            assert_eq!(out.text().lines().count(), 1, "{format}");
        }
    }

    #[test]
    fn secrets_are_scrubbed_from_json_messages_and_every_field_value() {
        let (log, out) = json_log(LogLevel::Info, &["s3cr3t-token"]);
        error_fields!(
            log,
            Fields::new()
                .user("s3cr3t-token")
                .server("a s3cr3t-token b")
                .action(Action::Delete)
                .reason(String::from("token s3cr3t-token in a reason")),
            "version \"s3cr3t-token\" and again s3cr3t-token."
        );
        let text = out.text();
        assert!(!text.contains("s3cr3t"), "{text}");
        let lines: Vec<Value> = json_lines(&out).into_iter().map(without_time).collect();
        assert_eq!(
            lines,
            [json!({
                "level": "ERROR",
                "message": "version \"<redacted>\" and again <redacted>.",
                "user": "<redacted>",
                "server": "a <redacted> b",
                "action": "delete",
                "reason": "token <redacted> in a reason",
            })]
        );
    }

    #[test]
    fn a_number_field_holding_an_all_digit_secret_is_scrubbed_too() {
        let (log, out) = json_log(LogLevel::Info, &["18000"]);
        info_fields!(log, culled_server(), "age 18000");
        let lines: Vec<Value> = json_lines(&out).into_iter().map(without_time).collect();
        assert_eq!(lines[0]["message"], "age <redacted>");
        assert_eq!(lines[0]["age"], "<redacted>");
        assert_eq!(lines[0]["idle"], 3723);
    }

    #[test]
    fn a_json_line_that_cannot_be_written_is_dropped_and_counted_not_a_panic() {
        let log = Log::to_writer(BrokenPipe, LogLevel::Debug, LogFormat::Json, Vec::new());
        info!(log, "one");
        error_fields!(log, culled_server(), "two");
        debug_fields!(log, culled_server(), "three");
        assert_eq!(log.dropped(), 3);
    }

    #[test]
    fn json_lines_stay_valid_and_single_whatever_the_text_holds() {
        let nasty = [
            "quote \" backslash \\ slash /",
            "newline \n carriage return \r tab \t",
            "nul \0 escape \x1b[31m bell \x07 delete \x7f",
            "a hub's lossy bytes \u{fffd}\u{fffd} and \u{feff}",
            "line separators \u{2028} \u{2029}, crab \u{1f980}, accents éü",
            "{\"json\": [\"inside\"]} </script>",
        ];
        let (log, out) = json_log(LogLevel::Info, &[]);
        for text in nasty {
            info_fields!(log, Fields::new().user(text).reason(text), "{text}");
        }
        let lines = json_lines(&out);
        assert_eq!(lines.len(), nasty.len(), "{}", out.text());
        for (line, text) in lines.iter().zip(nasty) {
            assert_eq!(line["message"], text);
            assert_eq!(line["user"], text);
            assert_eq!(line["reason"], text);
        }
    }

    #[test]
    fn fields_into_owned_keep_every_value() {
        let user = String::from("ada");
        let borrowed = Fields::new()
            .user(user.as_str())
            .server("x")
            .action(Action::Remove)
            .reason("max-age")
            .idle(Some(Elapsed(1)))
            .age(None);
        let owned: Fields<'static> = borrowed.clone().into_owned();
        drop(user);
        assert_eq!(
            owned,
            Fields::new()
                .user("ada")
                .server("x")
                .action(Action::Remove)
                .reason("max-age")
                .idle(Some(Elapsed(1)))
        );
    }

    #[test]
    fn the_panic_hook_reports_through_the_log_in_both_formats() {
        // The hook is process-wide: put the test harness's back at once.
        // (A test panicking on another thread meanwhile is reported here.)
        let previous = std::panic::take_hook();
        let mut written = Vec::new();
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = Captured::default();
            let log = Log::to_writer(out.clone(), LogLevel::Info, format, vec!["s3cr3t".into()]);
            log.install_panic_hook();
            let _ = std::panic::catch_unwind(|| panic!("hook test {format} s3cr3t"));
            written.push(out);
        }
        std::panic::set_hook(previous);

        let text = written[0].text();
        assert!(
            text.lines().any(|line| {
                let line = without_text_time(line);
                line.starts_with("ERRO Bug: panic at src/logging.rs:")
                    && line.ends_with(": hook test text <redacted>")
            }),
            "{text}"
        );
        assert!(
            json_lines(&written[1]).into_iter().any(|line| {
                let message = line["message"].as_str().unwrap_or_default();
                line["level"] == "ERROR"
                    && message.starts_with("Bug: panic at src/logging.rs:")
                    && message.ends_with(": hook test json <redacted>")
            }),
            "{}",
            written[1].text()
        );
    }
}
